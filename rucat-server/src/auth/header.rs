//! A trusted user header, for rucat behind an authenticating proxy (an
//! OAuth2 proxy, an ingress with external auth, a corporate SSO gateway):
//! the proxy authenticates people and names them in a header, rucat
//! believes the header.
//!
//! Only from the proxy: the header is believed only on connections from
//! the configured source addresses. Anyone else can set the same header,
//! so a request carrying it from anywhere else is refused outright (401),
//! never passed on to the other providers as if the header were not there:
//! that would hide a forgery, or a proxy whose address changed, behind a
//! confusing login prompt.

use std::collections::BTreeSet;
use std::net::IpAddr;

use axum::http::{HeaderMap, HeaderName};
use ipnet::IpNet;
use rucat_core::{Identity, Role};

use super::config::TrustedHeaderConfig;

/// The longest user name or group list believed: far beyond real names,
/// short enough that nobody stores megabytes as an owner.
const MAX_VALUE_BYTES: usize = 1024;

#[derive(Debug)]
pub(crate) struct TrustedHeader {
    user: HeaderName,
    groups: Option<HeaderName>,
    sources: Vec<IpNet>,
    admin_users: BTreeSet<String>,
    admin_groups: BTreeSet<String>,
}

/// Why a request with the header is refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// From an address that is not the proxy's.
    UntrustedSource,
    /// From the proxy, but without a usable user name.
    Malformed,
}

impl TrustedHeader {
    pub(crate) fn new(config: TrustedHeaderConfig) -> Self {
        Self {
            user: config.user_header.0,
            groups: config.groups_header.map(|h| h.0),
            sources: config.trusted_sources.0,
            admin_users: config.admin_users,
            admin_groups: config.admin_groups,
        }
    }

    /// Whether the request carries the user or the groups header.
    pub(crate) fn present(&self, headers: &HeaderMap) -> bool {
        headers.contains_key(&self.user)
            || self
                .groups
                .as_ref()
                .is_some_and(|groups| headers.contains_key(groups))
    }

    /// Whether `peer` is one of the proxy's addresses; an unknown peer
    /// never is.
    pub(crate) fn trusts(&self, peer: Option<IpAddr>) -> bool {
        peer.is_some_and(|peer| {
            // An IPv4 client on a dual-stack socket shows as ::ffff:a.b.c.d.
            let peer = peer.to_canonical();
            self.sources.iter().any(|net| net.contains(&peer))
        })
    }

    /// The identity the headers name, from a request that carries them
    /// ([`TrustedHeader::present`]).
    pub(crate) fn identify(
        &self,
        headers: &HeaderMap,
        peer: Option<IpAddr>,
    ) -> Result<Identity, Refused> {
        if !self.trusts(peer) {
            return Err(Refused::UntrustedSource);
        }
        let name = single(headers, &self.user)
            .filter(|name| !name.is_empty())
            .ok_or(Refused::Malformed)?;
        let groups: BTreeSet<String> = match &self.groups {
            None => BTreeSet::new(),
            Some(header) => {
                if headers.get_all(header).iter().count() > 1 {
                    return Err(Refused::Malformed);
                }
                match headers.get(header) {
                    None => BTreeSet::new(),
                    Some(_) => single(headers, header)
                        .ok_or(Refused::Malformed)?
                        .split(',')
                        .map(str::trim)
                        .filter(|group| !group.is_empty())
                        .map(str::to_owned)
                        .collect(),
                }
            }
        };
        let admin = self.admin_users.contains(&name) || !self.admin_groups.is_disjoint(&groups);
        Ok(Identity {
            name,
            role: if admin { Role::Admin } else { Role::User },
            groups,
        })
    }
}

/// The header's one value, trimmed, if it has exactly one and it is
/// printable ASCII of a sane length. Two values are ambiguous: refused.
fn single(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let mut values = headers.get_all(name).iter();
    let value = values.next()?;
    if values.next().is_some() || value.len() > MAX_VALUE_BYTES {
        return None;
    }
    let text = value.to_str().ok()?.trim();
    text.bytes()
        .all(|b| b.is_ascii_graphic() || b == b' ')
        .then(|| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn provider() -> TrustedHeader {
        let config: TrustedHeaderConfig = serde_json::from_value(serde_json::json!({
            "user_header": "x-forwarded-user",
            "groups_header": "x-forwarded-groups",
            "trusted_sources": ["10.1.0.0/16", "fd00::/8", "192.0.2.7"],
            "admin_groups": ["ops"],
            "admin_users": ["root"]
        }))
        .unwrap();
        TrustedHeader::new(config)
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn believed_only_from_the_proxy() {
        let p = provider();
        let h = headers(&[
            ("x-forwarded-user", "alice"),
            ("x-forwarded-groups", "data, ml,,"),
        ]);
        assert!(p.present(&h));
        let alice = p.identify(&h, ip("10.1.2.3")).unwrap();
        assert_eq!(alice, Identity::user("alice", ["data", "ml"]));
        for trusted in ["192.0.2.7", "fd00::1", "::ffff:10.1.0.1"] {
            assert!(p.identify(&h, ip(trusted)).is_ok(), "{trusted}");
        }
        for untrusted in ["10.2.0.1", "192.0.2.8", "127.0.0.1", "::1", "fe80::1"] {
            assert_eq!(
                p.identify(&h, ip(untrusted)),
                Err(Refused::UntrustedSource),
                "{untrusted}"
            );
        }
        assert_eq!(p.identify(&h, None), Err(Refused::UntrustedSource));
        // The groups header alone counts as carrying it.
        let groups_only = headers(&[("x-forwarded-groups", "ops")]);
        assert!(p.present(&groups_only));
        assert_eq!(
            p.identify(&groups_only, ip("10.2.0.1")),
            Err(Refused::UntrustedSource)
        );
        assert_eq!(
            p.identify(&groups_only, ip("10.1.0.1")),
            Err(Refused::Malformed)
        );
        assert!(!p.present(&headers(&[("x-user", "alice")])));
    }

    #[test]
    fn admins_by_name_or_group() {
        let p = provider();
        let from = ip("10.1.0.1");
        let root = p
            .identify(&headers(&[("x-forwarded-user", "root")]), from)
            .unwrap();
        assert!(root.is_admin() && root.groups.is_empty());
        let op = headers(&[("x-forwarded-user", "bob"), ("x-forwarded-groups", "ops")]);
        assert!(p.identify(&op, from).unwrap().is_admin());
    }

    #[test]
    fn unusable_names_are_refused() {
        let p = provider();
        let from = ip("10.1.0.1");
        for bad in [
            headers(&[("x-forwarded-user", "")]),
            headers(&[("x-forwarded-user", "  ")]),
            headers(&[("x-forwarded-user", "a"), ("x-forwarded-user", "b")]),
            headers(&[
                ("x-forwarded-user", "a"),
                ("x-forwarded-groups", "x"),
                ("x-forwarded-groups", "y"),
            ]),
            headers(&[("x-forwarded-user", &"a".repeat(MAX_VALUE_BYTES + 1))]),
            headers(&[("x-forwarded-user", "a\tb")]),
        ] {
            assert_eq!(p.identify(&bad, from), Err(Refused::Malformed), "{bad:?}");
        }
        let mut latin = HeaderMap::new();
        latin.insert(
            "x-forwarded-user",
            HeaderValue::from_bytes(b"j\xf6rg").unwrap(),
        );
        assert_eq!(p.identify(&latin, from), Err(Refused::Malformed));
    }
}
