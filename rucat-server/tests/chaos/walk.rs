//! One engine's random walk through its lifecycle, and the bookkeeping that
//! proves each start created its resource exactly once.
//!
//! The walk moves between *settled* states — Running, Terminated, gone — that
//! it waits for after its actions. Settled states change only by user action,
//! and only this walk acts on its engine, so at each settle the test knows
//! exactly what must have happened since the last one. It counts the engine's
//! creations in the marker directory there, and requires of the window since
//! the previous settle:
//!
//! - a start (create, or restart from Terminated) that reaches Running:
//!   exactly one creation;
//! - a stop, a delete, or an action the state refuses: none;
//! - an action sent while the engine was still moving — a stop racing a start,
//!   a restart racing a stop — may have caught it either before or after its
//!   resource was made (a stop in `WaitToStart` cancels the start; a restart
//!   in `WaitToTerminate` keeps the resource, one in `Terminated` makes a new
//!   one): at most one.
//!
//! A double start — two creations in one window — or a late creation after
//! the last settle breaks these counts; a resource that outlives its engine's
//! stop breaks the marker check made at every settle.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use rucat_core::EngineId;
use rucat_core::resource::marker::MarkerRecords;

use crate::api::{Action, Answer, Api, Seen};
use crate::rng::Rng;

/// Longest a settle may take: a killed monitor's lease must expire before
/// another takes over, and monitors may die again meanwhile.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(100);
/// Racing actions are sent after up to this long, to catch the engine
/// anywhere in its way (monitors look every second).
const RACE_DELAY_MS: u64 = 1200;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settled {
    Running,
    Terminated,
    Gone,
}

/// How many creations a window may contain.
#[derive(Clone, Copy, Debug)]
enum Allowed {
    Exactly(usize),
    AtMostOne,
}

/// What a finished walk leaves for the final checks.
#[derive(Debug)]
pub struct Walked {
    pub id: EngineId,
    pub last: Settled,
    /// Creations counted at the last settle.
    pub creations: usize,
    /// Starts that had to create.
    pub certain_starts: usize,
    /// Racing windows, and how many of them did create.
    pub races: usize,
    pub races_created: usize,
}

struct Walk {
    api: Api,
    marker_dir: PathBuf,
    rng: Rng,
    id: String,
    walked: Walked,
}

/// Creates an engine and takes it through `steps` random steps.
pub async fn walk(
    api: Api,
    marker_dir: PathBuf,
    name: String,
    seed: u64,
    steps: usize,
) -> anyhow::Result<Walked> {
    let mut rng = Rng::new(seed);
    let id = api.create(&mut rng, &name).await?;
    let mut walk = Walk {
        walked: Walked {
            id: id.parse().context("a rucat engine id")?,
            last: Settled::Gone,
            creations: 0,
            certain_starts: 0,
            races: 0,
            races_created: 0,
        },
        api,
        marker_dir,
        rng,
        id,
    };
    let mut now = walk.after_start().await?;
    for _ in 0..steps {
        now = match now {
            Settled::Running => walk.step_running().await?,
            Settled::Terminated => walk.step_terminated().await?,
            Settled::Gone => break,
        };
    }
    Ok(walk.walked)
}

impl Walk {
    /// After a start was accepted: wait for Running, or race it with a stop
    /// or a delete.
    async fn after_start(&mut self) -> anyhow::Result<Settled> {
        match self.rng.below(5) {
            0 => {
                self.race_delay().await;
                match self.act(Action::Stop).await? {
                    Answer::Done => self.settle(Settled::Terminated, Allowed::AtMostOne).await,
                    Answer::Refused { state } => {
                        // Stop is refused only while the start is claimed.
                        expect_state(&state, &["TriggerStart"])?;
                        self.settle(Settled::Running, Allowed::Exactly(1)).await
                    }
                }
            }
            1 => {
                self.race_delay().await;
                match self.act(Action::Delete).await? {
                    // Allowed only in WaitToStart: nothing was created.
                    Answer::Done => self.settle(Settled::Gone, Allowed::Exactly(0)).await,
                    Answer::Refused { state } => {
                        expect_state(&state, &["TriggerStart", "StartInProgress", "Running"])?;
                        self.settle(Settled::Running, Allowed::Exactly(1)).await
                    }
                }
            }
            _ => self.settle(Settled::Running, Allowed::Exactly(1)).await,
        }
    }

    async fn step_running(&mut self) -> anyhow::Result<Settled> {
        match self.rng.below(6) {
            0 => {
                let action = if self.rng.percent(50) {
                    Action::Delete
                } else {
                    Action::Restart
                };
                self.refused(action, "Running").await?;
                self.settle(Settled::Running, Allowed::Exactly(0)).await
            }
            1..=3 => {
                self.done(Action::Stop).await?;
                self.settle(Settled::Terminated, Allowed::Exactly(0)).await
            }
            _ => {
                self.done(Action::Stop).await?;
                self.race_delay().await;
                match self.act(Action::Restart).await? {
                    Answer::Done => self.settle(Settled::Running, Allowed::AtMostOne).await,
                    Answer::Refused { state } => {
                        expect_state(&state, &["TriggerTermination", "TerminateInProgress"])?;
                        self.settle(Settled::Terminated, Allowed::Exactly(0)).await
                    }
                }
            }
        }
    }

    async fn step_terminated(&mut self) -> anyhow::Result<Settled> {
        match self.rng.below(6) {
            0 => {
                self.done(Action::Delete).await?;
                self.settle(Settled::Gone, Allowed::Exactly(0)).await
            }
            1 => {
                self.refused(Action::Stop, "Terminated").await?;
                self.settle(Settled::Terminated, Allowed::Exactly(0)).await
            }
            _ => {
                self.done(Action::Restart).await?;
                self.after_start().await
            }
        }
    }

    async fn act(&mut self, action: Action) -> anyhow::Result<Answer> {
        self.api.act(&mut self.rng, &self.id, action).await
    }

    /// Sends an action the settled state must accept.
    async fn done(&mut self, action: Action) -> anyhow::Result<()> {
        match self.act(action).await? {
            Answer::Done => Ok(()),
            Answer::Refused { state } => bail!("{action:?} of {} refused in {state}", self.id),
        }
    }

    /// Sends an action the settled state must refuse.
    async fn refused(&mut self, action: Action, in_state: &str) -> anyhow::Result<()> {
        match self.act(action).await? {
            Answer::Refused { state } if state == in_state => Ok(()),
            other => bail!("{action:?} of {} in {in_state} answered {other:?}", self.id),
        }
    }

    async fn race_delay(&mut self) {
        tokio::time::sleep(self.rng.millis(RACE_DELAY_MS)).await;
    }

    /// Waits until the engine is `target`, then checks its resource and the
    /// creations since the last settle.
    async fn settle(&mut self, target: Settled, allowed: Allowed) -> anyhow::Result<Settled> {
        let started = Instant::now();
        loop {
            let seen = self.api.get(&mut self.rng, &self.id).await?;
            let reached = match (&seen, target) {
                (Seen::NotFound, Settled::Gone) => true,
                (Seen::NotFound, _) => bail!("{} vanished on its way to {target:?}", self.id),
                (Seen::State { state, error }, _) if state.starts_with("Error") => {
                    bail!("{} went to {state}: {error:?}", self.id)
                }
                (Seen::State { state, .. }, Settled::Running) => state == "Running",
                (Seen::State { state, .. }, Settled::Terminated) => state == "Terminated",
                (Seen::State { .. }, Settled::Gone) => false,
            };
            if reached {
                break;
            }
            ensure!(
                started.elapsed() < SETTLE_TIMEOUT,
                "{} is {seen:?}, not {target:?}, after {SETTLE_TIMEOUT:?}",
                self.id
            );
            tokio::time::sleep(POLL).await;
        }
        let records = read_records(&self.marker_dir).await?;
        let id = &self.walked.id;
        let has_marker = records.markers.contains(id);
        ensure!(
            has_marker == (target == Settled::Running),
            "{id} is {target:?} but its marker {}",
            if has_marker { "exists" } else { "does not" }
        );
        let creations = records.creations_of(id);
        let new = creations
            .checked_sub(self.walked.creations)
            .context("the creation log shrank")?;
        match allowed {
            Allowed::Exactly(n) => {
                ensure!(new == n, "{id}: {new} creations where {n} were due");
                self.walked.certain_starts += n;
            }
            Allowed::AtMostOne => {
                ensure!(new <= 1, "{id}: {new} creations for one racing start");
                self.walked.races += 1;
                self.walked.races_created += new;
            }
        }
        self.walked.creations = creations;
        self.walked.last = target;
        Ok(target)
    }
}

fn expect_state(state: &str, expected: &[&str]) -> anyhow::Result<()> {
    ensure!(
        expected.contains(&state),
        "refused in {state}, expected one of {expected:?}"
    );
    Ok(())
}

pub async fn read_records(dir: &Path) -> anyhow::Result<MarkerRecords> {
    let dir = dir.to_owned();
    let read = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || MarkerRecords::read(&dir)
    });
    read.await?
        .with_context(|| format!("reading the marker directory {}", dir.display()))
}
