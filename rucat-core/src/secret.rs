//! A credential read from the configuration: it can be compared, but not
//! printed, serialized or echoed in a parse error.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// A secret string. `Debug` shows a placeholder; there is no `Display` and
/// no `Serialize`, so it cannot end up in a log line or a response by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret's bytes, for comparison only.
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// The secret as text, where it must be handed on as text: signing in
    /// to a database, or writing a config file back out.
    pub fn expose_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // `any`, not `string`: a deserializer asked for a string rejects other
        // types itself, with a message quoting the value.
        deserializer.deserialize_any(SecretVisitor)
    }
}

/// Accepts strings only. serde's default errors quote the value they got
/// (e.g. "invalid type: integer `1234`"), which for a mistyped password would
/// print the password; these errors only say what was expected.
struct SecretVisitor;

impl SecretVisitor {
    fn refuse<E: de::Error>() -> Result<Secret, E> {
        Err(E::custom("invalid type: expected a string"))
    }
}

impl Visitor<'_> for SecretVisitor {
    type Value = Secret;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Secret, E> {
        Ok(Secret::new(v))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Secret, E> {
        Ok(Secret(v))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Secret, E> {
        Self::refuse()
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Secret, E> {
        Self::refuse()
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Secret, E> {
        Self::refuse()
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Secret, E> {
        Self::refuse()
    }

    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Secret, E> {
        Self::refuse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_strings_are_secrets_and_errors_do_not_quote_values() {
        assert_eq!(
            serde_json::from_str::<Secret>(r#""abc""#).unwrap(),
            Secret::new("abc")
        );
        for text in ["1234567", "-1234567", "12345.67", "true"] {
            let from_str = serde_json::from_str::<Secret>(text)
                .unwrap_err()
                .to_string();
            let value: serde_json::Value = serde_json::from_str(text).unwrap();
            let from_value = serde_json::from_value::<Secret>(value)
                .unwrap_err()
                .to_string();
            for err in [from_str, from_value] {
                assert!(err.contains("expected a string"), "{err}");
                assert!(!err.contains(text.trim_start_matches('-')), "{err}");
            }
        }
        assert_eq!(format!("{:?}", Secret::new("abc")), "<redacted>");
    }
}
