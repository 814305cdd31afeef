//! The SBOMs and provenance that go with an image oxbuild pushes or writes
//! (`--no-attach`, `--sbom-dir`), and `oxbuild sbom`. The documents and the
//! referrers mechanism are in `oxbuild_engine::attest` and
//! `oxbuild_registry::referrers`; this wires them to the flags.

use std::time::SystemTime;

use oxbuild_engine::{Assembled, Location, Services};
use oxbuild_image::{Image, Platform};
use oxbuild_registry::Reference;
use serde_json::json;

use crate::build::{platform, services};
use crate::cli::{AttestArgs, SbomArgs};
use crate::report::{Failure, Reporter};

/// The plain files `--sbom-dir` gets.
pub const FILES: [&str; 3] = ["sbom.spdx.json", "sbom.cdx.json", "provenance.intoto.json"];

/// The referrers of the production image of `assembled` (none with
/// `--no-attach`), after writing the documents to `--sbom-dir` when asked.
pub fn prepare(
    assembled: &Assembled,
    started: SystemTime,
    args: &AttestArgs,
    services: &Services,
    out: Reporter,
) -> Result<Vec<Image>, Failure> {
    let image = &assembled.prod.image;
    let docs = oxbuild_engine::attest::documents(assembled, image, started, SystemTime::now());
    if let Some(dir) = &args.sbom_dir {
        std::fs::create_dir_all(dir).map_err(|e| Failure::output(format!("--sbom-dir {}: {e}", dir.display())))?;
        for (name, bytes) in FILES.iter().zip([&docs.spdx, &docs.cyclonedx, &docs.provenance]) {
            let path = dir.join(name);
            std::fs::write(&path, bytes).map_err(|e| Failure::output(format!("writing {}: {e}", path.display())))?;
        }
        out.step(format!("wrote the SBOMs and the provenance into {}", dir.display()));
    }
    if args.no_attach {
        return Ok(Vec::new());
    }
    docs.artifacts(image, assembled.epoch, &services.store).map_err(Failure::from)
}

/// A short name for an artifact type, for people.
pub fn kind(artifact_type: Option<&str>) -> &str {
    match artifact_type {
        Some(oxbuild_sbom::SPDX_MEDIA_TYPE) => "SBOM (SPDX)",
        Some(oxbuild_sbom::CYCLONEDX_MEDIA_TYPE) => "SBOM (CycloneDX)",
        Some(oxbuild_sbom::IN_TOTO_MEDIA_TYPE) => "provenance",
        Some(other) => other,
        None => "artifact",
    }
}

/// Attaches `referrers` to their subject in `repo`, reporting each.
pub async fn attach(
    services: &Services,
    repo: &Reference,
    referrers: &[Image],
    out: Reporter,
) -> Result<Vec<serde_json::Value>, Failure> {
    let mut report = Vec::new();
    for artifact in referrers {
        let (push, listed) = oxbuild_registry::attach(&services.client, repo, artifact).await.map_err(|e| {
            Failure::registry(format!("attaching the {} to {}: {e}", kind(artifact.artifact_type()), repo.name()))
        })?;
        let how = match listed {
            oxbuild_registry::Listed::Api => "referrers API".to_string(),
            oxbuild_registry::Listed::FallbackTag => {
                let subject = artifact.subject().map(|s| s.digest.clone()).unwrap_or_else(|| artifact.digest());
                format!("tag {}", oxbuild_registry::fallback_tag(&subject))
            }
        };
        out.step(format!("  attached the {} ({}, listed by {how})", kind(artifact.artifact_type()), artifact.digest()));
        report.push(describe(artifact, Some(json!({"listed": listed, "bytes_uploaded": push.bytes_uploaded}))));
    }
    Ok(report)
}

/// A referrer as JSON reports list it.
pub fn describe(artifact: &Image, extra: Option<serde_json::Value>) -> serde_json::Value {
    let size: u64 = artifact.layers().iter().map(|l| l.descriptor.size).sum::<u64>() + artifact.manifest().len() as u64;
    let mut v = json!({
        "artifactType": artifact.artifact_type(),
        "digest": artifact.digest(),
        "bytes": size,
        "annotations": artifact.annotations(),
    });
    if let Some(serde_json::Value::Object(m)) = extra {
        v.as_object_mut().expect("an object").extend(m);
    }
    v
}

/// Warns when `dest` cannot carry `referrers`.
pub fn warn_if_dropped(dest: &Location, referrers: &[Image], out: Reporter) {
    if !referrers.is_empty() && !dest.holds_referrers() {
        out.warn(format!(
            "{dest}: a docker-archive has no place for referrers, so its {} referrer(s) (SBOMs, provenance) are left out; use oci-archive: (podman load reads it too), or --sbom-dir",
            referrers.len()
        ));
    }
}

/// `oxbuild sbom IMAGE`: prints the attached SBOM as it was stored.
pub async fn sbom(args: SbomArgs, out: Reporter) -> Result<(), Failure> {
    let source = Location::parse(&args.image, "IMAGE")?;
    let (services, platform) = (services(&args.registry, out)?, platform(args.platform.as_deref())?);
    let opened = source.open(&services.target(), &platform.unwrap_or_else(Platform::host)).await?;
    let referrers = source.referrers(&services.target(), &opened).await?;
    let format = args.format.name();
    let Some(bytes) = oxbuild_engine::attest::sbom_of(&referrers, format, &services).await? else {
        let have: Vec<&str> = referrers.iter().map(|r| kind(r.artifact_type())).collect();
        return Err(Failure::input(format!(
            "{source} ({}) has no {format} SBOM attached{}; oxbuild attaches one whenever it pushes or writes an image (unless --no-attach)",
            opened.image.digest(),
            if have.is_empty() { String::new() } else { format!(" (it has: {})", have.join(", ")) }
        )));
    };
    // The document itself is the result, as stored: JSON already.
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&bytes).and_then(|_| stdout.write_all(b"\n")).map_err(Failure::output)?;
    Ok(())
}
