//! An image index (OCI) or manifest list (Docker): one image per platform
//! under one digest. Like [`Image`], it keeps its manifest as the raw bytes
//! that are hashed and sent.

use std::collections::BTreeMap;

use serde_json::json;

use crate::media::{self, Format};
use crate::{Descriptor, Digest, Error, Image, IndexView, Platform, canonical_json};

/// An index and the images it lists, in its order.
#[derive(Debug, Clone)]
pub struct Index {
    manifest: Vec<u8>,
    media_type: String,
    children: Vec<(Descriptor, Image)>,
}

impl Index {
    /// A new index of `children`, one per platform: a Docker manifest list
    /// when they are Docker images (as an image with a healthcheck is), else
    /// an OCI index with `annotations`.
    pub fn assemble(children: Vec<(Platform, Image)>, annotations: &BTreeMap<String, String>) -> Result<Index, Error> {
        let docker = children.iter().filter(|(_, i)| i.format() == Format::Docker).count();
        if docker != 0 && docker != children.len() {
            return Err(Error::Invalid("an index cannot mix Docker and OCI images".into()));
        }
        let mut seen = std::collections::HashSet::new();
        for (p, _) in &children {
            if !seen.insert(p.to_string()) {
                return Err(Error::Invalid(format!("platform {p} is listed twice")));
            }
        }
        let media_type = if docker > 0 { media::DOCKER_MANIFEST_LIST } else { media::OCI_INDEX };
        let children: Vec<(Descriptor, Image)> = children
            .into_iter()
            .map(|(p, image)| {
                let mut d = image.descriptor();
                d.platform = Some(p);
                (d, image)
            })
            .collect();
        let mut index = json!({
            "schemaVersion": 2,
            "mediaType": media_type,
            "manifests": children.iter().map(|(d, _)| d).collect::<Vec<_>>(),
        });
        if docker == 0 && !annotations.is_empty() {
            index["annotations"] = json!(annotations);
        }
        Ok(Index { manifest: canonical_json(&index), media_type: media_type.to_string(), children })
    }

    /// An index from its raw bytes and the images it lists (entries that are
    /// not images, such as nested indexes, are left out), checking that they
    /// belong together.
    pub fn from_raw(manifest: Vec<u8>, images: Vec<Image>) -> Result<Index, Error> {
        let view: IndexView =
            serde_json::from_slice(&manifest).map_err(|e| Error::Invalid(format!("the index is not valid: {e}")))?;
        let media_type = serde_json::from_slice::<serde_json::Value>(&manifest)
            .ok()
            .and_then(|v| v["mediaType"].as_str().map(str::to_string))
            .unwrap_or_else(|| media::OCI_INDEX.to_string());
        let entries: Vec<Descriptor> =
            view.manifests.into_iter().filter(|d| media::is_manifest(&d.media_type)).collect();
        if entries.len() != images.len() || entries.iter().zip(&images).any(|(d, i)| d.digest != i.digest()) {
            return Err(Error::Invalid("the images given do not match the index's entries".into()));
        }
        Ok(Index { manifest, media_type, children: entries.into_iter().zip(images).collect() })
    }

    /// The index's digest: its identity.
    pub fn digest(&self) -> Digest {
        Digest::of(&self.manifest)
    }

    /// Its descriptor.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::of(self.media_type.clone(), &self.manifest)
    }

    /// The raw index.
    pub fn manifest(&self) -> &[u8] {
        &self.manifest
    }

    /// Its media type.
    pub fn media_type(&self) -> &str {
        &self.media_type
    }

    /// The images, each with its entry (platform included).
    pub fn children(&self) -> &[(Descriptor, Image)] {
        &self.children
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(arch: &str, format: Format) -> Image {
        let config = json!({"architecture": arch, "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}});
        Image::assemble(format, &config, Vec::new(), &BTreeMap::new()).unwrap()
    }

    #[test]
    fn an_index_lists_each_platform_and_round_trips() {
        let (amd, arm) = (image("amd64", Format::Oci), image("arm64", Format::Oci));
        let p = |s: &str| s.parse::<Platform>().unwrap();
        let index = Index::assemble(
            vec![(p("linux/amd64"), amd.clone()), (p("linux/arm64/v8"), arm.clone())],
            &BTreeMap::new(),
        )
        .unwrap();
        assert_eq!(index.media_type(), media::OCI_INDEX);
        let view: IndexView = serde_json::from_slice(index.manifest()).unwrap();
        assert_eq!(view.select(&p("linux/arm64")).unwrap().digest, arm.digest());
        let back = Index::from_raw(index.manifest().to_vec(), vec![amd.clone(), arm.clone()]).unwrap();
        assert_eq!(back.digest(), index.digest());
        assert!(Index::from_raw(index.manifest().to_vec(), vec![arm, amd]).is_err(), "order matters");

        let docker =
            Index::assemble(vec![(p("linux/amd64"), image("amd64", Format::Docker))], &BTreeMap::new()).unwrap();
        assert_eq!(docker.media_type(), media::DOCKER_MANIFEST_LIST);
        let mixed =
            vec![(p("linux/amd64"), image("amd64", Format::Docker)), (p("linux/arm64"), image("arm64", Format::Oci))];
        assert!(Index::assemble(mixed, &BTreeMap::new()).is_err());
    }
}
