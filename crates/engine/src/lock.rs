//! `oxbuild lock`: resolves the project's requirements for its base image's
//! Python and platforms (read from the base, as the build reads them) and
//! writes a PEP 751 `pylock.toml`. The one place oxbuild chooses versions;
//! `build` reads what was locked and never resolves.
//!
//! The inputs: `[python] lock-input` when set; else, first found: `requirements.in`; the `[project] dependencies`
//! of pyproject.toml (with the dependency groups `[python] groups` names);
//! a Poetry project's `[tool.poetry.dependencies]`;
//! the requirements file `[python] requirements` names (a partly pinned
//! one). A requirements file's own options count, as in pip: its `-r` and
//! `-c` files, its indexes (after the configuration's) and `--pre`
//! (`oxbuild_python::input`). Versions an existing lock (or the input's own `==` pins,
//! or the project's other locks) has are kept while they fit, unless
//! `--upgrade` (or `--upgrade-package NAME`).
//!
//! Files uploaded after a date are ignored: `--exclude-newer`, else, for an
//! input file that git tracks unmodified, the time of its last commit (so
//! an old project resolves as it did when its pins were written), else now.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::time::SystemTime;

use oxbuild_image::Platform;
use oxbuild_python::resolve::{self, Request as Resolve};

use crate::error::task;
use crate::{Error, Kind, Request, Services};

/// What to lock.
#[derive(Debug, Clone)]
pub struct LockRequest {
    /// The project, its base and config (as a build reads them).
    pub build: Request,
    /// The platforms; `[image] platforms`, else the machine's own, when empty.
    pub platforms: Vec<Platform>,
    /// Where to write; `pylock.toml` in the project when None.
    pub output: Option<PathBuf>,
    /// Ignore files uploaded after this.
    pub exclude_newer: Option<SystemTime>,
    /// Drop every existing pin.
    pub upgrade: bool,
    /// Drop these packages' existing pins.
    pub upgrade_packages: Vec<String>,
    /// Allow pre-releases everywhere.
    pub prereleases: bool,
    /// Also lock the test requirements, when the project has any, into
    /// `pylock.test.toml` beside the lock.
    pub test: bool,
}

/// What `lock` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LockReport {
    /// The lock written.
    pub written: PathBuf,
    /// What was read for the requirements.
    pub inputs: String,
    /// The upload-time cutoff, and why that one.
    pub exclude_newer: String,
    /// Packages locked (distinct name and version).
    pub packages: usize,
    /// Files chosen that have no upload time (find-links, indexes without
    /// PEP 700 data): always eligible.
    pub undated_files: usize,
    /// Packages whose version differs by platform, and why.
    pub differences: Vec<String>,
    /// HTTP requests sent to the indexes (pages, metadata, files).
    pub requests: u64,
    /// What became of `[python] lock` (and `test-requirements`) in oxbuild.toml.
    pub config: String,
    /// The test variant's lock, when the project has test requirements.
    pub test: Option<TestLock>,
}

/// The test variant's lock: production's versions and the test requirements.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TestLock {
    /// The lock written (`pylock.test.toml`).
    pub written: PathBuf,
    /// What was read for the test requirements.
    pub inputs: String,
    /// Packages locked, production's included.
    pub packages: usize,
}

/// The requirements to resolve, where they came from, their own pins, the
/// file whose git history dates them, and what a requirements file asks
/// besides (its constraints, indexes and `--pre`; nothing for pyproject).
struct Inputs {
    requirements: Vec<String>,
    from: String,
    pins: BTreeMap<String, pep440_rs::Version>,
    file: PathBuf,
    asks: oxbuild_python::input::Input,
    /// The project's `[python] extras` are in `requirements` already (a
    /// Poetry project's, read with its dependencies).
    with_extras: bool,
}

impl Inputs {
    /// Requirements from pyproject.toml, which names no index.
    fn listed(requirements: Vec<String>, from: String, file: PathBuf) -> Inputs {
        Inputs { pins: pins_of(&requirements), requirements, from, file, asks: Default::default(), with_extras: false }
    }

    /// The requirements file at `file` (`from` as the user names it).
    fn read(file: PathBuf, from: String) -> Result<Inputs, Error> {
        let mut asks = oxbuild_python::input::read(&file).map_err(|e| Error::new(Kind::Config, e.to_string()))?;
        let requirements = std::mem::take(&mut asks.requirements);
        Ok(Inputs { pins: pins_of(&requirements), requirements, from, file, asks, with_extras: false })
    }
}

/// The `==` pins among `reqs`, by normalised name.
fn pins_of(reqs: &[String]) -> BTreeMap<String, pep440_rs::Version> {
    reqs.iter()
        .filter_map(|r| oxbuild_python::name::parse_requirement(r).ok())
        .filter_map(|r| match &r.version_or_url {
            Some(pep508_rs::VersionOrUrl::VersionSpecifier(s)) => match s.iter().collect::<Vec<_>>().as_slice() {
                [one] if matches!(one.operator(), pep440_rs::Operator::Equal | pep440_rs::Operator::ExactEqual) => {
                    Some((oxbuild_python::name::normalize(r.name.as_ref()), one.version().clone()))
                }
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn read_input(p: &Path) -> Result<String, Error> {
    std::fs::read_to_string(p).map_err(|e| Error::new(Kind::Config, format!("{}: {e}", p.display())))
}

fn inputs(dir: &Path, pyproject: Option<&toml::Table>, cfg: &oxbuild_config::Config) -> Result<Inputs, Error> {
    let mut inputs = inputs_of_the_project(dir, pyproject, cfg)?;
    // The project's extras (`[python] extras`) join whatever is read; a
    // Poetry project's are read with its dependencies.
    let extras = &cfg.python.extras;
    if !extras.is_empty() && !inputs.with_extras {
        let doc = pyproject.ok_or_else(|| {
            Error::new(
                Kind::Config,
                "[python] extras are the project's own, and there is no pyproject.toml to read them from",
            )
        })?;
        let more = oxbuild_python::input::project_extras(doc, extras).map_err(|e| Error::new(Kind::Config, e))?;
        inputs.pins.extend(pins_of(&more));
        inputs.requirements.extend(more);
        inputs.from = format!("{} and pyproject.toml's extras {}", inputs.from, extras.join(", "));
    }
    Ok(inputs)
}

fn inputs_of_the_project(
    dir: &Path,
    pyproject: Option<&toml::Table>,
    cfg: &oxbuild_config::Config,
) -> Result<Inputs, Error> {
    // Named in [python] lock-input: that, before anything found.
    if let Some(file) = &cfg.python.lock_input {
        return Inputs::read(dir.join(file), file.clone());
    }
    let requirements_in = dir.join("requirements.in");
    if requirements_in.is_file() {
        return Inputs::read(requirements_in, "requirements.in".into());
    }
    let path = dir.join("pyproject.toml");
    let project = pyproject.and_then(oxbuild_python::input::project_dependencies);
    if let Some(doc) = pyproject
        && (project.is_some()
            || !cfg.python.groups.is_empty() && (doc.contains_key("project") || doc.contains_key("dependency-groups")))
    {
        let mut requirements = project.unwrap_or_default();
        let groups = doc.get("dependency-groups").and_then(|g| g.as_table());
        for group in &cfg.python.groups {
            let listed = groups.and_then(|g| g.get(group)).and_then(|g| g.as_array()).ok_or_else(|| {
                Error::new(
                    Kind::Config,
                    format!("[python] groups names `{group}`, which pyproject.toml's [dependency-groups] lacks"),
                )
            })?;
            requirements.extend(listed.iter().filter_map(|d| d.as_str().map(String::from)));
        }
        let from = if cfg.python.groups.is_empty() {
            "pyproject.toml [project] dependencies".to_string()
        } else {
            format!("pyproject.toml [project] dependencies and groups {}", cfg.python.groups.join(", "))
        };
        return Ok(Inputs::listed(requirements, from, path));
    }
    // The file [python] names, else a requirements.txt: what such projects
    // install from (`oxbuild init` names the lock it is about to write).
    if let Some(file) = &cfg.python.requirements {
        return Inputs::read(dir.join(file), file.clone());
    }
    // A Poetry project's own dependencies, read as the ranges Poetry means.
    if let Some(doc) = pyproject
        && let Some(mut asks) = oxbuild_python::input::poetry_dependencies(doc, &cfg.python.extras)
            .map_err(|e| Error::new(Kind::Config, format!("pyproject.toml: {e}")))?
    {
        let requirements = std::mem::take(&mut asks.requirements);
        let from = if cfg.python.extras.is_empty() {
            "pyproject.toml [tool.poetry.dependencies]".to_string()
        } else {
            format!("pyproject.toml [tool.poetry.dependencies] with extras {}", cfg.python.extras.join(", "))
        };
        let mut inputs = Inputs::listed(requirements, from, path);
        inputs.asks = asks;
        inputs.with_extras = true;
        return Ok(inputs);
    }
    let plain = dir.join("requirements.txt");
    if plain.is_file() {
        return Inputs::read(plain, "requirements.txt".into());
    }
    Err(Error::new(
        Kind::Config,
        format!(
            "{}: nothing to lock: write the top-level requirements into requirements.in (or requirements.txt), or [project] dependencies into pyproject.toml",
            dir.display()
        ),
    ))
}

/// pip-tools' names for the test or development requirements of a project.
const TEST_INPUT_FILES: [&str; 4] =
    ["requirements-test.in", "requirements-dev.in", "test-requirements.in", "dev-requirements.in"];

/// The groups and extras of pyproject.toml taken as test requirements.
const TEST_GROUPS: [&str; 3] = ["test", "tests", "dev"];

/// The requirements of the test variant, when the project has any that are
/// not locked: a pip-tools `requirements-test.in` (or `-dev`), else the
/// `test`, `tests` and `dev` dependency groups and extras of pyproject.toml,
/// else a `[python] test-requirements` file that leaves packages unpinned.
fn test_inputs(
    dir: &Path,
    pyproject: Option<&toml::Table>,
    cfg: &oxbuild_config::Config,
) -> Result<Option<Inputs>, Error> {
    if let Some(name) = TEST_INPUT_FILES.iter().find(|f| dir.join(f).is_file()) {
        return Inputs::read(dir.join(name), name.to_string()).map(Some);
    }
    if let Some(doc) = pyproject {
        let groups = doc.get("dependency-groups").and_then(|g| g.as_table());
        let extras = doc.get("project").and_then(|p| p.get("optional-dependencies")).and_then(|g| g.as_table());
        let mut requirements = Vec::new();
        let mut from = Vec::new();
        for name in TEST_GROUPS {
            if let Some(groups) = groups
                && groups.contains_key(name)
            {
                requirements.extend(group_requirements(groups, name, 0));
                from.push(format!("group {name}"));
            }
            if let Some(listed) = extras.and_then(|e| e.get(name)).and_then(|l| l.as_array()) {
                requirements.extend(listed.iter().filter_map(|d| d.as_str().map(String::from)));
                from.push(format!("extra {name}"));
            }
        }
        if !from.is_empty() {
            let from = format!("pyproject.toml {}", from.join(", "));
            return Ok(Some(Inputs::listed(requirements, from, dir.join("pyproject.toml"))));
        }
    }
    if let Some(name) = &cfg.python.test_requirements {
        let file = dir.join(name);
        let is_requirements = !name.ends_with(".toml") && !name.ends_with(".lock");
        if is_requirements && file.is_file() {
            let text = read_input(&file)?;
            if !oxbuild_python::requirements::unpinned(&text).is_empty() {
                return Inputs::read(file, name.clone()).map(Some);
            }
        }
    }
    Ok(None)
}

/// The requirements of dependency group `name`, its `{include-group = …}`
/// entries followed (PEP 735), a few levels deep at most.
fn group_requirements(groups: &toml::Table, name: &str, depth: usize) -> Vec<String> {
    let listed = groups.get(name).and_then(|g| g.as_array()).cloned().unwrap_or_default();
    let mut out = Vec::new();
    for entry in &listed {
        if let Some(r) = entry.as_str() {
            out.push(r.to_string());
        } else if let Some(included) = entry.get("include-group").and_then(|g| g.as_str())
            && depth < 8
        {
            out.extend(group_requirements(groups, included, depth + 1));
        }
    }
    out
}

/// Where the test lock goes beside `output`: `pylock.test.toml` beside
/// `pylock.toml` (PEP 751's `pylock.<name>.toml`), else `NAME.test.toml`.
fn test_output(output: &Path) -> PathBuf {
    let name = output.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let stem = name.strip_suffix(".toml").unwrap_or(&name);
    output.with_file_name(format!("{stem}.test.toml"))
}

/// Writes `text` to `path` whole or not at all.
fn write_lock(path: &Path, text: &str) -> Result<(), Error> {
    let failed = |e: String| Error::new(Kind::Output, format!("writing {}: {e}", path.display()));
    let parent = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new().prefix(".pylock-").tempfile_in(parent).map_err(|e| failed(e.to_string()))?;
    std::io::Write::write_all(&mut tmp, text.as_bytes()).map_err(|e| failed(e.to_string()))?;
    tmp.persist(path).map_err(|e| failed(e.error.to_string()))?;
    Ok(())
}

/// The production lock's versions as requirements of the test lock, so that
/// the test variant installs exactly what production does beneath its own
/// packages: `name==version`, with a marker naming each target where they
/// differ by platform.
fn production_pins(locked: &resolve::Locked) -> Vec<String> {
    let mut by_name: BTreeMap<String, Vec<(usize, String)>> = BTreeMap::new();
    for (i, r) in locked.resolved.iter().enumerate() {
        for c in &r.chosen {
            by_name.entry(c.name.clone()).or_default().push((i, c.version.to_string()));
        }
    }
    let all = locked.resolved.len();
    let mut out = Vec::new();
    for (name, chosen) in by_name {
        if chosen.len() == all && chosen.iter().all(|(_, v)| *v == chosen[0].1) {
            out.push(format!("{name}=={}", chosen[0].1));
        } else {
            for (i, v) in chosen {
                let marker = resolve::pylock::marker_of(&locked.resolved[i].target);
                out.push(format!("{name}=={v} ; {marker}"));
            }
        }
    }
    out
}

/// The cutoff for the input `files` (the input and what it includes) when
/// none was given: the newest of their last commits when git tracks them
/// all unmodified, else now; and why. A date before the target's Python
/// came out is no date its pins were made for (no wheel for it existed
/// then, and old sdists would be built one by one): three months after that
/// Python's release, then, when its wheels were out, and versions of the
/// project's own era are still near.
fn default_cutoff(dir: &Path, files: &[PathBuf], python: Option<(u32, u32)>) -> (SystemTime, String) {
    let git = |file: &Path, args: &[&str]| {
        let dir = file.parent().unwrap_or(Path::new("."));
        let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .arg("--")
            .arg(&name)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let shown = |file: &Path| file.strip_prefix(dir).unwrap_or(file).display().to_string();
    let mut newest: Option<(u64, &PathBuf)> = None;
    for file in files {
        let tracked = git(file, &["ls-files"]).is_some_and(|o| !o.is_empty());
        let clean = git(file, &["status", "--porcelain"]).is_some_and(|o| o.is_empty());
        let committed = git(file, &["log", "-1", "--format=%ct"]).and_then(|s| s.parse::<u64>().ok());
        match committed.filter(|_| tracked && clean) {
            Some(t) if newest.is_none_or(|(n, _)| t > n) => newest = Some((t, file)),
            Some(_) => {}
            None => {
                return (SystemTime::now(), format!("now, as {} is modified or not tracked by git", shown(file)));
            }
        }
    }
    let Some((seconds, file)) = newest else { return (SystemTime::now(), "now".into()) };
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds);
    let also =
        if files.len() > 1 { format!(", the newest of the {} files it reads", files.len()) } else { String::new() };
    if let Some((major, minor)) = python
        && let Some(released) = python_release(major, minor)
        && at < released
    {
        // Three months on, most projects had wheels for it: the versions of
        // the project's own era that run on it, rather than today's.
        let settled = (released + WHEELS_SETTLE).min(SystemTime::now());
        return (
            settled,
            format!(
                "three months after Python {major}.{minor} came out ({}): the last commit of {} ({}) predates it, so its pins were not chosen for it",
                humantime::format_rfc3339_seconds(released),
                shown(file),
                humantime::format_rfc3339_seconds(at)
            ),
        );
    }
    (at, format!("the last commit of {}{also}, which git tracks unmodified", shown(file)))
}

/// The project's own `requires-python` (pyproject.toml's `[project]`) must
/// allow every target's Python: a lock for one it excludes would only fail
/// later, at the build, after every wheel was fetched.
fn project_python_fits(pyproject: Option<&toml::Table>, targets: &[oxbuild_python::Target]) -> Result<(), Error> {
    let Some(doc) = pyproject else { return Ok(()) };
    // PEP 621's, else Poetry's own `python` dependency.
    let requires = doc.get("project").and_then(|p| p.get("requires-python")).and_then(|r| r.as_str());
    let Some(spec) = requires.map(str::to_string).or_else(|| oxbuild_python::input::poetry_python(doc)) else {
        return Ok(());
    };
    let spec = spec.as_str();
    let Ok(allowed) = pep440_rs::VersionSpecifiers::from_str(spec) else { return Ok(()) };
    for t in targets {
        let Ok(python) = pep440_rs::Version::from_str(&t.full_version) else { continue };
        if !allowed.contains(&python) {
            return Err(Error::new(
                Kind::Config,
                format!(
                    "pyproject.toml's requires-python `{spec}` excludes the base's Python {}: build on a base with a Python it allows ([image] base, or --base), or change requires-python if the project runs on {}.{}",
                    t.full_version, t.major, t.minor
                ),
            ));
        }
    }
    Ok(())
}

/// How long after a Python's release most projects had published wheels for it.
const WHEELS_SETTLE: std::time::Duration = std::time::Duration::from_secs(90 * 24 * 3600);

/// When CPython `major.minor` was first released, for those the table knows.
fn python_release(major: u32, minor: u32) -> Option<SystemTime> {
    let day = match (major, minor) {
        (3, 7) => "2018-06-27",
        (3, 8) => "2019-10-14",
        (3, 9) => "2020-10-05",
        (3, 10) => "2021-10-04",
        (3, 11) => "2022-10-24",
        (3, 12) => "2023-10-02",
        (3, 13) => "2024-10-07",
        (3, 14) => "2025-10-07",
        _ => return None,
    };
    humantime::parse_rfc3339(&format!("{day}T00:00:00Z")).ok()
}

/// The pins of an existing lock at `path`, as preferences.
fn existing_pins(path: &Path) -> BTreeMap<String, pep440_rs::Version> {
    toml_lock_pins(path, "packages")
}

/// The names and versions of the tables in array `key` of the TOML lock at
/// `path` (`packages` in pylock.toml, `package` in uv, Poetry and PDM
/// locks); none when it is missing or does not parse.
fn toml_lock_pins(path: &Path, key: &str) -> BTreeMap<String, pep440_rs::Version> {
    let Ok(text) = std::fs::read_to_string(path) else { return BTreeMap::new() };
    let Ok(doc) = text.parse::<toml::Table>() else { return BTreeMap::new() };
    let mut out = BTreeMap::new();
    for p in doc.get(key).and_then(|p| p.as_array()).into_iter().flatten() {
        let name = p.get("name").and_then(|n| n.as_str());
        let version = p.get("version").and_then(|v| v.as_str()).and_then(|v| pep440_rs::Version::from_str(v).ok());
        if let (Some(name), Some(version)) = (name, version) {
            out.entry(oxbuild_python::name::normalize(name)).or_insert(version);
        }
    }
    out
}

/// The pins of the file pip-compile made from `input` (`requirements.in`
/// → `requirements.txt` beside it), when there is one: the versions the
/// project has been running.
fn compiled_pins(input: &Path) -> BTreeMap<String, pep440_rs::Version> {
    if input.extension().is_none_or(|e| e != "in") {
        return BTreeMap::new();
    }
    compiled_file_pins(&input.with_extension("txt"))
}

/// The pins of the requirements file at `path` when pip-compile (or a tool
/// like it) made it; none otherwise.
fn compiled_file_pins(path: &Path) -> BTreeMap<String, pep440_rs::Version> {
    let Ok(text) = std::fs::read_to_string(path) else { return BTreeMap::new() };
    if !oxbuild_python::requirements::compiled(&text) {
        return BTreeMap::new();
    }
    oxbuild_python::input::read(path).map(|read| pins_of(&read.requirements)).unwrap_or_default()
}

/// The versions the project's other locks pin, beside `input`: its
/// `uv.lock`, `poetry.lock` or `pdm.lock` (each a `[[package]]` list with
/// names and versions), `Pipfile.lock` (`==` versions by name) and a
/// compiled `requirements.txt`. A project that moves to pylock.toml keeps
/// the versions it has been running; a lock that does not parse adds none.
fn other_lock_pins(input: &Path) -> BTreeMap<String, pep440_rs::Version> {
    let dir = input.parent().unwrap_or(Path::new("."));
    let mut out = BTreeMap::new();
    for file in ["uv.lock", "poetry.lock", "pdm.lock"] {
        for (name, version) in toml_lock_pins(&dir.join(file), "package") {
            out.entry(name).or_insert(version);
        }
    }
    let pipfile = std::fs::read(dir.join("Pipfile.lock")).ok();
    let pipfile: serde_json::Value = pipfile.and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
    for section in ["default", "develop"] {
        for (name, p) in pipfile[section].as_object().into_iter().flatten() {
            if let Some(v) =
                p["version"].as_str().and_then(|v| pep440_rs::Version::from_str(v.trim_start_matches("==")).ok())
            {
                out.entry(oxbuild_python::name::normalize(name)).or_insert(v);
            }
        }
    }
    // (Not the input itself, nor what `compiled_pins` read from it.)
    let requirements = dir.join("requirements.txt");
    if requirements != input && requirements != input.with_extension("txt") {
        for (name, version) in compiled_file_pins(&requirements) {
            out.entry(name).or_insert(version);
        }
    }
    out
}

/// The versions to keep while they fit: the input's own `==` pins, those
/// of the lock at `existing`, then those pip-compile wrote from `input`,
/// then those of the project's other locks (so that a project's first lock
/// keeps the versions it ran); none with `--upgrade`, and none of the
/// packages `--upgrade-package` names.
fn preferences(
    pins: &BTreeMap<String, pep440_rs::Version>,
    existing: &Path,
    input: &Path,
    req: &LockRequest,
) -> BTreeMap<String, pep440_rs::Version> {
    if req.upgrade {
        return BTreeMap::new();
    }
    let mut preferences = pins.clone();
    let others = other_lock_pins(input);
    for (name, version) in existing_pins(existing).into_iter().chain(compiled_pins(input)).chain(others) {
        preferences.entry(name).or_insert(version);
    }
    for name in &req.upgrade_packages {
        preferences.remove(&oxbuild_python::name::normalize(name));
    }
    preferences
}

/// Drops from `dir`'s oxbuild.toml the note `oxbuild init` wrote when its
/// own lock failed (`# - …, and `oxbuild lock` failed: …` and its
/// continuation lines): this lock did what it asked.
fn clear_failed_lock_note(dir: &Path) {
    let path = dir.join(oxbuild_config::FILE_NAME);
    let Ok(text) = std::fs::read_to_string(&path) else { return };
    let mut kept = Vec::new();
    let mut dropping = false;
    for line in text.lines() {
        if line.starts_with("# - ") {
            dropping = line.contains("and `oxbuild lock` failed: ");
        } else if !line.starts_with("#   ") {
            dropping = false;
        }
        if !dropping {
            kept.push(line);
        }
    }
    if kept.len() != text.lines().count() {
        let _ = std::fs::write(&path, kept.join("\n") + "\n");
    }
}

/// Makes `[python] key` (`lock`, `test-requirements`) name `file` in
/// `dir`'s oxbuild.toml when nothing else is named there; says what it did,
/// or what to do.
fn point_config_at(dir: &Path, key: &str, named: Option<&str>, file: &str) -> String {
    match named {
        Some(f) if f == file => format!("[python] {key} already names {file}"),
        // Another lock (a uv.lock the build warned about): the new one
        // takes its place, and records it as replaced.
        Some(f) => replace_python_key(
            dir,
            (key, f),
            &format!("{key} = \"{file}\"   # written by `oxbuild lock`, in place of {f}"),
            &format!("set [python] {key} = \"{file}\" (it named {f})"),
            &format!(
                "[python] names {f}: to build from the new lock, name {file} there instead (`{key} = \"{file}\"`)"
            ),
        ),
        None => {
            let path = dir.join(oxbuild_config::FILE_NAME);
            let Ok(text) = std::fs::read_to_string(&path) else {
                return format!("no oxbuild.toml here: add `[python] {key} = \"{file}\"` to it");
            };
            let line = format!("{key} = \"{file}\"   # written by `oxbuild lock`\n");
            // init's placeholder when it found no lock: the section goes there.
            let placeholder = "# [python]\n# no lock found:";
            let updated = match text
                .find("\n[python]\n")
                .map(|i| i + "\n[python]\n".len())
                .or_else(|| text.starts_with("[python]\n").then_some("[python]\n".len()))
            {
                Some(at) => format!("{}{line}{}", &text[..at], &text[at..]),
                None => match text.match_indices(placeholder).find(|(i, _)| *i == 0 || text[..*i].ends_with('\n')) {
                    Some((i, _)) => {
                        let note = i + "# [python]\n".len();
                        let end = text[note..].find('\n').map_or(text.len(), |e| note + e + 1);
                        format!("{}[python]\n{line}{}", &text[..i], &text[end..])
                    }
                    None => format!("{}\n\n[python]\n{line}", text.trim_end()),
                },
            };
            match std::fs::write(&path, updated) {
                Ok(()) => format!("set [python] {key} = \"{file}\" in {}", path.display()),
                Err(e) => format!("could not update {} ({e}): add `[python] {key} = \"{file}\"` to it", path.display()),
            }
        }
    }
}

/// Replaces `[python] requirements = "from"` in `dir`'s oxbuild.toml with
/// `lock = "file"`, the lock made from it, and (unless `[python]` names
/// one) `lock-input = "from"`, so that the next `oxbuild lock` resolves the
/// same file; says what it did, or what to do.
fn switch_to_lock(dir: &Path, from: &str, file: &str, keep_input: bool) -> String {
    let input =
        if keep_input { format!("\nlock-input = \"{from}\"   # what `oxbuild lock` resolves") } else { String::new() };
    replace_python_key(
        dir,
        ("requirements", from),
        &format!("lock = \"{file}\"   # written by `oxbuild lock` from {from}{input}"),
        &format!("set [python] lock = \"{file}\" (locked from {from})"),
        &format!(
            "set `lock = \"{file}\"` in [python] instead of `requirements = \"{from}\"` to build from the new lock"
        ),
    )
}

/// Replaces the line `key = "value"` of `[python]` in `dir`'s oxbuild.toml
/// with `new` (lines), and says `done` and where; `by_hand` (what to do)
/// when there is no such line or it cannot be written.
fn replace_python_key(dir: &Path, (key, value): (&str, &str), new: &str, done: &str, by_hand: &str) -> String {
    let path = dir.join(oxbuild_config::FILE_NAME);
    let Ok(text) = std::fs::read_to_string(&path) else { return by_hand.to_string() };
    let mut section = String::new();
    let mut switched = false;
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            let t = line.trim();
            if t.starts_with('[') {
                section = t.to_string();
            }
            let names_it = t
                .strip_prefix(key)
                .and_then(|r| r.trim_start().strip_prefix('='))
                .and_then(|r| r.trim_start().strip_prefix(&format!("\"{value}\"")))
                .is_some_and(|rest| rest.trim().is_empty() || rest.trim_start().starts_with('#'));
            if section == "[python]" && names_it && !switched {
                switched = true;
                new.to_string()
            } else {
                line.to_string()
            }
        })
        .collect();
    if !switched {
        return by_hand.to_string();
    }
    match std::fs::write(&path, lines.join("\n") + "\n") {
        Ok(()) => format!("{done} in {}", path.display()),
        Err(e) => format!("could not update {} ({e}): {by_hand}", path.display()),
    }
}

/// Resolves and writes the lock.
pub async fn lock(req: &LockRequest, services: &Services) -> Result<LockReport, Error> {
    let (request, cfg) = req.build.resolved()?;
    for o in &cfg.overridden {
        services.events.step(o);
    }
    let dir = request.dir.clone();
    // Read once, for the inputs, the test inputs and requires-python.
    let pyproject = oxbuild_python::input::pyproject(&dir).map_err(|e| Error::new(Kind::Config, e))?;
    let inputs = inputs(&dir, pyproject.as_ref(), &cfg)?;
    let output = req.output.clone().unwrap_or_else(|| dir.join("pylock.toml"));
    // PEP 751 names a lock `pylock.toml` or `pylock.NAME.toml`, and the
    // config names it in `[python] lock`, which takes no other name: found
    // before the work, not after it in a config that no longer loads.
    let name = output.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if !(name.starts_with("pylock.") && name.ends_with(".toml")) {
        return Err(Error::new(
            Kind::Config,
            format!(
                "--output {}: a lock is named pylock.toml or pylock.NAME.toml (PEP 751), e.g. {}",
                output.display(),
                output.with_file_name("pylock.toml").display()
            ),
        ));
    }

    // The targets, read from the base as the build reads it.
    let platforms = if !req.platforms.is_empty() {
        req.platforms.clone()
    } else if !cfg.image.platforms.is_empty() {
        cfg.image
            .platforms
            .iter()
            .map(|p| p.parse().map_err(|e| Error::new(Kind::Config, format!("[image] platforms: {e}"))))
            .collect::<Result<_, _>>()?
    } else {
        vec![request.platform.clone().unwrap_or_else(Platform::host)]
    };
    let location = crate::base_location(&request, &cfg)?;
    let mut targets = Vec::new();
    let mut first_base = None;
    for p in &platforms {
        let mut one = request.clone();
        one.platform = Some(p.clone());
        let base = crate::base::open(&location, &one, services, false).await?;
        targets.push(oxbuild_python::target::detect(&base.fs, &base.config)?);
        first_base.get_or_insert(base);
    }
    // A sdist whose dependencies are dynamic is built to read them, as a
    // build would build it (and the wheel is kept for that build).
    // With [python] build-constraints, as the build would build it.
    let constraints = match &cfg.python.build_constraints {
        Some(file) => oxbuild_python::requirements::build_constraints(&dir.join(file))?,
        None => Default::default(),
    };
    let finder: Option<std::sync::Arc<dyn oxbuild_python::sdist::FindBuilder>> =
        first_base.as_ref().map(|base| -> std::sync::Arc<dyn oxbuild_python::sdist::FindBuilder> {
            std::sync::Arc::new(crate::interpreter::BaseBuilder::new(base, services))
        });
    let built: std::sync::Arc<dyn oxbuild_python::sdist::BuiltCache> =
        std::sync::Arc::new(crate::built::Built::new(services, request.cache_repo.as_ref()));
    let first_target = targets.first().cloned();
    project_python_fits(pyproject.as_ref(), &targets)?;
    let (cutoff, why) = match req.exclude_newer {
        Some(t) => (t, "--exclude-newer".to_string()),
        None => {
            // The oldest Python among the targets decides what is too early.
            let python = targets.iter().map(|t| (t.major, t.minor)).min();
            let files =
                if inputs.asks.files.is_empty() { vec![inputs.file.clone()] } else { inputs.asks.files.clone() };
            default_cutoff(&dir, &files, python)
        }
    };
    let events = &services.events;
    events.step(&format!(
        "resolving {} requirements from {} for {}, files uploaded before {} ({why})",
        inputs.requirements.len(),
        inputs.from,
        targets.iter().map(|t| format!("Python {} on {}", t.full_version, t.machine)).collect::<Vec<_>>().join(", "),
        humantime::format_rfc3339_seconds(cutoff)
    ));

    // The test variant's requirements, locked on top of production's versions.
    let test = if req.test { test_inputs(&dir, pyproject.as_ref(), &cfg)? } else { None };
    // The configuration's indexes, then those the input files name.
    let configured = oxbuild_python::requirements::IndexOptions {
        index_url: cfg.python.index_url.clone(),
        extra_index_urls: cfg.python.extra_index_url.clone(),
        find_links: cfg.python.find_links.iter().map(|f| dir.join(f)).collect(),
        no_index: cfg.python.no_index,
    };
    for note in std::iter::once(&inputs).chain(&test).flat_map(|i| &i.asks.notes) {
        events.warn(note);
    }
    // Production's indexes are the test lock's too: one resolution, so a
    // test input's own indexes cannot change production's versions.
    if let Some(t) = &test
        && (t.asks.options.index_url.is_some()
            || !t.asks.options.extra_index_urls.is_empty()
            || !t.asks.options.find_links.is_empty())
    {
        events.warn(&format!(
            "{} names indexes of its own; the test lock resolves from production's ({} and [python]'s), so that both agree",
            t.from, inputs.from
        ));
    }
    if let (Some(ours), Some(theirs)) = (&configured.index_url, &inputs.asks.options.index_url)
        && ours != theirs
    {
        events.warn(&format!(
            "{} names the index {}; [python] index-url ({}) is used instead",
            inputs.from,
            oxbuild_python::source::redact(theirs),
            oxbuild_python::source::redact(ours)
        ));
    }
    // An index the input names (`--index-url`, a [[tool.poetry.source]])
    // replaces PyPI: said, with how to pick another, before a request to
    // it can fail.
    // Its host only: a token can sit in an index URL's path (Gemfury's).
    if configured.index_url.is_none()
        && !configured.no_index
        && !inputs.asks.options.no_index
        && let Some(theirs) = &inputs.asks.options.index_url
    {
        let after_scheme = theirs.split_once("://").map_or(theirs.as_str(), |(_, rest)| rest);
        let authority = after_scheme.split(['/', '?', '#']).next().unwrap_or("");
        let host = authority.rsplit('@').next().unwrap_or(authority);
        events.step(&format!(
            "the index at {host} from {} ([python] index-url or OXBUILD_PYTHON_INDEX_URL picks another)",
            inputs.from
        ));
    }
    let options = configured.then(&inputs.asks.options);
    let sources = oxbuild_python::source::Sources::from_options(&options, services.http().clone())?
        .caching(services.cache.bucket(oxbuild_cache::Bucket::Index)?);
    let resolve_request = Resolve {
        requirements: inputs.requirements.clone(),
        exclude_newer: Some(cutoff),
        preferences: preferences(&inputs.pins, &output, &inputs.file, req),
        prereleases: req.prereleases || inputs.asks.prereleases,
        constraints: inputs.asks.constraints.clone(),
    };
    let test_path = test_output(&output);
    let test_request = test.as_ref().map(|t| {
        Resolve {
            // Production's own inputs too: a URL requirement names its file.
            requirements: inputs.requirements.iter().chain(&t.requirements).cloned().collect(),
            exclude_newer: Some(cutoff),
            preferences: preferences(&t.pins, &test_path, &t.file, req),
            prereleases: req.prereleases || inputs.asks.prereleases || t.asks.prereleases,
            constraints: inputs.asks.constraints.iter().chain(&t.asks.constraints).cloned().collect(),
        }
    });
    let counted = sources.clone();
    let store = services.store.clone();
    let handle = tokio::runtime::Handle::current();
    let unsatisfiable = |e: resolve::ResolveError, what: &str| match e {
        resolve::ResolveError::Unsatisfiable { .. } => Error::new(Kind::Config, format!("{what}{e}")),
        resolve::ResolveError::Index(e) => e.into(),
    };
    let pythons: Vec<String> = targets.iter().map(|t| format!("Python {} on {}", t.full_version, t.machine)).collect();
    // A cold resolution of a large project can take minutes: a line every
    // ten seconds says it is still at it, and how far.
    let ticking = {
        let (events, counted, started) = (services.events.clone(), counted.clone(), std::time::Instant::now());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(10)).await;
                events.step(&format!(
                    "  still resolving after {}s: {} requests to the indexes so far",
                    started.elapsed().as_secs(),
                    counted.requests()
                ));
            }
        })
    };
    let resolved = tokio::task::spawn_blocking(move || {
        let mut index = resolve::Index::new(&sources, &store, handle);
        if let (Some(finder), Some(target)) = (finder, first_target) {
            index = index.building(finder, target, Some(built), constraints);
        }
        let mut locked = resolve::lock(&index, &targets, &resolve_request).map_err(|e| (e, false))?;
        let mut test_locked = match test_request {
            Some(mut request) => {
                request.requirements.extend(production_pins(&locked));
                Some(resolve::lock(&index, &targets, &request).map_err(|e| (e, true))?)
            }
            None => None,
        };
        let mut known = std::collections::HashMap::new();
        for l in std::iter::once(&mut locked).chain(test_locked.as_mut()) {
            l.hash_local_files(&mut known).map_err(|e| (resolve::ResolveError::Index(e), false))?;
        }
        Ok((locked, test_locked))
    })
    .await;
    ticking.abort();
    let (locked, test_locked) = resolved.map_err(task)?.map_err(|(e, test_step)| match test_step {
        false => unsatisfiable(e, ""),
        true => unsatisfiable(e, "the test requirements do not fit the production lock's versions: "),
    })?;
    // Requirements whose markers all exclude the targets lock nothing: that
    // is the input not fitting the base, not an empty app.
    if !inputs.requirements.is_empty() && locked.resolved.iter().all(|r| r.chosen.is_empty()) {
        return Err(Error::new(
            Kind::Config,
            format!(
                "none of the {} requirements of {} applies to {}: their markers exclude it (`{}`); build on a base whose Python they are for ([image] base, or --base)",
                inputs.requirements.len(),
                inputs.from,
                pythons.join(", "),
                inputs.requirements[0]
            ),
        ));
    }
    let beside = output.parent().unwrap_or(Path::new("."));
    let text = oxbuild_python::resolve::pylock::write(&locked.resolved, &locked.differences, beside)
        .map_err(|e| Error::new(Kind::Config, e))?;
    let test_text = match &test_locked {
        Some(t) => Some(
            oxbuild_python::resolve::pylock::write(&t.resolved, &t.differences, beside)
                .map_err(|e| Error::new(Kind::Config, e))?,
        ),
        None => None,
    };
    // The locks beside it (a poetry.lock it was locked from), as they are
    // now: the build warns of one only once it changes.
    let replaced: Vec<(String, String)> = oxbuild_config::LOCK_FILES
        .iter()
        .map(|f| beside.join(f))
        .filter(|p| *p != output && *p != test_path && p.is_file())
        .filter_map(|p| Some((p.file_name()?.to_string_lossy().into_owned(), oxbuild_config::lock_digest(&p)?)))
        .collect();
    let text = text + &oxbuild_config::replaces_table(&replaced);
    // Both resolved before either is written: a failure leaves both as they were.
    write_lock(&output, &text)?;
    if let Some(text) = &test_text {
        write_lock(&test_path, text)?;
    }

    let mut names = std::collections::BTreeSet::new();
    let mut undated = std::collections::BTreeSet::new();
    for r in &locked.resolved {
        for c in &r.chosen {
            names.insert((c.name.clone(), c.version.to_string()));
            for f in c.files.iter().filter(|f| f.upload_time.is_none()) {
                undated.insert(f.filename.clone());
            }
        }
    }
    let relative = |p: &Path| p.strip_prefix(&dir).unwrap_or(p).display().to_string();
    let named = cfg.python.lock.as_deref().or(cfg.python.requirements.as_deref());
    // `[python] requirements` naming the file just locked from: the build
    // takes the lock instead.
    let locked_from =
        cfg.python.requirements.as_deref().filter(|f| cfg.python.lock.is_none() && dir.join(f) == inputs.file);
    clear_failed_lock_note(&dir);
    let mut config = match locked_from {
        Some(from) => switch_to_lock(&dir, from, &relative(&output), cfg.python.lock_input.is_none()),
        None => point_config_at(&dir, "lock", named, &relative(&output)),
    };
    let test = match (test, test_locked) {
        (Some(inputs), Some(locked)) => {
            let named = cfg.python.test_requirements.as_deref();
            config.push_str("; ");
            config.push_str(&point_config_at(&dir, "test-requirements", named, &relative(&test_path)));
            let packages: std::collections::BTreeSet<(String, String)> = locked
                .resolved
                .iter()
                .flat_map(|r| r.chosen.iter().map(|c| (c.name.clone(), c.version.to_string())))
                .collect();
            Some(TestLock { written: test_path, inputs: inputs.from, packages: packages.len() })
        }
        _ => None,
    };
    Ok(LockReport {
        written: output,
        inputs: inputs.from,
        exclude_newer: format!("{} ({why})", humantime::format_rfc3339_seconds(cutoff)),
        packages: names.len(),
        undated_files: undated.len(),
        differences: locked.differences,
        requests: counted.requests(),
        config,
        test,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_successful_lock_drops_inits_note_of_its_failed_one_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let toml = "# oxbuild.toml, written by `oxbuild init`\n#\n# Not carried over:\n# - pyproject.toml has dependencies but no lock, and `oxbuild lock` failed: no versions satisfy\n#     - django 6.0 (Requires-Python >=3.12)\n#   fix that and run `oxbuild lock`\n# - ENV LC_ALL in Dockerfile: set it in [image] env\n\n[image]\nworkdir = \"/app\"\n";
        std::fs::write(dir.path().join("oxbuild.toml"), toml).unwrap();
        clear_failed_lock_note(dir.path());
        let after = std::fs::read_to_string(dir.path().join("oxbuild.toml")).unwrap();
        assert_eq!(
            after,
            "# oxbuild.toml, written by `oxbuild init`\n#\n# Not carried over:\n# - ENV LC_ALL in Dockerfile: set it in [image] env\n\n[image]\nworkdir = \"/app\"\n"
        );
        // Without such a note the file is left as it is.
        clear_failed_lock_note(dir.path());
        assert_eq!(std::fs::read_to_string(dir.path().join("oxbuild.toml")).unwrap(), after);
    }

    #[test]
    fn the_lock_goes_where_init_said_none_was_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("oxbuild.toml");
        let toml = "[app]\ninclude = [\"app\"]\n\n# [python]\n# no lock found: `oxbuild lock`, then name it here\n\n[healthcheck]\nhttp = \"http://127.0.0.1:8000/\"\n";
        std::fs::write(&path, toml).unwrap();
        let said = point_config_at(dir.path(), "lock", None, "pylock.toml");
        assert!(said.starts_with("set [python] lock = \"pylock.toml\""), "{said}");
        point_config_at(dir.path(), "test-requirements", None, "pylock.test.toml");
        let after = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            after,
            "[app]\ninclude = [\"app\"]\n\n[python]\ntest-requirements = \"pylock.test.toml\"   # written by `oxbuild lock`\nlock = \"pylock.toml\"   # written by `oxbuild lock`\n\n[healthcheck]\nhttp = \"http://127.0.0.1:8000/\"\n"
        );
        oxbuild_config::Config::parse(&path, &after).unwrap();
        // With neither a section nor init's placeholder, one is added at the end.
        std::fs::write(&path, "[image]\nworkdir = \"/app\"\n").unwrap();
        point_config_at(dir.path(), "lock", None, "pylock.toml");
        let after = std::fs::read_to_string(&path).unwrap();
        assert!(after.ends_with("\n\n[python]\nlock = \"pylock.toml\"   # written by `oxbuild lock`\n"), "{after}");
    }

    /// A config that names another lock (a uv.lock the build warned of)
    /// names the new one in its place; one that names it elsewhere (not in
    /// the file) is told what to do.
    #[test]
    fn the_new_lock_takes_the_place_of_the_one_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("oxbuild.toml");
        std::fs::write(&path, "[python]\nlock = \"uv.lock\"   # uv's\ntest-requirements = \"uv.lock\"\n").unwrap();
        let said = point_config_at(dir.path(), "lock", Some("uv.lock"), "pylock.toml");
        assert!(said.starts_with("set [python] lock = \"pylock.toml\" (it named uv.lock) in "), "{said}");
        point_config_at(dir.path(), "test-requirements", Some("uv.lock"), "pylock.test.toml");
        let after = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            after,
            "[python]\nlock = \"pylock.toml\"   # written by `oxbuild lock`, in place of uv.lock\ntest-requirements = \"pylock.test.toml\"   # written by `oxbuild lock`, in place of uv.lock\n"
        );
        oxbuild_config::Config::parse(&path, &after).unwrap();
        let said = point_config_at(dir.path(), "lock", Some("poetry.lock"), "pylock.toml");
        assert!(said.contains("to build from the new lock, name pylock.toml there instead"), "{said}");
    }

    #[test]
    fn an_empty_project_dependencies_list_leaves_the_requirements_file_to_lock() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pyproject.toml"), "[project]\nname = \"x\"\ndependencies = []\n").unwrap();
        std::fs::write(dir.path().join("requirements.txt"), "flask>=3\n").unwrap();
        let cfg =
            oxbuild_config::Config::parse(Path::new("oxbuild.toml"), "[python]\nrequirements = \"requirements.txt\"\n")
                .unwrap();
        let doc = oxbuild_python::input::pyproject(dir.path()).unwrap();
        let read = inputs(dir.path(), doc.as_ref(), &cfg).unwrap();
        assert_eq!(read.from, "requirements.txt");
        assert_eq!(read.requirements, vec!["flask>=3".to_string()]);
        // With requirements listed, they are the input.
        std::fs::write(dir.path().join("pyproject.toml"), "[project]\nname = \"x\"\ndependencies = [\"django\"]\n")
            .unwrap();
        let doc = oxbuild_python::input::pyproject(dir.path()).unwrap();
        let read = inputs(dir.path(), doc.as_ref(), &cfg).unwrap();
        assert_eq!(read.from, "pyproject.toml [project] dependencies");
        assert_eq!(read.requirements, vec!["django".to_string()]);
    }

    #[test]
    fn the_projects_extras_join_whatever_input_is_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("pyproject.toml"),
            "[project]\nname = \"x\"\ndependencies = [\"flask\"]\n[project.optional-dependencies]\nmainapp = [\"gunicorn==23.0.0\"]\n",
        )
        .unwrap();
        let cfg = |text: &str| oxbuild_config::Config::parse(Path::new("oxbuild.toml"), text).unwrap();
        let doc = oxbuild_python::input::pyproject(dir.path()).unwrap();
        let read = inputs(dir.path(), doc.as_ref(), &cfg("[python]\nextras = [\"mainapp\"]\n")).unwrap();
        assert_eq!(read.requirements, ["flask", "gunicorn==23.0.0"]);
        assert_eq!(read.from, "pyproject.toml [project] dependencies and pyproject.toml's extras mainapp");
        assert!(read.pins.contains_key("gunicorn"));
        // A requirements.in gets them too; an extra the project lacks is named.
        std::fs::write(dir.path().join("requirements.in"), "flask\n").unwrap();
        let read = inputs(dir.path(), doc.as_ref(), &cfg("[python]\nextras = [\"mainapp\"]\n")).unwrap();
        assert_eq!(read.requirements, ["flask", "gunicorn==23.0.0"]);
        let e = inputs(dir.path(), doc.as_ref(), &cfg("[python]\nextras = [\"web\"]\n")).err().unwrap();
        assert!(e.to_string().contains("`web`"), "{e}");
    }

    #[test]
    fn a_pyproject_that_does_not_parse_is_named_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pyproject.toml"), "[project]\nname = \"x\"\ndependencies = [\"flask\"\n")
            .unwrap();
        let e = oxbuild_python::input::pyproject(dir.path()).unwrap_err();
        assert!(e.contains("pyproject.toml:3: not valid TOML"), "{e}");
        assert!(oxbuild_python::input::pyproject(&dir.path().join("none")).unwrap().is_none());
    }
}
