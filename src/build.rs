//! `oxbuild build`: read the base, build, then push and write outputs.

use std::collections::BTreeMap;
use std::path::PathBuf;

use oxbuild_config::Config;
use oxbuild_image::{BlobStore, Platform};
use oxbuild_registry::{Client, ClientOptions, Keychain, MountSource, Reference};
use serde_json::json;

use crate::cli::{AppArgs, BuildArgs, RegistryArgs};
use crate::location::Location;
use crate::report::{Failure, Reporter};

/// Where blobs are cached between runs.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("OXBUILD_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("oxbuild")
}

/// The blob store every command shares.
pub fn store() -> Result<BlobStore, Failure> {
    BlobStore::open(cache_dir().join("blobs")).map_err(Failure::output)
}

/// `--platform`, or this machine's.
pub fn platform(arg: Option<&str>) -> Result<Platform, Failure> {
    match arg {
        Some(p) => p.parse().map_err(|e| Failure::config(format!("--platform: {e}"))),
        None => Ok(Platform::host()),
    }
}

/// `SOURCE_DATE_EPOCH`, or 0 when unset.
fn source_date_epoch() -> Result<u64, Failure> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Err(_) => Ok(0),
        Ok(v) if v.trim().is_empty() => Ok(0),
        Ok(v) => v.trim().parse().map_err(|_| {
            Failure::config(format!("SOURCE_DATE_EPOCH=`{v}` is not a whole number of seconds since 1970 (e.g. the output of `git log -1 --format=%ct`)"))
        }),
    }
}

/// `16MiB`, `5MB`, `1048576`: a size in bytes.
fn parse_size(s: &str) -> Result<u64, Failure> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        _ => 0,
    };
    match n.parse::<u64>() {
        Ok(n) if mult > 0 && n > 0 => Ok(n * mult),
        _ => Err(Failure::config(format!("--chunk-size `{s}` is not a size: write it like 16MiB, 5MB or 1048576"))),
    }
}

/// A registry client configured from the command line and the environment.
pub fn client(args: &RegistryArgs, out: Reporter) -> Result<Client, Failure> {
    let ca_pem = match &args.ca_file {
        Some(path) => {
            Some(std::fs::read(path).map_err(|e| Failure::config(format!("--ca-file {}: {e}", path.display())))?)
        }
        None => None,
    };
    let chunk_size = args.chunk_size.as_deref().map(parse_size).transpose()?;
    let opts = ClientOptions {
        chunk_size,
        insecure: args.insecure.clone(),
        keychain: Keychain::from_env(),
        ca_pem,
        progress: crate::progress::sink(out),
        ..Default::default()
    };
    Client::new(opts).map_err(Failure::config)
}

/// Maps a Python dependency error to its exit code: lock problems are
/// configuration, unreachable indexes are network, the rest build errors.
pub fn python_failure(e: oxbuild_python::Error) -> Failure {
    match e {
        oxbuild_python::Error::Lock { .. } => Failure::config(e),
        oxbuild_python::Error::Index(_) => Failure::registry(e),
        _ => Failure::build(e),
    }
}

/// What the build stage needs, whichever command runs it.
pub struct BuildInputs<'a> {
    pub dir: &'a std::path::Path,
    pub base: Option<&'a str>,
    pub platform: Option<&'a str>,
    pub registry: &'a RegistryArgs,
    /// Also make the test variant.
    pub test_variant: bool,
    /// A registry repository that caches dependency layers between runners.
    pub cache_repo: Option<&'a str>,
}

/// The build stage's inputs from the command line.
pub fn inputs(args: &AppArgs, test_variant: bool) -> BuildInputs<'_> {
    BuildInputs {
        dir: &args.dir,
        base: args.base.as_deref(),
        platform: args.platform.as_deref(),
        registry: &args.registry,
        test_variant,
        cache_repo: args.cache_repo.as_deref(),
    }
}

/// The result of the build stage.
pub struct Assembled {
    pub dir: PathBuf,
    pub cfg: Config,
    pub prod: oxbuild_build::Built,
    pub test: Option<oxbuild_build::Built>,
    pub base: Location,
    pub resolved_base: Option<Reference>,
    pub mount_from: Vec<MountSource>,
    pub platform: Platform,
    pub python: serde_json::Value,
    pub client: Client,
    pub store: BlobStore,
}

/// The build stage: read the base, make the dependency layer(s), build the
/// production image and, when asked, its test variant.
pub async fn assemble(inputs: BuildInputs<'_>, out: Reporter) -> Result<Assembled, Failure> {
    let dir = inputs.dir;
    let cfg = Config::load(dir).map_err(Failure::config)?;
    let epoch = source_date_epoch()?;
    let platform = platform(inputs.platform)?;
    let base = match inputs.base {
        Some(b) => Location::parse(b, "--base")?,
        None => Location::parse(&cfg.image.base, "[image] base")?,
    };
    let store = store()?;
    let client = client(inputs.registry, out)?;

    out.step(format!("reading base {base} ({platform})"));
    let opened = base.open(&client, &platform, &store).await?;
    let base_config = opened.image.config_json().map_err(Failure::input)?;
    // A base that is one image (not an index) is the platform it is: a
    // --platform it does not have is an error, and what is reported is what
    // the image really is.
    let platform = match config_platform(&base_config) {
        Some(actual) if inputs.platform.is_some() && !platform.matches(&actual) => {
            return Err(Failure::input(format!(
                "base {base} is a {actual} image, not {platform}: use a base that has {platform} (a multi-platform index, or an archive of that platform), or drop --platform"
            )));
        }
        Some(actual) => actual,
        None => platform,
    };
    let cache_repo = inputs
        .cache_repo
        .map(|r| Reference::parse(r).map_err(|e| Failure::config(format!("--cache-repo: {e}"))))
        .transpose()?;
    // What the build reads of the base (accounts, interpreter, libc) comes from
    // a scan: cached here, or in the cache repository, or made by fetching the
    // layers once. Without a scan to make, the base's layers stay where they are.
    let scan_cache = cache_dir().join("rootfs");
    let mut base_image = opened.image.clone();
    let base_fs = match oxbuild_build::cached_scan(&base_image, &scan_cache) {
        Some(found) => found,
        None => match crate::deps::scan_from_repository(&base_image, cache_repo.as_ref(), &client, out).await {
            Some(found) => {
                oxbuild_build::remember_scan(&base_image, &scan_cache, &found);
                found
            }
            None => {
                let (image, found) = fetch_and_scan(&opened.image, &base, &client, &store).await?;
                base_image = image;
                let found = oxbuild_build::finish_scan(&base_image, found, Some(&scan_cache));
                crate::deps::scan_to_repository(&base_image, &found, cache_repo.as_ref(), &client, out).await;
                found
            }
        },
    };
    let base_path = base_config["config"]["Env"]
        .as_array()
        .and_then(|a| a.iter().filter_map(|v| v.as_str()).find_map(|e| e.strip_prefix("PATH=")))
        .map(str::to_string);
    let layer_cache = cache_dir().join("python-layers");

    let test_requirements = cfg.python.test_requirements.as_ref().map(|t| dir.join(t));
    let needs_python =
        cfg.python.requirements_path(dir).is_some() || (inputs.test_variant && test_requirements.is_some());
    let target = if needs_python {
        Some(oxbuild_python::target::detect(&base_fs, &base_config).map_err(python_failure)?)
    } else {
        None
    };
    let settings = |requirements: PathBuf, installed: Vec<oxbuild_python::Pin>, groups| oxbuild_python::Settings {
        requirements,
        prefix: cfg.python.venv.clone(),
        index_url: cfg.python.index_url.clone(),
        extra_index_urls: cfg.python.extra_index_url.clone(),
        find_links: cfg.python.find_links.iter().map(|f| dir.join(f)).collect(),
        no_index: cfg.python.no_index,
        installed,
        compression: oxbuild_build::compression(&cfg),
        groups,
    };

    let deps = DepsContext {
        target: target.clone(),
        store: store.clone(),
        layer_cache: layer_cache.clone(),
        epoch,
        cache_repo: cache_repo.clone(),
        client: client.clone(),
        venv: cfg.python.venv.clone(),
        base_path: base_path.clone(),
        out,
    };
    let mut extra = Vec::new();
    let mut python = serde_json::Value::Null;
    let mut prod_pins = Vec::new();
    if let (Some(requirements), Some(target)) = (cfg.python.requirements_path(dir), &target) {
        out.step(format!(
            "python dependencies for Python {}.{} on {} ({}) from {}",
            target.major,
            target.minor,
            target.machine,
            target.libc,
            requirements.display()
        ));
        let (layer, json, pins) =
            python_layer(&settings(requirements, Vec::new(), Vec::new()), "python dependencies", &deps).await?;
        python = json;
        prod_pins = pins;
        extra.push(layer);
    }

    out.step(format!("building {}", dir.display()));
    let base_name = opened.resolved.as_ref().map(|r| Reference { digest: None, ..r.clone() }.to_string());
    let prod = {
        let (dir, cfg, base_image, store) = (dir.to_path_buf(), cfg.clone(), base_image.clone(), store.clone());
        tokio::task::spawn_blocking(move || {
            let base = oxbuild_build::Base { image: &base_image, name: &base_name, fs: &base_fs };
            oxbuild_build::build(&dir, &cfg, &base, &extra, &store, epoch)
        })
        .await
        .map_err(|e| Failure::internal(format!("the build task failed: {e}")))?
        .map_err(Failure::build)?
    };
    for w in &prod.warnings {
        out.warn(w);
    }
    for layer in &prod.added {
        out.detail(format!("layer {} {}", layer.digest, crate::progress::size(layer.size)));
    }

    let mut test = None;
    if inputs.test_variant {
        let mut test_extra = Vec::new();
        if let (Some(requirements), Some(_)) = (test_requirements, &target) {
            let groups = cfg.python.test_groups();
            let from = if groups.is_empty() { String::new() } else { format!(" (groups: {})", groups.join(", ")) };
            out.step(format!("test dependencies from {}{from}", requirements.display()));
            let test_settings = settings(requirements, prod_pins, groups);
            let (layer, json, _) = python_layer(&test_settings, "test dependencies", &deps).await?;
            python["test"] = json;
            test_extra.push(layer);
        }
        out.step("building the test variant");
        let (prod, dir, cfg, store) = (prod.clone(), dir.to_path_buf(), cfg.clone(), store.clone());
        let built = tokio::task::spawn_blocking(move || {
            oxbuild_build::test_variant(&prod, &dir, &cfg, &test_extra, &store, epoch)
        })
        .await
        .map_err(|e| Failure::internal(format!("the build task failed: {e}")))?
        .map_err(Failure::build)?;
        test = Some(built);
    }

    let mount_from = opened.resolved.iter().map(|r| MountSource::of(r, &base_image)).collect();
    Ok(Assembled {
        dir: dir.to_path_buf(),
        cfg,
        prod,
        test,
        base,
        resolved_base: opened.resolved,
        mount_from,
        platform,
        python,
        client,
        store,
    })
}

/// The platform an image config declares, if it declares one.
fn config_platform(config: &serde_json::Value) -> Option<Platform> {
    Some(Platform {
        os: config["os"].as_str()?.to_string(),
        architecture: config["architecture"].as_str()?.to_string(),
        variant: config["variant"].as_str().map(str::to_string),
    })
}

/// Fetches the base's layers and reads each as soon as it is on disk, so
/// that reading one overlaps downloading the next (up to four at a time).
async fn fetch_and_scan(
    image: &oxbuild_image::Image,
    base: &Location,
    client: &Client,
    store: &BlobStore,
) -> Result<(oxbuild_image::Image, BTreeMap<String, oxbuild_image::rootfs::Node>), Failure> {
    use futures_util::{StreamExt as _, TryStreamExt as _};
    let fetched: Vec<(oxbuild_image::Layer, oxbuild_image::rootfs::LayerScan)> =
        futures_util::stream::iter(image.layers().iter().cloned())
            .map(|layer| async move {
                let local = oxbuild_registry::fetch_layer(client, layer, store)
                    .await
                    .map_err(|e| Failure::registry(format!("pulling base image {base}: {e}")))?;
                let reading = local.clone();
                let scanned = tokio::task::spawn_blocking(move || {
                    oxbuild_image::rootfs::scan_layer(&reading, &oxbuild_build::base_wants)
                })
                .await
                .map_err(|e| Failure::internal(format!("reading the base failed: {e}")))?
                .map_err(|e| Failure::build(oxbuild_build::Error::Base(e.to_string())))?;
                Ok::<_, Failure>((local, scanned))
            })
            .buffered(4)
            .try_collect()
            .await?;
    let (layers, scans): (Vec<_>, Vec<_>) = fetched.into_iter().unzip();
    let image = image.relocated(layers).map_err(Failure::input)?;
    Ok((image, oxbuild_image::rootfs::merge(scans)))
}

/// What making a dependency layer needs besides its lock.
struct DepsContext {
    target: Option<oxbuild_python::Target>,
    store: BlobStore,
    layer_cache: PathBuf,
    epoch: u64,
    cache_repo: Option<Reference>,
    client: Client,
    venv: String,
    base_path: Option<String>,
    out: Reporter,
}

/// Makes (or reuses) one dependency layer: the layer for the image, its JSON
/// report and the pins it holds.
async fn python_layer(
    settings: &oxbuild_python::Settings,
    what: &str,
    cx: &DepsContext,
) -> Result<(oxbuild_build::ExtraLayer, serde_json::Value, Vec<oxbuild_python::Pin>), Failure> {
    let target = cx.target.as_ref().ok_or_else(|| Failure::internal("no Python target"))?;
    let dep = crate::deps::layer(
        settings,
        target,
        &cx.store,
        &cx.layer_cache,
        cx.epoch,
        cx.cache_repo.as_ref(),
        &cx.client,
        cx.out,
    )
    .await?;
    cx.out.step(describe(&dep));
    for w in &dep.wheels {
        cx.out.detail(w);
    }
    for warning in &dep.yanked {
        cx.out.warn(warning);
    }
    let json = python_json(target, &dep);
    let layer = oxbuild_build::ExtraLayer {
        layer: dep.layer,
        diff_id: dep.diff_id,
        created_by: format!("oxbuild: {what} into {}", cx.venv),
        env: oxbuild_python::env(&cx.venv, cx.base_path.as_deref()),
    };
    Ok((layer, json, dep.pins))
}

fn describe(d: &crate::deps::DepLayer) -> String {
    if d.reused() {
        format!("  reused the dependency layer ({} wheels, unchanged lock; {})", d.wheels.len(), d.source)
    } else {
        format!("  installed {} wheels ({} downloaded)", d.wheels.len(), d.downloaded)
    }
}

fn python_json(target: &oxbuild_python::Target, d: &crate::deps::DepLayer) -> serde_json::Value {
    json!({
        "interpreter": target.interpreter,
        "version": target.full_version,
        "machine": target.machine,
        "libc": target.libc.to_string(),
        "key": d.key,
        "reused": d.reused(),
        "source": d.source,
        "downloaded": d.downloaded,
        "wheels": d.wheels,
        "yanked": d.yanked,
        "layer": d.layer.descriptor.digest,
    })
}

pub async fn run(args: BuildArgs, out: Reporter) -> Result<(), Failure> {
    let repository_cfg = Config::load(&args.app.dir).map_err(Failure::config)?.image.repository;
    let repository = repository_cfg
        .as_deref()
        .map(Reference::parse)
        .transpose()
        .map_err(|e| Failure::config(format!("[image] repository: {e}")))?;
    let tags: Vec<Reference> = args
        .tags
        .iter()
        .map(|t| Reference::parse_tag_or_ref(t, repository.as_ref()))
        .collect::<Result<_, _>>()
        .map_err(|e| Failure::config(format!("--tag: {e}")))?;
    let outputs: Vec<Location> =
        args.outputs.iter().map(|o| Location::parse(o, "--output")).collect::<Result<_, _>>()?;
    if let Some(Location::Registry(r)) = outputs.iter().find(|o| matches!(o, Location::Registry(_))) {
        return Err(Failure::config(format!("--output {r}: registries are pushed to with --tag REF --push")));
    }
    if args.push && tags.is_empty() && repository.is_none() {
        return Err(Failure::config(
            "--push needs somewhere to go: give --tag registry/repo:tag, or set [image] repository in oxbuild.toml",
        ));
    }
    let test_variant = args.variant == crate::cli::Variant::Test;
    let assembled = assemble(inputs(&args.app, test_variant), out).await?;
    let Assembled { prod, test, base, resolved_base, mount_from, platform, python, client, store, .. } = assembled;
    let built = if test_variant { test.expect("asked for") } else { prod };
    let image = &built.image;
    let digest = image.digest();
    let names: Vec<String> = tags.iter().map(ToString::to_string).collect();

    let mut written = Vec::new();
    for output in &outputs {
        out.step(format!("writing {output}"));
        output.write(&client, image, &store, &names, &[]).await?;
        written.push(output.to_string());
    }

    let mut pushed = Vec::new();
    let mut push_reports = Vec::new();
    if args.push {
        // One push per repository, carrying all of its tags.
        let mut by_repo: BTreeMap<String, (Reference, Vec<String>)> = BTreeMap::new();
        for t in &tags {
            let entry = by_repo.entry(t.name()).or_insert_with(|| (t.clone(), Vec::new()));
            entry.1.extend(t.tag.clone());
        }
        if by_repo.is_empty()
            && let Some(repo) = &repository
        {
            by_repo.insert(repo.name(), (repo.clone(), Vec::new()));
        }
        for (name, (target, repo_tags)) in by_repo {
            out.step(format!("pushing {name}"));
            let report = oxbuild_registry::push(&client, image, &target, &repo_tags, &mount_from)
                .await
                .map_err(|e| Failure::registry(format!("pushing to {name}: {e}")))?;
            out.step(format!(
                "  {} blobs uploaded ({} bytes), {} mounted, {} already there",
                report.blobs_uploaded, report.bytes_uploaded, report.blobs_mounted, report.blobs_skipped
            ));
            pushed.push(target.with_digest(digest.clone()).to_string());
            for t in &repo_tags {
                pushed.push(target.with_tag(t).to_string());
            }
            push_reports.push(json!({"repository": name, "report": report}));
        }
    }

    let layers: Vec<_> = image
        .layers()
        .iter()
        .map(
            |l| json!({"digest": l.descriptor.digest, "size": l.descriptor.size, "mediaType": l.descriptor.media_type}),
        )
        .collect();
    let base_name = resolved_base.as_ref().map(ToString::to_string).unwrap_or_else(|| base.to_string());
    let report = json!({
        "ok": true,
        "digest": digest,
        "mediaType": image.media_type(),
        "base": base_name,
        "platform": platform.to_string(),
        "config": image.config_descriptor().digest,
        "layers": layers,
        "added": built.added,
        "pushed": pushed,
        "push": push_reports,
        "outputs": written,
        "warnings": built.warnings,
        "python": python,
        "variant": if test_variant { "test" } else { "production" },
    });
    let mut human = vec![digest.to_string()];
    if !out.quiet {
        human.extend(pushed.iter().filter(|p| !p.contains('@')).map(|p| format!("pushed {p}")));
        human.extend(written.iter().map(|w| format!("wrote {w}")));
    }
    out.result(&report, &human);
    Ok(())
}
