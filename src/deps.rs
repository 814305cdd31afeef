//! The dependency layer with its two caches: the local one (in the blob store)
//! and, with `--cache-repo`, a registry repository that stateless CI runners
//! share. A layer in the cache repository is a one-layer image tagged
//! `deps-<key>`, found with one manifest request, so a fresh runner reuses it
//! without looking at a single wheel.

use std::path::Path;

use oxbuild_image::{BlobStore, Format, Image, Layer, Platform};
use oxbuild_python::{Planned, Prepared, Settings, Target};
use oxbuild_registry::{Client, Reference};
use serde_json::json;

use crate::report::{Failure, Reporter};

/// Where a prepared layer came from.
pub const BUILT: &str = "built";
/// From the local layer cache.
pub const LOCAL: &str = "local cache";
/// From the cache repository.
pub const REMOTE: &str = "cache repository";

/// The tag of a layer in the cache repository.
fn cache_tag(key: &str) -> String {
    format!("deps-{}", &key[..key.len().min(64)])
}

/// Makes or reuses the layer; returns it and where it came from.
#[allow(clippy::too_many_arguments)]
pub async fn layer(
    settings: &Settings,
    target: &Target,
    store: &BlobStore,
    layer_cache: &Path,
    epoch: u64,
    cache_repo: Option<&Reference>,
    client: &Client,
    out: Reporter,
) -> Result<(Prepared, &'static str), Failure> {
    let planned = oxbuild_python::plan(settings, target, epoch).map_err(crate::build::python_failure)?;
    if let Some(p) = oxbuild_python::from_cache(&planned, layer_cache, store) {
        return Ok((p, LOCAL));
    }
    if let Some(repo) = cache_repo
        && let Some(p) = from_repository(&planned, repo, client, store, layer_cache, out).await
    {
        return Ok((p, REMOTE));
    }
    let prepared = oxbuild_python::build(&planned, settings, target, store, layer_cache, epoch)
        .await
        .map_err(crate::build::python_failure)?;
    if let Some(repo) = cache_repo {
        to_repository(&prepared, repo, client, out).await;
    }
    Ok((prepared, BUILT))
}

/// The layer from the cache repository; None (with a note) when it is not there
/// or cannot be had, so that the build goes on and makes it.
async fn from_repository(
    planned: &Planned,
    repo: &Reference,
    client: &Client,
    store: &BlobStore,
    layer_cache: &Path,
    out: Reporter,
) -> Option<Prepared> {
    let tagged = repo.with_tag(&cache_tag(&planned.key));
    let opened = match oxbuild_registry::open(client, &tagged, &Platform::host()).await {
        Ok(o) => o,
        Err(oxbuild_registry::Error::NotFound { .. }) => return None,
        Err(e) => {
            out.warn(format!("cache repository {}: {e}; building the layer here", repo.name()));
            return None;
        }
    };
    let image = oxbuild_registry::fetch_layers(client, &opened.image, store).await.ok()?;
    let config = image.config_json().ok()?;
    let layer = image.layers().first()?;
    let diff_id = config["rootfs"]["diff_ids"][0].as_str()?.parse().ok()?;
    let wheels: Vec<String> =
        config["oxbuild"]["wheels"].as_array()?.iter().filter_map(|w| w.as_str().map(String::from)).collect();
    let blob = oxbuild_image::LayerBlob {
        path: layer.path().ok()?.to_path_buf(),
        digest: layer.descriptor.digest.clone(),
        size: layer.descriptor.size,
        diff_id,
        compression: oxbuild_image::LayerCompression::Gzip,
    };
    let _ = oxbuild_python::remember(layer_cache, &planned.key, &blob, wheels.clone());
    out.step(format!("  dependency layer found in {}", tagged));
    Some(Prepared { blob, key: planned.key.clone(), reused: true, wheels, downloaded: 0, pins: planned.all.clone() })
}

/// Stores a layer made here in the cache repository. A failure only warns:
/// the build itself has what it needs.
async fn to_repository(prepared: &Prepared, repo: &Reference, client: &Client, out: Reporter) {
    let config = json!({
        "architecture": Platform::host().architecture,
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [prepared.blob.diff_id]},
        "oxbuild": {"kind": "python-dependency-layer", "key": prepared.key, "wheels": prepared.wheels},
    });
    let layer = Layer::file(prepared.blob.descriptor(Format::Oci.gzip_layer()), prepared.blob.path.clone());
    let image = match Image::assemble(Format::Oci, &config, vec![layer], &Default::default()) {
        Ok(i) => i,
        Err(e) => return out.warn(format!("cache repository: {e}")),
    };
    let tag = cache_tag(&prepared.key);
    match oxbuild_registry::push(client, &image, repo, std::slice::from_ref(&tag), &[]).await {
        Ok(_) => out.step(format!("  stored the dependency layer as {}", repo.with_tag(&tag))),
        Err(e) => out.warn(format!("could not store the dependency layer in {}: {e}", repo.name())),
    }
}
