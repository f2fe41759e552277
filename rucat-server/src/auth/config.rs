//! The `auth_provider` section of the configuration, in the original shape:
//!
//! ```json
//! "auth_provider": {"StaticAuthProviderConfig": {"username": "admin", "password": "admin", "bearer_token": "admin"}}
//! ```

use std::fmt;

use serde::Deserialize;

use rucat_core::Secret;

/// Which authentication the server enforces. Only static credentials exist
/// for now; the enum keeps the original's externally tagged JSON shape.
#[derive(Clone, Debug, Deserialize)]
pub enum AuthProviderConfig {
    StaticAuthProviderConfig(StaticAuthProviderConfig),
}

/// One fixed user for HTTP Basic, and optionally one fixed Bearer token.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticAuthProviderConfig {
    pub username: Secret,
    pub password: Secret,
    #[serde(default)]
    pub bearer_token: Option<Secret>,
}

/// Written by hand so that a future field cannot be printed by accident: only
/// whether a bearer token is configured is shown.
impl fmt::Debug for StaticAuthProviderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticAuthProviderConfig")
            .field("username", &"<redacted>")
            .field("password", &"<redacted>")
            .field(
                "bearer_token",
                &self.bearer_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}
