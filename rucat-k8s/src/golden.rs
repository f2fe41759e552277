//! Golden JSON files for the pure builders' tests.

use std::path::PathBuf;

/// Compares `value` with `tests/golden/NAME`; `RUCAT_UPDATE_GOLDEN=1`
/// rewrites it.
pub fn check(name: &str, value: serde_json::Value) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    let text = serde_json::to_string_pretty(&value).unwrap() + "\n";
    if std::env::var_os("RUCAT_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        text,
        expected,
        "{} differs; RUCAT_UPDATE_GOLDEN=1 rewrites it",
        path.display()
    );
}
