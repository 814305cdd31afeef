//! Locks whose packages say which groups need them: `Pipfile.lock`
//! (`default` and `develop`), `poetry.lock` (Poetry 2: `groups` and
//! per-group `markers`; production is `main`) and `pdm.lock` (`groups`;
//! production is `default`). Each is read directly, no tool installed, into
//! the same pins as every other lock: production takes the production
//! group, a test variant the groups it names.
//!
//! Poetry and Pipenv locks name their files and hashes but not where the
//! files are, so those wheels come from the index (PyPI, the lock's own
//! source, or `[python] index-url`), checked against the lock's hashes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::str::FromStr as _;

use crate::marker::{Environment, Marker};
use crate::name::normalize;
use crate::requirements::{Pin, Requirements, Selection};
use crate::source::{Candidate, Location};
use crate::{Error, Target};

/// The group production installs from each format.
pub fn production_group(file: &str) -> &'static str {
    match file {
        "Pipfile.lock" => "default",
        "poetry.lock" => "main",
        _ => "default",
    }
}

/// The groups a test variant installs from each format when `[python]
/// test-groups` names none.
pub fn default_test_group(file: &str) -> &'static str {
    match file {
        "Pipfile.lock" => "develop",
        _ => "dev",
    }
}

/// The groups to install from lock `file`: its production group when the
/// selection asks for production, and the named ones.
fn wanted(file: &str, selection: &Selection) -> Vec<String> {
    let production = selection.production.then(|| production_group(file).to_string());
    production.into_iter().chain(selection.groups.iter().cloned()).collect()
}

fn lock_err(file: &str, message: String) -> Error {
    Error::Lock { file: file.to_string(), line: 0, message }
}

/// Whether `marker` (absent: always) holds for the target.
fn holds(marker: Option<&str>, env: &Environment, file: &str) -> Result<bool, Error> {
    match marker.map(str::trim).filter(|m| !m.is_empty()) {
        None => Ok(true),
        Some(m) => Ok(Marker::parse(m).map_err(|e| lock_err(file, e))?.evaluate(env)),
    }
}

fn sha256_of(hash: &str) -> Option<String> {
    hash.strip_prefix("sha256:").map(str::to_ascii_lowercase)
}

/// Pipfile.lock (JSON): `default` for production, or the sections named
/// by `groups` (`develop`).
pub fn pipfile(text: &str, file: &str, target: &Target, selection: &Selection) -> Result<Requirements, Error> {
    let doc: serde_json::Value = serde_json::from_str(text).map_err(|e| Error::Lock {
        file: file.to_string(),
        line: e.line(),
        message: format!("not a Pipfile.lock: {e}"),
    })?;
    let env = target.marker_environment()?;
    let sections = wanted("Pipfile.lock", selection);
    let mut pins = Vec::new();
    for section in &sections {
        let Some(packages) = doc.get(section).and_then(|s| s.as_object()) else {
            return Err(lock_err(file, format!("has no `{section}` section (it has default and develop)")));
        };
        for (name, p) in packages {
            let origin = format!("{file} ({section}: {name})");
            if !holds(p.get("markers").and_then(|m| m.as_str()), &env, file)? {
                continue;
            }
            for kind in ["git", "path", "file", "hg", "svn"] {
                if let Some(at) = p.get(kind).and_then(|v| v.as_str()) {
                    let at = if kind == "path" { at.to_string() } else { oxbuild_http::redact(at) };
                    return Err(lock_err(
                        file,
                        format!(
                            "`{name}` comes from {kind} `{at}`, which oxbuild cannot install yet: publish it as a wheel (a find-links wheelhouse or an index) and lock that version"
                        ),
                    ));
                }
            }
            let version = p
                .get("version")
                .and_then(|v| v.as_str())
                .and_then(|v| v.strip_prefix("=="))
                .ok_or_else(|| lock_err(file, format!("`{name}` has no `==` version")))?;
            let hashes: Vec<String> = p
                .get("hashes")
                .and_then(|h| h.as_array())
                .into_iter()
                .flatten()
                .filter_map(|h| h.as_str().and_then(sha256_of))
                .collect();
            let extras = p.get("extras").and_then(|e| e.as_array()).into_iter().flatten().filter_map(|e| e.as_str());
            pins.push(Pin {
                name: name.clone(),
                version: version.to_string(),
                arbitrary: false,
                hashes,
                marker: None,
                origin,
                direct: Vec::new(),
                dependencies: Vec::new(),
                extras: extras.map(normalize).collect(),
                tree: None,
            });
        }
    }
    let meta = &doc["_meta"];
    let mut out = Requirements { pins: merge(pins), ..Default::default() };
    // The first source is the index Pipenv locked against (PyPI by default);
    // one written with `${VAR}` is left to [python] index-url.
    // pypi.python.org is PyPI's old name, which Pipfiles still carry.
    let pypi = |u: &str| ["https://pypi.org/simple", "https://pypi.python.org/simple"].iter().any(|p| u.starts_with(p));
    if let Some(url) = meta["sources"][0]["url"].as_str()
        && !url.contains("${")
        && !pypi(url)
    {
        out.options.index_url = Some(url.to_string());
    }
    out.requires_python = meta["requires"]["python_full_version"]
        .as_str()
        .map(|v| format!("=={v}"))
        .or_else(|| meta["requires"]["python_version"].as_str().map(|v| format!("=={v}.*")));
    Ok(out)
}

/// poetry.lock (Poetry 2, lock-version 2.1): the packages whose `groups`
/// include `main` (or those named by `groups`), where the group's marker holds.
/// A lock without per-package `groups` (Poetry 1, and lock-version 2.0) is
/// walked from the groups of `pyproject` (the pyproject.toml beside it).
pub fn poetry(
    doc: &toml::Table,
    pyproject: Option<&toml::Table>,
    file: &str,
    target: &Target,
    selection: &Selection,
) -> Result<Requirements, Error> {
    let env = target.marker_environment()?;
    let wanted = wanted("poetry.lock", selection);
    let packages = doc.get("package").and_then(|p| p.as_array()).cloned().unwrap_or_default();
    let walked = if packages.iter().any(|p| p.get("groups").is_some()) {
        None
    } else {
        let Some(pyproject) = pyproject else {
            return Err(lock_err(
                file,
                "has no `groups` per package (written by Poetry 1), and no pyproject.toml is beside it to say what each group needs; put the lock beside its pyproject.toml, or run `poetry lock` with Poetry 2".into(),
            ));
        };
        Some(poetry_walk(&packages, pyproject, file, target, &env, selection)?)
    };
    let mut pins = Vec::new();
    let mut seen_groups = BTreeSet::new();
    for p in packages.iter().filter_map(|p| p.as_table()) {
        let name = p.get("name").and_then(|v| v.as_str()).unwrap_or("?").to_string();
        let needed = match &walked {
            Some(needed) => needed.contains(&normalize(&name)),
            None => {
                let pkg_groups: Vec<&str> = p
                    .get("groups")
                    .and_then(|g| g.as_array())
                    .into_iter()
                    .flatten()
                    .filter_map(|g| g.as_str())
                    .collect();
                seen_groups.extend(pkg_groups.iter().map(|g| g.to_string()));
                let mut needed = false;
                for g in wanted.iter().filter(|g| pkg_groups.contains(&g.as_str())) {
                    let marker = match p.get("markers") {
                        Some(toml::Value::String(m)) => Some(m.as_str()),
                        Some(toml::Value::Table(t)) => t.get(g.as_str()).and_then(|m| m.as_str()),
                        _ => None,
                    };
                    needed |= holds(marker, &env, file)?;
                }
                needed
            }
        };
        if !needed {
            continue;
        }
        if let Some(source) = p.get("source").and_then(|s| s.as_table()) {
            let kind = source.get("type").and_then(|t| t.as_str()).unwrap_or("");
            if kind != "legacy" && !kind.is_empty() {
                let url = source.get("url").and_then(|u| u.as_str()).unwrap_or("");
                return Err(lock_err(
                    file,
                    format!(
                        "`{name}` comes from a {kind} source `{}`, which oxbuild cannot install yet: publish it as a wheel (a find-links wheelhouse or an index) and lock that version",
                        oxbuild_http::redact(url)
                    ),
                ));
            }
        }
        let version = p
            .get("version")
            .and_then(|v| v.as_str())
            .ok_or_else(|| lock_err(file, format!("`{name}` has no version")))?;
        let hashes: Vec<String> = p
            .get("files")
            .and_then(|f| f.as_array())
            .into_iter()
            .flatten()
            .filter_map(|f| f.get("hash").and_then(|h| h.as_str()).and_then(sha256_of))
            .collect();
        let mut dependencies: Vec<String> = p
            .get("dependencies")
            .and_then(|d| d.as_table())
            .map(|d| d.keys().map(|k| normalize(k)).collect())
            .unwrap_or_default();
        dependencies.sort();
        pins.push(Pin {
            name: name.clone(),
            version: version.to_string(),
            arbitrary: false,
            hashes,
            marker: None,
            origin: format!("{file} (package {name})"),
            direct: Vec::new(),
            dependencies,
            extras: Vec::new(),
            tree: None,
        });
    }
    for g in selection.groups.iter().filter(|_| walked.is_none()) {
        if !seen_groups.contains(g) {
            let known: Vec<String> = seen_groups.iter().cloned().collect();
            return Err(lock_err(
                file,
                format!(
                    "no package is in group `{g}` (groups in the lock: {}); fix [python] groups or test-groups",
                    known.join(", ")
                ),
            ));
        }
    }
    let mut out = Requirements { pins, ..Default::default() };
    out.requires_python =
        doc.get("metadata").and_then(|m| m.get("python-versions")).and_then(|v| v.as_str()).and_then(poetry_constraint);
    Ok(out)
}

/// The packages a lock without per-package groups needs for `selection`:
/// from the pyproject's dependencies (`[tool.poetry.dependencies]`, or
/// `[project] dependencies`) and the named groups
/// (`[tool.poetry.group.<name>.dependencies]`; `dev` is also the old
/// `[tool.poetry.dev-dependencies]`), through each package's dependencies
/// and the extras asked of it, where markers and Python constraints hold.
fn poetry_walk(
    packages: &[toml::Value],
    pyproject: &toml::Table,
    file: &str,
    target: &Target,
    env: &Environment,
    selection: &Selection,
) -> Result<BTreeSet<String>, Error> {
    let mut by_name: BTreeMap<String, &toml::Table> = BTreeMap::new();
    for p in packages.iter().filter_map(|p| p.as_table()) {
        by_name.entry(normalize(p.get("name").and_then(|n| n.as_str()).unwrap_or(""))).or_insert(p);
    }
    let poetry = pyproject.get("tool").and_then(|t| t.get("poetry")).and_then(|p| p.as_table());
    // (name, extras) still to visit; constraints are checked as they are read.
    let mut queue: Vec<(String, Vec<String>)> = Vec::new();
    let python = pep440_rs::Version::from_str(&target.full_version).ok();
    let applies = |spec: &toml::Value| -> Result<Option<Vec<String>>, Error> {
        // A dependency spec: "^1.0", or a table (version, markers, python,
        // extras, optional), or a list of such tables for different markers.
        let tables: Vec<&toml::Table> = match spec {
            toml::Value::Table(t) => vec![t],
            toml::Value::Array(a) => a.iter().filter_map(|t| t.as_table()).collect(),
            _ => return Ok(Some(Vec::new())),
        };
        for t in tables {
            if t.get("optional").and_then(|o| o.as_bool()) == Some(true) {
                continue;
            }
            if !holds(t.get("markers").and_then(|m| m.as_str()), env, file)? {
                continue;
            }
            if let (Some(c), Some(v)) = (t.get("python").and_then(|p| p.as_str()), &python)
                && let Some(specs) = poetry_constraint(c).and_then(|c| pep440_rs::VersionSpecifiers::from_str(&c).ok())
                && !specs.contains(v)
            {
                continue;
            }
            let extras = t.get("extras").and_then(|e| e.as_array()).into_iter().flatten();
            return Ok(Some(extras.filter_map(|e| e.as_str()).map(normalize).collect()));
        }
        Ok(None)
    };
    let add_table = |deps: &toml::Table, queue: &mut Vec<(String, Vec<String>)>| -> Result<(), Error> {
        for (name, spec) in deps {
            if name == "python" {
                continue;
            }
            if let Some(extras) = applies(spec)? {
                queue.push((normalize(name), extras));
            }
        }
        Ok(())
    };
    if selection.production {
        if let Some(deps) = poetry.and_then(|p| p.get("dependencies")).and_then(|d| d.as_table()) {
            add_table(deps, &mut queue)?;
        }
        let pep621 = pyproject.get("project").and_then(|p| p.get("dependencies")).and_then(|d| d.as_array());
        for r in pep621.into_iter().flatten().filter_map(|r| r.as_str()) {
            let r = crate::name::parse_requirement(r).map_err(|e| lock_err(file, format!("pyproject.toml: {e}")))?;
            if r.evaluate_markers(env.pep508(), &[]) {
                queue.push((normalize(r.name.as_ref()), r.extras.iter().map(|e| normalize(e.as_ref())).collect()));
            }
        }
    }
    for g in &selection.groups {
        let group = poetry
            .and_then(|p| p.get("group"))
            .and_then(|gs| gs.get(g.as_str()))
            .and_then(|g| g.get("dependencies"))
            .and_then(|d| d.as_table())
            .or_else(|| (g == "dev").then(|| poetry.and_then(|p| p.get("dev-dependencies"))?.as_table()).flatten());
        let Some(deps) = group else {
            let known =
                poetry.and_then(|p| p.get("group")).and_then(|g| g.as_table()).into_iter().flat_map(|g| g.keys());
            return Err(lock_err(
                file,
                format!(
                    "pyproject.toml has no group `{g}` (groups: {}); fix [python] groups or test-groups",
                    crate::name::listed(known)
                ),
            ));
        };
        add_table(deps, &mut queue)?;
    }
    let mut needed: BTreeSet<String> = BTreeSet::new();
    let mut extras_seen: BTreeSet<(String, String)> = BTreeSet::new();
    while let Some((name, extras)) = queue.pop() {
        let Some(p) = by_name.get(&name) else { continue };
        let first = needed.insert(name.clone());
        for extra in extras {
            if !extras_seen.insert((name.clone(), extra.clone())) {
                continue;
            }
            // `[package.extras]`: "name (>=1.0)" or "name[x] (>=1.0) ; marker".
            let listed = p.get("extras").and_then(|e| e.get(extra.as_str())).and_then(|l| l.as_array());
            for item in listed.into_iter().flatten().filter_map(|i| i.as_str()) {
                let (head, marker) = item.split_once(';').map_or((item, None), |(h, m)| (h, Some(m)));
                if !holds(marker, env, file)? {
                    continue;
                }
                let dep = head.split([' ', '(', '[']).next().unwrap_or("");
                queue.push((normalize(dep), Vec::new()));
            }
        }
        if first && let Some(deps) = p.get("dependencies").and_then(|d| d.as_table()) {
            add_table(deps, &mut queue)?;
        }
    }
    Ok(needed)
}

/// pdm.lock: the packages whose `groups` include `default` (or those named by
/// `groups`) and whose marker holds.
pub fn pdm(
    doc: &toml::Table,
    file: &str,
    dir: &Path,
    target: &Target,
    selection: &Selection,
) -> Result<Requirements, Error> {
    let env = target.marker_environment()?;
    let wanted = wanted("pdm.lock", selection);
    let packages = doc.get("package").and_then(|p| p.as_array()).cloned().unwrap_or_default();
    let mut pins = Vec::new();
    for p in packages.iter().filter_map(|p| p.as_table()) {
        let name = p.get("name").and_then(|v| v.as_str()).unwrap_or("?").to_string();
        let pkg_groups: Vec<&str> =
            p.get("groups").and_then(|g| g.as_array()).into_iter().flatten().filter_map(|g| g.as_str()).collect();
        if !wanted.iter().any(|g| pkg_groups.contains(&g.as_str())) {
            continue;
        }
        if !holds(p.get("marker").and_then(|m| m.as_str()), &env, file)? {
            continue;
        }
        let version = p.get("version").and_then(|v| v.as_str()).ok_or_else(|| {
            lock_err(
                file,
                format!("`{name}` has no version (a VCS or directory package), which oxbuild cannot install yet"),
            )
        })?;
        let mut hashes = Vec::new();
        let mut direct = Vec::new();
        for f in p.get("files").and_then(|f| f.as_array()).into_iter().flatten().filter_map(|f| f.as_table()) {
            let sha = f.get("hash").and_then(|h| h.as_str()).and_then(sha256_of);
            hashes.extend(sha.clone());
            if let Some(url) = f.get("url").and_then(|u| u.as_str()).and_then(|u| url::Url::parse(u).ok())
                && let Some(filename) = url.path_segments().and_then(|mut s| s.next_back()).map(str::to_string)
            {
                direct.push(Candidate {
                    filename,
                    location: Location::Direct(url),
                    sha256: sha,
                    yanked: None,
                    upload_time: None,
                    requires_python: None,
                    metadata: false,
                });
            } else if let Some(path) = f.get("path").and_then(|p| p.as_str()) {
                let path = dir.join(path);
                let filename = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                direct.push(Candidate {
                    filename,
                    location: Location::File(path),
                    sha256: sha,
                    yanked: None,
                    upload_time: None,
                    requires_python: None,
                    metadata: false,
                });
            }
        }
        let extras = p.get("extras").and_then(|e| e.as_array()).into_iter().flatten().filter_map(|e| e.as_str());
        let dependencies = p
            .get("dependencies")
            .and_then(|d| d.as_array())
            .into_iter()
            .flatten()
            .filter_map(|d| d.as_str())
            .filter_map(|d| crate::name::parse_requirement(d).ok())
            .map(|r| normalize(r.name.as_ref()))
            .collect();
        pins.push(Pin {
            name: name.clone(),
            version: version.to_string(),
            arbitrary: false,
            hashes,
            marker: None,
            origin: format!("{file} (package {name})"),
            direct,
            dependencies,
            extras: extras.map(normalize).collect(),
            tree: None,
        });
    }
    let mut out = Requirements { pins: merge(pins), ..Default::default() };
    // PDM 2.2x writes it per target (`[[metadata.targets]]`); older ones in `[metadata]`.
    let meta = doc.get("metadata");
    let targets = meta.and_then(|m| m.get("targets")).and_then(|t| t.as_array()).cloned().unwrap_or_default();
    out.requires_python = meta
        .and_then(|m| m.get("requires_python"))
        .or_else(|| if targets.len() == 1 { targets[0].get("requires_python") } else { None })
        .and_then(|v| v.as_str())
        .map(str::to_string);
    Ok(out)
}

/// One pin per package and version: PDM and Pipenv list `name[extra]` as
/// entries of their own, so their extras and files are merged.
fn merge(pins: Vec<Pin>) -> Vec<Pin> {
    let mut by: BTreeMap<(String, String), Pin> = BTreeMap::new();
    let mut order = Vec::new();
    for pin in pins {
        let key = (pin.key(), pin.version.clone());
        match by.get_mut(&key) {
            Some(have) => {
                for e in pin.extras {
                    if !have.extras.contains(&e) {
                        have.extras.push(e);
                    }
                }
                for h in pin.hashes {
                    if !have.hashes.contains(&h) {
                        have.hashes.push(h);
                    }
                }
                have.direct.extend(pin.direct);
                have.dependencies.extend(pin.dependencies);
                have.dependencies.sort();
                have.dependencies.dedup();
            }
            None => {
                order.push(key.clone());
                by.insert(key, pin);
            }
        }
    }
    order.into_iter().filter_map(|k| by.remove(&k)).collect()
}

/// A Poetry version constraint (`^3.11`, `~3.11`, `>=3.11,<4.0`, `3.11.*`,
/// `*`) as a PEP 440 specifier set; None for what it cannot say (`||`).
pub fn poetry_constraint(c: &str) -> Option<String> {
    let c = c.trim();
    if c.contains("||") {
        return None;
    }
    let mut out = Vec::new();
    for part in c.split([',', ' ']).map(str::trim).filter(|p| !p.is_empty()) {
        if part == "*" {
            continue;
        }
        let bump = |v: &str, at: usize| -> Option<String> {
            let mut n: Vec<u64> = v.split('.').map(|x| x.parse().ok()).collect::<Option<_>>()?;
            let at = at.min(n.len() - 1);
            n[at] += 1;
            n.truncate(at + 1);
            Some(n.iter().map(u64::to_string).collect::<Vec<_>>().join("."))
        };
        if let Some(v) = part.strip_prefix('^') {
            // ^3.11 is >=3.11,<4; ^0.3 is >=0.3,<0.4.
            let first_nonzero = v.split('.').position(|x| x != "0").unwrap_or(0);
            out.push(format!(">={v}"));
            out.push(format!("<{}", bump(v, first_nonzero)?));
        } else if let Some(v) = part.strip_prefix('~').filter(|v| !v.starts_with('=')) {
            // ~3.11 is >=3.11,<3.12; ~3 is >=3,<4.
            let parts = v.split('.').count();
            out.push(format!(">={v}"));
            out.push(format!("<{}", bump(v, if parts == 1 { 0 } else { 1 })?));
        } else if part.starts_with(['<', '>', '=', '!', '~']) {
            out.push(part.to_string());
        } else {
            out.push(format!("=={part}"));
        }
    }
    Some(out.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        crate::tags::debian("x86_64")
    }

    fn keys(r: &Requirements) -> Vec<String> {
        r.pins.iter().map(|p| format!("{}=={}", p.key(), p.version)).collect()
    }

    #[test]
    fn poetry_constraints_become_pep_440() {
        assert_eq!(poetry_constraint("^3.11").as_deref(), Some(">=3.11,<4"));
        assert_eq!(poetry_constraint("^0.3.1").as_deref(), Some(">=0.3.1,<0.4"));
        assert_eq!(poetry_constraint("~3.11").as_deref(), Some(">=3.11,<3.12"));
        assert_eq!(poetry_constraint(">=3.10,<3.13").as_deref(), Some(">=3.10,<3.13"));
        assert_eq!(poetry_constraint("3.11.*").as_deref(), Some("==3.11.*"));
        assert_eq!(poetry_constraint("^3.8 || ^4.0"), None);
    }

    #[test]
    fn pipfile_lock_default_and_develop_with_markers_extras_and_hashes() {
        let h = "a".repeat(64);
        let text = format!(
            r#"{{"_meta": {{"requires": {{"python_version": "3.11"}}, "sources": [{{"name": "pypi", "url": "https://pypi.org/simple", "verify_ssl": true}}]}},
             "default": {{
               "flask": {{"hashes": ["sha256:{h}"], "index": "pypi", "version": "==3.1.0", "markers": "python_version >= '3.9'"}},
               "uvicorn": {{"extras": ["standard"], "hashes": [], "version": "==0.30.0"}},
               "colorama": {{"version": "==0.4.6", "markers": "sys_platform == 'win32'"}}
             }},
             "develop": {{"pytest": {{"version": "==8.3.0"}}}}}}"#
        );
        let prod = pipfile(&text, "Pipfile.lock", &target(), &Selection::production()).unwrap();
        assert_eq!(keys(&prod), ["flask==3.1.0", "uvicorn==0.30.0"]);
        assert_eq!(prod.pins[0].hashes, vec![h.clone()]);
        assert_eq!(prod.pins[1].extras, vec!["standard"]);
        assert_eq!(prod.requires_python.as_deref(), Some("==3.11.*"));
        assert_eq!(prod.options.index_url, None, "PyPI is the default anyway");
        let old_name = text.replace("https://pypi.org/simple", "https://pypi.python.org/simple");
        let prod = pipfile(&old_name, "Pipfile.lock", &target(), &Selection::production()).unwrap();
        assert_eq!(prod.options.index_url, None, "pypi.python.org is PyPI");
        let dev = pipfile(&text, "Pipfile.lock", &target(), &Selection::groups(vec!["develop".into()])).unwrap();
        assert_eq!(keys(&dev), ["pytest==8.3.0"]);
        let git = r#"{"default": {"x": {"git": "https://tok@example.com/x.git", "ref": "abc"}}}"#;
        let e = pipfile(git, "Pipfile.lock", &target(), &Selection::production()).unwrap_err().to_string();
        assert!(e.contains("`x` comes from git") && !e.contains("tok@"), "{e}");
        let e = pipfile("{\"default\": ", "Pipfile.lock", &target(), &Selection::production()).unwrap_err().to_string();
        assert!(e.starts_with("Pipfile.lock:1: not a Pipfile.lock"), "{e}");
    }

    #[test]
    fn poetry_lock_groups_and_per_group_markers() {
        let doc: toml::Table = r#"
[[package]]
name = "flask"
version = "3.1.0"
groups = ["main"]
files = [{file = "flask-3.1.0-py3-none-any.whl", hash = "sha256:bbbb"}]
[package.dependencies]
click = ">=8.1.3"
Werkzeug = ">=3.1"

[[package]]
name = "colorama"
version = "0.4.6"
groups = ["main", "dev"]
markers = {main = "platform_system == \"Windows\"", dev = "sys_platform == \"linux\""}
files = []

[[package]]
name = "pytest"
version = "8.3.0"
groups = ["dev"]
files = []

[metadata]
lock-version = "2.1"
python-versions = "^3.11"
"#
        .parse()
        .unwrap();
        let prod = poetry(&doc, None, "poetry.lock", &target(), &Selection::production()).unwrap();
        assert_eq!(keys(&prod), ["flask==3.1.0"]);
        assert_eq!(prod.pins[0].dependencies, ["click", "werkzeug"]);
        assert_eq!(prod.pins[0].hashes, ["bbbb"]);
        assert_eq!(prod.requires_python.as_deref(), Some(">=3.11,<4"));
        let dev = poetry(&doc, None, "poetry.lock", &target(), &Selection::groups(vec!["dev".into()])).unwrap();
        assert_eq!(keys(&dev), ["colorama==0.4.6", "pytest==8.3.0"], "dev's own marker holds on linux");
        // [python] groups: production and the named group.
        let both =
            Selection { production: true, groups: vec!["dev".into()], extras: Vec::new(), workspace_member: None };
        let both = poetry(&doc, None, "poetry.lock", &target(), &both).unwrap();
        assert_eq!(keys(&both), ["flask==3.1.0", "colorama==0.4.6", "pytest==8.3.0"]);
        let e = poetry(&doc, None, "poetry.lock", &target(), &Selection::groups(vec!["test".into()]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no package is in group `test`") && e.contains("dev, main"), "{e}");
        let old: toml::Table = "[[package]]\nname = \"x\"\nversion = \"1\"\n".parse().unwrap();
        let e = poetry(&old, None, "poetry.lock", &target(), &Selection::production()).unwrap_err().to_string();
        assert!(e.contains("Poetry 1") && e.contains("pyproject.toml"), "{e}");
    }

    #[test]
    fn a_poetry_lock_without_groups_is_walked_from_the_pyproject() {
        let lock: toml::Table = r#"
[[package]]
name = "flask"
version = "1.1.4"
category = "main"
optional = false
python-versions = "*"
[package.dependencies]
click = ">=5.1,<8.0"
itsdangerous = {version = ">=0.24", markers = "sys_platform == \"linux\""}
colorama = {version = "*", markers = "platform_system == \"Windows\""}
importlib-metadata = {version = "*", python = "<3.8"}
[package.extras]
dotenv = ["python-dotenv"]

[[package]]
name = "click"
version = "7.1.2"
category = "main"

[[package]]
name = "itsdangerous"
version = "1.1.0"
category = "main"

[[package]]
name = "colorama"
version = "0.4.6"
category = "main"

[[package]]
name = "importlib-metadata"
version = "6.0.0"
category = "main"

[[package]]
name = "python-dotenv"
version = "1.0.0"
category = "main"

[[package]]
name = "pytest"
version = "6.2.5"
category = "dev"

[metadata]
lock-version = "1.1"
python-versions = "^3.7"
"#
        .parse()
        .unwrap();
        let pyproject: toml::Table = r#"
[tool.poetry.dependencies]
python = "^3.7"
Flask = {version = "^1.1", extras = ["dotenv"]}

[tool.poetry.dev-dependencies]
pytest = "^6.2"
"#
        .parse()
        .unwrap();
        let prod = poetry(&lock, Some(&pyproject), "poetry.lock", &target(), &Selection::production()).unwrap();
        let mut k = keys(&prod);
        k.sort();
        assert_eq!(k, ["click==7.1.2", "flask==1.1.4", "itsdangerous==1.1.0", "python-dotenv==1.0.0"]);
        let dev =
            poetry(&lock, Some(&pyproject), "poetry.lock", &target(), &Selection::groups(vec!["dev".into()])).unwrap();
        assert_eq!(keys(&dev), ["pytest==6.2.5"]);
        let e = poetry(&lock, Some(&pyproject), "poetry.lock", &target(), &Selection::groups(vec!["docs".into()]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no group `docs`"), "{e}");
    }

    #[test]
    fn pdm_lock_groups_markers_files_and_extras_entries_merged() {
        let doc: toml::Table = r#"
[metadata]
groups = ["default", "dev"]
requires_python = ">=3.11"

[[package]]
name = "uvicorn"
version = "0.30.0"
groups = ["default"]
dependencies = ["click>=7.0", "h11>=0.8"]
files = [{file = "uvicorn-0.30.0-py3-none-any.whl", hash = "sha256:cccc"}]

[[package]]
name = "uvicorn"
version = "0.30.0"
extras = ["standard"]
groups = ["default"]
dependencies = ["uvicorn==0.30.0", "httptools>=0.5.0"]
files = [{file = "uvicorn-0.30.0-py3-none-any.whl", hash = "sha256:cccc"}]

[[package]]
name = "uvloop"
version = "0.19.0"
groups = ["default"]
marker = "sys_platform != \"win32\""
files = [{url = "https://files.example/uvloop-0.19.0-cp311-cp311-manylinux_2_17_x86_64.whl", hash = "sha256:dddd"}]

[[package]]
name = "pytest"
version = "8.3.0"
groups = ["dev"]
files = []
"#
        .parse()
        .unwrap();
        let prod = pdm(&doc, "pdm.lock", Path::new("/app"), &target(), &Selection::production()).unwrap();
        assert_eq!(keys(&prod), ["uvicorn==0.30.0", "uvloop==0.19.0"]);
        assert_eq!(prod.pins[0].extras, ["standard"]);
        assert_eq!(prod.pins[0].hashes, ["cccc"]);
        assert!(prod.pins[0].dependencies.contains(&"httptools".to_string()));
        assert_eq!(prod.pins[1].direct.len(), 1, "a file with a URL is fetched from it");
        assert_eq!(prod.requires_python.as_deref(), Some(">=3.11"));
        let dev = pdm(&doc, "pdm.lock", Path::new("/app"), &target(), &Selection::groups(vec!["dev".into()])).unwrap();
        assert_eq!(keys(&dev), ["pytest==8.3.0"]);
    }
}
