//! oxbuild's Python support: the dependency layer, built without pip and
//! without running a container, for the base image's interpreter and
//! platform, even when that platform is not the machine's own.
//!
//! The steps, each in its own module:
//! - [`requirements`]: the pinned lock (`requirements.txt` with `==` pins and hashes);
//! - [`marker`]: PEP 508 markers, evaluated for the target;
//! - [`target`] and [`tags`]: interpreter, libc and architecture read from the
//!   base's layers, and the ordered wheel tags they accept;
//! - [`source`]: find-links directories and simple-API indexes;
//! - [`wheel`]: installing a wheel into the venv tree;
//! - [`fetch`] and [`dependency_layer`]: the whole path, with caches of wheels
//!   (in the blob store, by sha256) and of finished layers (by lock content,
//!   tags, prefix and layer format).

pub mod bytecode;
pub mod check;
mod error;
pub mod grouped;
pub mod input;
pub mod lockfile;
pub mod marker;
pub mod name;
mod ranged;
pub mod requirements;
pub mod resolve;
pub mod sdist;
pub mod source;
pub mod tags;
pub mod target;
pub mod version;
pub mod wheel;

/// Entry points for the fuzz targets (`fuzz/`) and their corpus replay
/// tests: each feeds untrusted bytes to a parser that is private here.
#[doc(hidden)]
pub mod fuzz {
    /// A simple-index page (PEP 691 JSON, then PEP 503 HTML).
    pub fn simple_index(data: &[u8]) {
        crate::source::page_parsers(&String::from_utf8_lossy(data));
    }

    /// A sdist (`.tar.gz`) unpacked into a fresh directory; every file
    /// must land inside it.
    pub fn sdist(data: &[u8]) {
        let Ok(dir) = tempfile::tempdir() else { return };
        let archive = dir.path().join("fuzz-1.0.tar.gz");
        if std::fs::write(&archive, data).is_err() {
            return;
        }
        let into = dir.path().join("into");
        let _ = crate::sdist::unpack(&archive, "fuzz-1.0.tar.gz", &into);
        for entry in std::fs::read_dir(dir.path()).into_iter().flatten().flatten() {
            let name = entry.file_name();
            assert!(name == "fuzz-1.0.tar.gz" || name == "into", "wrote {name:?} outside");
        }
    }
}

use std::collections::BTreeMap;
use std::path::PathBuf;

use futures_util::{StreamExt as _, stream};
use oxbuild_image::{BlobStore, Digest, EntrySource as _, LayerBlob, LayerBuilder, LayerCompression, Owner};
use sha2::{Digest as _, Sha256};

pub use error::Error;
pub use requirements::{Pin, Requirements};
pub use source::Sources;
pub use tags::{Libc, Target};

/// Bumped whenever the layer's content for the same inputs would change, so
/// cached layers from older oxbuild versions are not reused.
pub const LAYER_FORMAT: u32 = 2;

/// A wheel chosen and present in the blob store.
#[derive(Debug, Clone)]
pub struct Wheel {
    /// The pin it satisfies.
    pub pin: String,
    /// The package's name, as the lock writes it.
    pub name: String,
    /// Its version.
    pub version: String,
    /// What it depends on, as the lock records it.
    pub dependencies: Vec<String>,
    /// The index it came from (credentials removed), or `find-links`.
    pub source: Option<String>,
    /// The URL it was (or would be) downloaded from, credentials removed.
    pub url: Option<String>,
    /// The wheel file name.
    pub filename: String,
    /// Its sha256.
    pub digest: Digest,
    /// The file in the store.
    pub path: PathBuf,
    /// True when it was downloaded (not found in the cache or a find-links dir).
    pub downloaded: bool,
    /// The index's reason when the file is yanked (PEP 592), possibly empty.
    pub yanked: Option<String>,
    /// Built by oxbuild from a sdist: `Some(true)` when that build was done
    /// before and its wheel taken from the cache.
    pub built: Option<bool>,
}

impl Wheel {
    /// The warning for a yanked wheel, if it is one.
    pub fn yanked_warning(&self) -> Option<String> {
        let reason = self.yanked.as_ref()?;
        let why = if reason.is_empty() { String::new() } else { format!(" ({reason})") };
        Some(format!(
            "{} is yanked on its index{why}: installed because the lock pins it; consider moving the pin",
            self.pin
        ))
    }
}

/// The pins of `reqs` that apply to `target`.
pub fn applicable(reqs: &Requirements, target: &Target) -> Result<Vec<Pin>, Error> {
    let env = target.marker_environment()?;
    Ok(reqs.pins.iter().filter(|pin| pin.marker.as_ref().is_none_or(|m| m.evaluate(&env))).cloned().collect())
}

/// Finds, verifies and caches the best wheel of every pin for `target`;
/// a package with only a sdist is built by what `builder` finds (looked for
/// only then).
pub async fn fetch(
    pins: &[Pin],
    sources: &Sources,
    target: &Target,
    store: &BlobStore,
    builder: impl std::future::Future<Output = Result<Option<sdist::Builder>, Error>>,
) -> Result<Vec<Wheel>, Error> {
    let ranking = target.ranking();
    let results: Vec<Result<Fetched, Error>> = stream::iter(pins.iter().cloned())
        .map(|pin| {
            let ranking = &ranking;
            async move { fetch_one(&pin, sources, target, ranking, store).await }
        })
        .buffered(4)
        .collect()
        .await;
    // Every package that has no usable wheel is reported in one run, not
    // one per run; any other failure (an index, the cache) is reported as it is.
    let mut wheels = Vec::new();
    let mut unusable = Vec::new();
    let mut to_build = Vec::new();
    for (pin, r) in pins.iter().zip(results) {
        match r {
            Ok(Fetched::Wheel(w)) => wheels.push(w),
            Ok(Fetched::SourceOnly { candidate, message }) => to_build.push((pin, candidate, message)),
            Err(Error::Package(why)) => unusable.push(why),
            Err(e) => return Err(e),
        }
    }
    let builder = if to_build.is_empty() { None } else { builder.await? };
    let Some(builder) = builder else {
        unusable.extend(to_build.drain(..).map(|(_, _, message)| message));
        return in_order(pins, wheels, unusable);
    };
    // Sdists are built one at a time: each build is a process of its own.
    for (pin, candidate, _) in to_build {
        let built = match (&candidate, &pin.tree) {
            (Some(candidate), _) => sdist::build(pin, candidate, &builder, sources, target, store).await,
            (None, Some(tree)) => sdist::build_source_tree(pin, tree, &builder, sources, target, store).await,
            (None, None) => continue,
        };
        match built {
            Ok(w) => wheels.push(w),
            Err(Error::Package(why)) => unusable.push(why),
            Err(e) => return Err(e),
        }
    }
    in_order(pins, wheels, unusable)
}

/// The wheels of `pins` in the lock's order, or every reason some cannot be installed.
fn in_order(pins: &[Pin], mut wheels: Vec<Wheel>, mut unusable: Vec<String>) -> Result<Vec<Wheel>, Error> {
    match unusable.len() {
        0 => {
            // In the lock's order, whatever order they were built in.
            let order: Vec<String> = pins.iter().map(|p| format!("{}=={}", p.name, p.version)).collect();
            wheels.sort_by_key(|w| order.iter().position(|o| *o == w.pin));
            Ok(wheels)
        }
        1 => Err(Error::Package(unusable.remove(0))),
        n => Err(Error::Package(format!("{n} packages cannot be installed:\n  - {}", unusable.join("\n  - ")))),
    }
}

/// What looking for a pin's file found.
enum Fetched {
    /// A wheel that fits, in the store.
    Wheel(Wheel),
    /// Only a source distribution, or (`candidate` None) the pin's source
    /// tree; `message` says so for a build that cannot build it.
    SourceOnly { candidate: Option<source::Candidate>, message: String },
}

async fn fetch_one(
    pin: &Pin,
    sources: &Sources,
    target: &Target,
    ranking: &std::collections::HashMap<tags::Tag, usize>,
    store: &BlobStore,
) -> Result<Fetched, Error> {
    let what = format!("{}=={} ({})", pin.name, pin.version, pin.origin);
    if let Some(tree) = &pin.tree {
        let message = format!(
            "{what} comes from {tree}, and there is no Python {}.{} to build it with (the base's own cannot run on this runner): put python{}.{} on PATH, or publish it as a wheel (a find-links wheelhouse or an index) and lock that version",
            target.major, target.minor, target.major, target.minor
        );
        return Ok(Fetched::SourceOnly { candidate: None, message });
    }
    // Local wheelhouses first, then the files the lock names, and the indexes
    // only when neither has a wheel that fits.
    let mut all = sources.local_candidates(&pin.name)?;
    all.extend(pin.direct.iter().cloned());
    let of_pin = |c: &source::Candidate| {
        source::version_of(&c.filename).is_some_and(|v| version::matches(&v, &pin.version, pin.arbitrary))
    };
    let fits = |c: &source::Candidate| {
        of_pin(c)
            && wheel::WheelName::parse(&c.filename).is_some_and(|w| w.tags.iter().any(|t| ranking.contains_key(t)))
    };
    if !all.iter().any(fits) {
        all.extend(sources.index_candidates(&pin.name).await?);
    }
    let same_version: Vec<_> = all.iter().filter(|c| of_pin(c)).collect();
    let best = same_version
        .iter()
        .filter_map(|c| {
            let w = wheel::WheelName::parse(&c.filename)?;
            let rank = w.tags.iter().filter_map(|t| ranking.get(t)).min()?;
            // With hashes in the lock, only files the lock allows are candidates.
            if let Some(sha) = &c.sha256
                && !pin.hashes.is_empty()
                && !pin.hashes.contains(&sha.to_ascii_lowercase())
            {
                return None;
            }
            let version = source::version_of(&c.filename).and_then(|v| version::parse(&v));
            Some((*rank, w.build, version, *c))
        })
        // A file that is not yanked; then the highest version (a public pin
        // matches local versions too, `2.3.0+cpu` above `2.3.0`, as pip
        // chooses); then the best tag; then the highest build tag (PEP 427's
        // tie-breaker); then the name, so the choice is stable.
        .min_by_key(|(rank, build, version, c)| {
            (
                c.yanked.is_some(),
                std::cmp::Reverse(version.clone()),
                *rank,
                std::cmp::Reverse(build.clone()),
                c.filename.clone(),
            )
        })
        .map(|(rank, _, _, c)| (rank, c));
    let Some((_, chosen)) = best else {
        let wheels: Vec<&str> =
            same_version.iter().filter(|c| c.filename.ends_with(".whl")).map(|c| c.filename.as_str()).collect();
        let tried: Vec<String> = target.tags().iter().take(3).map(|(p, a, pl)| format!("{p}-{a}-{pl}")).collect();
        let platform = format!("Python {}.{} on {} ({})", target.major, target.minor, target.machine, target.libc);
        // No wheel fits the target (or there is none): its sdist, when it
        // has one, is built, as pip would.
        if let Some(sdist) = same_version.iter().find(|c| {
            sdist::is_sdist(&c.filename)
                && (pin.hashes.is_empty()
                    || c.sha256.as_ref().is_none_or(|h| pin.hashes.contains(&h.to_ascii_lowercase())))
        }) {
            let why = if wheels.is_empty() {
                "is published only as a source distribution".to_string()
            } else {
                format!("has no wheel for {platform}, only a source distribution")
            };
            let message = format!(
                "{what} {why}, and there is no Python {}.{} to build it with (the base's own cannot run on this runner): put python{}.{} on PATH, or build a wheel for {platform} (`pip wheel {}=={} -w wheelhouse`) and add the directory to `find-links` with [python] trust-local-wheels",
                target.major, target.minor, target.major, target.minor, pin.name, pin.version
            );
            // The same file, as the lock or an index lists it, says when it
            // was uploaded (a find-links copy does not).
            let mut candidate = (*sdist).clone();
            candidate.upload_time = candidate.upload_time.or_else(|| {
                same_version.iter().filter(|c| c.filename == candidate.filename).find_map(|c| c.upload_time)
            });
            return Ok(Fetched::SourceOnly { candidate: Some(candidate), message });
        }
        return Err(Error::Package(if same_version.is_empty() {
            format!("{what}: no file of this version in {}", sources.describe())
        } else if wheels.is_empty() {
            format!(
                "{what} is published only as a source distribution, and none of its files matches the lock's hashes: build a wheel for {platform} (`pip wheel {}=={} -w wheelhouse`) and add the directory to `find-links` with [python] trust-local-wheels",
                pin.name, pin.version
            )
        } else {
            // A long list of file names hides the point; a few show what the package ships.
            let shown = wheels.len().min(5);
            let more = if wheels.len() > shown { format!(" and {} more", wheels.len() - shown) } else { String::new() };
            format!(
                "{what}: no wheel fits {platform} (tags tried: {}, … and {} more); available: {}{more}",
                tried.join(", "),
                ranking.len().saturating_sub(3),
                wheels[..shown].join(", ")
            )
        }));
    };

    // A file the store holds already is not downloaded again.
    let accept = |digest: &Digest| {
        let allowed = pin.hashes.is_empty() || pin.hashes.contains(&digest.hex().to_string());
        if allowed || sources.trusts(&pin.key(), chosen) {
            Ok(())
        } else {
            Err(hash_mismatch(&what, pin, &chosen.filename, digest))
        }
    };
    let stored = sources.stored(chosen, store, accept).await?;
    finish(pin, chosen, sources, stored).map(Fetched::Wheel)
}

/// The error for a downloaded `filename` of `pin` whose sha256 the lock does not allow.
pub(crate) fn hash_mismatch(what: &str, pin: &Pin, filename: &str, digest: &Digest) -> Error {
    Error::Package(format!(
        "{what}: hash mismatch for {filename}: got sha256:{}, the lock allows {}",
        digest.hex(),
        pin.hashes.iter().map(|h| format!("sha256:{h}")).collect::<Vec<_>>().join(", ")
    ))
}

fn finish(pin: &Pin, chosen: &source::Candidate, sources: &Sources, stored: source::Stored) -> Result<Wheel, Error> {
    let filename = chosen.filename.clone();
    let unhashed = !pin.hashes.is_empty() && !pin.hashes.contains(&stored.digest.hex().to_string());
    let (source, url) = match &chosen.location {
        // The SBOM says so: this wheel is not the one the lock's hashes name.
        source::Location::File(_) if unhashed => {
            (Some("find-links (trusted by [python] trust-local-wheels, not the lock's hash)".to_string()), None)
        }
        source::Location::File(_) => (Some("find-links".to_string()), None),
        source::Location::Url(url, i) => (sources.index_url(*i), Some(without_credentials(url))),
        source::Location::Direct(url) => (None, Some(without_credentials(url))),
    };
    Ok(Wheel {
        pin: format!("{}=={}", pin.name, pin.version),
        name: pin.name.clone(),
        version: pin.version.clone(),
        dependencies: pin.dependencies.clone(),
        source,
        url,
        filename,
        digest: stored.digest,
        path: stored.path,
        downloaded: stored.downloaded,
        yanked: chosen.yanked.clone(),
        built: None,
    })
}

/// `url` with any user info removed, for reports and the SBOM.
pub(crate) fn without_credentials(url: &url::Url) -> String {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.to_string()
}

/// The cache key of a dependency layer: everything that decides its bytes
/// and can be known before any download.
pub fn layer_key(pins: &[Pin], target: &Target, prefix: &str, epoch: u64, compression: LayerCompression) -> String {
    let mut h = Sha256::new();
    h.update(format!(
        "format={LAYER_FORMAT}\nprefix={prefix}\nepoch={epoch}\ninterpreter={}\nversion={}\n",
        target.interpreter, target.full_version
    ));
    h.update(format!("compression={}\n", compression.key()));
    for (p, a, pl) in target.tags() {
        h.update(format!("tag={p}-{a}-{pl}\n"));
    }
    let mut lines: Vec<String> = pins
        .iter()
        .map(|p| {
            let mut hashes = p.hashes.clone();
            hashes.sort();
            let tree = p.tree.as_ref().map(|t| format!(" tree={}", t.identity())).unwrap_or_default();
            format!("pin={}=={} {}{tree}\n", p.key(), p.version, hashes.join(","))
        })
        .collect();
    lines.sort();
    for l in lines {
        h.update(l);
    }
    hex::encode(h.finalize())
}

/// Installs `wheels` into a virtual environment at `prefix` for `target` and
/// writes it as one layer into `store`, a copy of its bytes going into
/// `tee` as they are written (an upload streaming it; see [`Settings::tee`]).
/// Everything is owned by root, so the app's user cannot change its
/// dependencies.
#[allow(clippy::too_many_arguments)]
pub fn dependency_layer(
    wheels: &[Wheel],
    target: &Target,
    prefix: &str,
    epoch: u64,
    compression: LayerCompression,
    store: &BlobStore,
    bytecode: Option<&bytecode::Compiler>,
    tee: Option<oxbuild_image::store::Tee>,
) -> Result<(LayerBlob, bytecode::Outcome, Vec<String>), Error> {
    let prefix = prefix.trim_end_matches('/');
    let venv = wheel::VenvLayout {
        prefix: prefix.to_string(),
        python_dir: format!("python{}.{}", target.major, target.minor),
    };
    let mut files: BTreeMap<String, wheel::Staged> = BTreeMap::new();
    for w in wheels {
        for staged in wheel::install(&w.path, &w.filename, &venv)? {
            files.insert(staged.rel.clone(), staged);
        }
    }
    // What the layer puts in the venv's bin, which is on the image's PATH:
    // its interpreters and the wheels' scripts.
    let mut programs: Vec<String> = ["python".to_string(), "python3".to_string(), venv.python_dir.clone()]
        .into_iter()
        .chain(
            files
                .iter()
                .filter(|(_, f)| f.executable)
                .filter_map(|(rel, _)| rel.strip_prefix("bin/").filter(|name| !name.contains('/')).map(str::to_string)),
        )
        .map(|name| format!("{prefix}/bin/{name}"))
        .collect();
    programs.sort();
    programs.dedup();
    let mut layer = LayerBuilder::new(epoch, Owner::ROOT);
    let p = prefix.trim_start_matches('/');
    layer.dir(p, Owner::ROOT, 0o755);
    for d in ["bin", "include", "lib", &venv.site_packages()] {
        layer.dir(&format!("{p}/{d}"), Owner::ROOT, 0o755);
    }
    layer.symlink(&format!("{p}/lib64"), "lib", Owner::ROOT);
    layer.symlink(&format!("{p}/bin/python"), &target.interpreter, Owner::ROOT);
    layer.symlink(&format!("{p}/bin/python3"), "python", Owner::ROOT);
    layer.symlink(&format!("{p}/bin/{}", venv.python_dir), "python", Owner::ROOT);
    let home = target.interpreter.rsplit_once('/').map(|(d, _)| d).unwrap_or("/usr/bin");
    let cfg = format!(
        "home = {home}\ninclude-system-site-packages = false\nversion = {}\nexecutable = {}\ncommand = oxbuild (venv at {prefix})\n",
        target.full_version, target.interpreter
    );
    layer.bytes(&format!("{p}/pyvenv.cfg"), cfg.into_bytes(), Owner::ROOT, 0o644);
    // Sources to compile: read from their wheels only when compiled.
    let sources: Vec<(String, wheel::Content)> = if bytecode.is_some() {
        files
            .iter()
            .filter(|(rel, _)| rel.ends_with(".py") && !rel.contains("__pycache__/"))
            .map(|(rel, staged)| (format!("/{p}/{rel}"), staged.content.clone()))
            .collect()
    } else {
        Vec::new()
    };
    for (rel, staged) in files {
        let mode = if staged.executable { 0o755 } else { 0o644 };
        let path = format!("{p}/{rel}");
        match staged.content {
            wheel::Content::Bytes(bytes) => layer.bytes(&path, bytes, Owner::ROOT, mode),
            wheel::Content::Entry(entry) => layer.source(&path, entry, Owner::ROOT, mode),
        };
    }
    // The wheels' files are inflated into the layer as it is written; a file
    // that does not match its RECORD is a package error, not an I/O one.
    let tee = std::sync::Mutex::new(tee);
    let write = |layer: &LayerBuilder| {
        let tee = tee.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        layer.write_teed(store, compression, tee).map_err(|e| match &e {
            oxbuild_image::Error::Io { source, .. } => {
                match source.get_ref().and_then(|inner| inner.downcast_ref::<wheel::Corrupt>()) {
                    Some(corrupt) => Error::Package(corrupt.0.clone()),
                    None => e.into(),
                }
            }
            _ => e.into(),
        })
    };
    let (blob, outcome) = match bytecode {
        Some(compiler) => {
            let paths: Vec<String> = sources.iter().map(|(path, _)| path.clone()).collect();
            let read = |i: usize| match &sources[i].1 {
                wheel::Content::Bytes(b) => Ok(b.clone()),
                wheel::Content::Entry(entry) => {
                    let mut buf = Vec::with_capacity(entry.len() as usize);
                    entry.open().and_then(|mut r| std::io::Read::read_to_end(&mut r, &mut buf)).map_err(corrupt)?;
                    Ok(buf)
                }
            };
            // Compiled while the layer is written, each .pyc taken in its turn.
            bytecode::write_with(&mut layer, &paths, read, compiler, epoch, Owner::ROOT, write)?
        }
        None => (write(&layer)?, bytecode::Outcome::default()),
    };
    Ok((blob, outcome, programs))
}

/// A wheel file read for compiling that does not match its RECORD.
fn corrupt(e: std::io::Error) -> Error {
    match e.get_ref().and_then(|inner| inner.downcast_ref::<wheel::Corrupt>()) {
        Some(c) => Error::Package(c.0.clone()),
        None => Error::Package(format!("reading a wheel file: {e}")),
    }
}

/// The environment the venv needs: `VIRTUAL_ENV`, and `PATH` with the venv's
/// `bin` first (before the base's PATH, or the usual default).
pub fn env(prefix: &str, base_path: Option<&str>) -> Vec<(String, String)> {
    let prefix = prefix.trim_end_matches('/');
    let rest = base_path.unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    vec![("PATH".into(), format!("{prefix}/bin:{rest}")), ("VIRTUAL_ENV".into(), prefix.to_string())]
}

/// Where the dependencies come from and where they go.
#[derive(Clone)]
pub struct Settings {
    /// The pinned requirements file.
    pub requirements: PathBuf,
    /// The venv prefix in the image.
    pub prefix: String,
    /// The index (the file's `--index-url`, else PyPI, when None).
    pub index_url: Option<String>,
    /// Extra indexes.
    pub extra_index_urls: Vec<String>,
    /// Wheelhouse directories, asked first.
    pub find_links: Vec<PathBuf>,
    /// No index, only find-links.
    pub no_index: bool,
    /// Pins already installed by a lower layer (the production lock, under a
    /// test lock): the same pin is skipped, a different version is an error.
    pub installed: Vec<Pin>,
    /// How the layer is compressed (the image's `compression`).
    pub compression: LayerCompression,
    /// Which part of a lock with groups to install.
    pub selection: lockfile::Selection,
    /// Packages whose `find-links` wheel is taken without the lock's hash.
    pub trust_local_wheels: Vec<String>,
    /// A pinned requirements file of the versions sdist and project builds
    /// install their backends at (`[python] build-constraints`).
    pub build_constraints: Option<PathBuf>,
    /// The interpreter that compiles the layer's bytecode; none without.
    pub bytecode: Option<bytecode::Compiler>,
    /// Finds the interpreter that builds sdists and the project (the base's
    /// own); a `python3.X` on this runner's `PATH` when it finds none.
    pub builder: Option<std::sync::Arc<dyn sdist::FindBuilder>>,
    /// Where wheels built from sdists are kept between builds.
    pub built_cache: Option<std::sync::Arc<dyn sdist::BuiltCache>>,
    /// Where a copy of the layer's bytes goes as it is written (an upload
    /// that streams it to the registry the image is pushed to), taken by
    /// the one layer written.
    pub tee: Option<std::sync::Arc<std::sync::Mutex<Option<oxbuild_image::store::Tee>>>>,
    /// The project's own name, when the build installs it over this layer:
    /// a package of the lock that requires it (a plugin of the project,
    /// pulled in by one of its extras) is met by it.
    pub project: Option<String>,
}

/// Index URLs may carry credentials (`https://user:token@host/simple`):
/// they are shown with the user info replaced.
impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("requirements", &self.requirements)
            .field("prefix", &self.prefix)
            .field("index_url", &self.index_url.as_deref().map(source::redact))
            .field("extra_index_urls", &self.extra_index_urls.iter().map(|u| source::redact(u)).collect::<Vec<_>>())
            .field("find_links", &self.find_links)
            .field("no_index", &self.no_index)
            .field("selection", &self.selection)
            .finish_non_exhaustive()
    }
}

/// A dependency layer ready to go into the image.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The layer blob, in the store.
    pub blob: LayerBlob,
    /// Its cache key.
    pub key: String,
    /// The wheels in it (file names).
    pub wheels: Vec<String>,
    /// How many wheels were downloaded this time.
    pub downloaded: usize,
    /// Warnings about yanked wheels it holds (when it was built here).
    pub yanked: Vec<String>,
    /// The pins that apply to the target (including those skipped as installed).
    pub pins: Vec<Pin>,
    /// What compiling its sources to bytecode did.
    pub bytecode: bytecode::Outcome,
    /// Every package installed, for the SBOM.
    pub installed: Vec<Installed>,
    /// The programs it puts in the venv's bin (absolute paths): what a
    /// command on the image's PATH can run from it.
    pub programs: Vec<String>,
    /// Wheels built from sdists or source trees: file name, whether it was
    /// taken from the cache of earlier builds, and how it was built (as the
    /// SBOM's source says).
    pub built: Vec<(String, bool, String)>,
}

/// A package installed into a dependency layer, as the SBOM lists it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Installed {
    /// The name, as the lock writes it.
    pub name: String,
    /// The version.
    pub version: String,
    /// The wheel file.
    pub filename: String,
    /// Its sha256 (hex).
    pub sha256: String,
    /// The index it came from (credentials removed), or `find-links`.
    pub source: Option<String>,
    /// Its URL, credentials removed.
    pub url: Option<String>,
    /// Its license metadata.
    pub metadata: wheel::Metadata,
    /// What it depends on (normalised names), as the lock records it.
    pub dependencies: Vec<String>,
}

/// The lock read and the layer's cache key computed: everything known before
/// any wheel is looked at.
#[derive(Debug, Clone)]
pub struct Planned {
    reqs: Requirements,
    /// The pins to install (those of lower layers left out).
    pub pins: Vec<Pin>,
    /// Every pin that applies to the target.
    pub all: Vec<Pin>,
    /// The layer's cache key.
    pub key: String,
    /// How the layer is compressed.
    pub compression: LayerCompression,
}

/// Reads the lock for `target` and computes the layer's cache key.
pub fn plan(settings: &Settings, target: &Target, epoch: u64) -> Result<Planned, Error> {
    let reqs = lockfile::load(&settings.requirements, target, &settings.selection)?;
    if let Some(spec) = &reqs.requires_python {
        check::lock_requires_python(spec, &settings.requirements.display().to_string(), target)?;
    }
    let all = applicable(&reqs, target)?;
    let mut pins = Vec::new();
    for pin in &all {
        match settings.installed.iter().find(|p| p.key() == pin.key()) {
            Some(p) if version::same(&p.version, &pin.version) => {}
            Some(p) => {
                return Err(Error::Package(format!(
                    "{} pins {}=={}, but {} already installs {}=={}; make the locks agree (compile the test lock with the production one as a constraint)",
                    pin.origin, pin.name, pin.version, p.origin, p.name, p.version
                )));
            }
            None => pins.push(pin.clone()),
        }
    }
    let mut key = layer_key(&pins, target, &settings.prefix, epoch, settings.compression);
    if let Some(path) = &settings.build_constraints {
        // What sdists are built with is part of what the layer holds.
        let text = std::fs::read(path).map_err(|e| Error::Lock {
            file: path.display().to_string(),
            line: 0,
            message: crate::error::unreadable(&e),
        })?;
        key = hex::encode(Sha256::digest([key.as_bytes(), b"\nbuild-constraints=", &text].concat()));
    }
    if let Some(compiler) = &settings.bytecode {
        // Bytecode depends on the exact interpreter build, not just X.Y.Z.
        key = hex::encode(Sha256::digest(format!("{key}\nbytecode={} {}", bytecode::FORMAT, compiler.version)));
    }
    Ok(Planned { reqs, pins, all, key, compression: settings.compression })
}

/// The interpreter that builds sdists and the project (the base's own when
/// the caller found it, else the runner's), with the build constraints and
/// the cache of `settings`; None when there is none.
async fn builder_for(settings: &Settings, target: &Target, epoch: u64) -> Result<Option<sdist::Builder>, Error> {
    let base = match &settings.builder {
        Some(find) => find.find(target).await?,
        None => None,
    };
    let Some(mut builder) = base.or_else(|| sdist::Builder::find(target, epoch)) else { return Ok(None) };
    builder.epoch = epoch;
    builder.cache = settings.built_cache.clone();
    if let Some(path) = &settings.build_constraints {
        builder.constraints = requirements::build_constraints(path)?;
    }
    Ok(Some(builder))
}

/// The sources of `settings`, with the lock's own index options after them.
fn sources_of(
    settings: &Settings,
    options: &requirements::IndexOptions,
    http: &oxbuild_http::Client,
) -> Result<Sources, Error> {
    let configured = requirements::IndexOptions {
        index_url: settings.index_url.clone(),
        extra_index_urls: settings.extra_index_urls.clone(),
        find_links: settings.find_links.clone(),
        no_index: settings.no_index,
    };
    Ok(Sources::from_options(&configured.then(options), http.clone())?.trusting(&settings.trust_local_wheels))
}

/// The project itself installed into the venv, as `poetry install` and `uv
/// sync` do: a layer of its own above the dependencies, so that changing
/// the app never invalidates the dependency layer.
#[derive(Debug, Clone)]
pub struct ProjectLayer {
    /// The layer blob, in the store.
    pub blob: LayerBlob,
    /// The wheel built.
    pub wheel: String,
    /// The project as the SBOM lists it.
    pub installed: Installed,
    /// The programs it puts in the venv's bin (absolute paths).
    pub programs: Vec<String>,
}

/// Builds the project in `dir` (a package: see [`sdist::is_package`]) with
/// its own backend and installs it over `installed` (the dependency layer's
/// pins), after checking that they meet its requirements.
pub async fn project_layer(
    dir: &std::path::Path,
    settings: &Settings,
    installed: &[Pin],
    target: &Target,
    store: &BlobStore,
    epoch: u64,
    http: &oxbuild_http::Client,
) -> Result<ProjectLayer, Error> {
    let sources = sources_of(settings, &Default::default(), http)?;
    let Some(builder) = builder_for(settings, target, epoch).await? else {
        return Err(Error::Package(format!(
            "the project in {} is a package (its pyproject.toml has a [build-system]), and there is no Python {}.{} to build it with (the base's own cannot run on this runner): put python{}.{} on PATH, or set [python] install-project = false",
            dir.display(),
            target.major,
            target.minor,
            target.major,
            target.minor
        )));
    };
    let (built, requirements) = sdist::build_project(dir, &builder, &sources, target, store).await?;
    let name = wheel::WheelName::parse(&built.filename)
        .ok_or_else(|| Error::Package(format!("the project built `{}`, not a wheel", built.filename)))?;
    let requires = wheel::requires(&built.path, &built.filename)?;
    let mut dists = vec![check::Dist {
        name: name.name.clone(),
        version: name.version.clone(),
        from: built.filename.clone(),
        requires: Some(requires),
    }];
    dists.extend(installed.iter().map(|p| check::Dist {
        name: p.name.clone(),
        version: p.version.clone(),
        from: p.origin.clone(),
        requires: None,
    }));
    let lock = settings.requirements.display().to_string();
    // With the extras production installs (`[python] extras`): a lock made
    // without them lacks their packages, and says so here.
    let mut asked: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    asked.insert(name::normalize(&name.name), settings.selection.extras.iter().cloned().collect());
    check::dependencies(&dists, &asked, target, &lock)?;
    let wheel = Wheel {
        pin: format!("{}=={}", name.name, name.version),
        name: name.name.clone(),
        version: name.version.clone(),
        dependencies: Vec::new(),
        source: Some(format!("built by oxbuild from the project with build requirements {}", requirements.join(", "))),
        url: None,
        filename: built.filename.clone(),
        digest: built.digest.clone(),
        path: built.path.clone(),
        downloaded: false,
        yanked: None,
        built: Some(false),
    };
    let (t, prefix, st, compression, compiler) =
        (target.clone(), settings.prefix.clone(), store.clone(), settings.compression, settings.bytecode.clone());
    let w = wheel.clone();
    let (blob, _, programs) = tokio::task::spawn_blocking(move || {
        dependency_layer(std::slice::from_ref(&w), &t, &prefix, epoch, compression, &st, compiler.as_ref(), None)
    })
    .await
    .map_err(|e| Error::Package(format!("installing the project failed: {e}")))??;
    let installed = Installed {
        name: wheel.name.clone(),
        version: wheel.version.clone(),
        filename: wheel.filename.clone(),
        sha256: wheel.digest.hex().to_string(),
        source: wheel.source.clone(),
        url: None,
        metadata: wheel::metadata(&wheel.path, &wheel.filename)?,
        dependencies: Vec::new(),
    };
    Ok(ProjectLayer { blob, wheel: wheel.filename, installed, programs })
}

/// Fetches the wheels of `planned` and installs them into the layer. The
/// caller caches the result under `planned.key`.
pub async fn build(
    planned: &Planned,
    settings: &Settings,
    target: &Target,
    store: &BlobStore,
    epoch: u64,
    http: &oxbuild_http::Client,
) -> Result<Prepared, Error> {
    let sources = sources_of(settings, &planned.reqs.options, http)?;
    let builder = builder_for(settings, target, epoch);
    let wheels = fetch(&planned.pins, &sources, target, store, builder).await?;
    let downloaded = wheels.iter().filter(|w| w.downloaded).count();
    let (ws, t, prefix, st) = (wheels.clone(), target.clone(), settings.prefix.clone(), store.clone());
    let compression = settings.compression;
    let compiler = settings.bytecode.clone();
    let tee = settings.tee.clone();
    let lock = settings.requirements.display().to_string();
    let (below, all) = (settings.installed.clone(), planned.all.clone());
    let project = settings.project.clone();
    let (blob, bytecode, installed, programs) = tokio::task::spawn_blocking(move || {
        // Before anything is written: what the image holds must be whole.
        let mut dists = Vec::new();
        for w in &ws {
            let requires = wheel::requires(&w.path, &w.filename)?;
            dists.push(check::Dist {
                name: w.name.clone(),
                version: w.version.clone(),
                from: w.filename.clone(),
                requires: Some(requires),
            });
        }
        for p in &below {
            dists.push(check::Dist {
                name: p.name.clone(),
                version: p.version.clone(),
                from: p.origin.clone(),
                requires: None,
            });
        }
        // Its version is the project's to say (often dynamic): any meets a requirement.
        if let Some(name) = project.filter(|n| !dists.iter().any(|d| name::normalize(&d.name) == name::normalize(n))) {
            dists.push(check::Dist { name, version: String::new(), from: "the project itself".into(), requires: None });
        }
        let mut extras: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
        for p in all.iter().chain(&below) {
            extras.entry(p.key()).or_default().extend(p.extras.iter().cloned());
        }
        check::dependencies(&dists, &extras, &t, &lock)?;
        let tee = tee.and_then(|t| t.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take());
        let (blob, bytecode, programs) =
            dependency_layer(&ws, &t, &prefix, epoch, compression, &st, compiler.as_ref(), tee)?;
        let installed = ws
            .iter()
            .map(|w| {
                Ok(Installed {
                    name: w.name.clone(),
                    version: w.version.clone(),
                    filename: w.filename.clone(),
                    sha256: w.digest.hex().to_string(),
                    source: w.source.clone(),
                    url: w.url.clone(),
                    metadata: wheel::metadata(&w.path, &w.filename)?,
                    dependencies: w.dependencies.clone(),
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok::<_, Error>((blob, bytecode, installed, programs))
    })
    .await
    .map_err(|e| Error::Package(format!("installing wheels failed: {e}")))??;
    let names: Vec<String> = wheels.iter().map(|w| w.filename.clone()).collect();
    let yanked: Vec<String> = wheels.iter().filter_map(Wheel::yanked_warning).collect();
    let built = wheels
        .iter()
        .filter_map(|w| Some((w.filename.clone(), w.built?, w.source.clone().unwrap_or_default())))
        .collect();
    Ok(Prepared {
        blob,
        key: planned.key.clone(),
        wheels: names,
        downloaded,
        pins: planned.all.clone(),
        yanked,
        bytecode,
        installed,
        built,
        programs,
    })
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::path::Path;

    use super::*;

    fn target() -> Target {
        crate::tags::debian("x86_64")
    }

    /// A wheel whose `pkg/data.txt` holds `content` while its RECORD hashes `recorded`.
    fn wheel(dir: &Path, content: &[u8], recorded: &[u8]) -> Wheel {
        use base64::Engine as _;
        let filename = "pkg-1.0-py3-none-any.whl";
        let path = dir.join(filename);
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        let opts = zip::write::SimpleFileOptions::default();
        zip.start_file("pkg/data.txt", opts).unwrap();
        zip.write_all(content).unwrap();
        zip.start_file("pkg-1.0.dist-info/WHEEL", opts).unwrap();
        zip.write_all(b"Wheel-Version: 1.0\n").unwrap();
        zip.start_file("pkg-1.0.dist-info/RECORD", opts).unwrap();
        let hash = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(b));
        let record = format!(
            "pkg/data.txt,sha256={},{}\npkg-1.0.dist-info/WHEEL,sha256={},11\npkg-1.0.dist-info/RECORD,,\n",
            hash(recorded),
            recorded.len(),
            hash(b"Wheel-Version: 1.0\n")
        );
        zip.write_all(record.as_bytes()).unwrap();
        zip.finish().unwrap();
        let digest = Digest::of(&std::fs::read(&path).unwrap());
        Wheel {
            pin: "pkg==1.0".into(),
            name: "pkg".into(),
            version: "1.0".into(),
            dependencies: Vec::new(),
            source: None,
            url: None,
            filename: filename.into(),
            digest,
            path,
            downloaded: false,
            yanked: None,
            built: None,
        }
    }

    fn blobs(store: &BlobStore) -> Vec<String> {
        let dir = store.root().join("sha256");
        std::fs::read_dir(dir)
            .map(|d| d.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect())
            .unwrap_or_default()
    }

    /// Two builds of the same wheel: the higher build tag wins (PEP 427),
    /// not the first file name as text.
    #[tokio::test]
    async fn the_highest_build_tag_is_chosen() {
        let dir = tempfile::tempdir().unwrap();
        let house = dir.path().join("house");
        std::fs::create_dir_all(&house).unwrap();
        for build in ["1", "2", ""] {
            let name = if build.is_empty() {
                "pkg-1.0-py3-none-any.whl".to_string()
            } else {
                format!("pkg-1.0-{build}-py3-none-any.whl")
            };
            std::fs::write(house.join(name), format!("wheel {build}")).unwrap();
        }
        let store = BlobStore::open(dir.path().join("store")).unwrap();
        let sources =
            Sources::new(vec![house], None, &[], true, oxbuild_http::Client::new(Default::default()).unwrap()).unwrap();
        let pin = Pin {
            arbitrary: false,
            name: "pkg".into(),
            version: "1.0".into(),
            hashes: Vec::new(),
            marker: None,
            origin: "test".into(),
            direct: Vec::new(),
            dependencies: Vec::new(),
            extras: Vec::new(),
            tree: None,
        };
        let wheels = fetch(&[pin], &sources, &target(), &store, async { Ok(None) }).await.unwrap();
        assert_eq!(wheels[0].filename, "pkg-1.0-2-py3-none-any.whl", "as text, build 1 sorts first");
    }

    /// Every type that holds an index credential formats without it.
    #[test]
    fn debug_output_never_shows_an_index_secret() {
        let secret = "s3cret-Index-Token";
        let url = format!("https://ci-bot:{secret}@pypi.example.com/simple/");
        let http = oxbuild_http::Client::new(Default::default()).unwrap();
        let sources = Sources::new(Vec::new(), Some(&url), std::slice::from_ref(&url), false, http).unwrap();
        let settings = Settings {
            requirements: "requirements.txt".into(),
            prefix: "/opt/venv".into(),
            index_url: Some(url.clone()),
            extra_index_urls: vec![url.clone()],
            find_links: Vec::new(),
            no_index: false,
            installed: Vec::new(),
            compression: LayerCompression::Gzip,
            selection: lockfile::Selection::production(),
            trust_local_wheels: Vec::new(),
            build_constraints: None,
            bytecode: None,
            builder: None,
            built_cache: None,
            tee: None,
            project: None,
        };
        for shown in [format!("{sources:?}"), format!("{settings:?}"), format!("{sources:#?}")] {
            assert!(!shown.contains(secret), "{shown}");
            assert!(shown.contains("pypi.example.com"), "{shown}");
        }
    }

    #[test]
    fn wheel_files_are_streamed_into_the_layer() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path().join("store")).unwrap();
        let content = b"streamed without a copy on disk\n".repeat(1000);
        let w = wheel(dir.path(), &content, &content);
        let (blob, _, programs) =
            dependency_layer(&[w], &target(), "/opt/venv", 0, LayerCompression::Gzip, &store, None, None).unwrap();
        assert_eq!(blobs(&store), vec![blob.digest.hex().to_string()]);
        assert_eq!(programs, ["/opt/venv/bin/python", "/opt/venv/bin/python3", "/opt/venv/bin/python3.11"]);
        let gz = std::fs::File::open(&blob.path).unwrap();
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(gz));
        let mut found = None;
        for e in tar.entries().unwrap() {
            let mut e = e.unwrap();
            if e.path().unwrap().to_string_lossy() == "opt/venv/lib/python3.11/site-packages/pkg/data.txt" {
                let mut bytes = Vec::new();
                e.read_to_end(&mut bytes).unwrap();
                found = Some(bytes);
            }
        }
        assert!(found.expect("the file is in the layer") == content);
    }

    #[test]
    fn a_file_that_does_not_match_its_record_fails_the_layer_and_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path().join("store")).unwrap();
        let w = wheel(dir.path(), &b"tampered\n".repeat(500), &b"original\n".repeat(500));
        let e =
            dependency_layer(&[w], &target(), "/opt/venv", 0, LayerCompression::Gzip, &store, None, None).unwrap_err();
        assert!(matches!(e, Error::Package(_)), "{e:?}");
        let text = e.to_string();
        assert!(text.contains("pkg-1.0-py3-none-any.whl") && text.contains("pkg/data.txt"), "{text}");
        assert!(text.contains("does not match the hash in its RECORD"), "{text}");
        assert!(blobs(&store).is_empty(), "{:?}", blobs(&store));
    }
}
