//! A [`Store`] on SurrealDB, embedded (`mem://`, `surrealkv://PATH`) or on a
//! server (`ws://HOST:PORT`), with the SQLite store's semantics.
//!
//! Every write is a single SurrealQL statement whose `WHERE` carries the
//! fencing revision, so SurrealDB's transaction makes check and write atomic.
//! When a fenced write changes nothing, a follow-up read tells a missing
//! engine from a moved-on one; either answer was true at some instant.
//! Quota-checked writes count the owner's engines and write in one
//! transaction, which conflicts with every other quota-checked transaction
//! for the same owner and is retried when it loses (see `quota`).
//!
//! Monitors subscribed to the store hear of every engine written, by any
//! client of the database, through a LIVE query (see `feed`).

mod codec;
pub mod config;
mod connect;
mod errors;
mod feed;
mod queries;
mod quota;

use std::fmt;
use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use rucat_core::store::{PageQuery, Store, StoreError, Walk};
use rucat_core::{ChangeSink, EngineId, EngineRecord, EngineState, Limits, Timestamp};
use serde_json::Value;
use surrealdb::Surreal;
use surrealdb::engine::any::Any;

use codec::{decode, decode_id, encode};
pub use config::{Password, SurrealConfig, SurrealCredentials};
pub use connect::SurrealOpenError;
use errors::{is_already_exists, unavailable, write_failed};

/// How long one operation may take before it counts as the store being
/// unavailable. A server that went away must not hang the monitor's loop or
/// a request handler; the caller retries later.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(5);

/// Engines recorded in SurrealDB, in the `engine` table of the configured
/// namespace and database.
pub struct SurrealStore {
    db: Surreal<Any>,
    uri: String,
    feed: feed::Feed,
}

impl SurrealStore {
    /// Connects as `config` says, signing in to a remote server and defining
    /// namespace, database and table if they are missing.
    pub async fn open(config: &SurrealConfig) -> Result<Self, SurrealOpenError> {
        Ok(Self {
            db: connect::open(config).await?,
            uri: config.uri.clone(),
            feed: feed::Feed::default(),
        })
    }

    /// The URI this store was opened on.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// Runs one statement with `vars` bound and returns its result rows;
    /// errors of the database itself are returned as they are, so the caller
    /// can classify them, and a timeout is the store being unavailable.
    async fn rows(
        &self,
        statement: &str,
        vars: Value,
    ) -> Result<Result<Vec<Value>, surrealdb::Error>, StoreError> {
        bounded(async {
            let mut response = self.db.query(statement).bind(vars).await?;
            response.take::<Vec<Value>>(0)
        })
        .await
    }

    /// [`Self::rows`] with every database error counted as unavailability.
    async fn read(&self, statement: &str, vars: Value) -> Result<Vec<Value>, StoreError> {
        self.rows(statement, vars)
            .await?
            .map_err(|e| unavailable(&e))
    }

    /// The documents of `query`'s page, each with at least `fields`, in id
    /// order: one indexed walk of at most `limit` documents per state asked
    /// for (see [`queries`]), merged by id.
    async fn page_docs(&self, query: &PageQuery, fields: &str) -> Result<Vec<Value>, StoreError> {
        if query.walks() != [Walk::Every] {
            let (ids, vars) = walked(query);
            let docs = self.read(&queries::walked_docs(&ids, fields), vars).await?;
            return by_id(docs);
        }
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        let after = query.after.as_ref().map_or("", EngineId::as_str);
        let vars = serde_json::json!({ "after": after, "limit": limit });
        let states = query.distinct_states();
        if states.len() == EngineState::ALL.len() {
            let statement = match query.after {
                None => queries::page_first(fields),
                Some(_) => queries::page_after(fields),
            };
            return self.read(&statement, vars).await;
        }
        let pages = self
            .read(&queries::page_in_states(fields, &states), vars)
            .await?;
        let mut docs = Vec::new();
        for page in pages {
            match page {
                Value::Array(page) => docs.extend(page),
                other => return Err(unexpected("a page of engines", &other)),
            }
        }
        let mut docs = by_id(docs)?;
        docs.truncate(query.limit);
        Ok(docs)
    }

    /// SurrealDB's plan (`EXPLAIN`) of each statement this store reads many
    /// documents with, by name, for checking that each walks an index and
    /// stops at its limit (see `tests/surreal_plans.rs`). The text format
    /// is SurrealDB's own and may change between its versions.
    pub async fn read_plans(&self) -> Result<Vec<(String, String)>, StoreError> {
        let statements = [
            (
                "page_first".to_owned(),
                queries::page_first(queries::RECORD_FIELDS),
            ),
            (
                "page_after".to_owned(),
                queries::page_after(queries::RECORD_FIELDS),
            ),
            (
                "page_in_state".to_owned(),
                queries::page_in_state(queries::RECORD_FIELDS, EngineState::Running),
            ),
            (
                "page_ids_in_state".to_owned(),
                queries::page_in_state(queries::ID_FIELDS, EngineState::Running),
            ),
            (
                "page_in_states".to_owned(),
                queries::page_in_states(
                    queries::RECORD_FIELDS,
                    &[EngineState::Running, EngineState::Terminated],
                ),
            ),
            (
                "count_in_state".to_owned(),
                queries::count_in_state(EngineState::Running),
            ),
            ("count_by_state".to_owned(), queries::count_by_state()),
            ("due".to_owned(), queries::DUE.to_owned()),
            (
                "page_owned_in_state".to_owned(),
                queries::walk(queries::WalkSource::Owner, "k0", None, EngineState::Running),
            ),
            (
                "page_shared_in_state".to_owned(),
                queries::walk(queries::WalkSource::Group, "k0", None, EngineState::Running),
            ),
            (
                "page_shared_owned_in_state".to_owned(),
                queries::walk(
                    queries::WalkSource::Group,
                    "k0",
                    Some("o0"),
                    EngineState::Running,
                ),
            ),
            ("usage".to_owned(), queries::USAGE.to_owned()),
        ];
        let vars = serde_json::json!({
            "after": EngineId::generate().as_str(),
            "limit": 10,
            "now": Timestamp::now().as_millis(),
            "k0": "alice",
            "o0": "bob",
            "owner": "alice",
            "id": EngineId::generate().as_str(),
        });
        let mut plans = Vec::new();
        for (name, statement) in statements {
            let explained = self
                .read(&format!("EXPLAIN {statement}"), vars.clone())
                .await?;
            let plan = explained
                .iter()
                .map(|line| match line {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join("\n");
            plans.push((name, plan));
        }
        Ok(plans)
    }

    /// Why a fenced write changed nothing: the engine is gone or has moved on.
    async fn missing_or_conflict(&self, id: &EngineId) -> StoreError {
        match self
            .read(queries::REVISION, serde_json::json!({ "id": id.as_str() }))
            .await
        {
            Ok(revisions) if revisions.is_empty() => StoreError::NotFound(id.clone()),
            Ok(_) => StoreError::Conflict(id.clone()),
            Err(e) => e,
        }
    }
}

/// `docs` in id order.
fn by_id(docs: Vec<Value>) -> Result<Vec<Value>, StoreError> {
    let mut keyed = docs
        .into_iter()
        .map(|doc| Ok((decode_id(&doc)?, doc)))
        .collect::<Result<Vec<_>, StoreError>>()?;
    keyed.sort_by(|(a, _), (b, _)| a.cmp(b));
    Ok(keyed.into_iter().map(|(_, doc)| doc).collect())
}

/// The ids of `query`'s page when it filters by owner or visibility, as a
/// SurrealQL expression (one walk per [`Walk`] and state, see
/// [`queries::walked_ids`]), and the variables it binds: owners and groups
/// are bound, never written into the statement.
fn walked(query: &PageQuery) -> (String, Value) {
    let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
    let after = query.after.as_ref().map_or("", EngineId::as_str);
    let mut vars = serde_json::Map::new();
    vars.insert("after".into(), after.into());
    vars.insert("limit".into(), limit.into());
    let states = query.distinct_states();
    let mut walks = Vec::new();
    for (i, walk) in query.walks().into_iter().enumerate() {
        let key = format!("k{i}");
        let owner_var = format!("o{i}");
        let (source, value, owner) = match walk {
            Walk::Every => (queries::WalkSource::Every, None, None),
            Walk::OwnedBy(owner) => (queries::WalkSource::Owner, Some(owner), None),
            Walk::SharedWith { group, owner } => (queries::WalkSource::Group, Some(group), owner),
        };
        if let Some(value) = value {
            vars.insert(key.clone(), value.into());
        }
        if let Some(owner) = owner {
            vars.insert(owner_var.clone(), owner.into());
        }
        let owner_var = owner.map(|_| owner_var.as_str());
        for state in &states {
            walks.push(queries::walk(source, &key, owner_var, *state));
        }
    }
    (queries::walked_ids(&walks), Value::Object(vars))
}

async fn bounded<T>(operation: impl Future<Output = T>) -> Result<T, StoreError> {
    tokio::time::timeout(OPERATION_TIMEOUT, operation)
        .await
        .map_err(|_| {
            StoreError::Unavailable(format!(
                "SurrealDB: no answer within {}s",
                OPERATION_TIMEOUT.as_secs()
            ))
        })
}

impl fmt::Debug for SurrealStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SurrealStore")
            .field("uri", &self.uri)
            .finish_non_exhaustive()
    }
}

fn decode_all(docs: &[Value]) -> Result<Vec<EngineRecord>, StoreError> {
    docs.iter().map(decode).collect()
}

/// An answer of a shape rucat's own statement cannot produce: a bug, or a
/// SurrealDB that changed what it answers.
fn unexpected(what: &str, got: &Value) -> StoreError {
    StoreError::Unavailable(format!("SurrealDB: expected {what}, got {got}"))
}

/// The answer of [`queries::count_by_state`]: one `[{"count": n}]` per
/// state of [`EngineState::ALL`], in that order (`[]` if none).
fn decode_counts(answers: &[Value]) -> Result<Vec<(EngineState, u64)>, StoreError> {
    if answers.len() != EngineState::ALL.len() {
        return Err(unexpected(
            "a count per state",
            &Value::Array(answers.to_vec()),
        ));
    }
    let mut counts = Vec::new();
    for (state, answer) in EngineState::ALL.into_iter().zip(answers) {
        let count = match answer {
            Value::Array(rows) if rows.is_empty() => 0,
            Value::Array(rows) => rows[0]
                .get("count")
                .and_then(Value::as_u64)
                .ok_or_else(|| unexpected("a count", answer))?,
            other => return Err(unexpected("a count", other)),
        };
        if count > 0 {
            counts.push((state, count));
        }
    }
    Ok(counts)
}

#[async_trait]
impl Store for SurrealStore {
    async fn insert(&self, record: &EngineRecord) -> Result<(), StoreError> {
        let id = record.id();
        let doc = encode(record, 1)?;
        let vars = serde_json::json!({ "id": id.as_str(), "doc": doc });
        match self.rows(queries::INSERT, vars).await? {
            Ok(_) => Ok(()),
            Err(e) if is_already_exists(&e) => Err(StoreError::AlreadyExists(id.clone())),
            Err(e) => Err(unavailable(&e)),
        }
    }

    async fn insert_within(
        &self,
        record: &EngineRecord,
        limits: &Limits,
    ) -> Result<(), StoreError> {
        if limits.is_unlimited() {
            return self.insert(record).await;
        }
        let doc = encode(record, 1)?;
        quota::write_within(&self.db, record, doc, limits, quota::Checked::Insert)
            .await
            .map(drop)
    }

    async fn compare_and_swap_within(
        &self,
        expected_revision: u64,
        next: &EngineRecord,
        limits: &Limits,
    ) -> Result<u64, StoreError> {
        let new = expected_revision
            .checked_add(1)
            .filter(|&n| i64::try_from(n).is_ok());
        let (Some(new), false) = (new, limits.is_unlimited()) else {
            return self.compare_and_swap(expected_revision, next).await;
        };
        let doc = encode(next, new)?;
        let swap = quota::Checked::Swap {
            expected: expected_revision,
        };
        quota::write_within(&self.db, next, doc, limits, swap).await
    }

    async fn get(&self, id: &EngineId) -> Result<Option<EngineRecord>, StoreError> {
        let docs = self
            .read(queries::GET, serde_json::json!({ "id": id.as_str() }))
            .await?;
        docs.first().map(decode).transpose()
    }

    async fn list(&self) -> Result<Vec<EngineRecord>, StoreError> {
        decode_all(&self.read(queries::LIST, serde_json::json!({})).await?)
    }

    async fn list_ids(&self) -> Result<Vec<EngineId>, StoreError> {
        let docs = self.read(queries::LIST_IDS, serde_json::json!({})).await?;
        docs.iter().map(decode_id).collect()
    }

    async fn page(&self, query: &PageQuery) -> Result<Vec<EngineRecord>, StoreError> {
        decode_all(&self.page_docs(query, queries::RECORD_FIELDS).await?)
    }

    async fn page_ids(&self, query: &PageQuery) -> Result<Vec<EngineId>, StoreError> {
        if query.walks() != [Walk::Every] {
            let (ids, vars) = walked(query);
            let ids = self.read(&format!("RETURN {ids}"), vars).await?;
            return ids
                .iter()
                .map(|id| match id {
                    Value::String(id) => id.parse().map_err(|e| StoreError::Corrupt {
                        id: id.clone(),
                        reason: format!("the id is malformed: {e}"),
                    }),
                    other => Err(unexpected("an engine id", other)),
                })
                .collect();
        }
        let docs = self.page_docs(query, queries::ID_FIELDS).await?;
        docs.iter().map(decode_id).collect()
    }

    async fn count_by_state(&self) -> Result<Vec<(EngineState, u64)>, StoreError> {
        let answers = self
            .read(&queries::count_by_state(), serde_json::json!({}))
            .await?;
        decode_counts(&answers)
    }

    async fn compare_and_swap(
        &self,
        expected_revision: u64,
        next: &EngineRecord,
    ) -> Result<u64, StoreError> {
        let id = next.id();
        // SurrealDB integers are i64: a revision beyond that cannot be stored
        // and so cannot match anything.
        let Some(new) = expected_revision
            .checked_add(1)
            .filter(|&n| i64::try_from(n).is_ok())
        else {
            return Err(self.missing_or_conflict(id).await);
        };
        let doc = encode(next, new)?;
        let vars = serde_json::json!({
            "id": id.as_str(),
            "doc": doc,
            "expected": expected_revision,
        });
        match self.rows(queries::COMPARE_AND_SWAP, vars).await? {
            Ok(revisions) if revisions.is_empty() => Err(self.missing_or_conflict(id).await),
            Ok(_) => Ok(new),
            Err(e) => Err(write_failed(id, &e)),
        }
    }

    async fn delete(&self, id: &EngineId, expected_revision: u64) -> Result<(), StoreError> {
        if i64::try_from(expected_revision).is_err() {
            return Err(self.missing_or_conflict(id).await);
        }
        let vars = serde_json::json!({ "id": id.as_str(), "expected": expected_revision });
        match self.rows(queries::DELETE, vars).await? {
            Ok(removed) if removed.is_empty() => Err(self.missing_or_conflict(id).await),
            Ok(_) => Ok(()),
            Err(e) => Err(write_failed(id, &e)),
        }
    }

    async fn due(&self, now: Timestamp, limit: usize) -> Result<Vec<EngineRecord>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let vars = serde_json::json!({ "now": now.as_millis(), "limit": limit });
        decode_all(&self.read(queries::DUE, vars).await?)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        bounded(async { self.db.health().await })
            .await?
            .map_err(|e| unavailable(&e))
    }

    async fn subscribe(&self, sink: ChangeSink) {
        self.feed.subscribe(&self.db, sink).await;
    }
}
