//! Wheels that oxbuild built from sdists, kept between builds by a key of
//! everything that went into them (the sdist, the interpreter, the build
//! requirements): in the local cache's `built` bucket, and in the cache
//! repository when there is one, so that only the first runner of a fleet
//! builds a sdist.

use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;
use oxbuild_cache::Bucket;
use oxbuild_python::sdist::{BuiltCache, Kept};

use crate::Services;
use crate::cache_repo::{self, CacheRepo};

/// The engine's [`BuiltCache`]: local first, then the cache repository.
pub struct Built {
    services: Services,
    repo: Option<CacheRepo>,
}

impl Built {
    /// The cache over `services`, and `repo` when there is one.
    pub fn new(services: &Services, repo: Option<&CacheRepo>) -> Built {
        Built { services: services.clone(), repo: repo.cloned() }
    }
}

impl BuiltCache for Built {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Option<Kept>> {
        async move {
            if let Some(kept) = self.services.cache.get::<Kept>(Bucket::Built, key)
                && self.services.store.contains(&kept.digest)
            {
                return Some(kept);
            }
            let repo = self.repo.as_ref()?;
            let kept = cache_repo::built(key, repo, &self.services).await?;
            let _ = self.services.cache.put(Bucket::Built, key, &kept);
            Some(kept)
        }
        .boxed()
    }

    fn put<'a>(&'a self, key: &'a str, kept: &'a Kept) -> BoxFuture<'a, ()> {
        async move {
            let _ = self.services.cache.put(Bucket::Built, key, kept);
            if let Some(repo) = &self.repo {
                cache_repo::store_built(key, kept, repo, &self.services).await;
            }
        }
        .boxed()
    }
}
