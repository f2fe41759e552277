//! Failed logins, limited per source: each source (an IPv4 address, or an
//! IPv6 /64, which one host commonly owns whole) has an allowance of
//! `max_failures` that refills at `max_failures` per `per_secs`. A failure
//! takes one; a source with none left is answered 429 without its
//! credentials being checked at all, so a guess made while limited can
//! never succeed and guessing stays at `max_failures` per `per_secs`.
//!
//! The table is bounded: full allowances carry no information and are
//! dropped, and once `max_sources` sources are limited at once, new ones
//! share a single allowance. Many addresses then slow each other down
//! rather than grow the table.
//!
//! Behind a proxy every request comes from the proxy's address, so they
//! all share one allowance; let the proxy limit failures itself, or trust
//! its header ([`super::header`]).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::config::FailedLoginsConfig;

/// Whom an allowance belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Source {
    Ip(IpAddr),
    /// A connection whose peer is not known (a gateway mounted without
    /// `ConnectInfo`): all such share one allowance.
    Unknown,
    /// New sources while the table is full.
    Overflow,
}

impl Source {
    fn of(peer: Option<IpAddr>) -> Self {
        match peer.map(|p| p.to_canonical()) {
            None => Self::Unknown,
            Some(IpAddr::V4(v4)) => Self::Ip(IpAddr::V4(v4)),
            Some(IpAddr::V6(v6)) => {
                let mut octets = v6.octets();
                octets[8..].fill(0);
                Self::Ip(IpAddr::V6(Ipv6Addr::from(octets)))
            }
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Allowance {
    /// Failures still allowed, fractional while refilling.
    left: f64,
    at: Instant,
}

#[derive(Debug)]
pub(crate) struct FailureLimiter {
    max: f64,
    /// Allowance regained per second.
    rate: f64,
    max_sources: usize,
    table: Mutex<HashMap<Source, Allowance>>,
}

impl FailureLimiter {
    pub(crate) fn new(config: FailedLoginsConfig) -> Self {
        let max = f64::from(config.max_failures.max(1));
        Self {
            max,
            rate: max / f64::from(config.per_secs.max(1)),
            max_sources: usize::try_from(config.max_sources.max(1)).unwrap_or(usize::MAX),
            table: Mutex::new(HashMap::new()),
        }
    }

    fn table(&self) -> MutexGuard<'_, HashMap<Source, Allowance>> {
        // Every update leaves the table consistent, even one cut short.
        self.table
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The allowance of `source` at `now`, refilled since it was last seen.
    fn left(&self, allowance: &Allowance, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(allowance.at).as_secs_f64();
        (allowance.left + elapsed * self.rate).min(self.max)
    }

    /// `Err(wait)` if `peer` has no failure left: it may try again after `wait`.
    pub(crate) fn check(&self, peer: Option<IpAddr>, now: Instant) -> Result<(), Duration> {
        let table = self.table();
        let source = Source::of(peer);
        let allowance = table.get(&source).or_else(|| {
            table
                .get(&Source::Overflow)
                .filter(|_| table.len() >= self.max_sources)
        });
        match allowance {
            Some(allowance) => {
                let left = self.left(allowance, now);
                if left >= 1.0 {
                    Ok(())
                } else {
                    Err(Duration::from_secs_f64((1.0 - left) / self.rate))
                }
            }
            None => Ok(()),
        }
    }

    /// Takes one failure from `peer`'s allowance.
    pub(crate) fn failed(&self, peer: Option<IpAddr>, now: Instant) {
        let mut table = self.table();
        let mut source = Source::of(peer);
        if !table.contains_key(&source) && table.len() >= self.max_sources {
            // Full allowances are as good as absent.
            table.retain(|_, allowance| {
                let elapsed = now.saturating_duration_since(allowance.at).as_secs_f64();
                allowance.left + elapsed * self.rate < self.max
            });
            if table.len() >= self.max_sources {
                source = Source::Overflow;
            }
        }
        let left = table
            .get(&source)
            .map_or(self.max, |allowance| self.left(allowance, now));
        table.insert(
            source,
            Allowance {
                left: (left - 1.0).max(0.0),
                at: now,
            },
        );
    }

    #[cfg(test)]
    fn sources(&self) -> usize {
        self.table().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(max_failures: u32, per_secs: u32, max_sources: u32) -> FailureLimiter {
        FailureLimiter::new(FailedLoginsConfig {
            max_failures,
            per_secs,
            max_sources,
        })
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn ten_failures_then_a_wait_then_one_more() {
        let l = limiter(10, 60, 100);
        let t0 = Instant::now();
        let a = ip("192.0.2.1");
        for _ in 0..10 {
            assert_eq!(l.check(a, t0), Ok(()));
            l.failed(a, t0);
        }
        let wait = l.check(a, t0).unwrap_err();
        assert_eq!(
            wait.as_secs_f64().round(),
            6.0,
            "one failure back every 6 s"
        );
        // Other sources are not affected.
        assert_eq!(l.check(ip("192.0.2.2"), t0), Ok(()));
        assert!(l.check(a, t0 + Duration::from_secs(5)).is_err());
        let later = t0 + Duration::from_secs(6);
        assert_eq!(l.check(a, later), Ok(()));
        l.failed(a, later);
        assert!(l.check(a, later).is_err());
        // A minute on, the whole allowance is back.
        let much_later = later + Duration::from_secs(60);
        for _ in 0..10 {
            assert_eq!(l.check(a, much_later), Ok(()));
            l.failed(a, much_later);
        }
        assert!(l.check(a, much_later).is_err());
    }

    #[test]
    fn an_ipv6_host_is_its_64() {
        let l = limiter(1, 60, 100);
        let t0 = Instant::now();
        l.failed(ip("2001:db8:1:2::1"), t0);
        assert!(l.check(ip("2001:db8:1:2:ffff::9"), t0).is_err());
        assert!(l.check(ip("2001:db8:1:3::1"), t0).is_ok());
        l.failed(ip("::ffff:192.0.2.9"), t0);
        assert!(l.check(ip("192.0.2.9"), t0).is_err(), "mapped IPv4 is IPv4");
        l.failed(None, t0);
        assert!(l.check(None, t0).is_err());
    }

    #[test]
    fn the_table_stays_bounded() {
        let l = limiter(2, 60, 3);
        let t0 = Instant::now();
        for i in 0..3 {
            let peer = ip(&format!("192.0.2.{i}"));
            l.failed(peer, t0);
            l.failed(peer, t0);
        }
        assert_eq!(l.sources(), 3);
        // A fourth source shares the overflow allowance.
        for i in 10..20 {
            l.failed(ip(&format!("192.0.2.{i}")), t0);
        }
        assert!(l.sources() <= 4);
        assert!(l.check(ip("192.0.2.99"), t0).is_err(), "overflow exhausted");
        // Once allowances are full again, their sources are forgotten.
        let later = t0 + Duration::from_secs(120);
        l.failed(ip("198.51.100.1"), later);
        assert_eq!(l.sources(), 1);
        assert!(l.check(ip("192.0.2.99"), later).is_ok());
    }
}
