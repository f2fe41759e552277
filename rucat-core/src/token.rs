//! The engine's own secret: the token an engine demands from every client.
//!
//! A Spark Connect server has no authentication unless it is given a
//! pre-shared token, and then it admits only clients that present it. Rucat
//! gives each start of an engine a fresh random token (the monitor draws it
//! when it claims the engine to start it) and shows it to nobody: the
//! resource manager hands it to the engine out of sight (an environment
//! variable locally, a Secret on Kubernetes), and rucat's gateway presents it
//! upstream on the user's behalf. So the only way into an engine is through
//! rucat, which checks the user first.
//!
//! The token is stored with the engine record, because the process that
//! starts the engine (a monitor) and the one that forwards to it (a server's
//! gateway) may be different machines sharing only the store. It never leaves
//! rucat otherwise: `Debug` hides it, [`crate::EngineInfo`] does not carry it,
//! and comparisons run in constant time.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Random bytes in a token: 256 bits, beyond guessing.
const TOKEN_BYTES: usize = 32;

/// A per-start engine secret. Read it with [`EngineToken::expose`] only to
/// hand it to the engine or to send it upstream.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EngineToken(String);

/// The operating system could not provide random bytes.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw a random engine token: {0}")]
pub struct TokenError(String);

impl EngineToken {
    /// A fresh token from the operating system's secure random source, as
    /// hex text (safe in an HTTP header, an environment variable and a
    /// Kubernetes Secret alike).
    pub fn generate() -> Result<Self, TokenError> {
        let mut bytes = [0u8; TOKEN_BYTES];
        getrandom::fill(&mut bytes).map_err(|e| TokenError(e.to_string()))?;
        let mut text = String::with_capacity(TOKEN_BYTES * 2);
        for byte in bytes {
            text.push(char::from(HEX[usize::from(byte >> 4)]));
            text.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
        Ok(Self(text))
    }

    /// The secret itself. Never log or return what this gives.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `presented` is this token, in time independent of where they differ.
    pub fn matches(&self, presented: &str) -> bool {
        use subtle::ConstantTimeEq;
        self.0.as_bytes().ct_eq(presented.as_bytes()).into()
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl fmt::Debug for EngineToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EngineToken(<redacted>)")
    }
}

/// Tokens compare in constant time, so that equality checks elsewhere cannot
/// leak them either.
impl PartialEq for EngineToken {
    fn eq(&self, other: &Self) -> bool {
        self.matches(&other.0)
    }
}

impl Eq for EngineToken {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_fresh_hex_and_hidden_from_debug() {
        let a = EngineToken::generate().unwrap();
        let b = EngineToken::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 64);
        assert!(a.expose().bytes().all(|c| c.is_ascii_hexdigit()));
        let shown = format!("{a:?}");
        assert!(!shown.contains(a.expose()), "{shown}");
        assert!(a.matches(a.expose()));
        assert!(!a.matches(b.expose()));
        assert!(!a.matches(""));
    }

    #[test]
    fn tokens_are_stored_as_their_text() {
        let a = EngineToken::generate().unwrap();
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, format!("\"{}\"", a.expose()));
        assert_eq!(serde_json::from_str::<EngineToken>(&json).unwrap(), a);
    }
}
