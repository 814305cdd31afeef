//! Package names, normalised as PEP 503 says: lowercase, runs of `-_.` as `-`.

/// The normalised form of a distribution name, by `pep508_rs`. A name it
/// refuses as invalid (which no index would serve) is only lowercased, so
/// that the error a caller reports still names it.
pub fn normalize(name: &str) -> String {
    use std::str::FromStr as _;
    pep508_rs::PackageName::from_str(name.trim()).map(|n| n.to_string()).unwrap_or_else(|_| name.to_ascii_lowercase())
}

/// Names for a message: `a, b`, or `none` when there are none (what an
/// error lists as the extras or groups a project does have).
pub fn listed<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> String {
    let names: Vec<S> = names.into_iter().collect();
    if names.is_empty() {
        return "none".to_string();
    }
    names.iter().map(AsRef::as_ref).collect::<Vec<_>>().join(", ")
}

/// True for a valid distribution (or extra) name, as PEP 508 spells one:
/// ASCII letters and digits, with `.`, `-` and `_` inside.
pub fn is_valid(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_'))
}

/// Parses a PEP 508 requirement with `pep508_rs`, after checking the name
/// and extras that its parser would otherwise panic on: pep508_rs 0.9 takes
/// a name ending in `.`, `-` or `_` before another character (`torreth-.`,
/// found by fuzzing) and then fails its own validation with a panic. A
/// requirement comes from a lock or a wheel's METADATA, so it is untrusted.
pub fn parse_requirement(spec: &str) -> Result<pep508_rs::Requirement<pep508_rs::VerbatimUrl>, String> {
    use std::str::FromStr as _;
    // pep508_rs 0.9 slices its input by byte offsets in places and panics
    // inside a multi-byte character (found by fuzzing); PEP 508
    // requirements are ASCII in practice, so anything else is refused.
    if !spec.is_ascii() {
        return Err("a requirement must be ASCII text".into());
    }
    let rest = spec.trim_start();
    let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))).unwrap_or(rest.len());
    if !is_valid(&rest[..end]) {
        return Err(format!("`{}` is not a valid package name", &rest[..end]));
    }
    if let Some(open) = rest[end..].trim_start().strip_prefix('[') {
        let inside = open.split(']').next().unwrap_or("");
        for extra in inside.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if !is_valid(extra) {
                return Err(format!("`{extra}` is not a valid extra name"));
            }
        }
    }
    // Only the message: pep508_rs 0.9's Display of its error underlines the
    // input by byte offsets and panics inside a multi-byte character (also
    // found by fuzzing).
    pep508_rs::Requirement::from_str(spec).map_err(|e| e.message.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_pep508_would_panic_on_are_errors() {
        assert!(super::parse_requirement("torreth-.\u{ff}").is_err());
        let e =
            super::parse_requirement("click==8.1.8 ; python_version >= \"2\" and \u{fffd}\u{fffd} ion").unwrap_err();
        assert!(!e.is_empty());
        assert!(super::parse_requirement("a[x-. ]").is_err());
        assert!(super::parse_requirement("flask[async] ==3.1.0").is_ok());
    }

    #[test]
    fn pep503() {
        assert_eq!(super::normalize("MarkupSafe"), "markupsafe");
        assert_eq!(super::normalize("zope.interface"), "zope-interface");
        assert_eq!(super::normalize("Foo__Bar-.baz"), "foo-bar-baz");
    }
}
