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

/// Where a dependency layer came from: made here.
pub const BUILT: &str = "built";
/// From the local layer cache.
pub const LOCAL: &str = "local cache";
/// From the cache repository.
pub const REMOTE: &str = "cache repository";

/// The tag of a layer in the cache repository.
fn cache_tag(key: &str) -> String {
    format!("deps-{}", &key[..key.len().min(64)])
}

/// `blob` as a layer with its OCI media type (gzip or zstd, both of which OCI
/// has); the build turns it into the image's format.
fn oci_layer(blob: &oxbuild_image::LayerBlob) -> Layer {
    Layer::file(blob.descriptor_in(Format::Oci).expect("OCI has every compression"), blob.path.clone())
}

/// A dependency layer ready for the image.
pub struct DepLayer {
    /// The layer: on disk, or left in the cache repository (mounted or
    /// streamed from there when pushed, fetched only when written out).
    pub layer: Layer,
    /// Its uncompressed digest.
    pub diff_id: oxbuild_image::Digest,
    /// Its cache key.
    pub key: String,
    /// The wheels in it.
    pub wheels: Vec<String>,
    /// Wheels downloaded to make it (0 when it was reused).
    pub downloaded: usize,
    /// Every pin of the lock that applies to the target.
    pub pins: Vec<oxbuild_python::Pin>,
    /// Where it came from: [`BUILT`], [`LOCAL`] or [`REMOTE`].
    pub source: &'static str,
    /// Warnings about yanked wheels (when it was built here).
    pub yanked: Vec<String>,
}

impl DepLayer {
    fn local(prepared: Prepared, source: &'static str) -> DepLayer {
        let blob = prepared.blob;
        DepLayer {
            layer: oci_layer(&blob),
            diff_id: blob.diff_id,
            key: prepared.key,
            wheels: prepared.wheels,
            downloaded: prepared.downloaded,
            pins: prepared.pins,
            source,
            yanked: prepared.yanked,
        }
    }

    /// True when no wheel had to be installed for it.
    pub fn reused(&self) -> bool {
        self.source != BUILT
    }
}

/// Makes or reuses the layer.
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
) -> Result<DepLayer, Failure> {
    let planned = oxbuild_python::plan(settings, target, epoch).map_err(crate::build::python_failure)?;
    if let Some(p) = oxbuild_python::from_cache(&planned, layer_cache, store) {
        return Ok(DepLayer::local(p, LOCAL));
    }
    if let Some(repo) = cache_repo
        && let Some(found) = from_repository(&planned, repo, client, out).await
    {
        return Ok(found);
    }
    let prepared = oxbuild_python::build(&planned, settings, target, store, layer_cache, epoch)
        .await
        .map_err(crate::build::python_failure)?;
    if let Some(repo) = cache_repo {
        to_repository(&prepared, repo, client, out).await;
    }
    Ok(DepLayer::local(prepared, BUILT))
}

/// The layer from the cache repository, left there: one manifest and one
/// config request, no layer download. None (with a note) when it is not there
/// or cannot be had, so that the build goes on and makes it.
async fn from_repository(planned: &Planned, repo: &Reference, client: &Client, out: Reporter) -> Option<DepLayer> {
    let tagged = repo.with_tag(&cache_tag(&planned.key));
    let opened = match oxbuild_registry::open(client, &tagged, &Platform::host()).await {
        Ok(o) => o,
        Err(oxbuild_registry::Error::NotFound { .. }) => return None,
        Err(e) => {
            out.warn(format!("cache repository {}: {e}; building the layer here", repo.name()));
            return None;
        }
    };
    let config = opened.image.config_json().ok()?;
    let layer = opened.image.layers().first()?.clone();
    let diff_id: oxbuild_image::Digest = config["rootfs"]["diff_ids"][0].as_str()?.parse().ok()?;
    let wheels: Vec<String> =
        config["oxbuild"]["wheels"].as_array()?.iter().filter_map(|w| w.as_str().map(String::from)).collect();
    let yanked: Vec<String> = config["oxbuild"]["yanked"]
        .as_array()
        .map(|a| a.iter().filter_map(|w| w.as_str().map(String::from)).collect())
        .unwrap_or_default();
    out.step(format!("  dependency layer found in {tagged}"));
    Some(DepLayer {
        layer,
        diff_id,
        key: planned.key.clone(),
        wheels,
        downloaded: 0,
        pins: planned.all.clone(),
        source: REMOTE,
        yanked,
    })
}

/// Stores a layer made here in the cache repository. A failure only warns:
/// the build itself has what it needs.
async fn to_repository(prepared: &Prepared, repo: &Reference, client: &Client, out: Reporter) {
    let config = json!({
        "architecture": Platform::host().architecture,
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [prepared.blob.diff_id]},
        "oxbuild": {
            "kind": "python-dependency-layer", "key": prepared.key, "wheels": prepared.wheels, "yanked": prepared.yanked,
        },
    });
    let layer = oci_layer(&prepared.blob);
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

/// The tag of a base scan in the cache repository.
fn scan_tag(base: &Image) -> String {
    format!("scan-{}", &oxbuild_build::scan_key(base).hex()[..64])
}

/// A scan of `base` kept in the cache repository (a config-only image), so a
/// fresh runner does not download the base to read it.
pub async fn scan_from_repository(
    base: &Image,
    repo: Option<&Reference>,
    client: &Client,
    out: Reporter,
) -> Option<std::collections::BTreeMap<String, oxbuild_image::rootfs::Node>> {
    let tagged = repo?.with_tag(&scan_tag(base));
    let opened = oxbuild_registry::open(client, &tagged, &Platform::host()).await.ok()?;
    let config = opened.image.config_json().ok()?;
    let scan = serde_json::from_value(config["oxbuild"]["scan"].clone()).ok()?;
    out.step(format!("  base scan found in {tagged}"));
    Some(scan)
}

/// Stores a scan of `base` in the cache repository; a failure only warns.
pub async fn scan_to_repository(
    base: &Image,
    scan: &std::collections::BTreeMap<String, oxbuild_image::rootfs::Node>,
    repo: Option<&Reference>,
    client: &Client,
    out: Reporter,
) {
    let Some(repo) = repo else { return };
    let config = json!({
        "architecture": Platform::host().architecture,
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": []},
        "oxbuild": {"kind": "base-scan", "scan": scan},
    });
    let result = match Image::assemble(Format::Oci, &config, Vec::new(), &Default::default()) {
        Ok(image) => oxbuild_registry::push(client, &image, repo, &[scan_tag(base)], &[]).await.map(|_| ()),
        Err(e) => Err(oxbuild_registry::Error::Invalid(e.to_string())),
    };
    if let Err(e) = result {
        out.warn(format!("could not store the base scan in {}: {e}", repo.name()));
    }
}
