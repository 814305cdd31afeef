//! PEP 440 specifiers as sets of versions, for the PubGrub solver.
//!
//! A specifier is a set of versions (`>=1.2,<2` is `[1.2, 2.0min)`), and
//! PubGrub intersects, unites and complements those sets while it solves.
//! `pep440_rs` has the internal `min`/`max` version components for exactly
//! this: `2.0min0` sorts below every `2.0` version (its pre-releases and dev
//! releases), `2.0max0` above every one (its post-releases and local ones).
//! Whether pre-releases may be chosen at all is decided when versions are
//! listed (see the provider), not here.

use pep440_rs::{Operator, Version, VersionSpecifier, VersionSpecifiers};
use pubgrub::Ranges;

/// The versions every specifier of `specs` allows.
pub fn of(specs: &VersionSpecifiers) -> Ranges<Version> {
    specs.iter().fold(Ranges::full(), |acc, s| acc.intersection(&of_one(s)))
}

/// The lowest version of `v`'s release (below its dev and pre-releases).
fn floor(v: &Version) -> Version {
    v.only_release().with_epoch(v.epoch()).with_min(Some(0))
}

/// The next release after `release`'s prefix of `len` parts: `1.4` for `1.3.7`
/// and len 2.
fn bump(v: &Version, len: usize) -> Version {
    let mut release: Vec<u64> = v.release().iter().copied().take(len).collect();
    while release.len() < len {
        release.push(0);
    }
    if let Some(last) = release.last_mut() {
        *last += 1;
    }
    Version::new(release).with_epoch(v.epoch()).with_min(Some(0))
}

/// The versions one specifier allows.
pub fn of_one(s: &VersionSpecifier) -> Ranges<Version> {
    let v = s.version().clone();
    match s.operator() {
        // `==1.0` is 1.0 and 1.0+local (PEP 440: a public pin matches local versions).
        Operator::Equal if v.is_local() || v.is_dev() => Ranges::singleton(v),
        Operator::Equal => Ranges::between(v.clone(), after_locals(&v)),
        Operator::ExactEqual => Ranges::singleton(v),
        Operator::NotEqual => of_one(&VersionSpecifier::equals_version(v)).complement(),
        Operator::EqualStar => star(&v),
        Operator::NotEqualStar => star(&v).complement(),
        // `~=1.4.5` is `>=1.4.5, ==1.4.*`.
        Operator::TildeEqual => {
            let len = v.release().len().saturating_sub(1).max(1);
            Ranges::between(v.clone(), bump(&v, len))
        }
        // `<2.0` excludes 2.0's pre-releases, unless it names one.
        Operator::LessThan if v.any_prerelease() => Ranges::strictly_lower_than(v),
        Operator::LessThan => Ranges::strictly_lower_than(floor(&v)),
        Operator::LessThanEqual if v.is_local() || v.is_dev() => Ranges::lower_than(v),
        Operator::LessThanEqual => Ranges::strictly_lower_than(after_locals(&v)),
        // `>1.0` excludes 1.0's post-releases and local versions, unless it names a post-release.
        Operator::GreaterThan if v.is_post() => Ranges::strictly_higher_than(v),
        Operator::GreaterThan => Ranges::strictly_higher_than(v.with_max(Some(0))),
        Operator::GreaterThanEqual => Ranges::higher_than(v),
    }
}

/// The first version above `v` and its local versions (`1.0+cpu`): its
/// first post-release's first dev release.
pub(crate) fn after_locals(v: &Version) -> Version {
    let post = v.post().map_or(0, |p| p + 1);
    v.clone().with_post(Some(post)).with_dev(Some(0))
}

/// `==1.2.*`: every version whose release starts with 1.2.
fn star(v: &Version) -> Ranges<Version> {
    let len = v.release().len();
    Ranges::between(floor(v), bump(v, len))
}

#[cfg(test)]
mod tests {
    use std::str::FromStr as _;

    use super::*;

    fn allows(spec: &str, version: &str) -> bool {
        of(&VersionSpecifiers::from_str(spec).unwrap()).contains(&Version::from_str(version).unwrap())
    }

    #[test]
    fn specifiers_as_sets() {
        let cases = [
            (">=1.2,<2", "1.2", true),
            (">=1.2,<2", "1.9.9", true),
            (">=1.2,<2", "2.0", false),
            (">=1.2,<2", "2.0a1", false),
            ("<2.0a2", "2.0a1", true),
            ("==1.0", "1.0.0", true),
            ("==1.0", "1.0+cpu", true),
            ("==1.0", "1.0.post1", false),
            ("==1.2.*", "1.2.9", true),
            ("==1.2.*", "1.3", false),
            ("!=1.5", "1.5", false),
            ("!=1.5", "1.6", true),
            ("~=1.4.5", "1.4.9", true),
            ("~=1.4.5", "1.5", false),
            ("~=2.2", "2.9", true),
            ("~=2.2", "3.0", false),
            (">1.0", "1.0.post1", false),
            (">1.0", "1.1", true),
            ("<=1.0", "1.0+local", true),
            ("===1.0", "1.0", true),
            ("==1.0.dev1", "1.0.dev1", true),
            ("<=1.0", "1.0.post1", false),
        ];
        for (spec, version, expected) in cases {
            assert_eq!(allows(spec, version), expected, "{spec} allows {version}");
        }
    }
}
