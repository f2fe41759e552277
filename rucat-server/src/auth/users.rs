//! Static users: a list in the config, with password hashes (argon2 or
//! bcrypt) for HTTP Basic and token digests (SHA-256) for Bearer.
//!
//! Password hashes are slow on purpose (tens of milliseconds with argon2's
//! recommended settings), which would cost every Basic request that much.
//! So a successful check is remembered for a short while ([`Verified`]):
//! the next request with the same user name and password costs a SHA-256
//! and a map lookup. Failures are never remembered, and are rate limited
//! elsewhere ([`super::limit`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rucat_core::Identity;
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use super::config::{PasswordHash, StaticUsersConfig};

/// How long a successful password check is remembered. Short, so that a
/// cached entry outlives no change for long; long enough that a client
/// making a request a second pays for one check a minute.
pub(crate) const VERIFIED_TTL: Duration = Duration::from_secs(60);

/// How many successful checks are remembered at most: more than the users
/// a team has, so every active user stays cached, while the memory stays a
/// few dozen kilobytes.
pub(crate) const VERIFIED_CAPACITY: usize = 1024;

struct User {
    identity: Identity,
    password: Option<PasswordHash>,
    token: Option<[u8; 32]>,
}

/// How a Basic check ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Checked {
    /// Right, and from the cache.
    Cached(Identity),
    /// Right, after a full hash check.
    Verified(Identity),
    Wrong,
}

pub(crate) struct StaticUsers {
    users: Arc<Vec<User>>,
    by_name: HashMap<String, usize>,
    /// A user with a password, whose hash unknown user names are checked
    /// against (and always fail), so that they take as long as known ones.
    decoy: Option<usize>,
    verified: Verified,
}

impl StaticUsers {
    pub(crate) fn new(config: StaticUsersConfig) -> Self {
        let users: Vec<User> = config
            .users
            .into_iter()
            .map(|user| User {
                identity: Identity {
                    name: user.name,
                    role: user.role,
                    groups: user.groups,
                },
                password: user.password_hash,
                token: user.token_sha256.map(|digest| digest.0),
            })
            .collect();
        let by_name = users
            .iter()
            .enumerate()
            .map(|(i, user)| (user.identity.name.clone(), i))
            .collect();
        let decoy = users.iter().position(|user| user.password.is_some());
        Self {
            users: Arc::new(users),
            by_name,
            decoy,
            verified: Verified::new(VERIFIED_CAPACITY, VERIFIED_TTL),
        }
    }

    /// Whether any user has a token.
    pub(crate) fn offers_bearer(&self) -> bool {
        self.users.iter().any(|user| user.token.is_some())
    }

    /// Whether any user has a password.
    pub(crate) fn offers_basic(&self) -> bool {
        self.decoy.is_some()
    }

    /// Checks a user name and password. The hash check runs on a blocking
    /// thread, so that it does not hold up the requests around it.
    pub(crate) async fn basic(&self, user: &[u8], password: &[u8]) -> Checked {
        let key = self.verified.key(user, password);
        let cached = self.verified.get(&key, Instant::now());
        if let Some(found) = cached.and_then(|index| self.users.get(index)) {
            return Checked::Cached(found.identity.clone());
        }
        let known = std::str::from_utf8(user)
            .ok()
            .and_then(|name| self.by_name.get(name).copied())
            .filter(|&i| self.users[i].password.is_some());
        // An unknown name is checked against another user's hash all the
        // same, so that it takes as long, and then refused.
        let Some(checked) = known.or(self.decoy) else {
            return Checked::Wrong;
        };
        let users = Arc::clone(&self.users);
        let password = password.to_vec();
        let matches = tokio::task::spawn_blocking(move || {
            users[checked]
                .password
                .as_ref()
                .is_some_and(|hash| verify(hash, &password))
        })
        .await
        .unwrap_or(false);
        match known {
            Some(index) if matches => {
                self.verified.insert(key, index, Instant::now());
                Checked::Verified(self.users[index].identity.clone())
            }
            _ => Checked::Wrong,
        }
    }

    /// The user whose token this is, if any. Every user's digest is
    /// compared, in constant time, whichever matches.
    pub(crate) fn bearer(&self, token: &str) -> Option<Identity> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = subtle::Choice::from(0);
        let mut index = 0u64;
        for (i, user) in self.users.iter().enumerate() {
            let Some(expected) = &user.token else {
                continue;
            };
            let equal = digest.ct_eq(expected);
            index.conditional_assign(&(i as u64), equal);
            found |= equal;
        }
        let index = usize::try_from(index).ok()?;
        bool::from(found).then(|| self.users[index].identity.clone())
    }
}

/// Whether `password` matches `hash`.
fn verify(hash: &PasswordHash, password: &[u8]) -> bool {
    use argon2::password_hash::PasswordVerifier;
    match hash {
        PasswordHash::Argon2(phc) => {
            argon2::password_hash::PasswordHash::new(phc).is_ok_and(|parsed| {
                argon2::Argon2::default()
                    .verify_password(password, &parsed)
                    .is_ok()
            })
        }
        PasswordHash::Bcrypt(hash) => bcrypt::verify(password, hash).unwrap_or(false),
    }
}

/// A random salt for the keys of a cache of successful checks (of
/// passwords, or JWTs: `what`), drawn at start. Without randomness it stays
/// zero: keys are then plain hashes, which still never hold a credential.
pub(super) fn random_salt(what: &str) -> [u8; 32] {
    let mut salt = [0u8; 32];
    if getrandom::fill(&mut salt).is_err() {
        tracing::warn!("no randomness for the {what} cache's salt");
    }
    salt
}

/// Successful password checks, for [`VERIFIED_TTL`]: keyed by a SHA-256 of
/// the user name and password salted with a random key drawn at start, so
/// that the memory holds nothing a password can be checked against offline
/// (without the key, a key says nothing). The key is a hash, so the lookup
/// tells an attacker nothing about how close a guess was.
struct Verified {
    salt: [u8; 32],
    capacity: usize,
    ttl: Duration,
    entries: Mutex<HashMap<[u8; 32], (usize, Instant)>>,
}

impl Verified {
    fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            salt: random_salt("password"),
            capacity,
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn key(&self, user: &[u8], password: &[u8]) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(self.salt);
        hasher.update((user.len() as u64).to_be_bytes());
        hasher.update(user);
        hasher.update(password);
        hasher.finalize().into()
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], (usize, Instant)>> {
        // A panic while holding the lock leaves the map as valid as before.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn get(&self, key: &[u8; 32], now: Instant) -> Option<usize> {
        let mut entries = self.entries();
        match entries.get(key) {
            Some(&(index, expires)) if now < expires => Some(index),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    fn insert(&self, key: [u8; 32], index: usize, now: Instant) {
        let mut entries = self.entries();
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.retain(|_, (_, expires)| now < *expires);
            if entries.len() >= self.capacity {
                // The one closest to expiring goes first.
                let oldest = entries
                    .iter()
                    .min_by_key(|(_, (_, expires))| *expires)
                    .map(|(key, _)| *key);
                if let Some(oldest) = oldest {
                    entries.remove(&oldest);
                }
            }
        }
        entries.insert(key, (index, now + self.ttl));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries().len()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::auth::config::{StaticUserConfig, TokenDigest};
    use argon2::password_hash::{PasswordHasher, SaltString};
    use rucat_core::Role;

    /// An argon2id hash with small parameters, so tests run fast; the
    /// parameters travel in the string, so checking uses them too.
    pub(crate) fn cheap_argon2(password: &str) -> String {
        let params = argon2::Params::new(256, 1, 1, None).unwrap();
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        argon
            .hash_password(password.as_bytes(), &salt)
            .unwrap()
            .to_string()
    }

    fn user(name: &str, password: Option<String>, token: Option<&str>) -> StaticUserConfig {
        StaticUserConfig {
            name: name.into(),
            password_hash: password.map(|p| p.parse().unwrap()),
            token_sha256: token.map(|t| TokenDigest(Sha256::digest(t.as_bytes()).into())),
            role: Role::User,
            groups: ["data".to_owned()].into(),
        }
    }

    fn users() -> StaticUsers {
        let bcrypt = bcrypt::hash_with_salt("b-pass", 4, *b"0123456789abcdef")
            .unwrap()
            .to_string();
        StaticUsers::new(StaticUsersConfig {
            users: vec![
                user("alice", Some(cheap_argon2("a-pass")), Some("alice-token")),
                user("bob", Some(bcrypt), None),
                user("svc", None, Some("svc-token")),
            ],
        })
    }

    #[tokio::test]
    async fn argon2_and_bcrypt_passwords() {
        let users = users();
        assert!(users.offers_basic() && users.offers_bearer());
        let alice = match users.basic(b"alice", b"a-pass").await {
            Checked::Verified(identity) => identity,
            other => panic!("{other:?}"),
        };
        assert_eq!(alice, Identity::user("alice", ["data"]));
        assert!(matches!(
            users.basic(b"bob", b"b-pass").await,
            Checked::Verified(_)
        ));
        for (user, password) in [
            (&b"alice"[..], &b"b-pass"[..]),
            (b"alice", b"a-pass "),
            (b"alice", b""),
            (b"bob", b"a-pass"),
            // svc has no password; carol does not exist, even with alice's.
            (b"svc", b"a-pass"),
            (b"carol", b"a-pass"),
            (b"", b""),
            (&[0xff, 0xfe], b"a-pass"),
        ] {
            assert_eq!(users.basic(user, password).await, Checked::Wrong);
        }
    }

    #[tokio::test]
    async fn a_right_password_is_checked_once_then_cached() {
        let users = users();
        assert!(matches!(
            users.basic(b"alice", b"a-pass").await,
            Checked::Verified(_)
        ));
        assert!(matches!(
            users.basic(b"alice", b"a-pass").await,
            Checked::Cached(_)
        ));
        // Wrong ones are never cached: each is checked in full.
        assert_eq!(users.basic(b"alice", b"nope").await, Checked::Wrong);
        assert_eq!(users.verified.len(), 1);
        // The user name is part of the key.
        assert_eq!(users.basic(b"bob", b"a-pass").await, Checked::Wrong);
    }

    #[test]
    fn the_cache_forgets_after_its_ttl_and_stays_bounded() {
        let cache = Verified::new(3, Duration::from_secs(60));
        let now = Instant::now();
        let key = cache.key(b"u", b"p");
        assert_ne!(key, cache.key(b"up", b""), "the name's length is hashed");
        cache.insert(key, 7, now);
        assert_eq!(cache.get(&key, now + Duration::from_secs(59)), Some(7));
        assert_eq!(cache.get(&key, now + Duration::from_secs(60)), None);
        assert_eq!(cache.len(), 0, "an expired entry is dropped when seen");
        for i in 0..10u8 {
            cache.insert(
                cache.key(&[i], b"p"),
                0,
                now + Duration::from_secs(i.into()),
            );
        }
        assert_eq!(cache.len(), 3);
        // The newest stay.
        let later = now + Duration::from_secs(10);
        assert_eq!(cache.get(&cache.key(&[9], b"p"), later), Some(0));
        assert_eq!(cache.get(&cache.key(&[0], b"p"), later), None);
    }

    #[test]
    fn tokens_are_found_by_their_digest() {
        let users = users();
        assert_eq!(users.bearer("alice-token").unwrap().name, "alice");
        assert_eq!(users.bearer("svc-token").unwrap().name, "svc");
        for wrong in ["", "alice-toke", "alice-token ", "a-pass", "bob"] {
            assert!(users.bearer(wrong).is_none(), "{wrong}");
        }
    }
}
