//! oxbuild's build engine, usable without the `oxbuild` binary.
//!
//! [`assemble`] turns a [`Request`] (an app directory, its config, a base)
//! into the production image and, when asked, its test variant, using
//! [`Services`] that every command shares: one registry client (over the one
//! HTTP client), one [`Cache`], and an [`Events`] sink for progress.
//!
//! The flow, one module each:
//! 1. [`base`]: open the base from any [`Location`], read what the build needs
//!    of its root filesystem (a scan), cached locally and in the cache repository;
//! 2. [`provider`]: each language's dependency layer, behind
//!    [`DependencyProvider`]; [`python`] is the first;
//! 3. `oxbuild_build`: the user layer, the app layer and the runtime config;
//! 4. [`cache_repo`]: the cache repository's format, shared by runners.
//!
//! [`load`] puts a built image into a container runtime for assess and health.
//!
//! ```no_run
//! # async fn demo() -> Result<(), oxbuild_engine::Error> {
//! use oxbuild_engine::{Request, Services, assemble};
//! let services = Services::new(
//!     oxbuild_registry::Client::new(Default::default()).unwrap(),
//!     oxbuild_cache::Cache::open("/tmp/oxbuild-cache")?,
//!     std::sync::Arc::new(oxbuild_engine::Quiet),
//! )?;
//! let request = Request::new("examples/app");
//! let built = assemble(&request, &services).await?;
//! oxbuild_registry::push(&services.client, &built.prod.image, &"127.0.0.1:5000/app:v1".parse().unwrap(), &["v1".into()], &built.mount_from).await.unwrap();
//! # Ok(()) }
//! ```

mod app;
pub mod attest;
pub mod base;
pub mod built;
pub mod cache_repo;
pub mod check;
mod error;
pub mod interpreter;
pub mod load;
pub mod lock;
pub mod node;
pub mod platforms;
pub mod provider;
pub mod python;
pub mod verify;

use std::path::PathBuf;
use std::sync::Arc;

use oxbuild_cache::Cache;
use oxbuild_config::Config;
use oxbuild_image::{BlobStore, Platform};
use oxbuild_registry::{Client, MountSource, Reference};

pub use error::{Error, Kind};
pub use oxbuild_location::{self as location, Location};
pub use provider::{DependencyProvider, Provided};

/// Where progress goes: the binary prints it, a library user may log it.
pub trait Events: Send + Sync {
    /// A step of the work, shown unless quiet.
    fn step(&self, message: &str);
    /// A detail, shown when verbose.
    fn detail(&self, message: &str);
    /// A warning, always shown.
    fn warn(&self, message: &str);
}

/// Events that go nowhere.
#[derive(Debug, Clone, Copy)]
pub struct Quiet;

impl Events for Quiet {
    fn step(&self, _: &str) {}
    fn detail(&self, _: &str) {}
    fn warn(&self, _: &str) {}
}

/// What every build shares: the clients, the cache, and where progress goes.
#[derive(Clone)]
pub struct Services {
    /// The registry client (it carries the shared HTTP client).
    pub client: Client,
    /// The cache.
    pub cache: Cache,
    /// The cache's blob store.
    pub store: BlobStore,
    /// Progress.
    pub events: Arc<dyn Events>,
    /// Bytecode compiled in this run, shared by the platforms of a
    /// multi-platform build (see [`platforms::assemble_all`]).
    pub bytecode: Option<Arc<oxbuild_python::bytecode::Memo>>,
    /// One lock per interpreter kit, so that the builds of one run make
    /// each kit once (see `interpreter`).
    kit_locks: Arc<std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    /// Kits asked of the cache repository ahead of need, by cache key.
    prefetched_kits: Arc<std::sync::Mutex<std::collections::HashMap<String, Option<interpreter::Prefetched>>>>,
    /// Work that goes on while the command does (entries being stored in
    /// the cache repository), waited for by [`Services::settle`].
    background: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Services {
    /// Services over `client` and `cache`.
    pub fn new(client: Client, cache: Cache, events: Arc<dyn Events>) -> Result<Services, Error> {
        let store = cache.blobs()?;
        Ok(Services {
            client,
            cache,
            store,
            events,
            bytecode: None,
            kit_locks: Default::default(),
            prefetched_kits: Default::default(),
            background: Default::default(),
        })
    }

    /// Runs `task` while the command goes on (a push, say); [`Services::settle`] waits for it.
    pub(crate) fn in_background(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        let handle = tokio::spawn(task);
        self.background.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(handle);
    }

    /// Runs a command's `body`, then, whether it succeeded or failed, closes
    /// the upload sessions opened ahead that no blob used and waits for the
    /// work begun in the background ([`Services::settle`]): a failed stage
    /// must not drop an app layer on its way to the cache repository, which
    /// the next runner would otherwise build again.
    pub async fn finishing<T>(&self, body: impl std::future::Future<Output = T>) -> T {
        let outcome = body.await;
        self.client.close_uploads(None).await;
        self.settle().await;
        outcome
    }

    /// Waits for the work started in the background (entries stored in the
    /// cache repository), so that a command ends only once it is done. A
    /// command that never calls it only loses those entries.
    pub async fn settle(&self) {
        loop {
            let tasks = std::mem::take(&mut *self.background.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
            if tasks.is_empty() {
                return;
            }
            for task in tasks {
                let _ = task.await;
            }
        }
    }

    /// What asking the cache repository for the kit with cache key `key`
    /// found, when it was asked ahead of need.
    pub(crate) fn prefetched_kit(&self, key: &str) -> Option<Option<interpreter::Prefetched>> {
        self.prefetched_kits.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(key)
    }

    /// Keeps what asking the cache repository for a kit found.
    pub(crate) fn keep_prefetched_kit(&self, key: &str, found: Option<interpreter::Prefetched>) {
        self.prefetched_kits.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(key.to_string(), found);
    }

    /// The lock of the interpreter kit with cache key `key`.
    pub(crate) fn kit_lock(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.kit_locks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        locks.entry(key.to_string()).or_default().clone()
    }

    /// The shared HTTP client.
    pub fn http(&self) -> &oxbuild_http::Client {
        self.client.http()
    }

    /// Where reading and writing images goes through.
    pub fn target(&self) -> oxbuild_location::Target<'_> {
        oxbuild_location::Target { client: &self.client, store: &self.store }
    }
}

/// What to build.
#[derive(Debug, Clone)]
pub struct Request {
    /// The app directory.
    pub dir: PathBuf,
    /// Its config; read from the directory when None.
    pub config: Option<Config>,
    /// A base overriding `[image] base`.
    pub base: Option<String>,
    /// The platform to take from a multi-platform base; the machine's own when None.
    pub platform: Option<Platform>,
    /// Also build the test variant.
    pub test_variant: bool,
    /// A registry repository that caches dependency layers and base scans
    /// between runners; `[cache] repository` when None.
    pub cache_repo: Option<cache_repo::CacheRepo>,
    /// Every timestamp in the image (`SOURCE_DATE_EPOCH`).
    pub epoch: u64,
    /// The repository the image will be pushed to, if any: a dependency
    /// layer written here is uploaded there while it is written, so that
    /// the push finds it there already.
    pub stream_to: Option<Reference>,
    /// The caller runs the image's healthcheck (`oxbuild health`): an image
    /// that would have none, from `[healthcheck]` or its base, is refused
    /// once the base is read, before anything is built.
    pub healthcheck_required: bool,
}

/// What to say of an image with no healthcheck to run.
pub const NO_HEALTHCHECK: &str = "the image has no healthcheck to run: add a [healthcheck] section to oxbuild.toml (`http = \"http://127.0.0.1:8000/health\"`, or `cmd = [...]`), or build on a base that has a HEALTHCHECK";

impl Request {
    /// This request with its config loaded (when it had none) and its cache
    /// repository and key found (see [`cache_repo::CacheRepo::resolve`]).
    pub(crate) fn resolved(&self) -> Result<(Request, Config), Error> {
        let cfg = match &self.config {
            Some(c) => c.clone(),
            None => Config::load(&self.dir)?,
        };
        let mut request = self.clone();
        request.cache_repo = cache_repo::CacheRepo::resolve(self.cache_repo.as_ref(), &cfg, &self.dir)?;
        Ok((request, cfg))
    }

    /// A production build of the app in `dir`, as its config says.
    pub fn new(dir: impl Into<PathBuf>) -> Request {
        Request {
            dir: dir.into(),
            config: None,
            base: None,
            platform: None,
            test_variant: false,
            cache_repo: None,
            epoch: 0,
            stream_to: None,
            healthcheck_required: false,
        }
    }
}

/// What [`assemble`] made.
#[derive(Debug, Clone)]
pub struct Assembled {
    /// The app directory.
    pub dir: PathBuf,
    /// Its config.
    pub cfg: Config,
    /// The production image.
    pub prod: oxbuild_build::Built,
    /// The test variant, when asked for.
    pub test: Option<oxbuild_build::Built>,
    /// Where the base came from.
    pub base: Location,
    /// For a registry base: its reference pinned to the digest.
    pub resolved_base: Option<Reference>,
    /// Repositories a push to the same registry can mount the base's layers from.
    pub mount_from: Vec<MountSource>,
    /// The platform built.
    pub platform: Platform,
    /// What each dependency provider reports, by language (`{"python": {...}}`).
    pub dependencies: serde_json::Value,
    /// Which interpreter compiled the bytecode, and how many sources.
    pub bytecode: serde_json::Value,
    /// The base's manifest digest (for its platform).
    pub base_digest: oxbuild_image::Digest,
    /// The base's OS and packages, read from its layers.
    pub os: oxbuild_sbom::Os,
    /// The packages the providers installed in the production image.
    pub packages: Vec<oxbuild_sbom::Package>,
    /// `SOURCE_DATE_EPOCH` of the build.
    pub epoch: u64,
}

/// Every platform of the base that a build can target, and why each other
/// one cannot be: `--platform all`. A base that is one image has its own
/// platform only. Each platform's base is scanned (and the scan cached) to
/// find its Python.
pub async fn base_platforms(
    request: &Request,
    services: &Services,
) -> Result<Vec<(Platform, Result<(), String>)>, Error> {
    let (request, cfg) = &request.resolved()?;
    let location = base_location(request, cfg)?;
    let platforms: Vec<Platform> = match location.open_any(&services.target(), None).await? {
        location::Content::Index(opened) => opened
            .index
            .children()
            .iter()
            .filter_map(|(d, _)| d.platform.clone())
            .filter(|p| p.os != "unknown")
            .collect(),
        location::Content::Image(opened) => {
            let config = opened.image.config_json().map_err(|e| Error::new(Kind::Input, e))?;
            vec![Platform {
                os: config["os"].as_str().unwrap_or("linux").to_string(),
                architecture: config["architecture"].as_str().unwrap_or("amd64").to_string(),
                variant: config["variant"].as_str().map(str::to_string),
            }]
        }
    };
    let mut out = Vec::new();
    for p in platforms {
        let mut one = request.clone();
        one.platform = Some(p.clone());
        let base = base::open(&location, &one, services, false).await?;
        let usable = oxbuild_python::target::detect(&base.fs, &base.config).map(|_| ()).map_err(|e| e.to_string());
        out.push((p, usable));
    }
    Ok(out)
}

/// Where the base comes from: `--base`, else `[image] base`.
pub(crate) fn base_location(request: &Request, cfg: &Config) -> Result<Location, Error> {
    match (&request.base, &cfg.image.base) {
        (Some(b), _) => Ok(Location::parse(b, "--base")?),
        (None, Some(b)) => Ok(Location::parse(b, "[image] base")?),
        (None, None) => Err(Error::new(
            Kind::Config,
            format!(
                "{}: no base image: set [image] base in oxbuild.toml (or OXBUILD_IMAGE_BASE), or pass --base",
                request.dir.display()
            ),
        )),
    }
}

/// The build: read the base, make the dependency layer(s), build the
/// production image and, when asked, its test variant.
pub async fn assemble(request: &Request, services: &Services) -> Result<Assembled, Error> {
    let (request, cfg) = &request.resolved()?;
    for o in &cfg.overridden {
        services.events.step(o);
    }
    let (dir, mut cfg) = (request.dir.as_path(), cfg.clone());
    // A wrong include path or a command that cannot start fails before
    // anything is fetched. A Node project with no command in oxbuild.toml
    // starts as its package.json says.
    let app_dir = cfg.app.dir(dir);
    if !app_dir.is_dir() {
        return Err(Error::new(
            Kind::Config,
            format!(
                "[app] root names {}, which is no folder of the project; name the folder whose contents go into the workdir",
                app_dir.display()
            ),
        ));
    }
    if let Some(include) = &cfg.app.include {
        oxbuild_build::context::check_include(&app_dir, include)?;
    }
    if cfg.image.entrypoint.is_none()
        && cfg.image.cmd.is_none()
        && let Some(ep) = node::project_command(dir, &cfg)
    {
        services.events.step(&format!("entrypoint from package.json: {}", ep.join(" ")));
        cfg.image.entrypoint = Some(ep);
    }
    node::check_command(&app_dir, &cfg)?;
    let base_location = base_location(request, &cfg)?;
    let compiles = cfg.python.compile_bytecode != oxbuild_config::Bytecode::Never;
    // The interpreter that compiled the last build of this base starts
    // while the base is read.
    let speculating = compiles.then(|| {
        let (location, services) = (base_location.clone(), services.clone());
        let platform = request.platform.clone().unwrap_or_else(oxbuild_image::Platform::host);
        tokio::task::spawn_blocking(move || interpreter::speculate(&location, &platform, &services))
    });
    let base = base::open(&base_location, request, services, compiles).await?;
    let base_has_one = base.config["config"]["Healthcheck"]["Test"]
        .as_array()
        .and_then(|t| t.first())
        .is_some_and(|first| first.as_str() != Some("NONE"));
    if request.healthcheck_required && cfg.healthcheck.is_none() && !base_has_one {
        return Err(Error::new(Kind::Config, NO_HEALTHCHECK));
    }
    let speculation = match speculating {
        Some(task) => Some(task.await.map_err(error::task)?),
        None => None,
    };
    let (provisioned, mut bytecode) =
        python::bytecode(&cfg, &base, request.cache_repo.as_ref(), services, speculation).await?;
    let compiler = provisioned.as_ref().map(|p| p.compiler.clone());

    let events = &services.events;
    let mut prod_layers = Vec::new();
    let mut test_layers = Vec::new();
    let mut dependencies = serde_json::Map::new();
    let mut packages = Vec::new();
    for provider in provider::all() {
        let cx = provider::Context { request, cfg: &cfg, base: &base, services, bytecode: compiler.as_ref() };
        if let Some(provided) = provider.provide(&cx).await? {
            prod_layers.extend(provided.production);
            test_layers.extend(provided.test);
            dependencies.insert(provider.language().to_string(), provided.report);
            packages.extend(provided.packages);
        }
    }

    events.step(&format!("building {}", dir.display()));
    let base_name = base.opened.resolved.as_ref().map(|r| Reference { digest: None, ..r.clone() }.to_string());
    let epoch = request.epoch;
    let app_layers = Arc::new(app::AppCache::new(services, request.cache_repo.as_ref()));
    let prod = {
        let (dir, cfg, image, fs, store, compiler, app_layers) = (
            dir.to_path_buf(),
            cfg.clone(),
            base.image.clone(),
            base.fs.clone(),
            services.store.clone(),
            compiler.clone(),
            app_layers.clone(),
        );
        tokio::task::spawn_blocking(move || {
            let base = oxbuild_build::Base {
                image: &image,
                name: &base_name,
                fs: &fs,
                app: oxbuild_build::AppWriting { bytecode: compiler.as_ref(), reuse: Some(app_layers.as_ref()) },
            };
            oxbuild_build::build(&dir, &cfg, &base, &prod_layers, &store, epoch)
        })
        .await
        .map_err(error::task)??
    };
    for w in &prod.warnings {
        events.warn(w);
    }
    for layer in &prod.added {
        events.detail(&format!("layer {} ({} bytes)", layer.digest, layer.size));
    }

    let test = if request.test_variant {
        events.step("building the test variant");
        let (prod, dir, cfg, store, compiler, app_layers) = (
            prod.clone(),
            dir.to_path_buf(),
            cfg.clone(),
            services.store.clone(),
            compiler.clone(),
            app_layers.clone(),
        );
        let built = tokio::task::spawn_blocking(move || {
            let writing = oxbuild_build::AppWriting { bytecode: compiler.as_ref(), reuse: Some(app_layers.as_ref()) };
            oxbuild_build::test_variant(&prod, &dir, &cfg, &test_layers, &store, epoch, writing)
        })
        .await
        .map_err(error::task)??;
        Some(built)
    } else {
        None
    };

    if compiler.is_some() {
        bytecode["app"] = serde_json::json!(prod.compiled);
        bytecode["dependencies"] = serde_json::json!(dependencies.get("python").map(|p| p["compiled"].clone()));
    }
    bytecode["app_layer"] = serde_json::json!(prod.reused.as_deref().unwrap_or("built"));
    match &prod.reused {
        Some(from) => events.step(&format!(
            "  app layer unchanged, from the {from}{}",
            if compiler.is_some() { ": nothing compiled" } else { "" }
        )),
        None if compiler.is_some() => events.step(&format!("  compiled {} app sources to bytecode", prod.compiled)),
        None => {}
    }
    drop(provisioned);
    let mount_from = base.opened.resolved.iter().map(|r| MountSource::of(r, &base.image)).collect();
    let os = oxbuild_sbom::os::read(&base.fs);
    Ok(Assembled {
        base_digest: base.image.digest(),
        os,
        packages,
        epoch,
        dir: dir.to_path_buf(),
        cfg,
        prod,
        test,
        base: base_location,
        resolved_base: base.opened.resolved,
        mount_from,
        platform: base.platform,
        dependencies: serde_json::Value::Object(dependencies),
        bytecode,
    })
}

/// Where blobs were seen, kept in the cache's `locations` bucket, so that a
/// push to one repository mounts what another repository of the same
/// registry already holds (`staging/app`, then `prod/app`).
#[derive(Debug, Clone)]
pub struct CacheLocations(pub Cache);

impl oxbuild_registry::BlobLocations for CacheLocations {
    fn repositories(&self, digest: &oxbuild_image::Digest) -> Vec<String> {
        self.0.locations(digest)
    }
    fn remember(&self, digest: &oxbuild_image::Digest, repository: &str) {
        self.0.add_location(digest, repository);
    }
}
