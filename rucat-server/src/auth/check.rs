//! Reading an `Authorization` header, and the seed's single static admin.
//!
//! Comparisons run in constant time with respect to the candidate's content
//! (and the user name and password are always both compared), so response
//! timing does not tell an attacker how much of a guess was right.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rucat_core::{Identity, Secret};
use subtle::{Choice, ConstantTimeEq};

use super::config::StaticAuthProviderConfig;

/// What an `Authorization` header presents.
pub(crate) enum Credential<'a> {
    /// HTTP Basic: the decoded user name and password.
    Basic {
        user: Vec<u8>,
        password: Vec<u8>,
    },
    Bearer(&'a str),
    /// Anything else: another scheme, broken base64, not text.
    Malformed,
}

impl Credential<'_> {
    /// The scheme, for metrics.
    pub(crate) fn scheme(&self) -> &'static str {
        match self {
            Self::Basic { .. } => "basic",
            Self::Bearer(_) => "bearer",
            Self::Malformed => "other",
        }
    }
}

/// Reads the value of an `Authorization` header.
pub(crate) fn credential(authorization: &[u8]) -> Credential<'_> {
    let Ok(text) = std::str::from_utf8(authorization) else {
        return Credential::Malformed;
    };
    let Some((scheme, rest)) = text.trim().split_once(' ') else {
        return Credential::Malformed;
    };
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let Ok(decoded) = STANDARD.decode(rest) else {
            return Credential::Malformed;
        };
        // RFC 7617: the user name cannot contain a colon, the password can.
        let (user, password) = match decoded.iter().position(|&b| b == b':') {
            Some(colon) => (decoded[..colon].to_vec(), decoded[colon + 1..].to_vec()),
            None => (decoded, Vec::new()),
        };
        Credential::Basic { user, password }
    } else if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
        Credential::Bearer(rest)
    } else {
        Credential::Malformed
    }
}

/// The seed's provider: one admin, by user name and password or by token.
#[derive(Clone)]
pub(crate) struct StaticAdmin {
    username: Secret,
    password: Secret,
    bearer_token: Option<Secret>,
    /// The admin's identity; named after the configured user name.
    identity: Identity,
}

impl fmt::Debug for StaticAdmin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticAdmin")
            .field("bearer", &self.bearer_token.is_some())
            .finish_non_exhaustive()
    }
}

impl From<StaticAuthProviderConfig> for StaticAdmin {
    fn from(config: StaticAuthProviderConfig) -> Self {
        let name = config.username.expose_str().to_owned();
        Self {
            username: config.username,
            password: config.password,
            bearer_token: config.bearer_token,
            identity: Identity::admin(name),
        }
    }
}

impl StaticAdmin {
    pub(crate) fn offers_bearer(&self) -> bool {
        self.bearer_token.is_some()
    }

    /// The admin, if `user` and `password` are theirs.
    pub(crate) fn basic(&self, user: &[u8], password: &[u8]) -> Option<Identity> {
        // `&` on `Choice` does not short-circuit: both are always compared.
        let ok = ct_eq(user, self.username.expose()) & ct_eq(password, self.password.expose());
        bool::from(ok).then(|| self.identity.clone())
    }

    /// The admin, if `token` is theirs.
    pub(crate) fn bearer(&self, token: &str) -> Option<Identity> {
        let expected = self.bearer_token.as_ref()?;
        bool::from(ct_eq(token.as_bytes(), expected.expose())).then(|| self.identity.clone())
    }
}

/// Compares `candidate` with `expected` touching every byte of `expected`
/// whatever the candidate is, so neither an early mismatch nor a length
/// mismatch returns sooner (`subtle`'s slice comparison returns at once on
/// different lengths, which would reveal the secret's length).
pub(crate) fn ct_eq(candidate: &[u8], expected: &[u8]) -> Choice {
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

    fn admin(bearer: Option<&str>) -> StaticAdmin {
        StaticAdmin::from(StaticAuthProviderConfig {
            username: Secret::new("alice"),
            password: Secret::new("pa:ss"),
            bearer_token: bearer.map(Secret::new),
        })
    }

    fn basic(user_pass: &str) -> String {
        format!("Basic {}", STANDARD.encode(user_pass))
    }

    /// The admin the header's credential names, if any.
    fn allows(admin: &StaticAdmin, header: &[u8]) -> bool {
        match credential(header) {
            Credential::Basic { user, password } => admin.basic(&user, &password).is_some(),
            Credential::Bearer(token) => admin.bearer(token).is_some(),
            Credential::Malformed => false,
        }
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
        let auth = admin(None);
        assert!(allows(&auth, basic("alice:pa:ss").as_bytes()));
        assert!(allows(
            &auth,
            format!("basic  {}", STANDARD.encode("alice:pa:ss")).as_bytes()
        ));
        for wrong in [
            "alice:pa",
            "alice:pa:ss ",
            "bob:pa:ss",
            "alice",
            ":",
            "",
            "alice:",
        ] {
            assert!(!allows(&auth, basic(wrong).as_bytes()), "{wrong}");
        }
        assert!(!allows(&auth, b"Basic !!!not-base64"));
        assert!(!allows(&auth, b"Basic"));
        assert!(!allows(&auth, b"Digest abc"));
        assert!(!allows(&auth, &[0xff, 0xfe]));
    }

    #[test]
    fn bearer_tokens() {
        assert!(!allows(&admin(None), b"Bearer "));
        assert!(!allows(&admin(None), b"Bearer anything"));
        let auth = admin(Some("t0ken"));
        assert!(allows(&auth, b"Bearer t0ken"));
        assert!(allows(&auth, b"bearer t0ken"));
        assert!(!allows(&auth, b"Bearer t0ke"));
        assert!(!allows(&auth, b"Bearer t0ken2"));
        assert!(!allows(&auth, b"Bearer"));
        assert!(auth.offers_bearer());
        assert_eq!(auth.bearer("t0ken"), Some(Identity::admin("alice")));
    }

    #[test]
    fn debug_shows_no_secret() {
        let text = format!("{:?}", admin(Some("t0ken")));
        for secret in ["alice", "pa:ss", "t0ken"] {
            assert!(!text.contains(secret), "{text}");
        }
    }
}
