//! Validation of a user's request for a new engine.
//!
//! Everything a user sends is checked here, before anything is recorded, so a
//! stored engine is always one rucat can try to run and a bad request gets an
//! error that names the field and the reason.

use std::collections::BTreeSet;

use serde::Deserialize;

use crate::engine::{Configs, EngineId, EngineSpec, EngineType};
use crate::kind::{EngineKind, Kinds};

/// The body of `POST /engine`, as the user sent it. The schema attributes
/// repeat [`CreateEngineRequest::validate`]'s rules for API documentation;
/// `validate` is what enforces them.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateEngineRequest {
    /// 1 to 63 characters of `a-z`, `0-9` and `-`.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = "^[a-z0-9-]{1,63}$", min_length = 1, max_length = 63)
    )]
    pub name: String,
    #[cfg_attr(feature = "openapi", schema(value_type = EngineType))]
    pub engine_type: String,
    /// A version of the engine kind: for Spark `3.5.x` or `4.x.y`, for
    /// Sail `0.7.0` or later.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^[0-9]{1,4}\.[0-9]{1,4}\.[0-9]{1,4}$", example = "4.3.0")
    )]
    pub version: String,
    /// The engine's configuration (at most 256 entries): Spark properties
    /// for Spark, Sail's keys (e.g. `execution.batch_size`) for Sail. Keys
    /// have 1 to 256 characters without whitespace, control characters or
    /// `=`, and may not be one rucat sets itself (for Spark `spark.master`,
    /// ports, bind addresses, directories; for Sail `mode`); values are at
    /// most 8192 characters without control characters.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::configs_schema))]
    pub configs: Configs,
    /// Groups whose members may see and act on the engine besides its
    /// owner (at most 32; each 1 to 64 characters without whitespace or
    /// control characters). The owner may change them later.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::groups_schema))]
    pub share_with_groups: Vec<String>,
    /// Seconds without any client activity through rucat's gateway after
    /// which the engine is stopped; 0 means never. Default and maximum are
    /// the server's (`idle` in its config); Spark 3.5 engines, which clients
    /// reach directly, are never stopped for idleness.
    #[serde(default, deserialize_with = "whole_number")]
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 31_536_000))]
    pub idle_timeout_secs: Option<u64>,
    /// Whether a client's connection through the gateway restarts the
    /// engine after a user stopped it too (one stopped for idleness always
    /// resumes).
    #[serde(default)]
    pub auto_resume: bool,
}

/// An optional whole number that JSON may write as `600` or `600.0` (both
/// are integers to JSON Schema, and to many clients' encoders); `null` is
/// none. Negative, fractional or huge numbers are refused.
pub fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    struct Visitor;
    impl<'de> serde::de::Visitor<'de> for Visitor {
        type Value = Option<u64>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a whole number of seconds, at least 0")
        }
        fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Self::Value, E> {
            Ok(Some(n))
        }
        fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Self::Value, E> {
            u64::try_from(n)
                .map(Some)
                .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(n), &self))
        }
        fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<Self::Value, E> {
            // Exactly representable whole numbers only (below 2^53).
            if n.fract() == 0.0 && (0.0..9_007_199_254_740_992.0).contains(&n) {
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                Ok(Some(n as u64))
            } else {
                Err(E::invalid_value(serde::de::Unexpected::Float(n), &self))
            }
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D2: serde::Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_any(Visitor)
        }
    }
    d.deserialize_option(Visitor)
}

/// A request field that is not acceptable, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ValidationError {
    /// The offending field, e.g. `name` or `configs.spark.master`.
    pub field: String,
    pub reason: String,
}

impl ValidationError {
    pub(crate) fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

pub const MAX_NAME_LEN: usize = 63;
pub(crate) const MAX_CONFIG_KEY_LEN: usize = 256;
pub(crate) const MAX_CONFIG_VALUE_LEN: usize = 8192;
pub(crate) const MAX_CONFIGS: usize = 256;
pub const MAX_GROUP_LEN: usize = 64;
pub const MAX_SHARED_GROUPS: usize = 32;

impl CreateEngineRequest {
    /// A request for a Spark engine with no configs, as a program would make it.
    pub fn spark(name: impl Into<String>, version: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            engine_type: EngineType::Spark.name().to_owned(),
            version: version.into(),
            configs: Configs::new(),
            share_with_groups: Vec::new(),
            idle_timeout_secs: None,
            auto_resume: false,
        }
    }

    /// The engine stops after `secs` idle (0: never).
    pub fn idle_after(mut self, secs: u64) -> Self {
        self.idle_timeout_secs = Some(secs);
        self
    }

    pub fn with_config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.configs.insert(key.into(), value.into());
        self
    }

    pub fn shared_with(mut self, group: impl Into<String>) -> Self {
        self.share_with_groups.push(group.into());
        self
    }

    /// Checks every field and, if all are fine, gives the spec of a new engine
    /// with a fresh id. `share_with_groups` is checked too, but is no part
    /// of a spec (it says who may reach the engine, not how to run it):
    /// [`Self::validate_with_groups`] gives it as well.
    pub fn validate(self) -> Result<EngineSpec, ValidationError> {
        self.validate_with_groups().map(|(spec, _)| spec)
    }

    /// [`Self::validate`], and the groups the engine is to be shared with.
    pub fn validate_with_groups(self) -> Result<(EngineSpec, BTreeSet<String>), ValidationError> {
        validate_name(&self.name)?;
        let kinds = Kinds::installed();
        let kind = kinds.by_name(&self.engine_type).ok_or_else(|| {
            ValidationError::new(
                "engine_type",
                format!(
                    "unknown engine type {:?}; known: {}",
                    self.engine_type,
                    kinds.names().join(", ")
                ),
            )
        })?;
        kind.check_version(&self.version)
            .map_err(|reason| ValidationError::new("version", reason))?;
        validate_configs(kind.as_ref(), &self.configs)?;
        let engine_type = EngineType::new(kind.name());
        let groups = validate_groups(&self.share_with_groups)?;
        let spec = EngineSpec {
            id: EngineId::generate(),
            name: self.name,
            engine_type,
            version: self.version,
            configs: self.configs,
            token: None,
        };
        Ok((spec, groups))
    }
}

/// Checks the groups an engine is to be shared with (`share_with_groups`
/// of a create request, or a later change of them) and gives them as a set:
/// at most [`MAX_SHARED_GROUPS`], each 1 to [`MAX_GROUP_LEN`] characters
/// without whitespace or control characters (they are matched against the
/// groups identity providers report, and appear in logs). The error names
/// the offending entry, e.g. `share_with_groups[2]`.
pub fn validate_groups<S: AsRef<str>>(groups: &[S]) -> Result<BTreeSet<String>, ValidationError> {
    if groups.len() > MAX_SHARED_GROUPS {
        return Err(ValidationError::new(
            "share_with_groups",
            format!("at most {MAX_SHARED_GROUPS} groups, got {}", groups.len()),
        ));
    }
    for (i, group) in groups.iter().enumerate() {
        let group = group.as_ref();
        let chars = group.chars().count();
        let reason = if chars == 0 || chars > MAX_GROUP_LEN {
            format!("a group name is 1 to {MAX_GROUP_LEN} characters, got {chars}")
        } else if group.chars().any(|c| c.is_whitespace() || c.is_control()) {
            "a group name may not contain whitespace or control characters".to_owned()
        } else {
            continue;
        };
        return Err(ValidationError::new(
            format!("share_with_groups[{i}]"),
            reason,
        ));
    }
    Ok(groups.iter().map(|g| g.as_ref().to_owned()).collect())
}

fn validate_name(name: &str) -> Result<(), ValidationError> {
    let reason = if name.is_empty() {
        "must not be empty".to_owned()
    } else if name.len() > MAX_NAME_LEN {
        format!(
            "must be at most {MAX_NAME_LEN} characters, got {}",
            name.chars().count()
        )
    } else if !name
        .bytes()
        .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-'))
    {
        "may contain only lowercase letters a-z, digits 0-9 and '-'".to_owned()
    } else {
        return Ok(());
    };
    Err(ValidationError::new("name", reason))
}

fn validate_configs(kind: &dyn EngineKind, configs: &Configs) -> Result<(), ValidationError> {
    if configs.len() > MAX_CONFIGS {
        return Err(ValidationError::new(
            "configs",
            format!("at most {MAX_CONFIGS} entries"),
        ));
    }
    for (key, value) in configs {
        let field = || format!("configs.{key}");
        if key.is_empty() || key.chars().count() > MAX_CONFIG_KEY_LEN {
            return Err(ValidationError::new(
                "configs",
                format!("keys must be 1 to {MAX_CONFIG_KEY_LEN} characters"),
            ));
        }
        if key
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '=')
        {
            return Err(ValidationError::new(
                field(),
                "keys may not contain whitespace, control characters or '='",
            ));
        }
        if kind.reserved_configs().contains(&key.as_str()) {
            return Err(ValidationError::new(
                field(),
                "is set by rucat and cannot be configured",
            ));
        }
        if value.chars().count() > MAX_CONFIG_VALUE_LEN || value.chars().any(char::is_control) {
            return Err(ValidationError::new(
                field(),
                format!(
                    "values must be at most {MAX_CONFIG_VALUE_LEN} characters without control characters"
                ),
            ));
        }
    }
    kind.validate_configs(configs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(
        name: &str,
        engine_type: &str,
        version: &str,
        configs: &[(&str, &str)],
    ) -> CreateEngineRequest {
        CreateEngineRequest {
            name: name.into(),
            engine_type: engine_type.into(),
            version: version.into(),
            configs: configs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            share_with_groups: Vec::new(),
            idle_timeout_secs: None,
            auto_resume: false,
        }
    }

    fn field_of(r: CreateEngineRequest) -> String {
        r.validate().unwrap_err().field
    }

    #[test]
    fn a_good_request_becomes_a_spec() {
        let spec = request(
            "etl-1",
            "Spark",
            "4.3.0",
            &[("spark.executor.instances", "1")],
        )
        .validate()
        .unwrap();
        assert_eq!(spec.engine_type, EngineType::Spark);
        assert_eq!(spec.configs["spark.executor.instances"], "1");
        assert_eq!(spec.id.as_str().len(), 32);
    }

    #[test]
    fn names() {
        assert_eq!(field_of(request("", "Spark", "4.3.0", &[])), "name");
        assert_eq!(field_of(request("Upper", "Spark", "4.3.0", &[])), "name");
        assert_eq!(field_of(request("a_b", "Spark", "4.3.0", &[])), "name");
        assert_eq!(
            field_of(request(&"a".repeat(64), "Spark", "4.3.0", &[])),
            "name"
        );
        assert!(
            request(&"a".repeat(63), "Spark", "4.3.0", &[])
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn engine_types_and_versions() {
        assert_eq!(field_of(request("a", "Flink", "1.0.0", &[])), "engine_type");
        assert_eq!(field_of(request("a", "spark", "4.3.0", &[])), "engine_type");
        for bad in ["", "3.4.1", "2.4.8", "4.0", "4.0.0-rc1", "latest", "4..0"] {
            assert_eq!(
                field_of(request("a", "Spark", bad, &[])),
                "version",
                "{bad}"
            );
        }
        for good in ["3.5.3", "4.0.1", "4.3.0"] {
            assert!(
                request("a", "Spark", good, &[]).validate().is_ok(),
                "{good}"
            );
        }
    }

    #[test]
    fn sail_requests_follow_sails_rules() {
        let spec = request("s", "Sail", "0.7.2", &[("execution.batch_size", "1024")])
            .validate()
            .unwrap();
        assert_eq!(spec.engine_type, EngineType::Sail);
        assert!(spec.served_by_gateway(), "Sail checks no token");
        assert_eq!(field_of(request("s", "Sail", "4.3.0", &[])), "version");
        assert_eq!(field_of(request("s", "Spark", "0.7.2", &[])), "version");
        let err = request("s", "Sail", "0.7.2", &[("mode", "local")])
            .validate()
            .unwrap_err();
        assert_eq!(err.field, "configs.mode");
        assert!(err.reason.contains("set by rucat"), "{err}");
        assert_eq!(
            field_of(request(
                "s",
                "Sail",
                "0.7.2",
                &[("execution.batchSize", "1")]
            )),
            "configs.execution.batchSize",
            "not Sail's key form"
        );
        let err = request("s", "Flink", "1.0.0", &[]).validate().unwrap_err();
        assert_eq!(err.field, "engine_type");
        assert!(err.reason.contains("known: Spark, Sail, Ballista"), "{err}");
    }

    #[test]
    fn ballista_requests_follow_ballistas_rules() {
        let spec = request(
            "b",
            "Ballista",
            "55.0.0",
            &[("executors", "3"), ("executor.vcores", "2")],
        )
        .validate()
        .unwrap();
        assert_eq!(spec.engine_type, EngineType::Ballista);
        assert_eq!(field_of(request("b", "Ballista", "1.0.0", &[])), "version");
        for (key, value) in [
            ("executor.bind-host", "0.0.0.0"),
            ("executor.work-dir", "/tmp"),
            ("scheduler.bind-port", "1"),
        ] {
            let err = request("b", "Ballista", "55.0.0", &[(key, value)])
                .validate()
                .unwrap_err();
            assert_eq!(err.field, format!("configs.{key}"));
            assert!(err.reason.contains("set by rucat"), "{err}");
        }
        assert_eq!(
            field_of(request("b", "Ballista", "55.0.0", &[("executors", "100")])),
            "configs.executors"
        );
        assert_eq!(
            field_of(request("b", "Ballista", "55.0.0", &[("spark.x", "1")])),
            "configs.spark.x"
        );
    }

    #[test]
    fn reserved_and_malformed_configs_name_the_key() {
        for key in crate::kind::spark::RESERVED_CONFIGS {
            let err = request("a", "Spark", "4.3.0", &[(key, "x")])
                .validate()
                .unwrap_err();
            assert_eq!(err.field, format!("configs.{key}"));
            assert!(err.reason.contains("set by rucat"));
        }
        assert_eq!(
            field_of(request("a", "Spark", "4.3.0", &[("a b", "x")])),
            "configs.a b"
        );
        assert_eq!(
            field_of(request("a", "Spark", "4.3.0", &[("k", "line\nbreak")])),
            "configs.k"
        );
        assert_eq!(
            field_of(request("a", "Spark", "4.3.0", &[("", "x")])),
            "configs"
        );
    }

    #[test]
    fn shared_groups_are_checked_and_named_by_index() {
        let shared = |groups: &[&str]| {
            let mut r = request("a", "Spark", "4.3.0", &[]);
            r.share_with_groups = groups.iter().map(|g| g.to_string()).collect();
            r.validate_with_groups()
        };
        let (_, groups) = shared(&["data", "ml", "data", &"g".repeat(64), "ünï"]).unwrap();
        assert_eq!(groups.len(), 4, "duplicates collapse: {groups:?}");
        let long = "g".repeat(65);
        for (groups, field) in [
            (&["ok", "ok2", ""][..], "share_with_groups[2]"),
            (&["a b"][..], "share_with_groups[0]"),
            (&["ok", "tab\there"][..], "share_with_groups[1]"),
            (&["ok", "nl\n"][..], "share_with_groups[1]"),
            (&[long.as_str()][..], "share_with_groups[0]"),
        ] {
            assert_eq!(shared(groups).unwrap_err().field, field, "{groups:?}");
        }
        let many: Vec<String> = (0..33).map(|i| format!("g{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let err = shared(&many).unwrap_err();
        assert_eq!(err.field, "share_with_groups");
        assert!(shared(&many[..32]).is_ok());
        let parsed: CreateEngineRequest = serde_json::from_str(
            r#"{"name":"a","engine_type":"Spark","version":"4.3.0","share_with_groups":["x"]}"#,
        )
        .unwrap();
        assert_eq!(parsed.share_with_groups, ["x"]);
        assert!(
            CreateEngineRequest::spark("a", "4.3.0")
                .shared_with("x")
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn unknown_json_fields_are_refused() {
        let err = serde_json::from_str::<CreateEngineRequest>(
            r#"{"name":"a","engine_type":"Spark","version":"4.3.0","config":{}}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown field `config`"), "{err}");
    }
}
