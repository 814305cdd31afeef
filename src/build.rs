//! `oxbuild build`: pull the base, build, then write outputs and push.

use std::collections::BTreeMap;
use std::path::PathBuf;

use oxbuild_config::Config;
use oxbuild_image::{BlobStore, Platform};
use oxbuild_registry::{Client, ClientOptions, Keychain, Reference};
use serde_json::json;

use crate::cli::{BuildArgs, RegistryArgs};
use crate::report::{Failure, Reporter};

/// Where blobs are cached between runs.
fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("OXBUILD_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("oxbuild")
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

enum Output {
    Layout(PathBuf),
}

fn parse_output(s: &str) -> Result<Output, Failure> {
    match s.split_once(':') {
        Some(("oci", path)) if !path.is_empty() => Ok(Output::Layout(PathBuf::from(path))),
        _ => Err(Failure::config(format!("--output `{s}` is not supported: use oci:DIR to write an OCI image layout"))),
    }
}

pub async fn run(args: BuildArgs, out: Reporter) -> Result<(), Failure> {
    let cfg = Config::load(&args.dir).map_err(Failure::config)?;
    let epoch = source_date_epoch()?;
    let platform: Platform = match &args.platform {
        Some(p) => p.parse().map_err(|e| Failure::config(format!("--platform: {e}")))?,
        None => Platform::host(),
    };
    let base_text = args.base.clone().unwrap_or_else(|| cfg.image.base.clone());
    let base_ref = Reference::parse(&base_text).map_err(|e| Failure::config(format!("[image] base: {e}")))?;
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
    let outputs: Vec<Output> = args.outputs.iter().map(|o| parse_output(o)).collect::<Result<_, _>>()?;
    if args.push && tags.is_empty() && repository.is_none() {
        return Err(Failure::config(
            "--push needs somewhere to go: give --tag registry/repo:tag, or set [image] repository in oxbuild.toml",
        ));
    }

    let store = BlobStore::open(cache_dir().join("blobs")).map_err(Failure::output)?;
    let client = client(&args.registry)?;

    out.step(format!("pulling base {base_ref} ({platform})"));
    let pulled = oxbuild_registry::pull(&client, &base_ref, &platform, &store).await.map_err(|e| {
        let hint = match e {
            oxbuild_registry::Error::NotFound { .. } => "; check [image] base in oxbuild.toml, or --base",
            _ => "",
        };
        Failure::registry(format!("pulling base image {base_ref}: {e}{hint}"))
    })?;

    out.step(format!("building {}", args.dir.display()));
    let dir = args.dir.clone();
    let base_image = pulled.image.clone();
    let build_store = store.clone();
    let built = tokio::task::spawn_blocking(move || oxbuild_build::build(&dir, &cfg, &base_image, &build_store, epoch))
        .await
        .map_err(|e| Failure::internal(format!("the build task failed: {e}")))?
        .map_err(Failure::build)?;
    for w in &built.warnings {
        out.warn(w);
    }
    let image = &built.image;
    let digest = image.digest();

    let mut written = Vec::new();
    for output in &outputs {
        match output {
            Output::Layout(path) => {
                out.step(format!("writing OCI layout {}", path.display()));
                let name = tags.first().and_then(|t| t.tag.clone());
                oxbuild_image::layout::write_layout(image, path, name.as_deref()).map_err(Failure::output)?;
                written.push(format!("oci:{}", path.display()));
            }
        }
    }

    let mount_source = oxbuild_registry::MountSource::of(&pulled.resolved, &pulled.image);
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
            let report =
                oxbuild_registry::push(&client, image, &target, &repo_tags, std::slice::from_ref(&mount_source))
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
    let report = json!({
        "ok": true,
        "digest": digest,
        "mediaType": image.media_type(),
        "base": pulled.resolved.to_string(),
        "platform": platform.to_string(),
        "config": image.config_descriptor().digest,
        "layers": layers,
        "added": built.added,
        "pushed": pushed,
        "push": push_reports,
        "outputs": written,
        "warnings": built.warnings,
    });
    let mut human = vec![digest.to_string()];
    if !out.quiet {
        human.extend(pushed.iter().filter(|p| !p.contains('@')).map(|p| format!("pushed {p}")));
    }
    out.result(&report, &human);
    Ok(())
}
