//! Manifest and index calls: fetched and put as raw bytes, so that what is
//! hashed is what was sent.

use oxbuild_image::{Digest, media};
use reqwest::header::{ACCEPT, CONTENT_TYPE};

use crate::client::{pull_scope, push_scope};
use crate::transport::transport_detail;
use crate::{Client, Error, Reference};

impl Client {
    /// Fetches a manifest or index: its raw bytes, media type and digest. A
    /// reference by digest is verified against the bytes.
    pub async fn get_manifest(&self, r: &Reference) -> Result<(Vec<u8>, String, Digest), Error> {
        self.retrying(|| self.get_manifest_once(r)).await
    }

    /// Puts a manifest under `reference` (a tag or a digest) in `repo`.
    /// Returns true when the registry says it processed the manifest's
    /// `subject` (the `OCI-Subject` header of a referrers-aware registry).
    pub async fn put_manifest(
        &self,
        repo: &Reference,
        reference: &str,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<bool, Error> {
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

    async fn put_manifest_once(
        &self,
        repo: &Reference,
        reference: &str,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<bool, Error> {
        let url = format!("{}manifests/{reference}", self.repo_url(repo).await);
        let what = format!("pushing the manifest to {}:{reference}", repo.name());
        let bytes = bytes.to_vec();
        let resp = self
            .send(&repo.registry, &push_scope(repo), &what, |http| {
                Ok(http.put(&url).header(CONTENT_TYPE, media_type).body(bytes.clone()))
            })
            .await?;
        Ok(resp.headers().contains_key("oci-subject"))
    }
}
