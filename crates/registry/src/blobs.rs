//! Blob calls that move nothing up: fetch (into memory or the verified
//! store), existence checks and cross-repository mounts.

use std::path::PathBuf;

use futures_util::StreamExt as _;
use oxbuild_image::{BlobStore, Descriptor, Digest};
use reqwest::StatusCode;
use reqwest::header::CONTENT_LENGTH;

use crate::client::{location, pull_scope, push_scope};
use crate::transport::transport_detail;
use crate::{Client, Error, Event, Reference};

impl Client {
    /// Fetches a small blob (a config) into memory, verified.
    pub async fn get_blob_bytes(&self, repo: &Reference, desc: &Descriptor) -> Result<Vec<u8>, Error> {
        self.retrying(|| self.get_blob_bytes_once(repo, desc)).await
    }

    /// Streams a blob into `store` (unless it is there already), verified
    /// against its digest before it becomes visible. Returns its path.
    pub async fn fetch_blob(&self, repo: &Reference, desc: &Descriptor, store: &BlobStore) -> Result<PathBuf, Error> {
        self.retrying(|| self.fetch_blob_once(repo, desc, store)).await
    }

    /// [`Client::fetch_blob`] once (no retry), handing each piece to `tap`
    /// as it arrives, so that the blob can be read while it downloads. The
    /// pieces are unverified until this returns Ok: on an error, whatever
    /// `tap` got must be thrown away. A blob the store has already is not
    /// fetched and `tap` gets nothing (Ok(None)): read it from the store.
    pub async fn fetch_blob_tapped(
        &self,
        repo: &Reference,
        desc: &Descriptor,
        store: &BlobStore,
        tap: tokio::sync::mpsc::Sender<bytes::Bytes>,
    ) -> Result<Option<PathBuf>, Error> {
        if store.contains(&desc.digest) {
            return Ok(None);
        }
        self.fetch_blob_into(repo, desc, store, Some(tap)).await.map(Some)
    }

    /// True when `repo` has the blob. The registry is asked once per run: a
    /// blob this run has seen there (asked about, uploaded, mounted) is there.
    pub async fn blob_exists(&self, repo: &Reference, digest: &Digest) -> Result<bool, Error> {
        self.retrying(|| self.blob_exists_once(repo, digest)).await
    }

    /// Asks the registry to mount `digest` from `from` into `repo`. Returns false
    /// when the registry declines (202), after closing the upload it opened.
    pub async fn mount_blob(&self, repo: &Reference, digest: &Digest, from: &Reference) -> Result<bool, Error> {
        self.retrying(|| self.mount_blob_once(repo, digest, from)).await
    }

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
        self.remember_holder(&desc.digest, repo);
        Ok(bytes.to_vec())
    }

    async fn fetch_blob_once(&self, repo: &Reference, desc: &Descriptor, store: &BlobStore) -> Result<PathBuf, Error> {
        if store.contains(&desc.digest) {
            self.emit(Event::Finish { digest: desc.digest.clone(), size: desc.size, outcome: "cached" });
            return Ok(store.path(&desc.digest));
        }
        self.fetch_blob_into(repo, desc, store, None).await
    }

    async fn fetch_blob_into(
        &self,
        repo: &Reference,
        desc: &Descriptor,
        store: &BlobStore,
        tap: Option<tokio::sync::mpsc::Sender<bytes::Bytes>>,
    ) -> Result<PathBuf, Error> {
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
            // A reader that stopped reading does not stop the download.
            if let Some(t) = &tap {
                let _ = t.send(chunk).await;
            }
        }
        let path = writer.commit(&desc.digest).map_err(|e| Error::Invalid(format!("{what}: {e}")))?;
        self.emit(Event::Finish { digest: desc.digest.clone(), size: desc.size, outcome: "downloaded" });
        self.remember_holder(&desc.digest, repo);
        Ok(path)
    }

    async fn blob_exists_once(&self, repo: &Reference, digest: &Digest) -> Result<bool, Error> {
        if self.seen_in(digest, repo) {
            return Ok(true);
        }
        let url = format!("{}blobs/{digest}", self.repo_url(repo).await);
        let what = format!("checking blob {digest} in {}", repo.name());
        match self.send(&repo.registry, &push_scope(repo), &what, |http| Ok(http.head(&url))).await {
            Ok(_) => {
                self.remember_holder(digest, repo);
                Ok(true)
            }
            Err(Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn mount_blob_once(&self, repo: &Reference, digest: &Digest, from: &Reference) -> Result<bool, Error> {
        let url = format!("{}blobs/uploads/?mount={digest}&from={}", self.repo_url(repo).await, from.repository);
        let mut scopes = push_scope(repo);
        scopes.push(format!("repository:{}:pull", from.repository));
        let what = format!("mounting blob {digest} from {} into {}", from.name(), repo.name());
        let resp =
            self.send(&repo.registry, &scopes, &what, |http| Ok(http.post(&url).header(CONTENT_LENGTH, "0"))).await?;
        if resp.status() == StatusCode::CREATED {
            self.remember_holder(digest, repo);
            return Ok(true);
        }
        if let Some(loc) = location(&resp, &url) {
            // Close the upload session the refused mount opened; a failure here
            // only leaves a session the registry expires on its own.
            let _ = self.send(&repo.registry, &scopes, &what, |http| Ok(http.delete(&loc))).await;
        }
        Ok(false)
    }
}
