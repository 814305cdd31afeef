//! Lock files: pinned `requirements.txt`, PEP 751 `pylock.toml`, and
//! `uv.lock`, all read into the same [`Requirements`]; and the locks whose
//! packages carry their groups (`Pipfile.lock`, `poetry.lock`, `pdm.lock`)
//! in `crate::grouped`. pylock and uv locks also name their files (URL or
//! path) and hashes, so with them no index is needed.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

use crate::marker::Marker;
use crate::name::normalize;
pub use crate::requirements::Selection;
use crate::requirements::Tree;
use crate::requirements::{Pin, Requirements};
use crate::source::{Candidate, Location};
use crate::{Error, Target};

/// Reads the lock at `path`, by its name: `pylock.toml` / `pylock.*.toml`,
/// `uv.lock`, or else a requirements file. `target` decides which of uv.lock's
/// dependency edges apply; `selection` says which part of a lock with groups
/// to install (the production part, named groups, or both).
pub fn load(path: &Path, target: &Target, selection: &Selection) -> Result<Requirements, Error> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let is_pylock = name == "pylock.toml" || (name.starts_with("pylock.") && name.ends_with(".toml"));
    let file = path.display().to_string();
    let dir = path.parent().unwrap_or(Path::new("."));
    if !selection.extras.is_empty() && matches!(name.as_str(), "Pipfile.lock" | "poetry.lock" | "pdm.lock") {
        return Err(Error::Lock {
            file,
            line: 0,
            message: format!(
                "oxbuild does not pick extras ({}) out of a {name}: run `oxbuild lock`, which locks the project's dependencies with its [python] extras into pylock.toml, or use a uv.lock",
                selection.extras.join(", ")
            ),
        });
    }
    match name.as_str() {
        "Pipfile.lock" => {
            let text = std::fs::read_to_string(path).map_err(|e| Error::Lock {
                file: file.clone(),
                line: 0,
                message: crate::error::unreadable(&e),
            })?;
            return crate::grouped::pipfile(&text, &file, target, selection);
        }
        "poetry.lock" => {
            let pyproject = dir.join("pyproject.toml");
            let pyproject = if pyproject.is_file() { Some(read_toml(&pyproject)?) } else { None };
            return crate::grouped::poetry(&read_toml(path)?, pyproject.as_ref(), &file, target, selection);
        }
        "pdm.lock" => return crate::grouped::pdm(&read_toml(path)?, &file, dir, target, selection),
        // A pylock.toml that `oxbuild lock` wrote holds the groups it named.
        _ if name != "uv.lock" && !is_pylock && !selection.groups.is_empty() => {
            return Err(Error::Lock {
                file,
                line: 0,
                message: format!(
                    "has no dependency groups, so groups {} cannot be installed from it; name a uv.lock, poetry.lock, pdm.lock or Pipfile.lock, or drop [python] groups",
                    selection.groups.join(", ")
                ),
            });
        }
        _ if !is_pylock && name != "uv.lock" => return Requirements::load(path),
        _ => {}
    }
    let doc = read_toml(path)?;
    let pins = if is_pylock { pylock(&doc, &file, dir)? } else { uv(&doc, &file, dir, target, selection)? };
    let requires_python = str_of(&doc, "requires-python").map(str::to_string);
    Ok(Requirements { pins, requires_python, ..Default::default() })
}

/// Where `project` is in the uv workspace of `lock`, a uv.lock in a folder
/// above it: the project's folder relative to the lock's (`backend`). None
/// for any other lock, for a lock in the project's own folder, and for a
/// lock whose folder does not hold the project.
pub fn workspace_member(lock: &Path, project: &Path) -> Option<PathBuf> {
    if lock.file_name()? != "uv.lock" {
        return None;
    }
    let root = std::fs::canonicalize(lock.parent()?).ok()?;
    let project = std::fs::canonicalize(project).ok()?;
    let member = project.strip_prefix(&root).ok()?;
    (!member.as_os_str().is_empty()).then(|| tidy(member))
}

/// The uv.lock of the uv workspace that `project` is a member of, in a
/// folder above it (up to the repository's root, a folder with `.git`): the
/// lock that `uv sync --package` reads there, and the member's folder
/// relative to it (as [`workspace_member`] says). None when the project is
/// no member of one, or has a uv.lock of its own.
pub fn workspace_lock(project: &Path) -> Option<(PathBuf, PathBuf)> {
    let project = std::fs::canonicalize(project).ok()?;
    if project.join("uv.lock").is_file() || project.join(".git").exists() {
        return None;
    }
    for root in project.ancestors().skip(1) {
        let lock = root.join("uv.lock");
        if lock.is_file() {
            let member = tidy(project.strip_prefix(root).ok()?);
            let doc = read_toml(&lock).ok()?;
            let packages = doc.get("package").and_then(|p| p.as_array())?;
            let found = packages.iter().filter_map(|p| p.as_table()).any(|p| tree_of(p).as_ref() == Some(&member));
            return found.then_some((lock, member));
        }
        if root.join(".git").exists() {
            break;
        }
    }
    None
}

/// The folder of a uv.lock package built from a tree of the workspace
/// (editable, a directory, or virtual), relative to the lock's: `.` and `./`
/// are the lock's own folder (an empty path).
fn tree_of(p: &toml::Table) -> Option<PathBuf> {
    let s = p.get("source")?.as_table()?;
    let d = ["virtual", "editable", "directory"].iter().find_map(|k| str_of(s, k))?;
    Some(tidy(Path::new(d)))
}

/// `path` without its `.` components or a trailing `/`: `./backend/` is
/// `backend`, `.` is empty.
fn tidy(path: &Path) -> PathBuf {
    path.components().filter(|c| !matches!(c, std::path::Component::CurDir)).collect()
}

/// A TOML lock file, or an error naming the file (and the line, for a
/// syntax error).
fn read_toml(path: &Path) -> Result<toml::Table, Error> {
    let file = path.display().to_string();
    let err = |line: usize, message: String| Error::Lock { file: file.clone(), line, message };
    let text = std::fs::read_to_string(path).map_err(|e| err(0, crate::error::unreadable(&e)))?;
    text.parse().map_err(|e: toml::de::Error| {
        let (line, message) = crate::error::toml_syntax(&text, &e);
        err(line, message)
    })
}

/// The dependency groups of a uv.lock's project in folder `project` and the
/// packages each names directly, e.g. `dev: [pytest, mypy]`; for `oxbuild
/// init`. In a workspace member's folder, that member's groups only.
pub fn uv_groups(path: &Path, project: &Path) -> Result<BTreeMap<String, Vec<String>>, Error> {
    let doc = read_toml(path)?;
    let member = workspace_member(path, project);
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let packages = doc.get("package").and_then(|p| p.as_array()).into_iter().flatten().filter_map(|p| p.as_table());
    for p in packages.filter(|p| member.is_none() || tree_of(p) == member) {
        let Some(dev) = p.get("dev-dependencies").and_then(|d| d.as_table()) else { continue };
        for (group, list) in dev {
            let names =
                list.as_array().into_iter().flatten().filter_map(|d| d.as_table()).filter_map(|d| str_of(d, "name"));
            groups.entry(group.clone()).or_default().extend(names.map(normalize));
        }
    }
    Ok(groups)
}

/// The names of the uv.lock packages whose dependencies (of any extra or
/// group) name `name`.
fn dependents(packages: &[toml::Table], name: &str) -> Vec<String> {
    let names = |v: Option<&toml::Value>| -> Vec<String> {
        v.and_then(|l| l.as_array())
            .into_iter()
            .flatten()
            .filter_map(|e| e.as_table().and_then(|e| str_of(e, "name")).map(normalize))
            .collect()
    };
    let mut out = Vec::new();
    for p in packages.iter().filter(|p| p.get("source").and_then(|s| s.get("registry")).is_some()) {
        let mut all = names(p.get("dependencies"));
        for key in ["optional-dependencies", "dev-dependencies"] {
            for list in p.get(key).and_then(|t| t.as_table()).into_iter().flat_map(|t| t.values()) {
                all.extend(names(Some(list)));
            }
        }
        if all.iter().any(|n| n == name)
            && let Some(p) = str_of(p, "name")
        {
            out.push(p.to_string());
        }
    }
    out
}

fn str_of<'a>(t: &'a toml::Table, k: &str) -> Option<&'a str> {
    t.get(k).and_then(|v| v.as_str())
}

/// One file of a lock: a candidate when it has a URL or path.
fn file_candidate(file: &toml::Table, dir: &Path) -> Option<Candidate> {
    let sha = file
        .get("hashes")
        .and_then(|h| h.get("sha256"))
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .or_else(|| str_of(file, "hash").and_then(|h| h.strip_prefix("sha256:")).map(str::to_string));
    let (location, filename) = if let Some(url) = str_of(file, "url") {
        let url = url::Url::parse(url).ok()?;
        let name = url.path_segments()?.next_back()?.to_string();
        (Location::Direct(url), name)
    } else {
        let p = dir.join(str_of(file, "path")?);
        let name = p.file_name()?.to_string_lossy().into_owned();
        (Location::File(p), name)
    };
    let filename = str_of(file, "name").map(str::to_string).unwrap_or(filename);
    // uv writes a string, PEP 751 a TOML datetime.
    let upload_time = file.get("upload-time").and_then(|t| match t {
        toml::Value::String(s) => crate::source::parse_time(s),
        toml::Value::Datetime(d) => crate::source::parse_time(&d.to_string()),
        _ => None,
    });
    Some(Candidate {
        filename,
        location,
        sha256: sha,
        yanked: None,
        upload_time,
        requires_python: None,
        metadata: false,
    })
}

/// PEP 751: `[[packages]]` with name, version, marker, wheels and sdist.
fn pylock(doc: &toml::Table, file: &str, dir: &Path) -> Result<Vec<Pin>, Error> {
    let version = str_of(doc, "lock-version").unwrap_or("");
    if !version.starts_with("1.") {
        return Err(Error::Lock {
            file: file.into(),
            line: 1,
            message: format!("lock-version `{version}` is not 1.x"),
        });
    }
    let packages = doc.get("packages").and_then(|p| p.as_array()).cloned().unwrap_or_default();
    let mut pins = Vec::new();
    for p in packages.iter().filter_map(|p| p.as_table()) {
        let name = str_of(p, "name").unwrap_or("?").to_string();
        let origin = format!("{file} (package {name})");
        let bad = |m: String| Error::Lock { file: file.into(), line: 0, message: format!("package `{name}`: {m}") };
        let version = str_of(p, "version")
            .ok_or_else(|| {
                bad("has no version (a VCS or directory package); oxbuild installs pinned wheels only".into())
            })?
            .to_string();
        let marker = str_of(p, "marker").map(Marker::parse).transpose().map_err(bad)?;
        let mut direct = Vec::new();
        let mut hashes = BTreeSet::new();
        let wheels = p.get("wheels").and_then(|w| w.as_array()).cloned().unwrap_or_default();
        for w in wheels.iter().filter_map(|w| w.as_table()) {
            if let Some(c) = file_candidate(w, dir) {
                hashes.extend(c.sha256.clone());
                direct.push(c);
            }
        }
        if let Some(sdist) = p.get("sdist").and_then(|s| s.as_table())
            && let Some(c) = file_candidate(sdist, dir)
        {
            // The sdist is listed so that a package with no fitting wheel is
            // reported as source-only rather than missing.
            hashes.extend(c.sha256.clone());
            direct.push(c);
        }
        let dependencies = p
            .get("dependencies")
            .and_then(|d| d.as_array())
            .into_iter()
            .flatten()
            .filter_map(|d| d.as_table().and_then(|d| str_of(d, "name")))
            .map(normalize)
            .collect();
        pins.push(Pin {
            name,
            version,
            arbitrary: false,
            hashes: hashes.into_iter().collect(),
            marker,
            origin,
            direct,
            dependencies,
            extras: Vec::new(),
            tree: None,
        });
    }
    Ok(pins)
}

/// uv.lock: every package reachable from the project's own package(s) by
/// dependency edges whose markers hold for the target, with the extras each
/// edge asks for. The walk starts from the project's dependencies (for
/// production) and from the dependency groups `selection` names.
/// of the project (`[package.dev-dependencies]`) instead of its dependencies.
fn uv(doc: &toml::Table, file: &str, dir: &Path, target: &Target, selection: &Selection) -> Result<Vec<Pin>, Error> {
    let groups = &selection.groups;
    let env = target.marker_environment()?;
    let lock_err = |message: String| Error::Lock { file: file.into(), line: 0, message };
    let packages: Vec<toml::Table> = doc
        .get("package")
        .and_then(|p| p.as_array())
        .map(|a| a.iter().filter_map(|p| p.as_table().cloned()).collect())
        .unwrap_or_default();
    // The project itself (editable or a directory at `.`, or virtual; in a
    // workspace member's folder, that member); other editable and directory
    // packages (workspace members, path dependencies) are built and
    // installed like any package.
    let is_root = |p: &toml::Table| match &selection.workspace_member {
        Some(member) => tree_of(p).is_some_and(|t| t == *member),
        None => {
            p.get("source").and_then(|s| s.as_table()).is_some_and(|s| s.contains_key("virtual"))
                || tree_of(p).is_some_and(|t| t.as_os_str().is_empty())
        }
    };
    let mut by_name: BTreeMap<String, Vec<&toml::Table>> = BTreeMap::new();
    for p in &packages {
        by_name.entry(normalize(str_of(p, "name").unwrap_or(""))).or_default().push(p);
    }
    let mut roots: Vec<&toml::Table> = packages.iter().filter(|p| is_root(p)).collect();
    if let Some(member) = &selection.workspace_member
        && roots.is_empty()
    {
        // The packages built from a folder of the workspace, but its root.
        let members: Vec<String> = packages
            .iter()
            .filter_map(|p| Some((str_of(p, "name")?, tree_of(p).filter(|t| !t.as_os_str().is_empty())?)))
            .map(|(name, tree)| format!("{name} ({})", tree.display()))
            .collect();
        return Err(lock_err(format!(
            "the project's folder `{}` (relative to the lock) is no package of this workspace (its members: {}); add it to [tool.uv.workspace] members and run `uv lock`, or name the project's own lock in [python] lock",
            member.display(),
            crate::name::listed(members)
        )));
    }
    if roots.is_empty() {
        // A workspace whose root is no project (`[tool.uv.workspace]` only):
        // its members are where the dependencies start.
        let members: Vec<String> = doc
            .get("manifest")
            .and_then(|m| m.get("members"))
            .and_then(|m| m.as_array())
            .into_iter()
            .flatten()
            .filter_map(|m| m.as_str().map(normalize))
            .collect();
        roots = packages.iter().filter(|p| members.contains(&normalize(str_of(p, "name").unwrap_or("")))).collect();
    }
    if roots.is_empty() {
        return Err(lock_err(
            "no project package (source editable, virtual or \".\", or a workspace member) to start from".into(),
        ));
    }
    // The edges of `table[key]`, or of `table[key][sub]` (a group or an extra).
    let edges = |table: &toml::Table, key: &str, sub: Option<&str>| -> Vec<toml::Value> {
        let list = table.get(key);
        let list = match sub {
            Some(sub) => list.and_then(|l| l.as_table()).and_then(|t| t.get(sub)),
            None => list,
        };
        list.and_then(|l| l.as_array()).cloned().unwrap_or_default()
    };
    // Lists of edges still to follow, each with who needs them (for messages).
    let root_name = |r: &toml::Table| format!("the project `{}`", str_of(r, "name").unwrap_or("?"));
    let mut pending: VecDeque<(String, Vec<toml::Value>)> = VecDeque::new();
    if selection.production {
        pending.extend(roots.iter().map(|r| (root_name(r), edges(r, "dependencies", None))));
    }
    // The project's extras, then the groups named: each must be the project's.
    let named = selection.extras.iter().map(|e| ("optional-dependencies", "extra", e, "[python] extras"));
    let named = named
        .chain(groups.iter().map(|g| ("dev-dependencies", "dependency group", g, "[python] groups or test-groups")));
    for (key, kind, name, fix) in named {
        let lists: Vec<(String, Vec<toml::Value>)> = roots
            .iter()
            .filter(|r| r.get(key).and_then(|d| d.as_table()).is_some_and(|t| t.contains_key(name)))
            .map(|r| {
                (
                    format!("{} ({} `{name}`)", root_name(r), kind.rsplit(' ').next().unwrap_or(kind)),
                    edges(r, key, Some(name)),
                )
            })
            .collect();
        if lists.is_empty() {
            let known: BTreeSet<&str> = roots
                .iter()
                .filter_map(|r| r.get(key).and_then(|d| d.as_table()))
                .flat_map(|t| t.keys().map(String::as_str))
                .collect();
            let known = crate::name::listed(known);
            let plural = if kind == "extra" { "extras" } else { "groups" };
            return Err(lock_err(format!(
                "the project has no {kind} `{name}` ({plural} in the lock: {known}); fix {fix}"
            )));
        }
        pending.extend(lists);
    }
    let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
    let mut seen_extras: BTreeSet<(String, String, String)> = BTreeSet::new();
    // The edges whose markers hold, by package: its dependencies and those
    // of the extras asked of it.
    let mut deps_of: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let holds = |edge: &toml::Value| -> Result<Option<String>, Error> {
        let Some(e) = edge.as_table() else { return Ok(None) };
        if let Some(m) = str_of(e, "marker")
            && !Marker::parse(m).map_err(lock_err)?.evaluate(&env)
        {
            return Ok(None);
        }
        Ok(str_of(e, "name").map(normalize))
    };
    let mut pins = Vec::new();
    while let Some((parent, deps)) = pending.pop_front() {
        for d in deps.iter().filter_map(|d| d.as_table()) {
            let name = normalize(str_of(d, "name").unwrap_or(""));
            if let Some(m) = str_of(d, "marker")
                && !Marker::parse(m).map_err(lock_err)?.evaluate(&env)
            {
                continue;
            }
            let candidates = by_name.get(&name).cloned().unwrap_or_default();
            let chosen = match str_of(d, "version") {
                Some(v) => {
                    candidates.into_iter().find(|c| str_of(c, "version").is_some_and(|c| crate::version::same(c, v)))
                }
                None => candidates.into_iter().next(),
            };
            let Some(dep) = chosen else {
                let mut needed_by = vec![parent];
                for d in dependents(&packages, &name) {
                    if !needed_by.contains(&d) {
                        needed_by.push(d);
                    }
                }
                return Err(lock_err(format!(
                    "`{name}`, needed by {}, has no [[package]] entry: the lock is incomplete (edited by hand?); run `uv lock` again",
                    needed_by.join(", ")
                )));
            };
            let version = str_of(dep, "version").unwrap_or("").to_string();
            // `name[extra]`: what the extra adds comes from the package's
            // optional dependencies, once per extra; the project's own extras
            // too (a dev group of `app[test]`).
            for extra in d.get("extra").and_then(|e| e.as_array()).into_iter().flatten().filter_map(|e| e.as_str()) {
                if seen_extras.insert((name.clone(), version.clone(), extra.to_string())) {
                    let added = edges(dep, "optional-dependencies", Some(extra));
                    for edge in &added {
                        deps_of.entry(name.clone()).or_default().extend(holds(edge)?);
                    }
                    pending.push_back((format!("{name}[{extra}]"), added));
                }
            }
            if is_root(dep) {
                continue;
            }
            if !seen.insert((name.clone(), version.clone())) {
                continue;
            }
            // A package from git, a directory, a URL or a local archive has
            // no index files: it is built from its tree, or its archive is
            // the one file to fetch (the lock's sdist or wheel entry has only
            // the hash then).
            let source = dep.get("source").and_then(|s| s.as_table());
            let mut tree = None;
            let mut from_source = None;
            let lock_hash = |f: &toml::Value| {
                f.as_table().and_then(|f| str_of(f, "hash")).and_then(|h| h.strip_prefix("sha256:")).map(str::to_string)
            };
            let first_hash = dep
                .get("sdist")
                .and_then(lock_hash)
                .or_else(|| dep.get("wheels").and_then(|w| w.as_array()).and_then(|w| w.first()).and_then(lock_hash));
            if let Some(source) = source {
                if let Some(git) = str_of(source, "git") {
                    tree = Some(Tree::git(git).ok_or_else(|| {
                        lock_err(format!(
                            "package `{name}` comes from git `{}`, which names no commit; run `uv lock` again",
                            oxbuild_http::redact(git)
                        ))
                    })?);
                } else if let Some(d) = str_of(source, "directory").or_else(|| str_of(source, "editable")) {
                    tree = Some(Tree::Directory(dir.join(d)));
                } else if let Some(p) = str_of(source, "path") {
                    let path = dir.join(p);
                    if crate::sdist::is_sdist(p) || p.ends_with(".whl") {
                        let filename = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                        from_source = Some(Candidate {
                            filename,
                            location: Location::File(path),
                            sha256: first_hash.clone(),
                            yanked: None,
                            upload_time: None,
                            requires_python: None,
                            metadata: false,
                        });
                    } else {
                        tree = Some(Tree::Directory(path));
                    }
                } else if let Some(u) = str_of(source, "url") {
                    let url = url::Url::parse(u).map_err(|e| {
                        lock_err(format!("package `{name}`: source url `{}`: {e}", oxbuild_http::redact(u)))
                    })?;
                    let filename = url.path_segments().and_then(|mut s| s.next_back()).unwrap_or_default().to_string();
                    from_source = Some(Candidate {
                        filename,
                        location: Location::Direct(url),
                        sha256: first_hash.clone(),
                        yanked: None,
                        upload_time: None,
                        requires_python: None,
                        metadata: false,
                    });
                }
            }
            let needs = edges(dep, "dependencies", None);
            for edge in &needs {
                deps_of.entry(name.clone()).or_default().extend(holds(edge)?);
            }
            pending.push_back((name.clone(), needs));
            let mut direct = Vec::new();
            let mut hashes = BTreeSet::new();
            let wheels = dep.get("wheels").and_then(|w| w.as_array()).cloned().unwrap_or_default();
            let files = wheels.iter().chain(dep.get("sdist")).filter_map(|w| w.as_table());
            for f in files {
                // A `path` is relative to the lock's directory, as in pylock.toml.
                if let Some(c) = file_candidate(f, dir) {
                    hashes.extend(c.sha256.clone());
                    direct.push(c);
                }
            }
            if let Some(c) = from_source.filter(|_| direct.is_empty()) {
                hashes.extend(c.sha256.clone());
                direct.push(c);
            }
            if version.is_empty() {
                return Err(lock_err(format!("package `{name}` has no version")));
            }
            pins.push(Pin {
                arbitrary: false,
                name: str_of(dep, "name").unwrap_or(&name).to_string(),
                version,
                hashes: hashes.into_iter().collect(),
                marker: None,
                origin: format!("{file} (package {name})"),
                direct,
                dependencies: Vec::new(),
                extras: Vec::new(),
                tree,
            });
        }
    }
    for pin in &mut pins {
        pin.dependencies = deps_of.get(&pin.key()).map(|d| d.iter().cloned().collect()).unwrap_or_default();
        pin.extras = seen_extras
            .iter()
            .filter(|(n, v, _)| *n == pin.key() && *v == pin.version)
            .map(|(_, _, e)| normalize(e))
            .collect();
    }
    Ok(pins)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        crate::tags::debian("x86_64")
    }

    #[test]
    fn uv_lock_follows_dependencies_whose_markers_hold() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("uv.lock");
        std::fs::write(
            &path,
            r#"version = 1
requires-python = ">=3.11"

[[package]]
name = "app"
version = "0.1.0"
source = { virtual = "." }
dependencies = [
    { name = "flask" },
    { name = "pywin32", marker = "sys_platform == 'win32'" },
]

[[package]]
name = "flask"
version = "3.1.0"
source = { registry = "https://pypi.org/simple" }
dependencies = [{ name = "click" }]
wheels = [{ url = "https://files.example/flask-3.1.0-py3-none-any.whl", hash = "sha256:aaaa", size = 1 }]

[[package]]
name = "click"
version = "8.1.8"
source = { registry = "https://pypi.org/simple" }
dependencies = [{ name = "colorama", marker = "platform_system == 'Windows'" }]
sdist = { url = "https://files.example/click-8.1.8.tar.gz", hash = "sha256:cccc", size = 1 }
wheels = [{ url = "https://files.example/click-8.1.8-py3-none-any.whl", hash = "sha256:bbbb", size = 1 }]

[[package]]
name = "colorama"
version = "0.4.6"
source = { registry = "https://pypi.org/simple" }

[[package]]
name = "pywin32"
version = "308"
source = { registry = "https://pypi.org/simple" }
"#,
        )
        .unwrap();
        let reqs = load(&path, &target(), &Selection::production()).unwrap();
        let names: Vec<(&str, &str)> = reqs.pins.iter().map(|p| (p.name.as_str(), p.version.as_str())).collect();
        assert_eq!(names, vec![("flask", "3.1.0"), ("click", "8.1.8")]);
        assert_eq!(reqs.pins[1].hashes, vec!["bbbb", "cccc"]);
        assert_eq!(reqs.pins[0].direct[0].filename, "flask-3.1.0-py3-none-any.whl");
        assert_eq!(reqs.pins[0].dependencies, ["click"], "the lock's edges are kept");
        assert!(reqs.pins[1].dependencies.is_empty(), "colorama's marker does not hold");
    }

    /// A `path` in uv.lock is relative to the lock's directory, as in
    /// pylock.toml, wherever oxbuild runs from.
    #[test]
    fn uv_lock_paths_are_relative_to_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("uv.lock");
        std::fs::write(
            &path,
            "version = 1\n\n[[package]]\nname = \"app\"\nversion = \"0.1.0\"\nsource = { virtual = \".\" }\ndependencies = [{ name = \"local\" }]\n\n\
             [[package]]\nname = \"local\"\nversion = \"1.0\"\nsource = { path = \"wheels/local-1.0-py3-none-any.whl\" }\n\
             wheels = [{ path = \"wheels/local-1.0-py3-none-any.whl\", hash = \"sha256:abcd\" }]\n",
        )
        .unwrap();
        let reqs = load(&path, &target(), &Selection::production()).unwrap();
        match &reqs.pins[0].direct[0].location {
            Location::File(p) => assert_eq!(p, &dir.path().join("wheels/local-1.0-py3-none-any.whl")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_workspace_whose_root_is_no_project_starts_from_its_members() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("uv.lock");
        let text = "version = 1\nrequires-python = \">=3.11\"\n\n[manifest]\nmembers = [\"api\"]\n\n\
                    [[package]]\nname = \"api\"\nversion = \"0.1.0\"\nsource = { editable = \"backend\" }\ndependencies = [{ name = \"six\" }]\n\n\
                    [[package]]\nname = \"six\"\nversion = \"1.17.0\"\nsource = { registry = \"https://pypi.org/simple\" }\n";
        std::fs::write(&path, text).unwrap();
        let reqs = load(&path, &target(), &Selection::production()).unwrap();
        let names: Vec<&str> = reqs.pins.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["six"], "the member is where dependencies start, not a package to build");
    }

    /// In a member's folder, a uv workspace's lock above it installs what
    /// that member needs (another member among it), not what the root needs.
    #[test]
    fn a_workspace_member_installs_its_own_part_of_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("uv.lock");
        let pkg = |name: &str, source: &str, deps: &str| {
            format!(
                "[[package]]\nname = \"{name}\"\nversion = \"1.0\"\nsource = {{ {source} }}\ndependencies = [{deps}]\n\n"
            )
        };
        let registry = "registry = \"https://pypi.org/simple\"";
        let text = [
            "version = 1\nrequires-python = \">=3.11\"\n\n[manifest]\nmembers = [\"api\", \"monorepo\", \"shared\"]\n\n".to_string(),
            pkg("monorepo", "editable = \".\"", "{ name = \"six\" }"),
            pkg("api", "editable = \"services/api/\"", "{ name = \"idna\" }, { name = \"shared\" }"),
            pkg("shared", "editable = \"libs/shared\"", "{ name = \"certifi\" }"),
            pkg("six", registry, ""),
            pkg("idna", registry, ""),
            pkg("certifi", registry, ""),
        ]
        .concat();
        std::fs::write(&path, text).unwrap();
        let names = |selection: &Selection| -> Vec<String> {
            load(&path, &target(), selection).unwrap().pins.iter().map(|p| p.name.clone()).collect()
        };
        assert_eq!(names(&Selection::production()), ["six"], "the root's part from the root");
        std::fs::create_dir_all(dir.path().join("services/api")).unwrap();
        let member = workspace_member(&path, &dir.path().join("services/api"));
        assert_eq!(member.as_deref(), Some(Path::new("services/api")));
        let api = Selection { workspace_member: member, ..Selection::production() };
        assert_eq!(
            names(&api),
            ["idna", "shared", "certifi"],
            "the member's part, the other member built from its tree"
        );
        let reqs = load(&path, &target(), &api).unwrap();
        assert_eq!(reqs.pins[1].tree, Some(Tree::Directory(dir.path().join("libs/shared"))));

        let stray = Selection { workspace_member: Some("tools".into()), ..Selection::production() };
        let e = load(&path, &target(), &stray).unwrap_err().to_string();
        assert!(e.contains("`tools`") && e.contains("api (services/api), shared (libs/shared)"), "{e}");
        assert!(e.contains("[tool.uv.workspace] members"), "{e}");
        // Found from the member's folder, and only there.
        let found = workspace_lock(&dir.path().join("services/api"));
        assert_eq!(found, Some((path.canonicalize().unwrap(), PathBuf::from("services/api"))));
        std::fs::create_dir_all(dir.path().join("services/other")).unwrap();
        assert_eq!(workspace_lock(&dir.path().join("services/other")), None, "no member there");
        std::fs::create_dir_all(dir.path().join("libs/shared/.git")).unwrap();
        assert_eq!(workspace_lock(&dir.path().join("libs/shared")), None, "a repository of its own");
        // Not a member: the lock in the project's own folder, another lock.
        assert_eq!(workspace_member(&path, dir.path()), None);
        assert_eq!(workspace_member(&dir.path().join("requirements.txt"), &dir.path().join("services/api")), None);
    }

    #[test]
    fn uv_lock_git_and_url_sources_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("uv.lock");
        let text = "version = 1\nrequires-python = \">=3.11\"\n\n[[package]]\nname = \"app\"\nversion = \"0.1.0\"\nsource = { virtual = \".\" }\ndependencies = [{ name = \"tool\" }]\n\n[[package]]\nname = \"tool\"\nversion = \"1.0\"\nsource = { git = \"https://user:tok@example.com/tool.git?rev=abc#abc\" }\n";
        std::fs::write(&path, text).unwrap();
        let e = load(&path, &target(), &Selection::production()).unwrap_err().to_string();
        assert!(e.contains("`tool` comes from git") && !e.contains("tok@"), "{e}");
    }

    #[test]
    fn uv_lock_extras_and_dependency_groups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("uv.lock");
        let pkg = |name: &str, version: &str, extra: &str| {
            format!(
                "[[package]]\nname = \"{name}\"\nversion = \"{version}\"\nsource = {{ registry = \"https://pypi.org/simple\" }}\n{extra}\n"
            )
        };
        let text = [
            "version = 1\n\n[[package]]\nname = \"app\"\nversion = \"0.1.0\"\nsource = { editable = \".\" }\n\
             dependencies = [{ name = \"uvicorn\", extra = [\"standard\"] }]\n\n\
             [package.optional-dependencies]\ntest = [{ name = \"hypothesis\" }]\n\n\
             [package.dev-dependencies]\ndev = [{ name = \"pytest\" }, { name = \"app\", extra = [\"test\"] }]\nlint = [{ name = \"ruff\" }]\n\n"
                .to_string(),
            pkg(
                "uvicorn",
                "0.30.0",
                "dependencies = [{ name = \"click\" }]\n\n[package.optional-dependencies]\nstandard = [{ name = \"httptools\" }, { name = \"uvloop\", marker = \"sys_platform == 'win32'\" }]",
            ),
            pkg("click", "8.1.8", ""),
            pkg("httptools", "0.6.4", ""),
            pkg("uvloop", "0.21.0", ""),
            pkg("pytest", "8.3.0", "dependencies = [{ name = \"click\" }, { name = \"iniconfig\" }]"),
            pkg("iniconfig", "2.0.0", ""),
            pkg("ruff", "0.8.0", ""),
            pkg("hypothesis", "6.0.0", ""),
        ]
        .concat();
        std::fs::write(&path, text).unwrap();
        let names = |groups: &[&str]| -> Vec<String> {
            let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
            let selection = if groups.is_empty() { Selection::production() } else { Selection::groups(groups) };
            let mut n: Vec<String> =
                load(&path, &target(), &selection).unwrap().pins.into_iter().map(|p| p.name).collect();
            n.sort();
            n
        };
        // The extra brings httptools (uvloop's marker does not hold here).
        assert_eq!(names(&[]), vec!["click", "httptools", "uvicorn"]);
        // The dev group asks for the project's own `test` extra: hypothesis.
        assert_eq!(names(&["dev"]), vec!["click", "hypothesis", "iniconfig", "pytest"]);
        assert_eq!(names(&["lint"]), vec!["ruff"]);
        // [python] groups: the project's dependencies and a named group.
        let both =
            Selection { production: true, groups: vec!["dev".to_string()], extras: Vec::new(), workspace_member: None };
        let mut n: Vec<String> = load(&path, &target(), &both).unwrap().pins.into_iter().map(|p| p.name).collect();
        n.sort();
        assert!(n.contains(&"uvicorn".to_string()) && n.len() > names(&[]).len(), "{n:?}");
        let e = load(&path, &target(), &Selection::groups(vec!["docs".to_string()])).unwrap_err().to_string();
        assert!(e.contains("`docs`") && e.contains("dev, lint"), "{e}");
        // [python] extras: the project's own extra, with its dependencies.
        let extras = Selection {
            production: true,
            groups: Vec::new(),
            extras: vec!["test".to_string()],
            workspace_member: None,
        };
        let mut n: Vec<String> = load(&path, &target(), &extras).unwrap().pins.into_iter().map(|p| p.name).collect();
        n.sort();
        assert_eq!(n, vec!["click", "httptools", "hypothesis", "uvicorn"]);
        let missing =
            Selection { production: true, groups: Vec::new(), extras: vec!["web".to_string()], workspace_member: None };
        let e = load(&path, &target(), &missing).unwrap_err().to_string();
        assert!(e.contains("no extra `web`") && e.contains("extras in the lock: test"), "{e}");
        // A lock whose packages carry only groups cannot pick them.
        let poetry = dir.path().join("poetry.lock");
        std::fs::write(&poetry, "[metadata]\nlock-version = \"2.1\"\n").unwrap();
        let e = load(&poetry, &target(), &extras).unwrap_err().to_string();
        assert!(e.contains("does not pick extras (test)") && e.contains("oxbuild lock"), "{e}");
        let groups = uv_groups(&path, dir.path()).unwrap();
        assert_eq!(groups["dev"], vec!["pytest", "app"]);
        assert_eq!(groups["lint"], vec!["ruff"]);
    }

    #[test]
    fn pylock_packages_with_markers_paths_and_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pylock.toml");
        std::fs::write(
            &path,
            r#"lock-version = "1.0"
created-by = "test"

[[packages]]
name = "markupsafe"
version = "3.0.4"
[[packages.wheels]]
path = "wheels/markupsafe-3.0.4-cp311-cp311-manylinux_2_17_x86_64.whl"
hashes = { sha256 = "dddd" }

[[packages]]
name = "colorama"
version = "0.4.6"
marker = "sys_platform == 'win32'"
"#,
        )
        .unwrap();
        let reqs = load(&path, &target(), &Selection::production()).unwrap();
        assert_eq!(reqs.pins.len(), 2);
        assert_eq!(reqs.pins[0].hashes, vec!["dddd"]);
        assert!(matches!(&reqs.pins[0].direct[0].location, Location::File(p) if p.starts_with(dir.path())));
        assert!(reqs.pins[1].marker.is_some());
        std::fs::write(&path, "lock-version = \"2.0\"\n").unwrap();
        assert!(load(&path, &target(), &Selection::production()).unwrap_err().to_string().contains("lock-version"));
    }
}
