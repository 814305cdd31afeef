//! The registry client: what it knows for one run (schemes, challenges,
//! tokens, credentials), shared by every call. The calls themselves are in
//! `manifests.rs`, `blobs.rs` and `upload.rs`; how a request is sent is in
//! `transport/`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::auth::{Found, Keychain};
use crate::transport::challenge::Challenge;
use crate::transport::token::TokenKey;
use crate::{Error, Event, Reference};

/// How to reach registries.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// The shared HTTP client (TLS, proxies, timeouts, retries); a default one when None.
    pub http: Option<oxbuild_http::Client>,
    /// Hosts (host or host:port) to reach over plain HTTP although not on loopback.
    pub insecure: Vec<String>,
    /// Where credentials come from, for registries that ask.
    pub keychain: Keychain,
    /// Who hears about blobs moving.
    pub progress: Option<crate::Progress>,
    /// Upload files in PATCH chunks of this many bytes; one monolithic PUT when None.
    pub chunk_size: Option<u64>,
    /// Remembers which repositories hold which blobs, across runs, so that a
    /// push mounts what another repository of the same registry already has.
    pub blob_locations: Option<Arc<dyn BlobLocations>>,
}

/// A record of where blobs were seen: the cache's `locations` bucket, or
/// anything else that remembers.
pub trait BlobLocations: Send + Sync + std::fmt::Debug {
    /// Repositories (`registry/repository`) known to hold `digest`.
    fn repositories(&self, digest: &oxbuild_image::Digest) -> Vec<String>;
    /// Notes that `repository` (`registry/repository`) holds `digest`.
    fn remember(&self, digest: &oxbuild_image::Digest, repository: &str);
}

/// Bytes to upload as a blob.
#[derive(Debug, Clone)]
pub enum BlobBody {
    /// A file, streamed from disk.
    File(std::path::PathBuf),
    /// Bytes in memory (configs, manifests).
    Bytes(Arc<Vec<u8>>),
    /// A blob in another repository, streamed through without touching disk.
    Remote(Reference),
}

/// A registry's scheme (`http` or `https`), once known.
pub(crate) type Scheme = Arc<tokio::sync::OnceCell<&'static str>>;

/// A registry client shared by every pull and push of a run. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    pub(crate) http: oxbuild_http::Client,
    pub(crate) opts: Arc<ClientOptions>,
    pub(crate) challenges: Arc<Mutex<HashMap<String, Challenge>>>,
    pub(crate) tokens: Arc<Mutex<HashMap<TokenKey, String>>>,
    /// One lock per (registry, scopes), held while that token is fetched.
    pub(crate) token_fetch: Arc<Mutex<HashMap<TokenKey, Arc<tokio::sync::Mutex<()>>>>>,
    credentials: Arc<Mutex<HashMap<String, Option<Found>>>>,
    /// A loopback registry's scheme, probed once per run: requests that
    /// need it while the probe runs wait for its answer.
    pub(crate) schemes: Arc<Mutex<HashMap<String, Scheme>>>,
    /// Blobs this run saw in a repository (`registry/repository`, digest):
    /// asked about, uploaded or mounted. A push asks the registry about each
    /// only once per run (artifacts share their empty config, platforms share
    /// layers).
    present: Arc<Mutex<std::collections::HashSet<(String, oxbuild_image::Digest)>>>,
    /// Upload sessions opened ahead of a push.
    pub(crate) ahead: Arc<crate::upload::OpenedAhead>,
    /// Blobs streamed while they were written, being completed.
    pub(crate) streamed: Arc<crate::stream::Streamed>,
}

impl Client {
    /// A client with `opts`.
    pub fn new(opts: ClientOptions) -> Result<Client, Error> {
        let http = match &opts.http {
            Some(h) => h.clone(),
            None => oxbuild_http::Client::new(oxbuild_http::Options::default())
                .map_err(|e| Error::Invalid(e.to_string()))?,
        };
        Ok(Client {
            http,
            opts: Arc::new(opts),
            challenges: Arc::default(),
            tokens: Arc::default(),
            token_fetch: Arc::default(),
            credentials: Arc::default(),
            schemes: Arc::default(),
            present: Arc::default(),
            ahead: Arc::default(),
            streamed: Arc::default(),
        })
    }

    /// The shared HTTP client this registry client sends through.
    pub fn http(&self) -> &oxbuild_http::Client {
        &self.http
    }

    /// The credential for `registry`, looked up once per run.
    pub(crate) fn credential(&self, registry: &str) -> Result<Option<Found>, Error> {
        if let Some(found) = self.credentials.lock().unwrap().get(registry) {
            return Ok(found.clone());
        }
        let found = self.opts.keychain.lookup(registry)?;
        self.credentials.lock().unwrap().insert(registry.to_string(), found.clone());
        Ok(found)
    }

    pub(crate) fn unauthorized(&self, registry: &str) -> Error {
        let found = self.credentials.lock().unwrap().get(registry).cloned().flatten();
        Error::Unauthorized {
            registry: registry.to_string(),
            user: found.as_ref().map(|f| f.credential.who()),
            origin: found.map(|f| f.source),
        }
    }

    /// Runs `op` with the shared client's retry policy: connection errors, 5xx
    /// and 429 are retried, after the registry's `Retry-After` when it sends
    /// one. Every operation retried this way is idempotent (uploads restart
    /// from a new session).
    pub(crate) async fn retrying<T, F, Fut>(&self, op: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        self.http.retrying(op).await
    }

    /// Reports a progress event, if anyone listens.
    pub fn emit(&self, event: Event) {
        if let Some(p) = &self.opts.progress {
            p.emit(event);
        }
    }

    /// Repositories of `registry` other than `except` known to hold `digest`.
    pub(crate) fn known_holders(&self, digest: &oxbuild_image::Digest, except: &Reference) -> Vec<Reference> {
        let Some(locations) = &self.opts.blob_locations else { return Vec::new() };
        locations
            .repositories(digest)
            .iter()
            .filter_map(|r| Reference::parse(r).ok())
            .filter(|r| r.registry == except.registry && r.repository != except.repository)
            .collect()
    }

    /// Whether this run has seen `repo` hold `digest`.
    pub(crate) fn seen_in(&self, digest: &oxbuild_image::Digest, repo: &Reference) -> bool {
        self.present.lock().unwrap_or_else(std::sync::PoisonError::into_inner).contains(&(repo.name(), digest.clone()))
    }

    /// True when this machine has a record of where blobs were seen and it
    /// never saw `digest` in any repository.
    pub(crate) fn never_seen(&self, digest: &oxbuild_image::Digest) -> bool {
        let Some(locations) = &self.opts.blob_locations else { return false };
        locations.repositories(digest).is_empty()
            && !self.present.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter().any(|(_, d)| d == digest)
    }

    /// Notes that `repo` holds `digest`, for the rest of this run and for
    /// later pushes to mount.
    pub(crate) fn remember_holder(&self, digest: &oxbuild_image::Digest, repo: &Reference) {
        self.present.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert((repo.name(), digest.clone()));
        if let Some(locations) = &self.opts.blob_locations {
            locations.remember(digest, &repo.name());
        }
    }
}

pub(crate) fn pull_scope(r: &Reference) -> Vec<String> {
    vec![format!("repository:{}:pull", r.repository)]
}

pub(crate) fn push_scope(r: &Reference) -> Vec<String> {
    vec![format!("repository:{}:pull,push", r.repository)]
}

/// The absolute URL of a response's `Location`, resolved against `base`.
pub(crate) fn location(resp: &reqwest::Response, base: &str) -> Option<String> {
    let loc = resp.headers().get(reqwest::header::LOCATION)?.to_str().ok()?;
    let base = url::Url::parse(base).ok()?;
    base.join(loc).ok().map(|u| u.to_string())
}
