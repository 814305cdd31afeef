//! The Python dependency provider: a virtual-environment layer from the
//! project's lock (requirements, pylock.toml or uv.lock), found in the local
//! cache, else in the cache repository, else installed from wheels here.

use std::path::Path;

use futures_util::FutureExt as _;
use oxbuild_build::ExtraLayer;
use oxbuild_cache::Bucket;
use oxbuild_image::{Format, Layer, LayerBlob};
use oxbuild_python::lockfile::Selection;
use oxbuild_python::{Pin, Planned, Settings, Target};
use serde_json::json;

use crate::provider::{Context, DependencyProvider, Provided};
use crate::{Error, Kind, cache_repo};

/// See the module docs.
#[derive(Debug, Clone, Copy)]
pub struct Python;

/// A finished dependency layer, as the local cache keeps it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct CachedLayer {
    digest: oxbuild_image::Digest,
    size: u64,
    diff_id: oxbuild_image::Digest,
    wheels: Vec<String>,
    #[serde(default)]
    yanked: Vec<String>,
    /// Sources compiled to bytecode in it.
    #[serde(default)]
    compiled: usize,
    /// The packages in it, for the SBOM; an entry from before SBOMs has
    /// none and is rebuilt.
    #[serde(default)]
    packages: Option<Vec<oxbuild_sbom::Package>>,
    /// The programs it puts on PATH; an entry from before they were kept
    /// has none, and the build then does not check the command's program.
    #[serde(default)]
    programs: Option<Vec<String>>,
}

/// Where a dependency layer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Built,
    Local,
    Remote,
}

impl Source {
    fn describe(self) -> &'static str {
        match self {
            Source::Built => "built",
            Source::Local => "local cache",
            Source::Remote => "cache repository",
        }
    }
}

/// A dependency layer ready for the image.
struct DepLayer {
    layer: Layer,
    diff_id: oxbuild_image::Digest,
    key: String,
    wheels: Vec<String>,
    /// Wheels built from sdists in this build, whether each was reused, and how it was built.
    built: Vec<(String, bool, String)>,
    downloaded: usize,
    pins: Vec<Pin>,
    source: Source,
    yanked: Vec<String>,
    compiled: usize,
    packages: Vec<oxbuild_sbom::Package>,
    programs: Option<Vec<String>>,
}

/// The SBOM's records of what `prepared` installed into `layer`.
fn packages(installed: &[oxbuild_python::Installed], layer: &oxbuild_image::Digest) -> Vec<oxbuild_sbom::Package> {
    installed
        .iter()
        .map(|i| oxbuild_sbom::Package {
            ecosystem: "pypi".into(),
            name: i.name.clone(),
            version: i.version.clone(),
            file: Some(i.filename.clone()),
            sha256: Some(i.sha256.clone()),
            license: oxbuild_sbom::license::from_metadata(
                i.metadata.license_expression.as_deref(),
                i.metadata.license.as_deref(),
                &i.metadata.classifiers,
            ),
            source: i.source.clone(),
            url: i.url.clone(),
            layer: Some(layer.clone()),
            dependencies: i.dependencies.clone(),
        })
        .collect()
}

/// `blob` as a layer with its OCI media type (gzip or zstd, both of which OCI
/// has); the build turns it into the image's format.
fn oci_layer(blob: &LayerBlob) -> Layer {
    Layer::file(blob.descriptor_in(Format::Oci).expect("OCI has every compression"), blob.path.clone())
}

impl DependencyProvider for Python {
    fn language(&self) -> &'static str {
        "python"
    }

    fn provide<'a>(
        &'a self,
        cx: &'a Context<'a>,
    ) -> futures_util::future::BoxFuture<'a, Result<Option<Provided>, Error>> {
        provide(cx).boxed()
    }
}

/// An error for a package project whose pyproject.toml declares
/// dependencies that no lock holds: the build would install the project
/// alone and find each of them missing. Only dependencies that hold
/// everywhere count (no environment marker, not optional, no Python or
/// platform condition): the others are left to that check, which reads
/// them for the target, as are those only a build can tell (a setup.py's).
fn unlocked_project(dir: &Path, doc: &toml::Table) -> Result<(), Error> {
    let declared: Vec<String> = match oxbuild_python::input::project_dependencies(doc) {
        Some(deps) => deps.into_iter().filter(|d| !d.contains(';')).collect(),
        None => doc
            .get("tool")
            .and_then(|t| t.get("poetry"))
            .and_then(|p| p.get("dependencies"))
            .and_then(|d| d.as_table())
            .map(|t| {
                let conditional = |spec: &toml::Value| {
                    spec.is_array()
                        || spec.as_table().is_some_and(|s| {
                            s.get("optional").and_then(|o| o.as_bool()) == Some(true)
                                || ["markers", "python", "platform"].iter().any(|k| s.contains_key(*k))
                        })
                };
                t.iter()
                    .filter(|(k, v)| !k.eq_ignore_ascii_case("python") && !conditional(v))
                    .map(|(k, _)| k.clone())
                    .collect()
            })
            .unwrap_or_default(),
    };
    if declared.is_empty() {
        return Ok(());
    }
    let shown: Vec<&str> = declared.iter().take(3).map(String::as_str).collect();
    let more = declared.len().saturating_sub(3);
    Err(Error::new(
        Kind::Config,
        format!(
            "{}: the project declares {} dependenc{} ({}{}) and has no lock to install them from: run `oxbuild lock`, which resolves them for the base's Python, writes pylock.toml and names it in [python] lock, then build again",
            dir.join("pyproject.toml").display(),
            declared.len(),
            if declared.len() == 1 { "y" } else { "ies" },
            shown.join(", "),
            if more > 0 { format!(" and {more} more") } else { String::new() }
        ),
    ))
}

async fn provide(cx: &Context<'_>) -> Result<Option<Provided>, Error> {
    let (cfg, dir) = (cx.cfg, cx.request.dir.as_path());
    let requirements = cfg.python.requirements_path(dir).map_err(|e| Error::new(Kind::Config, e))?;
    let beside = cfg.python.locks_beside(dir);
    if !beside.is_empty() {
        cx.services.events.warn(&format!(
            "{} beside the lock in use ({}) {} not read; if it is the real lock, name it in [python] instead",
            beside.join(", "),
            cfg.python.requirements.as_ref().or(cfg.python.lock.as_ref()).map(String::as_str).unwrap_or("?"),
            if beside.len() == 1 { "is" } else { "are" }
        ));
    }
    let test_requirements =
        cfg.python.test_requirements.as_ref().map(|t| dir.join(t)).filter(|_| cx.request.test_variant);
    let project = cfg.python.install_project && oxbuild_python::sdist::is_package(dir);
    if cfg.python.install_project && !project && dir.join("setup.py").is_file() && !dir.join("pyproject.toml").is_file()
    {
        // pip would build it with setuptools' legacy backend; uv and
        // poetry, like oxbuild, install only a project that declares one.
        cx.services.events.warn(&format!(
            "{} has a setup.py but no pyproject.toml, so the project itself is not installed (its console scripts neither); to install it, add a pyproject.toml with [build-system] requires = [\"setuptools\"] and build-backend = \"setuptools.build_meta\", or set [python] install-project = false to silence this",
            dir.display()
        ));
    }
    if requirements.is_none() && test_requirements.is_none() && !project {
        return Ok(None);
    }
    // Read once: for the check below and the project's name.
    let pyproject = project.then(|| oxbuild_python::input::pyproject(dir).ok().flatten()).flatten();
    if requirements.is_none()
        && let Some(doc) = &pyproject
    {
        unlocked_project(dir, doc)?;
    }
    let target = oxbuild_python::target::detect(&cx.base.fs, &cx.base.config)?;
    // Sdists and the project are built by the base's own interpreter when
    // this runner can run it, and the wheels built are kept for later builds.
    let builder: std::sync::Arc<dyn oxbuild_python::sdist::FindBuilder> =
        std::sync::Arc::new(crate::interpreter::BaseBuilder::new(cx.base, cx.services));
    let built: std::sync::Arc<dyn oxbuild_python::sdist::BuiltCache> =
        std::sync::Arc::new(crate::built::Built::new(cx.services, cx.request.cache_repo.as_ref()));
    let project_name = pyproject.as_ref().and_then(|doc| oxbuild_python::input::project_name(doc).map(str::to_string));
    let settings = |requirements: std::path::PathBuf, installed: Vec<Pin>, mut selection: Selection| Settings {
        selection: {
            // A uv workspace's lock above the project: this member's part.
            selection.workspace_member = oxbuild_python::lockfile::workspace_member(&requirements, dir);
            selection
        },
        requirements,
        prefix: cfg.python.venv.clone(),
        index_url: cfg.python.index_url.clone(),
        extra_index_urls: cfg.python.extra_index_url.clone(),
        find_links: cfg.python.find_links.iter().map(|f| dir.join(f)).collect(),
        no_index: cfg.python.no_index,
        installed,
        compression: oxbuild_build::compression(cfg),
        trust_local_wheels: cfg.python.trust_local_wheels.clone(),
        build_constraints: cfg.python.build_constraints.as_ref().map(|f| dir.join(f)),
        bytecode: cx.bytecode.cloned(),
        builder: Some(builder.clone()),
        built_cache: Some(built.clone()),
        tee: None,
        project: project_name.clone(),
    };
    let events = &cx.services.events;
    let mut report = serde_json::Value::Null;
    let mut production = Vec::new();
    let mut prod_pins = Vec::new();
    let mut installed = Vec::new();
    if let Some(requirements) = requirements {
        events.step(&format!(
            "python dependencies for Python {}.{} on {} ({}) from {}",
            target.major,
            target.minor,
            target.machine,
            target.libc,
            requirements.display()
        ));
        let selection = Selection {
            production: true,
            groups: cfg.python.groups.clone(),
            extras: cfg.python.extras.clone(),
            workspace_member: None,
        };
        let dep = layer(&settings(requirements, Vec::new(), selection), &target, cx).await?;
        report = describe(&target, &dep, cx);
        production.push(extra(&dep, "python dependencies", cx));
        prod_pins = dep.pins;
        installed = dep.packages;
    }
    // The project itself, when it is a package, as `poetry install` and `uv
    // sync` install it: a layer of its own over the dependencies.
    if project {
        events.step(&format!("the project in {} as a package into {}", dir.display(), cfg.python.venv));
        let requirements_file =
            cfg.python.requirements_path(dir).ok().flatten().unwrap_or_else(|| dir.join("pyproject.toml"));
        let project_settings = settings(requirements_file, Vec::new(), Selection::production());
        let project = oxbuild_python::project_layer(
            dir,
            &project_settings,
            &prod_pins,
            &target,
            &cx.services.store,
            cx.request.epoch,
            cx.services.http(),
        )
        .await?;
        events.step(&format!("  installed {}", project.wheel));
        let layer = oci_layer(&project.blob);
        installed.extend(packages(std::slice::from_ref(&project.installed), &project.blob.digest));
        report["project"] = json!({"wheel": project.wheel, "layer": project.blob.digest});
        production.push(ExtraLayer {
            layer,
            diff_id: project.blob.diff_id.clone(),
            created_by: format!("oxbuild: the project into {}", cfg.python.venv),
            env: oxbuild_python::env(&cfg.python.venv, cx.base.path.as_deref()),
            programs: Some(project.programs.clone()),
        });
    }
    let mut test = Vec::new();
    if let Some(requirements) = test_requirements {
        let groups = cfg.python.test_groups();
        let from = if groups.is_empty() { String::new() } else { format!(" (groups: {})", groups.join(", ")) };
        events.step(&format!("test dependencies from {}{from}", requirements.display()));
        let selection = if groups.is_empty() { Selection::production() } else { Selection::groups(groups) };
        let dep = layer(&settings(requirements, prod_pins, selection), &target, cx).await?;
        report["test"] = describe(&target, &dep, cx);
        test.push(extra(&dep, "test dependencies", cx));
    }
    Ok(Some(Provided { production, test, report, packages: installed }))
}

/// The layer as the build stacks it, with the environment the venv needs.
fn extra(dep: &DepLayer, what: &str, cx: &Context<'_>) -> ExtraLayer {
    let venv = &cx.cfg.python.venv;
    ExtraLayer {
        layer: dep.layer.clone(),
        diff_id: dep.diff_id.clone(),
        created_by: format!("oxbuild: {what} into {venv}"),
        env: oxbuild_python::env(venv, cx.base.path.as_deref()),
        programs: dep.programs.clone(),
    }
}

/// Reports the layer on the way and returns its JSON report.
fn describe(target: &Target, d: &DepLayer, cx: &Context<'_>) -> serde_json::Value {
    let events = &cx.services.events;
    if d.source == Source::Built {
        events.step(&format!("  installed {} wheels ({} downloaded)", d.wheels.len(), d.downloaded));
        if !d.built.is_empty() {
            let reused = d.built.iter().filter(|(_, r, _)| *r).count();
            events.step(&format!(
                "  {} of them built from sdists ({} now, {reused} reused from earlier builds)",
                d.built.len(),
                d.built.len() - reused
            ));
        }
    } else {
        events.step(&format!(
            "  reused the dependency layer ({} wheels, unchanged lock; {})",
            d.wheels.len(),
            d.source.describe()
        ));
    }
    for w in &d.wheels {
        events.detail(w);
    }
    for warning in &d.yanked {
        events.warn(warning);
    }
    json!({
        "interpreter": target.interpreter,
        "version": target.full_version,
        "machine": target.machine,
        "libc": target.libc.to_string(),
        "key": d.key,
        "reused": d.source != Source::Built,
        "source": d.source.describe(),
        "downloaded": d.downloaded,
        "wheels": d.wheels,
        "built": d
            .built
            .iter()
            .map(|(w, reused, how)| json!({"wheel": w, "reused": reused, "how": how}))
            .collect::<Vec<_>>(),
        "yanked": d.yanked,
        "compiled": d.compiled,
        "layer": d.layer.descriptor.digest,
    })
}

/// Makes or reuses one dependency layer: the local cache, then the cache
/// repository, then wheels.
async fn layer(settings: &Settings, target: &Target, cx: &Context<'_>) -> Result<DepLayer, Error> {
    let services = cx.services;
    let planned = oxbuild_python::plan(settings, target, cx.request.epoch)?;
    if let Some(found) = from_cache(&planned, cx) {
        return Ok(found);
    }
    let cache_repo = cx.request.cache_repo.as_ref();
    if let Some(repo) = cache_repo
        && let Some(found) = cache_repo::deps(&planned.key, repo, services).await
    {
        return Ok(DepLayer {
            layer: found.layer,
            diff_id: found.diff_id,
            key: planned.key.clone(),
            wheels: found.wheels,
            built: Vec::new(),
            downloaded: 0,
            pins: planned.all.clone(),
            source: Source::Remote,
            yanked: found.yanked,
            compiled: found.compiled,
            packages: found.packages,
            programs: found.programs,
        });
    }
    // Written here: it goes to the registry the image is pushed to while it
    // is written (best effort; the push uploads it otherwise).
    let mut settings = settings.clone();
    let streaming = cx.request.stream_to.as_ref().filter(|_| settings.installed.is_empty()).and_then(|repo| {
        let (sink, streaming) = services.client.stream_blob(repo)?;
        let tee: oxbuild_image::store::Tee = Box::new(sink);
        settings.tee = Some(std::sync::Arc::new(std::sync::Mutex::new(Some(tee))));
        Some(streaming)
    });
    let prepared =
        oxbuild_python::build(&planned, &settings, target, &services.store, cx.request.epoch, services.http()).await?;
    drop(settings);
    if let Some(streaming) = streaming {
        streaming.finish(&prepared.blob.digest);
    }
    let installed = packages(&prepared.installed, &prepared.blob.digest);
    let record = CachedLayer {
        digest: prepared.blob.digest.clone(),
        size: prepared.blob.size,
        diff_id: prepared.blob.diff_id.clone(),
        wheels: prepared.wheels.clone(),
        yanked: prepared.yanked.clone(),
        compiled: prepared.bytecode.compiled,
        packages: Some(installed.clone()),
        programs: Some(prepared.programs.clone()),
    };
    services.cache.put(Bucket::Layers, &planned.key, &record)?;
    let layer = oci_layer(&prepared.blob);
    if let Some(repo) = cache_repo {
        let blob = &prepared.blob;
        let meta = cache_repo::DepsMeta {
            wheels: prepared.wheels.clone(),
            yanked: prepared.yanked.clone(),
            compiled: prepared.bytecode.compiled,
            packages: installed.clone(),
            programs: Some(prepared.programs.clone()),
        };
        cache_repo::store_deps(&planned.key, layer.clone(), &blob.diff_id, &meta, repo, services).await;
    }
    for warning in &prepared.bytecode.skipped {
        services.events.warn(warning);
    }
    Ok(DepLayer {
        layer,
        diff_id: prepared.blob.diff_id,
        key: prepared.key,
        wheels: prepared.wheels,
        built: prepared.built,
        downloaded: prepared.downloaded,
        pins: prepared.pins,
        source: Source::Built,
        yanked: prepared.yanked,
        compiled: prepared.bytecode.compiled,
        packages: installed,
        programs: Some(prepared.programs),
    })
}

/// The planned layer from the local cache, when its record and its blob are both there.
fn from_cache(planned: &Planned, cx: &Context<'_>) -> Option<DepLayer> {
    let services = cx.services;
    let c: CachedLayer = services.cache.get(Bucket::Layers, &planned.key)?;
    if !services.store.contains(&c.digest) {
        return None;
    }
    let packages = c.packages?;
    let blob = LayerBlob {
        path: services.store.path(&c.digest),
        digest: c.digest,
        size: c.size,
        diff_id: c.diff_id.clone(),
        compression: planned.compression,
    };
    Some(DepLayer {
        layer: oci_layer(&blob),
        diff_id: c.diff_id,
        key: planned.key.clone(),
        wheels: c.wheels,
        built: Vec::new(),
        downloaded: 0,
        pins: planned.all.clone(),
        source: Source::Local,
        yanked: c.yanked,
        compiled: c.compiled,
        packages,
        programs: c.programs,
    })
}

/// The compiler for the image's bytecode, as `[python] compile-bytecode`
/// asks, with its part of the build report. None when the base has no
/// Python, when bytecode is off, or (under "auto", with a warning) when no
/// interpreter of the base's version can run here.
pub async fn bytecode(
    cfg: &oxbuild_config::Config,
    base: &crate::base::Base,
    cache_repo: Option<&crate::cache_repo::CacheRepo>,
    services: &crate::Services,
    speculation: Option<crate::interpreter::Speculation>,
) -> Result<(Option<crate::interpreter::Provisioned>, serde_json::Value), Error> {
    use oxbuild_config::Bytecode;
    let mode = cfg.python.compile_bytecode;
    if mode == Bytecode::Never {
        return Ok((None, json!({"mode": "off"})));
    }
    let target = match oxbuild_python::target::detect(&base.fs, &base.config) {
        Ok(t) => t,
        Err(e) if mode == Bytecode::Always => return Err(e.into()),
        Err(_) => return Ok((None, json!({"mode": "auto", "compiled": false, "reason": "the base has no Python"}))),
    };
    match crate::interpreter::provision(base, &target, cache_repo, services, speculation).await? {
        Ok(p) => {
            let report = json!({
                "mode": if mode == Bytecode::Always { "true" } else { "auto" },
                "compiled": true,
                "interpreter": p.compiler.origin(),
                "version": p.compiler.version,
                "confined": p.compiler.confined,
            });
            services.events.step(&format!(
                "bytecode by {} (Python {}){}",
                p.compiler.origin(),
                p.compiler.version.split_whitespace().next().unwrap_or(""),
                if p.compiler.confined { "" } else { ", unconfined: this kernel has no Landlock" }
            ));
            Ok((Some(p), report))
        }
        Err(why) if mode == Bytecode::Always => {
            // The base's own interpreter runs only where its architecture does.
            let elsewhere = base.platform.architecture != oxbuild_image::Platform::host().architecture;
            Err(Error::new(
                crate::Kind::Build,
                format!(
                    "compile-bytecode = true, but no interpreter can compile for Python {}: {why}. Put python3.{} of exactly that version on PATH{}",
                    target.full_version,
                    target.minor,
                    if elsewhere { ", or build on a runner of the base's architecture" } else { "" }
                ),
            ))
        }
        Err(why) => {
            services.events.warn(&format!(
                "shipping without bytecode ({why}); the image will compile its modules at every start. Set [python] compile-bytecode = false to silence this, or provide python3.{} {}",
                target.minor, target.full_version
            ));
            Ok((None, json!({"mode": "auto", "compiled": false, "reason": why})))
        }
    }
}
