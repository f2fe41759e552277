//! Benchmark a: how long rucat takes from a create to Running when the
//! resource manager answers instantly — the control plane's own overhead.
//!
//! Engines are created one at a time and each is timed until its Running
//! record is written; earlier engines stay Running, so the monitor's periodic
//! checks of them load the store as they would in production.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::control_plane::{ControlPlane, StoreKind};

/// The p50 and p99 of a series of timings, in milliseconds.
#[derive(Debug, Serialize, Deserialize)]
pub struct Latencies {
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl Latencies {
    pub fn of(mut times: Vec<Duration>) -> Self {
        times.sort();
        Self {
            p50_ms: millis(percentile(&times, 50.0)),
            p99_ms: millis(percentile(&times, 99.0)),
        }
    }
}

pub async fn run(kind: StoreKind, engines: usize) -> anyhow::Result<Latencies> {
    let mut plane = ControlPlane::start(kind).await?;
    let mut times = Vec::with_capacity(engines);
    for _ in 0..engines {
        times.push(plane.time_one_start().await?);
    }
    plane.stop().await?;
    Ok(Latencies::of(times))
}

/// The nearest-rank percentile of sorted `times`.
fn percentile(times: &[Duration], p: f64) -> Duration {
    if times.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * times.len() as f64).ceil() as usize;
    times[rank.clamp(1, times.len()) - 1]
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let times: Vec<_> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&times, 50.0), Duration::from_millis(50));
        assert_eq!(percentile(&times, 99.0), Duration::from_millis(99));
        assert_eq!(percentile(&times[..1], 99.0), Duration::from_millis(1));
        assert_eq!(percentile(&[], 50.0), Duration::ZERO);
    }
}
