//! RELIABILITY.md names a test for every promise: each named test must
//! exist, and every `reliability_*` or `fuzz_*` test must be named there.

use std::collections::BTreeSet;
use std::path::Path;

/// Names of every `fn` in the Rust sources under `dir`.
fn functions(dir: &Path, out: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if !path.ends_with("target") {
                functions(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            for line in text.lines() {
                if let Some(rest) =
                    line.trim_start().strip_prefix("fn ").or_else(|| line.trim_start().strip_prefix("async fn "))
                {
                    out.insert(rest.split(|c: char| !c.is_alphanumeric() && c != '_').next().unwrap_or("").to_string());
                }
            }
        }
    }
}

#[test]
fn the_reliability_table_names_real_tests_and_every_reliability_test() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let table = std::fs::read_to_string(root.join("RELIABILITY.md")).unwrap();
    let named: BTreeSet<String> = table
        .lines()
        .filter(|l| l.starts_with('|'))
        .filter_map(|l| l.trim_end().trim_end_matches('|').rsplit('|').next())
        .flat_map(|cell| cell.split('`').skip(1).step_by(2).map(str::to_string).collect::<Vec<_>>())
        .collect();
    assert!(named.len() >= 10, "the table names its tests in its last column: {named:?}");
    let mut defined = BTreeSet::new();
    for dir in ["tests", "crates", "src"] {
        functions(&root.join(dir), &mut defined);
    }
    let missing: Vec<&String> = named.iter().filter(|n| !defined.contains(*n)).collect();
    assert!(missing.is_empty(), "RELIABILITY.md names tests that do not exist: {missing:?}");
    let unlisted: Vec<&String> = defined
        .iter()
        .filter(|f| f.starts_with("reliability_") || f.starts_with("fuzz_"))
        .filter(|f| !named.contains(*f))
        .collect();
    assert!(unlisted.is_empty(), "tests missing from RELIABILITY.md: {unlisted:?}");
}
