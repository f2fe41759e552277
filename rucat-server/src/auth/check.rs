//! Checking an `Authorization` header against static credentials.
//!
//! Comparisons run in constant time with respect to the candidate's content
//! (and the user name and password are always both compared), so response
//! timing does not tell an attacker how much of a guess was right.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use subtle::{Choice, ConstantTimeEq};

use super::config::StaticAuthProviderConfig;
use rucat_core::Secret;

/// The credentials a request must present.
#[derive(Clone)]
pub struct StaticAuth {
    username: Secret,
    password: Secret,
    bearer_token: Option<Secret>,
}

impl fmt::Debug for StaticAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticAuth")
            .field("bearer", &self.bearer_token.is_some())
            .finish_non_exhaustive()
    }
}

impl From<StaticAuthProviderConfig> for StaticAuth {
    fn from(config: StaticAuthProviderConfig) -> Self {
        Self {
            username: config.username,
            password: config.password,
            bearer_token: config.bearer_token,
        }
    }
}

impl StaticAuth {
    /// Whether Bearer tokens are accepted at all (for the challenge header).
    pub fn offers_bearer(&self) -> bool {
        self.bearer_token.is_some()
    }

    /// Whether the value of an `Authorization` header carries the right
    /// credentials, by HTTP Basic or by Bearer token.
    pub fn allows(&self, authorization: &[u8]) -> bool {
        let Ok(text) = std::str::from_utf8(authorization) else {
            return false;
        };
        let Some((scheme, credentials)) = text.trim().split_once(' ') else {
            return false;
        };
        let credentials = credentials.trim();
        if scheme.eq_ignore_ascii_case("basic") {
            self.allows_basic(credentials)
        } else if scheme.eq_ignore_ascii_case("bearer") {
            self.allows_bearer(credentials)
        } else {
            false
        }
    }

    fn allows_basic(&self, encoded: &str) -> bool {
        let Ok(decoded) = STANDARD.decode(encoded) else {
            return false;
        };
        // RFC 7617: the user name cannot contain a colon, the password can.
        let (user, password) = match decoded.iter().position(|&b| b == b':') {
            Some(colon) => (&decoded[..colon], &decoded[colon + 1..]),
            None => (&decoded[..], &[][..]),
        };
        // `&` on `Choice` does not short-circuit: both are always compared.
        let ok = ct_eq(user, self.username.expose()) & ct_eq(password, self.password.expose());
        ok.into()
    }

    fn allows_bearer(&self, token: &str) -> bool {
        match &self.bearer_token {
            Some(expected) => ct_eq(token.as_bytes(), expected.expose()).into(),
            None => false,
        }
    }
}

/// Compares `candidate` with `expected` touching every byte of `expected`
/// whatever the candidate is, so neither an early mismatch nor a length
/// mismatch returns sooner (`subtle`'s slice comparison returns at once on
/// different lengths, which would reveal the secret's length).
fn ct_eq(candidate: &[u8], expected: &[u8]) -> Choice {
    let mut equal = (candidate.len() as u64).ct_eq(&(expected.len() as u64));
    for (i, e) in expected.iter().enumerate() {
        let c = candidate.get(i).copied().unwrap_or(0);
        equal &= c.ct_eq(e);
    }
    equal
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(bearer: Option<&str>) -> StaticAuth {
        StaticAuth {
            username: Secret::new("alice"),
            password: Secret::new("pa:ss"),
            bearer_token: bearer.map(Secret::new),
        }
    }

    fn basic(user_pass: &str) -> String {
        format!("Basic {}", STANDARD.encode(user_pass))
    }

    #[test]
    fn ct_eq_needs_same_length_and_bytes() {
        assert!(bool::from(ct_eq(b"abc", b"abc")));
        assert!(!bool::from(ct_eq(b"abd", b"abc")));
        assert!(!bool::from(ct_eq(b"ab", b"abc")));
        assert!(!bool::from(ct_eq(b"abc\0", b"abc")));
        assert!(!bool::from(ct_eq(b"ab\0", b"ab")));
        assert!(bool::from(ct_eq(b"", b"")));
    }

    #[test]
    fn basic_credentials() {
        let auth = auth(None);
        assert!(auth.allows(basic("alice:pa:ss").as_bytes()));
        assert!(auth.allows(format!("basic  {}", STANDARD.encode("alice:pa:ss")).as_bytes()));
        for wrong in [
            "alice:pa",
            "alice:pa:ss ",
            "bob:pa:ss",
            "alice",
            ":",
            "",
            "alice:",
        ] {
            assert!(!auth.allows(basic(wrong).as_bytes()), "{wrong}");
        }
        assert!(!auth.allows(b"Basic !!!not-base64"));
        assert!(!auth.allows(b"Basic"));
        assert!(!auth.allows(b"Digest abc"));
        assert!(!auth.allows(&[0xff, 0xfe]));
    }

    #[test]
    fn bearer_tokens() {
        assert!(!auth(None).allows(b"Bearer "));
        assert!(!auth(None).allows(b"Bearer anything"));
        let auth = auth(Some("t0ken"));
        assert!(auth.allows(b"Bearer t0ken"));
        assert!(auth.allows(b"bearer t0ken"));
        assert!(!auth.allows(b"Bearer t0ke"));
        assert!(!auth.allows(b"Bearer t0ken2"));
        assert!(!auth.allows(b"Bearer"));
        assert!(auth.offers_bearer());
    }

    #[test]
    fn debug_shows_no_secret() {
        let text = format!("{:?}", auth(Some("t0ken")));
        for secret in ["alice", "pa:ss", "t0ken"] {
            assert!(!text.contains(secret), "{text}");
        }
    }
}
