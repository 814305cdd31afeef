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

/// The cache record of a base's kit.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct KitRecord {
    digest: oxbuild_image::Digest,
}

/// Bumped when what a kit holds changes.
const KIT_FORMAT: &str = "interpreter-kit-v1";
/// Bumped when what a build kit holds changes.
const BUILD_KIT_FORMAT: &str = "interpreter-build-kit-v1";

/// What a kit is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// Compiling bytecode: the interpreter and the few modules that start it.
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
    let prefix = interpreter.rsplit_once("/bin/").map(|(p, _)| p.to_string()).unwrap_or_else(|| "usr".into());
    let stdlib = format!("{prefix}/lib/python3.{minor}/");
    let interpreter = interpreter.to_string();
    move |path: &str| {
        if path == interpreter {
            return Want::Content;
        }
        // Top-level links of a merged /usr (`lib -> usr/lib`): the loader's
        // and libraries' paths go through them.
        if !path.contains('/') {
            return Want::Exists;
        }
        if let Some(rest) = path.strip_prefix(&stdlib) {
            if purpose == Use::Build {
                let unused = STDLIB_UNUSED.iter().any(|p| rest.starts_with(p)) || rest.contains("__pycache__/");
                return if unused { Want::Skip } else { Want::Content };
            }
            // Enough of the standard library to start and to compile: its
            // top-level modules and the packages startup imports.
            let top = !rest.contains('/') && rest.ends_with(".py");
            let package = ["encodings/", "importlib/", "collections/"].iter().any(|p| rest.starts_with(p))
                && rest.ends_with(".py");
            return if top || package { Want::Content } else { Want::Skip };
        }
        // A build kit's extension modules load more (OpenSSL, libffi, ...):
        // every library is read, and `needed_closure` keeps what is loaded.
        if shared_library(path) && (purpose == Use::Build || runtime_library(path)) {
            Want::Content
        } else {
            Want::Skip
        }
    }
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

/// The kit layer of `base` in the store: from the cache, or read from the
/// base's layers now (fetching them if they are still in a registry).
async fn kit(
    image: &oxbuild_image::Image,
    target: &Target,
    cache_repo: Option<&crate::cache_repo::CacheRepo>,
    services: &Services,
    purpose: Use,
) -> Result<PathBuf, Error> {
    let format = if purpose == Use::Build { BUILD_KIT_FORMAT } else { KIT_FORMAT };
    let key = format!("{format}-{}-{}", oxbuild_build::scan_key(image).hex(), target.minor);
    // A build kit is large, and a fleet shares the wheels built with it.
    let cache_repo = cache_repo.filter(|_| purpose == Use::Compile);
    if let Some(record) = services.cache.get::<KitRecord>(Bucket::Interpreters, &key)
        && services.store.contains(&record.digest)
    {
        return Ok(services.store.path(&record.digest));
    }
    if let Some(repo) = cache_repo
        && let Some(path) = crate::cache_repo::kit(&key, repo, services).await
    {
        if let Some(digest) = path.file_name().and_then(|n| format!("sha256:{}", n.to_string_lossy()).parse().ok()) {
            let _ = services.cache.put(Bucket::Interpreters, &key, &KitRecord { digest });
        }
        return Ok(path);
    }
    services.events.step(if purpose == Use::Build {
        "  reading the base's interpreter and standard library to build sdists (once per base)"
    } else {
        "  reading the base's interpreter for bytecode (once per base)"
    });
    let image = oxbuild_registry::fetch_layers(&services.client, image, &services.store)
        .await
        .map_err(|e| Error::new(Kind::Registry, format!("fetching the base's layers for its interpreter: {e}")))?;
    let interpreter = target.interpreter.trim_start_matches('/').to_string();
    let (minor, store) = (target.minor, services.store.clone());
    let blob = tokio::task::spawn_blocking(move || -> Result<oxbuild_image::LayerBlob, Error> {
        let found = rootfs::scan(image.layers(), kit_wants(&interpreter, minor, purpose))
            .map_err(|e| Error::new(Kind::Build, format!("reading the base's interpreter: {e}")))?;
        // What the interpreter loads, and for a build kit what its extension
        // modules (`lib-dynload`) load.
        let prefix = interpreter.rsplit_once("/bin/").map(|(p, _)| p.to_string()).unwrap_or_else(|| "usr".into());
        let stdlib = format!("{prefix}/lib/python3.{minor}/");
        let mut roots = vec![interpreter.clone()];
        if purpose == Use::Build {
            roots.extend(found.keys().filter(|p| p.starts_with(&stdlib) && p.ends_with(".so")).cloned());
        }
        let keep = needed_closure(&found, &roots);
        let mut layer = LayerBuilder::new(0, Owner::ROOT);
        for (path, node) in &found {
            if !keep(path) {
                continue;
            }
            match node {
                // Top-level directory links stay links, made relative.
                Node::Symlink(target) if !path.contains('/') => {
                    layer.symlink(path, target.trim_start_matches('/'), Owner::ROOT);
                }
                // Other links are stored as the files they lead to, so that
                // absolute targets (`/lib/…`) resolve inside the kit.
                _ => {
                    if let Some(bytes) = rootfs::content(&found, path).map(<[u8]>::to_vec) {
                        layer.bytes(path, bytes, Owner::ROOT, 0o755);
                    }
                }
            }
        }
        layer.write(&store, LayerCompression::Gzip).map_err(|e| Error::new(Kind::Output, e))
    })
    .await
    .map_err(task)??;
    let _ = services.cache.put(Bucket::Interpreters, &key, &KitRecord { digest: blob.digest.clone() });
    if let Some(repo) = cache_repo {
        let layer = oxbuild_image::Layer::file(
            blob.descriptor_in(oxbuild_image::Format::Oci).map_err(|e| Error::new(Kind::Output, e))?,
            blob.path.clone(),
        );
        crate::cache_repo::store_kit(&key, layer, &blob.diff_id, repo, services).await;
    }
    Ok(blob.path)
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

/// The kit at `kit` (a blob in the store) unpacked in the `interpreters`
/// bucket, once: a rebuild reuses it after checking that every file it
/// listed is still there (pruning the cache may have removed some).
async fn unpacked(kit: &Path, services: &Services) -> Result<PathBuf, Error> {
    let name = kit.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let dir = services.cache.bucket(Bucket::Interpreters)?.join(&name);
    let (kit, tmp) = (kit.to_path_buf(), services.cache.bucket(Bucket::Tmp)?);
    tokio::task::spawn_blocking(move || -> std::io::Result<PathBuf> {
        // A kit directory only ever appears whole (by one rename); it can
        // lose files only to `cache prune`, which runs while no build does.
        let whole = |dir: &Path| {
            std::fs::read_to_string(dir.join("files")).is_ok_and(|text| {
                text.lines().all(|l| {
                    let (size, path) = l.split_once(' ').unwrap_or(("", l));
                    std::fs::symlink_metadata(dir.join("root").join(path))
                        .is_ok_and(|m| m.is_symlink() || m.is_dir() || size.parse() == Ok(m.len()))
                })
            })
        };
        if whole(&dir) {
            return Ok(dir.join("root"));
        }
        let fresh = tempfile::Builder::new().prefix("kit-").tempdir_in(&tmp)?;
        std::fs::create_dir_all(fresh.path().join("root"))?;
        let mut listed = String::new();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(std::fs::File::open(&kit)?));
        // Unpacked now, for the cache's least-recently-used order (the kit's
        // own times are all 1970).
        archive.set_preserve_mtime(false);
        for entry in archive.entries()? {
            let mut entry = entry?;
            let path = entry.path()?.to_string_lossy().trim_end_matches('/').to_string();
            listed.push_str(&format!("{} {path}\n", entry.header().size()?));
            entry.unpack_in(fresh.path().join("root"))?;
        }
        std::fs::write(fresh.path().join("files"), listed)?;
        let kept = fresh.keep();
        for _ in 0..2 {
            if std::fs::rename(&kept, &dir).is_ok() {
                return Ok(dir.join("root"));
            }
            // Another build put a whole one there first: use it. A pruned
            // one is moved aside (atomically, so no user of it is hit) and
            // replaced.
            if whole(&dir) {
                let _ = std::fs::remove_dir_all(&kept);
                return Ok(dir.join("root"));
            }
            let aside = tmp.join(format!("pruned-kit-{}-{}", std::process::id(), unique_suffix()));
            let _ = std::fs::rename(&dir, &aside);
            let _ = std::fs::remove_dir_all(&aside);
        }
        Err(std::io::Error::other(format!("{} could not be put into place", dir.display())))
    })
    .await
    .map_err(task)?
    .map_err(|e| Error::new(Kind::Output, format!("unpacking the base's interpreter: {}", oxbuild_image::causes(&e))))
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

/// The base's own interpreter, from its kit unpacked in `scratch`.
async fn from_base(
    base: &Base,
    target: &Target,
    cache_repo: Option<&crate::cache_repo::CacheRepo>,
    scratch: &Path,
    services: &Services,
    purpose: Use,
) -> Result<Option<(Interpreter, String)>, Error> {
    let host = Platform::host();
    let runs_here = |p: &Platform| p.os == "linux" && p.architecture == host.architecture;
    // A multi-platform base lends the interpreter of its member this runner
    // can execute: bytecode does not depend on the CPU.
    let (image, whose) = if runs_here(&base.platform) {
        (base.image.clone(), String::new())
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
                (sibling.image, format!(" of its {platform} image"))
            }
            _ => return Ok(None),
        }
    };
    let kit = kit(&image, target, cache_repo, services, purpose).await?;
    let kit_id = kit.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let root = unpacked(&kit, services).await?;
    let Some(loader) = loader(&root) else { return Ok(None) };
    let interpreter = target.interpreter.trim_start_matches('/');
    let prefix = interpreter.rsplit_once("/bin/").map(|(p, _)| p).unwrap_or("usr");
    let library_path: Vec<String> = LIB_DIRS
        .iter()
        .flat_map(|d| {
            let dir = root.join(d);
            let mut dirs = vec![dir.clone()];
            if let Ok(entries) = std::fs::read_dir(&dir) {
                let mut subs: Vec<PathBuf> =
                    entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_dir()).collect();
                subs.sort();
                dirs.extend(subs);
            }
            dirs
        })
        .filter(|d| d.is_dir())
        .map(|d| d.display().to_string())
        .collect();
    let interpreter = Interpreter {
        program: root.join(&loader),
        args: vec!["--library-path".into(), library_path.join(":").into(), root.join(interpreter).into()],
        env: vec![
            ("PYTHONHOME".into(), root.join(prefix).into()),
            ("PYTHONHASHSEED".into(), "0".into()),
            ("LC_ALL".into(), "C.UTF-8".into()),
        ],
        scratch: scratch.to_path_buf(),
        origin: format!("the base's {}{whose}", target.interpreter),
    };
    Ok(Some((interpreter, kit_id)))
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

/// What a kit's interpreter said of itself, kept so that a rebuild starts
/// no process until there is something to compile.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Probe {
    version: String,
    cache_tag: String,
}

/// The compiler of a kit's `interpreter`, asked its version once per kit.
fn probed(interpreter: Interpreter, kit: &str, services: &Services) -> Result<Compiler, oxbuild_python::Error> {
    let key = format!("probe-{kit}");
    if let Some(p) = services.cache.get::<Probe>(Bucket::Interpreters, &key) {
        return Ok(Compiler::known(interpreter, p.version, p.cache_tag));
    }
    let compiler = Compiler::new(interpreter)?;
    let probe = Probe { version: compiler.version.clone(), cache_tag: compiler.cache_tag.clone() };
    let _ = services.cache.put(Bucket::Interpreters, &key, &probe);
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

/// The compiler for `target`, or why there is none.
pub async fn provision(
    base: &Base,
    target: &Target,
    cache_repo: Option<&crate::cache_repo::CacheRepo>,
    services: &Services,
) -> Result<Result<Provisioned, String>, Error> {
    let tmp = services.cache.bucket(Bucket::Tmp)?;
    let scratch = tempfile::Builder::new()
        .prefix("python-")
        .tempdir_in(&tmp)
        .map_err(|e| Error::new(Kind::Output, format!("creating a directory in {}: {e}", tmp.display())))?;
    let mut why = Vec::new();
    match from_base(base, target, cache_repo, scratch.path(), services, Use::Compile).await? {
        Some((interpreter, kit)) => match probed(interpreter, &kit, services) {
            // Another member of a multi-platform base must be the same Python.
            Ok(compiler) if !same_version(&compiler, target) => why.push(format!(
                "{} is Python {}, not the base's {}",
                compiler.origin(),
                compiler.version.split_whitespace().next().unwrap_or(""),
                target.full_version
            )),
            Ok(compiler) => return Ok(Ok(Provisioned { compiler, _scratch: scratch })),
            Err(e) => why.push(e.to_string()),
        },
        None => why.push(format!(
            "the base is {} and this runner {} cannot run its interpreter",
            base.platform,
            Platform::host()
        )),
    }
    match from_path(target, scratch.path()) {
        Ok(Some(compiler)) => Ok(Ok(Provisioned { compiler, _scratch: scratch })),
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
        let Some((interpreter, kit)) = found else { return Ok(None) };
        let compiler = match probed(interpreter.clone(), &kit, &self.services) {
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
