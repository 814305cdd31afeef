//! Images to and from a registry: [`pull`] into the blob store, [`push`] with
//! skip-if-present and cross-repository mounts.

use std::collections::HashSet;
use std::sync::Arc;

use futures_util::{StreamExt as _, TryStreamExt as _, stream};
use oxbuild_image::{
    BlobLocation, BlobStore, Descriptor, Digest, Image, Index, IndexView, Layer, ManifestView, Platform, media,
};

use crate::client::BlobBody;
use crate::{Client, Error, Event, Reference};

/// How many blobs move at once.
const CONCURRENCY: usize = 4;

/// The largest blob uploaded without asking the registry first, when no
/// repository was ever seen holding it (see [`push`]).
const SMALL_NEW_BLOB: u64 = 1 << 20;

/// An image pulled from a registry.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The image, with every layer in the blob store.
    pub image: Image,
    /// The reference pinned to the manifest digest that was pulled.
    pub resolved: Reference,
}

/// Resolves `r` (choosing `platform` from an index) and returns the raw
/// manifest, without fetching any blob.
pub async fn resolve(client: &Client, r: &Reference, platform: &Platform) -> Result<(Vec<u8>, Reference), Error> {
    let (bytes, media_type, digest) = client.get_manifest(r).await?;
    if media::is_index(&media_type) {
        let index: IndexView = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Invalid(format!("the index of {r} is not valid: {e}")))?;
        let chosen = index.select(platform).map_err(|available| {
            let list: Vec<String> = available.iter().map(ToString::to_string).collect();
            Error::Invalid(format!(
                "{r} has no image for platform {platform}; it has: {}. Choose one with --platform",
                if list.is_empty() { "no platform entries".to_string() } else { list.join(", ") }
            ))
        })?;
        let pinned = r.with_digest(chosen.digest.clone());
        let (bytes, media_type, _) = client.get_manifest(&pinned).await?;
        if !media::is_manifest(&media_type) {
            return Err(Error::Invalid(format!("{pinned} is a {media_type}, not an image manifest")));
        }
        return Ok((bytes, pinned));
    }
    if !media::is_manifest(&media_type) {
        return Err(Error::Invalid(format!(
            "{r} has media type {media_type}, which oxbuild cannot use; push the base with Docker schema 2 or OCI manifests"
        )));
    }
    Ok((bytes, r.with_digest(digest)))
}

/// Reads `r` for `platform` without fetching any layer: manifest and config
/// (verified), with layers left in the registry ([`BlobLocation::Registry`]).
pub async fn open(client: &Client, r: &Reference, platform: &Platform) -> Result<Pulled, Error> {
    open_with(client, r, platform, None).await
}

/// [`open`], taking the image's config from `store` when it is there (a
/// config is named by its digest, so a base whose manifest has not changed
/// has it already) and keeping it there when it had to be fetched: a rebuild
/// asks the registry for the manifest only.
pub async fn open_cached(
    client: &Client,
    r: &Reference,
    platform: &Platform,
    store: &BlobStore,
) -> Result<Pulled, Error> {
    open_with(client, r, platform, Some(store)).await
}

async fn open_with(
    client: &Client,
    r: &Reference,
    platform: &Platform,
    store: Option<&BlobStore>,
) -> Result<Pulled, Error> {
    let (manifest, resolved) = resolve(client, r, platform).await?;
    let view: ManifestView = serde_json::from_slice(&manifest)
        .map_err(|e| Error::Invalid(format!("the manifest of {r} is not valid: {e}")))?;
    let kept =
        store.filter(|s| s.contains(&view.config.digest)).and_then(|s| std::fs::read(s.path(&view.config.digest)).ok());
    let config = match kept {
        Some(config) => config,
        None => {
            let config = client.get_blob_bytes(&resolved, &view.config).await?;
            // Kept only as the bytes its digest names (insert_bytes hashes them).
            if let Some(store) = store {
                let _ = store.insert_bytes(&config);
            }
            config
        }
    };
    let location =
        BlobLocation::Registry { registry: resolved.registry.clone(), repository: resolved.repository.clone() };
    let layers = view.layers.into_iter().map(|descriptor| Layer { descriptor, location: location.clone() }).collect();
    let image = Image::from_raw(manifest, config, layers).map_err(|e| Error::Invalid(format!("{r}: {e}")))?;
    Ok(Pulled { image, resolved })
}

/// Fetches every layer of `image` that is still in a registry into `store`
/// (verified), and returns the image with all its layers on disk.
pub async fn fetch_layers(client: &Client, image: &Image, store: &BlobStore) -> Result<Image, Error> {
    let layers: Vec<Layer> = stream::iter(image.layers().iter().cloned())
        .map(|layer| fetch_layer(client, layer, store))
        .buffered(CONCURRENCY)
        .try_collect()
        .await?;
    Ok(image.relocated(layers)?)
}

/// `layer` on disk: fetched into `store` (verified) when it is in a
/// registry, as it is when it is a file already.
pub async fn fetch_layer(client: &Client, layer: Layer, store: &BlobStore) -> Result<Layer, Error> {
    match &layer.location {
        BlobLocation::File(_) => Ok(layer),
        BlobLocation::Registry { registry, repository } => {
            let repo =
                Reference { registry: registry.clone(), repository: repository.clone(), tag: None, digest: None };
            let path = client.fetch_blob(&repo, &layer.descriptor, store).await?;
            Ok(Layer::file(layer.descriptor, path))
        }
    }
}

/// [`fetch_layer`] that hands `tap` each piece as it arrives, once, without
/// retrying (see [`Client::fetch_blob_tapped`]). None when there was nothing
/// to fetch (the layer is a file already, or in `store`) and `tap` got nothing.
pub async fn fetch_layer_tapped(
    client: &Client,
    layer: &Layer,
    store: &BlobStore,
    tap: tokio::sync::mpsc::Sender<bytes::Bytes>,
) -> Result<Option<Layer>, Error> {
    let BlobLocation::Registry { registry, repository } = &layer.location else { return Ok(None) };
    let repo = Reference { registry: registry.clone(), repository: repository.clone(), tag: None, digest: None };
    let path = client.fetch_blob_tapped(&repo, &layer.descriptor, store, tap).await?;
    Ok(path.map(|p| Layer::file(layer.descriptor.clone(), p)))
}

/// Pulls `r` for `platform`: manifest, config and every layer into `store`,
/// each verified against its digest. A layer already in the store is not
/// downloaded again.
pub async fn pull(client: &Client, r: &Reference, platform: &Platform, store: &BlobStore) -> Result<Pulled, Error> {
    let opened = open(client, r, platform).await?;
    let image = fetch_layers(client, &opened.image, store).await?;
    Ok(Pulled { image, resolved: opened.resolved })
}

/// What a push did.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct PushReport {
    /// Blobs the target already had.
    pub blobs_skipped: u64,
    /// Blobs mounted from another repository of the same registry.
    pub blobs_mounted: u64,
    /// Blobs uploaded.
    pub blobs_uploaded: u64,
    /// Bytes of blob content uploaded.
    pub bytes_uploaded: u64,
    /// The registry indexed the manifest's `subject` itself (it answers the
    /// referrers API), so no fallback tag is needed.
    #[serde(skip)]
    pub subject_indexed: bool,
}

fn body_of(layer: &Layer) -> BlobBody {
    match &layer.location {
        BlobLocation::File(path) => BlobBody::File(path.clone()),
        BlobLocation::Registry { registry, repository } => BlobBody::Remote(Reference {
            registry: registry.clone(),
            repository: repository.clone(),
            tag: None,
            digest: None,
        }),
    }
}

/// A repository known to hold some blobs, from which a registry can mount them.
#[derive(Debug, Clone)]
pub struct MountSource {
    /// The repository (registry and path).
    pub repository: Reference,
    /// The blobs it is known to hold.
    pub digests: HashSet<Digest>,
}

impl MountSource {
    /// The layers of `image`, as pulled from `repository`.
    pub fn of(repository: &Reference, image: &Image) -> MountSource {
        MountSource {
            repository: repository.clone(),
            digests: image.layers().iter().map(|l| l.descriptor.digest.clone()).collect(),
        }
    }
}

/// Pushes `image` to `target`'s repository: every blob first (skipping those
/// present, mounting from a [`MountSource`] on the same registry that holds it), and
/// only then the manifest, under each of `tags`, or by digest when there is none.
/// A failure before the manifest leaves no tag pointing at missing blobs.
///
/// With a record of where blobs were seen (`ClientOptions::blob_locations`),
/// a small blob that no repository was ever seen holding is uploaded without
/// asking the registry first: a rebuild's new config and app layer, its SBOMs.
pub async fn push(
    client: &Client,
    image: &Image,
    target: &Reference,
    tags: &[String],
    mount_from: &[MountSource],
) -> Result<PushReport, Error> {
    let moved = push_blobs(client, blobs_of(image), target, mount_from).await?;
    let mut report = moved.report(image);
    let digest = image.digest();
    let references: Vec<String> = if tags.is_empty() { vec![digest.to_string()] } else { tags.to_vec() };
    for reference in references {
        report.subject_indexed |= client.put_manifest(target, &reference, image.manifest(), image.media_type()).await?;
    }
    Ok(report)
}

/// The blobs of `image`: its layers, then its config.
pub(crate) fn blobs_of(image: &Image) -> Vec<(Descriptor, BlobBody)> {
    let mut blobs: Vec<(Descriptor, BlobBody)> =
        image.layers().iter().map(|l| (l.descriptor.clone(), body_of(l))).collect();
    blobs.push((image.config_descriptor().clone(), BlobBody::Bytes(Arc::new(image.config().to_vec()))));
    blobs
}

/// How each blob got to the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Moved {
    Present,
    Mounted,
    Uploaded,
    /// Uploaded while it was written ([`Client::stream_blob`]).
    Streamed,
}

impl Moved {
    /// The word progress events use for it.
    fn word(self) -> &'static str {
        match self {
            Moved::Present => "present",
            Moved::Mounted => "mounted",
            Moved::Uploaded => "uploaded",
            Moved::Streamed => "streamed",
        }
    }
}

/// What [`push_blobs`] did, by digest.
#[derive(Debug, Default)]
pub(crate) struct MovedBlobs(std::collections::HashMap<Digest, (Moved, u64)>);

impl MovedBlobs {
    /// The report of `image`'s blobs, each counted once.
    pub(crate) fn report(&self, image: &Image) -> PushReport {
        self.report_once(image, &mut HashSet::new())
    }

    /// The report of `image`'s blobs that are not in `counted` (which
    /// gets them): a blob two artifacts share is counted for the first.
    pub(crate) fn report_once(&self, image: &Image, counted: &mut HashSet<Digest>) -> PushReport {
        let mut report = PushReport::default();
        let digests = image.layers().iter().map(|l| &l.descriptor.digest).chain([&image.config_descriptor().digest]);
        for digest in digests {
            let Some((moved, size)) = self.0.get(digest) else { continue };
            if !counted.insert(digest.clone()) {
                continue;
            }
            match moved {
                Moved::Present => report.blobs_skipped += 1,
                Moved::Mounted => report.blobs_mounted += 1,
                Moved::Uploaded | Moved::Streamed => {
                    report.blobs_uploaded += 1;
                    report.bytes_uploaded += size;
                }
            }
        }
        report
    }
}

/// Puts `blobs` in `target`'s repository, each once (skipping those present,
/// mounting from a [`MountSource`] on the same registry that holds it),
/// [`CONCURRENCY`] at a time: first the small ones that no repository was
/// ever seen holding, which go up without asking (two requests each, where
/// the others take one), so that they are not what the manifest waits for.
pub(crate) async fn push_blobs(
    client: &Client,
    mut blobs: Vec<(Descriptor, BlobBody)>,
    target: &Reference,
    mount_from: &[MountSource],
) -> Result<MovedBlobs, Error> {
    let mut seen = HashSet::new();
    blobs.retain(|(d, _)| seen.insert(d.digest.clone()));
    // A small blob that no repository was ever seen holding (a new config,
    // an SBOM) goes up without asking first: the answer would be "no"
    // nearly always, and an upload of a blob the registry has is harmless.
    let unheard_of = |desc: &Descriptor, body: &BlobBody| {
        desc.size <= SMALL_NEW_BLOB
            && matches!(body, BlobBody::Bytes(_) | BlobBody::File(_))
            && mount_from.iter().all(|s| !s.digests.contains(&desc.digest))
            && client.never_seen(&desc.digest)
    };
    let mut blobs: Vec<(Descriptor, BlobBody, bool)> = blobs
        .into_iter()
        .map(|(d, b)| {
            let new = unheard_of(&d, &b);
            (d, b, new)
        })
        .collect();
    blobs.sort_by_key(|(_, _, new)| !*new);
    let moved: Vec<(Digest, Moved, u64)> = stream::iter(blobs)
        .map(|(desc, body, new)| async move {
            let done = |outcome: Moved| {
                client.emit(Event::Finish { digest: desc.digest.clone(), size: desc.size, outcome: outcome.word() });
                Ok::<_, Error>((desc.digest.clone(), outcome, desc.size))
            };
            // A blob streamed while it was written is waited for, not asked about.
            if client.streamed(target, &desc.digest).await {
                return done(Moved::Streamed);
            }
            let present = if new {
                client.seen_in(&desc.digest, target)
            } else {
                client.blob_exists(target, &desc.digest).await?
            };
            if present {
                return done(Moved::Present);
            }
            // Mount candidates: where the blob lives now, the repositories
            // the caller names, then any this machine has seen holding it.
            let mut sources: Vec<Reference> = Vec::new();
            if let BlobBody::Remote(origin) = &body {
                sources.push(origin.clone());
            }
            sources
                .extend(mount_from.iter().filter(|s| s.digests.contains(&desc.digest)).map(|s| s.repository.clone()));
            sources.extend(client.known_holders(&desc.digest, target));
            sources.retain(|s| s.registry == target.registry && s.repository != target.repository);
            let mut tried = HashSet::new();
            sources.retain(|s| tried.insert(s.repository.clone()));
            for source in &sources {
                if client.mount_blob(target, &desc.digest, source).await? {
                    return done(Moved::Mounted);
                }
            }
            client.emit(Event::Start { digest: desc.digest.clone(), size: desc.size, direction: "upload" });
            client.upload_blob(target, &desc.digest, desc.size, &body).await?;
            done(Moved::Uploaded)
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await?;
    Ok(MovedBlobs(moved.into_iter().map(|(d, m, size)| (d, (m, size))).collect()))
}

/// Reads `r` when it is an index: the index and every image it lists
/// (their layers left in the registry), with `r` pinned to the index's
/// digest. None when `r` is a single image.
pub async fn open_index(client: &Client, r: &Reference) -> Result<Option<(Index, Reference)>, Error> {
    let (bytes, media_type, digest) = client.get_manifest(r).await?;
    if !media::is_index(&media_type) {
        return Ok(None);
    }
    let view: IndexView =
        serde_json::from_slice(&bytes).map_err(|e| Error::Invalid(format!("the index of {r} is not valid: {e}")))?;
    let mut images = Vec::new();
    for d in view.manifests.iter().filter(|d| media::is_manifest(&d.media_type)) {
        images.push(open(client, &r.with_digest(d.digest.clone()), &Platform::host()).await?.image);
    }
    let index = Index::from_raw(bytes, images).map_err(|e| Error::Invalid(format!("{r}: {e}")))?;
    Ok(Some((index, r.with_digest(digest))))
}

/// Every layer of every image of `index` on disk, fetched into `store` when still in a registry.
pub async fn fetch_index(client: &Client, index: &Index, store: &BlobStore) -> Result<Index, Error> {
    let mut images = Vec::with_capacity(index.children().len());
    for (_, image) in index.children() {
        images.push(fetch_layers(client, image, store).await?);
    }
    Ok(Index::from_raw(index.manifest().to_vec(), images)?)
}

/// Pushes every image of `index` by digest (a blob two of them share goes up
/// once), then the index under each of `tags`, or by digest without any:
/// no tag ever points at an index whose images are missing.
pub async fn push_index(
    client: &Client,
    index: &Index,
    target: &Reference,
    tags: &[String],
    mount_from: &[MountSource],
) -> Result<PushReport, Error> {
    let mut total = PushReport::default();
    for (_, image) in index.children() {
        let r = push(client, image, target, &[], mount_from).await?;
        total.blobs_skipped += r.blobs_skipped;
        total.blobs_mounted += r.blobs_mounted;
        total.blobs_uploaded += r.blobs_uploaded;
        total.bytes_uploaded += r.bytes_uploaded;
    }
    let references: Vec<String> = if tags.is_empty() { vec![index.digest().to_string()] } else { tags.to_vec() };
    for reference in references {
        total.subject_indexed |= client.put_manifest(target, &reference, index.manifest(), index.media_type()).await?;
    }
    Ok(total)
}
