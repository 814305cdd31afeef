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

/// Attaches each of `referrers` to its subject in `r`'s repository; how they
/// were listed, when there were any.
pub(crate) async fn attach(
    target: &Target<'_>,
    r: &Reference,
    referrers: &[Image],
) -> Result<Option<oxbuild_registry::Listed>, Error> {
    let mut listed = None;
    for artifact in referrers {
        let (_, how) = oxbuild_registry::attach(target.client, r, artifact).await.map_err(|e| {
            Error::Registry(format!(
                "attaching {} to {}: {e}",
                artifact.artifact_type().unwrap_or("an artifact"),
                r.name()
            ))
        })?;
        listed = Some(how);
    }
    Ok(listed)
}
