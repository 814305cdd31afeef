//! The one image type: raw manifest and config bytes plus layer blobs on disk.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{Value, json};

use crate::media::{self, Format};
use crate::{Descriptor, Digest, Error, ManifestView, canonical_json};

/// Where a layer's (compressed) bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobLocation {
    /// A file on disk, already verified against the layer's digest.
    File(PathBuf),
    /// Still in a registry repository: a push to the same registry mounts it,
    /// to another one streams it through; writing a layout fetches it first.
    Registry {
        /// Registry host\[:port\].
        registry: String,
        /// Repository path.
        repository: String,
    },
}

/// One layer: its descriptor and where its blob is.
#[derive(Debug, Clone)]
pub struct Layer {
    /// The descriptor as it appears in the manifest.
    pub descriptor: Descriptor,
    /// Where the blob's bytes are.
    pub location: BlobLocation,
}

impl Layer {
    /// A layer whose blob is the verified file at `path`.
    pub fn file(descriptor: Descriptor, path: PathBuf) -> Layer {
        Layer { descriptor, location: BlobLocation::File(path) }
    }

    /// The blob's file, or an error saying it must be fetched first.
    pub fn path(&self) -> Result<&std::path::Path, Error> {
        match &self.location {
            BlobLocation::File(p) => Ok(p),
            BlobLocation::Registry { registry, repository } => Err(Error::Invalid(format!(
                "layer {} is still in {registry}/{repository}; fetch it before writing it out",
                self.descriptor.digest
            ))),
        }
    }
}

/// An image: raw manifest, raw config and layers.
///
/// The bytes are kept exactly as received or produced: `digest()` hashes the
/// very bytes a registry or layout gets. Derived images are made with
/// [`Image::assemble`], never by editing one in place.
#[derive(Debug, Clone)]
pub struct Image {
    manifest: Vec<u8>,
    media_type: String,
    config: Vec<u8>,
    config_descriptor: Descriptor,
    layers: Vec<Layer>,
    /// Set on an artifact manifest (an SBOM, a signature): what it holds.
    artifact_type: Option<String>,
    /// Set on a referrer: the manifest it refers to.
    subject: Option<Descriptor>,
    annotations: BTreeMap<String, String>,
}

impl Image {
    /// An image from a raw manifest, its raw config and its layer blobs, checking
    /// that they belong together.
    pub fn from_raw(manifest: Vec<u8>, config: Vec<u8>, layers: Vec<Layer>) -> Result<Image, Error> {
        let view: ManifestView = serde_json::from_slice(&manifest)
            .map_err(|e| Error::Invalid(format!("the manifest is not a valid image manifest: {e}")))?;
        let media_type = view.media_type.clone().unwrap_or_else(|| media::OCI_MANIFEST.to_string());
        if !media::is_manifest(&media_type) {
            return Err(Error::Invalid(format!("unsupported manifest media type {media_type}")));
        }
        let actual = Digest::of(&config);
        if actual != view.config.digest {
            return Err(Error::Invalid(format!(
                "config digest mismatch: the manifest says {}, the config is {actual}",
                view.config.digest
            )));
        }
        if view.layers.len() != layers.len()
            || view.layers.iter().zip(&layers).any(|(a, b)| a.digest != b.descriptor.digest)
        {
            return Err(Error::Invalid("the layers given do not match the manifest's layers".into()));
        }
        // An artifact manifest without its own type takes its config's (OCI 1.1).
        let artifact_type = view.artifact_type.or_else(|| {
            (view.subject.is_some()
                && view.config.media_type != media::OCI_CONFIG
                && view.config.media_type != media::DOCKER_CONFIG)
                .then(|| view.config.media_type.clone())
        });
        Ok(Image {
            manifest,
            media_type,
            config,
            config_descriptor: view.config,
            layers,
            artifact_type,
            subject: view.subject,
            annotations: view.annotations,
        })
    }

    /// An artifact manifest (OCI 1.1): `payload` as its one layer, the empty
    /// config, and `subject` as the manifest it refers to, so that registries
    /// and layouts list it among the subject's referrers.
    pub fn artifact(
        artifact_type: &str,
        payload: Layer,
        subject: &Descriptor,
        annotations: &BTreeMap<String, String>,
    ) -> Image {
        let config_descriptor = Descriptor::of(media::EMPTY, media::EMPTY_JSON);
        let subject = Descriptor::new(subject.media_type.clone(), subject.digest.clone(), subject.size);
        let mut manifest = json!({
            "schemaVersion": 2,
            "mediaType": media::OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": config_descriptor,
            "layers": [&payload.descriptor],
            "subject": subject,
        });
        if !annotations.is_empty() {
            manifest["annotations"] = json!(annotations);
        }
        Image {
            manifest: canonical_json(&manifest),
            media_type: media::OCI_MANIFEST.to_string(),
            config: media::EMPTY_JSON.to_vec(),
            config_descriptor,
            layers: vec![payload],
            artifact_type: Some(artifact_type.to_string()),
            subject: Some(subject),
            annotations: annotations.clone(),
        }
    }

    /// What this artifact holds, when it is one.
    pub fn artifact_type(&self) -> Option<&str> {
        self.artifact_type.as_deref()
    }

    /// The manifest this one refers to, when it is a referrer.
    pub fn subject(&self) -> Option<&Descriptor> {
        self.subject.as_ref()
    }

    /// The manifest's annotations.
    pub fn annotations(&self) -> &BTreeMap<String, String> {
        &self.annotations
    }

    /// Its entry in a referrers index: the manifest's descriptor with its
    /// artifact type and annotations, as the distribution spec lists them.
    pub fn referrer_descriptor(&self) -> Descriptor {
        let mut d = self.descriptor();
        d.artifact_type = self.artifact_type.clone();
        d.annotations = self.annotations.clone();
        d
    }

    /// A new image in `format` with `config` (written as canonical JSON) and
    /// `layers`, whose media types are translated into `format`.
    pub fn assemble(
        format: Format,
        config: &Value,
        layers: Vec<Layer>,
        annotations: &BTreeMap<String, String>,
    ) -> Result<Image, Error> {
        Image::assemble_raw(format, canonical_json(config), layers, annotations)
    }

    /// Like [`Image::assemble`], with the config's bytes kept exactly as given.
    pub fn assemble_raw(
        format: Format,
        config: Vec<u8>,
        layers: Vec<Layer>,
        annotations: &BTreeMap<String, String>,
    ) -> Result<Image, Error> {
        let config_descriptor = Descriptor::of(format.config(), &config);
        let mut translated = Vec::with_capacity(layers.len());
        for mut layer in layers {
            let mt = format.layer(&layer.descriptor.media_type).ok_or_else(|| {
                Error::Invalid(format!(
                    "layer {} has media type {}, which a {format:?}-format image cannot carry",
                    layer.descriptor.digest, layer.descriptor.media_type
                ))
            })?;
            layer.descriptor.media_type = mt.to_string();
            translated.push(layer);
        }
        let mut manifest = json!({
            "schemaVersion": 2,
            "mediaType": format.manifest(),
            "config": config_descriptor,
            "layers": translated.iter().map(|l| &l.descriptor).collect::<Vec<_>>(),
        });
        // Docker schema 2 has no annotations field.
        if format == Format::Oci && !annotations.is_empty() {
            manifest["annotations"] = json!(annotations);
        }
        let annotations = if format == Format::Oci { annotations.clone() } else { BTreeMap::new() };
        Ok(Image {
            manifest: canonical_json(&manifest),
            media_type: format.manifest().to_string(),
            config,
            config_descriptor,
            layers: translated,
            artifact_type: None,
            subject: None,
            annotations,
        })
    }

    /// The same image with its layers' blobs somewhere else (e.g. fetched into
    /// a store); the descriptors must be the same, so the bytes do not change.
    pub fn relocated(&self, layers: Vec<Layer>) -> Result<Image, Error> {
        let same = layers.len() == self.layers.len()
            && layers.iter().zip(&self.layers).all(|(a, b)| a.descriptor.digest == b.descriptor.digest);
        if !same {
            return Err(Error::Invalid("relocated layers must be the image's own layers".into()));
        }
        Ok(Image { layers, ..self.clone() })
    }

    /// The manifest's digest: the image's identity.
    pub fn digest(&self) -> Digest {
        Digest::of(&self.manifest)
    }

    /// The manifest's descriptor.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::of(self.media_type.clone(), &self.manifest)
    }

    /// The raw manifest.
    pub fn manifest(&self) -> &[u8] {
        &self.manifest
    }

    /// The manifest media type.
    pub fn media_type(&self) -> &str {
        &self.media_type
    }

    /// The format (OCI or Docker) of this image.
    pub fn format(&self) -> Format {
        if self.media_type == media::DOCKER_MANIFEST { Format::Docker } else { Format::Oci }
    }

    /// The raw config.
    pub fn config(&self) -> &[u8] {
        &self.config
    }

    /// The config's descriptor.
    pub fn config_descriptor(&self) -> &Descriptor {
        &self.config_descriptor
    }

    /// The config parsed as JSON (every field kept).
    pub fn config_json(&self) -> Result<Value, Error> {
        serde_json::from_slice(&self.config)
            .map_err(|e| Error::Invalid(format!("the image config is not valid JSON: {e}")))
    }

    /// The layers, bottom first.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }
}
