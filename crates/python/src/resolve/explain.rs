//! Why a resolution failed, in plain sentences: which packages, which
//! versions, and who asked for them, with version sets written as PEP 440
//! specifiers (`flask>=3, <4`) rather than the solver's intervals.

use std::ops::Bound;

use pep440_rs::Version;
use pubgrub::{Derived, External, Map, Ranges, ReportFormatter, Term};

use super::Package;

/// The formatter the resolver's reports use.
pub struct Explain;

type Ext = External<Package, Ranges<Version>, String>;
type Terms = Map<Package, Term<Ranges<Version>>>;
type Der = Derived<Package, Ranges<Version>, String>;
/// A failed resolution's derivation tree.
pub type Tree = pubgrub::DerivationTree<Package, Ranges<Version>, String>;

/// Shows a `min`/`max` helper version as the release it stands for.
fn shown(v: &Version) -> String {
    if v.min().is_some() || v.max().is_some() {
        v.only_release().with_epoch(v.epoch()).to_string()
    } else {
        v.to_string()
    }
}

/// The version whose local versions end just below `v`, when `v` is such
/// an end (`1.5.post0.dev0` ends 1.5's): see `ranges::after_locals`.
fn locals_end(v: &Version) -> Option<Version> {
    if v.dev() != Some(0) {
        return None;
    }
    let post = v.post()?;
    let base = v.clone().with_dev(None);
    Some(if post == 0 { base.with_post(None) } else { base.with_post(Some(post - 1)) })
}

/// A set of versions as specifiers: `>=1.0, <2.0`, `==1.5`, alternatives
/// joined by `or`.
pub fn specifiers(range: &Ranges<Version>) -> String {
    let mut parts = Vec::new();
    for (low, high) in range.iter() {
        let part = match (low, high) {
            (Bound::Included(a), Bound::Included(b)) if a == b => format!("=={}", shown(a)),
            // `==1.5` is [1.5, 1.5.post0.dev0): 1.5 and its local versions.
            (Bound::Included(a), Bound::Excluded(b))
                if b.is_dev()
                    && b.is_post()
                    && a.min().is_none()
                    && a.max().is_none()
                    && a.only_release() == b.only_release()
                    && !a.is_post() =>
            {
                format!("=={}", shown(a))
            }
            (Bound::Unbounded, Bound::Unbounded) => String::new(),
            (low, high) => {
                let low = match low {
                    Bound::Included(a) if a.max().is_some() => Some(format!(">{}", shown(a))),
                    Bound::Included(a) if locals_end(a).is_some() => locals_end(a).map(|e| format!(">{}", shown(&e))),
                    Bound::Included(a) => Some(format!(">={}", shown(a))),
                    Bound::Excluded(a) => Some(format!(">{}", shown(a))),
                    Bound::Unbounded => None,
                };
                let high = match high {
                    Bound::Excluded(b) if b.max().is_some() => Some(format!("<={}", shown(b))),
                    Bound::Excluded(b) if locals_end(b).is_some() => locals_end(b).map(|e| format!("<={}", shown(&e))),
                    Bound::Excluded(b) => Some(format!("<{}", shown(b))),
                    Bound::Included(b) => Some(format!("<={}", shown(b))),
                    Bound::Unbounded => None,
                };
                low.into_iter().chain(high).collect::<Vec<_>>().join(", ")
            }
        };
        parts.push(part);
    }
    parts.join(" or ")
}

/// A package with a set of its versions, as a sentence names it.
fn term(p: &Package, range: &Ranges<Version>) -> String {
    match p {
        Package::Root => "the project".into(),
        _ if range == &Ranges::full() => format!("{p}"),
        _ => format!("{p}{}", specifiers(range)),
    }
}

/// The external facts at the leaves of `tree`, depth first, the first
/// cause of each derivation before its second.
pub fn leaves(tree: &Tree) -> Vec<&Ext> {
    let mut out = Vec::new();
    let mut stack = vec![tree];
    while let Some(node) = stack.pop() {
        match node {
            pubgrub::DerivationTree::External(e) => out.push(e),
            pubgrub::DerivationTree::Derived(d) => stack.extend([&*d.cause2, &*d.cause1]),
        }
    }
    out
}

/// The reasons of several lines in `tree`, each once, in the order met:
/// what [`Explain`] shows only the first line of, in full.
pub fn details(tree: &Tree) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for leaf in leaves(tree) {
        if let External::Custom(p, range, why) = leaf
            && why.contains('\n')
        {
            // Named once: a reason that names its version already stands alone.
            let named = term(p, range);
            let detail = if why.starts_with(&named) { why.clone() } else { format!("{named}: {why}") };
            if !out.contains(&detail) {
                out.push(detail);
            }
        }
    }
    out
}

impl ReportFormatter<Package, Ranges<Version>, String> for Explain {
    type Output = String;

    fn format_external(&self, external: &Ext) -> String {
        match external {
            External::NotRoot(..) => "the project is what is being resolved".into(),
            External::NoVersions(p, range) if range == &Ranges::full() => {
                format!(
                    "{p} has no version that fits the target (none on the indexes, or all yanked, too new for --exclude-newer, or for another Python or platform)"
                )
            }
            External::NoVersions(p, range) => format!(
                "no version of {} fits the target (none on the indexes, or all yanked, too new for --exclude-newer, or for another Python or platform)",
                term(p, range)
            ),
            // A reason of several lines (a failed build's output and what to
            // do) would run into the next clause: its first line here, the
            // rest after the sentences (see [`details`]).
            External::Custom(p, range, why) => match why.split_once('\n') {
                Some((first, _)) => {
                    format!("{} cannot be used: {} (more below)", term(p, range), first.trim_end_matches(':'))
                }
                None => format!("{} cannot be used: {why}", term(p, range)),
            },
            External::FromDependencyOf(Package::Root, _, d, rd) => format!("the project requires {}", term(d, rd)),
            External::FromDependencyOf(p, rp, d, rd) => format!("{} depends on {}", term(p, rp), term(d, rd)),
        }
    }

    fn format_terms(&self, terms: &Terms) -> String {
        let list: Vec<_> = terms.iter().collect();
        match list.as_slice() {
            [] => "no set of versions satisfies every requirement".into(),
            [(Package::Root, Term::Positive(_))] => "the project's requirements cannot all be met".into(),
            [(p, Term::Positive(r))] => format!("{} cannot be used", term(p, r)),
            [(p, Term::Negative(r))] => format!("{} is required", term(p, r)),
            [(p1, Term::Positive(r1)), (p2, Term::Negative(r2))]
            | [(p2, Term::Negative(r2)), (p1, Term::Positive(r1))] => {
                self.format_external(&External::FromDependencyOf((*p1).clone(), r1.clone(), (*p2).clone(), r2.clone()))
            }
            many => {
                let names: Vec<String> = many
                    .iter()
                    .map(|(p, t)| match t {
                        Term::Positive(r) => term(p, r),
                        Term::Negative(r) => format!("not {}", term(p, r)),
                    })
                    .collect();
                format!("{} cannot be used together", names.join(", "))
            }
        }
    }

    fn explain_both_external(&self, e1: &Ext, e2: &Ext, current: &Terms) -> String {
        format!(
            "Because {} and {}, {}.",
            self.format_external(e1),
            self.format_external(e2),
            self.format_terms(current)
        )
    }

    fn explain_both_ref(&self, id1: usize, d1: &Der, id2: usize, d2: &Der, current: &Terms) -> String {
        format!(
            "Because {} ({id1}) and {} ({id2}), {}.",
            self.format_terms(&d1.terms),
            self.format_terms(&d2.terms),
            self.format_terms(current)
        )
    }

    fn explain_ref_and_external(&self, id: usize, d: &Der, e: &Ext, current: &Terms) -> String {
        format!(
            "Because {} ({id}) and {}, {}.",
            self.format_terms(&d.terms),
            self.format_external(e),
            self.format_terms(current)
        )
    }

    fn and_explain_external(&self, e: &Ext, current: &Terms) -> String {
        format!("And because {}, {}.", self.format_external(e), self.format_terms(current))
    }

    fn and_explain_ref(&self, id: usize, d: &Der, current: &Terms) -> String {
        format!("And because {} ({id}), {}.", self.format_terms(&d.terms), self.format_terms(current))
    }

    fn and_explain_prior_and_external(&self, prior: &Ext, e: &Ext, current: &Terms) -> String {
        format!(
            "And because {} and {}, {}.",
            self.format_external(prior),
            self.format_external(e),
            self.format_terms(current)
        )
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr as _;

    use super::*;

    #[test]
    fn a_reason_of_several_lines_keeps_its_first_in_the_sentence_and_the_rest_after() {
        let uwsgi = Package::Dist("uwsgi".into());
        let v = Ranges::singleton(Version::from_str("2.0.31").unwrap());
        let why = "uwsgi==2.0.31: building uwsgi-2.0.31.tar.gz failed:\n    no C compiler\nit compiles C: use a wheel";
        let custom = External::Custom(uwsgi.clone(), v.clone(), why.to_string());
        let sentence = Explain.format_external(&custom);
        assert_eq!(
            sentence,
            "uwsgi==2.0.31 cannot be used: uwsgi==2.0.31: building uwsgi-2.0.31.tar.gz failed (more below)"
        );
        let tree = pubgrub::DerivationTree::External(custom);
        assert_eq!(details(&tree), [why]);
        // One line: all of it in the sentence, and nothing after.
        let short = External::Custom(uwsgi, v, "it needs Python >=3.12".to_string());
        assert!(Explain.format_external(&short).ends_with("cannot be used: it needs Python >=3.12"));
        assert!(details(&pubgrub::DerivationTree::External(short)).is_empty());
    }

    #[test]
    fn version_sets_read_as_specifiers() {
        let r = |s: &str| super::super::ranges::of(&pep440_rs::VersionSpecifiers::from_str(s).unwrap());
        assert_eq!(specifiers(&r(">=1.2,<2")), ">=1.2, <2");
        assert_eq!(specifiers(&r("==1.5")), "==1.5");
        assert_eq!(specifiers(&r("!=1.5")), "<1.5 or >1.5");
        assert_eq!(term(&Package::Dist("flask".into()), &Ranges::full()), "flask");
    }
}
