//! `oxbuild build`: read the base, build, then push and write outputs.

use std::collections::BTreeMap;
use std::path::PathBuf;

use oxbuild_config::Config;
use oxbuild_image::{BlobStore, Platform};
use oxbuild_registry::{Client, ClientOptions, Keychain, MountSource, Reference};
use serde_json::json;

use crate::cli::{BuildArgs, RegistryArgs};
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

/// A registry client configured from the command line and the environment.
pub fn client(args: &RegistryArgs) -> Result<Client, Failure> {
    let ca_pem = match &args.ca_file {
        Some(path) => {
            Some(std::fs::read(path).map_err(|e| Failure::config(format!("--ca-file {}: {e}", path.display())))?)
        }
        None => None,
    };
    let opts =
        ClientOptions { insecure: args.insecure.clone(), keychain: Keychain::from_env(), ca_pem, ..Default::default() };
    Client::new(opts).map_err(Failure::config)
}

/// Maps a Python dependency error to its exit code: lock problems are
/// configuration, unreachable indexes are network, the rest build errors.
fn python_failure(e: oxbuild_python::Error) -> Failure {
    match e {
        oxbuild_python::Error::Lock { .. } => Failure::config(e),
        oxbuild_python::Error::Index(_) => Failure::registry(e),
        _ => Failure::build(e),
    }
}

pub async fn run(args: BuildArgs, out: Reporter) -> Result<(), Failure> {
    let cfg = Config::load(&args.dir).map_err(Failure::config)?;
    let epoch = source_date_epoch()?;
    let platform = platform(args.platform.as_deref())?;
    let (base_text, base_what) = match &args.base {
        Some(b) => (b.clone(), "--base"),
        None => (cfg.image.base.clone(), "[image] base"),
    };
    let base = Location::parse(&base_text, base_what)?;
    let repository = cfg
        .image
        .repository
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

    let store = store()?;
    let client = client(&args.registry)?;

    out.step(format!("reading base {base} ({platform})"));
    let opened = base.open(&client, &platform, &store).await?;
    // The user layer needs the base's /etc/passwd, so its layers come local (cached by digest).
    let base_image = oxbuild_registry::fetch_layers(&client, &opened.image, &store)
        .await
        .map_err(|e| Failure::registry(format!("pulling base image {base}: {e}")))?;

    let scan_base = base_image.clone();
    let base_fs = tokio::task::spawn_blocking(move || oxbuild_build::scan_base(&scan_base))
        .await
        .map_err(|e| Failure::internal(format!("reading the base failed: {e}")))?
        .map_err(Failure::build)?;

    let mut extra = Vec::new();
    let mut python_report = serde_json::Value::Null;
    if let Some(requirements) = cfg.python.requirements_path(&args.dir) {
        let base_config = base_image.config_json().map_err(Failure::input)?;
        let target = oxbuild_python::target::detect(&base_fs, &base_config).map_err(python_failure)?;
        out.step(format!(
            "python dependencies for Python {}.{} on {} ({:?}) from {}",
            target.major,
            target.minor,
            target.machine,
            target.libc,
            requirements.display()
        ));
        let settings = oxbuild_python::Settings {
            requirements,
            prefix: cfg.python.venv.clone(),
            index_url: cfg.python.index_url.clone(),
            extra_index_urls: cfg.python.extra_index_url.clone(),
            find_links: cfg.python.find_links.iter().map(|f| args.dir.join(f)).collect(),
            no_index: cfg.python.no_index,
        };
        let layer_cache = cache_dir().join("python-layers");
        let prepared =
            oxbuild_python::prepare(&settings, &target, &store, &layer_cache, epoch).await.map_err(python_failure)?;
        out.step(if prepared.reused {
            format!("  reused the dependency layer ({} wheels, unchanged lock)", prepared.wheels.len())
        } else {
            format!("  installed {} wheels ({} downloaded)", prepared.wheels.len(), prepared.downloaded)
        });
        let base_path = base_config["config"]["Env"]
            .as_array()
            .and_then(|a| a.iter().filter_map(|v| v.as_str()).find_map(|e| e.strip_prefix("PATH=")))
            .map(str::to_string);
        python_report = json!({
            "interpreter": target.interpreter,
            "version": target.full_version,
            "machine": target.machine,
            "libc": format!("{:?}", target.libc),
            "key": prepared.key,
            "reused": prepared.reused,
            "downloaded": prepared.downloaded,
            "wheels": prepared.wheels,
            "layer": prepared.blob.digest,
        });
        extra.push(oxbuild_build::ExtraLayer {
            blob: prepared.blob,
            created_by: format!("oxbuild: python dependencies into {}", settings.prefix),
            env: oxbuild_python::env(&settings.prefix, base_path.as_deref()),
        });
    }

    out.step(format!("building {}", args.dir.display()));
    let dir = args.dir.clone();
    let build_store = store.clone();
    let build_base = base_image.clone();
    let built = tokio::task::spawn_blocking(move || {
        oxbuild_build::build(&dir, &cfg, &build_base, &base_fs, &extra, &build_store, epoch)
    })
    .await
    .map_err(|e| Failure::internal(format!("the build task failed: {e}")))?
    .map_err(Failure::build)?;
    for w in &built.warnings {
        out.warn(w);
    }
    let image = &built.image;
    let digest = image.digest();
    let names: Vec<String> = tags.iter().map(ToString::to_string).collect();

    let mut written = Vec::new();
    for output in &outputs {
        out.step(format!("writing {output}"));
        output.write(&client, image, &store, &names, &[]).await?;
        written.push(output.to_string());
    }

    let mount_from: Vec<MountSource> = opened.resolved.iter().map(|r| MountSource::of(r, &base_image)).collect();
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
    let base_name = opened.resolved.as_ref().map(ToString::to_string).unwrap_or_else(|| base.to_string());
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
        "python": python_report,
    });
    let mut human = vec![digest.to_string()];
    if !out.quiet {
        human.extend(pushed.iter().filter(|p| !p.contains('@')).map(|p| format!("pushed {p}")));
        human.extend(written.iter().map(|w| format!("wrote {w}")));
    }
    out.result(&report, &human);
    Ok(())
}
