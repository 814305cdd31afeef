//! Blobs uploaded while they are still being written: a large layer goes to
//! the registry as it is compressed, in one PATCH whose body is the bytes as
//! they come, and is completed (PUT with the digest) once the writer knows
//! its digest. On a fresh runner that hides the upload of the dependency
//! layer behind its making. Best effort throughout: whatever goes wrong,
//! the push uploads the blob as usual, and the registry checks the digest
//! of what it received before it keeps anything.
//!
//! No crate streams an upload of a blob whose digest is not known yet, so
//! this is written here, on the client's own session and retry handling.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;

use bytes::Bytes;
use oxbuild_image::Digest;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};

use crate::client::{location, push_scope};
use crate::{Client, Error, Reference};

/// How many writes may wait for the network: the writer blocks beyond that,
/// so memory stays bounded (a write is a compressed block, about 1 MiB).
const QUEUED: usize = 8;

/// Uploads completed in the background, by (repository, digest): a push of
/// that blob to that repository waits for it instead of asking about it.
#[derive(Default)]
pub(crate) struct Streamed(Mutex<HashMap<(String, Digest), tokio::task::JoinHandle<bool>>>);

/// Where the bytes of a blob being streamed are written, from a blocking
/// thread (never from async code). A write fails once the upload stopped.
pub struct BlobSink {
    tx: tokio::sync::mpsc::Sender<Bytes>,
}

impl Write for BlobSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tx
            .blocking_send(Bytes::copy_from_slice(buf))
            .map_err(|_| std::io::Error::other("the streamed upload stopped"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A blob upload that is receiving its bytes; see [`Client::stream_blob`].
pub struct StreamingBlob {
    client: Client,
    repo: Reference,
    patch: tokio::task::JoinHandle<Result<String, Error>>,
}

impl Client {
    /// Starts an upload to `repo` of a blob whose bytes are written into the
    /// returned sink as they are made. Once the sink is dropped and the blob
    /// is whole, [`StreamingBlob::finish`] gives its digest; a blob that is
    /// never finished is never kept by the registry. None with chunked
    /// uploads (`ClientOptions::chunk_size`): a registry that limits request
    /// sizes would refuse the one long PATCH. Must be called within a Tokio
    /// runtime.
    pub fn stream_blob(&self, repo: &Reference) -> Option<(BlobSink, StreamingBlob)> {
        if self.opts.chunk_size.is_some() {
            return None;
        }
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(QUEUED);
        let (client, to) = (self.clone(), repo.clone());
        let patch = tokio::spawn(async move {
            let what = format!("streaming a layer to {}", to.name());
            // A session of its own: those opened ahead are for the push's small blobs.
            let loc = client.start_upload(&to, &what).await?;
            let chunks = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
            });
            let mut body = Some(reqwest::Body::wrap_stream(chunks));
            let resp = client
                .send(&to.registry, &push_scope(&to), &what, |http| {
                    // The bytes can be sent once: a retry gives up, and the push uploads the blob.
                    let body = body.take().ok_or_else(|| Error::Unreachable {
                        registry: to.registry.clone(),
                        detail: "a streamed layer cannot be sent again".into(),
                    })?;
                    Ok(http.patch(&loc).header(CONTENT_TYPE, "application/octet-stream").body(body))
                })
                .await?;
            Ok(location(&resp, &loc).unwrap_or(loc))
        });
        Some((BlobSink { tx }, StreamingBlob { client: self.clone(), repo: repo.clone(), patch }))
    }

    /// Waits for the streamed upload of `digest` to `repo`, if there is one:
    /// true when the registry has the blob from it.
    pub(crate) async fn streamed(&self, repo: &Reference, digest: &Digest) -> bool {
        let task = self
            .streamed
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&(repo.name(), digest.clone()));
        match task {
            Some(task) => task.await.unwrap_or(false),
            None => false,
        }
    }
}

impl StreamingBlob {
    /// The blob streamed is whole and its digest is `digest`: the upload is
    /// completed in the background, and a push of that blob to the same
    /// repository waits for it.
    pub fn finish(self, digest: &Digest) {
        let StreamingBlob { client, repo, patch } = self;
        let key = (repo.name(), digest.clone());
        let (digest, c, r) = (digest.clone(), client.clone(), repo);
        let task = tokio::spawn(async move {
            let Ok(Ok(loc)) = patch.await else { return false };
            let Ok(mut put) = url::Url::parse(&loc) else { return false };
            put.query_pairs_mut().append_pair("digest", digest.as_str());
            let what = format!("completing the streamed layer {digest} in {}", r.name());
            let done = c
                .send(&r.registry, &push_scope(&r), &what, |http| Ok(http.put(put.clone()).header(CONTENT_LENGTH, "0")))
                .await;
            if done.is_ok() {
                c.remember_holder(&digest, &r);
            }
            done.is_ok()
        });
        client.streamed.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(key, task);
    }
}
