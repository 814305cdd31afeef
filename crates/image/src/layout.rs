//! OCI image layouts (`oci:DIR`), and the index logic that archives share.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::digest::Hasher;
use crate::{Descriptor, Digest, Error, Image, Index, IndexView, Layer, ManifestView, Platform, canonical_json, media};

/// The annotation naming an image inside a layout (`oci:DIR:NAME`).
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Writes `image` into the OCI layout at `dir` (created when missing), named
/// `name` in `index.json` when given. Blobs already present are not rewritten.
/// An existing `index.json` keeps its other entries; an entry with the same
/// name is replaced.
pub fn write_layout(image: &Image, dir: &Path, name: Option<&str>) -> Result<Descriptor, Error> {
    let blobs = create(dir)?;
    put_image(image, &blobs, dir)?;
    let desc = named(image, name);
    record(dir, &desc, name)?;
    Ok(desc)
}

/// Writes `index` and every image it lists into the OCI layout at `dir`,
/// the index named `name` in `index.json` when given.
pub fn write_layout_index(index: &Index, dir: &Path, name: Option<&str>) -> Result<Descriptor, Error> {
    let blobs = create(dir)?;
    for (_, image) in index.children() {
        put_image(image, &blobs, dir)?;
    }
    write_blob(&blobs, &index.digest(), index.manifest())?;
    let desc = with_name(index.descriptor(), name);
    record(dir, &desc, name)?;
    Ok(desc)
}

/// The layout's `blobs/sha256` directory and `oci-layout` file, made.
fn create(dir: &Path) -> Result<PathBuf, Error> {
    let blobs = dir.join("blobs").join("sha256");
    fs::create_dir_all(&blobs).map_err(|e| Error::io(format!("creating the OCI layout {}", dir.display()), e))?;
    write_file(&dir.join("oci-layout"), &canonical_json(&json!({"imageLayoutVersion": "1.0.0"})))?;
    Ok(blobs)
}

/// An image's layers, config and manifest into `blobs`.
fn put_image(image: &Image, blobs: &Path, dir: &Path) -> Result<(), Error> {
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
    write_blob(blobs, &image.config_descriptor().digest, image.config())?;
    write_blob(blobs, &image.digest(), image.manifest())
}

/// Adds `desc` to `index.json`, replacing the entry of the same name (or,
/// unnamed, of the same digest).
fn record(dir: &Path, desc: &Descriptor, name: Option<&str>) -> Result<(), Error> {
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
        None => m["digest"].as_str() != Some(desc.digest.as_str()),
    });
    manifests.push(serde_json::to_value(desc).expect("descriptors serialise"));
    write_file(&index_path, &index_json(manifests))
}

/// The manifest descriptor of `image`, with the ref-name annotation when
/// named; a referrer's carries its artifact type and annotations, as the
/// image-layout spec lists referrers in `index.json`.
pub(crate) fn named(image: &Image, name: Option<&str>) -> Descriptor {
    with_name(if image.subject().is_some() { image.referrer_descriptor() } else { image.descriptor() }, name)
}

/// `desc` with the ref-name annotation when `name` is given.
pub(crate) fn with_name(mut desc: Descriptor, name: Option<&str>) -> Descriptor {
    if let Some(name) = name {
        desc.annotations.insert(REF_NAME.to_string(), name.to_string());
    }
    desc
}

/// Canonical `index.json` bytes listing `manifests`.
pub(crate) fn index_json(manifests: Vec<serde_json::Value>) -> Vec<u8> {
    canonical_json(&json!({"schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": manifests}))
}

/// Reads the image named `name` (or the only one) from the OCI layout at
/// `dir`, choosing `platform` from a nested index, and the referrers the
/// layout holds for it. Every blob is checked against its digest before the
/// image is returned.
pub fn read_layout(dir: &Path, name: Option<&str>, platform: &Platform) -> Result<(Image, Vec<Image>), Error> {
    match read_layout_any(dir, name, Some(platform))? {
        Found::Image(image, referrers) => Ok((*image, referrers)),
        Found::Index(..) => unreachable!("a platform was asked for"),
    }
}

/// Like [`read_layout`]; without `platform`, an index comes back whole.
pub fn read_layout_any(dir: &Path, name: Option<&str>, platform: Option<&Platform>) -> Result<Found, Error> {
    let what = format!("OCI layout {}", dir.display());
    if !dir.join("oci-layout").is_file() {
        return Err(Error::Invalid(format!("{what}: not an OCI image layout (no oci-layout file)")));
    }
    let index = fs::read(dir.join("index.json")).map_err(|e| Error::io(format!("{what}: reading index.json"), e))?;
    let blobs = dir.join("blobs");
    let find = |d: &Digest| -> Result<PathBuf, Error> {
        let path = blobs.join(d.algorithm()).join(d.hex());
        if path.is_file() { Ok(path) } else { Err(Error::Invalid(format!("{what}: blob {d} is missing"))) }
    };
    found_in_index(&index, name, platform, &what, &find)
}

/// What a layout or an archive holds under a name.
#[derive(Debug, Clone)]
pub enum Found {
    /// One image (chosen by platform from an index when one was asked for),
    /// with the referrers held for it.
    Image(Box<Image>, Vec<Image>),
    /// A whole index, when no platform was asked for, with the referrers
    /// held for it and its images.
    Index(Index, Vec<Image>),
}

/// What the entry `name` of an `index.json` is: with `platform`, that
/// platform's image; without, the whole index when it is one, else its image.
pub(crate) fn found_in_index(
    index: &[u8],
    name: Option<&str>,
    platform: Option<&Platform>,
    what: &str,
    find: &dyn Fn(&Digest) -> Result<PathBuf, Error>,
) -> Result<Found, Error> {
    if platform.is_none()
        && let Some((whole, referrers)) = index_in_index(index, name, what, find)?
    {
        return Ok(Found::Index(whole, referrers));
    }
    let image = image_from_index(index, name, platform.unwrap_or(&Platform::host()), what, find)?;
    let referrers = referrers_in_index(index, &image.digest(), what, find)?;
    Ok(Found::Image(Box::new(image), referrers))
}

/// The index entry `name` (or the only one) of an `index.json`, with its
/// images and the referrers listed for any of them, when that entry is an index.
fn index_in_index(
    index: &[u8],
    name: Option<&str>,
    what: &str,
    find: &dyn Fn(&Digest) -> Result<PathBuf, Error>,
) -> Result<Option<(Index, Vec<Image>)>, Error> {
    let view: IndexView =
        serde_json::from_slice(index).map_err(|e| Error::Invalid(format!("{what}: index.json is not valid: {e}")))?;
    let entry = entry(&view, name, what)?;
    if !media::is_index(&entry.media_type) {
        return Ok(None);
    }
    let raw = read_verified(entry, what, find)?;
    let nested: IndexView = serde_json::from_slice(&raw)
        .map_err(|e| Error::Invalid(format!("{what}: index {} is not valid: {e}", entry.digest)))?;
    let mut images = Vec::new();
    for d in nested.manifests.iter().filter(|d| media::is_manifest(&d.media_type)) {
        let manifest = read_verified(d, what, find)?;
        let view: ManifestView = serde_json::from_slice(&manifest)
            .map_err(|e| Error::Invalid(format!("{what}: manifest {} is not valid: {e}", d.digest)))?;
        images.push(image_of(manifest, view, what, find)?);
    }
    let whole = Index::from_raw(raw, images).map_err(|e| Error::Invalid(format!("{what}: {e}")))?;
    let mut referrers = referrers_in_index(index, &whole.digest(), what, find)?;
    for (d, _) in whole.children() {
        referrers.extend(referrers_in_index(index, &d.digest, what, find)?);
    }
    Ok(Some((whole, referrers)))
}

/// The entry named `name` of an `index.json`, or its only image or index.
fn entry<'a>(index: &'a IndexView, name: Option<&str>, what: &str) -> Result<&'a Descriptor, Error> {
    let names: Vec<&str> =
        index.manifests.iter().filter_map(|d| d.annotations.get(REF_NAME).map(String::as_str)).collect();
    // Referrers (SBOMs, signatures) sit beside the images; they are not one to choose.
    let images: Vec<&Descriptor> = index.manifests.iter().filter(|d| d.artifact_type.is_none()).collect();
    let found = match name {
        Some(n) => index.manifests.iter().find(|d| d.annotations.get(REF_NAME).map(String::as_str) == Some(n)),
        None if images.len() == 1 => images.first().copied(),
        None => None,
    };
    found.ok_or_else(|| {
        let listed = if names.is_empty() { "no named images".to_string() } else { names.join(", ") };
        Error::Invalid(match name {
            Some(n) => format!("{what} has no image named `{n}`; it has: {listed}"),
            None => format!("{what} holds {} images; name one (…:NAME); it has: {listed}", images.len()),
        })
    })
}

/// The manifests listed in an `index.json` whose `subject` is `subject`.
pub(crate) fn referrers_in_index(
    index: &[u8],
    subject: &Digest,
    what: &str,
    find: &dyn Fn(&Digest) -> Result<PathBuf, Error>,
) -> Result<Vec<Image>, Error> {
    let index: IndexView =
        serde_json::from_slice(index).map_err(|e| Error::Invalid(format!("{what}: index.json is not valid: {e}")))?;
    let mut out = Vec::new();
    for entry in index.manifests.iter().filter(|d| media::is_manifest(&d.media_type) && &d.digest != subject) {
        let manifest = read_verified(entry, what, find)?;
        let Ok(view) = serde_json::from_slice::<ManifestView>(&manifest) else { continue };
        if view.subject.as_ref().map(|s| &s.digest) != Some(subject) {
            continue;
        }
        out.push(image_of(manifest, view, what, find)?);
    }
    Ok(out)
}

/// Resolves `name` in an `index.json` and builds the image, reading blobs
/// through `find` and verifying each one.
pub(crate) fn image_from_index(
    index: &[u8],
    name: Option<&str>,
    platform: &Platform,
    what: &str,
    find: &dyn Fn(&Digest) -> Result<PathBuf, Error>,
) -> Result<Image, Error> {
    let index: IndexView =
        serde_json::from_slice(index).map_err(|e| Error::Invalid(format!("{what}: index.json is not valid: {e}")))?;
    let entry = entry(&index, name, what)?;
    let mut desc = entry.clone();
    if media::is_index(&desc.media_type) {
        let nested: IndexView = serde_json::from_slice(&read_verified(&desc, what, find)?)
            .map_err(|e| Error::Invalid(format!("{what}: index {} is not valid: {e}", desc.digest)))?;
        desc = nested
            .select(platform)
            .map_err(|have| {
                let have: Vec<String> = have.iter().map(ToString::to_string).collect();
                Error::Invalid(format!("{what} has no image for {platform}; it has: {}", have.join(", ")))
            })?
            .clone();
    }
    let manifest = read_verified(&desc, what, find)?;
    let view: ManifestView = serde_json::from_slice(&manifest)
        .map_err(|e| Error::Invalid(format!("{what}: manifest {} is not valid: {e}", desc.digest)))?;
    image_of(manifest, view, what, find)
}

/// The image of a manifest read from a layout: its config and layers, verified.
fn image_of(
    manifest: Vec<u8>,
    view: ManifestView,
    what: &str,
    find: &dyn Fn(&Digest) -> Result<PathBuf, Error>,
) -> Result<Image, Error> {
    let config = read_verified(&view.config, what, find)?;
    let mut layers = Vec::with_capacity(view.layers.len());
    for l in view.layers {
        let path = find(&l.digest)?;
        verify_file(&path, &l, what)?;
        layers.push(Layer::file(l, path));
    }
    Image::from_raw(manifest, config, layers).map_err(|e| Error::Invalid(format!("{what}: {e}")))
}

fn read_verified(
    desc: &Descriptor,
    what: &str,
    find: &dyn Fn(&Digest) -> Result<PathBuf, Error>,
) -> Result<Vec<u8>, Error> {
    let path = find(&desc.digest)?;
    let bytes = fs::read(&path).map_err(|e| Error::io(format!("{what}: reading {}", path.display()), e))?;
    if Digest::of(&bytes) != desc.digest {
        return Err(Error::Invalid(format!("{what}: blob {} does not match its digest", desc.digest)));
    }
    Ok(bytes)
}

/// Streams the file through sha256 and checks digest and size.
pub(crate) fn verify_file(path: &Path, desc: &Descriptor, what: &str) -> Result<(), Error> {
    let mut file = fs::File::open(path).map_err(|e| Error::io(format!("{what}: reading {}", path.display()), e))?;
    let mut hasher = Hasher::new();
    std::io::copy(&mut file, &mut hasher).map_err(|e| Error::io(format!("{what}: reading {}", path.display()), e))?;
    let (digest, size) = hasher.finish();
    if digest != desc.digest || size != desc.size {
        return Err(Error::Invalid(format!("{what}: blob {} does not match its digest or size", desc.digest)));
    }
    Ok(())
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
