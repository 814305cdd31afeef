//! PEP 440 versions, by `pep440_rs`: epochs (`1!2.0`), pre-, post- and
//! dev-releases with every alternative spelling (`1.0-RC1` is `1.0rc1`,
//! `1.0-1` is `1.0.post1`), local versions (`2.3.0+cpu`), and ordering that
//! puts `3.13.0rc1` before `3.13`.

use std::str::FromStr as _;

pub use pep440_rs::Version;

/// Parses `v` as PEP 440 normalises it; None when it is not a PEP 440 version.
pub fn parse(v: &str) -> Option<Version> {
    Version::from_str(v.trim()).ok()
}

/// True when a file of version `candidate` fits the pin `==pin`, or `===pin`
/// when `arbitrary`.
///
/// `==` is PEP 440 equality: versions compare normalised, and a pin without a
/// local label ignores the candidate's (`==2.3.0` takes `2.3.0+cpu`, as pip
/// does), while a pin with one needs it (`==2.3.0+cpu` never takes `2.3.0`).
/// `===` is string equality, ignoring case, as the `packaging` library does:
/// `pep440_rs` would normalise both sides first, which `===` exists to avoid.
pub fn matches(candidate: &str, pin: &str, arbitrary: bool) -> bool {
    if arbitrary {
        return candidate.trim().eq_ignore_ascii_case(pin.trim());
    }
    let (Some(c), Some(p)) = (parse(candidate), parse(pin)) else { return false };
    if p.local().is_empty() { c.without_local() == p } else { c == p }
}

/// True when two pins name the same version: equal once normalised, local
/// labels included (`1.0` and `1.0.0` are; `1.0` and `1.0rc1` are not).
/// Strings that are not PEP 440 versions are compared as written.
pub fn same(a: &str, b: &str) -> bool {
    match (parse(a), parse(b)) {
        (Some(a), Some(b)) => a == b,
        _ => a.trim().eq_ignore_ascii_case(b.trim()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_release_only() {
        assert!(same("1.0", "1.0.0"));
        assert!(same("3.0.4", "3.0.4"));
        assert!(!same("1.0", "1.0rc1"));
        assert!(!same("1.0", "1.0.post1"));
        assert!(same("1.0rc1", "1.0-rc1"));
        assert!(!same("1.0", "1.1"));
    }

    #[test]
    fn epochs_count() {
        assert!(!same("1!2.0", "2.0"));
        assert!(same("0!2.0", "2.0"));
        assert!(!matches("2.0", "1!2.0", false));
        assert!(parse("1!1.0").unwrap() > parse("2024.1").unwrap());
    }

    #[test]
    fn alternative_spellings_are_normalised() {
        assert!(same("1.0alpha1", "1.0a1"));
        assert!(same("1.0-c1", "1.0rc1"));
        assert!(same("1.0.pre1", "1.0rc1"));
        assert!(same("1.0-1", "1.0.post1"));
        assert!(same("1.0_post_1", "1.0.post1"));
        assert!(same("1.0-dev2", "1.0.dev2"));
        assert!(same("V1.0", "1.0"));
        assert!(same("1.0+Ubuntu-1", "1.0+ubuntu.1"));
        assert!(matches("1.0a1", "1.0alpha1", false));
    }

    #[test]
    fn local_versions_only_match_when_the_pin_allows() {
        assert!(matches("2.3.0+cpu", "2.3.0", false), "a public pin ignores the candidate's label");
        assert!(matches("2.3.0+cpu", "2.3.0+cpu", false));
        assert!(!matches("2.3.0", "2.3.0+cpu", false), "a local pin needs its label");
        assert!(!matches("2.3.0+cu121", "2.3.0+cpu", false));
    }

    #[test]
    fn arbitrary_equality_is_a_string_comparison() {
        assert!(matches("1.0", "1.0", true));
        assert!(!matches("1.0.0", "1.0", true), "=== does not pad");
        assert!(!matches("1.0a1", "1.0alpha1", true), "=== does not normalise");
        assert!(matches("1.0-Custom", "1.0-custom", true));
    }

    #[test]
    fn pre_releases_order_before_the_release() {
        assert!(parse("3.13.0rc1").unwrap() < parse("3.13").unwrap());
        assert!(parse("3.10").unwrap() > parse("3.9").unwrap());
        assert!(parse("1.0.dev1").unwrap() < parse("1.0a1").unwrap());
        assert!(parse("1.0.post1").unwrap() > parse("1.0").unwrap());
    }
}
