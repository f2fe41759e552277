//! The note on an engine whose cleanup cannot finish: the monitor retries a
//! failed delete for ever (giving up would leave resources behind), so the
//! engine's `error` must say why it is stuck and what may remain, or a user
//! sees an engine that neither stops nor can be deleted, and no reason.
//!
//! The note is appended to the engine's own error (the reason it failed, if it
//! did) and replaced, not repeated, at each retry; it is removed once the
//! cleanup moves on.

/// Where the note starts within the error.
const MARK: &str = "cleanup blocked, retrying: ";
const SEPARATOR: &str = "; ";

/// The engine's error without the note.
pub(crate) fn without_note(error: Option<&str>) -> Option<String> {
    let error = error?;
    let base = match error.find(MARK) {
        Some(at) => error[..at].strip_suffix(SEPARATOR).unwrap_or(&error[..at]),
        None => error,
    };
    (!base.is_empty()).then(|| base.to_owned())
}

/// The engine's error with the note saying why cleanup is blocked (`why`)
/// and what may remain (`remains`).
pub(crate) fn with_note(error: Option<&str>, why: &str, remains: &str) -> String {
    let note = format!("{MARK}{why}; until it succeeds, these may remain: {remains}");
    match without_note(error) {
        Some(base) => format!("{base}{SEPARATOR}{note}"),
        None => note,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_note_follows_the_reason_and_is_replaced_not_repeated() {
        let first = with_note(Some("image not found"), "403 Forbidden", "pod p");
        assert_eq!(
            first,
            "image not found; cleanup blocked, retrying: 403 Forbidden; until it succeeds, these may remain: pod p"
        );
        let second = with_note(Some(&first), "timed out", "pod p");
        assert_eq!(
            second,
            "image not found; cleanup blocked, retrying: timed out; until it succeeds, these may remain: pod p"
        );
        assert_eq!(
            without_note(Some(&second)).as_deref(),
            Some("image not found")
        );
    }

    #[test]
    fn an_engine_without_an_error_gets_only_the_note_and_loses_it() {
        let noted = with_note(None, "403 Forbidden", "pod p");
        assert!(noted.starts_with(MARK), "{noted}");
        assert_eq!(without_note(Some(&noted)), None);
        assert_eq!(without_note(None), None);
        assert_eq!(without_note(Some("plain")).as_deref(), Some("plain"));
    }
}
