//! Which CPython compiles the image's bytecode, never in a container:
//!
//! 1. the base's own interpreter, run straight from its files through the
//!    base's own dynamic loader and libraries (so a musl base works on a glibc
//!    runner), when the runner can execute the base's architecture. The few
//!    files it needs (the interpreter, the shared libraries, the part of the
//!    standard library that starts it) are a small "kit" layer, read from the
//!    base once and kept in the cache;
//! 2. else a `python3.X` on the runner's `PATH` of exactly the base's
//!    version (`X.Y.Z`): bytecode does not depend on the CPU, so one compile
//!    serves every architecture;
//! 3. else none, and the caller warns or fails as `compile-bytecode` says.

use std::path::{Path, PathBuf};

use oxbuild_cache::Bucket;
use oxbuild_image::rootfs::{self, Node, Want};
use oxbuild_image::{LayerBuilder, LayerCompression, Owner, Platform};
use oxbuild_python::Target;
use oxbuild_python::bytecode::{Compiler, Interpreter};

use crate::base::Base;
use crate::error::task;
use crate::{Error, Kind, Services};

/// A compiler, and the scratch directory it runs in (removed when dropped).
pub struct Provisioned {
    /// The compiler.
    pub compiler: Compiler,
    _scratch: tempfile::TempDir,
}

/// The cache record of a base's kit: what its interpreter said of itself,
/// once it has run.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct KitRecord {
    probe: Option<Probe>,
}

/// Bumped when what a kit holds changes (v2: put in place straight from
/// the base's scan, its interpreter's version kept with it; v3: its part of
/// the standard library in one `python3N.zip`; v4: compiled in that zip;
/// v5: the extension modules of the CJK codecs).
const KIT_FORMAT: &str = "interpreter-kit-v5";
/// Bumped when what a build kit holds changes.
const BUILD_KIT_FORMAT: &str = "interpreter-build-kit-v2";

/// What a kit is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// Compiling bytecode: the interpreter, its libraries and its codecs.
    Compile,
    /// Building sdists: the whole standard library, its extension modules
    /// and the libraries they load (a backend imports far more than
    /// `py_compile` does). Kept locally only: it is large, and a fleet shares
    /// the wheels built with it instead.
    Build,
}

/// Parts of a standard library that no build backend imports.
const STDLIB_UNUSED: [&str; 8] = [
    "test/",
    "idlelib/",
    "tkinter/",
    "turtledemo/",
    "site-packages/",
    "dist-packages/",
    "ensurepip/",
    "lib2to3/tests/",
];

/// Directories whose shared libraries the kit takes (and the triplet
/// directories right below them, `lib/x86_64-linux-gnu`).
const LIB_DIRS: [&str; 5] = ["lib", "lib64", "usr/lib", "usr/lib64", "usr/local/lib"];

/// What of the base the kit takes, for the interpreter at `interpreter`
/// (`usr/bin/python3.11`, no leading slash).
fn kit_wants(interpreter: &str, minor: u32, purpose: Use) -> impl Fn(&str) -> Want + Send + 'static {
    let interpreter = interpreter.to_string();
    move |path: &str| kit_want(path, &interpreter, minor, purpose)
}

/// What a compile kit takes of `path`, for any CPython 3 the base has: what
/// a base scan also reads when the build will compile bytecode, so that a
/// fresh runner reads the base's layers once (see [`captured`]).
pub(crate) fn any_kit_want(path: &str) -> Want {
    // `PREFIX/bin/python3.N` and `PREFIX/lib/python3.N/...`.
    let python = |rest: &str| -> Option<u32> {
        let minor = rest.strip_prefix("python3.")?;
        let digits = minor.split('/').next()?;
        digits.parse().ok().filter(|_| !digits.is_empty())
    };
    let interpreter_of = |prefix: &str, minor: u32| {
        if prefix.is_empty() { format!("bin/python3.{minor}") } else { format!("{prefix}/bin/python3.{minor}") }
    };
    for (marker, is_bin) in [("bin/", true), ("lib/", false)] {
        let (prefix, rest) = match path.split_once(&format!("/{marker}")) {
            Some((p, r)) => (p, r),
            None => match path.strip_prefix(marker) {
                Some(r) => ("", r),
                None => continue,
            },
        };
        if !["", "usr", "usr/local"].contains(&prefix) {
            continue;
        }
        if let Some(minor) = python(rest) {
            if is_bin && rest.contains('/') {
                continue;
            }
            return kit_want(path, &interpreter_of(prefix, minor), minor, Use::Compile);
        }
    }
    kit_want(path, "", 0, Use::Compile)
}

fn kit_want(path: &str, interpreter: &str, minor: u32, purpose: Use) -> Want {
    let prefix = interpreter.rsplit_once("/bin/").map(|(p, _)| p).unwrap_or("usr");
    if path == interpreter {
        return Want::Content;
    }
    // Top-level links of a merged /usr (`lib -> usr/lib`): the loader's
    // and libraries' paths go through them.
    if !path.contains('/') {
        return Want::Exists;
    }
    if !interpreter.is_empty()
        && let Some(rest) = path.strip_prefix(&format!("{prefix}/lib/python3.{minor}/"))
    {
        if purpose == Use::Build {
            let unused = STDLIB_UNUSED.iter().any(|p| rest.starts_with(p)) || rest.contains("__pycache__/");
            return if unused { Want::Skip } else { Want::Content };
        }
        // Enough of the standard library to start and to compile: the
        // codecs (startup imports `encodings`, and a source may declare
        // any encoding), with the extension modules that the CJK ones
        // (`big5`, `shift_jis`, `gbk`, ...) import. From 3.11 the rest of
        // what starts it is frozen into the interpreter; before, its
        // top-level modules are read.
        let codecs = rest.starts_with("encodings/") && rest.ends_with(".py");
        let top = minor < 11 && !rest.contains('/') && rest.ends_with(".py");
        return if codecs || top || codec_module(rest) { Want::Content } else { Want::Skip };
    }
    // A build kit's extension modules load more (OpenSSL, libffi, ...):
    // every library is read, and `needed_closure` keeps what is loaded.
    if shared_library(path) && (purpose == Use::Build || runtime_library(path)) { Want::Content } else { Want::Skip }
}

/// True for an extension module that a codec of `encodings` imports
/// (`lib-dynload/_codecs_tw.cpython-311-x86_64-linux-gnu.so`), given its
/// path in the standard library.
fn codec_module(in_stdlib: &str) -> bool {
    in_stdlib.strip_prefix("lib-dynload/").is_some_and(|name| {
        (name.starts_with("_codecs_") || name.starts_with("_multibytecodec.")) && name.contains(".so")
    })
}

/// Libraries a CPython interpreter links, by name: the C library and its
/// companions, zlib, expat, libffi, libgcc's, and libpython itself. Reading
/// every library of a base (OpenSSL, Perl, apt) would hold tens of MB in
/// memory for nothing; the kit keeps of these only what the interpreter's
/// ELF says it loads (see `needed_closure`).
fn runtime_library(path: &str) -> bool {
    const NAMES: [&str; 14] = [
        "ld-",
        "libc.",
        "libc.musl",
        "libm.",
        "libpthread.",
        "libdl.",
        "libutil.",
        "librt.",
        "libz.",
        "libexpat.",
        "libffi.",
        "libgcc_s.",
        "libpython3",
        "libcrypt.",
    ];
    let name = path.rsplit('/').next().unwrap_or(path);
    NAMES.iter().any(|n| name.starts_with(n))
}

/// True for a shared library or dynamic loader in one of [`LIB_DIRS`] or a
/// directory right below one (`usr/lib/x86_64-linux-gnu`).
fn shared_library(path: &str) -> bool {
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
    let in_lib_dir = LIB_DIRS
        .iter()
        .any(|d| dir == *d || dir.strip_prefix(d).and_then(|r| r.strip_prefix('/')).is_some_and(|t| !t.contains('/')));
    in_lib_dir && (name.contains(".so") || name.starts_with("ld-"))
}

/// A kit in place, or being put in place.
struct Kit {
    /// Its unpacked root filesystem.
    root: PathBuf,
    /// Its cache key.
    key: String,
    /// What its interpreter said of itself, when it has run before.
    probe: Option<Probe>,
    /// Still being unpacked (from the cache repository), in the background.
    unpacking: Option<tokio::task::JoinHandle<Result<(), Error>>>,
    /// Made here from the base: its layer, for the cache repository once
    /// the interpreter's version is known.
    made: Option<oxbuild_image::LayerBlob>,
}

/// The cache key of the compile kit of `image`: its layers decide which
/// interpreter it has.
pub(crate) fn kit_key(image: &oxbuild_image::Image) -> String {
    format!("{KIT_FORMAT}-{}", oxbuild_build::scan_key(image).hex())
}

/// Asks the cache repository for the compile kit of `image` (when `wanted`
/// and not in the local cache), so that it arrives while the base's scan is
/// read; [`kit`] takes what was found.
pub(crate) async fn prefetch(
    image: &oxbuild_image::Image,
    wanted: bool,
    repo: &crate::cache_repo::CacheRepo,
    services: &Services,
) {
    let key = kit_key(image);
    if !wanted || services.cache.get::<KitRecord>(Bucket::Interpreters, &key).is_some() {
        return;
    }
    let found = crate::cache_repo::kit(&key, repo, services).await;
    services.keep_prefetched_kit(&key, found.map(|(layer, probe)| Prefetched::start(layer, probe, services)));
}

/// A kit found in the cache repository, its download under way.
pub(crate) struct Prefetched {
    download: tokio::task::JoinHandle<Result<oxbuild_image::Layer, oxbuild_registry::Error>>,
    probe: Option<serde_json::Value>,
}

impl Prefetched {
    /// Starts downloading `layer` (verified) into the blob store.
    fn start(layer: oxbuild_image::Layer, probe: Option<serde_json::Value>, services: &Services) -> Prefetched {
        let (client, store) = (services.client.clone(), services.store.clone());
        let download = tokio::spawn(async move { oxbuild_registry::fetch_layer(&client, layer, &store).await });
        Prefetched { download, probe }
    }
}

/// Where the kit with cache key `key` is unpacked.
fn kit_dir(key: &str, services: &Services) -> Result<PathBuf, Error> {
    Ok(services
        .cache
        .bucket(Bucket::Interpreters)?
        .join(format!("kit-{}", oxbuild_image::Digest::of(key.as_bytes()).hex())))
}

/// The kit of `image` for `target`: unpacked in the cache already, or from
/// the cache repository, or made now from the files the base scan kept
/// (`captured`), else from the base's layers.
async fn kit(
    image: &oxbuild_image::Image,
    target: &Target,
    cache_repo: Option<&crate::cache_repo::CacheRepo>,
    services: &Services,
    purpose: Use,
    captured: Option<std::sync::Arc<crate::base::Captured>>,
) -> Result<Kit, Error> {
    let key = match purpose {
        Use::Compile => kit_key(image),
        Use::Build => format!("{BUILD_KIT_FORMAT}-{}", oxbuild_build::scan_key(image).hex()),
    };
    let captured = captured.filter(|_| purpose == Use::Compile);
    // One build of this run makes the kit; the others wait and use it.
    let made_once = match captured.as_ref().and_then(|c| c.take_guard()) {
        Some(held) => held,
        None => services.kit_lock(&key).lock_owned().await,
    };
    let dir = kit_dir(&key, services)?;
    // A build kit is large, and a fleet shares the wheels built with it.
    let cache_repo = cache_repo.filter(|_| purpose == Use::Compile);
    let kit = |probe: Option<Probe>, unpacking, made| Kit {
        root: dir.join("root"),
        key: key.clone(),
        probe,
        unpacking,
        made,
    };
    if let Some(record) = services.cache.get::<KitRecord>(Bucket::Interpreters, &key) {
        let checked = dir.clone();
        if tokio::task::spawn_blocking(move || whole(&checked)).await.map_err(task)? {
            return Ok(kit(record.probe, None, None));
        }
    }
    let tmp = services.cache.bucket(Bucket::Tmp)?;
    let found = match (cache_repo, services.prefetched_kit(&key)) {
        (Some(_), Some(found)) => found,
        (Some(repo), None) => crate::cache_repo::kit(&key, repo, services)
            .await
            .map(|(layer, probe)| Prefetched::start(layer, probe, services)),
        (None, _) => None,
    };
    if let Some(Prefetched { download, probe }) = found {
        let probe: Option<Probe> = probe.and_then(|p| serde_json::from_value(p).ok());
        let _ = services.cache.put(Bucket::Interpreters, &key, &KitRecord { probe: probe.clone() });
        let (into, services_, image_, target_) = (dir.clone(), services.clone(), image.clone(), target.clone());
        // Downloaded and unpacked in the background, the kit's lock held
        // until it is in place; a download that fails makes the kit from
        // the base instead.
        let unpacking = tokio::spawn(async move {
            let _made_once = made_once;
            let services = &services_;
            let downloaded = download.await.map_err(|e| oxbuild_registry::Error::Invalid(e.to_string()));
            match downloaded.and_then(|d| d) {
                Ok(local) => {
                    let blob = local.path().map_err(|e| Error::new(Kind::Output, e))?.to_path_buf();
                    let cache = services.cache.clone();
                    tokio::task::spawn_blocking(move || {
                        put_in_place(&into, &tmp, &cache, |root| unpack(&blob, root)).map_err(|e| {
                            let why = oxbuild_image::causes(&e);
                            Error::new(
                                Kind::Output,
                                format!("unpacking the base's interpreter into {}: {why}", into.display()),
                            )
                        })
                    })
                    .await
                    .map_err(task)?
                }
                Err(e) => {
                    services.events.warn(&format!(
                        "the interpreter kit of the cache repository could not be fetched ({e}); reading it from the base"
                    ));
                    make(&image_, &target_, services, purpose, None, &into, &tmp, false).await.map(drop)
                }
            }
        });
        // With its version known, compiling waits for the files only when
        // there is something to compile.
        if probe.is_some() {
            return Ok(kit(probe, Some(unpacking), None));
        }
        unpacking.await.map_err(task)??;
        return Ok(kit(None, None, None));
    }
    let made = make(image, target, services, purpose, captured, &dir, &tmp, cache_repo.is_some()).await?;
    drop(made_once);
    let _ = services.cache.put(Bucket::Interpreters, &key, &KitRecord::default());
    Ok(kit(None, None, made))
}

/// Makes the kit of `image` for `target` in `dir` (through `tmp`): from the
/// files the base scan kept (`captured`), else from the base's layers; with
/// `layer_wanted`, also its layer, for the cache repository.
#[allow(clippy::too_many_arguments)]
async fn make(
    image: &oxbuild_image::Image,
    target: &Target,
    services: &Services,
    purpose: Use,
    captured: Option<std::sync::Arc<crate::base::Captured>>,
    dir: &Path,
    tmp: &Path,
    layer_wanted: bool,
) -> Result<Option<oxbuild_image::LayerBlob>, Error> {
    let files: crate::base::Scan = match captured {
        Some(captured) => {
            let want = kit_wants(target.interpreter.trim_start_matches('/'), target.minor, purpose);
            captured.files.iter().filter(|(p, _)| want(p) != Want::Skip).map(|(p, n)| (p.clone(), n.clone())).collect()
        }
        None => {
            services.events.step(if purpose == Use::Build {
                "  reading the base's interpreter and standard library to build sdists (once per base)"
            } else {
                "  reading the base's interpreter for bytecode (once per base)"
            });
            let image =
                oxbuild_registry::fetch_layers(&services.client, image, &services.store).await.map_err(|e| {
                    Error::new(Kind::Registry, format!("fetching the base's layers for its interpreter: {e}"))
                })?;
            let want = kit_wants(target.interpreter.trim_start_matches('/'), target.minor, purpose);
            tokio::task::spawn_blocking(move || rootfs::scan(image.layers(), want))
                .await
                .map_err(task)?
                .map_err(|e| Error::new(Kind::Build, format!("reading the base's interpreter: {e}")))?
        }
    };
    let interpreter = target.interpreter.trim_start_matches('/').to_string();
    let (minor, store, into, tmp) = (target.minor, services.store.clone(), dir.to_path_buf(), tmp.to_path_buf());
    let cache = services.cache.clone();
    tokio::task::spawn_blocking(move || -> Result<Option<oxbuild_image::LayerBlob>, Error> {
        // What the interpreter loads, and for a build kit what its extension
        // modules (`lib-dynload`) load.
        let prefix = interpreter.rsplit_once("/bin/").map(|(p, _)| p.to_string()).unwrap_or_else(|| "usr".into());
        let stdlib = format!("{prefix}/lib/python3.{minor}/");
        // (A compile kit's extension modules are the codecs' alone.)
        let mut roots = vec![interpreter.clone()];
        roots.extend(files.keys().filter(|p| p.starts_with(&stdlib) && p.ends_with(".so")).cloned());
        let keep = needed_closure(&files, &roots);
        let kept: Vec<(&String, KitFile<'_>)> = files
            .iter()
            .filter(|(path, _)| keep(path))
            .filter_map(|(path, node)| match node {
                // Top-level directory links stay links, made relative.
                Node::Symlink(target) if !path.contains('/') => {
                    Some((path, KitFile::Link(target.trim_start_matches('/'))))
                }
                // Other links are stored as the files they lead to, so that
                // absolute targets (`/lib/…`) resolve inside the kit.
                _ => rootfs::content(&files, path).map(|bytes| (path, KitFile::Bytes(bytes))),
            })
            .collect();
        // A compile kit's codecs (and before 3.11 the top-level modules)
        // travel in one zip, `PREFIX/lib/python3N.zip`, which CPython puts
        // on `sys.path` by itself: one file to create instead of about 120,
        // and a new file costs far more than its bytes on a busy filesystem.
        // Extension modules cannot load from a zip and stay files.
        let zip_path = format!("{prefix}/lib/python3{minor}.zip");
        let (zipped, mut kept): (Vec<_>, Vec<_>) = kept.into_iter().partition(|(path, file)| {
            purpose == Use::Compile
                && path.starts_with(&stdlib)
                && !path.contains("/lib-dynload/")
                && matches!(file, KitFile::Bytes(_))
        });
        let zip_bytes = stdlib_zip(&zipped, &stdlib).map_err(|e| Error::new(Kind::Build, e))?;
        if !zipped.is_empty() {
            kept.push((&zip_path, KitFile::Bytes(&zip_bytes)));
            kept.sort_by(|a, b| a.0.cmp(b.0));
        }
        let fill = |root: &Path| {
            let mut listed = write_kit(&kept, root)?;
            if !zipped.is_empty()
                && let Some(compiled) =
                    precompiled_zip(root, &interpreter, (&zip_path, &zip_bytes), &zipped, &stdlib, &tmp)
            {
                listed = listed
                    .lines()
                    .map(|l| {
                        if l.split_once(' ').map(|(_, p)| p) == Some(zip_path.as_str()) {
                            format!("{} {zip_path}\n", compiled.len())
                        } else {
                            format!("{l}\n")
                        }
                    })
                    .collect();
            }
            Ok(listed)
        };
        put_in_place(&into, &tmp, &cache, fill).map_err(|e| {
            let why = oxbuild_image::causes(&e);
            Error::new(Kind::Output, format!("putting the base's interpreter in place in {}: {why}", into.display()))
        })?;
        if !layer_wanted {
            return Ok(None);
        }
        // The zip as the kit has it (compiled, by this build or another).
        let zip_in_place = if zipped.is_empty() {
            Vec::new()
        } else {
            std::fs::read(into.join("root").join(&zip_path)).map_err(|e| {
                Error::new(Kind::Output, format!("reading {}: {e}", into.join("root").join(&zip_path).display()))
            })?
        };
        let kept: Vec<(&String, KitFile<'_>)> = kept
            .into_iter()
            .map(|(path, file)| if *path == zip_path { (path, KitFile::Bytes(&zip_in_place)) } else { (path, file) })
            .collect();
        let mut layer = LayerBuilder::new(0, Owner::ROOT);
        for (path, file) in &kept {
            match file {
                KitFile::Link(target) => layer.symlink(path, target, Owner::ROOT),
                KitFile::Bytes(bytes) => layer.bytes(path, bytes.to_vec(), Owner::ROOT, 0o755),
            };
        }
        // zstd: a fresh runner unpacks it while it compiles, and zstd
        // inflates several times faster than gzip.
        layer.write(&store, LayerCompression::Zstd).map(Some).map_err(|e| Error::new(Kind::Output, e))
    })
    .await
    .map_err(task)?
}

/// The standard library's `files` (under `stdlib`, the directory
/// `PREFIX/lib/python3.N/`) as one stored zip, its members named from that
/// directory, in order, dated 1980-01-01: the same files give the same bytes.
fn stdlib_zip(files: &[(&String, KitFile<'_>)], stdlib: &str) -> Result<Vec<u8>, String> {
    let members: Vec<(String, &[u8])> = files
        .iter()
        .filter_map(|(path, file)| match file {
            KitFile::Bytes(bytes) => Some((path.strip_prefix(stdlib).unwrap_or(path).to_string(), *bytes)),
            KitFile::Link(_) => None,
        })
        .collect();
    zip_of(&members)
}

/// `members` (name, bytes), in order, as one stored zip (see [`stdlib_zip`]).
fn zip_of(members: &[(String, &[u8])]) -> Result<Vec<u8>, String> {
    use std::io::Write as _;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .last_modified_time(zip::DateTime::default())
        .unix_permissions(0o644);
    let fail = |e: &dyn std::fmt::Display| format!("zipping the interpreter's standard library: {e}");
    for (name, bytes) in members {
        zip.start_file(name.as_str(), options).map_err(|e| fail(&e))?;
        zip.write_all(bytes).map_err(|e| fail(&e))?;
    }
    Ok(zip.finish().map_err(|e| fail(&e))?.into_inner())
}

/// What the kit's interpreter runs to compile the modules it loaded from
/// its zip while it started (`ZIP` and `STDLIB` are filled in): for each,
/// its name in the zip and its `.pyc`, as 4-byte little-endian lengths and
/// bytes. The codecs it did not load stay sources.
const PRECOMPILE: &str = r#"
import sys
from _frozen_importlib_external import _code_to_timestamp_pyc
out = sys.stdout.buffer
zip, stdlib = ZIP + "/", STDLIB
for m in list(sys.modules.values()):
    f = getattr(m, "__file__", None) or ""
    if f.startswith(zip) and f.endswith(".py"):
        name = f[len(zip):]
        src = m.__loader__.get_data(f)
        code = compile(src, stdlib + name, "exec", dont_inherit=True)
        pyc = bytes(_code_to_timestamp_pyc(code, 0, len(src)))
        for b in (name.encode(), pyc):
            out.write(len(b).to_bytes(4, "little")); out.write(b)
"#;

/// Compiles the modules of the kit's standard library zip (`zip`: its path
/// under `root` and its bytes, made from `zipped`, under `stdlib`) that its interpreter
/// loads to start, with that interpreter, `X.py` to a source-less `X.pyc`,
/// and puts that zip in its place; returns its bytes. A compile kit's
/// interpreter starts at every build, and compiling its codecs (before
/// 3.11 also its top-level modules) from source was a third of its start.
/// zipimport takes a `.pyc` without its source as it is. When anything
/// fails, the zip of sources stays: it is slower, and as right.
fn precompiled_zip(
    root: &Path,
    interpreter: &str,
    (zip_path, sources_zip): (&str, &[u8]),
    zipped: &[(&String, KitFile<'_>)],
    stdlib: &str,
    tmp: &Path,
) -> Option<Vec<u8>> {
    let started = layout(root)?;
    let scratch = tempfile::Builder::new().prefix("kit-zip-").tempdir_in(tmp).ok()?;
    let run = || in_kit(root, interpreter, &started, scratch.path(), "the kit being made".into());
    let quoted = |s: &str| serde_json::to_string(s).ok();
    let code = PRECOMPILE
        .replace("ZIP", &quoted(&root.join(zip_path).to_string_lossy())?)
        .replace("STDLIB", &quoted(&format!("/{stdlib}"))?);
    let output = run().run(&code).ok().filter(|o| o.status.success())?;
    let mut compiled = std::collections::HashMap::new();
    let mut rest = output.stdout.as_slice();
    let mut frame = || -> Option<Vec<u8>> {
        let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let bytes = rest.get(4..4 + len)?.to_vec();
        rest = &rest[4 + len..];
        Some(bytes)
    };
    while let Some(name) = frame() {
        compiled.insert(String::from_utf8(name).ok()?, frame()?);
    }
    if compiled.is_empty() {
        return None;
    }
    let members: Vec<(String, &[u8])> = zipped
        .iter()
        .filter_map(|(path, file)| {
            let KitFile::Bytes(bytes) = file else { return None };
            let name = path.strip_prefix(stdlib).unwrap_or(path);
            Some(match compiled.get(name) {
                Some(pyc) => (format!("{name}c"), pyc.as_slice()),
                None => (name.to_string(), *bytes),
            })
        })
        .collect();
    let bytes = zip_of(&members).ok()?;
    let at = root.join(zip_path);
    std::fs::write(&at, &bytes).ok()?;
    // It must still start (its codecs come from this zip): else the sources go back.
    if !run().run("pass").is_ok_and(|o| o.status.success()) {
        std::fs::write(&at, sources_zip).ok()?;
        return None;
    }
    Some(bytes)
}

/// A file of a kit.
enum KitFile<'a> {
    /// A top-level directory link, and its (relative) target.
    Link(&'a str),
    /// A file's bytes.
    Bytes(&'a [u8]),
}

/// Writes `files` under `root`; returns their listing (see [`whole`]).
fn write_kit(files: &[(&String, KitFile<'_>)], root: &Path) -> std::io::Result<String> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut listed = String::new();
    for (path, file) in files {
        let at = root.join(path);
        if let Some(parent) = at.parent() {
            std::fs::create_dir_all(parent)?;
        }
        match file {
            KitFile::Link(target) => {
                std::os::unix::fs::symlink(target, &at)?;
                listed.push_str(&format!("0 {path}\n"));
            }
            KitFile::Bytes(bytes) => {
                std::fs::write(&at, bytes)?;
                std::fs::set_permissions(&at, std::fs::Permissions::from_mode(0o755))?;
                listed.push_str(&format!("{} {path}\n", bytes.len()));
            }
        }
    }
    Ok(listed)
}

/// Unpacks the kit layer at `blob` under `root`; returns its listing. The
/// layer is inflated on a thread of its own while the files are written
/// (each about half of the work), so that a fresh runner waits less for
/// its interpreter.
fn unpack(blob: &Path, root: &Path) -> std::io::Result<String> {
    let mut listed = String::new();
    let mut file = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(blob)?);
    let zstd = std::io::BufRead::fill_buf(&mut file)?.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]);
    let mut stream: Box<dyn std::io::Read + Send> = if zstd {
        Box::new(zstd::stream::read::Decoder::with_buffer(file)?)
    } else {
        Box::new(flate2::read::GzDecoder::new(file))
    };
    let (reader, mut writer) = std::io::pipe()?;
    // The inflating thread stops at the end of the layer, or when the
    // reader is gone (an error below): its write then fails.
    let inflating = std::thread::spawn(move || std::io::copy(&mut stream, &mut writer).map(drop));
    let unpacked = unpack_tar(std::io::BufReader::with_capacity(1 << 16, reader), root, &mut listed)
        // What follows the archive's end (padding) is read too, so that the
        // inflating thread never waits on a pipe no one reads.
        .and_then(|mut rest| std::io::copy(&mut rest, &mut std::io::sink()).map(drop));
    let inflated = inflating.join().map_err(|_| std::io::Error::other("the thread inflating the kit failed"))?;
    unpacked.and(inflated)?;
    Ok(listed)
}

/// Unpacks the tar `stream` under `root`, listing what it held into
/// `listed`; returns the rest of the stream.
fn unpack_tar<R: std::io::Read>(stream: R, root: &Path, listed: &mut String) -> std::io::Result<R> {
    let mut archive = tar::Archive::new(stream);
    // Unpacked now, for the cache's least-recently-used order (the kit's
    // own times are all 1970).
    archive.set_preserve_mtime(false);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.to_string_lossy().trim_end_matches('/').to_string();
        listed.push_str(&format!("{} {path}\n", entry.header().size()?));
        entry.unpack_in(root)?;
    }
    Ok(archive.into_inner())
}

/// True when the kit directory `dir` is whole: every file it listed is
/// there, at its size (pruning the cache may have removed some).
fn whole(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("files")).is_ok_and(|text| {
        text.lines().all(|l| {
            let (size, path) = l.split_once(' ').unwrap_or(("", l));
            std::fs::symlink_metadata(dir.join("root").join(path))
                .is_ok_and(|m| m.is_symlink() || m.is_dir() || size.parse() == Ok(m.len()))
        })
    })
}

/// Which scanned paths the kit keeps: everything but shared libraries, and
/// of those only the ones the interpreter loads (its `DT_NEEDED` entries,
/// and theirs, found by name in the library directories) and the dynamic
/// loader. A base's lib directory holds far more (OpenSSL, Perl, apt).
fn needed_closure(found: &std::collections::BTreeMap<String, Node>, roots: &[String]) -> impl Fn(&str) -> bool {
    let is_lib = |path: &str| shared_library(path);
    let by_name: std::collections::BTreeMap<String, Vec<String>> =
        found.keys().filter(|p| is_lib(p)).fold(Default::default(), |mut m, p| {
            let name = p.rsplit('/').next().unwrap_or(p).to_string();
            m.entry(name).or_default().push(p.clone());
            m
        });
    let mut wanted: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    let mut queue = roots.to_vec();
    while let Some(path) = queue.pop() {
        let Some(bytes) = rootfs::content(found, &path) else { continue };
        let Ok(elf) = goblin::elf::Elf::parse(bytes) else { continue };
        if let Some(interp) = elf.interpreter {
            for p in by_name.get(interp.rsplit('/').next().unwrap_or(interp)).into_iter().flatten() {
                wanted.insert(p.clone());
            }
        }
        for lib in elf.libraries {
            for p in by_name.get(lib).into_iter().flatten() {
                if wanted.insert(p.clone()) {
                    queue.push(p.clone());
                }
            }
        }
    }
    // The loader under every name a base gives it (`lib64/ld-linux-x86-64.so.2`
    // is often a link to the one in the triplet directory).
    for (name, paths) in &by_name {
        if name.starts_with("ld-") {
            wanted.extend(paths.iter().cloned());
        }
    }
    let roots: std::collections::BTreeSet<String> = roots.iter().cloned().collect();
    move |path: &str| !is_lib(path) || wanted.contains(path) || roots.contains(path)
}

/// Puts a kit directory at `dir` (its files under `root/`, their listing in
/// `files`), filled by `fill` in a fresh directory of `tmp` and moved there
/// whole by one rename; a whole one another build put there first is used.
fn put_in_place(
    dir: &Path,
    tmp: &Path,
    cache: &oxbuild_cache::Cache,
    fill: impl FnOnce(&Path) -> std::io::Result<String>,
) -> std::io::Result<()> {
    // A kit directory only ever appears whole (by one rename); it can
    // lose files only to `cache prune`, which runs while no build does.
    if whole(dir) {
        return Ok(());
    }
    let fresh = tempfile::Builder::new().prefix("kit-").tempdir_in(tmp)?;
    std::fs::create_dir_all(fresh.path().join("root"))?;
    let listed = fill(&fresh.path().join("root"))?;
    let bytes: u64 = listed.lines().filter_map(|l| l.split_once(' ')?.0.parse::<u64>().ok()).sum();
    std::fs::write(fresh.path().join("files"), listed)?;
    let kept = fresh.keep();
    for _ in 0..2 {
        if std::fs::rename(&kept, dir).is_ok() {
            cache.note_growth(bytes);
            return Ok(());
        }
        // Another build put a whole one there first: use it. A pruned one is
        // moved aside (atomically, so no user of it is hit) and replaced.
        if whole(dir) {
            let _ = std::fs::remove_dir_all(&kept);
            return Ok(());
        }
        let aside = tmp.join(format!("pruned-kit-{}-{}", std::process::id(), unique_suffix()));
        let _ = std::fs::rename(dir, &aside);
        let _ = std::fs::remove_dir_all(&aside);
    }
    Err(std::io::Error::other(format!("{} could not be put into place", dir.display())))
}

/// A suffix that differs between calls of one process.
fn unique_suffix() -> u64 {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// The dynamic loader in an unpacked kit, relative to its root.
fn loader(root: &Path) -> Option<String> {
    let known = [
        "lib64/ld-linux-x86-64.so.2",
        "lib/ld-linux-aarch64.so.1",
        "lib/ld-linux-armhf.so.3",
        "lib/ld-musl-x86_64.so.1",
        "lib/ld-musl-aarch64.so.1",
        "lib/ld-linux-x86-64.so.2",
    ];
    known.iter().find(|p| root.join(p).is_file()).map(|p| p.to_string())
}

/// How a kit's interpreter starts: its dynamic loader and library
/// directories, relative to the kit's root.
fn layout(root: &Path) -> Option<(String, Vec<String>)> {
    let loader = loader(root)?;
    let libraries = LIB_DIRS
        .iter()
        .flat_map(|d| {
            let dir = root.join(d);
            let mut dirs = vec![d.to_string()];
            if let Ok(entries) = std::fs::read_dir(&dir) {
                let mut subs: Vec<String> = entries
                    .filter_map(Result::ok)
                    .filter(|e| e.path().is_dir())
                    .map(|e| format!("{d}/{}", e.file_name().to_string_lossy()))
                    .collect();
                subs.sort();
                dirs.extend(subs);
            }
            dirs
        })
        .filter(|d| root.join(d).is_dir())
        .collect();
    Some((loader, libraries))
}

/// The base's own interpreter, from its kit (unpacked, or being unpacked
/// when its probe says how it starts), run in `scratch`.
async fn from_base(
    base: &Base,
    target: &Target,
    cache_repo: Option<&crate::cache_repo::CacheRepo>,
    scratch: &Path,
    services: &Services,
    purpose: Use,
) -> Result<Option<(Interpreter, Kit, (String, Vec<String>))>, Error> {
    let host = Platform::host();
    let runs_here = |p: &Platform| p.os == "linux" && p.architecture == host.architecture;
    // A multi-platform base lends the interpreter of its member this runner
    // can execute: bytecode does not depend on the CPU.
    let (image, whose, captured) = if runs_here(&base.platform) {
        (base.image.clone(), String::new(), base.kit.clone())
    } else {
        match base.location.open(&services.target(), &host).await {
            Ok(sibling) if sibling.image.digest() != base.image.digest() => {
                let config = sibling.image.config_json().map_err(|e| Error::new(Kind::Input, e))?;
                let platform = Platform {
                    os: config["os"].as_str().unwrap_or("").into(),
                    architecture: config["architecture"].as_str().unwrap_or("").into(),
                    variant: None,
                };
                if !runs_here(&platform) {
                    return Ok(None);
                }
                (sibling.image, format!(" of its {platform} image"), None)
            }
            _ => return Ok(None),
        }
    };
    let kit = kit(&image, target, cache_repo, services, purpose, captured).await?;
    let started = match &kit.probe {
        Some(p) => (p.loader.clone(), p.libraries.clone()),
        None => match layout(&kit.root) {
            Some(l) => l,
            None => return Ok(None),
        },
    };
    let origin = format!("the base's {}{whose}", target.interpreter);
    let interpreter = in_kit(&kit.root, &target.interpreter, &started, scratch, origin);
    Ok(Some((interpreter, kit, started)))
}

/// The interpreter at `path` in the base, run from the kit at `root`
/// through the base's loader with the kit's library directories (`started`).
fn in_kit(root: &Path, path: &str, started: &(String, Vec<String>), scratch: &Path, origin: String) -> Interpreter {
    let interpreter = path.trim_start_matches('/');
    let prefix = interpreter.rsplit_once("/bin/").map(|(p, _)| p).unwrap_or("usr");
    let library_path: Vec<String> = started.1.iter().map(|d| root.join(d).display().to_string()).collect();
    Interpreter {
        program: root.join(&started.0),
        args: vec!["--library-path".into(), library_path.join(":").into(), root.join(interpreter).into()],
        env: vec![
            ("PYTHONHOME".into(), root.join(prefix).into()),
            ("PYTHONHASHSEED".into(), "0".into()),
            ("LC_ALL".into(), "C.UTF-8".into()),
        ],
        scratch: scratch.to_path_buf(),
        origin,
    }
}

/// Which kit compiled the last build of a base (by its location and
/// platform), so that the next build starts that interpreter at once,
/// before the base is even read (see [`speculate`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Hint {
    kit_key: String,
    /// The interpreter's path in the base.
    interpreter: String,
    origin: String,
    probe: Probe,
}

fn hint_key(location: &crate::Location, platform: &Platform) -> String {
    format!("hint-{}", oxbuild_image::Digest::of(format!("{location} {platform}").as_bytes()).hex())
}

/// A compiler started on a guess: the kit that compiled the last build of
/// the same base. [`provision`] takes it when the base still has that kit,
/// and it is dropped (its drivers stopped) otherwise.
pub struct Speculative {
    compiler: Compiler,
    scratch: tempfile::TempDir,
}

/// A build's guess at its compiler: where its hint is kept, and the
/// compiler started from it, if there was one.
pub struct Speculation {
    key: String,
    /// The hint as read there, so that a build writes it only when it changed.
    known: Option<Hint>,
    started: Option<Speculative>,
}

/// Starts the interpreter that compiled the last build of the base at
/// `location` for `platform`, while the base is being read: on a rebuild
/// its start (a few milliseconds) is then over before there is anything to
/// compile. Nothing is started when no build of this base compiled here before.
pub fn speculate(location: &crate::Location, platform: &Platform, services: &Services) -> Speculation {
    let key = hint_key(location, platform);
    let known: Option<Hint> = services.cache.get(Bucket::Interpreters, &key);
    let started = known.as_ref().and_then(|hint| started_from_hint(hint, services));
    Speculation { key, known, started }
}

fn started_from_hint(hint: &Hint, services: &Services) -> Option<Speculative> {
    let root = kit_dir(&hint.kit_key, services).ok()?;
    if !root.join("files").is_file() {
        return None;
    }
    let tmp = services.cache.bucket(Bucket::Tmp).ok()?;
    let scratch = tempfile::Builder::new().prefix("python-").tempdir_in(&tmp).ok()?;
    let started = (hint.probe.loader.clone(), hint.probe.libraries.clone());
    let interpreter = in_kit(&root.join("root"), &hint.interpreter, &started, scratch.path(), hint.origin.clone());
    let compiler = Compiler::known(interpreter, hint.probe.version.clone(), hint.probe.cache_tag.clone());
    Some(Speculative { compiler, scratch })
}

/// A `python3.X` on the runner's PATH, if it is exactly the target's version.
fn from_path(target: &Target, scratch: &Path) -> Result<Option<Compiler>, String> {
    let name = format!("python3.{}", target.minor);
    let Some(found) =
        std::env::var_os("PATH").iter().flat_map(std::env::split_paths).map(|d| d.join(&name)).find(|p| p.is_file())
    else {
        return Err(format!("no {name} on PATH"));
    };
    let compiler = Compiler::new(Interpreter {
        program: found.clone(),
        args: Vec::new(),
        env: vec![("PYTHONHASHSEED".into(), "0".into()), ("LC_ALL".into(), "C.UTF-8".into())],
        scratch: scratch.to_path_buf(),
        origin: format!("{} on this runner", found.display()),
    })
    .map_err(|e| e.to_string())?;
    let version = compiler.version.split_whitespace().next().unwrap_or("").to_string();
    let known = target.full_version.matches('.').count() >= 2;
    if known && oxbuild_python::version::same(&version, &target.full_version) {
        Ok(Some(compiler))
    } else if !known {
        Err(format!("{} is {version}, and the base's exact Python version is unknown", found.display()))
    } else {
        Err(format!("{} is {version}, not the base's {}", found.display(), target.full_version))
    }
}

/// What a kit's interpreter said of itself and how it starts, kept with the
/// kit (in the cache and the cache repository) so that a rebuild, or a
/// fresh runner of a fleet, starts no process until there is something to
/// compile, and compiles while the kit is still being unpacked.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Probe {
    version: String,
    cache_tag: String,
    /// The dynamic loader, relative to the kit's root.
    loader: String,
    /// The library directories, relative to the kit's root.
    libraries: Vec<String>,
}

/// The compiler of a kit's `interpreter`: described by its probe (its
/// drivers started now when it is to `compile`), or run now to learn its
/// version (which is then kept with the kit, in the cache and, for a kit
/// made here, in the cache repository).
async fn compiler_of(
    interpreter: Interpreter,
    kit: Kit,
    started: (String, Vec<String>),
    cache_repo: Option<&crate::cache_repo::CacheRepo>,
    services: &Services,
    compile: bool,
) -> Result<Compiler, Error> {
    if let Some(p) = kit.probe {
        let Some(unpacking) = kit.unpacking else {
            return Ok(if compile {
                Compiler::known(interpreter, p.version, p.cache_tag)
            } else {
                Compiler::described(interpreter, p.version, p.cache_tag)
            });
        };
        let (compiler, ready) = Compiler::pending(interpreter, p.version, p.cache_tag);
        tokio::spawn(async move {
            let unpacked = match unpacking.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            let _ = tokio::task::spawn_blocking(move || ready.set(unpacked)).await;
        });
        return Ok(compiler);
    }
    let compiler = tokio::task::spawn_blocking(move || Compiler::new(interpreter))
        .await
        .map_err(task)?
        .map_err(|e| Error::new(Kind::Build, e))?;
    let probe = Probe {
        version: compiler.version.clone(),
        cache_tag: compiler.cache_tag.clone(),
        loader: started.0,
        libraries: started.1,
    };
    let _ = services.cache.put(Bucket::Interpreters, &kit.key, &KitRecord { probe: Some(probe.clone()) });
    if let (Some(repo), Some(blob)) = (cache_repo, kit.made) {
        let layer = oxbuild_image::Layer::file(
            blob.descriptor_in(oxbuild_image::Format::Oci).map_err(|e| Error::new(Kind::Output, e))?,
            blob.path.clone(),
        );
        let probe = serde_json::to_value(&probe).unwrap_or_default();
        crate::cache_repo::store_kit(&kit.key, layer, &blob.diff_id, probe, repo, services).await;
    }
    Ok(compiler)
}

/// True when `compiler` is the target's Python, as far as the target's
/// version is known (`3.11` alone matches any 3.11).
fn same_version(compiler: &Compiler, target: &Target) -> bool {
    let version = compiler.version.split_whitespace().next().unwrap_or("");
    if target.full_version.matches('.').count() >= 2 {
        oxbuild_python::version::same(version, &target.full_version)
    } else {
        version.starts_with(&format!("{}.", target.full_version))
    }
}

/// `compiler`, sharing its bytecode with the run's other platforms, if any.
fn shared(compiler: Compiler, services: &Services) -> Compiler {
    match &services.bytecode {
        Some(memo) => compiler.sharing(memo.clone()),
        None => compiler,
    }
}

/// The compiler for `target`, or why there is none.
pub async fn provision(
    base: &Base,
    target: &Target,
    cache_repo: Option<&crate::cache_repo::CacheRepo>,
    services: &Services,
    speculation: Option<Speculation>,
) -> Result<Result<Provisioned, String>, Error> {
    let (hint_at, known, speculative) = match speculation {
        Some(s) => (Some(s.key), s.known, s.started),
        None => (None, None, None),
    };
    let tmp = services.cache.bucket(Bucket::Tmp)?;
    let scratch = tempfile::Builder::new()
        .prefix("python-")
        .tempdir_in(&tmp)
        .map_err(|e| Error::new(Kind::Output, format!("creating a directory in {}: {e}", tmp.display())))?;
    let mut why = Vec::new();
    match from_base(base, target, cache_repo, scratch.path(), services, Use::Compile).await? {
        Some((interpreter, kit, started)) => {
            // The interpreter the last build of this base used, started
            // already: taken when it is this kit's, found whole in the cache.
            let hint = kit.probe.as_ref().map(|probe| Hint {
                kit_key: kit.key.clone(),
                interpreter: target.interpreter.clone(),
                origin: interpreter.origin.clone(),
                probe: probe.clone(),
            });
            let in_place = kit.unpacking.is_none() && kit.made.is_none();
            if let (Some(_), Some(hint), true) = (&speculative, &hint, in_place)
                && known.as_ref() == Some(hint)
            {
                let Speculative { compiler, scratch, .. } = speculative.expect("matched");
                return Ok(Ok(Provisioned { compiler: shared(compiler, services), _scratch: scratch }));
            }
            drop(speculative);
            let (kit_key, layout) = (kit.key.clone(), started.clone());
            match compiler_of(interpreter, kit, started, cache_repo, services, true).await {
                // Another member of a multi-platform base must be the same Python.
                Ok(compiler) if !same_version(&compiler, target) => why.push(format!(
                    "{} is Python {}, not the base's {}",
                    compiler.origin(),
                    compiler.version.split_whitespace().next().unwrap_or(""),
                    target.full_version
                )),
                Ok(compiler) => {
                    // What compiled this build, for the next one to start early.
                    let hint = Hint {
                        kit_key,
                        interpreter: target.interpreter.clone(),
                        origin: compiler.origin().to_string(),
                        probe: Probe {
                            version: compiler.version.clone(),
                            cache_tag: compiler.cache_tag.clone(),
                            loader: layout.0,
                            libraries: layout.1,
                        },
                    };
                    if let Some(at) = &hint_at
                        && known.as_ref() != Some(&hint)
                    {
                        let _ = services.cache.put(Bucket::Interpreters, at, &hint);
                    }
                    return Ok(Ok(Provisioned { compiler: shared(compiler, services), _scratch: scratch }));
                }
                Err(e) => why.push(e.to_string()),
            }
        }
        None => why.push(format!(
            "the base is {} and this runner {} cannot run its interpreter",
            base.platform,
            Platform::host()
        )),
    }
    match from_path(target, scratch.path()) {
        Ok(Some(compiler)) => Ok(Ok(Provisioned { compiler: shared(compiler, services), _scratch: scratch })),
        Ok(None) => Ok(Err(why.join("; "))),
        Err(e) => {
            why.push(e);
            Ok(Err(why.join("; ")))
        }
    }
}

/// The base's own interpreter, to build sdists and the project with: found
/// only when a build needs one, because it reads the base's layers.
pub struct BaseBuilder {
    base: Base,
    services: Services,
}

impl BaseBuilder {
    /// Finds the interpreter of `base` when asked.
    pub fn new(base: &Base, services: &Services) -> BaseBuilder {
        BaseBuilder { base: base.clone(), services: services.clone() }
    }

    async fn find(&self, target: &Target) -> Result<Option<oxbuild_python::sdist::Builder>, Error> {
        let tmp = self.services.cache.bucket(Bucket::Tmp)?;
        let scratch = tempfile::Builder::new()
            .prefix("python-")
            .tempdir_in(&tmp)
            .map_err(|e| Error::new(Kind::Output, format!("creating a directory in {}: {e}", tmp.display())))?;
        let found = from_base(&self.base, target, None, scratch.path(), &self.services, Use::Build).await?;
        let Some((interpreter, kit, started)) = found else { return Ok(None) };
        let compiler = match compiler_of(interpreter.clone(), kit, started, None, &self.services, false).await {
            Ok(c) if same_version(&c, target) => c,
            Ok(_) => return Ok(None),
            Err(e) => {
                self.services.events.warn(&format!("the base's interpreter cannot build sdists here: {e}"));
                return Ok(None);
            }
        };
        Ok(Some(oxbuild_python::sdist::Builder {
            program: interpreter.program,
            args: interpreter.args,
            env: interpreter.env,
            version: compiler.version.replace('\n', " "),
            origin: interpreter.origin,
            epoch: 0,
            constraints: Default::default(),
            cache: None,
            // Read from the base's own files, as the target is.
            tags: oxbuild_python::target::detect(&self.base.fs, &self.base.config)
                .ok()
                .map(|own| own.tags().into_iter().collect()),
        }))
    }
}

impl oxbuild_python::sdist::FindBuilder for BaseBuilder {
    fn find<'a>(
        &'a self,
        target: &'a Target,
    ) -> futures_util::future::BoxFuture<'a, Result<Option<oxbuild_python::sdist::Builder>, oxbuild_python::Error>>
    {
        use futures_util::FutureExt as _;
        async move {
            BaseBuilder::find(self, target)
                .await
                .map_err(|e| oxbuild_python::Error::Package(format!("the base's interpreter for building sdists: {e}")))
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compile_kit_takes_the_codecs_and_their_extension_modules_only() {
        let want = |path: &str| kit_want(path, "usr/bin/python3.11", 11, Use::Compile);
        let stdlib = "usr/lib/python3.11/";
        for taken in [
            "encodings/big5.py",
            "lib-dynload/_codecs_tw.cpython-311-x86_64-linux-gnu.so",
            "lib-dynload/_multibytecodec.cpython-311-aarch64-linux-gnu.so",
        ] {
            assert_eq!(want(&format!("{stdlib}{taken}")), Want::Content, "{taken}");
        }
        for skipped in ["os.py", "lib-dynload/_ssl.cpython-311-x86_64-linux-gnu.so", "json/__init__.py"] {
            assert_eq!(want(&format!("{stdlib}{skipped}")), Want::Skip, "{skipped}");
        }
        // A base scan asks the same of any CPython it finds.
        assert_eq!(
            any_kit_want("usr/local/lib/python3.12/lib-dynload/_codecs_jp.cpython-312-x86_64-linux-gnu.so"),
            Want::Content
        );
    }

    #[test]
    fn the_standard_library_zip_is_the_same_for_the_same_files_and_reads_back() {
        let (a, b) = ("usr/lib/python3.11/encodings/__init__.py".to_string(), "usr/lib/python3.11/os.py".to_string());
        let files = [(&a, KitFile::Bytes(b"import codecs\n")), (&b, KitFile::Bytes(b"sep = '/'\n"))];
        let zipped = stdlib_zip(&files, "usr/lib/python3.11/").unwrap();
        assert_eq!(zipped, stdlib_zip(&files, "usr/lib/python3.11/").unwrap());
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zipped)).unwrap();
        let names: Vec<String> = archive.file_names().map(|n| n.unwrap().into_owned()).collect();
        assert_eq!(names, ["encodings/__init__.py", "os.py"]);
        let mut text = String::new();
        std::io::Read::read_to_string(&mut archive.by_name("os.py").unwrap(), &mut text).unwrap();
        assert_eq!(text, "sep = '/'\n");
    }
}
