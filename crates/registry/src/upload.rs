//! Blob uploads: one streamed PUT, or PATCH chunks for registries and proxies
//! that limit request sizes; a blob from another registry streams through.
//! Upload sessions can be opened ahead, while the image that needs them is
//! still being built.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use futures_util::StreamExt as _;
use oxbuild_image::Digest;
use reqwest::Method;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};

use crate::client::{location, pull_scope, push_scope};
use crate::{BlobBody, Client, Error, Event, Reference};

/// A session's POST, running or done: the session's URL when it opened.
type Opening = tokio::task::JoinHandle<Option<String>>;

/// Upload sessions opened ahead of a push ([`Client::open_uploads`]), by
/// repository (`registry/repository`).
#[derive(Default)]
pub(crate) struct OpenedAhead(Mutex<HashMap<String, (Reference, Vec<Opening>)>>);

impl OpenedAhead {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Reference, Vec<Opening>)>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Client {
    /// Opens `n` upload sessions in `repo` now, in the background, for a push
    /// that comes once the image is built: each new blob of that push then
    /// goes up in one request (a PUT into an open session) instead of two,
    /// and the registry's answer to the POST (for some, a token fetch too) is
    /// waited for while the build runs. A session that fails to open is not
    /// an error: its blob opens one of its own. Whoever opens sessions closes
    /// the ones left unused with [`Client::close_uploads`] when done.
    /// Must be called within a Tokio runtime.
    pub fn open_uploads(&self, repo: &Reference, n: usize) {
        let mut ahead = self.ahead.lock();
        let (_, sessions) = ahead.entry(repo.name()).or_insert_with(|| (repo.clone(), Vec::new()));
        for _ in 0..n {
            let (client, repo) = (self.clone(), repo.clone());
            let what = format!("opening an upload session in {}", repo.name());
            sessions.push(tokio::spawn(async move { client.start_upload(&repo, &what).await.ok() }));
        }
    }

    /// Closes (DELETE) the sessions [`Client::open_uploads`] opened that no
    /// blob used: those in `repo`, or everywhere when None. Best effort: a
    /// session the registry is not told about expires there on its own.
    pub async fn close_uploads(&self, repo: Option<&Reference>) {
        let left: Vec<_> = {
            let mut ahead = self.ahead.lock();
            match repo {
                Some(r) => ahead.remove(&r.name()).into_iter().collect(),
                None => ahead.drain().map(|(_, v)| v).collect(),
            }
        };
        let closing = left.into_iter().flat_map(|(repo, sessions)| {
            sessions.into_iter().map(move |session| {
                let repo = repo.clone();
                async move {
                    if let Ok(Some(loc)) = session.await {
                        let what = format!("closing an unused upload session in {}", repo.name());
                        let _ =
                            self.send(&repo.registry, &push_scope(&repo), &what, |http| Ok(http.delete(&loc))).await;
                    }
                }
            })
        });
        futures_util::future::join_all(closing).await;
    }

    /// A session opened ahead in `repo`, if one is left: one already open
    /// first, else the one whose POST is still on its way.
    pub(crate) async fn take_opened(&self, repo: &Reference) -> Option<String> {
        loop {
            let session = {
                let mut ahead = self.ahead.lock();
                let (_, sessions) = ahead.get_mut(&repo.name())?;
                let ready = sessions.iter().position(tokio::task::JoinHandle::is_finished);
                match ready {
                    Some(i) => sessions.swap_remove(i),
                    None => sessions.pop()?,
                }
            };
            if let Ok(Some(loc)) = session.await {
                return Some(loc);
            }
        }
    }

    /// Opens an upload session in `repo` (POST): the URL to send the blob to.
    pub(crate) async fn start_upload(&self, repo: &Reference, what: &str) -> Result<String, Error> {
        let start = format!("{}blobs/uploads/", self.repo_url(repo).await);
        let resp = self
            .send(&repo.registry, &push_scope(repo), what, |http| Ok(http.post(&start).header(CONTENT_LENGTH, "0")))
            .await?;
        location(&resp, &start).ok_or_else(|| Error::Invalid(format!("{what}: the registry gave no upload location")))
    }

    /// Uploads a blob, streaming files from disk: a PUT into a session opened
    /// ahead, else a POST then a PUT.
    pub async fn upload_blob(
        &self,
        repo: &Reference,
        digest: &Digest,
        size: u64,
        body: &BlobBody,
    ) -> Result<(), Error> {
        // If sending into a session opened ahead fails for any reason (it
        // expired, the connection broke), the blob starts over in a session
        // of its own, with the usual retries.
        let sent = match self.take_opened(repo).await {
            Some(loc) => self.upload_blob_once(repo, digest, size, body, Some(loc)).await.is_ok(),
            None => false,
        };
        if !sent {
            self.retrying(|| self.upload_blob_once(repo, digest, size, body, None)).await?;
        }
        self.remember_holder(digest, repo);
        Ok(())
    }

    async fn upload_blob_once(
        &self,
        repo: &Reference,
        digest: &Digest,
        size: u64,
        body: &BlobBody,
        opened: Option<String>,
    ) -> Result<(), Error> {
        let what = format!("uploading blob {digest} to {}", repo.name());
        let scopes = push_scope(repo);
        let loc = match opened {
            Some(loc) => loc,
            None => self.start_upload(repo, &what).await?,
        };
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
