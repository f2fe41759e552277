//! Recently verified JWTs ([`Verified`]), so that a client sending the
//! same token on every request pays for one signature check a minute
//! rather than one per request (an RSA check costs about as much as the
//! rest of a `GET /engine/{id}`).
//!
//! What makes this safe:
//! - Only successes are remembered; a refused token is checked in full
//!   every time (and failures are rate limited elsewhere).
//! - An entry is found by a salted SHA-256 of the token, never the token:
//!   the memory holds nothing that could be sent as a credential.
//! - A hit still checks `exp` and `nbf` against the clock, exactly as the
//!   full check does (with the same leeway), so an expired token is refused
//!   even while it is remembered.
//! - An entry lives at most [`VERIFIED_TTL`] after its check, and all are
//!   forgotten whenever the issuer's key set changes, so a key the issuer
//!   stops publishing stops working with the next fetch, as without the
//!   cache.
//! - At most [`VERIFIED_CAPACITY`] entries are kept.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rucat_core::Identity;
use sha2::{Digest, Sha256};

/// How long a successful check is remembered at most (and never past the
/// token's own expiry): short, so that nothing outlives a change for long;
/// long enough that a client making a request a second pays for one
/// signature check a minute.
pub(super) const VERIFIED_TTL: Duration = Duration::from_secs(60);

/// How many verified tokens are remembered at most: well above the tokens
/// active in a minute in a team's cluster, while the memory stays well
/// under a megabyte.
pub(super) const VERIFIED_CAPACITY: usize = 4096;

/// A token that passed the full check.
#[derive(Clone, Debug)]
pub(super) struct Entry {
    pub(super) identity: Identity,
    /// The token's `exp`, in seconds since the epoch.
    pub(super) exp: u64,
    /// The token's `nbf`, if it has one.
    pub(super) nbf: Option<u64>,
}

struct Stored {
    entry: Entry,
    /// When the entry is forgotten: [`VERIFIED_TTL`] after the check.
    until: Instant,
}

struct Entries {
    /// The key set generation the entries were checked with.
    generation: u64,
    map: HashMap<[u8; 32], Stored>,
}

/// Successful token checks; see the module's documentation.
pub(super) struct Verified {
    salt: [u8; 32],
    capacity: usize,
    ttl: Duration,
    entries: Mutex<Entries>,
}

impl Verified {
    pub(super) fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            salt: crate::auth::users::random_salt("JWT"),
            capacity,
            ttl,
            entries: Mutex::new(Entries {
                generation: 0,
                map: HashMap::new(),
            }),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        // A panic while holding the lock leaves the map as valid as before.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// What `token` is found by.
    pub(super) fn key(&self, token: &str) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(self.salt);
        hasher.update(token.as_bytes());
        hasher.finalize().into()
    }

    /// The identity of a token verified less than [`VERIFIED_TTL`] before
    /// `now` that is still valid at `unix_now` (seconds since the epoch):
    /// refused once `exp < unix_now - leeway` or while
    /// `nbf > unix_now + leeway`, as the full check does.
    pub(super) fn get(
        &self,
        key: &[u8; 32],
        now: Instant,
        unix_now: u64,
        leeway: u64,
    ) -> Option<Identity> {
        let mut entries = self.entries();
        let stored = entries.map.get(key)?;
        if now >= stored.until || stored.entry.exp < unix_now.saturating_sub(leeway) {
            entries.map.remove(key);
            return None;
        }
        if stored
            .entry
            .nbf
            .is_some_and(|nbf| nbf > unix_now.saturating_add(leeway))
        {
            return None;
        }
        Some(stored.entry.identity.clone())
    }

    /// Remembers a token checked at `now` with the keys of `generation`;
    /// ignored if the keys have changed since.
    pub(super) fn insert(&self, key: [u8; 32], entry: Entry, generation: u64, now: Instant) {
        let mut entries = self.entries();
        if entries.generation != generation {
            return;
        }
        let map = &mut entries.map;
        if map.len() >= self.capacity && !map.contains_key(&key) {
            map.retain(|_, stored| now < stored.until);
            if map.len() >= self.capacity {
                // The one closest to being forgotten goes first.
                let oldest = map
                    .iter()
                    .min_by_key(|(_, stored)| stored.until)
                    .map(|(key, _)| *key);
                if let Some(oldest) = oldest {
                    map.remove(&oldest);
                }
            }
        }
        map.insert(
            key,
            Stored {
                entry,
                until: now + self.ttl,
            },
        );
    }

    /// Forgets every entry: the key set is now `generation`.
    pub(super) fn clear(&self, generation: u64) {
        let mut entries = self.entries();
        entries.generation = generation;
        entries.map.clear();
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries().map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(exp: u64, nbf: Option<u64>) -> Entry {
        Entry {
            identity: Identity::user("alice", ["data"]),
            exp,
            nbf,
        }
    }

    #[test]
    fn a_cached_token_is_refused_once_expired() {
        let cache = Verified::new(8, Duration::from_secs(60));
        let now = Instant::now();
        let key = cache.key("token");
        assert_ne!(key, cache.key("token "));
        cache.insert(key, entry(1000, None), 0, now);
        // Valid up to exp + leeway, as jsonwebtoken's `exp < now - leeway`.
        assert!(cache.get(&key, now, 999, 0).is_some());
        assert!(cache.get(&key, now, 1000, 0).is_some());
        assert!(cache.get(&key, now, 1030, 30).is_some());
        assert!(cache.get(&key, now, 1031, 30).is_none());
        assert_eq!(cache.len(), 0, "an expired token is dropped when seen");
        cache.insert(key, entry(1000, None), 0, now);
        assert!(cache.get(&key, now, 1001, 0).is_none());
        // And never past the TTL, whatever exp says.
        cache.insert(key, entry(u64::MAX, None), 0, now);
        assert!(
            cache
                .get(&key, now + Duration::from_secs(59), 0, 0)
                .is_some()
        );
        assert!(
            cache
                .get(&key, now + Duration::from_secs(60), 0, 0)
                .is_none()
        );
        // nbf as the full check: refused while nbf > now + leeway.
        cache.insert(key, entry(2000, Some(1000)), 0, now);
        assert!(cache.get(&key, now, 969, 30).is_none());
        assert!(cache.get(&key, now, 970, 30).is_some());
    }

    #[test]
    fn the_cache_is_cleared_when_the_keys_change() {
        let cache = Verified::new(8, Duration::from_secs(60));
        let now = Instant::now();
        let key = cache.key("token");
        cache.insert(key, entry(u64::MAX, None), 0, now);
        assert!(cache.get(&key, now, 0, 0).is_some());
        cache.clear(1);
        assert!(cache.get(&key, now, 0, 0).is_none());
        // A check that began with the old keys is not remembered.
        cache.insert(key, entry(u64::MAX, None), 0, now);
        assert_eq!(cache.len(), 0);
        cache.insert(key, entry(u64::MAX, None), 1, now);
        assert!(cache.get(&key, now, 0, 0).is_some());
    }

    #[test]
    fn the_cache_stays_bounded() {
        let cache = Verified::new(3, Duration::from_secs(60));
        let now = Instant::now();
        for i in 0..10u64 {
            cache.insert(
                cache.key(&i.to_string()),
                entry(u64::MAX, None),
                0,
                now + Duration::from_secs(i),
            );
        }
        assert_eq!(cache.len(), 3);
        // The newest stay.
        let later = now + Duration::from_secs(10);
        assert!(cache.get(&cache.key("9"), later, 0, 0).is_some());
        assert!(cache.get(&cache.key("0"), later, 0, 0).is_none());
    }
}
