//! The `auth_provider` section of the configuration: one key per identity
//! provider, any number of them at once, plus the limit on failed logins.
//!
//! ```json
//! "auth_provider": {
//!   "StaticAuthProviderConfig": {"username": "admin", "password": "admin", "bearer_token": "admin"},
//!   "StaticUsers": {"users": [{"name": "alice", "password_hash": "$argon2id$…", "role": "user", "groups": ["data"]}]},
//!   "Jwt": {"issuer": "https://idp.example.com", "audience": "rucat", "jwks_url": "https://idp.example.com/jwks"},
//!   "TrustedHeader": {"user_header": "x-forwarded-user", "trusted_sources": ["10.0.0.0/8"]},
//!   "failed_logins": {"max_failures": 10, "per_secs": 60}
//! }
//! ```
//!
//! The seed's `{"StaticAuthProviderConfig": {...}}` is this shape with one
//! provider, so old configs keep working. Provider keys keep the seed's
//! PascalCase; `failed_logins` is a setting, snake_case like every other
//! setting. Every value that can be checked alone is checked while it is
//! read, so an error names its path (e.g.
//! `auth_provider.StaticUsers.users[1].password_hash`) and never echoes a
//! secret.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use axum::http::{HeaderName, Uri};
use ipnet::IpNet;
use rucat_core::{Role, Secret};
use serde::Deserialize;
use serde::de::{self, Deserializer};

/// Which identity providers the server accepts; at least one. Each is tried
/// in turn (see [`super::Authenticator`]).
#[derive(Clone, Debug, Deserialize)]
#[serde(try_from = "Providers")]
pub struct AuthProviderConfig {
    /// The seed's single admin, with a plaintext password and token.
    pub static_admin: Option<StaticAuthProviderConfig>,
    pub static_users: Option<StaticUsersConfig>,
    pub jwt: Option<JwtConfig>,
    pub trusted_header: Option<TrustedHeaderConfig>,
    pub failed_logins: FailedLoginsConfig,
}

/// The file's shape, before the checks that span several providers.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Providers {
    #[serde(rename = "StaticAuthProviderConfig", default)]
    static_admin: Option<StaticAuthProviderConfig>,
    #[serde(rename = "StaticUsers", default)]
    static_users: Option<StaticUsersConfig>,
    #[serde(rename = "Jwt", default)]
    jwt: Option<JwtConfig>,
    #[serde(rename = "TrustedHeader", default)]
    trusted_header: Option<TrustedHeaderConfig>,
    #[serde(default)]
    failed_logins: FailedLoginsConfig,
}

impl TryFrom<Providers> for AuthProviderConfig {
    type Error = String;

    fn try_from(p: Providers) -> Result<Self, String> {
        if p.static_admin.is_none()
            && p.static_users.is_none()
            && p.jwt.is_none()
            && p.trusted_header.is_none()
        {
            return Err("no identity provider: give at least one of StaticAuthProviderConfig, StaticUsers, Jwt, TrustedHeader".into());
        }
        if let Some(users) = &p.static_users {
            users.check()?;
        }
        if let Some(jwt) = &p.jwt {
            jwt.check()?;
        }
        Ok(Self {
            static_admin: p.static_admin,
            static_users: p.static_users,
            jwt: p.jwt,
            trusted_header: p.trusted_header,
            failed_logins: p.failed_logins,
        })
    }
}

impl From<StaticAuthProviderConfig> for AuthProviderConfig {
    /// The seed's only provider, alone.
    fn from(config: StaticAuthProviderConfig) -> Self {
        Self {
            static_admin: Some(config),
            static_users: None,
            jwt: None,
            trusted_header: None,
            failed_logins: FailedLoginsConfig::default(),
        }
    }
}

/// One fixed admin for HTTP Basic, and optionally one fixed Bearer token:
/// the seed's provider, kept as it was.
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

/// `"StaticUsers": {"users": [...]}`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticUsersConfig {
    pub users: Vec<StaticUserConfig>,
}

impl StaticUsersConfig {
    fn check(&self) -> Result<(), String> {
        if self.users.is_empty() {
            return Err("StaticUsers.users: list at least one user".into());
        }
        let mut names = BTreeSet::new();
        for (i, user) in self.users.iter().enumerate() {
            if user.name.trim().is_empty() || user.name.trim() != user.name {
                return Err(format!(
                    "StaticUsers.users[{i}].name: must be non-empty, without leading or trailing spaces"
                ));
            }
            if !names.insert(user.name.as_str()) {
                return Err(format!(
                    "StaticUsers.users[{i}].name: `{}` is listed twice",
                    user.name
                ));
            }
            if user.password_hash.is_none() && user.token_sha256.is_none() {
                return Err(format!(
                    "StaticUsers.users[{i}] ({}): give a password_hash, a token_sha256 or both",
                    user.name
                ));
            }
        }
        Ok(())
    }
}

/// One user: a password (as a slow hash) for HTTP Basic, a token (as its
/// SHA-256) for Bearer, or both.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticUserConfig {
    pub name: String,
    #[serde(default)]
    pub password_hash: Option<PasswordHash>,
    #[serde(default)]
    pub token_sha256: Option<TokenDigest>,
    #[serde(default)]
    pub role: Role,
    #[serde(default)]
    pub groups: BTreeSet<String>,
}

/// A password hash as `rucat-server hash-password` prints it: an argon2
/// PHC string (`$argon2id$v=19$m=…`) or a bcrypt hash (`$2b$12$…`). Never a
/// plaintext password: one is refused where it is read.
#[derive(Clone, PartialEq, Eq)]
pub enum PasswordHash {
    Argon2(String),
    Bcrypt(String),
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Argon2(_) => "Argon2(<redacted>)",
            Self::Bcrypt(_) => "Bcrypt(<redacted>)",
        })
    }
}

impl FromStr for PasswordHash {
    type Err = &'static str;

    /// The error never quotes the text: a plaintext password put here by
    /// mistake must not reach a log.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        const WHAT: &str = "expected an argon2 PHC string ($argon2id$…) or a bcrypt hash ($2b$…), as `rucat-server hash-password` prints";
        if text.starts_with("$argon2") {
            let parsed = argon2::password_hash::PasswordHash::new(text).map_err(|_| WHAT)?;
            argon2::Algorithm::new(parsed.algorithm.as_str()).map_err(|_| WHAT)?;
            if parsed.hash.is_none() {
                return Err(WHAT);
            }
            return Ok(Self::Argon2(text.to_owned()));
        }
        // $2a$ / $2b$ / $2x$ / $2y$, a two-digit cost, then 53 characters of
        // salt and hash in bcrypt's base64.
        let bcrypt = text.len() == 60
            && text.starts_with("$2")
            && matches!(text.as_bytes()[2], b'a' | b'b' | b'x' | b'y')
            && text.as_bytes()[3] == b'$'
            && text[4..6].bytes().all(|b| b.is_ascii_digit())
            && text.as_bytes()[6] == b'$'
            && text[7..]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/');
        if bcrypt {
            Ok(Self::Bcrypt(text.to_owned()))
        } else {
            Err(WHAT)
        }
    }
}

impl<'de> Deserialize<'de> for PasswordHash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        parse_secret(deserializer)
    }
}

/// Reads a string as a [`Secret`] (whose errors never quote the value) and
/// parses it with an error that does not quote it either.
fn parse_secret<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr<Err = &'static str>,
{
    Secret::deserialize(deserializer)?
        .expose_str()
        .parse()
        .map_err(de::Error::custom)
}

/// The SHA-256 of a user's bearer token, as 64 hex digits
/// (`rucat-server hash-token` prints a fresh token and its digest).
///
/// A fast hash is enough here, unlike for passwords: the tokens rucat makes
/// carry 256 random bits, so nobody can find one from its digest by trying
/// candidates, however fast each try is; a slow hash only protects secrets
/// people choose. Storing the digest means a leaked config file gives away
/// no token.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenDigest(pub [u8; 32]);

impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenDigest(<redacted>)")
    }
}

impl FromStr for TokenDigest {
    type Err = &'static str;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        const WHAT: &str = "expected the token's SHA-256 as 64 hexadecimal digits, as `rucat-server hash-token` prints";
        let bytes = text.as_bytes();
        if bytes.len() != 64 {
            return Err(WHAT);
        }
        let mut digest = [0u8; 32];
        for (out, pair) in digest.iter_mut().zip(bytes.chunks_exact(2)) {
            let hex = |b: u8| char::from(b).to_digit(16).ok_or(WHAT);
            *out = u8::try_from(hex(pair[0])? * 16 + hex(pair[1])?).map_err(|_| WHAT)?;
        }
        Ok(Self(digest))
    }
}

impl<'de> Deserialize<'de> for TokenDigest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        parse_secret(deserializer)
    }
}

/// `"Jwt": {...}`: OIDC / JWT bearer tokens, checked against the issuer's
/// published keys.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// The `iss` every token must carry, e.g. `https://idp.example.com/realms/data`.
    pub issuer: String,
    /// The `aud` a token must include (one of these): the client id rucat's
    /// tokens are issued for.
    pub audience: Audience,
    /// Where the issuer publishes its signing keys (JWKS), over HTTP(S), e.g.
    /// `https://idp.example.com/realms/data/protocol/openid-connect/certs`.
    pub jwks_url: HttpUrl,
    /// The signature algorithms accepted; default `["RS256"]`. `none` and
    /// the HMAC ones (a shared secret cannot come from a JWKS) do not exist here.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<JwtAlgorithm>,
    /// The claim that names the user; default `sub` (e.g. `preferred_username`).
    #[serde(default = "default_user_claim")]
    pub user_claim: String,
    /// The claim listing the user's groups (an array of strings or one
    /// string); default `groups`. A token without it has no groups.
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// Users (by the user claim) who are admins.
    #[serde(default)]
    pub admin_users: BTreeSet<String>,
    /// Members of any of these groups are admins.
    #[serde(default)]
    pub admin_groups: BTreeSet<String>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds; default 30, at most 300.
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
    /// How often the keys are fetched again, in seconds; default 3600.
    #[serde(default = "default_refresh")]
    pub jwks_refresh_secs: u64,
    /// A token signed by a key not seen yet makes rucat fetch the keys again
    /// at once (the issuer rotated them), but no more often than this, in
    /// seconds; default 30, so that tokens naming made-up keys cannot make
    /// rucat hammer the issuer.
    #[serde(default = "default_min_refetch")]
    pub jwks_min_refetch_secs: u64,
}

/// The longest clock skew accepted: past a few minutes a skew is a broken
/// clock, and a long leeway lets expired tokens in.
pub const MAX_LEEWAY_SECS: u64 = 300;

impl JwtConfig {
    fn check(&self) -> Result<(), String> {
        if self.issuer.is_empty() {
            return Err("Jwt.issuer: must not be empty".into());
        }
        if self.audience.0.is_empty() || self.audience.0.iter().any(String::is_empty) {
            return Err("Jwt.audience: give at least one non-empty audience".into());
        }
        if self.algorithms.is_empty() {
            return Err("Jwt.algorithms: give at least one algorithm".into());
        }
        if self.user_claim.is_empty() {
            return Err("Jwt.user_claim: must not be empty".into());
        }
        if self.leeway_secs > MAX_LEEWAY_SECS {
            return Err(format!("Jwt.leeway_secs: at most {MAX_LEEWAY_SECS}"));
        }
        if self.jwks_refresh_secs == 0 {
            return Err("Jwt.jwks_refresh_secs: must be at least 1".into());
        }
        Ok(())
    }
}

fn default_algorithms() -> Vec<JwtAlgorithm> {
    vec![JwtAlgorithm::RS256]
}

fn default_user_claim() -> String {
    "sub".into()
}

fn default_groups_claim() -> String {
    "groups".into()
}

fn default_leeway() -> u64 {
    30
}

fn default_refresh() -> u64 {
    3600
}

fn default_min_refetch() -> u64 {
    30
}

/// One audience or a list of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Audience(pub Vec<String>);

impl<'de> Deserialize<'de> for Audience {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged, expecting = "a string or a list of strings")]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        Ok(Self(match OneOrMany::deserialize(deserializer)? {
            OneOrMany::One(one) => vec![one],
            OneOrMany::Many(many) => many,
        }))
    }
}

/// An `http://` or `https://` URL with a host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpUrl(pub Uri);

impl<'de> Deserialize<'de> for HttpUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let uri: Uri = text
            .parse()
            .map_err(|_| de::Error::custom(format!("`{text}` is not a URL")))?;
        let web = matches!(uri.scheme_str(), Some("http" | "https"));
        if !web || uri.host().is_none() {
            return Err(de::Error::custom(format!(
                "`{text}` is not an http:// or https:// URL"
            )));
        }
        Ok(Self(uri))
    }
}

/// The signature algorithms a JWT may use: asymmetric ones only, whose
/// public keys a JWKS publishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[allow(clippy::upper_case_acronyms)]
pub enum JwtAlgorithm {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

impl JwtAlgorithm {
    pub fn to_jsonwebtoken(self) -> jsonwebtoken::Algorithm {
        use jsonwebtoken::Algorithm as A;
        match self {
            Self::RS256 => A::RS256,
            Self::RS384 => A::RS384,
            Self::RS512 => A::RS512,
            Self::PS256 => A::PS256,
            Self::PS384 => A::PS384,
            Self::PS512 => A::PS512,
            Self::ES256 => A::ES256,
            Self::ES384 => A::ES384,
            Self::EdDSA => A::EdDSA,
        }
    }
}

/// `"TrustedHeader": {...}`: the user as an authenticating proxy in front of
/// rucat names it, believed only from the proxy's addresses.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedHeaderConfig {
    /// The header naming the user, e.g. `x-forwarded-user`.
    pub user_header: HeaderKey,
    /// A header listing the user's groups, comma-separated, e.g. `x-forwarded-groups`.
    #[serde(default)]
    pub groups_header: Option<HeaderKey>,
    /// The proxy's addresses (CIDRs, e.g. `10.0.0.0/8`, `127.0.0.1/32`,
    /// `fd00::/8`). A request carrying either header from anywhere else is
    /// refused.
    pub trusted_sources: TrustedSources,
    #[serde(default)]
    pub admin_users: BTreeSet<String>,
    #[serde(default)]
    pub admin_groups: BTreeSet<String>,
}

/// A header name that can carry an identity: not one HTTP itself or rucat's
/// other providers use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderKey(pub HeaderName);

impl<'de> Deserialize<'de> for HeaderKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let name = HeaderName::from_bytes(text.as_bytes())
            .map_err(|_| de::Error::custom(format!("`{text}` is not a header name")))?;
        let reserved = [
            "authorization",
            "host",
            "content-type",
            "content-length",
            "cookie",
            "te",
            "x-rucat-engine-id",
        ];
        if reserved.contains(&name.as_str()) {
            return Err(de::Error::custom(format!(
                "`{text}` cannot carry an identity; use a header of its own, e.g. x-forwarded-user"
            )));
        }
        Ok(Self(name))
    }
}

/// At least one CIDR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedSources(pub Vec<IpNet>);

impl<'de> Deserialize<'de> for TrustedSources {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let texts = Vec::<String>::deserialize(deserializer)?;
        if texts.is_empty() {
            return Err(de::Error::custom(
                "list the addresses of the proxy, e.g. [\"10.0.0.0/8\"]",
            ));
        }
        let nets = texts
            .iter()
            .map(|text| {
                text.parse::<IpNet>()
                    .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        de::Error::custom(format!(
                            "`{text}` is not a CIDR such as 10.0.0.0/8 or an IP address"
                        ))
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self(nets))
    }
}

/// `"failed_logins": {...}`: how many failed logins a source may make
/// before it has to wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FailedLoginsConfig {
    /// Failures allowed in a burst, and per `per_secs` after it; default 10.
    pub max_failures: u32,
    /// Default 60: ten failures a minute, enough for people who mistype and
    /// far too few to guess a password.
    pub per_secs: u32,
    /// Sources remembered at most (IPv4 addresses, IPv6 /64s); default
    /// 10000. Past that, new sources share one allowance, so an attacker
    /// with many addresses cannot make the table grow.
    pub max_sources: u32,
}

impl Default for FailedLoginsConfig {
    fn default() -> Self {
        Self {
            max_failures: 10,
            per_secs: 60,
            max_sources: 10_000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: serde_json::Value) -> Result<AuthProviderConfig, String> {
        serde_path_to_error::deserialize(json).map_err(|e| e.to_string())
    }

    const ARGON2: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0pG5V8mQ0cS0l0bZ9k2Jw0O7t6aEoJGdK1a8bq7m2nE";
    const BCRYPT: &str = "$2b$04$EGdrhbKUv8Oc9vGiXX0HQOxSg445d458Muh7DAHskb6QbtCvdxcie";

    #[test]
    fn the_seed_shape_is_one_admin() {
        let config = parse(serde_json::json!({"StaticAuthProviderConfig":
            {"username": "admin", "password": "admin", "bearer_token": "admin"}}))
        .unwrap();
        assert!(config.static_admin.is_some());
        assert!(config.static_users.is_none() && config.jwt.is_none());
        assert_eq!(config.failed_logins, FailedLoginsConfig::default());
    }

    #[test]
    fn every_provider_at_once() {
        let config = parse(serde_json::json!({
            "StaticUsers": {"users": [
                {"name": "alice", "password_hash": ARGON2, "role": "admin"},
                {"name": "bob", "password_hash": BCRYPT, "token_sha256": "ab".repeat(32), "groups": ["data"]},
                {"name": "svc", "token_sha256": "CD".repeat(32)}
            ]},
            "Jwt": {"issuer": "https://idp", "audience": ["rucat", "spark"], "jwks_url": "http://127.0.0.1:1/jwks",
                    "algorithms": ["RS256", "ES256", "EdDSA"], "user_claim": "preferred_username"},
            "TrustedHeader": {"user_header": "X-Forwarded-User", "groups_header": "x-forwarded-groups",
                              "trusted_sources": ["10.0.0.0/8", "::1", "127.0.0.1"]},
            "failed_logins": {"max_failures": 3}
        }))
        .unwrap();
        let users = config.static_users.unwrap().users;
        assert_eq!(users[0].role, Role::Admin);
        assert_eq!(users[1].role, Role::User);
        assert!(matches!(
            users[1].password_hash,
            Some(PasswordHash::Bcrypt(_))
        ));
        assert_eq!(users[2].token_sha256, Some(TokenDigest([0xcd; 32])));
        let jwt = config.jwt.unwrap();
        assert_eq!(jwt.audience.0, ["rucat", "spark"]);
        assert_eq!((jwt.leeway_secs, jwt.groups_claim.as_str()), (30, "groups"));
        let header = config.trusted_header.unwrap();
        assert_eq!(header.user_header.0, "x-forwarded-user");
        assert_eq!(header.trusted_sources.0.len(), 3);
        assert_eq!(config.failed_logins.max_failures, 3);
        assert_eq!(config.failed_logins.per_secs, 60);
    }

    #[test]
    fn errors_name_the_path_and_never_the_secret() {
        let cases = [
            (serde_json::json!({}), "no identity provider"),
            (serde_json::json!({"Ldap": {}}), "unknown field `Ldap`"),
            (
                serde_json::json!({"StaticUsers": {"users": [{"name": "a", "password_hash": "hunter2"}]}}),
                "StaticUsers.users[0].password_hash: expected an argon2 PHC string",
            ),
            (
                serde_json::json!({"StaticUsers": {"users": [{"name": "a", "token_sha256": "hunter2"}]}}),
                "StaticUsers.users[0].token_sha256: expected the token's SHA-256",
            ),
            (
                serde_json::json!({"StaticUsers": {"users": [{"name": "a", "password_hash": ARGON2, "role": "root"}]}}),
                "StaticUsers.users[0].role: unknown variant `root`",
            ),
            (
                serde_json::json!({"StaticUsers": {"users": [{"name": "a"}]}}),
                "give a password_hash, a token_sha256 or both",
            ),
            (
                serde_json::json!({"StaticUsers": {"users": [{"name": "a", "token_sha256": "ab".repeat(32)}, {"name": "a", "token_sha256": "ab".repeat(32)}]}}),
                "`a` is listed twice",
            ),
            (
                serde_json::json!({"Jwt": {"issuer": "i", "audience": "a", "jwks_url": "http://x/", "algorithms": ["none"]}}),
                "Jwt.algorithms[0]: unknown variant `none`",
            ),
            (
                serde_json::json!({"Jwt": {"issuer": "i", "audience": "a", "jwks_url": "http://x/", "algorithms": ["HS256"]}}),
                "unknown variant `HS256`",
            ),
            (
                serde_json::json!({"Jwt": {"issuer": "i", "audience": "a", "jwks_url": "ftp://idp/jwks"}}),
                "Jwt.jwks_url: `ftp://idp/jwks` is not an http:// or https:// URL",
            ),
            (
                serde_json::json!({"Jwt": {"issuer": "i", "audience": [], "jwks_url": "http://x/"}}),
                "Jwt.audience: give at least one",
            ),
            (
                serde_json::json!({"Jwt": {"issuer": "i", "audience": "a", "jwks_url": "http://x/", "leeway_secs": 3600}}),
                "Jwt.leeway_secs: at most 300",
            ),
            (
                serde_json::json!({"TrustedHeader": {"user_header": "x-user", "trusted_sources": ["10.0.0.0/33"]}}),
                "TrustedHeader.trusted_sources: `10.0.0.0/33` is not a CIDR",
            ),
            (
                serde_json::json!({"TrustedHeader": {"user_header": "x-user", "trusted_sources": []}}),
                "TrustedHeader.trusted_sources: list the addresses",
            ),
            (
                serde_json::json!({"TrustedHeader": {"user_header": "Authorization", "trusted_sources": ["10.0.0.0/8"]}}),
                "TrustedHeader.user_header: `Authorization` cannot carry an identity",
            ),
            (
                serde_json::json!({"TrustedHeader": {"user_header": "x user", "trusted_sources": ["10.0.0.0/8"]}}),
                "is not a header name",
            ),
            (
                serde_json::json!({"StaticAuthProviderConfig": {"username": "u", "password": "p"}, "failed_logins": {"max": 1}}),
                "failed_logins.max: unknown field `max`",
            ),
        ];
        for (json, expected) in cases {
            let err = parse(json.clone()).unwrap_err();
            assert!(err.contains(expected), "{json}: {err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn password_hashes_are_recognised() {
        assert!(matches!(ARGON2.parse(), Ok(PasswordHash::Argon2(_))));
        assert!(matches!(BCRYPT.parse(), Ok(PasswordHash::Bcrypt(_))));
        for bad in [
            "",
            "admin",
            "$argon2id$",
            "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ",
            "$argon2q$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0pG5V8mQ0cS0l0bZ9k2Jw0O7t6aEoJGdK1a8bq7m2nE",
            &BCRYPT[..59],
            &BCRYPT.replace("$2b$", "$2c$"),
            &BCRYPT.replace("$04$", "$4x$"),
        ] {
            assert!(bad.parse::<PasswordHash>().is_err(), "{bad}");
        }
    }

    #[test]
    fn debug_output_shows_no_secret() {
        let config = parse(serde_json::json!({
            "StaticAuthProviderConfig": {"username": "the-user", "password": "the-password", "bearer_token": "the-token"},
            "StaticUsers": {"users": [{"name": "bob", "password_hash": BCRYPT, "token_sha256": "ab".repeat(32)}]}
        }))
        .unwrap();
        let text = format!("{config:?}{config:#?}");
        for secret in [
            "the-user",
            "the-password",
            "the-token",
            &BCRYPT[7..],
            "abab",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
}
