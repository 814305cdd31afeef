//! Source distributions built into wheels in the same run.
//!
//! A package of the lock that is published only as a sdist is downloaded
//! and checked against the lock's hash, unpacked (nothing may land outside
//! its directory), and built by its PEP 517 backend (setuptools, its legacy
//! `setup.py` backend, hatchling, flit-core, poetry-core, pdm-backend, ...):
//! - the backend's requirements (`[build-system] requires`) are installed
//!   from pure-Python wheels by oxbuild, the newest versions that satisfy
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

use oxbuild_image::BlobStore;

use crate::requirements::Pin;
use crate::source::{Candidate, Location, Sources};
use crate::{Error, Target, Wheel, wheel};

/// A CPython on this runner that builds sdists for the target.
#[derive(Debug, Clone)]
pub struct Builder {
    /// The interpreter.
    pub python: PathBuf,
    /// `SOURCE_DATE_EPOCH` of the build.
    pub epoch: u64,
    /// Exact versions of build requirements (`[python] build-constraints`),
    /// by normalised name; the newest that fits otherwise.
    pub constraints: std::collections::BTreeMap<String, String>,
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
                    .args(["-S", "-c", "import sys; print('%d.%d' % sys.version_info[:2]); print(sys.executable)"])
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
                    return Some(Builder { python: exe, epoch, constraints: Default::default() });
                }
            }
        }
        None
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

/// Installs the build requirements as pure-Python wheels into `site`: for
/// each requirement, the newest version that satisfies it, and then what
/// that wheel requires (markers evaluated for the target). Returns
/// `name==version` of each, for the report.
async fn install_requirements(
    requires: &[String],
    constraints: &std::collections::BTreeMap<String, String>,
    sources: &Sources,
    target: &Target,
    store: &BlobStore,
    site: &Path,
) -> Result<Vec<String>, String> {
    let env = target.marker_environment().map_err(|e| e.to_string())?;
    let mut queue: Vec<String> = requires.to_vec();
    let mut chosen: std::collections::BTreeMap<String, pep440_rs::Version> = std::collections::BTreeMap::new();
    let mut installed = Vec::new();
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
        let best = candidates
            .iter()
            .filter(|c| c.yanked.is_none())
            .filter_map(|c| {
                let w = wheel::WheelName::parse(&c.filename)?;
                let v = pep440_rs::Version::from_str(&w.version).ok()?;
                let pinned = constraints.get(&key);
                let fits = pure(&w)
                    && (pinned.is_some() || !v.any_prerelease())
                    && specifiers.as_ref().is_none_or(|s| s.contains(&v))
                    && pinned.is_none_or(|p| crate::version::same(p, &w.version));
                fits.then_some((v, c))
            })
            .max_by(|a, b| a.0.cmp(&b.0).then_with(|| b.1.filename.cmp(&a.1.filename)));
        let Some((version, candidate)) = best else {
            let pinned = constraints.get(&key).map(|v| format!(" at {v} (build-constraints)")).unwrap_or_default();
            return Err(format!(
                "no pure-Python wheel satisfies the build requirement `{spec}`{pinned} in {}",
                sources.describe()
            ));
        };
        let blob = sources.download(candidate, store).await.map_err(|e| e.to_string())?;
        let digest = blob.digest();
        if let Some(sha) = &candidate.sha256
            && !sha.eq_ignore_ascii_case(digest.hex())
        {
            return Err(format!("{} does not match the index's sha256", candidate.filename));
        }
        let path = blob.commit(&digest).map_err(|e| e.to_string())?;
        let requires = wheel::requires(&path, &candidate.filename).map_err(|e| e.to_string())?;
        for r in requires.dist {
            // Extras of build requirements are not followed: backends need none.
            if crate::name::parse_requirement(&r).is_ok_and(|p| p.evaluate_markers(env.pep508(), &[])) {
                queue.push(r);
            }
        }
        extract_wheel(&path, site).map_err(|e| format!("{}: {e}", candidate.filename))?;
        installed.push(format!("{key}=={version}"));
        chosen.insert(key, version);
    }
    installed.sort();
    Ok(installed)
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

/// What runs the backend: `argv` is site, out, backend, then backend-path entries.
const HOOK: &str = r#"
import importlib, os, sys
site, out, backend = sys.argv[1:4]
sys.path[:0] = [site] + [os.path.abspath(p) for p in sys.argv[4:]]
module, _, attrs = backend.partition(":")
hooks = importlib.import_module(module)
for attr in filter(None, attrs.split(".")):
    hooks = getattr(hooks, attr)
name = hooks.build_wheel(out)
sys.stdout.write("\nOXBUILD-WHEEL " + name + "\n")
"#;

/// Builds the sdist `candidate` of `pin` into a pure-Python wheel in the
/// store, and returns it as the layer installs it.
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
    let blob = sources.download(candidate, store).await?;
    let digest = blob.digest();
    if let Some(sha) = &candidate.sha256
        && !sha.eq_ignore_ascii_case(digest.hex())
    {
        return Err(fail("it does not match the index's sha256; nothing was stored".into()));
    }
    if !pin.hashes.is_empty() && !pin.hashes.contains(&digest.hex().to_string()) {
        return Err(crate::hash_mismatch(&what, pin, &candidate.filename, &digest));
    }
    let sdist = blob.commit(&digest)?;

    let dir = tempfile::Builder::new()
        .prefix("oxbuild-sdist-")
        .tempdir()
        .map_err(|e| fail(format!("a temporary directory: {e}")))?;
    let src = dir.path().join("src");
    unpack(&sdist, &candidate.filename, &src).map_err(&fail)?;
    let root = project_root(&src);
    let built = build_tree(&root, dir.path(), builder, sources, target, store).await.map_err(&fail)?;
    let requirements = built.requirements.join(", ");
    let url = match &candidate.location {
        Location::Url(u, _) | Location::Direct(u) => Some(crate::without_credentials(u)),
        Location::File(_) => None,
    };
    Ok(Wheel {
        pin: format!("{}=={}", pin.name, pin.version),
        name: pin.name.clone(),
        version: pin.version.clone(),
        dependencies: pin.dependencies.clone(),
        source: Some(format!("built here from {} ({}; with {requirements})", candidate.filename, digest)),
        url,
        filename: built.filename,
        digest: built.digest,
        path: built.path,
        downloaded: matches!(candidate.location, Location::Url(..) | Location::Direct(_)),
        yanked: candidate.yanked.clone(),
    })
}

/// A wheel a backend built, in the store.
#[derive(Debug, Clone)]
pub struct Built {
    /// Its file name.
    pub filename: String,
    /// Its digest.
    pub digest: oxbuild_image::Digest,
    /// Where it is in the store.
    pub path: PathBuf,
    /// The build requirements installed for it (`name==version`).
    pub requirements: Vec<String>,
}

/// Builds the project at `root` into a pure-Python wheel with its own
/// backend, working in `work` (which it may write in), and stores the wheel.
async fn build_tree(
    root: &Path,
    work: &Path,
    builder: &Builder,
    sources: &Sources,
    target: &Target,
    store: &BlobStore,
) -> Result<Built, String> {
    let (site, out) = (work.join("site"), work.join("out"));
    // PATH is an empty directory: no compiler (nor anything else) is found.
    let no_tools = work.join("no-tools");
    for d in [&site, &out, &no_tools] {
        std::fs::create_dir_all(d).map_err(|e| e.to_string())?;
    }
    let system = build_system(root)?;
    let requirements =
        install_requirements(&system.requires, &builder.constraints, sources, target, store, &site).await?;
    let mut cmd = Command::new(&builder.python);
    cmd.args(["-S", "-s", "-B", "-c", HOOK])
        .arg(&site)
        .arg(&out)
        .arg(&system.backend)
        .args(&system.backend_path)
        .env_clear()
        .env("SOURCE_DATE_EPOCH", builder.epoch.max(315_532_800).to_string())
        .env("HOME", work)
        .env("PATH", &no_tools)
        .env("TMPDIR", work)
        .env("PYTHONHASHSEED", "0")
        .current_dir(root)
        .stdin(Stdio::null());
    crate::bytecode::confine(&mut cmd, work);
    let python = builder.python.clone();
    let output = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("{} could not be started: {e}", python.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let built = stdout.lines().rev().find_map(|l| l.strip_prefix("OXBUILD-WHEEL ")).map(str::trim).map(String::from);
    let Some(built) = built.filter(|_| output.status.success()) else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = tail[tail.len().saturating_sub(6)..].join("\n    ");
        let compiler = ["gcc", "cc1", "compiler", "Python.h", "build_ext", "Cython"].iter().any(|w| stderr.contains(w));
        let hint = if compiler {
            "it compiles C, and oxbuild builds pure-Python packages only: put a wheel for the target in find-links (with [python] trust-local-wheels), or use a base whose index has one"
        } else {
            "fix the package or its build requirements, or put a wheel for it in find-links (with [python] trust-local-wheels)"
        };
        return Err(format!(
            "the build failed with {} (build requirements: {}):\n    {tail}\n{hint}",
            output.status,
            requirements.join(", ")
        ));
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
    let mut writer = store.writer().map_err(|e| e.to_string())?;
    let mut file = std::fs::File::open(out.join(&built)).map_err(|e| e.to_string())?;
    std::io::copy(&mut file, &mut writer).map_err(|e| e.to_string())?;
    let (digest, path) = writer.commit_computed().map_err(|e| e.to_string())?;
    Ok(Built { filename: built, digest, path, requirements })
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
/// and a `[project]` (or `[tool.poetry]`), unless the project says it is not
/// one (Poetry's `package-mode = false`, PDM's `distribution = false`, uv's
/// `package = false`).
pub fn is_package(dir: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(dir.join("pyproject.toml")) else { return false };
    let Ok(doc) = text.parse::<toml::Table>() else { return false };
    let tool =
        |t: &str, k: &str| doc.get("tool").and_then(|x| x.get(t)).and_then(|x| x.get(k)).and_then(|v| v.as_bool());
    let named = doc.get("project").is_some() || doc.get("tool").and_then(|t| t.get("poetry")).is_some();
    doc.get("build-system").is_some()
        && named
        && tool("poetry", "package-mode") != Some(false)
        && tool("pdm", "distribution") != Some(false)
        && tool("uv", "package") != Some(false)
}

/// Copies the project at `dir` into `into` for a build: its files, without
/// version-control directories, virtual environments, caches and earlier
/// build output.
fn copy_project(dir: &Path, into: &Path) -> std::io::Result<()> {
    const SKIP: [&str; 10] =
        [".git", ".hg", ".svn", ".venv", "venv", "__pycache__", "node_modules", "build", "dist", ".tox"];
    std::fs::create_dir_all(into)?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if SKIP.iter().any(|s| name == *s) {
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

/// Builds the project in `dir` itself into a wheel, with its own backend,
/// as a sdist is built (a copy is built, so the checkout is not written).
pub async fn build_project(
    dir: &Path,
    builder: &Builder,
    sources: &Sources,
    target: &Target,
    store: &BlobStore,
) -> Result<Built, Error> {
    let fail = |why: String| Error::Package(format!("building the project in {} as a package: {why}", dir.display()));
    let work = tempfile::Builder::new().prefix("oxbuild-project-").tempdir().map_err(|e| fail(e.to_string()))?;
    let root = work.path().join("src");
    copy_project(dir, &root).map_err(|e| fail(e.to_string()))?;
    build_tree(&root, work.path(), builder, sources, target, store).await.map_err(|e| {
        fail(format!("{e}\n(or set [python] install-project = false if the app is not meant to be installed)"))
    })
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
    fn archive_names_that_climb_out_are_refused() {
        assert!(inside("pkg-1.0/setup.py").is_some());
        assert!(inside("../evil").is_none() && inside("/etc/passwd").is_none() && inside("a/../../b").is_none());
    }
}
