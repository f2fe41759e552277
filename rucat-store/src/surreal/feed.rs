//! The SurrealDB store's change feed: one `LIVE SELECT` on the engine table
//! per store, started by the first monitor that subscribes. SurrealDB pushes
//! every engine created or updated, by any client of the database, so
//! monitors in every process hear of new work within milliseconds.
//!
//! A live query lives on one connection. When the connection drops, the
//! client ends the query's stream with an error; the feed then subscribes
//! again, with backoff, once the server answers. What was written meanwhile
//! is found by the monitors' scheduled reads, which never stop.
//!
//! Subscribing waits (a bounded time) until the live query is registered, so
//! a monitor that subscribes before its first read misses nothing.

use std::future::IntoFuture;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use rucat_core::{ChangeSink, ChangeSinks};
use serde_json::Value;
use surrealdb::engine::any::Any;
use surrealdb::types::Action;
use surrealdb::{Notification, Surreal};
use tokio::sync::watch;
use tracing::{debug, warn};

use super::codec::decode;
use super::{OPERATION_TIMEOUT, bounded, queries};

/// How often a quiet feed checks whether any monitor still listens.
const CHECK: Duration = Duration::from_secs(5);
/// The longest wait before subscribing again after losing the live query.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

pub(super) struct Feed {
    sinks: ChangeSinks,
    /// Whether the task following the live query runs.
    running: Arc<AtomicBool>,
    /// Whether the live query is registered now.
    live: Arc<watch::Sender<bool>>,
    /// Dropped with the store, which ends the task: it must not keep the
    /// connection (and an embedded SurrealKV directory's lock) alive.
    open: watch::Sender<()>,
}

impl Default for Feed {
    fn default() -> Self {
        Self {
            sinks: ChangeSinks::default(),
            running: Arc::default(),
            live: Arc::new(watch::Sender::new(false)),
            open: watch::Sender::new(()),
        }
    }
}

impl Feed {
    pub async fn subscribe(&self, db: &Surreal<Any>, sink: ChangeSink) {
        self.sinks.add(sink);
        if !self.running.swap(true, Ordering::SeqCst) {
            let follow = follow(
                db.clone(),
                self.sinks.clone(),
                Arc::clone(&self.running),
                Arc::clone(&self.live),
            );
            let mut open = self.open.subscribe();
            tokio::spawn(async move {
                tokio::select! {
                    () = follow => {}
                    // Nothing is ever sent: this returns when the store is dropped.
                    _ = open.changed() => debug!("SurrealDB change feed stopped with its store"),
                }
            });
        }
        let mut live = self.live.subscribe();
        let listening = tokio::time::timeout(OPERATION_TIMEOUT, live.wait_for(|live| *live)).await;
        if !matches!(listening, Ok(Ok(_))) {
            warn!(
                "SurrealDB change feed not listening yet; until it is, monitors find \
                 new work at their check interval"
            );
        }
    }
}

/// Follows the live query, subscribing again whenever it is lost, until no
/// monitor listens any more.
async fn follow(
    db: Surreal<Any>,
    sinks: ChangeSinks,
    running: Arc<AtomicBool>,
    live: Arc<watch::Sender<bool>>,
) {
    let mut failures = 0u32;
    loop {
        if sinks.is_empty() {
            running.store(false, Ordering::SeqCst);
            // A monitor that subscribed just now saw the feed still running
            // and started nothing: carry on for it.
            if sinks.is_empty() || running.swap(true, Ordering::SeqCst) {
                debug!("SurrealDB change feed stopped: no monitor listens");
                return;
            }
        }
        let listened = listen(&db, &sinks, &live, &mut failures).await;
        live.send_replace(false);
        match listened {
            Ok(()) => {}
            Err(reason) => {
                failures = failures.saturating_add(1);
                let pause = backoff(failures);
                warn!(%reason, retry_in = ?pause, "SurrealDB change feed interrupted");
                tokio::time::sleep(pause).await;
            }
        }
    }
}

fn backoff(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(6);
    (Duration::from_millis(100) * 2u32.pow(exponent)).min(MAX_BACKOFF)
}

/// Runs one live query, telling every monitor of each engine written, until
/// the query is lost (an error naming why) or no monitor listens (`Ok`).
async fn listen(
    db: &Surreal<Any>,
    sinks: &ChangeSinks,
    live: &watch::Sender<bool>,
    failures: &mut u32,
) -> Result<(), String> {
    let mut response = bounded(db.query(queries::LIVE).into_future())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let mut stream = response
        .stream::<Notification<Value>>(0)
        .map_err(|e| e.to_string())?;
    *failures = 0;
    live.send_replace(true);
    debug!("SurrealDB change feed listening");
    let mut check = tokio::time::interval(CHECK);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            item = stream.next() => match item {
                Some(Ok(notification)) if notification.action == Action::Killed => {
                    return Err("the live query was killed".to_owned());
                }
                Some(Ok(notification)) => tell(&notification, sinks),
                Some(Err(e)) => return Err(e.to_string()),
                None => return Err("the live query ended".to_owned()),
            },
            _ = check.tick() => {
                if sinks.is_empty() {
                    return Ok(());
                }
            }
        }
    }
}

fn tell(notification: &Notification<Value>, sinks: &ChangeSinks) {
    match notification.action {
        Action::Create | Action::Update => match decode(&notification.data) {
            Ok(record) => sinks.recorded(&record, record.revision),
            // `due` reports it to whoever reads it; the feed only hurries.
            Err(err) => warn!(%err, "SurrealDB change feed: unreadable engine"),
        },
        // Deletions make nothing due.
        _ => {}
    }
}
