//! Blob uploads: one streamed PUT, or PATCH chunks for registries and proxies
//! that limit request sizes; a blob from another registry streams through.

use std::path::Path;

use futures_util::StreamExt as _;
use oxbuild_image::Digest;
use reqwest::Method;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};

use crate::client::{location, pull_scope, push_scope};
use crate::{BlobBody, Client, Error, Event, Reference};

impl Client {
    /// Uploads a blob in one request (POST then PUT), streaming files from disk.
    pub async fn upload_blob(
        &self,
        repo: &Reference,
        digest: &Digest,
        size: u64,
        body: &BlobBody,
    ) -> Result<(), Error> {
        self.retrying(|| self.upload_blob_once(repo, digest, size, body)).await?;
        self.remember_holder(digest, repo);
        Ok(())
    }

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
