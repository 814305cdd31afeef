//! Image archives as a source and a sink: `oci-archive:` (a tar of an OCI
//! layout) and `docker-archive:` (for `docker load` / `podman load`). oxbuild
//! writes one tar that is both kinds, and reads either, including `docker
//! save` output of any Docker version, so both locations share this file.

use std::path::Path;

use oxbuild_image::{Image, Platform};

use crate::{Error, Opened, Target};

/// Reads an archive of either kind on a blocking thread.
pub(crate) async fn open(
    target: &Target<'_>,
    file: &Path,
    name: Option<&str>,
    platform: &Platform,
) -> Result<Opened, Error> {
    let (file, name, platform, store) =
        (file.to_path_buf(), name.map(String::from), platform.clone(), target.store.clone());
    let (image, referrers) = tokio::task::spawn_blocking(move || {
        oxbuild_image::archive::read_archive(&file, name.as_deref(), &platform, &store)
    })
    .await
    .map_err(|e| Error::Input(format!("reading an archive: {e}")))?
    .map_err(|e| Error::Input(e.to_string()))?;
    Ok(Opened { image, resolved: None, referrers })
}

/// Writes an archive of either kind on a blocking thread: oxbuild writes one
/// tar that is both, so `podman load` and `docker load` accept either.
pub(crate) async fn write(
    image: Image,
    referrers: Vec<Image>,
    file: &Path,
    name: Option<&str>,
    names: &[String],
) -> Result<(), Error> {
    let mut all: Vec<String> = name.iter().map(|n| n.to_string()).collect();
    all.extend(names.iter().cloned());
    let file = file.to_path_buf();
    tokio::task::spawn_blocking(move || oxbuild_image::archive::write_archive(&image, &referrers, &file, &all))
        .await
        .map_err(|e| Error::Output(format!("writing an archive: {e}")))?
        .map_err(|e| Error::Output(e.to_string()))
}

/// Reads an archive whole: its index with every image, or its one image.
pub(crate) async fn open_any(target: &Target<'_>, file: &Path, name: Option<&str>) -> Result<crate::Content, Error> {
    let (file, name, store) = (file.to_path_buf(), name.map(String::from), target.store.clone());
    let found = tokio::task::spawn_blocking(move || {
        oxbuild_image::archive::read_archive_any(&file, name.as_deref(), None, &store)
    })
    .await
    .map_err(|e| Error::Input(format!("reading an archive: {e}")))?
    .map_err(|e| Error::Input(e.to_string()))?;
    Ok(match found {
        oxbuild_image::archive::Found::Index(index, referrers) => {
            crate::Content::Index(crate::OpenedIndex { index, resolved: None, referrers })
        }
        oxbuild_image::archive::Found::Image(image, referrers) => {
            crate::Content::Image(Box::new(Opened { image: *image, resolved: None, referrers }))
        }
    })
}

/// Writes an index with all its images as an oci-archive.
pub(crate) async fn write_index(
    index: oxbuild_image::Index,
    referrers: Vec<Image>,
    file: &Path,
    name: Option<&str>,
    names: &[String],
) -> Result<(), Error> {
    let mut all: Vec<String> = name.iter().map(|n| n.to_string()).collect();
    all.extend(names.iter().cloned());
    let file = file.to_path_buf();
    tokio::task::spawn_blocking(move || oxbuild_image::archive::write_archive_index(&index, &referrers, &file, &all))
        .await
        .map_err(|e| Error::Output(format!("writing an archive: {e}")))?
        .map_err(|e| Error::Output(e.to_string()))
}
