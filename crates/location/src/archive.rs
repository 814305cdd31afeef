//! Image archives as a source and a sink: `oci-archive:` (a tar of an OCI
//! layout) and `docker-archive:` (for `docker load` / `podman load`). oxbuild
//! writes one tar that is both kinds, and reads either, including `docker
//! save` output of any Docker version, so both locations share this file.

use std::path::{Path, PathBuf};

use oxbuild_image::{Image, Index, Platform};

use crate::{Content, Error, Opened, Target};

/// Reads an archive of either kind on a blocking thread: the image for
/// `platform`, or without one, its index whole (or its one image).
pub(crate) async fn read(
    target: &Target<'_>,
    file: &Path,
    name: Option<&str>,
    platform: Option<&Platform>,
) -> Result<Content, Error> {
    let (file, name, platform, store) =
        (file.to_path_buf(), name.map(String::from), platform.cloned(), target.store.clone());
    let found = tokio::task::spawn_blocking(move || {
        oxbuild_image::archive::read_archive_any(&file, name.as_deref(), platform.as_ref(), &store)
    })
    .await
    .map_err(|e| Error::Input(format!("reading an archive: {e}")))?
    .map_err(|e| Error::Input(e.to_string()))?;
    Ok(Content::from(found))
}

/// Reads the image for `platform` from an archive of either kind.
pub(crate) async fn open(
    target: &Target<'_>,
    file: &Path,
    name: Option<&str>,
    platform: &Platform,
) -> Result<Opened, Error> {
    match read(target, file, name, Some(platform)).await? {
        Content::Image(opened) => Ok(*opened),
        Content::Index(_) => unreachable!("a platform was asked for"),
    }
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
    write_with(file, name, names, move |file, all| oxbuild_image::archive::write_archive(&image, &referrers, file, all))
        .await
}

/// Writes an index with all its images as an oci-archive.
pub(crate) async fn write_index(
    index: Index,
    referrers: Vec<Image>,
    file: &Path,
    name: Option<&str>,
    names: &[String],
) -> Result<(), Error> {
    write_with(file, name, names, move |file, all| {
        oxbuild_image::archive::write_archive_index(&index, &referrers, file, all)
    })
    .await
}

/// Runs `write` on a blocking thread with the archive's path and every
/// name it records (`name`, then `names`).
async fn write_with(
    file: &Path,
    name: Option<&str>,
    names: &[String],
    write: impl FnOnce(&PathBuf, &[String]) -> Result<(), oxbuild_image::Error> + Send + 'static,
) -> Result<(), Error> {
    let mut all: Vec<String> = name.iter().map(|n| n.to_string()).collect();
    all.extend(names.iter().cloned());
    let file = file.to_path_buf();
    tokio::task::spawn_blocking(move || write(&file, &all))
        .await
        .map_err(|e| Error::Output(format!("writing an archive: {e}")))?
        .map_err(|e| Error::Output(e.to_string()))
}
