//! Source distributions built into wheels in the same run.
//!
//! A package of the lock that is published only as a sdist is downloaded
//! and checked against the lock's hash, unpacked (nothing may land outside
//! its directory), and built by its PEP 517 backend (setuptools, its legacy
//! `setup.py` backend, hatchling, flit-core, poetry-core, pdm-backend, ...):
//! - the backend's requirements (`[build-system] requires`) are installed
//!   by oxbuild from wheels (pure-Python ones, or, when the base's own
//!   interpreter builds, wheels for its platform), the newest versions that satisfy
//!   them (or exactly the versions `[python] build-constraints` pins), into
//!   a directory of their own;
//! - the interpreter is a CPython of the target's `major.minor` on this
//!   runner (`python3.X` on `PATH`), started with `-S -s` so that nothing of
//!   the runner's own site-packages is seen, a cleared environment (no
//!   credentials; `PATH` an empty directory, so no compiler), `SOURCE_DATE_EPOCH`, and, where
//!   the kernel has Landlock, no writes outside the build's directory and no
//!   network;
//! - only a pure-Python wheel (`py3-none-any`) is accepted from it.
//!
//! A sdist that needs a C compiler, or fails to build, is an error naming it
//! and saying what to do.

use std::io::Read as _;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr as _;

use oxbuild_image::{BlobStore, Digest};

use crate::requirements::Pin;
use crate::source::{Candidate, Location, Sources};
use crate::{Error, Target, Wheel, wheel};

/// A CPython of the target's `major.minor` that builds sdists: the base's
/// own, run through its own loader (see the engine's interpreter kits), or
/// a `python3.X` on this runner.
#[derive(Clone)]
pub struct Builder {
    /// The program started: the interpreter, or the base's dynamic loader.
    pub program: PathBuf,
    /// Arguments before the interpreter's own (the loader's, then the interpreter).
    pub args: Vec<std::ffi::OsString>,
    /// Environment it needs (`PYTHONHOME` of a base's interpreter).
    pub env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
    /// Its full `sys.version`: part of what a built wheel is keyed by.
    pub version: String,
    /// Where it is from, for reports.
    pub origin: String,
    /// `SOURCE_DATE_EPOCH` of a build of the project itself. Sdists are built
    /// with [`SDIST_EPOCH`], so that a wheel built once serves every commit.
    pub epoch: u64,
    /// Exact versions of build requirements (`[python] build-constraints`),
    /// by normalised name; the newest that fits otherwise.
    pub constraints: std::collections::BTreeMap<String, String>,
    /// Where built wheels are kept between builds.
    pub cache: Option<std::sync::Arc<dyn BuiltCache>>,
    /// The wheel tags this interpreter runs, when known (the base's own
    /// interpreter, whose platform oxbuild read): a build requirement may
    /// then be a wheel for it (MarkupSafe's, under jinja2), not only a
    /// pure-Python one. The built wheel itself must still be pure Python.
    pub tags: Option<std::collections::HashSet<crate::tags::Tag>>,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("program", &self.program)
            .field("version", &self.version)
            .field("origin", &self.origin)
            .field("constraints", &self.constraints)
            .finish_non_exhaustive()
    }
}

/// `SOURCE_DATE_EPOCH` of sdist builds: 1980-01-01, the earliest time a zip
/// file holds. A wheel's bytes then depend only on the sdist, its build
/// requirements and the interpreter, which is what it is cached by.
pub const SDIST_EPOCH: u64 = 315_532_800;

/// Where wheels built from sdists are kept, by a key of everything that went
/// into them (see [`build`]): the engine keeps them in the local cache and
/// the cache repository, so that only the first runner of a fleet builds.
pub trait BuiltCache: Send + Sync {
    /// The wheel kept under `key` (its digest is then in the store), if
    /// there is one.
    fn get<'a>(&'a self, key: &'a str) -> futures_util::future::BoxFuture<'a, Option<Kept>>;
    /// Keeps `kept` (its wheel in the store) under `key`.
    fn put<'a>(&'a self, key: &'a str, kept: &'a Kept) -> futures_util::future::BoxFuture<'a, ()>;
}

/// A wheel built from a sdist, as the cache keeps it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Kept {
    /// Its file name.
    pub wheel: String,
    /// Its digest.
    pub digest: Digest,
    /// What the backend asked for besides `[build-system] requires`
    /// (`get_requires_for_build_wheel`), as `name==version`.
    pub asked: Vec<String>,
}

/// Finds the interpreter that builds sdists, only when one is needed: the
/// base's own means reading the base's layers, which a build that has a
/// wheel for everything never does.
pub trait FindBuilder: Send + Sync {
    /// The base's own interpreter for `target`, if it can run on this runner.
    fn find<'a>(&'a self, target: &'a Target) -> futures_util::future::BoxFuture<'a, Result<Option<Builder>, Error>>;
}

impl Builder {
    /// `python3.X` (the target's `major.minor`) on `PATH`, else `python3` if
    /// it is that version; None when the runner has neither.
    pub fn find(target: &Target, epoch: u64) -> Option<Builder> {
        let names = [format!("python{}.{}", target.major, target.minor), format!("python{}", target.major)];
        let path = std::env::var_os("PATH")?;
        for name in names {
            for dir in std::env::split_paths(&path) {
                let candidate = dir.join(&name);
                if !candidate.is_file() {
                    continue;
                }
                // The interpreter itself, not a wrapper (pyenv's shims are
                // shell scripts that need a PATH the build does not have).
                let out = Command::new(&candidate)
                    .args([
                        "-S",
                        "-c",
                        "import sys; print('%d.%d' % sys.version_info[:2]); print(sys.executable); print(sys.version.replace(chr(10), ' '))",
                    ])
                    .env_clear()
                    .env("PATH", &path)
                    .stdin(Stdio::null())
                    .output();
                let Ok(out) = out else { continue };
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                let mut lines = text.lines();
                if lines.next().map(str::trim) == Some(&format!("{}.{}", target.major, target.minor))
                    && let Some(exe) = lines.next().map(PathBuf::from).filter(|p| p.is_absolute() && p.is_file())
                {
                    return Some(Builder {
                        origin: format!("{} on this runner", exe.display()),
                        program: exe,
                        args: Vec::new(),
                        env: Vec::new(),
                        version: lines.next().unwrap_or_default().trim().to_string(),
                        epoch,
                        constraints: Default::default(),
                        cache: None,
                        tags: None,
                    });
                }
            }
        }
        None
    }

    /// A command that starts the interpreter with `args`.
    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args);
        cmd
    }

    /// A shell script that starts the interpreter as this builder does, for
    /// processes the backend starts (`sys.executable`, `python3` on `PATH`):
    /// a base's interpreter must go through its own loader there too.
    fn wrapper(&self) -> String {
        let quote = |s: &std::ffi::OsStr| format!("'{}'", s.to_string_lossy().replace('\'', "'\\''"));
        let mut line = String::from("#!/bin/sh\n");
        for (k, v) in &self.env {
            line.push_str(&format!("export {}={}\n", k.to_string_lossy(), quote(v)));
        }
        line.push_str("exec ");
        line.push_str(&quote(self.program.as_os_str()));
        for a in &self.args {
            line.push(' ');
            line.push_str(&quote(a));
        }
        line.push_str(" \"$@\"\n");
        line
    }
}

/// True for a sdist's file name.
pub fn is_sdist(filename: &str) -> bool {
    filename.ends_with(".tar.gz") || filename.ends_with(".zip")
}

/// What `[build-system]` says (PEP 518/517), with the defaults for a
/// project without one: setuptools' legacy backend.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BuildSystem {
    requires: Vec<String>,
    backend: String,
    backend_path: Vec<String>,
}

fn build_system(root: &Path) -> Result<BuildSystem, String> {
    let legacy = BuildSystem {
        requires: vec!["setuptools>=40.8.0".into()],
        backend: "setuptools.build_meta:__legacy__".into(),
        backend_path: Vec::new(),
    };
    let Ok(text) = std::fs::read_to_string(root.join("pyproject.toml")) else { return Ok(legacy) };
    let doc: toml::Table = text.parse().map_err(|e: toml::de::Error| format!("its pyproject.toml: {}", e.message()))?;
    let Some(bs) = doc.get("build-system").and_then(|b| b.as_table()) else { return Ok(legacy) };
    let strings = |k: &str| -> Vec<String> {
        bs.get(k)
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(String::from))
            .collect()
    };
    let backend = bs.get("build-backend").and_then(|b| b.as_str()).map(String::from);
    Ok(BuildSystem {
        requires: if bs.contains_key("requires") { strings("requires") } else { legacy.requires.clone() },
        backend: backend.unwrap_or_else(|| "setuptools.build_meta:__legacy__".into()),
        backend_path: strings("backend-path"),
    })
}

/// A relative path inside an archive, or None when it is absolute or climbs out.
fn inside(name: &str) -> Option<PathBuf> {
    let p = Path::new(name);
    p.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir)).then(|| p.to_path_buf())
}

/// Unpacks the sdist at `path` into `into`: regular files and directories
/// only (links and devices are skipped), every name checked to stay inside.
pub(crate) fn unpack(path: &Path, filename: &str, into: &Path) -> Result<(), String> {
    std::fs::create_dir_all(into).map_err(|e| e.to_string())?;
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    if filename.ends_with(".zip") {
        let mut zip = zip::ZipArchive::new(file).map_err(|e| format!("not a valid zip file ({e})"))?;
        for i in 0..zip.len() {
            let mut entry = zip.by_index(i).map_err(|e| e.to_string())?;
            let Some(rel) = entry.enclosed_name() else {
                return Err(format!("entry `{}` leads outside the sdist", entry.name().unwrap_or_default()));
            };
            let dest = into.join(rel);
            if entry.is_dir() {
                std::fs::create_dir_all(&dest).map_err(|e| e.to_string())?;
                continue;
            }
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
            }
            let mut out = std::fs::File::create(&dest).map_err(|e| e.to_string())?;
            std::io::copy(&mut entry, &mut out).map_err(|e| e.to_string())?;
        }
        return Ok(());
    }
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    archive.set_preserve_permissions(false);
    for entry in archive.entries().map_err(|e| format!("not a valid .tar.gz ({e})"))? {
        let mut entry = entry.map_err(|e| format!("not a valid .tar.gz ({e})"))?;
        let name = entry.path().map_err(|e| e.to_string())?.to_string_lossy().into_owned();
        let rel = inside(&name).ok_or_else(|| format!("entry `{name}` leads outside the sdist"))?;
        let kind = entry.header().entry_type();
        let dest = into.join(&rel);
        if kind.is_dir() {
            std::fs::create_dir_all(&dest).map_err(|e| e.to_string())?;
        } else if kind.is_file() {
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
            }
            let mut out = std::fs::File::create(&dest).map_err(|e| e.to_string())?;
            std::io::copy(&mut entry, &mut out).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// The project directory of an unpacked sdist: the one top-level directory
/// (`name-version/`), or the archive's root.
fn project_root(unpacked: &Path) -> PathBuf {
    let entries: Vec<PathBuf> =
        std::fs::read_dir(unpacked).into_iter().flatten().filter_map(|e| e.ok().map(|e| e.path())).collect();
    match entries.as_slice() {
        [one] if one.is_dir() => one.clone(),
        _ => unpacked.to_path_buf(),
    }
}

/// True for a wheel that runs anywhere: every tag `py*-none-any`.
fn pure(name: &wheel::WheelName) -> bool {
    !name.tags.is_empty()
        && name.tags.iter().all(|(py, abi, plat)| py.starts_with("py") && abi == "none" && plat == "any")
}

/// A build requirement chosen for a build, in the store.
#[derive(Debug, Clone)]
struct Resolved {
    /// `name==version`.
    pin: String,
    filename: String,
    digest: Digest,
    path: PathBuf,
    /// Whether its source said when it was uploaded.
    dated: bool,
    /// Nothing satisfying it had been uploaded before the sdist: the lowest that does.
    late: bool,
}

/// Chooses the build requirements as pure-Python wheels: for each
/// requirement, the newest version that satisfies it (or the version
/// `constraints` pins) among the files uploaded before `before` (files with
/// no upload time, such as find-links', are always eligible), and then what
/// that wheel requires, markers evaluated for the target. This is the one
/// resolution a build does.
async fn resolve_requirements(requires: &[String], resolver: &Resolver<'_>) -> Result<Vec<Resolved>, String> {
    let Resolver { constraints, before, sources, target, store, runs } = *resolver;
    let env = target.marker_environment().map_err(|e| e.to_string())?;
    let mut queue: Vec<String> = requires.to_vec();
    let mut chosen: std::collections::BTreeMap<String, pep440_rs::Version> = std::collections::BTreeMap::new();
    let mut resolved = Vec::new();
    while let Some(spec) = queue.pop() {
        let req = crate::name::parse_requirement(&spec).map_err(|e| format!("build requirement `{spec}`: {e}"))?;
        if !req.evaluate_markers(env.pep508(), &[]) {
            continue;
        }
        let key = crate::name::normalize(req.name.as_ref());
        let specifiers = match &req.version_or_url {
            Some(pep508_rs::VersionOrUrl::VersionSpecifier(s)) => Some(s.clone()),
            Some(pep508_rs::VersionOrUrl::Url(_)) => {
                return Err(format!("build requirement `{}` is a URL, which oxbuild does not fetch", req.name));
            }
            None => None,
        };
        if let Some(have) = chosen.get(&key) {
            if specifiers.as_ref().is_some_and(|s| !s.contains(have)) {
                return Err(format!("build requirement `{spec}` conflicts with {key} {have}, chosen for another"));
            }
            continue;
        }
        let mut candidates = sources.local_candidates(&key).map_err(|e| e.to_string())?;
        candidates.extend(sources.index_candidates(&key).await.map_err(|e| e.to_string())?);
        let pinned = constraints.get(&key);
        let best = newest_fitting(&candidates, specifiers.as_ref(), pinned, before, runs);
        let Some((version, candidate, late)) = best else {
            let pinned = pinned.map(|v| format!(" at {v} (build-constraints)")).unwrap_or_default();
            let when = before
                .filter(|_| constraints.get(&key).is_none())
                .map(|t| format!(", uploaded before the sdist ({})", humantime::format_rfc3339_seconds(t)))
                .unwrap_or_default();
            let kind = if runs.is_some() { "wheel for the building interpreter" } else { "pure-Python wheel" };
            return Err(format!(
                "no {kind} satisfies the build requirement `{spec}`{pinned}{when} in {}",
                sources.describe()
            ));
        };
        let crate::source::Stored { digest, path, .. } =
            sources.stored(candidate, store, |_| Ok(())).await.map_err(|e| e.to_string())?;
        let requires = wheel::requires(&path, &candidate.filename).map_err(|e| e.to_string())?;
        for r in requires.dist {
            // Extras of build requirements are not followed: backends need none.
            if crate::name::parse_requirement(&r).is_ok_and(|p| p.evaluate_markers(env.pep508(), &[])) {
                queue.push(r);
            }
        }
        resolved.push(Resolved {
            pin: format!("{key}=={version}"),
            filename: candidate.filename.clone(),
            digest,
            path,
            dated: candidate.upload_time.is_some(),
            late,
        });
        chosen.insert(key, version);
    }
    resolved.sort_by(|a, b| a.pin.cmp(&b.pin));
    Ok(resolved)
}

/// The newest pure-Python wheel among `candidates` that satisfies
/// `specifiers`, is the `pinned` version when one is pinned (then also a
/// pre-release, and whenever it was uploaded), and was uploaded before
/// `before` otherwise. When nothing that satisfies it had been uploaded by
/// then (an old `setup.py` sdist under PEP 517's default
/// `setuptools>=40.8.0`), the newest that satisfies it, as pip would take:
/// the lowest would be nearer the sdist's day, but too old for the target's
/// Python (setuptools 40.8 does not run on 3.11). The flag says which
/// happened, and the cache key and the SBOM record the choice. Yanked files
/// are never chosen.
fn newest_fitting<'c>(
    candidates: &'c [Candidate],
    specifiers: Option<&pep440_rs::VersionSpecifiers>,
    pinned: Option<&String>,
    before: Option<std::time::SystemTime>,
    runs: Option<&std::collections::HashSet<crate::tags::Tag>>,
) -> Option<(pep440_rs::Version, &'c Candidate, bool)> {
    let fitting: Vec<(pep440_rs::Version, &Candidate)> = candidates
        .iter()
        .filter(|c| c.yanked.is_none())
        .filter_map(|c| {
            let w = wheel::WheelName::parse(&c.filename)?;
            let v = pep440_rs::Version::from_str(&w.version).ok()?;
            let fits = (pure(&w) || runs.is_some_and(|tags| w.tags.iter().any(|t| tags.contains(t))))
                && (pinned.is_some() || !v.any_prerelease())
                && specifiers.is_none_or(|s| s.contains(&v))
                && pinned.is_none_or(|p| crate::version::same(p, &w.version));
            fits.then_some((v, c))
        })
        .collect();
    let in_time = |c: &Candidate| pinned.is_some() || before.is_none_or(|b| c.upload_time.is_none_or(|t| t < b));
    let by_version = |a: &&(pep440_rs::Version, &Candidate), b: &&(pep440_rs::Version, &Candidate)| {
        a.0.cmp(&b.0).then_with(|| b.1.filename.cmp(&a.1.filename))
    };
    if let Some((v, c)) = fitting.iter().filter(|(_, c)| in_time(c)).max_by(by_version) {
        return Some((v.clone(), *c, false));
    }
    fitting.iter().max_by(by_version).map(|(v, c)| (v.clone(), *c, true))
}

/// Installs the chosen build requirements into `site`.
fn install_requirements(resolved: &[Resolved], site: &Path) -> Result<(), String> {
    for r in resolved {
        extract_wheel(&r.path, site).map_err(|e| format!("{}: {e}", r.filename))?;
    }
    Ok(())
}

/// A pure wheel's files into `site`: its root and its `purelib`/`platlib`
/// data, names checked to stay inside.
fn extract_wheel(path: &Path, site: &Path) -> Result<(), String> {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(path).map_err(|e| e.to_string())?)
        .map_err(|e| format!("not a valid zip file ({e})"))?;
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| e.to_string())?;
        let Some(rel) = entry.enclosed_name() else {
            return Err(format!("entry `{}` leads outside", entry.name().unwrap_or_default()));
        };
        let rel_text = rel.to_string_lossy().replace('\\', "/");
        let rel = match rel_text.split_once(".data/") {
            Some((_, rest)) => match rest.split_once('/') {
                Some(("purelib" | "platlib", inner)) => PathBuf::from(inner),
                _ => continue,
            },
            None => rel,
        };
        if entry.is_dir() {
            continue;
        }
        let dest = site.join(rel);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
        std::fs::write(&dest, bytes).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// What runs the backend: `argv` is the mode (`requires`: what
/// `get_requires_for_build_wheel` asks for, as JSON; `build`: the wheel),
/// site, out, the wrapper that starts this interpreter again, backend, then
/// backend-path entries.
const HOOK: &str = r#"
import importlib, json, os, sys
mode, site, out, wrapper, backend = sys.argv[1:6]
sys.executable = wrapper
sys.path[:0] = [site] + [os.path.abspath(p) for p in sys.argv[6:]]
module, _, attrs = backend.partition(":")
hooks = importlib.import_module(module)
for attr in filter(None, attrs.split(".")):
    hooks = getattr(hooks, attr)
if mode == "requires":
    asked = getattr(hooks, "get_requires_for_build_wheel", None)
    sys.stdout.write("\nOXBUILD-REQUIRES " + json.dumps(list(asked(None) if asked else [])) + "\n")
else:
    name = hooks.build_wheel(out)
    sys.stdout.write("\nOXBUILD-WHEEL " + name + "\n")
"#;

/// The key a wheel built from a sdist is kept by: everything that goes into
/// its bytes. The sdist, the interpreter's exact build, the backend and each
/// build requirement's file, and the fixed epoch.
fn built_key(sdist: &Digest, builder: &Builder, system: &BuildSystem, requirements: &[Resolved]) -> String {
    let mut text = format!(
        "oxbuild-built-wheel-v1\nsdist={sdist}\npython={}\nbackend={} {:?}\nepoch={SDIST_EPOCH}\n",
        builder.version, system.backend, system.backend_path
    );
    for r in requirements {
        text.push_str(&format!("requires={} {}\n", r.filename, r.digest));
    }
    Digest::of(text.as_bytes()).hex().to_string()
}

/// Builds the sdist `candidate` of `pin` into a pure-Python wheel in the
/// store (or takes the one built before from the same inputs), and returns
/// it as the layer installs it.
pub async fn build(
    pin: &Pin,
    candidate: &Candidate,
    builder: &Builder,
    sources: &Sources,
    target: &Target,
    store: &BlobStore,
) -> Result<Wheel, Error> {
    let what = format!("{}=={} ({})", pin.name, pin.version, pin.origin);
    let fail = |why: String| Error::Package(format!("{what}: building {}: {why}", candidate.filename));
    // The sdist, checked against the lock before anything of it runs.
    let accept = |digest: &oxbuild_image::Digest| match pin.hashes.is_empty()
        || pin.hashes.contains(&digest.hex().to_string())
    {
        true => Ok(()),
        false => Err(crate::hash_mismatch(&what, pin, &candidate.filename, digest)),
    };
    let crate::source::Stored { digest, path: sdist, .. } = sources.stored(candidate, store, accept).await?;

    let dir = tempfile::Builder::new()
        .prefix("oxbuild-sdist-")
        .tempdir()
        .map_err(|e| fail(format!("a temporary directory: {e}")))?;
    let src = dir.path().join("src");
    unpack(&sdist, &candidate.filename, &src).map_err(&fail)?;
    let root = project_root(&src);
    // Build requirements as they were when the sdist was uploaded, unless pinned.
    let before = candidate.upload_time;
    let done =
        build_keyed(pin, &root, dir.path(), &digest, before, builder, sources, target, store).await.map_err(&fail)?;
    let url = match &candidate.location {
        Location::Url(u, _) | Location::Direct(u) => Some(crate::without_credentials(u)),
        Location::File(_) => None,
    };
    let source = format!("{} ({digest}) with {}", candidate.filename, done.describe(before, builder));
    let downloaded = matches!(candidate.location, Location::Url(..) | Location::Direct(_));
    Ok(done.into_wheel(pin, &source, url, downloaded, candidate.yanked.clone()))
}

/// A build of a source tree whose inputs are known: the wheel, what it was
/// built with, and the key it is cached by.
struct Done {
    built: Built,
    requirements: Vec<Resolved>,
    /// What the backend asked for besides them, `name==version`.
    asked: Vec<String>,
    key: String,
}

impl Done {
    /// The wheel of `pin` as the layer installs it; `from` says what it was
    /// built from and with (the SBOM's source).
    fn into_wheel(self, pin: &Pin, from: &str, url: Option<String>, downloaded: bool, yanked: Option<String>) -> Wheel {
        Wheel {
            pin: format!("{}=={}", pin.name, pin.version),
            name: pin.name.clone(),
            version: pin.version.clone(),
            dependencies: pin.dependencies.clone(),
            source: Some(format!("built by oxbuild from {from}")),
            url,
            filename: self.built.filename,
            digest: self.built.digest,
            path: self.built.path,
            downloaded,
            yanked,
            built: Some(self.built.cached),
        }
    }

    /// What it was built with, for the SBOM's source.
    fn describe(&self, before: Option<std::time::SystemTime>, builder: &Builder) -> String {
        let with: Vec<&str> = self.requirements.iter().map(|r| r.pin.as_str()).collect();
        let undated: Vec<&str> = self.requirements.iter().filter(|r| !r.dated).map(|r| r.pin.as_str()).collect();
        let when = match before {
            _ if !builder.constraints.is_empty() => ", pinned by build-constraints where named".to_string(),
            Some(t) => format!(
                ", the newest uploaded before the sdist ({}){}",
                humantime::format_rfc3339_seconds(t),
                if undated.is_empty() {
                    String::new()
                } else {
                    format!(" or without an upload time (find-links): {}", undated.join(", "))
                }
            ),
            None => ", the newest (no upload time to go by)".to_string(),
        };
        let late: Vec<&str> = self.requirements.iter().filter(|r| r.late).map(|r| r.pin.as_str()).collect();
        let when = if late.is_empty() || before.is_none() {
            when
        } else {
            format!("{when}; none uploaded by then satisfied {}, so the newest that does", late.join(", "))
        };
        let asked = if self.asked.is_empty() {
            String::new()
        } else {
            format!("; then, as the backend asked, {}", self.asked.join(", "))
        };
        format!("build requirements {}{when}{asked}; wheel cache key {}", crate::name::listed(&with), self.key)
    }
}

/// Builds the project at `root` (working in `work`), whose content is
/// `identity` (a sdist's digest, a commit), with build requirements
/// uploaded before `before`, or takes the wheel built before from the same
/// inputs; the wheel must be `pin`'s package.
#[allow(clippy::too_many_arguments)]
async fn build_keyed(
    pin: &Pin,
    root: &Path,
    work: &Path,
    identity: &Digest,
    before: Option<std::time::SystemTime>,
    builder: &Builder,
    sources: &Sources,
    target: &Target,
    store: &BlobStore,
) -> Result<Done, String> {
    let system = build_system(root)?;
    let resolver = Resolver::new(builder, before, sources, target, store);
    let requirements = resolve_requirements(&system.requires, &resolver).await?;
    let key = built_key(identity, builder, &system, &requirements);
    let ours = |filename: &str| {
        wheel::WheelName::parse(filename).is_some_and(|w| crate::name::normalize(&w.name) == pin.key())
    };
    let cached = match &builder.cache {
        Some(cache) => cache.get(&key).await.filter(|k| store.contains(&k.digest) && ours(&k.wheel)),
        None => None,
    };
    let (built, asked) = match cached {
        Some(k) => (Built { path: store.path(&k.digest), filename: k.wheel, digest: k.digest, cached: true }, k.asked),
        None => {
            let (built, asked) =
                build_tree(root, work, builder, &system, &requirements, SDIST_EPOCH, &resolver).await?;
            let asked: Vec<String> = asked.into_iter().map(|r| r.pin).collect();
            let name = wheel::WheelName::parse(&built.filename);
            if !ours(&built.filename) || name.as_ref().is_some_and(|w| !crate::version::same(&w.version, &pin.version))
            {
                return Err(format!(
                    "it built {}, but the lock says {}=={}; lock it again",
                    built.filename, pin.name, pin.version
                ));
            }
            if let Some(cache) = &builder.cache {
                let kept = Kept { wheel: built.filename.clone(), digest: built.digest.clone(), asked: asked.clone() };
                cache.put(&key, &kept).await;
            }
            (built, asked)
        }
    };
    Ok(Done { built, requirements, asked, key })
}

/// Builds the package `pin` from its source tree (a directory, or a git
/// repository at a commit, cloned here) with its own backend, as a sdist is
/// built. A commit's build is cached like a sdist's; a directory's is not,
/// since its content is not pinned.
pub async fn build_source_tree(
    pin: &Pin,
    tree: &crate::requirements::Tree,
    builder: &Builder,
    sources: &Sources,
    target: &Target,
    store: &BlobStore,
) -> Result<Wheel, Error> {
    use crate::requirements::Tree;
    let what = format!("{}=={} ({})", pin.name, pin.version, pin.origin);
    let fail = |why: String| Error::Package(format!("{what}: building it from {tree}: {why}"));
    let dir = tempfile::Builder::new()
        .prefix("oxbuild-tree-")
        .tempdir()
        .map_err(|e| fail(format!("a temporary directory: {e}")))?;
    let src = dir.path().join("src");
    let (root, identity, url) = match tree {
        Tree::Directory(d) => {
            if !d.is_dir() {
                return Err(fail("it is not a directory; fix the path in the lock".into()));
            }
            copy_project(d, &src).map_err(|e| fail(e.to_string()))?;
            // Not pinned: keyed by a fresh identity, so never reused.
            let identity = Digest::of(format!("{}-{}", d.display(), dir.path().display()).as_bytes());
            (src.clone(), identity, None)
        }
        Tree::Git { url, commit, subdirectory } => {
            git_checkout(url, commit, &src).await.map_err(&fail)?;
            let root = match subdirectory {
                Some(sub) => {
                    let rel = inside(sub).ok_or_else(|| fail(format!("subdirectory `{sub}` leads outside")))?;
                    src.join(rel)
                }
                None => src.clone(),
            };
            let clean = url::Url::parse(url)
                .map(|u| crate::without_credentials(&u))
                .unwrap_or_else(|_| oxbuild_http::redact(url));
            let identity = Digest::of(format!("git {clean} {commit} {subdirectory:?}").as_bytes());
            (root, identity, Some(clean))
        }
    };
    let cacheable = matches!(tree, Tree::Git { .. });
    let mut uncached = builder.clone();
    if !cacheable {
        uncached.cache = None;
    }
    let done =
        build_keyed(pin, &root, dir.path(), &identity, None, &uncached, sources, target, store).await.map_err(&fail)?;
    let source = format!("{tree} with {}", done.describe(None, builder));
    Ok(done.into_wheel(pin, &source, url, cacheable, None))
}

/// Clones `url` at `commit` into `into` with the runner's `git`: only that
/// commit is fetched where the server allows it, else the whole history.
/// Credentials in the URL are used and never shown; git never prompts.
async fn git_checkout(url: &str, commit: &str, into: &Path) -> Result<(), String> {
    let (url, commit, into) = (url.to_string(), commit.to_string(), into.to_path_buf());
    tokio::task::spawn_blocking(move || {
        let git = |args: &[&str]| -> Result<(), String> {
            let out = Command::new("git")
                .arg("-C")
                .arg(&into)
                .args(args)
                .env("GIT_TERMINAL_PROMPT", "0")
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("git could not be started ({e}); install git on the runner"))?;
            if out.status.success() {
                return Ok(());
            }
            let stderr = String::from_utf8_lossy(&out.stderr);
            let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("it failed");
            Err(oxbuild_http::redact(last.trim()).replace(&url, &oxbuild_http::redact(&url)))
        };
        std::fs::create_dir_all(&into).map_err(|e| e.to_string())?;
        git(&["init", "-q"])?;
        if git(&["fetch", "-q", "--depth", "1", &url, &commit]).is_err() {
            git(&["fetch", "-q", &url])
                .map_err(|e| format!("fetching it: {e}; check the URL and that this runner can reach it"))?;
        }
        git(&["-c", "advice.detachedHead=false", "checkout", "-q", &commit])
            .map_err(|e| format!("commit {commit} is not in the repository: {e}"))
    })
    .await
    .map_err(|e| e.to_string())?
}

/// A wheel a backend built, in the store.
#[derive(Debug, Clone)]
pub struct Built {
    /// Its file name.
    pub filename: String,
    /// Its digest.
    pub digest: Digest,
    /// Where it is in the store.
    pub path: PathBuf,
    /// True when it was built before and taken from the cache.
    pub cached: bool,
}

/// How build requirements are chosen: the pins, the cutoff, where from.
struct Resolver<'a> {
    constraints: &'a std::collections::BTreeMap<String, String>,
    before: Option<std::time::SystemTime>,
    sources: &'a Sources,
    target: &'a Target,
    store: &'a BlobStore,
    /// The tags the building interpreter runs ([`Builder::tags`]).
    runs: Option<&'a std::collections::HashSet<crate::tags::Tag>>,
}

impl<'a> Resolver<'a> {
    fn new(
        builder: &'a Builder,
        before: Option<std::time::SystemTime>,
        sources: &'a Sources,
        target: &'a Target,
        store: &'a BlobStore,
    ) -> Resolver<'a> {
        Resolver { constraints: &builder.constraints, before, sources, target, store, runs: builder.tags.as_ref() }
    }
}

/// Runs the backend hook in `mode` (see [`HOOK`]) for the project at `root`,
/// confined to `work`, and returns what it printed.
async fn run_hook(
    mode: &str,
    root: &Path,
    work: &Path,
    builder: &Builder,
    system: &BuildSystem,
    epoch: u64,
) -> Result<std::process::Output, String> {
    let (site, out, bin) = (work.join("site"), work.join("out"), work.join("bin"));
    let mut cmd = builder.command();
    cmd.args(["-S", "-s", "-B", "-c", HOOK])
        .arg(mode)
        .arg(&site)
        .arg(&out)
        .arg(bin.join("python3"))
        .arg(&system.backend)
        .args(&system.backend_path)
        .env_clear()
        .envs(builder.env.iter().map(|(k, v)| (k, v)))
        .env("SOURCE_DATE_EPOCH", epoch.max(SDIST_EPOCH).to_string())
        .env("HOME", work)
        .env("PATH", &bin)
        .env("TMPDIR", work)
        .env("PYTHONHASHSEED", "0")
        .current_dir(root)
        .stdin(Stdio::null());
    crate::bytecode::confine(&mut cmd, work);
    let origin = builder.origin.clone();
    tokio::task::spawn_blocking(move || cmd.output())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("{origin} could not be started: {e}"))
}

/// Why a hook failed: its last lines, and what to do.
fn hook_failed(output: &std::process::Output, builder: &Builder, names: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    // The last few lines, from the start of a traceback's frame (`File
    // ...`) where there is one near, not from a line of carets.
    let mut start = lines.len().saturating_sub(6);
    let frame = (start.saturating_sub(6)..=start)
        .rev()
        .find(|i| lines.get(*i).is_some_and(|l| l.trim_start().starts_with("File ")));
    if let Some(i) = frame {
        start = i;
    }
    let tail = lines[start.min(lines.len())..].join("\n    ");
    let compiler = ["gcc", "cc1", "compiler", "Python.h", "build_ext", "Cython"].iter().any(|w| stderr.contains(w));
    // setuptools reading `[tool.setuptools.dynamic]` or setup.cfg's `attr:`.
    // (In a frame of the traceback: its deprecation warnings name it too.)
    let configuration =
        lines.iter().any(|l| l.trim_start().starts_with("File ") && l.contains("setuptools/config/")) && !compiler;
    let hint = if configuration {
        "the backend failed reading the package's own configuration (pyproject.toml's [tool.setuptools.dynamic] or setup.cfg: an `attr` or `file` that names a module or file the source does not have where it looks): for the project, fix that; for a dependency, require a version whose configuration reads"
    } else if compiler {
        "it compiles C, and oxbuild builds pure-Python packages only: require a version with a wheel for this Python (`oxbuild lock` picks one where there is one; an old lock may pin a version from before them), or put a wheel for the target in find-links (with [python] trust-local-wheels)"
    } else {
        "pin build requirements that work on this Python in [python] build-constraints (a backend of the package's own day may not: setuptools==68.2.2, say), or put a wheel for it in find-links (with [python] trust-local-wheels)"
    };
    format!(
        "the build by {} failed with {} (build requirements: {}):\n    {tail}\n{hint}",
        builder.origin,
        output.status,
        names.join(", ")
    )
}

/// Builds the project at `root` into a pure-Python wheel with its own
/// backend, working in `work` (which it may write in), and stores the wheel.
/// The backend gets `requirements`, then what it asks for besides them
/// (PEP 517's `get_requires_for_build_wheel`: old setuptools asks for
/// `wheel`), chosen by `resolver`; those are returned with the wheel.
async fn build_tree(
    root: &Path,
    work: &Path,
    builder: &Builder,
    system: &BuildSystem,
    requirements: &[Resolved],
    epoch: u64,
    resolver: &Resolver<'_>,
) -> Result<(Built, Vec<Resolved>), String> {
    let (site, out, bin) = (work.join("site"), work.join("out"), work.join("bin"));
    for d in [&site, &out, &bin] {
        std::fs::create_dir_all(d).map_err(|e| e.to_string())?;
    }
    install_requirements(requirements, &site)?;
    // PATH holds only this interpreter (through the wrapper that starts it as
    // the build does): no compiler, nor anything else, is found.
    let wrapper = bin.join("python3");
    std::fs::write(&wrapper, builder.wrapper()).map_err(|e| e.to_string())?;
    std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .map_err(|e| e.to_string())?;
    let _ = std::os::unix::fs::symlink("python3", bin.join("python"));
    let mut names: Vec<&str> = requirements.iter().map(|r| r.pin.as_str()).collect();

    let output = run_hook("requires", root, work, builder, system, epoch).await?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let asked = stdout.lines().rev().find_map(|l| l.strip_prefix("OXBUILD-REQUIRES ")).map(str::trim).map(String::from);
    let Some(asked) = asked.filter(|_| output.status.success()) else {
        return Err(hook_failed(&output, builder, &names));
    };
    let asked: Vec<String> =
        serde_json::from_str(&asked).map_err(|e| format!("the backend's get_requires_for_build_wheel: {e}"))?;
    // Only what is not installed already.
    let have: Vec<String> = requirements.iter().map(|r| r.pin.split("==").next().unwrap_or("").to_string()).collect();
    let asked: Vec<String> = asked
        .into_iter()
        .filter(|a| {
            crate::name::parse_requirement(a)
                .map(|r| !have.contains(&crate::name::normalize(r.name.as_ref())))
                .unwrap_or(true)
        })
        .collect();
    let extra = if asked.is_empty() { Vec::new() } else { resolve_requirements(&asked, resolver).await? };
    install_requirements(&extra, &site)?;
    names.extend(extra.iter().map(|r| r.pin.as_str()));

    let output = run_hook("build", root, work, builder, system, epoch).await?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let built = stdout.lines().rev().find_map(|l| l.strip_prefix("OXBUILD-WHEEL ")).map(str::trim).map(String::from);
    let Some(built) = built.filter(|_| output.status.success()) else {
        return Err(hook_failed(&output, builder, &names));
    };
    let name = wheel::WheelName::parse(&built).ok_or_else(|| format!("the backend made `{built}`, not a wheel"))?;
    // A package whose C speedups are optional (SQLAlchemy, MarkupSafe) builds
    // without them here, but its backend still tags the wheel for this
    // platform: one without native code in it runs anywhere.
    if !pure(&name) && native_code(&out.join(&built))? {
        return Err(format!(
            "it built {built}, which is not pure Python (it compiles C): oxbuild accepts only py3-none-any wheels from a build; put a wheel for the target in find-links (with [python] trust-local-wheels)"
        ));
    }
    let mut writer = resolver.store.writer().map_err(|e| e.to_string())?;
    let mut file = std::fs::File::open(out.join(&built)).map_err(|e| e.to_string())?;
    std::io::copy(&mut file, &mut writer).map_err(|e| e.to_string())?;
    let (digest, path) = writer.commit_computed().map_err(|e| e.to_string())?;
    Ok((Built { filename: built, digest, path, cached: false }, extra))
}

/// Whether the wheel at `path` holds native code (a shared library or an
/// extension module).
fn native_code(path: &Path) -> Result<bool, String> {
    let zip = zip::ZipArchive::new(std::fs::File::open(path).map_err(|e| e.to_string())?)
        .map_err(|e| format!("the built wheel is not a valid zip file ({e})"))?;
    let native = [".so", ".pyd", ".dylib", ".dll"];
    // A name that is not UTF-8 counts as native: nothing vouches for it.
    Ok(zip
        .file_names()
        .any(|n| n.map_or(true, |n| native.iter().any(|ext| n.ends_with(ext) || n.contains(&format!("{ext}."))))))
}

/// Whether the project in `dir` is itself a package to install, as `poetry
/// install` and `uv sync` would: a pyproject.toml with a `[build-system]`
/// and a `[project]` (or `[tool.poetry]`), or with a setup.py beside it
/// that gives the name (as `pip install .` builds it), unless the project
/// says it is not one (Poetry's `package-mode = false`, PDM's
/// `distribution = false`, uv's `package = false`).
pub fn is_package(dir: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(dir.join("pyproject.toml")) else { return false };
    let Ok(doc) = text.parse::<toml::Table>() else { return false };
    let tool =
        |t: &str, k: &str| doc.get("tool").and_then(|x| x.get(t)).and_then(|x| x.get(k)).and_then(|v| v.as_bool());
    let named = doc.get("project").is_some()
        || doc.get("tool").and_then(|t| t.get("poetry")).is_some()
        || dir.join("setup.py").is_file();
    doc.get("build-system").is_some()
        && named
        && tool("poetry", "package-mode") != Some(false)
        && tool("pdm", "distribution") != Some(false)
        && tool("uv", "package") != Some(false)
}

/// What a project copy leaves out: version-control directories, virtual
/// environments, caches and earlier build output.
const NOT_PROJECT: [&str; 10] =
    [".git", ".hg", ".svn", ".venv", "venv", "__pycache__", "node_modules", "build", "dist", ".tox"];

/// Copies the project at `dir` into `into` for a build: its files, without
/// what [`NOT_PROJECT`] names.
fn copy_project(dir: &Path, into: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(into)?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if NOT_PROJECT.iter().any(|s| name == *s) {
            continue;
        }
        let ft = entry.file_type()?;
        if ft.is_dir() {
            copy_project(&entry.path(), &into.join(&name))?;
        } else if ft.is_file() {
            std::fs::copy(entry.path(), into.join(&name))?;
        }
    }
    Ok(())
}

/// A digest of what [`copy_project`] would copy of `dir`: every file's
/// relative path and content, in order. A directory package's layer is
/// keyed by it, so that changing the package rebuilds the layer.
pub fn tree_digest(dir: &Path) -> std::io::Result<Digest> {
    fn walk(dir: &Path, rel: &str, out: &mut Vec<u8>) -> std::io::Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name();
            if NOT_PROJECT.iter().any(|s| name == *s) {
                continue;
            }
            let path = format!("{rel}/{}", name.to_string_lossy());
            let ft = entry.file_type()?;
            if ft.is_dir() {
                walk(&entry.path(), &path, out)?;
            } else if ft.is_file() {
                let content = Digest::of(&std::fs::read(entry.path())?);
                out.extend_from_slice(format!("{path} {content}\n").as_bytes());
            }
        }
        Ok(())
    }
    let mut listing = Vec::new();
    walk(dir, "", &mut listing)?;
    Ok(Digest::of(&listing))
}

/// Builds the project in `dir` itself into a wheel, with its own backend,
/// as a sdist is built (a copy is built, so the checkout is not written),
/// with the project's `SOURCE_DATE_EPOCH`. Returns it and the build
/// requirements installed for it.
pub async fn build_project(
    dir: &Path,
    builder: &Builder,
    sources: &Sources,
    target: &Target,
    store: &BlobStore,
) -> Result<(Built, Vec<String>), Error> {
    let fail = |why: String| {
        Error::Package(format!(
            "building the project in {} as a package: {why}\n(or set [python] install-project = false if the app is not meant to be installed)",
            dir.display()
        ))
    };
    let work = tempfile::Builder::new().prefix("oxbuild-project-").tempdir().map_err(|e| fail(e.to_string()))?;
    let root = work.path().join("src");
    copy_project(dir, &root).map_err(|e| fail(e.to_string()))?;
    let system = build_system(&root).map_err(&fail)?;
    let resolver = Resolver::new(builder, None, sources, target, store);
    let requirements = resolve_requirements(&system.requires, &resolver).await.map_err(&fail)?;
    let (built, asked) = build_tree(&root, work.path(), builder, &system, &requirements, builder.epoch, &resolver)
        .await
        .map_err(&fail)?;
    Ok((built, requirements.into_iter().chain(asked).map(|r| r.pin).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_system_defaults_to_setuptools_legacy() {
        let dir = tempfile::tempdir().unwrap();
        let legacy = build_system(dir.path()).unwrap();
        assert_eq!(legacy.backend, "setuptools.build_meta:__legacy__");
        std::fs::write(
            dir.path().join("pyproject.toml"),
            "[build-system]\nrequires = [\"flit_core >=3.2,<4\"]\nbuild-backend = \"flit_core.buildapi\"\n",
        )
        .unwrap();
        let flit = build_system(dir.path()).unwrap();
        assert_eq!(
            (flit.requires, flit.backend.as_str()),
            (vec!["flit_core >=3.2,<4".to_string()], "flit_core.buildapi")
        );
    }

    #[test]
    fn build_requirements_are_the_newest_uploaded_before_the_sdist_unless_pinned() {
        let at = |day: u64| std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000 + day * 86_400);
        let file = |name: &str, uploaded: Option<u64>, yanked: bool| Candidate {
            filename: name.to_string(),
            location: Location::File(PathBuf::from(name)),
            sha256: None,
            yanked: yanked.then(String::new),
            upload_time: uploaded.map(at),
            requires_python: None,
            metadata: false,
        };
        let files = vec![
            file("flit_core-3.8.0-py3-none-any.whl", Some(1), false),
            file("flit_core-3.9.0-py3-none-any.whl", Some(5), false),
            file("flit_core-3.9.1-py3-none-any.whl", Some(6), true),
            file("flit_core-3.10.0-py3-none-any.whl", Some(20), false),
            file("flit_core-3.11.0b1-py3-none-any.whl", Some(8), false),
            file("flit_core-3.7.0-cp311-cp311-linux_x86_64.whl", Some(0), false),
        ];
        let chosen = |before: Option<u64>, spec: Option<&str>, pinned: Option<&str>| {
            let spec = spec.map(|s| pep440_rs::VersionSpecifiers::from_str(s).unwrap());
            let pinned = pinned.map(String::from);
            newest_fitting(&files, spec.as_ref(), pinned.as_ref(), before.map(at), None)
                .map(|(_, c, _)| c.filename.clone())
        };
        // The sdist was uploaded on day 10: 3.10.0 came later, 3.9.1 is yanked, 3.11.0b1 a pre-release.
        assert_eq!(chosen(Some(10), None, None).as_deref(), Some("flit_core-3.9.0-py3-none-any.whl"));
        assert_eq!(chosen(None, None, None).as_deref(), Some("flit_core-3.10.0-py3-none-any.whl"));
        assert_eq!(chosen(Some(10), Some("<3.9"), None).as_deref(), Some("flit_core-3.8.0-py3-none-any.whl"));
        // A pin is taken whenever it was uploaded; nothing fits before day 1.
        assert_eq!(chosen(Some(10), None, Some("3.10.0")).as_deref(), Some("flit_core-3.10.0-py3-none-any.whl"));
        // Nothing before day 1: the newest that satisfies it, marked late.
        assert_eq!(chosen(Some(1), None, None).as_deref(), Some("flit_core-3.10.0-py3-none-any.whl"));
        let late = newest_fitting(&files, None, None, Some(at(1)), None).map(|(_, _, late)| late);
        assert_eq!(late, Some(true));
        assert_eq!(newest_fitting(&files, None, None, Some(at(10)), None).map(|(_, _, late)| late), Some(false));
        // A file with no upload time (find-links) is always eligible.
        let mut local = files.clone();
        local.push(file("flit_core-3.12.0-py3-none-any.whl", None, false));
        let picked = newest_fitting(&local, None, None, Some(at(10)), None).map(|(_, c, _)| c.filename.clone());
        assert_eq!(picked.as_deref(), Some("flit_core-3.12.0-py3-none-any.whl"));
    }

    #[test]
    fn the_wrapper_starts_the_interpreter_as_the_build_does() {
        let builder = Builder {
            program: "/kit/lib64/ld-linux-x86-64.so.2".into(),
            args: vec!["--library-path".into(), "/kit/lib".into(), "/kit/usr/bin/python3.11".into()],
            env: vec![("PYTHONHOME".into(), "/kit/it's/usr".into())],
            version: "3.11.2".into(),
            origin: "test".into(),
            epoch: 0,
            constraints: Default::default(),
            cache: None,
            tags: None,
        };
        assert_eq!(
            builder.wrapper(),
            "#!/bin/sh\nexport PYTHONHOME='/kit/it'\\''s/usr'\nexec '/kit/lib64/ld-linux-x86-64.so.2' '--library-path' '/kit/lib' '/kit/usr/bin/python3.11' \"$@\"\n"
        );
    }

    /// A failed build is shown from a traceback frame, not from carets, and
    /// a package's own configuration failing is told apart.
    #[test]
    fn a_failed_hook_is_shown_from_a_frame_with_the_fitting_advice() {
        use std::os::unix::process::ExitStatusExt as _;
        let builder = Builder {
            program: "python3".into(),
            args: Vec::new(),
            env: Vec::new(),
            version: "3.11.2".into(),
            origin: "the base's python3".into(),
            epoch: 0,
            constraints: Default::default(),
            cache: None,
            tags: None,
        };
        let stderr = "Traceback (most recent call last):\n  File \"/w/site/setuptools/config/expand.py\", line 182, in read_attr\n    spec = _find_spec(module_name, path)\n           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n  File \"/w/site/setuptools/config/expand.py\", line 196, in _find_spec\n    spec = spec or importlib.util.find_spec(module_name)\n                   ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n  File \"<frozen importlib.util>\", line 94, in find_spec\nModuleNotFoundError: No module named 'myapp'\n";
        let output = std::process::Output {
            status: std::process::ExitStatus::from_raw(256),
            stdout: Vec::new(),
            stderr: stderr.as_bytes().to_vec(),
        };
        let why = hook_failed(&output, &builder, &["setuptools==80.0.0"]);
        let shown = why.lines().nth(1).unwrap_or_default();
        assert!(shown.trim_start().starts_with("File "), "{why}");
        assert!(why.contains("No module named 'myapp'") && why.contains("the package's own configuration"), "{why}");
        assert!(!why.contains("build-constraints"), "{why}");
    }

    #[test]
    fn archive_names_that_climb_out_are_refused() {
        assert!(inside("pkg-1.0/setup.py").is_some());
        assert!(inside("../evil").is_none() && inside("/etc/passwd").is_none() && inside("a/../../b").is_none());
    }
}
