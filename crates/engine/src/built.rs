//! Wheels that oxbuild built from sdists, kept between builds by a key of
//! everything that went into them (the sdist, the interpreter, the build
//! requirements): in the local cache's `built` bucket, and in the cache
//! repository when there is one, so that only the first runner of a fleet
//! builds a sdist.

use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;
use oxbuild_cache::Bucket;
use oxbuild_image::Digest;
use oxbuild_python::sdist::BuiltCache;

use crate::Services;
use crate::cache_repo::{self, CacheRepo};

/// The local record of a built wheel.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Record {
    wheel: String,
    digest: Digest,
}

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
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Option<(String, Digest)>> {
        async move {
            if let Some(r) = self.services.cache.get::<Record>(Bucket::Built, key)
                && self.services.store.contains(&r.digest)
            {
                return Some((r.wheel, r.digest));
            }
            let repo = self.repo.as_ref()?;
            let (wheel, digest) = cache_repo::built(key, repo, &self.services).await?;
            let _ =
                self.services.cache.put(Bucket::Built, key, &Record { wheel: wheel.clone(), digest: digest.clone() });
            Some((wheel, digest))
        }
        .boxed()
    }

    fn put<'a>(&'a self, key: &'a str, filename: &'a str, digest: &'a Digest) -> BoxFuture<'a, ()> {
        async move {
            let record = Record { wheel: filename.to_string(), digest: digest.clone() };
            let _ = self.services.cache.put(Bucket::Built, key, &record);
            if let Some(repo) = &self.repo {
                cache_repo::store_built(key, filename, digest, repo, &self.services).await;
            }
        }
        .boxed()
    }
}
