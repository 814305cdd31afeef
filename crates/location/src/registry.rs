//! A registry as a source and a sink.

use oxbuild_image::{Image, Platform};
use oxbuild_registry::{MountSource, PushReport, Reference};

use crate::{Error, Opened, Target};

/// Reads `r` without fetching its layers: they stay in the registry until a
/// write or a build needs them.
pub(crate) async fn open(target: &Target<'_>, r: &Reference, platform: &Platform) -> Result<Opened, Error> {
    let pulled = oxbuild_registry::open_cached(target.client, r, platform, target.store).await.map_err(|e| {
        let hint = match e {
            oxbuild_registry::Error::NotFound { .. } => {
                "; check the reference (for a base: [image] base in oxbuild.toml, or --base)"
            }
            _ => "",
        };
        Error::Registry(format!("reading {r}: {e}{hint}"))
    })?;
    Ok(Opened { image: pulled.image, resolved: Some(pulled.resolved), referrers: Vec::new() })
}

/// Pushes `image` under `r`'s tag, or by digest when it has none.
pub(crate) async fn write(
    target: &Target<'_>,
    r: &Reference,
    image: &Image,
    mount_from: &[MountSource],
) -> Result<PushReport, Error> {
    let tags: Vec<String> = r.tag.iter().cloned().collect();
    oxbuild_registry::push(target.client, image, r, &tags, mount_from)
        .await
        .map_err(|e| Error::Registry(format!("pushing to {}: {e}", r.name())))
}

/// One referrer attached to a registry repository.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Attached {
    /// What it holds.
    #[serde(rename = "artifactType")]
    pub artifact_type: Option<String>,
    /// Its manifest digest there (a signature's is that of the merged `.sig` manifest).
    pub digest: oxbuild_image::Digest,
    /// How it was made findable.
    pub listed: oxbuild_registry::Listed,
    /// Blob bytes uploaded for it.
    pub bytes_uploaded: u64,
}

/// Attaches each of `referrers` to its subject in `r`'s repository. A
/// signature joins the image's `sha256-<hex>.sig` manifest (cosign's place
/// for every signature of an image) rather than replacing it.
pub async fn attach(target: &Target<'_>, r: &Reference, referrers: &[Image]) -> Result<Vec<Attached>, Error> {
    let staged = stage(target, r, referrers).await?;
    attach_staged(target, r, referrers, staged).await
}

/// The SBOMs and provenance of `referrers` pushed by digest (see
/// `oxbuild_registry::stage_referrers`): this can run while their subject is
/// pushed; [`attach_staged`] then lists them, and attaches the signatures.
#[derive(Debug)]
pub struct Staged {
    staged: oxbuild_registry::StagedReferrers,
}

/// What is not a signature among `referrers`.
fn unsigned(referrers: &[Image]) -> Vec<Image> {
    referrers.iter().filter(|a| !oxbuild_sign::is_signature(a)).cloned().collect()
}

fn kinds(artifacts: &[Image]) -> String {
    artifacts.iter().map(|a| a.artifact_type().unwrap_or("an artifact")).collect::<Vec<_>>().join(", ")
}

/// Pushes the SBOMs and provenance of `referrers` by digest.
pub async fn stage(target: &Target<'_>, r: &Reference, referrers: &[Image]) -> Result<Staged, Error> {
    let batch = unsigned(referrers);
    let staged = oxbuild_registry::stage_referrers(target.client, r, &batch)
        .await
        .map_err(|e| Error::Registry(format!("attaching {} to {}: {e}", kinds(&batch), r.name())))?;
    Ok(Staged { staged })
}

/// Lists what [`stage`] pushed and attaches the signatures of `referrers`;
/// one entry per referrer, in their order.
pub async fn attach_staged(
    target: &Target<'_>,
    r: &Reference,
    referrers: &[Image],
    staged: Staged,
) -> Result<Vec<Attached>, Error> {
    let what = |a: &Image| a.artifact_type().unwrap_or("an artifact").to_string();
    let fail =
        |w: String| move |e: oxbuild_registry::Error| Error::Registry(format!("attaching {w} to {}: {e}", r.name()));
    let batch = unsigned(referrers);
    let listed = oxbuild_registry::list_referrers(target.client, r, &batch, &staged.staged)
        .await
        .map_err(fail(kinds(&batch)))?;
    let mut batched = batch.iter().zip(staged.staged.reports).zip(listed);
    let mut out = Vec::new();
    for artifact in referrers {
        if !oxbuild_sign::is_signature(artifact) {
            let Some(((a, push), listed)) = batched.next() else { continue };
            out.push(Attached {
                artifact_type: a.artifact_type().map(str::to_string),
                digest: a.digest(),
                listed,
                bytes_uploaded: push.bytes_uploaded,
            });
            continue;
        }
        let subject = artifact.subject().ok_or_else(|| {
            Error::Input(format!("{} ({}) names no subject to attach to", what(artifact), artifact.digest()))
        })?;
        let tag = oxbuild_sign::sig_tag(&subject.digest);
        let subject_d = subject.clone();
        let make = move |layers| {
            oxbuild_sign::signature_image(layers, &subject_d)
                .map_err(|e| oxbuild_registry::Error::Invalid(e.to_string()))
        };
        let (merged, listed) =
            oxbuild_registry::accumulate(target.client, r, &subject.digest, &tag, artifact.layers(), &make)
                .await
                .map_err(fail(what(artifact)))?;
        out.push(Attached {
            artifact_type: merged.artifact_type().map(str::to_string),
            digest: merged.digest(),
            listed,
            bytes_uploaded: 0,
        });
    }
    Ok(out)
}
