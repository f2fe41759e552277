//! Authentication metrics: every attempt, by how it was made, which
//! provider accepted it and how it ended. Bounded labels only: no user
//! names, no addresses.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// How an attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    Success,
    /// Wrong or unusable credentials.
    Failure,
    /// The trusted user header, from an address that is not the proxy's.
    UntrustedSource,
    /// Refused unchecked: the source has failed too often.
    Limited,
    /// The token could not be checked: the issuer's keys cannot be fetched.
    Unavailable,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::UntrustedSource => "untrusted_source",
            Self::Limited => "limited",
            Self::Unavailable => "unavailable",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AttemptLabels {
    /// `basic`, `bearer`, `trusted_header` or `other` (another scheme, or
    /// a header that is not one).
    scheme: &'static str,
    /// The provider that accepted it (`static`, `users`, `jwt`,
    /// `trusted_header`), or `none`.
    provider: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    /// `hit`: answered from the cache of recent successes; `miss`: a full
    /// argon2 or bcrypt check.
    cache: &'static str,
}

/// Cheap to clone: the metrics are shared. [`AuthMetrics::default`] records
/// into series no registry exports, for servers without `/metrics`.
#[derive(Clone, Debug, Default)]
pub struct AuthMetrics {
    attempts: Family<AttemptLabels, Counter>,
    password_checks: Family<CacheLabels, Counter>,
}

impl AuthMetrics {
    /// Creates the metrics and registers them into `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "rucat_auth_attempts",
            "Authentication attempts (requests and gateway RPCs with credentials), by scheme, accepting provider and result",
            metrics.attempts.clone(),
        );
        registry.register(
            "rucat_auth_password_checks",
            "Static users' password checks, answered from the cache of recent successes (hit) or by a full hash check (miss)",
            metrics.password_checks.clone(),
        );
        metrics
    }

    pub(crate) fn attempt(&self, scheme: &'static str, provider: &'static str, outcome: Outcome) {
        self.attempts
            .get_or_create(&AttemptLabels {
                scheme,
                provider,
                result: outcome.label(),
            })
            .inc();
    }

    pub(crate) fn password_check(&self, cached: bool) {
        let cache = if cached { "hit" } else { "miss" };
        self.password_checks
            .get_or_create(&CacheLabels { cache })
            .inc();
    }
}
