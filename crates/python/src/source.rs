//! Where wheels come from: `find-links` directories (offline, air-gapped) and
//! package indexes speaking the simple API (PEP 691 JSON, PEP 503 HTML).
//! Index credentials come from the URL's user info or `~/.netrc` and are sent
//! only as an `Authorization` header; every URL shown to the user is redacted.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::io::Write as _;

use futures_util::StreamExt as _;
use oxbuild_image::BlobStore;
use oxbuild_image::store::BlobWriter;
use reqwest::header::{ACCEPT, CONTENT_TYPE};

use crate::Error;
use crate::name::normalize;

/// One downloadable file of a project.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The file name.
    pub filename: String,
    /// Where to get it.
    pub location: Location,
    /// Its sha256 (hex), when the source says.
    pub sha256: Option<String>,
    /// Yanked on the index (PEP 592), with the reason given (may be empty).
    /// Locks pin exact versions, and PEP 592 lets an exact pin use a yanked
    /// file; it is chosen only when nothing else fits, with a warning.
    pub yanked: Option<String>,
    /// When it was uploaded (PEP 700), when the index or lock says.
    pub upload_time: Option<std::time::SystemTime>,
    /// Its `Requires-Python` as the index lists it (PEP 503's
    /// `data-requires-python`), before any file is fetched.
    pub requires_python: Option<String>,
    /// The index serves its core metadata beside it (PEP 658/714: the file's
    /// URL with `.metadata` appended).
    pub metadata: bool,
}

/// A file listed on an index page.
#[derive(Debug)]
struct Listed {
    filename: String,
    url: url::Url,
    sha256: Option<String>,
    /// The yank reason (PEP 592), empty when none is given.
    yanked: Option<String>,
    /// PEP 700's `upload-time`, from JSON pages only.
    upload_time: Option<std::time::SystemTime>,
    requires_python: Option<String>,
    metadata: bool,
}

/// An RFC 3339 time as indexes and locks write it (`2024-05-01T12:00:00.123Z`).
pub fn parse_time(text: &str) -> Option<std::time::SystemTime> {
    let text = text.trim();
    let text = text.strip_suffix("+00:00").unwrap_or(text);
    humantime::parse_rfc3339_weak(text.strip_suffix('Z').unwrap_or(text)).ok()
}

/// Where a candidate file is.
#[derive(Debug, Clone)]
pub enum Location {
    /// A local file (find-links).
    File(PathBuf),
    /// A URL on an index (credentials not included).
    Url(url::Url, usize),
    /// A URL named by the lock file itself (no index credentials are sent).
    Direct(url::Url),
}

#[derive(Clone)]
struct Index {
    url: url::Url,
    auth: Option<(String, String)>,
}

/// Never the password: the user name at most.
impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index")
            .field("url", &self.url.as_str())
            .field("user", &self.auth.as_ref().map(|(u, _)| u))
            .finish_non_exhaustive()
    }
}

impl Index {
    fn parse(raw: &str) -> Result<Index, Error> {
        let mut url = url::Url::parse(raw.trim())
            .map_err(|e| Error::Index(format!("index URL `{}` is not valid: {e}", redact(raw))))?;
        if !url.path().ends_with('/') {
            url.set_path(&format!("{}/", url.path()));
        }
        let mut auth = None;
        if !url.username().is_empty() {
            let user = percent(url.username());
            let pass = url.password().map(percent).unwrap_or_default();
            auth = Some((user, pass));
            let _ = url.set_username("");
            let _ = url.set_password(None);
        } else if let Some(host) = url.host_str() {
            auth = netrc(host);
        }
        Ok(Index { url, auth })
    }
}

/// Percent-decodes URL user info or a file name (`+` stays `+`, unlike form decoding).
fn percent(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// `raw` with any user info replaced by `***`.
pub fn redact(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
            let _ = u.set_username("***");
            let _ = u.set_password(None);
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => match raw.split_once('@') {
            Some((_, rest)) => format!("***@{rest}"),
            None => raw.to_string(),
        },
    }
}

/// Credentials for `host` from `$NETRC` or `~/.netrc`: its `machine` entry,
/// else the `default` one. Parsed by `rust-netrc`, which knows `default`,
/// `macdef`, comments and quoted tokens.
fn netrc(host: &str) -> Option<(String, String)> {
    netrc_entry(&netrc_text()?, host, true)
}

/// Credentials for `host` from its own `machine` entry of the netrc file.
fn netrc_machine(host: &str) -> Option<(String, String)> {
    netrc_entry(&netrc_text()?, host, false)
}

fn netrc_text() -> Option<String> {
    let path = std::env::var_os("NETRC")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".netrc")))?;
    std::fs::read_to_string(path).ok()
}

/// The entry of `host` in `text`, else (when `default`) the `default` one.
fn netrc_entry(text: &str, host: &str, default: bool) -> Option<(String, String)> {
    let parsed: netrc::Netrc = text.parse().ok()?;
    let auth = parsed.hosts.get(host).or_else(|| parsed.hosts.get("default").filter(|_| default))?;
    Some((auth.login.clone(), auth.password.clone()))
}

/// The configured sources, in the order they are asked.
#[derive(Debug, Clone)]
pub struct Sources {
    find_links: Vec<PathBuf>,
    indexes: Vec<Index>,
    http: oxbuild_http::Client,
    /// Packages (normalised) whose `find-links` wheel is taken although the
    /// lock's hashes do not name it (`[python] trust-local-wheels`).
    trusted: Vec<String>,
    /// Where index pages (for [`PAGE_TTL`]) and core metadata (by the
    /// file's sha256, for good) are kept between runs, when set.
    cache: Option<PathBuf>,
    /// HTTP requests sent, shared by every clone (for reports).
    requests: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Hosts (origins) that answered a range request with the whole file:
    /// not asked for ranges again.
    no_ranges: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

/// How long a cached index page is used without asking the index again:
/// PyPI's own `max-age` for simple pages.
pub const PAGE_TTL: Duration = Duration::from_secs(600);

/// A cached index page.
#[derive(serde::Serialize, serde::Deserialize)]
struct CachedPage {
    fetched: u64,
    json: bool,
    body: String,
}

/// Writes `bytes` to `path` whole or not at all (a temporary file renamed).
fn write_atomic(path: &Path, bytes: &[u8]) {
    let Some(dir) = path.parent() else { return };
    let _ = std::fs::create_dir_all(dir);
    if let Ok(mut tmp) = tempfile::NamedTempFile::new_in(dir)
        && std::io::Write::write_all(&mut tmp, bytes).is_ok()
    {
        let _ = tmp.persist(path);
    }
}

/// The default index.
pub const PYPI: &str = "https://pypi.org/simple/";

impl Sources {
    /// These sources, taking a `find-links` wheel of each of `names` even
    /// when the lock's hashes do not name it (a wheel built here from a
    /// source-only package cannot match a hash the lock took from PyPI).
    /// How many HTTP requests these sources (and their clones) have sent.
    pub fn requests(&self) -> u64 {
        self.requests.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// These sources, keeping index pages and core metadata in `dir`.
    pub fn caching(mut self, dir: PathBuf) -> Sources {
        self.cache = Some(dir);
        self
    }

    /// These sources, taking the find-links wheels of `names` without the lock's hash.
    pub fn trusting(mut self, names: &[String]) -> Sources {
        self.trusted = names.iter().map(|n| normalize(n)).collect();
        self
    }

    /// Whether `candidate` of package `key` is taken without the lock's hash.
    pub fn trusts(&self, key: &str, candidate: &Candidate) -> bool {
        matches!(candidate.location, Location::File(_)) && self.trusted.iter().any(|t| t == key)
    }

    /// find-links directories first, then `index_url` (PyPI when None) and the
    /// extra indexes, unless `no_index`; indexes are asked through `http`.
    pub fn new(
        find_links: Vec<PathBuf>,
        index_url: Option<&str>,
        extra: &[String],
        no_index: bool,
        http: oxbuild_http::Client,
    ) -> Result<Sources, Error> {
        let mut indexes = Vec::new();
        if !no_index {
            indexes.push(Index::parse(index_url.unwrap_or(PYPI))?);
            for e in extra {
                indexes.push(Index::parse(e)?);
            }
        }
        Ok(Sources {
            find_links,
            indexes,
            http,
            trusted: Vec::new(),
            cache: None,
            requests: Default::default(),
            no_ranges: Default::default(),
        })
    }

    /// The sources that `options` name (see [`Sources::new`]).
    pub fn from_options(
        options: &crate::requirements::IndexOptions,
        http: oxbuild_http::Client,
    ) -> Result<Sources, Error> {
        Sources::new(
            options.find_links.clone(),
            options.index_url.as_deref(),
            &options.extra_index_urls,
            options.no_index,
            http,
        )
    }

    /// The login to send with a request for `url`, found on index `index`
    /// (`usize::MAX`: named by a lock). An index's credentials go to that
    /// index only (its origin), never to a file host it links to; a file
    /// that a lock names gets those of the configured index it is on, else
    /// the `machine` entry of `~/.netrc` for its host (not the `default`
    /// one, which would go to every host a lock names).
    fn credentials_for(&self, index: usize, url: &url::Url) -> Option<(String, String)> {
        let same_origin = |i: &&Index| i.auth.is_some() && i.url.origin() == url.origin();
        if index != usize::MAX {
            return self.indexes.get(index).filter(same_origin).and_then(|i| i.auth.clone());
        }
        if let Some(i) = self.indexes.iter().find(same_origin) {
            return i.auth.clone();
        }
        netrc_machine(url.host_str()?)
    }

    /// The URL of index `i` (as candidates name it), credentials removed.
    pub fn index_url(&self, i: usize) -> Option<String> {
        self.indexes.get(i).map(|index| index.url.to_string())
    }

    /// Where files were looked for, for messages (credentials redacted).
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self.find_links.iter().map(|p| format!("find-links {}", p.display())).collect();
        parts.extend(self.indexes.iter().map(|i| format!("index {}", i.url)));
        if parts.is_empty() { "no sources (no-index without find-links)".into() } else { parts.join(", ") }
    }

    /// Every file offered for `name`, local ones first.
    pub async fn candidates(&self, name: &str) -> Result<Vec<Candidate>, Error> {
        let mut out = self.local_candidates(name)?;
        out.extend(self.index_candidates(name).await?);
        Ok(out)
    }

    /// The files of `name` in the find-links directories.
    pub fn local_candidates(&self, name: &str) -> Result<Vec<Candidate>, Error> {
        let key = normalize(name);
        let mut out = Vec::new();
        for dir in &self.find_links {
            let entries = std::fs::read_dir(dir)
                .map_err(|e| Error::Index(format!("find-links directory {}: {e}", dir.display())))?;
            for entry in entries.flatten() {
                let filename = entry.file_name().to_string_lossy().into_owned();
                if project_of(&filename).is_some_and(|p| normalize(&p) == key) {
                    out.push(Candidate {
                        filename,
                        location: Location::File(entry.path()),
                        sha256: None,
                        yanked: None,
                        upload_time: None,
                        requires_python: None,
                        metadata: false,
                    });
                }
            }
        }
        Ok(out)
    }

    /// The files of `name` on the indexes.
    pub async fn index_candidates(&self, name: &str) -> Result<Vec<Candidate>, Error> {
        let key = normalize(name);
        let mut out = Vec::new();
        for (i, index) in self.indexes.iter().enumerate() {
            out.extend(self.index_page(i, index, &key).await?);
        }
        Ok(out)
    }

    async fn index_page(&self, i: usize, index: &Index, key: &str) -> Result<Vec<Candidate>, Error> {
        let page = index.url.join(&format!("{key}/")).map_err(|e| Error::Index(e.to_string()))?;
        let cached_at = self.cache.as_ref().map(|d| {
            d.join("pages").join(format!("{}.json", oxbuild_image::Digest::of(page.as_str().as_bytes()).hex()))
        });
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let fresh = cached_at
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice::<CachedPage>(&b).ok())
            .filter(|c| now.saturating_sub(c.fetched) < PAGE_TTL.as_secs());
        if let Some(c) = fresh {
            return Ok(self.listed(i, if c.json { parse_json(&c.body, &page) } else { parse_html(&c.body, &page) }));
        }
        let accept = "application/vnd.pypi.simple.v1+json, text/html;q=0.1";
        let read = |resp: reqwest::Response| async move {
            let json =
                resp.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|t| t.contains("json"));
            let body = resp.text().await.map_err(|e| Attempt::Transport(oxbuild_http::describe(&e)))?;
            Ok((json, body))
        };
        let (json, body) = match self.get(i, &page, accept, None, read).await {
            Ok(page) => page,
            Err(Failed::Status(reqwest::StatusCode::NOT_FOUND)) => return Ok(Vec::new()),
            Err(Failed::Status(status)) => {
                return Err(Error::Index(format!("index {} answered {status} for {key}", index.url)));
            }
            Err(Failed::Other(e)) => return Err(e),
        };
        let files = if json { parse_json(&body, &page) } else { parse_html(&body, &page) };
        if let Some(path) = &cached_at {
            let entry = CachedPage { fetched: now, json, body };
            if let Ok(bytes) = serde_json::to_vec(&entry) {
                write_atomic(path, &bytes);
            }
        }
        Ok(self.listed(i, files))
    }

    /// The files of an index page as candidates from index `i`.
    fn listed(&self, i: usize, files: Vec<Listed>) -> Vec<Candidate> {
        files
            .into_iter()
            .map(|l| Candidate {
                filename: l.filename,
                location: Location::Url(l.url, i),
                sha256: l.sha256,
                yanked: l.yanked,
                upload_time: l.upload_time,
                requires_python: l.requires_python,
                metadata: l.metadata,
            })
            .collect()
    }

    /// GET through the shared client and `read` the answer, as one attempt:
    /// retried as a whole on connection errors, a body cut short or stalled
    /// (the client's read timeout), 5xx and 429 (after the index's
    /// `Retry-After` when it sends one). A status that is still an error
    /// after the last try, or any other unsuccessful status, is returned for
    /// the caller to name.
    async fn get<T, F, Fut>(
        &self,
        index: usize,
        url: &url::Url,
        accept: &str,
        range: Option<&str>,
        read: F,
    ) -> Result<T, Failed>
    where
        F: Fn(reqwest::Response) -> Fut,
        Fut: std::future::Future<Output = Result<T, Attempt>>,
    {
        let result = self
            .http
            .retrying(|| async {
                let mut req = self.http.reqwest().get(url.clone()).header(ACCEPT, accept);
                if let Some(range) = range {
                    req = req.header(reqwest::header::RANGE, range);
                }
                if let Some((u, p)) = self.credentials_for(index, url) {
                    req = req.basic_auth(u, Some(p));
                }
                self.requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                match req.send().await {
                    Ok(r) if r.status().is_server_error() || r.status() == 429 => {
                        Err(Attempt::Status(r.status(), oxbuild_http::retry_after(r.headers())))
                    }
                    Ok(r) if !r.status().is_success() => Err(Attempt::Final(Failed::Status(r.status()))),
                    Ok(r) => read(r).await,
                    Err(e) => Err(Attempt::Transport(oxbuild_http::describe(&e))),
                }
            })
            .await;
        result.map_err(|attempt| match attempt {
            Attempt::Status(status, _) => Failed::Status(status),
            Attempt::Final(failed) => failed,
            Attempt::Transport(detail) => {
                let host = url.host_str().unwrap_or("the index");
                Failed::Other(Error::Index(format!("cannot reach {host}: {detail}")))
            }
        })
    }

    /// The core metadata an index serves beside `c` (PEP 658: its URL with
    /// `.metadata` appended), when it says it does: a few kilobytes instead
    /// of the whole file. None when it has none to offer.
    pub async fn metadata(&self, c: &Candidate) -> Result<Option<String>, Error> {
        let Location::Url(url, index) = &c.location else { return Ok(None) };
        if !c.metadata {
            return Ok(None);
        }
        if let Some(text) = self.cached_metadata(c) {
            return Ok(Some(text));
        }
        let mut at = url.clone();
        at.set_path(&format!("{}.metadata", url.path()));
        let read = |resp: reqwest::Response| async move {
            resp.text().await.map_err(|e| Attempt::Transport(oxbuild_http::describe(&e)))
        };
        match self.get(*index, &at, "*/*", None, read).await {
            Ok(text) => {
                self.keep_metadata(c, &text);
                Ok(Some(text))
            }
            // Listed but not served: the file itself will do.
            Err(Failed::Status(_)) => Ok(None),
            Err(Failed::Other(e)) => Err(e),
        }
    }

    /// Where the core metadata of `c` is kept: a file's metadata never
    /// changes, so it is kept by the file's sha256.
    fn kept_metadata(&self, c: &Candidate) -> Option<PathBuf> {
        match (&self.cache, &c.sha256) {
            (Some(dir), Some(sha)) => Some(dir.join("metadata").join(format!("{}.metadata", sha.to_ascii_lowercase()))),
            _ => None,
        }
    }

    /// The core metadata of `c` read before, by its sha256.
    pub fn cached_metadata(&self, c: &Candidate) -> Option<String> {
        self.kept_metadata(c).and_then(|p| std::fs::read_to_string(p).ok())
    }

    /// Keeps `text` as the core metadata of `c`, for the next lock.
    pub fn keep_metadata(&self, c: &Candidate, text: &str) {
        if let Some(path) = self.kept_metadata(c) {
            write_atomic(&path, text.as_bytes());
        }
    }

    /// Part of the remote file `c`: `range` is an HTTP Range value
    /// (`bytes=-65536` for the last 64 KiB, `bytes=0-99`). Returns where the
    /// part starts, its bytes and the whole file's length; None when the file
    /// is local or the server does not serve ranges (it answers with the
    /// whole file, whose body is not read).
    pub async fn range(&self, c: &Candidate, range: &str) -> Result<Option<(u64, Vec<u8>, u64)>, Error> {
        let (url, index) = match &c.location {
            Location::Url(url, i) => (url, *i),
            Location::Direct(url) => (url, usize::MAX),
            Location::File(_) => return Ok(None),
        };
        let origin = url.origin().ascii_serialization();
        let refused = |origin: String| {
            self.no_ranges.lock().map(|mut n| n.insert(origin)).ok();
        };
        if self.no_ranges.lock().is_ok_and(|n| n.contains(&origin)) {
            return Ok(None);
        }
        let read = |resp: reqwest::Response| async move {
            if resp.status() != reqwest::StatusCode::PARTIAL_CONTENT {
                refused(resp.url().origin().ascii_serialization());
                return Ok(None);
            }
            // `bytes START-END/LENGTH`
            let parsed = resp
                .headers()
                .get(reqwest::header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("bytes "))
                .and_then(|v| v.split_once('/'))
                .and_then(|(span, len)| Some((span.split_once('-')?.0.parse::<u64>().ok()?, len.parse::<u64>().ok()?)));
            let Some((start, len)) = parsed else { return Ok(None) };
            let body = resp.bytes().await.map_err(|e| Attempt::Transport(oxbuild_http::describe(&e)))?;
            Ok(Some((start, body.to_vec(), len)))
        };
        match self.get(index, url, "*/*", Some(range), read).await {
            Ok(part) => Ok(part),
            // 416 and the like: the caller takes the whole file instead.
            Err(Failed::Status(_)) => Ok(None),
            Err(Failed::Other(e)) => Err(e),
        }
    }

    /// Copies or downloads a candidate into a blob-store writer, which the
    /// caller checks against the lock and commits (or drops: nothing stays).
    async fn download(&self, c: &Candidate, store: &BlobStore) -> Result<BlobWriter, Error> {
        let write_err = |e: std::io::Error| Error::Image(oxbuild_image::Error::io("writing into the wheel cache", e));
        match &c.location {
            Location::File(p) => {
                let mut out = store.writer()?;
                let mut file =
                    std::fs::File::open(p).map_err(|e| Error::Index(format!("reading {}: {e}", p.display())))?;
                std::io::copy(&mut file, &mut out)
                    .map_err(|e| Error::Index(format!("reading {}: {e}", p.display())))?;
                Ok(out)
            }
            Location::Url(url, _) | Location::Direct(url) => {
                let index = match &c.location {
                    Location::Url(_, i) => *i,
                    _ => usize::MAX,
                };
                // Streamed into the store: a wheel of a gigabyte never sits in
                // memory. A transfer cut short starts again in a new writer;
                // the dropped one leaves nothing behind.
                let read = |resp: reqwest::Response| async move {
                    let mut out = store.writer().map_err(|e| Attempt::Final(Failed::Other(e.into())))?;
                    let mut body = resp.bytes_stream();
                    while let Some(chunk) = body.next().await {
                        let chunk = chunk.map_err(|e| Attempt::Transport(oxbuild_http::describe(&e)))?;
                        out.write_all(&chunk).map_err(|e| Attempt::Final(Failed::Other(write_err(e))))?;
                    }
                    Ok(out)
                };
                match self.get(index, url, "*/*", None, read).await {
                    Ok(out) => Ok(out),
                    Err(Failed::Status(status)) => {
                        let login = match status.as_u16() {
                            401 | 403 => {
                                "; it wants a login: name its index with the credentials in [python] index-url or extra-index-url (OXBUILD_PYTHON_INDEX_URL keeps them out of the file), or give its host a `machine` entry in ~/.netrc"
                            }
                            _ => "",
                        };
                        Err(Error::Index(format!(
                            "downloading {} from {} answered {status}{login}",
                            c.filename,
                            url.host_str().unwrap_or("its host")
                        )))
                    }
                    Err(Failed::Other(Error::Index(detail))) => {
                        Err(Error::Index(format!("downloading {}: {detail}", c.filename)))
                    }
                    Err(Failed::Other(e)) => Err(e),
                }
            }
        }
    }
}

/// A candidate's file in the blob store.
pub struct Stored {
    /// Its digest.
    pub digest: oxbuild_image::Digest,
    /// Where it is in the store.
    pub path: PathBuf,
    /// It came over the network this time (not from the store, not from a
    /// `find-links` directory).
    pub downloaded: bool,
}

impl Candidate {
    /// Gives a file of a find-links directory, which no index describes,
    /// its sha256, read from the file (once: `known` keeps what was read):
    /// a lock records one for each file.
    pub fn hash_local_file(&mut self, known: &mut HashMap<PathBuf, String>) -> Result<(), Error> {
        let Location::File(path) = &self.location else { return Ok(()) };
        if self.sha256.is_some() {
            return Ok(());
        }
        if let Some(sha) = known.get(path) {
            self.sha256 = Some(sha.clone());
            return Ok(());
        }
        let fail = |e: std::io::Error| Error::Index(format!("find-links file {}: {e}", path.display()));
        let mut file = std::fs::File::open(path).map_err(fail)?;
        let mut hasher = oxbuild_image::Hasher::new();
        std::io::copy(&mut file, &mut hasher).map_err(fail)?;
        let sha = hasher.finish().0.hex().to_string();
        known.insert(path.clone(), sha.clone());
        self.sha256 = Some(sha);
        Ok(())
    }
}

impl Sources {
    /// The file of `c` in the store. When the index's sha256 names a file
    /// already there, that file is used and nothing is fetched; otherwise it
    /// is downloaded (or copied) and checked against that sha256. Either way
    /// `accept` sees the digest before anything is kept, so a file that fails
    /// a check (the lock's hashes, say) leaves nothing behind.
    pub async fn stored(
        &self,
        c: &Candidate,
        store: &BlobStore,
        accept: impl FnOnce(&oxbuild_image::Digest) -> Result<(), Error>,
    ) -> Result<Stored, Error> {
        let known: Option<oxbuild_image::Digest> =
            c.sha256.as_ref().and_then(|h| format!("sha256:{}", h.to_ascii_lowercase()).parse().ok());
        if let Some(digest) = known.clone().filter(|d| store.contains(d)) {
            accept(&digest)?;
            return Ok(Stored { path: store.path(&digest), digest, downloaded: false });
        }
        let blob = self.download(c, store).await?;
        let digest = blob.digest();
        if known.as_ref().is_some_and(|k| k != &digest) {
            return Err(Error::Package(format!(
                "{} does not match the index's sha256; nothing was stored",
                c.filename
            )));
        }
        accept(&digest)?;
        let path = blob.commit(&digest)?;
        let downloaded = matches!(c.location, Location::Url(..) | Location::Direct(_));
        Ok(Stored { digest, path, downloaded })
    }
}

/// One try of an index request that did not succeed.
enum Attempt {
    /// A 5xx or 429, and the wait the index asked for: worth another try,
    /// and named if the last one.
    Status(reqwest::StatusCode, Option<Duration>),
    /// No answer, or a body cut short or stalled: worth another try.
    Transport(String),
    /// Not worth another try.
    Final(Failed),
}

/// An index request that failed for good.
enum Failed {
    /// The index answered with this unsuccessful status.
    Status(reqwest::StatusCode),
    /// Anything else.
    Other(Error),
}

impl oxbuild_http::Transient for Attempt {
    /// A host that does not exist is not tried again.
    fn is_transient(&self) -> bool {
        match self {
            Attempt::Final(_) => false,
            Attempt::Transport(detail) => !oxbuild_http::unknown_host(detail),
            Attempt::Status(..) => true,
        }
    }
    fn retry_after(&self) -> Option<Duration> {
        match self {
            Attempt::Status(_, wait) => *wait,
            _ => None,
        }
    }
}

/// The project name a file name starts with (wheel or sdist).
pub fn project_of(filename: &str) -> Option<String> {
    if filename.ends_with(".whl") {
        return filename.split('-').next().map(str::to_string);
    }
    let stem = filename.strip_suffix(".tar.gz").or_else(|| filename.strip_suffix(".zip"))?;
    stem.rsplit_once('-').map(|(name, _)| name.to_string())
}

/// The version in a file name (wheel or sdist).
pub fn version_of(filename: &str) -> Option<String> {
    if filename.ends_with(".whl") {
        return filename.split('-').nth(1).map(str::to_string);
    }
    let stem = filename.strip_suffix(".tar.gz").or_else(|| filename.strip_suffix(".zip"))?;
    stem.rsplit_once('-').map(|(_, v)| v.to_string())
}

/// Both page parsers over `body` (for the fuzz targets).
pub(crate) fn page_parsers(body: &str) {
    let page = url::Url::parse("https://index.example/simple/pkg/").expect("a valid URL");
    let _ = parse_json(body, &page);
    let _ = parse_html(body, &page);
}

fn parse_json(body: &str, page: &url::Url) -> Vec<Listed> {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    v["files"]
        .as_array()
        .map(|files| {
            files
                .iter()
                .filter_map(|f| {
                    let url = page.join(f["url"].as_str()?).ok()?;
                    let yanked = match &f["yanked"] {
                        serde_json::Value::Bool(true) => Some(String::new()),
                        serde_json::Value::String(reason) => Some(reason.clone()),
                        _ => None,
                    };
                    let sha256 = f["hashes"]["sha256"].as_str().map(str::to_string);
                    let upload_time = f["upload-time"].as_str().and_then(parse_time);
                    let requires_python = f["requires-python"].as_str().map(String::from);
                    // PEP 714's name, and PEP 658's older one; `false` or absent is none.
                    let metadata = [&f["core-metadata"], &f["dist-info-metadata"], &f["data-dist-info-metadata"]]
                        .iter()
                        .any(|m| m.is_object() || m.as_bool() == Some(true));
                    Some(Listed {
                        filename: f["filename"].as_str()?.to_string(),
                        url,
                        sha256,
                        yanked,
                        upload_time,
                        requires_python,
                        metadata,
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A PEP 503 page: every `<a href>` is a file, its fragment the hash, its
/// `data-yanked` the yank (PEP 592). Tokenised by `html5gum`, which decodes
/// character references in attributes; a `<base href>` moves the page's base.
fn parse_html(body: &str, page: &url::Url) -> Vec<Listed> {
    let mut base = page.clone();
    let mut out = Vec::new();
    for token in html5gum::Tokenizer::new(body).flatten() {
        let html5gum::Token::StartTag(tag) = token else { continue };
        let attr = |name: &str| {
            tag.attributes
                .iter()
                .find(|(k, _)| k.as_slice() == name.as_bytes())
                .map(|(_, v)| String::from_utf8_lossy(&v.value).into_owned())
        };
        match tag.name.as_slice() {
            b"base" => {
                if let Some(href) = attr("href")
                    && let Ok(url) = page.join(&href)
                {
                    base = url;
                }
            }
            b"a" => {
                let Some(href) = attr("href") else { continue };
                let Ok(mut url) = base.join(&href) else { continue };
                let sha256 = url.fragment().and_then(|f| f.strip_prefix("sha256=")).map(str::to_string);
                url.set_fragment(None);
                // File names are percent-encoded in URLs: `torch-2.3.0%2Bcpu-…` is `torch-2.3.0+cpu-…`.
                let filename = url.path_segments().and_then(|mut s| s.next_back()).map(percent).unwrap_or_default();
                let metadata = ["data-core-metadata", "data-dist-info-metadata"]
                    .iter()
                    .any(|a| attr(a).is_some_and(|v| v != "false"));
                out.push(Listed {
                    filename,
                    url,
                    sha256,
                    yanked: attr("data-yanked"),
                    upload_time: None,
                    requires_python: attr("data-requires-python"),
                    metadata,
                });
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A host that does not exist (`.invalid` never resolves) fails at the
    /// first try, where a port nothing listens on is tried again.
    #[tokio::test]
    async fn a_host_that_does_not_exist_is_not_retried() {
        let retry =
            oxbuild_http::RetryPolicy { attempts: 3, initial: Duration::from_millis(1), max: Duration::from_millis(1) };
        let opts = oxbuild_http::Options { proxy: oxbuild_http::ProxySettings::Direct, retry, ..Default::default() };
        let http = oxbuild_http::Client::new(opts).unwrap();
        let index = |url: &str| Sources::new(Vec::new(), Some(url), &[], false, http.clone()).unwrap();
        let missing = index("http://no-such-host.invalid/simple");
        let e = missing.index_candidates("flask").await.unwrap_err().to_string();
        assert!(e.contains("cannot reach no-such-host.invalid"), "{e}");
        assert_eq!(missing.requests(), 1, "{e}");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let closed = index(&format!("http://127.0.0.1:{port}/simple"));
        let e = closed.index_candidates("flask").await.unwrap_err().to_string();
        assert_eq!(closed.requests(), 3, "{e}");
        assert!(oxbuild_http::unknown_host("failed to lookup address information: Name or service not known"));
        assert!(!oxbuild_http::unknown_host(
            "failed to lookup address information: Temporary failure in name resolution"
        ));
    }

    #[test]
    fn credentials_are_redacted_and_split_off() {
        assert_eq!(redact("https://user:s3cret@pkgs.example.com/simple"), "https://***@pkgs.example.com/simple");
        let i = Index::parse("https://user:s3cret@pkgs.example.com/simple").unwrap();
        assert_eq!(i.url.as_str(), "https://pkgs.example.com/simple/");
        assert_eq!(i.auth, Some(("user".to_string(), "s3cret".to_string())));
        let plus = Index::parse("https://u:ab+cd%2Fe@pkgs.example.com/simple").unwrap();
        assert_eq!(plus.auth, Some(("u".to_string(), "ab+cd/e".to_string())));
    }

    #[test]
    fn html_and_json_pages() {
        let page = url::Url::parse("https://example.com/simple/markupsafe/").unwrap();
        let html = r#"<a href="../../files/markupsafe-3.0.2-cp311-cp311-manylinux_2_17_x86_64.whl#sha256=abc">x</a><a href="/y/markupsafe-1.0.tar.gz" data-yanked="">y</a><a href="/y/markupsafe-1.1.tar.gz" data-yanked="broke &lt;3.8&gt;">z</a>"#;
        let files = parse_html(html, &page);
        assert_eq!(files.len(), 3);
        assert_eq!(files[0].filename, "markupsafe-3.0.2-cp311-cp311-manylinux_2_17_x86_64.whl");
        assert_eq!(files[0].sha256.as_deref(), Some("abc"));
        assert_eq!(files[0].yanked, None);
        assert_eq!(files[1].yanked.as_deref(), Some(""));
        assert_eq!(files[2].yanked.as_deref(), Some("broke <3.8>"));
        let json = r#"{"files":[{"filename":"a-1.0-py3-none-any.whl","url":"https://f/a-1.0-py3-none-any.whl","hashes":{"sha256":"def"}},{"filename":"a-0.9.tar.gz","url":"x","hashes":{},"yanked":"broken"},{"filename":"a-0.8.tar.gz","url":"y","hashes":{},"yanked":true}]}"#;
        let files = parse_json(json, &page);
        assert_eq!(files.len(), 3);
        assert_eq!((files[0].sha256.as_deref(), files[0].yanked.as_deref()), (Some("def"), None));
        assert_eq!(files[1].yanked.as_deref(), Some("broken"));
        assert_eq!(files[2].yanked.as_deref(), Some(""));
    }

    #[test]
    fn upload_times_as_indexes_and_locks_write_them() {
        let t = |s: &str| parse_time(s).map(|t| t.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis());
        assert_eq!(t("2024-05-01T12:00:00Z"), Some(1_714_564_800_000));
        assert_eq!(t("2024-05-01T12:00:00.250Z"), Some(1_714_564_800_250));
        assert_eq!(t("2024-05-01T12:00:00.250+00:00"), Some(1_714_564_800_250));
        assert_eq!(t("yesterday"), None);
        let page = url::Url::parse("https://example.com/simple/a/").unwrap();
        let json = r#"{"files":[{"filename":"a-1.0.tar.gz","url":"a-1.0.tar.gz","hashes":{},"upload-time":"2024-05-01T12:00:00.250Z"}]}"#;
        assert_eq!(parse_json(json, &page)[0].upload_time, parse_time("2024-05-01T12:00:00.250Z"));
    }

    #[test]
    fn names_and_versions_of_files() {
        assert_eq!(project_of("Markup_Safe-3.0-py3-none-any.whl").as_deref(), Some("Markup_Safe"));
        assert_eq!(project_of("markupsafe-3.0.2.tar.gz").as_deref(), Some("markupsafe"));
        assert_eq!(version_of("markupsafe-3.0.2.tar.gz").as_deref(), Some("3.0.2"));
    }

    #[test]
    fn html_entities_base_and_percent_encoded_names() {
        let page = url::Url::parse("https://example.com/simple/torch/").unwrap();
        let html = r#"<!DOCTYPE html><html><head><base href="https://files.example.net/whl/"></head><body>
<a href="torch-2.3.0%2Bcpu-cp311-cp311-linux_x86_64.whl#sha256=aa&amp;x=1" data-requires-python="&gt;=3.8">t</a>
<a href='../other/torch-2.2.0-py3-none-any.whl' data-yanked="no &quot;longer&quot; &#x3C;ok&#62;">u</a>
</body></html>"#;
        let files = parse_html(html, &page);
        assert_eq!(files.len(), 2, "{files:?}");
        assert_eq!(files[0].filename, "torch-2.3.0+cpu-cp311-cp311-linux_x86_64.whl");
        assert_eq!(
            files[0].url.as_str(),
            "https://files.example.net/whl/torch-2.3.0%2Bcpu-cp311-cp311-linux_x86_64.whl"
        );
        assert_eq!(files[0].sha256.as_deref(), Some("aa&x=1"));
        assert_eq!(files[1].url.as_str(), "https://files.example.net/other/torch-2.2.0-py3-none-any.whl");
        assert_eq!(files[1].yanked.as_deref(), Some(r#"no "longer" <ok>"#));
        assert_eq!(version_of(&files[0].filename).as_deref(), Some("2.3.0+cpu"));
    }

    #[test]
    fn netrc_default_comments_macdef_and_quotes() {
        let text = r#"# a comment line
machine pkgs.example.com login alice password "p w#d" # trailing comment
macdef init
  cd /pub
  machine not.a.host login x password y

default login anyone password fallback
"#;
        assert_eq!(netrc_entry(text, "pkgs.example.com", true), Some(("alice".into(), "p w#d".into())));
        assert_eq!(netrc_entry(text, "other.example.org", true), Some(("anyone".into(), "fallback".into())));
        assert_eq!(
            netrc_entry(text, "not.a.host", true),
            Some(("anyone".into(), "fallback".into())),
            "macdef bodies are no entries"
        );
        assert_eq!(netrc_entry("machine a login b password c\n", "z", true), None);
        // A file a lock names gets its host's own entry, never the default.
        assert_eq!(netrc_entry(text, "pkgs.example.com", false), Some(("alice".into(), "p w#d".into())));
        assert_eq!(netrc_entry(text, "other.example.org", false), None);
    }
}
