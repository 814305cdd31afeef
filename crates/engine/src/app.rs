//! App layers kept between builds ([`oxbuild_build::AppLayers`]): in the
//! local cache (`layers` bucket, next to the dependency layers' records), and
//! in the cache repository, so that a runner building a commit that another
//! runner built already (a retried job, a pipeline whose jobs each build the
//! same image) neither compiles nor compresses the app again, and needs no
//! interpreter at all when its dependency layer is cached too.
//!
//! The key covers every byte of the layer (see [`oxbuild_build::app_key`]),
//! so what is found is exactly what writing it here would give.

use oxbuild_build::{AppLayers, Reused};
use oxbuild_cache::Bucket;
use oxbuild_image::{Descriptor, Format, Layer, LayerBlob};

use crate::Services;
use crate::cache_repo::{self, CacheRepo};

/// An app layer's local record: the blob (in the cache's store) and what
/// writing it said.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct CachedApp {
    descriptor: Descriptor,
    diff_id: oxbuild_image::Digest,
    compiled: usize,
    warnings: Vec<String>,
}

/// The record's name in the `layers` bucket.
fn record(key: &str) -> String {
    format!("app-{key}")
}

/// App layers in the local cache and, when the build has one, the cache
/// repository. Called from the blocking thread that builds the image; it
/// reaches the registry through the runtime's `handle`. A layer written here
/// is stored in the cache repository in the background, while the image is
/// pushed ([`Services::settle`] waits for it).
pub(crate) struct AppCache {
    services: Services,
    repo: Option<CacheRepo>,
    handle: tokio::runtime::Handle,
}

impl std::fmt::Debug for AppCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppCache").field("repo", &self.repo).finish_non_exhaustive()
    }
}

impl AppCache {
    /// Over the local cache of `services` and `repo`, on the current runtime.
    pub(crate) fn new(services: &Services, repo: Option<&CacheRepo>) -> AppCache {
        AppCache { services: services.clone(), repo: repo.cloned(), handle: tokio::runtime::Handle::current() }
    }
}

impl AppLayers for AppCache {
    fn find(&self, key: &str) -> Option<Reused> {
        let services = &self.services;
        if let Some(c) = services.cache.get::<CachedApp>(Bucket::Layers, &record(key))
            && services.store.contains(&c.descriptor.digest)
        {
            let path = services.store.path(&c.descriptor.digest);
            return Some(Reused {
                layer: Layer::file(c.descriptor, path),
                diff_id: c.diff_id,
                compiled: c.compiled,
                warnings: c.warnings,
                from: "local cache".into(),
            });
        }
        let repo = self.repo.as_ref()?;
        let found = self.handle.block_on(cache_repo::app(key, repo, services))?;
        Some(Reused {
            layer: found.layer,
            diff_id: found.diff_id,
            compiled: found.compiled,
            warnings: found.warnings,
            from: found.from,
        })
    }

    fn keep(&self, key: &str, blob: &LayerBlob, compiled: usize, warnings: &[String]) {
        let Ok(descriptor) = blob.descriptor_in(Format::Oci) else { return };
        let kept = CachedApp { descriptor, diff_id: blob.diff_id.clone(), compiled, warnings: warnings.to_vec() };
        let _ = self.services.cache.put(Bucket::Layers, &record(key), &kept);
        if let Some(repo) = &self.repo {
            let (key, repo, services) = (key.to_string(), repo.clone(), self.services.clone());
            let layer = Layer::file(kept.descriptor, blob.path.clone());
            let _entered = self.handle.enter();
            self.services.in_background(async move {
                cache_repo::store_app(&key, layer, &kept.diff_id, compiled, &kept.warnings, &repo, &services).await;
            });
        }
    }
}
