//! What proves an image: its SBOMs (SPDX and CycloneDX) and its build
//! provenance, made from what the build knows exactly, and wrapped as OCI
//! 1.1 artifacts whose `subject` is the image, so that they travel with it
//! to registries, layouts and archives as its referrers.

use std::collections::BTreeMap;
use std::time::SystemTime;

use oxbuild_image::{BlobStore, Descriptor, Digest, Image, Layer};
use oxbuild_sbom::provenance::{Input, Provenance};
use oxbuild_sbom::{App, BaseImage, Inventory, Subject};

use crate::{Assembled, Error, Kind, Location};

/// The documents of one image.
#[derive(Debug, Clone)]
pub struct Attestations {
    /// SPDX 2.3 JSON.
    pub spdx: Vec<u8>,
    /// CycloneDX 1.6 JSON.
    pub cyclonedx: Vec<u8>,
    /// The in-toto statement with the SLSA provenance v1 predicate.
    pub provenance: Vec<u8>,
}

/// The SBOM formats, as `--format` names them.
pub const FORMATS: [(&str, &str); 2] =
    [("spdx", oxbuild_sbom::SPDX_MEDIA_TYPE), ("cyclonedx", oxbuild_sbom::CYCLONEDX_MEDIA_TYPE)];

/// How the base is named in documents: a registry reference as given, a
/// file by its name only, so that documents do not depend on where the
/// checkout or the cache lives.
fn base_name(location: &Location) -> String {
    let file = |kind: &str, p: &std::path::Path| {
        format!("{kind}:{}", p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default())
    };
    match location {
        Location::Registry(r) => r.to_string(),
        Location::Layout { dir, .. } => file("oci", dir),
        Location::OciArchive { file: f, .. } => file("oci-archive", f),
        Location::DockerArchive { file: f, .. } => file("docker-archive", f),
    }
}

/// The name documents give the image: `[image] repository`, else the app's
/// name; never a tag, which differs between two builds of the same bytes.
pub fn subject_name(a: &Assembled) -> String {
    match &a.cfg.image.repository {
        Some(r) => r.split('@').next().unwrap_or(r).to_string(),
        None => app_name(a),
    }
}

fn app_name(a: &Assembled) -> String {
    let (project, _) = oxbuild_config::project_metadata(&a.dir);
    project.unwrap_or_else(|| {
        let dir = a.dir.canonicalize().unwrap_or_else(|_| a.dir.clone());
        dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "app".into())
    })
}

fn label(image: &Image, key: &str) -> Option<String> {
    let config = image.config_json().ok()?;
    config["config"]["Labels"][key].as_str().map(str::to_string)
}

/// The SBOM's inventory of `image` (the production image of `a`).
pub fn inventory(a: &Assembled, image: &Image) -> Inventory {
    let (_, version) = oxbuild_config::project_metadata(&a.dir);
    Inventory {
        image: Subject { name: subject_name(a), digest: image.digest(), platform: a.platform.to_string() },
        app: App {
            name: app_name(a),
            version: version.or_else(|| label(image, "org.opencontainers.image.version")),
            commit: label(image, "org.opencontainers.image.revision"),
            source: label(image, "org.opencontainers.image.source"),
        },
        base: BaseImage { reference: base_name(&a.base), digest: a.base_digest.clone(), os: a.os.clone() },
        packages: a.packages.clone(),
        created: a.epoch,
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
    }
}

/// A file of the app, relative to its directory, with its digest.
fn input(dir: &std::path::Path, path: &std::path::Path) -> Option<Input> {
    let bytes = std::fs::read(path).ok()?;
    let rel = path.strip_prefix(dir).unwrap_or(path);
    Some(Input { path: rel.display().to_string(), digest: Digest::of(&bytes) })
}

/// The SBOMs and provenance of `image`; `started` and `finished` bound the build.
pub fn documents(a: &Assembled, image: &Image, started: SystemTime, finished: SystemTime) -> Attestations {
    let inv = inventory(a, image);
    let provenance = provenance(std::slice::from_ref(a), (inv.image.name.clone(), image.digest()), started, finished);
    Attestations {
        spdx: oxbuild_sbom::spdx_json::document(&inv),
        cyclonedx: oxbuild_sbom::cyclonedx::document(&inv),
        provenance,
    }
}

/// The provenance statement of what `built` made (one image, or an index
/// over one image per platform), about `subject` (name and digest).
pub fn provenance(
    built: &[Assembled],
    subject: (String, Digest),
    started: SystemTime,
    finished: SystemTime,
) -> Vec<u8> {
    let a = &built[0];
    let config = ["oxbuild.toml", "pyproject.toml"].iter().map(|f| a.dir.join(f)).find(|p| p.is_file());
    let mut indexes: Vec<String> = built
        .iter()
        .flat_map(|a| a.packages.iter().filter_map(|p| p.source.clone()))
        // Indexes only: not `find-links`, nor what a built wheel says it
        // was built from.
        .filter(|s| s.starts_with("https://") || s.starts_with("http://"))
        .collect();
    indexes.sort();
    indexes.dedup();
    let commit = label(&a.prod.image, "org.opencontainers.image.revision");
    let source = label(&a.prod.image, "org.opencontainers.image.source");
    Provenance {
        subject,
        config: config.and_then(|c| input(&a.dir, &c)),
        locks: a
            .cfg
            .python
            .requirements_path(&a.dir)
            .ok()
            .flatten()
            .and_then(|l| input(&a.dir, &l))
            .into_iter()
            .collect(),
        platforms: built.iter().map(|a| a.platform.to_string()).collect(),
        variant: "production".into(),
        epoch: a.epoch,
        bases: built.iter().map(|a| (base_name(&a.base), a.base_digest.clone())).collect(),
        git: commit.map(|c| (source, c)),
        indexes,
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        started,
        finished,
    }
    .statement()
}

impl Attestations {
    /// Each document as an artifact referring to `subject`, its payload
    /// stored in `store`. The SBOMs' manifests are reproducible (their
    /// `created` annotation is `SOURCE_DATE_EPOCH`); the provenance's is not,
    /// as it records when the build ran.
    pub fn artifacts(&self, subject: &Image, epoch: u64, store: &BlobStore) -> Result<Vec<Image>, Error> {
        let subject = subject.descriptor();
        Ok(vec![
            artifact(oxbuild_sbom::SPDX_MEDIA_TYPE, &self.spdx, &subject, epoch, store)?,
            artifact(oxbuild_sbom::CYCLONEDX_MEDIA_TYPE, &self.cyclonedx, &subject, epoch, store)?,
            artifact(oxbuild_sbom::IN_TOTO_MEDIA_TYPE, &self.provenance, &subject, epoch, store)?,
        ])
    }
}

/// `bytes` (an SBOM or a provenance statement of `media_type`) as an
/// artifact referring to `subject`, its payload stored in `store`.
pub fn artifact(
    media_type: &str,
    bytes: &[u8],
    subject: &Descriptor,
    epoch: u64,
    store: &BlobStore,
) -> Result<Image, Error> {
    let digest = store.insert_bytes(bytes).map_err(|e| Error::new(Kind::Output, e))?;
    let payload = Layer::file(Descriptor::new(media_type, digest.clone(), bytes.len() as u64), store.path(&digest));
    let mut annotations =
        BTreeMap::from([("org.opencontainers.image.created".to_string(), oxbuild_sbom::timestamp(epoch))]);
    if media_type == oxbuild_sbom::IN_TOTO_MEDIA_TYPE {
        annotations.insert("in-toto.io/predicate-type".to_string(), "https://slsa.dev/provenance/v1".to_string());
    }
    Ok(Image::artifact(media_type, payload, subject, &annotations))
}

impl Attestations {}

/// The SBOM of `format` (`spdx` or `cyclonedx`) among `referrers`, fetched
/// when it is still in a registry.
pub async fn sbom_of(referrers: &[Image], format: &str, services: &crate::Services) -> Result<Option<Vec<u8>>, Error> {
    let Some((_, media_type)) = FORMATS.iter().find(|(f, _)| *f == format) else {
        return Err(Error::new(Kind::Config, format!("--format {format}: use spdx or cyclonedx")));
    };
    let Some(artifact) = referrers.iter().find(|r| r.artifact_type() == Some(media_type)) else { return Ok(None) };
    let Some(layer) = artifact.layers().first() else { return Ok(None) };
    payload(layer, services).await.map(Some)
}

/// The bytes of an artifact's payload `layer`, fetched into the store when
/// it is still in a registry.
pub(crate) async fn payload(layer: &Layer, services: &crate::Services) -> Result<Vec<u8>, Error> {
    let local = oxbuild_registry::fetch_layer(&services.client, layer.clone(), &services.store)
        .await
        .map_err(|e| Error::new(Kind::Registry, format!("fetching {}: {e}", layer.descriptor.digest)))?;
    let path = local.path().map_err(|e| Error::new(Kind::Input, e))?;
    std::fs::read(path).map_err(|e| Error::new(Kind::Input, format!("reading {}: {e}", path.display())))
}

/// A signature of `image` by `key`, naming `repository` (`registry/path`),
/// as the `.sig` artifact that refers to it; the payload goes into `store`.
pub fn signature(key: &oxbuild_sign::Key, image: &Image, repository: &str, store: &BlobStore) -> Result<Image, Error> {
    let payload = oxbuild_sign::payload(repository, &image.digest());
    let digest = store.insert_bytes(&payload).map_err(|e| Error::new(Kind::Output, e))?;
    let layer = oxbuild_sign::signature_layer(&payload, &key.sign(&payload), store.path(&digest));
    oxbuild_sign::signature_image(vec![layer], &image.descriptor()).map_err(|e| Error::new(Kind::Internal, e))
}
