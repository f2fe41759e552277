//! Who is asking, and which engines they may see and act on.
//!
//! Authentication (passwords, tokens, JWTs, a trusted proxy header) lives in
//! the server and ends in an [`Identity`]; everything after that — the REST
//! API, the Spark Connect gateway, quotas — decides from the identity alone,
//! with the rules here, so the rule is the same wherever an engine is reached.
//!
//! The rule: an admin sees and acts on every engine; a user on the engines
//! they own and those shared with a group they belong to. An engine recorded
//! before owners existed has none, and only admins see it. Only the owner (or
//! an admin) may change whom an engine is shared with.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::engine::EngineRecord;

/// What an identity may do beyond its own engines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Role {
    /// Sees and acts on every engine.
    Admin,
    /// Sees and acts on their own engines and those shared with their groups.
    #[default]
    User,
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The user name, recorded as the `owner` of the engines they create.
    pub name: String,
    pub role: Role,
    pub groups: BTreeSet<String>,
}

impl Identity {
    pub fn admin(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            role: Role::Admin,
            groups: BTreeSet::new(),
        }
    }

    pub fn user<I, G>(name: impl Into<String>, groups: I) -> Self
    where
        I: IntoIterator<Item = G>,
        G: Into<String>,
    {
        Self {
            name: name.into(),
            role: Role::User,
            groups: groups.into_iter().map(Into::into).collect(),
        }
    }

    /// The identity of a server without authentication: everyone is this
    /// admin, as everyone could do everything before identities existed.
    pub fn anonymous() -> Self {
        Self::admin(ANONYMOUS)
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Whether this identity may see `record` (and so stop, restart or
    /// delete it). Everyone else is told it does not exist.
    pub fn may_see(&self, record: &EngineRecord) -> bool {
        self.may_see_owned(record.owner.as_deref(), &record.share_with_groups)
    }

    /// [`Self::may_see`] for an engine owned by `owner` and shared with
    /// `groups`: a deleted engine's logs keep the rule (see
    /// [`crate::logs::Tombstone`]).
    pub fn may_see_owned(&self, owner: Option<&str>, groups: &BTreeSet<String>) -> bool {
        self.is_admin() || owner == Some(self.name.as_str()) || !groups.is_disjoint(&self.groups)
    }

    /// Whether this identity may change whom `record` is shared with.
    pub fn may_share(&self, record: &EngineRecord) -> bool {
        self.is_admin() || self.owns(record)
    }

    fn owns(&self, record: &EngineRecord) -> bool {
        record.owner.as_deref() == Some(self.name.as_str())
    }

    /// What a [`crate::store::PageQuery`] must keep to list only what this
    /// identity may see; `None` for an admin, who sees everything.
    pub fn visibility(&self) -> Option<Visibility> {
        (!self.is_admin()).then(|| Visibility {
            user: self.name.clone(),
            groups: self.groups.clone(),
        })
    }
}

/// The user name of [`Identity::anonymous`].
pub const ANONYMOUS: &str = "anonymous";

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// The engines a non-admin may see, as a store filter: those `user` owns
/// and those shared with one of `groups`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Visibility {
    pub user: String,
    pub groups: BTreeSet<String>,
}

impl Visibility {
    pub fn admits(&self, record: &EngineRecord) -> bool {
        record.owner.as_deref() == Some(self.user.as_str())
            || !record.share_with_groups.is_disjoint(&self.groups)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Configs, EngineId, EngineSpec, EngineType};
    use crate::time::Timestamp;

    fn engine(owner: Option<&str>, groups: &[&str]) -> EngineRecord {
        let spec = EngineSpec {
            id: EngineId::generate(),
            name: "e".into(),
            engine_type: EngineType::Spark,
            version: "4.3.0".into(),
            configs: Configs::new(),
            token: None,
        };
        let mut record = EngineRecord::new(spec, Timestamp::from_millis(1));
        record.owner = owner.map(str::to_owned);
        record.share_with_groups = groups.iter().map(|g| g.to_string()).collect();
        record
    }

    #[test]
    fn who_sees_and_shares_what() {
        let admin = Identity::admin("root");
        let alice = Identity::user("alice", ["data"]);
        let bob = Identity::user("bob", ["data", "ml"]);
        let carol = Identity::user("carol", ["ops"]);
        let alices = engine(Some("alice"), &[]);
        let shared = engine(Some("alice"), &["data"]);
        let legacy = engine(None, &[]);
        // (identity, engine, may see, may share)
        let table = [
            (&admin, &alices, true, true),
            (&admin, &legacy, true, true),
            (&alice, &alices, true, true),
            (&alice, &shared, true, true),
            (&alice, &legacy, false, false),
            (&bob, &alices, false, false),
            (&bob, &shared, true, false),
            (&bob, &legacy, false, false),
            (&carol, &shared, false, false),
        ];
        for (who, record, sees, shares) in table {
            assert_eq!(who.may_see(record), sees, "{who} sees {:?}", record.owner);
            assert_eq!(
                who.may_share(record),
                shares,
                "{who} shares {:?}",
                record.owner
            );
            let listed = who.visibility().is_none_or(|v| v.admits(record));
            assert_eq!(listed, sees, "{who} lists {:?}", record.owner);
        }
    }

    #[test]
    fn a_user_named_like_a_group_gains_nothing() {
        let mallory = Identity::user("data", Vec::<String>::new());
        assert!(!mallory.may_see(&engine(Some("alice"), &["data"])));
    }

    #[test]
    fn roles_read_and_write_in_lowercase() {
        assert_eq!(serde_json::to_string(&Role::Admin).unwrap(), "\"admin\"");
        assert_eq!(
            serde_json::from_str::<Role>("\"user\"").unwrap(),
            Role::User
        );
        assert!(serde_json::from_str::<Role>("\"root\"").is_err());
        assert!(Identity::anonymous().is_admin());
    }
}
