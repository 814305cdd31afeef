//! Honest dependency checks, made before a layer is written or anything is
//! pushed, so that an image never fails at import:
//! - **Requires-Python**: the lock's own `requires-python` and each wheel's
//!   `Requires-Python` must admit the target's interpreter;
//! - **completeness**: every installed distribution's `Requires-Dist`,
//!   evaluated for the target with the extras asked of it, must be met by
//!   the installed set, at a version its specifier allows.
//!
//! Every problem is reported at once, with who needs what, rather than one
//! per run.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr as _;

use pep508_rs::{ExtraName, Requirement, VerbatimUrl, VersionOrUrl};

use crate::name::normalize;
use crate::{Error, Target};

/// One distribution that the image will hold.
#[derive(Debug, Clone)]
pub struct Dist {
    /// Its name, as written.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Where it came from (a wheel's file name, or the lower layer).
    pub from: String,
    /// What it needs; None for a distribution already checked in a lower
    /// layer (it counts as installed, its own needs are not checked again).
    pub requires: Option<crate::wheel::Requires>,
}

/// The target's interpreter version, as PEP 440 compares it.
fn interpreter(target: &Target) -> Option<pep440_rs::Version> {
    pep440_rs::Version::from_str(&target.full_version).ok()
}

/// Checks the lock's own `requires-python` against the target, before any
/// wheel is looked at: a lock made for another Python says so, instead of
/// failing later on every wheel.
pub fn lock_requires_python(spec: &str, lock: &str, target: &Target) -> Result<(), Error> {
    let Some(version) = interpreter(target) else { return Ok(()) };
    let Ok(specs) = pep440_rs::VersionSpecifiers::from_str(spec) else { return Ok(()) };
    if specs.contains(&version) {
        return Ok(());
    }
    Err(Error::Lock {
        file: lock.to_string(),
        line: 0,
        message: format!(
            "the lock is for Python {spec} (its requires-python), and the base has Python {}: use a base whose Python fits ([image] base, or --base), or, if the project runs on {}.{}, allow it in the project's requires-python and lock again",
            target.full_version, target.major, target.minor
        ),
    })
}

/// Checks `dists` (everything the image will hold) for the target: every
/// `Requires-Python` and every applicable `Requires-Dist`. `extras` are the
/// extras the lock asks of each package (normalised name to extras).
pub fn dependencies(
    dists: &[Dist],
    extras: &BTreeMap<String, BTreeSet<String>>,
    target: &Target,
    lock: &str,
) -> Result<(), Error> {
    let env = target.marker_environment()?;
    let env = env.pep508();
    let version = interpreter(target);
    let mut problems: Vec<String> = Vec::new();
    // Requires-Python, naming the package and both versions: kept apart and
    // said first, since no lock for this Python can mend them.
    let mut python: Vec<String> = Vec::new();
    for d in dists {
        let Some(spec) = d.requires.as_ref().and_then(|r| r.python.as_deref()) else { continue };
        let (Some(v), Ok(specs)) = (&version, pep440_rs::VersionSpecifiers::from_str(spec)) else { continue };
        if !specs.contains(v) {
            python.push(format!(
                "{} {} needs Python {spec} (Requires-Python of {}), and the base has Python {}",
                d.name, d.version, d.from, target.full_version
            ));
        }
    }

    // Parse each Requires-Dist once; one a tool wrote that PEP 508 cannot
    // read is left out rather than guessed at.
    let parsed: Vec<(usize, Requirement<VerbatimUrl>)> = dists
        .iter()
        .enumerate()
        .flat_map(|(i, d)| {
            d.requires
                .iter()
                .flat_map(|r| r.dist.iter())
                .filter_map(move |r| crate::name::parse_requirement(r).ok().map(|r| (i, r)))
        })
        .collect();
    let installed: BTreeMap<String, usize> = dists.iter().enumerate().map(|(i, d)| (normalize(&d.name), i)).collect();

    // The extras asked of each installed package: the lock's, and those its
    // dependants' requirements ask for, until nothing more is asked.
    let mut asked: BTreeMap<String, BTreeSet<String>> = extras.clone();
    let applies = |asked: &BTreeMap<String, BTreeSet<String>>, i: usize, r: &Requirement<VerbatimUrl>| {
        let of: Vec<ExtraName> = asked
            .get(&normalize(&dists[i].name))
            .into_iter()
            .flatten()
            .filter_map(|e| ExtraName::from_str(e).ok())
            .collect();
        r.evaluate_markers(env, &of)
    };
    loop {
        let mut more = false;
        for (i, r) in &parsed {
            if !applies(&asked, *i, r) || r.extras.is_empty() {
                continue;
            }
            let set = asked.entry(normalize(r.name.as_ref())).or_default();
            for e in &r.extras {
                more |= set.insert(normalize(e.as_ref()));
            }
        }
        if !more {
            break;
        }
    }

    for (i, r) in &parsed {
        if !applies(&asked, *i, r) {
            continue;
        }
        let who = &dists[*i];
        let needed = normalize(r.name.as_ref());
        let spec = match &r.version_or_url {
            Some(VersionOrUrl::VersionSpecifier(s)) if !s.is_empty() => format!(" {s}"),
            _ => String::new(),
        };
        let Some(&j) = installed.get(&needed) else {
            problems.push(format!("{}{spec}, needed by {} {}: not in the lock", r.name, who.name, who.version));
            continue;
        };
        if let Some(VersionOrUrl::VersionSpecifier(specs)) = &r.version_or_url
            && let Ok(have) = pep440_rs::Version::from_str(&dists[j].version)
            && !specs.contains(&have)
        {
            problems.push(format!(
                "{}{spec}, needed by {} {}: the lock has {} {}",
                r.name, who.name, who.version, dists[j].name, dists[j].version
            ));
        }
    }
    if problems.is_empty() && python.is_empty() {
        return Ok(());
    }
    problems.sort();
    problems.dedup();
    python.sort();
    // pip freeze and Poetry leave these out of locks, and `python -m venv`
    // used to add them, so old packages that need them worked by accident.
    let unlocked: Vec<&str> = ["setuptools", "pip", "wheel"]
        .into_iter()
        .filter(|n| problems.iter().any(|p| p.starts_with(&format!("{n} ")) && p.ends_with("not in the lock")))
        .collect();
    let hint = if unlocked.is_empty() {
        String::new()
    } else {
        format!(
            "\n{} {} left out of locks by pip freeze and Poetry (a venv made by `python -m venv` once added {}); add {} to the lock (`poetry add {}`, or a pin in the requirements file)",
            unlocked.join(" and "),
            if unlocked.len() == 1 { "is" } else { "are" },
            if unlocked.len() == 1 { "it" } else { "them" },
            if unlocked.len() == 1 { "it" } else { "them" },
            unlocked.join(" ")
        )
    };
    if !python.is_empty() {
        let others = if problems.is_empty() {
            String::new()
        } else {
            format!("\nand once that is mended, {} more:\n  - {}", problems.len(), problems.join("\n  - "))
        };
        return Err(Error::Lock {
            file: lock.to_string(),
            line: 0,
            message: format!(
                "{} package{} of the lock cannot run on the base's Python {}:\n  - {}\nthese versions cannot run here whatever else is locked: require versions that support Python {} and lock again (`oxbuild lock` picks them where the requirements allow it), or use a base with a Python that fits{others}{hint}",
                python.len(),
                if python.len() == 1 { "" } else { "s" },
                target.full_version,
                python.join("\n  - "),
                target.full_version,
            ),
        });
    }
    Err(Error::Lock {
        file: lock.to_string(),
        line: 0,
        message: format!(
            "the image would fail when its packages are imported on Python {} ({}): {} problem{}:\n  - {}\nlock every dependency for this Python (`oxbuild lock`, which resolves for the base's own Python and platforms; or `uv pip compile requirements.in --generate-hashes -o requirements.txt`, `uv lock`, `pip-compile`), or use a base with a Python that fits, then build again{hint}",
            target.full_version,
            target.machine,
            problems.len(),
            if problems.len() == 1 { "" } else { "s" },
            problems.join("\n  - ")
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wheel::Requires;

    fn dist(name: &str, version: &str, dist: &[&str], python: Option<&str>) -> Dist {
        Dist {
            name: name.into(),
            version: version.into(),
            from: format!("{name}-{version}-py3-none-any.whl"),
            requires: Some(Requires {
                dist: dist.iter().map(|s| s.to_string()).collect(),
                python: python.map(str::to_string),
            }),
        }
    }

    fn target() -> Target {
        crate::tags::debian("x86_64")
    }

    fn check(dists: &[Dist], extras: &[(&str, &str)]) -> Result<(), String> {
        let mut asked: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (n, e) in extras {
            asked.entry(n.to_string()).or_default().insert(e.to_string());
        }
        dependencies(dists, &asked, &target(), "requirements.txt").map_err(|e| e.to_string())
    }

    #[test]
    fn a_plugin_of_the_project_is_met_by_the_project_of_any_version() {
        let plugin = dist("kinto-attachment", "8.0.0", &["kinto>=18"], None);
        let e = check(std::slice::from_ref(&plugin), &[]).unwrap_err();
        assert!(e.contains("kinto >=18, needed by kinto-attachment 8.0.0: not in the lock"), "{e}");
        // The project the build installs, whose version is its own to say.
        let project =
            Dist { name: "kinto".into(), version: String::new(), from: "the project itself".into(), requires: None };
        check(&[plugin, project], &[]).unwrap();
    }

    #[test]
    fn a_complete_set_passes_and_markers_and_extras_are_evaluated_for_the_target() {
        let dists = [
            dist(
                "Flask",
                "3.1.0",
                &[
                    "Werkzeug>=3.1",
                    "click>=8.1.3",
                    "colorama; platform_system == \"Windows\"",
                    "asgiref>=3.2; extra == \"async\"",
                    "importlib-metadata>=3.6; python_version < \"3.10\"",
                ],
                Some(">=3.9"),
            ),
            dist("werkzeug", "3.1.3", &["MarkupSafe>=2.1.1"], None),
            dist("click", "8.1.8", &[], Some(">=3.7")),
            dist("markupsafe", "3.0.2", &[], None),
        ];
        assert_eq!(check(&dists, &[]), Ok(()));
        let e = check(&dists, &[("flask", "async")]).unwrap_err();
        assert!(e.contains("asgiref >=3.2, needed by Flask 3.1.0: not in the lock"), "{e}");
        assert!(e.contains("1 problem:"), "{e}");
    }

    #[test]
    fn every_missing_and_conflicting_requirement_is_named_with_who_needs_it() {
        let dists = [
            dist("app-lib", "1.0", &["requests[socks]>=2.30", "idna<3"], None),
            dist(
                "requests",
                "2.32.3",
                &["idna>=2.5,<4", "urllib3>=1.21.1", "PySocks>=1.5.6; extra == \"socks\""],
                None,
            ),
            dist("idna", "3.7", &[], None),
        ];
        let e = check(&dists, &[]).unwrap_err();
        assert!(e.contains("urllib3 >=1.21.1, needed by requests 2.32.3: not in the lock"), "{e}");
        assert!(e.contains("pysocks >=1.5.6, needed by requests 2.32.3: not in the lock"), "extras travel: {e}");
        assert!(e.contains("idna <3, needed by app-lib 1.0: the lock has idna 3.7"), "{e}");
        assert!(e.contains("3 problems:"), "{e}");
        assert!(e.contains("uv pip compile"), "{e}");
    }

    #[test]
    fn setuptools_left_out_of_a_lock_gets_its_own_hint() {
        let dists = [dist("gunicorn", "20.0.4", &["setuptools>=3.0"], None)];
        let e = check(&dists, &[]).unwrap_err();
        assert!(
            e.contains("setuptools >=3.0, needed by gunicorn 20.0.4") && e.contains("poetry add setuptools"),
            "{e}"
        );
    }

    #[test]
    fn requires_python_names_the_package_and_both_versions() {
        let dists = [dist("Django", "5.2", &[], Some(">=3.12"))];
        let e = check(&dists, &[]).unwrap_err();
        assert!(e.contains("Django 5.2 needs Python >=3.12") && e.contains("the base has Python 3.11"), "{e}");
        // Said first and apart from what a lock would mend.
        let dists = [dist("Django", "6.1", &["asgiref>=3.9", "sqlparse"], Some(">=3.12"))];
        let e = check(&dists, &[]).unwrap_err();
        assert!(e.contains("1 package of the lock cannot run on the base's Python 3.11"), "{e}");
        assert!(e.contains("cannot run here whatever else is locked"), "{e}");
        let (python, rest) = e.split_once("and once that is mended, 2 more:").expect("the rest after");
        assert!(
            python.contains("Django 6.1 needs")
                && rest.contains("asgiref >=3.9, needed by Django 6.1: not in the lock"),
            "{e}"
        );
        let e = lock_requires_python("==3.12.*", "uv.lock", &target()).unwrap_err().to_string();
        assert!(e.starts_with("uv.lock: the lock is for Python ==3.12.*") && e.contains("Python 3.11"), "{e}");
        assert!(lock_requires_python(">=3.9", "uv.lock", &target()).is_ok());
    }

    #[test]
    fn a_lower_layers_packages_count_as_installed() {
        let prod = Dist { name: "flask".into(), version: "3.1.0".into(), from: "production".into(), requires: None };
        let dists = [prod, dist("pytest-flask", "1.3.0", &["Flask", "pytest>=5.2"], None)];
        let e = check(&dists, &[]).unwrap_err();
        assert!(e.contains("pytest >=5.2, needed by pytest-flask") && !e.contains("Flask,"), "{e}");
    }
}
