//! Server-assigned values: UIDs, timestamps and `generateName` suffixes.
//!
//! Randomness comes from std's per-process random hasher keys, which is
//! plenty for unique-looking test identifiers and avoids a `rand`
//! dependency.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};

use k8s_openapi::jiff::{SignedDuration, Timestamp};

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn random_u64() -> u64 {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    RandomState::new().hash_one(n)
}

/// A version-4 style UUID, as the real server puts in `metadata.uid`.
pub(crate) fn uid() -> String {
    let (a, b) = (random_u64(), random_u64());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0x0fff,
        ((b >> 48) & 0x3fff) | 0x8000,
        b & 0xffff_ffff_ffff
    )
}

/// Five characters from the alphabet the real server uses for
/// `generateName` suffixes (no vowels, no look-alike digits).
pub(crate) fn name_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut r = random_u64();
    (0..5)
        .map(|_| {
            let c = ALPHABET[(r % ALPHABET.len() as u64) as usize];
            r /= ALPHABET.len() as u64;
            char::from(c)
        })
        .collect()
}

/// A container ID as a container runtime would report it.
pub(crate) fn container_id() -> String {
    format!(
        "containerd://{:016x}{:016x}{:016x}{:016x}",
        random_u64(),
        random_u64(),
        random_u64(),
        random_u64()
    )
}

/// Now, in the RFC 3339 second-precision form of `metav1.Time`.
pub(crate) fn now() -> String {
    format_time(Timestamp::now())
}

/// Now plus `seconds`, for graceful deletion deadlines.
pub(crate) fn now_plus(seconds: i64) -> String {
    let now = Timestamp::now();
    format_time(
        now.checked_add(SignedDuration::from_secs(seconds))
            .unwrap_or(now),
    )
}

fn format_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_are_unique_and_uuid_shaped() {
        let (a, b) = (uid(), uid());
        assert_ne!(a, b);
        let lens: Vec<usize> = a.split('-').map(str::len).collect();
        assert_eq!(lens, [8, 4, 4, 4, 12]);
    }

    #[test]
    fn timestamps_are_second_precision_utc() {
        let t = now();
        assert_eq!(t.len(), 20, "{t}");
        assert!(t.ends_with('Z'));
        assert!(t.parse::<Timestamp>().is_ok());
    }

    #[test]
    fn suffixes_have_five_characters() {
        assert_eq!(name_suffix().len(), 5);
    }
}
