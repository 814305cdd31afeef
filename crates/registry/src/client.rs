//! The HTTP client: scheme choice, auth challenges and the distribution API calls.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt as _;
use oxbuild_image::{BlobStore, Descriptor, Digest, media};
use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, LOCATION, RETRY_AFTER, WWW_AUTHENTICATE,
};
use reqwest::{Method, RequestBuilder, Response, StatusCode};

use crate::auth::{Credential, Found, Keychain};
use crate::error::transport_detail;
use crate::{Error, Event, Reference, is_loopback};

/// How to reach registries.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// Hosts (host or host:port) to reach over plain HTTP although not on loopback.
    pub insecure: Vec<String>,
    /// Where credentials come from, for registries that ask.
    pub keychain: Keychain,
    /// Extra CA certificates (PEM) trusted besides the system's roots.
    pub ca_pem: Option<Vec<u8>>,
    /// How transient failures are retried.
    pub retry: RetryPolicy,
    /// Who hears about blobs moving.
    pub progress: Option<crate::Progress>,
    /// Upload files in PATCH chunks of this many bytes; one monolithic PUT when None.
    pub chunk_size: Option<u64>,
}

/// Bounded exponential backoff with jitter.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Tries per operation, the first included.
    pub attempts: u32,
    /// The delay before the first retry; it doubles each time.
    pub initial: Duration,
    /// The longest delay between two tries.
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { attempts: 6, initial: Duration::from_millis(200), max: Duration::from_secs(5) }
    }
}

impl RetryPolicy {
    /// The delay before retry number `attempt` (0-based): doubling, capped, and
    /// spread by ±50% so that parallel uploads do not retry in lockstep.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self.initial.saturating_mul(1u32 << attempt.min(16)).min(self.max);
        exp.mul_f64(0.5 + fastrand::f64())
    }
}

#[derive(Debug, Clone)]
enum Challenge {
    Basic,
    Bearer { realm: String, service: Option<String> },
}

/// Bytes to upload as a blob.
#[derive(Debug, Clone)]
pub enum BlobBody {
    /// A file, streamed from disk.
    File(PathBuf),
    /// Bytes in memory (configs, manifests).
    Bytes(Arc<Vec<u8>>),
    /// A blob in another repository, streamed through without touching disk.
    Remote(Reference),
}

/// A token's cache key: the registry, and the scopes joined by spaces.
type TokenKey = (String, String);

/// A registry client shared by every pull and push of a run. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    opts: Arc<ClientOptions>,
    challenges: Arc<Mutex<HashMap<String, Challenge>>>,
    tokens: Arc<Mutex<HashMap<TokenKey, String>>>,
    /// One lock per (registry, scopes), held while that token is fetched, so
    /// that requests starting together (parallel blob uploads) share one
    /// token instead of each asking, and a slow token service for one
    /// registry holds up no other.
    token_fetch: Arc<Mutex<HashMap<TokenKey, Arc<tokio::sync::Mutex<()>>>>>,
    credentials: Arc<Mutex<HashMap<String, Option<Found>>>>,
    schemes: Arc<Mutex<HashMap<String, &'static str>>>,
}

fn install_crypto() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Fails only when another provider is already installed, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl Client {
    /// A client with `opts`.
    pub fn new(opts: ClientOptions) -> Result<Client, Error> {
        install_crypto();
        let http = reqwest::Client::builder()
            .user_agent(concat!("oxbuild/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(std::time::Duration::from_secs(15))
            // A transfer that stalls this long is dropped and retried.
            .read_timeout(std::time::Duration::from_secs(120));
        let http = match &opts.ca_pem {
            Some(pem) => {
                let certs = reqwest::Certificate::from_pem_bundle(pem)
                    .map_err(|e| Error::Invalid(format!("the CA file is not PEM certificates: {e}")))?;
                http.tls_certs_merge(certs)
            }
            None => http,
        };
        let http = http
            .build()
            .map_err(|e| Error::Invalid(format!("cannot set up the HTTP client: {}", transport_detail(&e))))?;
        Ok(Client {
            http,
            opts: Arc::new(opts),
            challenges: Arc::default(),
            tokens: Arc::default(),
            token_fetch: Arc::default(),
            credentials: Arc::default(),
            schemes: Arc::default(),
        })
    }

    /// `https`, except for registries named insecure, and for loopback
    /// registries that do not speak TLS (probed once per run, as Docker does
    /// for localhost): a loopback registry with a certificate is still used
    /// over HTTPS.
    async fn scheme(&self, registry: &str) -> &'static str {
        if self.opts.insecure.iter().any(|h| h == registry) {
            return "http";
        }
        if !is_loopback(registry) {
            return "https";
        }
        if let Some(s) = self.schemes.lock().unwrap().get(registry) {
            return s;
        }
        let probe = self.http.get(format!("https://{registry}/v2/")).timeout(Duration::from_secs(5)).send().await;
        // A TLS server with a certificate we do not trust is still a TLS server:
        // stay on https so the user sees the certificate error, not a confusing 400.
        let scheme = match probe {
            Ok(_) => "https",
            Err(e) if transport_detail(&e).to_lowercase().contains("certificate") => "https",
            Err(_) => "http",
        };
        self.schemes.lock().unwrap().insert(registry.to_string(), scheme);
        scheme
    }

    fn api_host(registry: &str) -> &str {
        if registry == crate::reference::DOCKER_HUB { "registry-1.docker.io" } else { registry }
    }

    /// The base URL of `r`'s repository API: `scheme://host/v2/<repo>/`.
    async fn repo_url(&self, r: &Reference) -> String {
        format!("{}://{}/v2/{}/", self.scheme(&r.registry).await, Self::api_host(&r.registry), r.repository)
    }

    /// The credential for `registry`, looked up once per run.
    fn credential(&self, registry: &str) -> Result<Option<Found>, Error> {
        if let Some(found) = self.credentials.lock().unwrap().get(registry) {
            return Ok(found.clone());
        }
        let found = self.opts.keychain.lookup(registry)?;
        self.credentials.lock().unwrap().insert(registry.to_string(), found.clone());
        Ok(found)
    }

    fn unauthorized(&self, registry: &str) -> Error {
        let found = self.credentials.lock().unwrap().get(registry).cloned().flatten();
        Error::Unauthorized {
            registry: registry.to_string(),
            user: found.as_ref().map(|f| f.credential.who()),
            origin: found.map(|f| f.source),
        }
    }

    async fn auth_header(&self, registry: &str, scopes: &[String]) -> Result<Option<String>, Error> {
        let challenge = self.challenges.lock().unwrap().get(registry).cloned();
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(self.credential(registry)?.and_then(|f| f.credential.basic_header())),
            Some(Challenge::Bearer { realm, service }) => {
                let key = (registry.to_string(), scopes.join(" "));
                if let Some(t) = self.tokens.lock().unwrap().get(&key) {
                    return Ok(Some(format!("Bearer {t}")));
                }
                let flight = self.token_fetch.lock().unwrap().entry(key.clone()).or_default().clone();
                let _fetching = flight.lock().await;
                if let Some(t) = self.tokens.lock().unwrap().get(&key) {
                    return Ok(Some(format!("Bearer {t}")));
                }
                let token = self.fetch_token(registry, &realm, service.as_deref(), scopes).await?;
                self.tokens.lock().unwrap().insert(key, token.clone());
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    async fn fetch_token(
        &self,
        registry: &str,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
    ) -> Result<String, Error> {
        let mut url = url::Url::parse(realm).map_err(|_| {
            Error::Invalid(format!("registry {registry} sent an auth realm that is not a URL: {realm}"))
        })?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            for s in scopes {
                q.append_pair("scope", s);
            }
        }
        let req = match self.credential(registry)?.map(|f| f.credential) {
            // Docker's identity token is an OAuth2 refresh token.
            Some(Credential::IdentityToken(token)) => {
                let mut form = vec![
                    ("grant_type".to_string(), "refresh_token".to_string()),
                    ("refresh_token".to_string(), token),
                    ("client_id".to_string(), "oxbuild".to_string()),
                ];
                form.extend(url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())));
                let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
                let mut bare = url.clone();
                bare.set_query(None);
                self.http.post(bare).header(CONTENT_TYPE, "application/x-www-form-urlencoded").body(body)
            }
            Some(c) => self.http.get(url).header(AUTHORIZATION, c.basic_header().unwrap_or_default()),
            None => self.http.get(url),
        };
        let resp = req.send().await.map_err(|e| Error::Unreachable {
            registry: registry.to_string(),
            detail: format!("token service: {}", transport_detail(&e)),
        })?;
        match resp.status() {
            s if s.is_success() => {}
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => return Err(self.unauthorized(registry)),
            s => {
                return Err(Error::Status {
                    what: format!("getting a token for {registry}"),
                    status: s.as_u16(),
                    detail: String::new(),
                    retry_after: None,
                });
            }
        }
        #[derive(serde::Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let body = resp.bytes().await.unwrap_or_default();
        let t: Token = serde_json::from_slice(&body)
            .map_err(|_| Error::Invalid(format!("the token service of {registry} sent an unreadable answer")))?;
        t.token
            .or(t.access_token)
            .ok_or_else(|| Error::Invalid(format!("the token service of {registry} sent no token")))
    }

    /// Sends a request built by `make`, answering one auth challenge if the
    /// registry poses it. `make` is called again for the retry, so bodies are
    /// rebuilt rather than buffered.
    async fn send(
        &self,
        registry: &str,
        scopes: &[String],
        what: &str,
        mut make: impl FnMut(&reqwest::Client) -> Result<RequestBuilder, Error>,
    ) -> Result<Response, Error> {
        let mut auth = self.auth_header(registry, scopes).await?;
        let api_host = Self::api_host(registry).to_string();
        for round in 0..2 {
            let mut request = make(&self.http)?
                .build()
                .map_err(|e| Error::Invalid(format!("{what}: cannot build the request: {}", transport_detail(&e))))?;
            // Credentials go only to the registry itself, never to another host an
            // upload Location or redirect names.
            if let Some(h) = &auth
                && same_authority(request.url(), &api_host)
                && let Ok(value) = HeaderValue::from_str(h)
            {
                request.headers_mut().insert(AUTHORIZATION, value);
            }
            let resp = self
                .http
                .execute(request)
                .await
                .map_err(|e| Error::Unreachable { registry: registry.to_string(), detail: transport_detail(&e) })?;
            if resp.status() != StatusCode::UNAUTHORIZED {
                return check_status(resp, registry, what).await;
            }
            if round == 1 {
                break;
            }
            let challenge =
                resp.headers().get(WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()).and_then(parse_challenge);
            let Some(challenge) = challenge else { break };
            if matches!(challenge, Challenge::Basic) && self.credential(registry)?.is_none() {
                break;
            }
            // The token this request carried may have expired: drop it so a
            // fresh one is fetched (unless another request already replaced it).
            if let Some(sent) = &auth {
                let key = (registry.to_string(), scopes.join(" "));
                let mut tokens = self.tokens.lock().unwrap();
                if tokens.get(&key).is_some_and(|t| sent.strip_prefix("Bearer ") == Some(t.as_str())) {
                    tokens.remove(&key);
                }
            }
            self.challenges.lock().unwrap().insert(registry.to_string(), challenge);
            auth = self.auth_header(registry, scopes).await?;
        }
        Err(self.unauthorized(registry))
    }

    /// Runs `op` until it succeeds, fails for good, or runs out of attempts.
    /// Connection errors, 5xx and 429 are retried with exponential backoff and
    /// jitter, or after the registry's `Retry-After`. Every operation retried
    /// this way is idempotent (uploads restart from a new session).
    async fn retrying<T, F, Fut>(&self, mut op: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let mut attempt = 0;
        loop {
            match op().await {
                Err(e) if attempt + 1 < self.opts.retry.attempts && e.is_transient() => {
                    let delay = e.retry_after().unwrap_or_else(|| self.opts.retry.backoff(attempt));
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    /// Reports a progress event, if anyone listens.
    pub fn emit(&self, event: Event) {
        if let Some(p) = &self.opts.progress {
            p.emit(event);
        }
    }

    /// Fetches a manifest or index: its raw bytes, media type and digest. A
    /// reference by digest is verified against the bytes.
    pub async fn get_manifest(&self, r: &Reference) -> Result<(Vec<u8>, String, Digest), Error> {
        self.retrying(|| self.get_manifest_once(r)).await
    }

    /// Fetches a small blob (a config) into memory, verified.
    pub async fn get_blob_bytes(&self, repo: &Reference, desc: &Descriptor) -> Result<Vec<u8>, Error> {
        self.retrying(|| self.get_blob_bytes_once(repo, desc)).await
    }

    /// Streams a blob into `store` (unless it is there already), verified
    /// against its digest before it becomes visible. Returns its path.
    pub async fn fetch_blob(&self, repo: &Reference, desc: &Descriptor, store: &BlobStore) -> Result<PathBuf, Error> {
        self.retrying(|| self.fetch_blob_once(repo, desc, store)).await
    }

    /// True when `repo` has the blob.
    pub async fn blob_exists(&self, repo: &Reference, digest: &Digest) -> Result<bool, Error> {
        self.retrying(|| self.blob_exists_once(repo, digest)).await
    }

    /// Asks the registry to mount `digest` from `from` into `repo`. Returns false
    /// when the registry declines (202), after closing the upload it opened.
    pub async fn mount_blob(&self, repo: &Reference, digest: &Digest, from: &Reference) -> Result<bool, Error> {
        self.retrying(|| self.mount_blob_once(repo, digest, from)).await
    }

    /// Uploads a blob in one request (POST then PUT), streaming files from disk.
    pub async fn upload_blob(
        &self,
        repo: &Reference,
        digest: &Digest,
        size: u64,
        body: &BlobBody,
    ) -> Result<(), Error> {
        self.retrying(|| self.upload_blob_once(repo, digest, size, body)).await
    }

    /// Puts a manifest under `reference` (a tag or a digest) in `repo`.
    pub async fn put_manifest(
        &self,
        repo: &Reference,
        reference: &str,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<(), Error> {
        self.retrying(|| self.put_manifest_once(repo, reference, bytes, media_type)).await
    }

    async fn get_manifest_once(&self, r: &Reference) -> Result<(Vec<u8>, String, Digest), Error> {
        let url = format!("{}manifests/{}", self.repo_url(r).await, r.manifest_reference());
        let what = format!("manifest {r}");
        let resp = self
            .send(&r.registry, &pull_scope(r), &what, |http| {
                Ok(http.get(&url).header(ACCEPT, media::ACCEPT_MANIFESTS.join(", ")))
            })
            .await?;
        let header_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.split(';').next().unwrap_or("").trim().to_string());
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| Error::Unreachable { registry: r.registry.clone(), detail: transport_detail(&e) })?
            .to_vec();
        let digest = Digest::of(&bytes);
        if let Some(expected) = &r.digest
            && &digest != expected
        {
            return Err(Error::Invalid(format!("manifest {r} does not match its digest: got {digest}")));
        }
        let body_type = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["mediaType"].as_str().map(str::to_string));
        let media_type =
            body_type.or(header_type).ok_or_else(|| Error::Invalid(format!("manifest {r} has no media type")))?;
        Ok((bytes, media_type, digest))
    }

    /// Fetches a small blob (a config) into memory, verified.
    async fn get_blob_bytes_once(&self, repo: &Reference, desc: &Descriptor) -> Result<Vec<u8>, Error> {
        let url = format!("{}blobs/{}", self.repo_url(repo).await, desc.digest);
        let what = format!("blob {} of {}", desc.digest, repo.name());
        let resp = self.send(&repo.registry, &pull_scope(repo), &what, |http| Ok(http.get(&url))).await?;
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| Error::Unreachable { registry: repo.registry.clone(), detail: transport_detail(&e) })?;
        if Digest::of(&bytes) != desc.digest {
            return Err(Error::Invalid(format!("{what} does not match its digest; nothing was stored")));
        }
        Ok(bytes.to_vec())
    }

    /// Streams a blob into `store` (unless it is there already), verified
    /// against its digest before it becomes visible. Returns its path.
    async fn fetch_blob_once(&self, repo: &Reference, desc: &Descriptor, store: &BlobStore) -> Result<PathBuf, Error> {
        if store.contains(&desc.digest) {
            self.emit(Event::Finish { digest: desc.digest.clone(), size: desc.size, outcome: "cached" });
            return Ok(store.path(&desc.digest));
        }
        let url = format!("{}blobs/{}", self.repo_url(repo).await, desc.digest);
        let what = format!("blob {} of {}", desc.digest, repo.name());
        let resp = self.send(&repo.registry, &pull_scope(repo), &what, |http| Ok(http.get(&url))).await?;
        self.emit(Event::Start { digest: desc.digest.clone(), size: desc.size, direction: "download" });
        let mut writer = store.writer()?;
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk
                .map_err(|e| Error::Unreachable { registry: repo.registry.clone(), detail: transport_detail(&e) })?;
            std::io::Write::write_all(&mut writer, &chunk)
                .map_err(|e| oxbuild_image::Error::io(format!("caching {what}"), e))?;
            self.emit(Event::Advance { digest: desc.digest.clone(), bytes: chunk.len() as u64 });
            if writer.written() > desc.size {
                return Err(Error::Invalid(format!("{what} is larger than its descriptor says ({} bytes)", desc.size)));
            }
        }
        let path = writer.commit(&desc.digest).map_err(|e| Error::Invalid(format!("{what}: {e}")))?;
        self.emit(Event::Finish { digest: desc.digest.clone(), size: desc.size, outcome: "downloaded" });
        Ok(path)
    }

    /// True when `repo` has the blob.
    async fn blob_exists_once(&self, repo: &Reference, digest: &Digest) -> Result<bool, Error> {
        let url = format!("{}blobs/{digest}", self.repo_url(repo).await);
        let what = format!("checking blob {digest} in {}", repo.name());
        match self.send(&repo.registry, &push_scope(repo), &what, |http| Ok(http.head(&url))).await {
            Ok(_) => Ok(true),
            Err(Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Asks the registry to mount `digest` from `from` into `repo`. Returns false
    /// when the registry declines (202), after closing the upload it opened.
    async fn mount_blob_once(&self, repo: &Reference, digest: &Digest, from: &Reference) -> Result<bool, Error> {
        let url = format!("{}blobs/uploads/?mount={digest}&from={}", self.repo_url(repo).await, from.repository);
        let mut scopes = push_scope(repo);
        scopes.push(format!("repository:{}:pull", from.repository));
        let what = format!("mounting blob {digest} from {} into {}", from.name(), repo.name());
        let resp =
            self.send(&repo.registry, &scopes, &what, |http| Ok(http.post(&url).header(CONTENT_LENGTH, "0"))).await?;
        if resp.status() == StatusCode::CREATED {
            return Ok(true);
        }
        if let Some(loc) = location(&resp, &url) {
            // Close the upload session the refused mount opened; a failure here
            // only leaves a session the registry expires on its own.
            let _ = self.send(&repo.registry, &scopes, &what, |http| Ok(http.delete(&loc))).await;
        }
        Ok(false)
    }

    /// Uploads a blob in one request (POST then PUT), streaming files from disk.
    async fn upload_blob_once(
        &self,
        repo: &Reference,
        digest: &Digest,
        size: u64,
        body: &BlobBody,
    ) -> Result<(), Error> {
        let start = format!("{}blobs/uploads/", self.repo_url(repo).await);
        let what = format!("uploading blob {digest} to {}", repo.name());
        let scopes = push_scope(repo);
        let resp =
            self.send(&repo.registry, &scopes, &what, |http| Ok(http.post(&start).header(CONTENT_LENGTH, "0"))).await?;
        let loc = location(&resp, &start)
            .ok_or_else(|| Error::Invalid(format!("{what}: the registry gave no upload location")))?;
        if let (Some(chunk), BlobBody::File(path)) = (self.opts.chunk_size, body) {
            return self.upload_chunks(repo, digest, path, loc, chunk.max(1), &what).await;
        }
        let mut put_url =
            url::Url::parse(&loc).map_err(|_| Error::Invalid(format!("{what}: bad upload location {loc}")))?;
        put_url.query_pairs_mut().append_pair("digest", digest.as_str());
        // A blob from another registry is streamed through: GET there, PUT here.
        let mut remote = match body {
            BlobBody::Remote(origin) => {
                let url = format!("{}blobs/{digest}", self.repo_url(origin).await);
                let what = format!("blob {digest} of {}", origin.name());
                let resp = self.send(&origin.registry, &pull_scope(origin), &what, |http| Ok(http.get(&url))).await?;
                Some(reqwest::Body::wrap_stream(resp.bytes_stream()))
            }
            _ => None,
        };
        self.send(&repo.registry, &scopes, &what, |http| {
            let req = http
                .request(Method::PUT, put_url.clone())
                .header(CONTENT_TYPE, "application/octet-stream")
                .header(CONTENT_LENGTH, HeaderValue::from(size));
            Ok(match body {
                BlobBody::Bytes(b) => req.body(b.as_ref().clone()),
                BlobBody::File(path) => req.body(self.file_body(path, digest)?),
                // The stream can be sent once; a retry starts the whole upload over.
                BlobBody::Remote(_) => req.body(remote.take().ok_or_else(|| Error::Unreachable {
                    registry: repo.registry.clone(),
                    detail: "a streamed blob had to be sent again; restarting its upload".into(),
                })?),
            })
        })
        .await?;
        Ok(())
    }

    /// A chunked upload: PATCH the file in pieces of `chunk` bytes (each with
    /// its Content-Range, following the Location the registry returns), then
    /// PUT with the digest. Memory use is one chunk.
    async fn upload_chunks(
        &self,
        repo: &Reference,
        digest: &Digest,
        path: &Path,
        mut loc: String,
        chunk: u64,
        what: &str,
    ) -> Result<(), Error> {
        use tokio::io::AsyncReadExt as _;
        let scopes = push_scope(repo);
        let io = |e| oxbuild_image::Error::io(format!("reading {}", path.display()), e);
        let mut file = tokio::fs::File::open(path).await.map_err(io)?;
        let mut offset: u64 = 0;
        let mut buf = vec![0u8; usize::try_from(chunk).unwrap_or(usize::MAX).min(1 << 30)];
        loop {
            let mut filled = 0;
            while filled < buf.len() {
                let n = file.read(&mut buf[filled..]).await.map_err(io)?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            if filled == 0 {
                break;
            }
            let piece = buf[..filled].to_vec();
            let range = format!("{}-{}", offset, offset + filled as u64 - 1);
            let resp = self
                .send(&repo.registry, &scopes, what, |http| {
                    Ok(http
                        .patch(&loc)
                        .header(CONTENT_TYPE, "application/octet-stream")
                        .header("Content-Range", range.clone())
                        .header(CONTENT_LENGTH, HeaderValue::from(piece.len()))
                        .body(piece.clone()))
                })
                .await?;
            loc = location(&resp, &loc).unwrap_or(loc);
            offset += filled as u64;
            self.emit(Event::Advance { digest: digest.clone(), bytes: filled as u64 });
        }
        let mut put_url =
            url::Url::parse(&loc).map_err(|_| Error::Invalid(format!("{what}: bad upload location {loc}")))?;
        put_url.query_pairs_mut().append_pair("digest", digest.as_str());
        self.send(&repo.registry, &scopes, what, |http| Ok(http.put(put_url.clone()).header(CONTENT_LENGTH, "0")))
            .await?;
        Ok(())
    }

    /// Puts a manifest under `reference` (a tag or a digest) in `repo`.
    async fn put_manifest_once(
        &self,
        repo: &Reference,
        reference: &str,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<(), Error> {
        let url = format!("{}manifests/{reference}", self.repo_url(repo).await);
        let what = format!("pushing the manifest to {}:{reference}", repo.name());
        let bytes = bytes.to_vec();
        self.send(&repo.registry, &push_scope(repo), &what, |http| {
            Ok(http.put(&url).header(CONTENT_TYPE, media_type).body(bytes.clone()))
        })
        .await?;
        Ok(())
    }
}

/// True when `url` points at `host` (`name` or `name:port`, IPv6 in brackets).
fn same_authority(url: &url::Url, host: &str) -> bool {
    let Some(h) = url.host() else { return false };
    let name = h.to_string();
    match host.rsplit_once(':').filter(|(n, p)| !n.ends_with(':') && p.parse::<u16>().is_ok() && !p.contains(']')) {
        Some((n, p)) => n == name && url.port_or_known_default().map(|x| x.to_string()).as_deref() == Some(p),
        None => host == name,
    }
}

impl Client {
    /// A file streamed from disk as a request body, reporting progress.
    fn file_body(&self, path: &Path, digest: &Digest) -> Result<reqwest::Body, Error> {
        let file = std::fs::File::open(path)
            .map_err(|e| oxbuild_image::Error::io(format!("reading {}", path.display()), e))?;
        let stream = tokio_util::io::ReaderStream::with_capacity(tokio::fs::File::from_std(file), 256 * 1024);
        let (client, digest) = (self.clone(), digest.clone());
        let counted = stream.inspect(move |chunk| {
            if let Ok(c) = chunk {
                client.emit(Event::Advance { digest: digest.clone(), bytes: c.len() as u64 });
            }
        });
        Ok(reqwest::Body::wrap_stream(counted))
    }
}

fn location(resp: &Response, base: &str) -> Option<String> {
    let loc = resp.headers().get(LOCATION)?.to_str().ok()?;
    let base = url::Url::parse(base).ok()?;
    base.join(loc).ok().map(|u| u.to_string())
}

fn pull_scope(r: &Reference) -> Vec<String> {
    vec![format!("repository:{}:pull", r.repository)]
}

fn push_scope(r: &Reference) -> Vec<String> {
    vec![format!("repository:{}:pull,push", r.repository)]
}

async fn check_status(resp: Response, registry: &str, what: &str) -> Result<Response, Error> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    match status {
        StatusCode::NOT_FOUND => Err(Error::NotFound { what: what.to_string() }),
        StatusCode::FORBIDDEN => Err(Error::Denied { registry: registry.to_string(), what: what.to_string() }),
        _ => {
            let retry_after = resp
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(|secs| Duration::from_secs(secs.min(60)));
            let body = resp.text().await.unwrap_or_default();
            Err(Error::Status {
                what: what.to_string(),
                status: status.as_u16(),
                detail: registry_message(&body),
                retry_after,
            })
        }
    }
}

/// The `errors[].message` of a distribution error body, or a short excerpt.
fn registry_message(body: &str) -> String {
    let parsed: Option<Vec<String>> = serde_json::from_str::<serde_json::Value>(body).ok().and_then(|v| {
        v["errors"].as_array().map(|errs| {
            errs.iter()
                .map(|e| {
                    format!("{} {}", e["code"].as_str().unwrap_or(""), e["message"].as_str().unwrap_or(""))
                        .trim()
                        .to_string()
                })
                .collect()
        })
    });
    match parsed {
        Some(msgs) if !msgs.is_empty() => format!(": {}", msgs.join("; ")),
        _ if body.trim().is_empty() => String::new(),
        _ => format!(": {}", body.trim().chars().take(200).collect::<String>()),
    }
}

/// Parses `Basic realm=...` or `Bearer realm="...",service="...",scope="..."`.
fn parse_challenge(header: &str) -> Option<Challenge> {
    let (scheme, params) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut realm = None;
    let mut service = None;
    let mut rest = params;
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let key = key.trim().trim_start_matches(',').trim();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"')?;
            (&quoted[..end], &quoted[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        match key {
            "realm" => realm = Some(value.to_string()),
            "service" => service = Some(value.to_string()),
            _ => {}
        }
        rest = next.trim_start_matches(',').trim_start();
    }
    Some(Challenge::Bearer { realm: realm?, service })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenges() {
        let c = parse_challenge(r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull""#).unwrap();
        match c {
            Challenge::Bearer { realm, service } => {
                assert_eq!(realm, "https://auth.example.com/token");
                assert_eq!(service.as_deref(), Some("registry.example.com"));
            }
            _ => panic!("expected bearer"),
        }
        assert!(matches!(parse_challenge(r#"Basic realm="Registry""#), Some(Challenge::Basic)));
        assert!(parse_challenge("Negotiate").is_none());
    }

    #[test]
    fn credentials_only_go_to_the_registry_host() {
        let u = |s: &str| url::Url::parse(s).unwrap();
        assert!(same_authority(&u("http://127.0.0.1:5000/v2/x"), "127.0.0.1:5000"));
        assert!(!same_authority(&u("http://127.0.0.1:5001/v2/x"), "127.0.0.1:5000"));
        assert!(!same_authority(&u("https://storage.example.net/upload?x"), "registry.example.com"));
        assert!(same_authority(&u("https://registry.example.com/v2/"), "registry.example.com"));
        assert!(same_authority(&u("https://registry.example.com/v2/"), "registry.example.com:443"));
        assert!(same_authority(&u("http://[::1]:5000/v2/"), "[::1]:5000"));
    }

    #[test]
    fn registry_errors_are_summarised() {
        let body = r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#;
        assert_eq!(registry_message(body), ": MANIFEST_UNKNOWN manifest unknown");
    }
}
