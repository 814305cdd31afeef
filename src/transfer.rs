//! `oxbuild inspect`, `oxbuild push` and `oxbuild copy`: an image from any
//! location, shown or written to any other.

use oxbuild_engine::Location;
use oxbuild_engine::location::Content;
use oxbuild_image::Image;
use oxbuild_registry::PushReport;
use serde_json::json;

use crate::build::{platform, services};
use crate::cli::{CopyArgs, InspectArgs};
use crate::report::{Failure, Reporter};

/// The one line a push reports.
pub fn describe_push(r: &PushReport) -> String {
    let blobs = |n: u64| if n == 1 { "1 blob".to_string() } else { format!("{n} blobs") };
    format!(
        "  {} uploaded ({} bytes), {} mounted, {} already there",
        blobs(r.blobs_uploaded),
        r.bytes_uploaded,
        r.blobs_mounted,
        r.blobs_skipped
    )
}

pub async fn inspect(args: InspectArgs, out: Reporter) -> Result<(), Failure> {
    let source = Location::parse(&args.source, "SOURCE")?;
    let (services, platform) = (services(&args.registry, out)?, platform(args.platform.as_deref())?);
    let opened = match source.open_any(&services.target(), platform.as_ref()).await? {
        Content::Image(opened) => *opened,
        Content::Index(opened) => {
            let index = &opened.index;
            let entries: Vec<_> = index
                .children()
                .iter()
                .map(|(d, image)| json!({"platform": d.platform.as_ref().map(ToString::to_string), "digest": d.digest, "size": d.size, "mediaType": image.media_type()}))
                .collect();
            let mut human = vec![
                format!("digest       {}", index.digest()),
                format!("media type   {}", index.media_type()),
                format!("platforms    {}", index.children().len()),
            ];
            for (d, _) in index.children() {
                let p = d.platform.as_ref().map(ToString::to_string).unwrap_or_else(|| "?".into());
                human.push(format!("  {p:16} {}", d.digest));
            }
            human.push("(--platform OS/ARCH shows one of them)".into());
            let report = json!({
                "ok": true,
                "source": source.to_string(),
                "resolved": opened.resolved.as_ref().map(ToString::to_string),
                "digest": index.digest(),
                "mediaType": index.media_type(),
                "manifests": entries,
            });
            out.result(&report, &human);
            return Ok(());
        }
    };
    let image = &opened.image;
    let manifest: serde_json::Value = serde_json::from_slice(image.manifest()).map_err(Failure::input)?;
    let config = image.config_json().map_err(Failure::input)?;
    let layers: Vec<_> = image.layers().iter().map(|l| &l.descriptor).collect();
    let referrers = source.referrers(&services.target(), &opened).await?;
    let listed: Vec<_> = referrers.iter().map(|r| crate::attest::describe(r, None)).collect();
    let mut human = describe(image, &config);
    human.push(format!("referrers    {}", referrers.len()));
    for r in &referrers {
        human.push(format!("  {}  {}", r.digest(), crate::attest::kind(r.artifact_type())));
    }
    let report = json!({
        "ok": true,
        "source": source.to_string(),
        "resolved": opened.resolved.as_ref().map(ToString::to_string),
        "digest": image.digest(),
        "mediaType": image.media_type(),
        "config": image.config_descriptor(),
        "layers": layers,
        "manifestJson": manifest,
        "configJson": config,
        "referrers": listed,
    });
    out.result(&report, &human);
    Ok(())
}

/// The human-readable summary of an image.
fn describe(image: &Image, config: &serde_json::Value) -> Vec<String> {
    let c = &config["config"];
    let field = |v: &serde_json::Value| if v.is_null() { "-".to_string() } else { v.to_string() };
    let mut lines = vec![
        format!("digest       {}", image.digest()),
        format!("media type   {}", image.media_type()),
        format!("config       {} ({} bytes)", image.config_descriptor().digest, image.config_descriptor().size),
        format!(
            "platform     {}/{}",
            config["os"].as_str().unwrap_or("?"),
            config["architecture"].as_str().unwrap_or("?")
        ),
        format!("created      {}", config["created"].as_str().unwrap_or("-")),
        format!("user         {}", c["User"].as_str().unwrap_or("-")),
        format!("workdir      {}", c["WorkingDir"].as_str().unwrap_or("-")),
        format!("entrypoint   {}", field(&c["Entrypoint"])),
        format!("cmd          {}", field(&c["Cmd"])),
        format!("healthcheck  {}", field(&c["Healthcheck"]["Test"])),
        format!("layers       {}", image.layers().len()),
    ];
    let total: u64 = image.layers().iter().map(|l| l.descriptor.size).sum();
    for l in image.layers() {
        lines.push(format!("  {}  {:>12}  {}", l.descriptor.digest, l.descriptor.size, l.descriptor.media_type));
    }
    lines.push(format!("total        {total} bytes compressed"));
    lines
}

/// `push` (DEST must be a registry) and `copy` (any DEST).
pub async fn copy(args: CopyArgs, out: Reporter, registry_only: bool) -> Result<(), Failure> {
    let source = Location::parse(&args.source, "SOURCE")?;
    let dest = Location::parse(&args.dest, "DEST")?;
    if registry_only && !dest.is_registry() {
        return Err(Failure::config(format!(
            "push writes to a registry; DEST `{dest}` is not one (use `oxbuild copy` for layouts and archives)"
        )));
    }
    let (services, platform) = (services(&args.registry, out)?, platform(args.platform.as_deref())?);
    out.step(format!("reading {source}"));
    let opened = match source.open_any(&services.target(), platform.as_ref()).await? {
        Content::Image(opened) => *opened,
        Content::Index(opened) => {
            // A whole index, every platform, with its digests unchanged.
            let names: Vec<String> = if dest.is_registry() {
                Vec::new()
            } else {
                opened.resolved.iter().filter(|r| r.tag.is_some()).map(name_without_digest).collect()
            };
            out.step(format!("writing {dest} ({} platforms)", opened.index.children().len()));
            let mount: Vec<oxbuild_registry::MountSource> = opened
                .resolved
                .iter()
                .flat_map(|r| {
                    opened.index.children().iter().map(move |(_, image)| oxbuild_registry::MountSource::of(r, image))
                })
                .collect();
            let referrers = if args.no_referrers {
                Vec::new()
            } else {
                source.index_referrers(&services.target(), &opened).await?
            };
            let written = dest.write_index(&services.target(), &opened.index, &referrers, &names, &mount).await?;
            if let Some(r) = &written.push {
                out.step(describe_push(r));
            }
            let digest = opened.index.digest();
            let json = json!({
                "ok": true,
                "digest": digest,
                "source": source.to_string(),
                "dest": dest.to_string(),
                "push": written.push,
                "manifests": opened.index.children().iter().map(|(d, _)| json!({"platform": d.platform.as_ref().map(ToString::to_string), "digest": d.digest})).collect::<Vec<_>>(),
                "referrers": written.referrers,
            });
            out.result(&json, &[digest.to_string()]);
            return Ok(());
        }
    };
    out.step(format!("writing {dest}"));
    let names: Vec<String> = if dest.is_registry() {
        Vec::new()
    } else {
        opened.resolved.iter().filter(|r| r.tag.is_some()).map(name_without_digest).collect()
    };
    let referrers = if args.no_referrers { Vec::new() } else { source.referrers(&services.target(), &opened).await? };
    crate::attest::warn_if_dropped(&dest, &referrers, out);
    let written = dest.write(&services.target(), &opened.image, &referrers, &names, &opened.mount_sources()).await?;
    let digest = opened.image.digest();
    if let Some(r) = &written.push {
        out.step(describe_push(r));
    }
    if !written.referrers.is_empty() {
        out.step(format!("  with {} referrer(s)", written.referrers.len()));
    }
    let json = json!({
        "ok": true,
        "digest": digest,
        "source": source.to_string(),
        "dest": dest.to_string(),
        "push": written.push,
        "referrers": written.referrers,
        "attached": written.attached,
    });
    out.result(&json, &[digest.to_string()]);
    Ok(())
}

fn name_without_digest(r: &oxbuild_registry::Reference) -> String {
    oxbuild_registry::Reference { digest: None, ..r.clone() }.to_string()
}
