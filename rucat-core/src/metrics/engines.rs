//! How many engines are in each state, read from the store at scrape time.
//!
//! Counting at scrape time, rather than keeping a tally as transitions
//! happen, is what stays right when several servers and monitors share one
//! store: each process's tally would see only its own transitions. The price
//! is one grouped count per scrape ([`Store::count_by_state`], which the
//! stores answer from an index without reading any engine), and that every
//! process reports the same totals (aggregate them with `max`, not `sum`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::state::EngineState;
use crate::store::{Store, StoreError};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Debug)]
pub struct EngineStates {
    engines: Family<StateLabels, Gauge>,
    store_up: Gauge,
}

impl EngineStates {
    /// Creates the gauges and registers them into `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            engines: Family::default(),
            store_up: Gauge::default(),
        };
        registry.register(
            "rucat_engines",
            "Engines in each state, read from the store at scrape time",
            metrics.engines.clone(),
        );
        registry.register(
            "rucat_store_up",
            "1 if the last scrape could read the engines from the store, else 0",
            metrics.store_up.clone(),
        );
        metrics
    }

    /// Counts the engines in each state and sets the gauges, every state
    /// included (a state without engines shows 0 rather than vanishing). If
    /// the store cannot be read the per-state gauges are dropped, so that no
    /// stale count is reported, and `rucat_store_up` says why.
    pub async fn refresh(&self, store: &dyn Store) -> Result<(), StoreError> {
        match store.count_by_state().await {
            Ok(counted) => {
                for state in EngineState::ALL {
                    let count = counted
                        .iter()
                        .filter(|(s, _)| *s == state)
                        .map(|(_, n)| *n)
                        .sum::<u64>();
                    self.engines
                        .get_or_create(&StateLabels {
                            state: state.name(),
                        })
                        .set(i64::try_from(count).unwrap_or(i64::MAX));
                }
                self.store_up.set(1);
                Ok(())
            }
            Err(err) => {
                self.engines.clear();
                self.store_up.set(0);
                Err(err)
            }
        }
    }
}
