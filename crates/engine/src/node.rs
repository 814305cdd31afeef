//! The Node.js dependency provider: a `node_modules` layer from the
//! project's package-lock.json (see `oxbuild_node`), found in the local
//! cache, else in the cache repository, else made here from verified
//! tarballs. The test variant adds the dev dependencies in a layer of their
//! own, over production's.

use futures_util::FutureExt as _;
use oxbuild_build::ExtraLayer;
use oxbuild_cache::Bucket;
use oxbuild_image::{Format, Layer, LayerBlob};
use oxbuild_node::{Installed, Plan, Target};
use serde_json::json;

use crate::provider::{Context, DependencyProvider, Provided};
use crate::{Error, Kind, cache_repo};

/// See the module docs.
#[derive(Debug, Clone, Copy)]
pub struct Node;

impl DependencyProvider for Node {
    fn language(&self) -> &'static str {
        "node"
    }

    fn provide<'a>(
        &'a self,
        cx: &'a Context<'a>,
    ) -> futures_util::future::BoxFuture<'a, Result<Option<Provided>, Error>> {
        provide(cx).boxed()
    }
}

impl From<oxbuild_node::Error> for Error {
    fn from(e: oxbuild_node::Error) -> Error {
        use oxbuild_node::Error as E;
        let kind = match &e {
            E::Lock(_) | E::Config(_) | E::Package(_) | E::Integrity(_) => Kind::Config,
            E::Target(_) => Kind::Build,
            E::Fetch(_) => Kind::Registry,
            E::Image(_) => Kind::Output,
        };
        Error::new(kind, e.to_string())
    }
}

/// Other package managers' locks, and how to get a package-lock from them.
const OTHER_LOCKS: [(&str, &str); 3] = [("pnpm-lock.yaml", "pnpm"), ("yarn.lock", "yarn"), ("bun.lockb", "bun")];

/// A layer record in the local cache.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct CachedLayer {
    digest: oxbuild_image::Digest,
    size: u64,
    diff_id: oxbuild_image::Digest,
    packages: Vec<oxbuild_sbom::Package>,
    /// Its `.bin` commands; none in a record of an older build.
    #[serde(default)]
    programs: Option<Vec<String>>,
}

/// A finished layer and where it came from.
struct NodeLayer {
    layer: Layer,
    diff_id: oxbuild_image::Digest,
    packages: Vec<oxbuild_sbom::Package>,
    programs: Option<Vec<String>>,
    source: &'static str,
    downloaded: usize,
}

fn sbom_packages(installed: &[Installed], layer: &oxbuild_image::Digest) -> Vec<oxbuild_sbom::Package> {
    installed
        .iter()
        .map(|i| oxbuild_sbom::Package {
            ecosystem: "npm".into(),
            name: i.name.clone(),
            version: i.version.clone(),
            file: Some(i.file.clone()),
            sha256: Some(i.sha256.clone()),
            license: i.license.clone(),
            source: Some(i.registry.clone()),
            url: Some(i.url.clone()),
            layer: Some(layer.clone()),
            dependencies: i.dependencies.clone(),
        })
        .collect()
}

async fn provide(cx: &Context<'_>) -> Result<Option<Provided>, Error> {
    let (cfg, dir) = (cx.cfg, cx.request.dir.as_path());
    let Some(lock_path) = cfg.node.lock_path(dir) else {
        if dir.join("package.json").is_file() {
            if let Some((file, tool)) = OTHER_LOCKS.iter().find(|(f, _)| dir.join(f).is_file()) {
                return Err(Error::new(
                    Kind::Config,
                    format!(
                        "{}: oxbuild installs Node packages from package-lock.json, and this project has {tool}'s {file}: write one with `npm install --package-lock-only` (npm reads package.json; commit the result), or name it in [node] lock",
                        dir.display()
                    ),
                ));
            }
            let has_deps = std::fs::read_to_string(dir.join("package.json"))
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .is_some_and(|p| p["dependencies"].as_object().is_some_and(|d| !d.is_empty()));
            if has_deps {
                return Err(Error::new(
                    Kind::Config,
                    format!(
                        "{}: package.json has dependencies but there is no package-lock.json: run `npm install --package-lock-only` and commit it, so that the build installs exactly what was locked",
                        dir.display()
                    ),
                ));
            }
        }
        return Ok(None);
    };
    let lock_name = lock_path.strip_prefix(dir).unwrap_or(&lock_path).display().to_string();
    let lock = oxbuild_node::lockfile::load(&lock_path)?;
    let target = oxbuild_node::target::detect(&cx.base.fs, &cx.base.config, &cx.base.platform.architecture)?;
    if !target.has_node {
        // On a Python base, a package-lock that oxbuild.toml does not name
        // is a front-end's (assets built before the image, or in CI), as
        // `oxbuild init` reads it: no Node layer, said once.
        let python_base = oxbuild_python::target::detect(&cx.base.fs, &cx.base.config).is_ok();
        if cfg.node.lock.is_none() && python_base {
            // One whose package.json serves nothing (no start script, no
            // main: a front end's sources, linters) is that, as `oxbuild
            // init` reads it too: said only when it could be a server.
            let package = std::fs::read_to_string(dir.join("package.json"))
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .unwrap_or_default();
            if oxbuild_node::serves(&package) {
                cx.services.events.warn(&format!(
                    "{lock_name} is left out: the base has Python and no node, so it is taken as a front-end's lock (assets are built before the image); to install it, use a Node.js base and name it in [node] lock"
                ));
            }
            return Ok(None);
        }
        return Err(Error::new(
            Kind::Config,
            format!(
                "{lock_name} is a Node.js lock, and the base image has no node (looked for /usr/bin/node, /usr/local/bin/node and libnode): use a Node.js base image"
            ),
        ));
    }
    let events = &cx.services.events;
    events.step(&format!(
        "node dependencies for Node {} on {} ({}) from {lock_name}",
        target.version.as_deref().unwrap_or("of unknown version"),
        target.cpu,
        target.libc.as_str()
    ));
    let npmrc = oxbuild_node::npmrc_for(dir, cfg.node.registry.as_deref())?;
    let modules_dir = cfg.node.modules_dir.clone().unwrap_or_else(|| cfg.image.workdir.clone());
    let options = |include_dev| oxbuild_node::Options {
        include_dev,
        allow_install_scripts: cfg.node.allow_install_scripts_missing.clone(),
    };
    let prod_plan = oxbuild_node::plan(&lock, &target, &options(cfg.node.include_dev), &lock_name)?;
    for s in &prod_plan.skipped {
        events.detail(&format!("  skipped optional {s}"));
    }
    for w in &prod_plan.engine_warnings {
        events.warn(&format!("{w}, and the base has Node {}", target.version.as_deref().unwrap_or("?")));
    }
    for s in &prod_plan.scripts_accepted {
        events.warn(&format!(
            "{s} has install scripts; taken without running them ([node] allow-install-scripts-missing)"
        ));
    }
    let prod = layer(&prod_plan, &target, &modules_dir, &npmrc, cx).await?;
    events.step(&format!(
        "  {} {} packages ({} downloaded; {})",
        if prod.source == "built" { "installed" } else { "reused" },
        prod_plan.packages.len(),
        prod.downloaded,
        prod.source
    ));
    // Commands of the app's dependencies on PATH, as `npm run` and `npm
    // test` have them (a gate running `mocha`, an entrypoint `next start`).
    let rest = cx.base.path.as_deref().unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    let bin = format!("{}/node_modules/.bin", modules_dir.trim_end_matches('/'));
    let mut node_env =
        vec![("NODE_ENV".to_string(), "production".to_string()), ("PATH".to_string(), format!("{bin}:{rest}"))];
    // What the start script sets before node (`cross-env NODE_ENV=… node .`).
    for (k, v) in package_json(dir).map(|p| oxbuild_node::script_env(&p, dir)).unwrap_or_default() {
        node_env.retain(|(e, _)| *e != k);
        node_env.push((k, v));
    }
    let production = vec![ExtraLayer {
        layer: prod.layer.clone(),
        diff_id: prod.diff_id.clone(),
        created_by: format!("oxbuild: node dependencies into {modules_dir}/node_modules"),
        env: node_env,
        programs: prod.programs.clone(),
    }];
    let mut report = json!({
        "lock": lock_name,
        "node": target.version,
        "node_from": target.version_from,
        "cpu": target.cpu,
        "libc": target.libc,
        "packages": prod_plan.packages.len(),
        "downloaded": prod.downloaded,
        "layer": prod.diff_id,
        "source": prod.source,
        "skipped": prod_plan.skipped,
    });
    let mut test = Vec::new();
    if cx.request.test_variant && !cfg.node.include_dev {
        let mut dev_plan = oxbuild_node::plan(&lock, &target, &options(true), &lock_name)?;
        dev_plan.packages.retain(|p| !prod_plan.packages.iter().any(|q| q.path == p.path));
        if !dev_plan.packages.is_empty() {
            events.step(&format!("test dependencies: {} dev packages from {lock_name}", dev_plan.packages.len()));
            let dev = layer(&dev_plan, &target, &modules_dir, &npmrc, cx).await?;
            report["test"] = json!({"packages": dev_plan.packages.len(), "layer": dev.diff_id, "source": dev.source});
            test.push(ExtraLayer {
                layer: dev.layer,
                diff_id: dev.diff_id,
                created_by: format!("oxbuild: node dev dependencies into {modules_dir}/node_modules"),
                env: Vec::new(),
                programs: dev.programs,
            });
        }
    }
    Ok(Some(Provided { production, test, report, packages: prod.packages }))
}

/// `blob` as an OCI layer; the build turns it into the image's format.
fn oci_layer(blob: &LayerBlob) -> Layer {
    Layer::file(blob.descriptor_in(Format::Oci).expect("OCI has every compression"), blob.path.clone())
}

/// The layer for `plan`: the local cache, else the cache repository, else
/// fetched and written here (and kept in both).
async fn layer(
    plan: &Plan,
    target: &Target,
    modules_dir: &str,
    npmrc: &oxbuild_node::Npmrc,
    cx: &Context<'_>,
) -> Result<NodeLayer, Error> {
    let services = cx.services;
    let compression = oxbuild_build::compression(cx.cfg);
    let key = oxbuild_node::layer_key(plan, target, modules_dir, cx.request.epoch, &compression.key());
    if let Some(c) = services.cache.get::<CachedLayer>(Bucket::Layers, &key)
        && services.store.contains(&c.digest)
    {
        let blob = LayerBlob {
            path: services.store.path(&c.digest),
            digest: c.digest,
            size: c.size,
            diff_id: c.diff_id.clone(),
            compression,
        };
        return Ok(NodeLayer {
            layer: oci_layer(&blob),
            diff_id: c.diff_id,
            packages: c.packages,
            programs: c.programs,
            source: "local cache",
            downloaded: 0,
        });
    }
    let cache_repo = cx.request.cache_repo.as_ref();
    if let Some(repo) = cache_repo
        && let Some(found) = cache_repo::deps(&key, repo, services).await
    {
        return Ok(NodeLayer {
            layer: found.layer,
            diff_id: found.diff_id,
            packages: found.packages,
            programs: found.programs,
            source: "cache repository",
            downloaded: 0,
        });
    }
    let settings = oxbuild_node::LayerSettings {
        modules_dir: modules_dir.to_string(),
        epoch: cx.request.epoch,
        compression,
        cache: services.cache.bucket(Bucket::Index).ok().map(|d| d.join("npm-tarballs")),
    };
    let written = oxbuild_node::install::write(plan, &settings, services.http(), npmrc, &services.store).await?;
    for w in &written.warnings {
        services.events.warn(w);
    }
    let packages = sbom_packages(&written.installed, &written.blob.digest);
    let record = CachedLayer {
        digest: written.blob.digest.clone(),
        size: written.blob.size,
        diff_id: written.blob.diff_id.clone(),
        packages: packages.clone(),
        programs: Some(written.programs.clone()),
    };
    services.cache.put(Bucket::Layers, &key, &record)?;
    let layer = oci_layer(&written.blob);
    if let Some(repo) = cache_repo {
        let meta = cache_repo::DepsMeta {
            wheels: written.installed.iter().map(|i| format!("{}@{}", i.name, i.version)).collect(),
            yanked: Vec::new(),
            compiled: 0,
            packages: packages.clone(),
            programs: Some(written.programs.clone()),
        };
        cache_repo::store_deps(&key, layer.clone(), &written.blob.diff_id, &meta, repo, services).await;
    }
    Ok(NodeLayer {
        layer,
        diff_id: written.blob.diff_id,
        packages,
        programs: Some(written.programs),
        source: "built",
        downloaded: written.downloaded,
    })
}

/// When the image's command is `node SCRIPT`, SCRIPT must be in the app as
/// node would resolve it (`SCRIPT`, `SCRIPT.js`, `.mjs`, `.cjs`, or a
/// directory with `index.js` or a package.json): a TypeScript app whose
/// `dist/` was never built would otherwise build and fail only when it
/// starts.
pub(crate) fn check_command(dir: &std::path::Path, cfg: &oxbuild_config::Config) -> Result<(), Error> {
    let command: Vec<&String> = cfg.image.entrypoint.iter().chain(cfg.image.cmd.iter()).flatten().collect();
    let Some((first, rest)) = command.split_first() else { return Ok(()) };
    if first.rsplit('/').next() != Some("node") {
        return Ok(());
    }
    // The script: the first argument that is not an option (or its value).
    let mut args = rest.iter();
    let script = loop {
        match args.next() {
            Some(a)
                if ["-r", "--require", "--import", "--loader", "-e", "--eval", "-p", "--print"]
                    .contains(&a.as_str()) =>
            {
                if matches!(a.as_str(), "-e" | "--eval" | "-p" | "--print") {
                    return Ok(());
                }
                args.next();
            }
            Some(a) if a.starts_with('-') => {}
            Some(a) => break a.as_str(),
            None => return Ok(()),
        }
    };
    let workdir = cfg.image.workdir.trim_end_matches('/');
    let rel = match script.strip_prefix(&format!("{workdir}/")) {
        Some(r) => r,
        None if script.starts_with('/') => return Ok(()),
        None => script.trim_start_matches("./"),
    };
    let path = dir.join(rel);
    let found = [String::new(), ".js".into(), ".mjs".into(), ".cjs".into()]
        .iter()
        .any(|ext| std::path::PathBuf::from(format!("{}{ext}", path.display())).is_file())
        || path.join("index.js").is_file()
        || path.join("package.json").is_file();
    if found {
        return Ok(());
    }
    let tried = if std::path::Path::new(rel).extension().is_some() {
        rel.to_string()
    } else {
        format!("{rel} (nor {rel}.js, nor {rel}/index.js)")
    };
    Err(Error::new(
        Kind::Config,
        format!(
            "the image's command runs `node {script}`, and {} has no {tried}: if a build step makes it (`npm run build`, tsc), run that before `oxbuild build` so that it is in the app directory; else fix [image] entrypoint",
            dir.display()
        ),
    ))
}

/// The project's package.json, when it has one that parses.
fn package_json(dir: &std::path::Path) -> Option<serde_json::Value> {
    serde_json::from_str(&std::fs::read_to_string(dir.join("package.json")).ok()?).ok()
}

/// The command package.json starts a Node project with (see
/// `oxbuild_node::entrypoint`), for a project with a Node lock.
pub(crate) fn project_command(dir: &std::path::Path, cfg: &oxbuild_config::Config) -> Option<Vec<String>> {
    cfg.node.lock_path(dir)?;
    oxbuild_node::entrypoint(&package_json(dir)?, dir)
}
