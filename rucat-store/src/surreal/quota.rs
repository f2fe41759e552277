//! Quota-checked writes on SurrealDB: the owner's engines are counted and
//! the engine written in one transaction, with [`Limits::check`] between.
//!
//! SurrealDB's transactions are optimistic snapshots, so two that each
//! count and then write a different engine would both commit (write skew)
//! and could together pass a limit that only one of them may. Every
//! quota-checked transaction therefore also writes its owner's
//! `engine_quota` document ([`queries::QUOTA_CHECK`]): two of them for one
//! owner always conflict, the later commit fails, and it is tried again
//! from the count, a bounded number of times. Writes that only lower a count
//! (stops, deletes, the monitor's transitions) need no part in this: they
//! can only make a concurrent count too high, never too low.

use std::collections::hash_map::RandomState;
use std::future::IntoFuture;
use std::hash::BuildHasher;
use std::time::Duration;

use rucat_core::store::{StoreError, usage_from_counts};
use rucat_core::{EngineRecord, EngineState, Limits};
use serde_json::Value;
use surrealdb::Surreal;
use surrealdb::engine::any::Any;
use surrealdb::method::Transaction;

use super::errors::{is_already_exists, is_transaction_conflict, unavailable};
use super::{bounded, queries, unexpected};

/// How often a quota-checked write is tried while other quota-checked
/// writes for the same owner keep committing first. Each round lets at
/// least one through, and those refused by the quota leave without
/// committing, so a burst far larger than any limit settles well within it.
const ATTEMPTS: u32 = 32;

/// Which write a quota check guards.
#[derive(Clone, Copy)]
pub(super) enum Checked {
    Insert,
    /// A compare-and-swap from this revision.
    Swap {
        expected: u64,
    },
}

/// Why an attempt ended without committing.
enum Abort {
    /// Another transaction got there first: count again.
    Lost,
    Failed(StoreError),
}

impl From<StoreError> for Abort {
    fn from(error: StoreError) -> Self {
        Self::Failed(error)
    }
}

/// A database error inside the transaction: a lost race is tried again,
/// anything else is the store being unavailable.
fn failed(error: &surrealdb::Error) -> Abort {
    if is_transaction_conflict(error) {
        Abort::Lost
    } else {
        Abort::Failed(unavailable(error))
    }
}

/// Writes `doc` (`next`, encoded at its new revision) as `checked` says, if
/// `limits` allow it; the new revision.
pub(super) async fn write_within(
    db: &Surreal<Any>,
    next: &EngineRecord,
    doc: Value,
    limits: &Limits,
    checked: Checked,
) -> Result<u64, StoreError> {
    for attempt in 0..ATTEMPTS {
        // A task of its own, so that a caller who gives up (a request
        // timeout) cannot leave the transaction open on the server: the
        // attempt always ends in a commit or a cancel.
        let task = tokio::spawn(attempt_once(
            db.clone(),
            next.clone(),
            doc.clone(),
            limits.clone(),
            checked,
        ));
        match task.await {
            Ok(Ok(Some(revision))) => return Ok(revision),
            Ok(Ok(None)) => tokio::time::sleep(backoff(attempt)).await,
            Ok(Err(error)) => return Err(error),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => {
                return Err(StoreError::Unavailable(format!(
                    "SurrealDB: the quota-checked write did not finish: {e}"
                )));
            }
        }
    }
    Err(StoreError::Conflict(next.id().clone()))
}

/// A few milliseconds, random and growing, so that the losers of a round do
/// not all meet again at once.
fn backoff(attempt: u32) -> Duration {
    let jitter = RandomState::new().hash_one(attempt);
    let ceiling = 2u64 << attempt.min(5);
    Duration::from_millis(1 + jitter % ceiling)
}

/// One transaction: `Some(revision)` if it committed, `None` if it lost to
/// another and should be tried again.
async fn attempt_once(
    db: Surreal<Any>,
    next: EngineRecord,
    doc: Value,
    limits: Limits,
    checked: Checked,
) -> Result<Option<u64>, StoreError> {
    let tx = bounded(db.begin().into_future())
        .await?
        .map_err(|e| unavailable(&e))?;
    match decide(&tx, &next, doc, &limits, checked).await {
        Ok(revision) => match bounded(tx.commit().into_future()).await? {
            Ok(_) => Ok(Some(revision)),
            Err(e) if is_transaction_conflict(&e) => Ok(None),
            Err(e) => Err(unavailable(&e)),
        },
        Err(abort) => {
            // Best effort: a transaction that is never cancelled ends with
            // the connection, and was never committed anyway.
            if let Ok(Err(e)) = bounded(tx.cancel().into_future()).await {
                tracing::debug!(error = %e, "cancelling a quota-checked transaction failed");
            }
            match abort {
                Abort::Lost => Ok(None),
                Abort::Failed(error) => Err(error),
            }
        }
    }
}

/// Inside the transaction: takes the owner's lock document, counts, checks
/// the fence and the limits, and writes; the revision written.
async fn decide(
    tx: &Transaction<Any>,
    next: &EngineRecord,
    doc: Value,
    limits: &Limits,
    checked: Checked,
) -> Result<u64, Abort> {
    let id = next.id();
    let vars = serde_json::json!({ "owner": limits.owner, "id": id.as_str() });
    let mut response = bounded(tx.query(queries::QUOTA_CHECK).bind(vars).into_future())
        .await?
        .map_err(|e| failed(&e))?;
    response.take::<Vec<Value>>(0).map_err(|e| failed(&e))?;
    let counts = response.take::<Vec<Value>>(1).map_err(|e| failed(&e))?;
    let revision = response
        .take::<Vec<Value>>(2)
        .map_err(|e| failed(&e))?
        .first()
        .map(|r| r.as_u64().ok_or_else(|| unexpected("a revision", r)))
        .transpose()?;
    let (inserting, new, statement, vars) = match (checked, revision) {
        (Checked::Insert, Some(_)) => return Err(StoreError::AlreadyExists(id.clone()).into()),
        (Checked::Insert, None) => (
            true,
            1,
            queries::INSERT,
            serde_json::json!({ "id": id.as_str(), "doc": doc }),
        ),
        (Checked::Swap { .. }, None) => return Err(StoreError::NotFound(id.clone()).into()),
        (Checked::Swap { expected }, Some(stored)) if stored != expected => {
            return Err(StoreError::Conflict(id.clone()).into());
        }
        (Checked::Swap { expected }, Some(_)) => (
            false,
            expected + 1,
            queries::COMPARE_AND_SWAP,
            serde_json::json!({ "id": id.as_str(), "doc": doc, "expected": expected }),
        ),
    };
    let usage = usage_from_counts(decode_counts(&counts)?);
    limits
        .check(usage, next, inserting)
        .map_err(StoreError::QuotaExceeded)?;
    let mut response = bounded(tx.query(statement).bind(vars).into_future())
        .await?
        .map_err(|e| failed(&e))?;
    match response.take::<Vec<Value>>(0) {
        Ok(written) if !inserting && written.is_empty() => {
            Err(StoreError::Conflict(id.clone()).into())
        }
        Ok(_) => Ok(new),
        Err(e) if is_already_exists(&e) => Err(StoreError::AlreadyExists(id.clone()).into()),
        Err(e) => Err(failed(&e)),
    }
}

/// The rows of `SELECT state, count() AS count … GROUP BY state`.
fn decode_counts(rows: &[Value]) -> Result<Vec<(EngineState, u64)>, StoreError> {
    rows.iter()
        .map(|row| {
            let state = row
                .get("state")
                .and_then(Value::as_str)
                .and_then(EngineState::from_name);
            let count = row.get("count").and_then(Value::as_u64);
            state
                .zip(count)
                .ok_or_else(|| unexpected("a count of an owner's engines in a state", row))
        })
        .collect()
}
