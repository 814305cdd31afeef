//! Putting a built image into a container runtime (podman or docker), the
//! only part of oxbuild that needs one: through a docker-archive and `load`,
//! so no registry is needed.

use std::path::Path;

use oxbuild_cache::Bucket;
use oxbuild_image::Image;
use oxbuild_runtime::Runtime;

use crate::error::task;
use crate::{Error, Kind, Services};

/// The name an image of the app in `dir` gets in the runtime: unique to its
/// digest, so a rerun (or a parallel run of the same image) reuses it.
pub fn runtime_name(dir: &Path, image: &Image) -> String {
    let app_name: String = dir
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().to_lowercase()))
        .unwrap_or_else(|| "app".into())
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' { c } else { '-' })
        .collect();
    format!("localhost/oxbuild/{}:{}", app_name.trim_matches(['-', '.', '_']), &image.digest().hex()[..16])
}

/// Puts `image` into `runtime` as `name`, unless it is there already.
/// Layers still in a registry (the base, a cached dependency layer) are fetched first.
pub async fn load(runtime: &Runtime, image: &Image, name: &str, services: &Services) -> Result<(), Error> {
    if runtime.has_image(name).await {
        return Ok(());
    }
    services.events.step(&format!("loading {name} into {}", runtime.program()));
    let dir = services.cache.bucket(Bucket::Tmp)?;
    let archive = tempfile::Builder::new()
        .suffix(".tar")
        .tempfile_in(&dir)
        .map_err(|e| Error::new(Kind::Output, format!("creating an archive in {}: {e}", dir.display())))?;
    let local = oxbuild_registry::fetch_layers(&services.client, image, &services.store)
        .await
        .map_err(|e| Error::new(Kind::Registry, format!("fetching layers to load {name}: {e}")))?;
    let (path, names) = (archive.path().to_path_buf(), vec![name.to_string()]);
    tokio::task::spawn_blocking(move || oxbuild_image::archive::write_archive(&local, &[], &path, &names))
        .await
        .map_err(task)?
        .map_err(|e| Error::new(Kind::Output, e))?;
    runtime.load(archive.path(), name).await?;
    Ok(())
}
