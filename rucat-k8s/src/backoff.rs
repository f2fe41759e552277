//! How long the pod watch waits before listing again after it lost the API
//! server. Short and capped: while the watch is down every engine's status
//! is unknown (see [`crate::cache`]), so a late relist delays every engine,
//! whereas an early one costs a list of rucat's own driver pods. kube's
//! default (client-go's, growing to 30 s plus up to 100% jitter, reset only
//! after two quiet minutes) left the cache stale for over a minute after an
//! outage.

use std::time::Duration;

/// Doubling delays from `first` up to `max`, back to `first` after a success.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// The watch's policy: 250 ms, doubling, at most 2 s.
    pub const WATCH: Backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(2));

    pub const fn new(first: Duration, max: Duration) -> Self {
        Self {
            first,
            max,
            next: first,
        }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next.min(self.max);
        self.next = delay.saturating_mul(2).min(self.max);
        delay
    }

    /// After a success: the next failure waits `first` again.
    pub fn reset(&mut self) {
        self.next = self.first;
    }

    /// The longest delay, which bounds how long recovery waits after the
    /// API server is back.
    pub fn max(&self) -> Duration {
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_reset() {
        let mut backoff = Backoff::WATCH;
        let delays: Vec<u128> = (0..6).map(|_| backoff.next_delay().as_millis()).collect();
        assert_eq!(delays, [250, 500, 1000, 2000, 2000, 2000]);
        backoff.reset();
        assert_eq!(backoff.next_delay(), Duration::from_millis(250));
        assert_eq!(backoff.max(), Duration::from_secs(2));
    }
}
