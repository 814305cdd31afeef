//! A registry as a source and a sink.

use oxbuild_image::{Image, Platform};
use oxbuild_registry::{MountSource, PushReport, Reference};

use crate::{Error, Opened, Target};

/// Reads `r` without fetching its layers: they stay in the registry until a
/// write or a build needs them.
pub(crate) async fn open(target: &Target<'_>, r: &Reference, platform: &Platform) -> Result<Opened, Error> {
    let pulled = oxbuild_registry::open(target.client, r, platform).await.map_err(|e| {
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
    let mut out = Vec::new();
    for artifact in referrers {
        let what = || artifact.artifact_type().unwrap_or("an artifact").to_string();
        let fail = |e: oxbuild_registry::Error| Error::Registry(format!("attaching {} to {}: {e}", what(), r.name()));
        let subject = artifact
            .subject()
            .ok_or_else(|| Error::Input(format!("{} ({}) names no subject to attach to", what(), artifact.digest())))?;
        if oxbuild_sign::is_signature(artifact) {
            let tag = oxbuild_sign::sig_tag(&subject.digest);
            let subject_d = subject.clone();
            let make = move |layers| {
                oxbuild_sign::signature_image(layers, &subject_d)
                    .map_err(|e| oxbuild_registry::Error::Invalid(e.to_string()))
            };
            let (merged, listed) =
                oxbuild_registry::accumulate(target.client, r, &subject.digest, &tag, artifact.layers(), &make)
                    .await
                    .map_err(fail)?;
            out.push(Attached {
                artifact_type: merged.artifact_type().map(str::to_string),
                digest: merged.digest(),
                listed,
                bytes_uploaded: 0,
            });
            continue;
        }
        let (push, listed) = oxbuild_registry::attach(target.client, r, artifact).await.map_err(fail)?;
        out.push(Attached {
            artifact_type: artifact.artifact_type().map(str::to_string),
            digest: artifact.digest(),
            listed,
            bytes_uploaded: push.bytes_uploaded,
        });
    }
    Ok(out)
}
