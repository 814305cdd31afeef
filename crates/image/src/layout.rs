//! Writing an image as an OCI image layout directory.

use std::fs;
use std::path::Path;

use serde_json::json;

use crate::{Descriptor, Digest, Error, Image, canonical_json};

/// The annotation naming an image inside a layout (`oci:DIR:NAME`).
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Writes `image` into the OCI layout at `dir` (created when missing), named
/// `name` in `index.json` when given. Blobs already present are not rewritten.
/// An existing `index.json` keeps its other entries; an entry with the same
/// name is replaced.
pub fn write_layout(image: &Image, dir: &Path, name: Option<&str>) -> Result<Descriptor, Error> {
    let blobs = dir.join("blobs").join("sha256");
    fs::create_dir_all(&blobs).map_err(|e| Error::io(format!("creating the OCI layout {}", dir.display()), e))?;
    write_file(&dir.join("oci-layout"), &canonical_json(&json!({"imageLayoutVersion": "1.0.0"})))?;
    for layer in image.layers() {
        let to = blobs.join(layer.descriptor.digest.hex());
        if to.is_file() {
            continue;
        }
        let tmp = blobs.join(format!(".{}.tmp", layer.descriptor.digest.hex()));
        let from = layer.path()?;
        if fs::hard_link(from, &tmp).is_err() {
            fs::copy(from, &tmp)
                .map_err(|e| Error::io(format!("copying {} into {}", from.display(), dir.display()), e))?;
        }
        fs::rename(&tmp, &to).map_err(|e| Error::io(format!("writing {}", to.display()), e))?;
    }
    write_blob(&blobs, &image.config_descriptor().digest, image.config())?;
    write_blob(&blobs, &image.digest(), image.manifest())?;

    let mut desc = image.descriptor();
    if let Some(name) = name {
        desc.annotations.insert(REF_NAME.to_string(), name.to_string());
    }
    let index_path = dir.join("index.json");
    let mut manifests: Vec<serde_json::Value> = match fs::read(&index_path) {
        Ok(bytes) => {
            let v: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|e| Error::Invalid(format!("{} is not valid JSON: {e}", index_path.display())))?;
            v["manifests"].as_array().cloned().unwrap_or_default()
        }
        Err(_) => Vec::new(),
    };
    manifests.retain(|m| match name {
        Some(n) => m["annotations"][REF_NAME].as_str() != Some(n),
        None => m["digest"].as_str() != Some(image.digest().as_str()),
    });
    manifests.push(serde_json::to_value(&desc).expect("descriptors serialise"));
    let index = json!({
        "schemaVersion": 2,
        "mediaType": crate::media::OCI_INDEX,
        "manifests": manifests,
    });
    write_file(&index_path, &canonical_json(&index))?;
    Ok(desc)
}

fn write_blob(blobs: &Path, digest: &Digest, bytes: &[u8]) -> Result<(), Error> {
    let to = blobs.join(digest.hex());
    if to.is_file() { Ok(()) } else { write_file(&to, bytes) }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, bytes).map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
    fs::rename(&tmp, path).map_err(|e| Error::io(format!("writing {}", path.display()), e))
}
