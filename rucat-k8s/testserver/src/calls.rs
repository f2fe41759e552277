//! The record of requests the server received, so tests can assert on how
//! the code under test uses the API (e.g. "status reads come from the
//! watch cache: no GET of a single pod after creation").

use crate::resource::Resource;

/// What a request did, in the API server's own verbs (as in its audit log
/// and RBAC): `Get` reads one object, `List` a collection, `Watch` streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    /// GET of one object (or its status).
    Get,
    /// GET of a collection.
    List,
    /// GET of a collection with `watch=true`.
    Watch,
    /// POST to a collection.
    Create,
    /// PUT of one object (or its status).
    Update,
    /// PATCH of one object (or its status).
    Patch,
    /// DELETE of one object.
    Delete,
    /// DELETE of a collection.
    DeleteCollection,
    /// Anything else: discovery, `/version`, unknown paths, unsupported
    /// methods.
    Other,
}

impl Verb {
    /// The verb as RBAC rules name it (`None` for [`Verb::Other`]), to
    /// check a client's calls against the Role it is given.
    pub fn rbac(self) -> Option<&'static str> {
        Some(match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
            Verb::Other => return None,
        })
    }
}

/// One request the server received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The API verb.
    pub verb: Verb,
    /// The resource addressed, if the path names a served one.
    pub resource: Option<Resource>,
    /// The namespace in the path; `None` for all-namespace lists.
    pub namespace: Option<String>,
    /// The object name; `None` for collections.
    pub name: Option<String>,
    /// The subresource (`status`), if any.
    pub subresource: Option<String>,
    /// The HTTP method.
    pub method: String,
    /// The request path.
    pub path: String,
    /// The raw query string (empty when there is none).
    pub query: String,
    /// The HTTP status the server answered with (200 for watches, whose
    /// errors travel inside the stream).
    pub code: u16,
    /// The `User-Agent` header, as the API server's audit log records it.
    pub user_agent: Option<String>,
}

impl Call {
    /// Whether this was a watch request.
    pub fn is_watch(&self) -> bool {
        self.verb == Verb::Watch
    }

    /// Whether this call used `verb` on `resource` (any namespace, name or
    /// subresource).
    pub fn is(&self, verb: Verb, resource: Resource) -> bool {
        self.verb == verb && self.resource == Some(resource)
    }
}
