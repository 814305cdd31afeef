//! OCI 1.1 referrers: artifacts (SBOMs, provenance, signatures) that name an
//! image as their `subject`.
//!
//! Attaching pushes the artifact by digest. A registry that answers the
//! referrers API says so with an `OCI-Subject` header and lists it by
//! itself; for one that does not (Debian's `docker-registry`, many others),
//! oxbuild maintains the fallback the distribution spec describes: an image
//! index under the tag `sha256-<hex>` of the subject, listing every referrer.
//!
//! That index is read, extended and written back, and registries like
//! Debian's ignore `If-Match`, so two writers can interleave. oxbuild
//! re-reads after writing and writes again while its entry is missing. What
//! remains: a writer whose PUT lands *after* another writer's re-read can
//! still drop that writer's entry, and only a registry with the referrers
//! API (or `If-Match`) closes that window. A batch of artifacts reads the
//! index while their manifests go up ([`stage`]), so its window is those
//! manifests' round trip longer than one read's.

use std::time::Duration;

use oxbuild_image::{Descriptor, Digest, Image, IndexView, Layer, Platform, canonical_json, media};
use reqwest::header::ACCEPT;
use serde_json::json;

use crate::client::pull_scope;
use crate::{Client, Error, PushReport, Reference, push};

/// How many times the fallback index is read and written before giving up.
const ATTEMPTS: u32 = 6;

/// Adds `layers` to the manifest that `tag` holds for `subject` (made by
/// `make` from all its layers), the way cosign keeps every signature of an
/// image as a layer of one `sha256-<hex>.sig` manifest, and lists that
/// manifest among the subject's referrers in place of the one it replaces.
/// Layers already there (the same descriptor) are not added twice. The tag
/// is read again after each write, and written again while a layer of ours
/// is missing, so two writers at once both end up in it.
pub async fn accumulate(
    client: &Client,
    repo: &Reference,
    subject: &Digest,
    tag: &str,
    layers: &[Layer],
    make: &(dyn Fn(Vec<Layer>) -> Result<Image, Error> + Sync),
) -> Result<(Image, Listed), Error> {
    let repo = Reference { tag: None, digest: None, ..repo.clone() };
    let tagged = repo.with_tag(tag);
    let ours = |image: &Image| layers.iter().all(|l| image.layers().iter().any(|h| h.descriptor == l.descriptor));
    for attempt in 0..ATTEMPTS {
        let existing = match crate::open(client, &tagged, &Platform::host()).await {
            Ok(pulled) => Some(pulled.image),
            Err(Error::NotFound { .. }) => None,
            Err(e) => return Err(e),
        };
        let all = merged(existing.as_ref().map(|e| e.layers().to_vec()).unwrap_or_default(), layers);
        let image = make(all)?;
        let replaces = existing.as_ref().map(Image::digest).filter(|d| *d != image.digest());
        let report = push(client, &image, &repo, &[tag.to_string()], &[]).await?;
        let listed = if report.subject_indexed {
            Listed::Api
        } else {
            add_to_fallback(client, &repo, subject, &[image.referrer_descriptor()], replaces.as_ref(), None).await?;
            Listed::FallbackTag
        };
        let now = crate::open(client, &tagged, &Platform::host()).await?.image;
        if ours(&now) {
            return Ok((now, listed));
        }
        tokio::time::sleep(Duration::from_millis(50 << attempt.min(4))).await;
    }
    Err(Error::Invalid(format!(
        "{tagged}: concurrent writers kept replacing it after {ATTEMPTS} attempts; run the command again"
    )))
}

/// `existing` with those of `more` it does not have yet (the same
/// descriptor, annotations included: the same signature is kept once).
fn merged(mut existing: Vec<Layer>, more: &[Layer]) -> Vec<Layer> {
    for l in more {
        if !existing.iter().any(|h| h.descriptor == l.descriptor) {
            existing.push(l.clone());
        }
    }
    existing
}

/// The fallback tag for referrers of `digest`: `sha256-<hex>`.
pub fn fallback_tag(digest: &Digest) -> String {
    let tag = format!("{}-{}", digest.algorithm(), digest.hex());
    tag.chars().take(128).collect()
}

/// How an artifact was made findable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Listed {
    /// The registry indexes referrers itself.
    Api,
    /// oxbuild updated the `sha256-<hex>` fallback index.
    FallbackTag,
}

/// Pushes `artifact` (which must have a subject) to `repo` and makes it
/// findable as a referrer of its subject.
pub async fn attach(client: &Client, repo: &Reference, artifact: &Image) -> Result<(PushReport, Listed), Error> {
    let artifacts = std::slice::from_ref(artifact);
    let mut staged = stage(client, repo, artifacts).await?;
    let listed = list(client, repo, artifacts, &staged).await?;
    Ok((staged.reports.remove(0), listed[0]))
}

/// Pushes `artifacts` by digest, concurrently, without listing them
/// anywhere yet: a registry with the referrers API indexes them by their
/// subject; for the others [`list`] writes the fallback index. Nothing is
/// tagged, so this can run while the subject itself is pushed, and a
/// subject whose push fails leaves no tag behind.
pub async fn stage(client: &Client, repo: &Reference, artifacts: &[Image]) -> Result<Staged, Error> {
    let repo = Reference { tag: None, digest: None, ..repo.clone() };
    for artifact in artifacts {
        if artifact.subject().is_none() {
            return Err(Error::Invalid(format!("artifact {} has no subject to attach to", artifact.digest())));
        }
    }
    // Their blobs go together, each once (artifacts share their config, the
    // empty one, and two uploads of one blob at once can fail in a registry:
    // Debian's answers DIGEST_INVALID and then BLOB_UNKNOWN); then their
    // manifests, by digest.
    let blobs = artifacts.iter().flat_map(crate::remote::blobs_of).collect();
    let moved = crate::remote::push_blobs(client, blobs, &repo, &[]).await?;
    let digests: Vec<String> = artifacts.iter().map(|a| a.digest().to_string()).collect();
    let put = artifacts.iter().zip(&digests).map(|(a, d)| client.put_manifest(&repo, d, a.manifest(), a.media_type()));
    // The subjects' fallback indexes are read while the manifests go up,
    // which saves [`list`] a round trip; wasted on a registry with the
    // referrers API, which the answers to these very puts reveal.
    let mut subjects: Vec<Digest> = Vec::new();
    for subject in artifacts.iter().filter_map(|a| a.subject().map(|s| s.digest.clone())) {
        if !subjects.contains(&subject) {
            subjects.push(subject);
        }
    }
    // A read that fails is made again by `list`, where it counts.
    let read = subjects.iter().map(|subject| {
        let tagged = repo.with_tag(&fallback_tag(subject));
        async move { fallback_entries(client, &tagged).await.ok().map(|entries| (subject.clone(), entries)) }
    });
    let (indexed, read) =
        futures_util::future::join(futures_util::future::try_join_all(put), futures_util::future::join_all(read)).await;
    let (indexed, read) = (indexed?, read.into_iter().flatten().collect());
    let mut counted = std::collections::HashSet::new();
    let reports = artifacts
        .iter()
        .zip(indexed)
        .map(|(a, subject_indexed)| PushReport { subject_indexed, ..moved.report_once(a, &mut counted) })
        .collect();
    Ok(Staged { reports, read })
}

/// Artifacts pushed by [`stage`], not yet listed.
#[derive(Debug)]
pub struct Staged {
    /// What pushing each did, in their order.
    pub reports: Vec<PushReport>,
    /// Each subject's fallback index as it was read then.
    read: Vec<(Digest, Vec<serde_json::Value>)>,
}

/// Makes the staged `artifacts` findable from their subjects: those the
/// registry did not index itself (`staged.reports`) are added to their
/// subject's fallback index, in one write per subject, the first from the
/// index [`stage`] read. In the order of `artifacts`.
pub async fn list(
    client: &Client,
    repo: &Reference,
    artifacts: &[Image],
    staged: &Staged,
) -> Result<Vec<Listed>, Error> {
    let reports = &staged.reports;
    let repo = Reference { tag: None, digest: None, ..repo.clone() };
    // The fallback entries, by subject, in the order they came.
    let mut fallback: Vec<(Digest, Vec<Descriptor>)> = Vec::new();
    for (artifact, report) in artifacts.iter().zip(reports) {
        let Some(subject) = artifact.subject().map(|s| s.digest.clone()) else { continue };
        if report.subject_indexed {
            continue;
        }
        match fallback.iter_mut().find(|(s, _)| *s == subject) {
            Some((_, entries)) => entries.push(artifact.referrer_descriptor()),
            None => fallback.push((subject, vec![artifact.referrer_descriptor()])),
        }
    }
    for (subject, entries) in &fallback {
        let read = staged.read.iter().find(|(s, _)| s == subject).map(|(_, r)| r.clone());
        add_to_fallback(client, &repo, subject, entries, None, read).await?;
    }
    Ok(reports.iter().map(|r| if r.subject_indexed { Listed::Api } else { Listed::FallbackTag }).collect())
}

/// Adds `add` to the fallback index of `subject` (dropping `replaces`, an
/// entry it supersedes), re-reading after each write until every entry is
/// there (see the module docs for the race). The first write starts from
/// `read`, the index as it was read a moment ago, when given.
async fn add_to_fallback(
    client: &Client,
    repo: &Reference,
    subject: &Digest,
    add: &[Descriptor],
    replaces: Option<&Digest>,
    mut read: Option<Vec<serde_json::Value>>,
) -> Result<(), Error> {
    let tag = fallback_tag(subject);
    let tagged = repo.with_tag(&tag);
    let has = |entries: &[serde_json::Value], d: &Descriptor| {
        entries.iter().any(|e| e["digest"].as_str() == Some(d.digest.as_str()))
    };
    for attempt in 0..ATTEMPTS {
        let mut entries = match read.take() {
            Some(entries) => entries,
            None => fallback_entries(client, &tagged).await?,
        };
        let stale = |e: &serde_json::Value| replaces.is_some_and(|r| e["digest"].as_str() == Some(r.as_str()));
        if !add.iter().all(|d| has(&entries, d)) || entries.iter().any(stale) {
            entries.retain(|e| !stale(e) && !add.iter().any(|d| e["digest"].as_str() == Some(d.digest.as_str())));
            entries.extend(add.iter().map(|d| serde_json::to_value(d).expect("descriptors serialise")));
            let index =
                canonical_json(&json!({"schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": entries}));
            client.put_manifest(repo, &tag, &index, media::OCI_INDEX).await?;
        }
        let after = fallback_entries(client, &tagged).await?;
        if add.iter().all(|d| has(&after, d)) {
            return Ok(());
        }
        // Another writer replaced the index between our read and write.
        tokio::time::sleep(Duration::from_millis(50 << attempt.min(4))).await;
    }
    let missing: Vec<String> = add.iter().map(|d| d.digest.to_string()).collect();
    Err(Error::Invalid(format!(
        "{}: the referrers index kept losing {} to concurrent writers after {ATTEMPTS} attempts; run the command again",
        tagged,
        missing.join(", ")
    )))
}

/// The raw entries of a fallback index (none when the tag does not exist).
async fn fallback_entries(client: &Client, tagged: &Reference) -> Result<Vec<serde_json::Value>, Error> {
    match client.get_manifest(tagged).await {
        Ok((bytes, _, _)) => {
            let v: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|e| Error::Invalid(format!("the referrers index {tagged} is not valid JSON: {e}")))?;
            Ok(v["manifests"].as_array().cloned().unwrap_or_default())
        }
        Err(Error::NotFound { .. }) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// The referrers of `subject` in `repo`: from the referrers API when the
/// registry has it, else from the fallback tag.
pub async fn referrers(client: &Client, repo: &Reference, subject: &Digest) -> Result<Vec<Descriptor>, Error> {
    let repo = Reference { tag: None, digest: None, ..repo.clone() };
    if let Some(found) = from_api(client, &repo, subject).await? {
        return Ok(found);
    }
    let tagged = repo.with_tag(&fallback_tag(subject));
    let entries = fallback_entries(client, &tagged).await?;
    let index: IndexView = serde_json::from_value(json!({"manifests": entries}))
        .map_err(|e| Error::Invalid(format!("the referrers index {tagged} is not valid: {e}")))?;
    Ok(index.manifests)
}

/// The referrers API's answer, or None when the registry does not have it.
async fn from_api(client: &Client, repo: &Reference, subject: &Digest) -> Result<Option<Vec<Descriptor>>, Error> {
    let url = format!("{}referrers/{subject}", client.repo_url(repo).await);
    let what = format!("referrers of {}@{subject}", repo.name());
    let sent = client
        .retrying(|| async {
            let resp = client
                .send(&repo.registry, &pull_scope(repo), &what, |http| {
                    Ok(http.get(&url).header(ACCEPT, media::OCI_INDEX))
                })
                .await;
            match resp {
                Ok(r) => Ok(Some(r.bytes().await.map_err(|e| Error::Invalid(format!("{what}: {e}")))?)),
                // No such endpoint: 404, or 400/405 from registries that route it elsewhere.
                Err(Error::NotFound { .. }) | Err(Error::Status { status: 400 | 405, .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .await?;
    let Some(bytes) = sent else { return Ok(None) };
    let Ok(index) = serde_json::from_slice::<IndexView>(&bytes) else { return Ok(None) };
    Ok(Some(index.manifests))
}

/// Every referrer of `subject` in `repo`, opened (their blobs left in the
/// registry), and the manifest of cosign's `sha256-<hex>.sig` tag when a
/// signer that does not list referrers (cosign itself) put one there.
pub async fn open_referrers(client: &Client, repo: &Reference, subject: &Digest) -> Result<Vec<Image>, Error> {
    let repo = Reference { tag: None, digest: None, ..repo.clone() };
    let mut out: Vec<Image> = Vec::new();
    for d in referrers(client, &repo, subject).await? {
        if !media::is_manifest(&d.media_type) {
            continue;
        }
        let pulled = crate::open(client, &repo.with_digest(d.digest.clone()), &Platform::host()).await?;
        out.push(pulled.image);
    }
    let sig = repo.with_tag(&format!("{}.sig", fallback_tag(subject)));
    match crate::open(client, &sig, &Platform::host()).await {
        Ok(pulled) => {
            // The tag holds the newest signatures: it replaces a listed older one.
            let current = pulled.image;
            out.retain(|r| r.digest() == current.digest() || !is_signature_of(r, &current));
            if !out.iter().any(|r| r.digest() == current.digest()) {
                out.push(current);
            }
        }
        Err(Error::NotFound { .. }) => {}
        Err(e) => return Err(e),
    }
    Ok(out)
}

/// Whether `r` is an older version of the signature manifest `current`.
fn is_signature_of(r: &Image, current: &Image) -> bool {
    r.artifact_type().is_some() && r.artifact_type() == current.artifact_type()
}

#[cfg(test)]
mod tests {
    use oxbuild_image::{Descriptor, Layer};

    use super::merged;

    #[test]
    fn the_same_signature_is_not_added_twice_and_another_is() {
        let layer = |sig: &str| {
            let mut d = Descriptor::of("application/vnd.dev.cosign.simplesigning.v1+json", b"{}");
            d.annotations.insert("dev.cosignproject.cosign/signature".into(), sig.into());
            Layer::file(d, "/nonexistent".into())
        };
        let once = merged(vec![layer("a")], &[layer("a")]);
        assert_eq!(once.len(), 1, "the same signature is not added twice");
        assert_eq!(merged(once, &[layer("b")]).len(), 2, "the same payload signed by another key is");
    }
}
