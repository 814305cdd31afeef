//! Image archives: one tar that both `podman load`/`docker load` and OCI tools
//! read. It holds an OCI layout (`oci-layout`, `index.json`, `blobs/sha256/…`)
//! and Docker's `manifest.json` pointing at the same blobs, so it serves as
//! `oci-archive:` and `docker-archive:` alike.
//!
//! Reading accepts that shape, plain OCI archives, and Docker's older
//! `docker save` layout (`<id>/layer.tar`, uncompressed layers, which are
//! gzip-compressed on the way in). Entries are never written to disk by their
//! names: blobs go into the store under their verified digest, so a path like
//! `../../etc/passwd` inside an archive cannot write anything anywhere.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Component, Path};

use flate2::Compression;
use serde_json::json;

use crate::gzip::ParallelGzip;
use crate::layout::{found_in_index, index_json, named, with_name};
use crate::{
    BlobStore, Descriptor, Digest, Error, Format, Image, Index, Layer, LayerBuilder, Owner, Platform, canonical_json,
    media,
};

/// Writes `image` as an archive at `path` (replaced atomically), tagged with
/// `names` (e.g. `registry/repo:tag`) in both `index.json` and `manifest.json`,
/// with `referrers` (SBOMs, provenance) listed in `index.json` beside it.
///
/// `manifest.json`'s `RepoTags` gets only the names that are whole
/// references with a tag (`repo:tag`): `podman load` and `docker load` refuse
/// a bare tag such as `latest`, which an OCI layout's names may be, and load
/// an archive without tags untagged.
pub fn write_archive(image: &Image, referrers: &[Image], path: &Path, names: &[String]) -> Result<(), Error> {
    let mut tar = oci_tar([image], None, &image.descriptor(), names, referrers)?;
    let tagged: Vec<&String> = names
        .iter()
        .filter(|n| n.rsplit_once(':').is_some_and(|(repo, tag)| !repo.is_empty() && !tag.contains('/')))
        .collect();
    let docker = json!([{
        "Config": blob_path(&image.config_descriptor().digest),
        "RepoTags": tagged,
        "Layers": image.layers().iter().map(|l| blob_path(&l.descriptor.digest)).collect::<Vec<_>>(),
    }]);
    tar.bytes("manifest.json", canonical_json(&docker), Owner::ROOT, 0o644);
    persist(tar, path)
}

/// Writes `index` and every image it lists as an OCI archive at `path`, the
/// index named by each of `names` in `index.json`, with `referrers` (of the
/// index or its images) beside it. (A docker-archive holds one image, so
/// there is no `manifest.json`.)
pub fn write_archive_index(index: &Index, referrers: &[Image], path: &Path, names: &[String]) -> Result<(), Error> {
    let images = index.children().iter().map(|(_, i)| i);
    let own = (index.digest(), index.manifest());
    let tar = oci_tar(images, Some(own), &index.descriptor(), names, referrers)?;
    persist(tar, path)
}

/// Where a blob goes in an archive.
fn blob_path(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

/// The OCI layout an archive holds: every blob of `images` and `referrers`
/// (each once), then `extra` (an index's own bytes), the `oci-layout` file,
/// and `index.json` listing `top` under each of `names` (or unnamed) and
/// the referrers beside it.
fn oci_tar<'a>(
    images: impl IntoIterator<Item = &'a Image>,
    extra: Option<(Digest, &[u8])>,
    top: &Descriptor,
    names: &[String],
    referrers: &'a [Image],
) -> Result<LayerBuilder, Error> {
    let mut tar = LayerBuilder::new(0, Owner::ROOT);
    let mut written = std::collections::HashSet::new();
    for one in images.into_iter().chain(referrers) {
        for layer in one.layers() {
            if written.insert(layer.descriptor.digest.clone()) {
                tar.file(&blob_path(&layer.descriptor.digest), layer.path()?, Owner::ROOT, 0o644);
            }
        }
        if written.insert(one.config_descriptor().digest.clone()) {
            tar.bytes(&blob_path(&one.config_descriptor().digest), one.config().to_vec(), Owner::ROOT, 0o644);
        }
        if written.insert(one.digest()) {
            tar.bytes(&blob_path(&one.digest()), one.manifest().to_vec(), Owner::ROOT, 0o644);
        }
    }
    if let Some((digest, bytes)) = extra {
        tar.bytes(&blob_path(&digest), bytes.to_vec(), Owner::ROOT, 0o644);
    }
    tar.bytes("oci-layout", canonical_json(&json!({"imageLayoutVersion": "1.0.0"})), Owner::ROOT, 0o644);
    let entry = |d: Descriptor| serde_json::to_value(d).expect("descriptors serialise");
    let mut entries: Vec<serde_json::Value> = if names.is_empty() {
        vec![entry(top.clone())]
    } else {
        names.iter().map(|n| entry(with_name(top.clone(), Some(n)))).collect()
    };
    entries.extend(referrers.iter().map(|r| entry(named(r, None))));
    tar.bytes("index.json", index_json(entries), Owner::ROOT, 0o644);
    Ok(tar)
}

/// Writes `tar` to `path`, replacing it atomically.
fn persist(tar: LayerBuilder, path: &Path) -> Result<(), Error> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new()
        .prefix(".oxbuild-archive-")
        .tempfile_in(dir)
        .map_err(|e| Error::io(format!("creating an archive in {}", dir.display()), e))?;
    let out = std::io::BufWriter::new(tmp.reopen().map_err(|e| Error::io("opening the archive", e))?);
    let mut out = tar.write_tar(out)?;
    out.flush().map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    // Temporary files are private; an archive is meant to be handed on.
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    tmp.persist(path).map_err(|e| Error::io(format!("writing {}", path.display()), e.error))?;
    Ok(())
}

pub use crate::layout::Found;

/// Reads the image named `name` (or the only one) from the archive at `path`,
/// and the referrers it holds for it; their blobs go into `store`, verified.
pub fn read_archive(
    path: &Path,
    name: Option<&str>,
    platform: &Platform,
    store: &BlobStore,
) -> Result<(Image, Vec<Image>), Error> {
    match read_archive_any(path, name, Some(platform), store)? {
        Found::Image(image, referrers) => Ok((*image, referrers)),
        Found::Index(..) => unreachable!("a platform was asked for"),
    }
}

/// Like [`read_archive`]; without `platform`, an index comes back whole.
pub fn read_archive_any(
    path: &Path,
    name: Option<&str>,
    platform: Option<&Platform>,
    store: &BlobStore,
) -> Result<Found, Error> {
    let what = format!("archive {}", path.display());
    let file = File::open(path).map_err(|e| Error::io(format!("opening {what}"), e))?;
    let mut archive = tar::Archive::new(BufReader::with_capacity(1 << 20, file));
    // Small metadata files by name; every other regular file by its digest.
    let mut meta: HashMap<String, Vec<u8>> = HashMap::new();
    let mut by_path: HashMap<String, Digest> = HashMap::new();
    let mut links: HashMap<String, String> = HashMap::new();
    let entries = archive.entries().map_err(|e| Error::io(format!("reading {what}"), e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| Error::io(format!("reading {what}"), e))?;
        let raw = entry.path().map_err(|e| Error::io(format!("reading {what}"), e))?.into_owned();
        let name = clean(&raw)
            .ok_or_else(|| Error::Invalid(format!("{what}: entry `{}` leads outside the archive", raw.display())))?;
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            // `docker save` (before Docker 25) stores a layer repeated in the
            // image once and links the other copies to it: a symlink relative
            // to its own directory, or a hard link named from the root.
            let target = entry.link_name().map_err(|e| Error::io(format!("reading {what}"), e))?;
            let from = if kind.is_symlink() { name.rsplit_once('/').map_or("", |(dir, _)| dir) } else { "" };
            if let Some(target) = target.and_then(|t| resolve(from, &t))
                && (links.insert(name.clone(), target).is_some() || by_path.contains_key(&name))
            {
                return Err(Error::Invalid(format!(
                    "{what}: entry `{name}` appears twice; an archive with duplicate entries is ambiguous, so it is refused"
                )));
            }
            continue;
        }
        if !kind.is_file() {
            continue;
        }
        // Two entries of one name would let two readers see two different
        // images in one archive (tar keeps the last, some tools the first).
        if meta.contains_key(&name) || by_path.contains_key(&name) || links.contains_key(&name) {
            return Err(Error::Invalid(format!(
                "{what}: entry `{name}` appears twice; an archive with duplicate entries is ambiguous, so it is refused"
            )));
        }
        if matches!(name.as_str(), "index.json" | "manifest.json" | "oci-layout" | "repositories") {
            let mut bytes = Vec::new();
            entry
                .by_ref()
                .take(16 << 20)
                .read_to_end(&mut bytes)
                .map_err(|e| Error::io(format!("reading {what}"), e))?;
            meta.insert(name, bytes);
            continue;
        }
        let mut w = store.writer()?;
        std::io::copy(&mut entry, &mut w).map_err(|e| Error::io(format!("reading {name} from {what}"), e))?;
        let digest = match name.strip_prefix("blobs/sha256/") {
            Some(hex) => {
                let expected: Digest = format!("sha256:{hex}")
                    .parse()
                    .map_err(|_| Error::Invalid(format!("{what}: `{name}` is not named by a sha256 digest")))?;
                w.commit(&expected).map_err(|e| Error::Invalid(format!("{what}: {name}: {e}")))?;
                expected
            }
            None => w.commit_computed()?.0,
        };
        by_path.insert(name, digest);
    }
    // Links to links are followed (a few hops); a cycle, a longer chain or a
    // dangling link resolves to nothing and is named as missing if the
    // manifest needs it. Resolved against the files only, so the outcome
    // does not depend on the order links are looked at.
    let resolved: Vec<(String, Digest)> = links
        .keys()
        .filter_map(|link| {
            let mut at = link;
            for _ in 0..8 {
                match links.get(at) {
                    Some(next) => at = next,
                    None => return by_path.get(at).map(|d| (link.clone(), d.clone())),
                }
            }
            None
        })
        .collect();
    by_path.extend(resolved);
    // Only blobs this archive holds: one that happens to be in the store
    // from an earlier read is not the archive's.
    let held: std::collections::HashSet<&Digest> = by_path.values().collect();
    let find = |d: &Digest| {
        if held.contains(d) && store.contains(d) {
            Ok(store.path(d))
        } else {
            Err(Error::Invalid(format!("{what}: blob {d} is missing")))
        }
    };
    if let Some(index) = meta.get("index.json") {
        return found_in_index(index, name, platform, &what, &find);
    }
    let manifest = meta.get("manifest.json").ok_or_else(|| {
        Error::Invalid(format!("{what}: neither index.json nor manifest.json found; not an image archive"))
    })?;
    Ok(Found::Image(Box::new(from_docker_manifest(manifest, name, &by_path, store, &what)?), Vec::new()))
}

/// A link target `target` seen from directory `from`, normalised; None when
/// it is absolute or climbs out of the archive.
fn resolve(from: &str, target: &Path) -> Option<String> {
    let mut parts: Vec<String> = from.split('/').filter(|p| !p.is_empty()).map(String::from).collect();
    for c in target.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str()?.to_string()),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            _ => return None,
        }
    }
    Some(parts.join("/"))
}

/// Normalises an entry name; None when it is absolute or climbs out with `..`.
fn clean(path: &Path) -> Option<String> {
    let mut parts = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str()?.to_string()),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(parts.join("/"))
}

/// An image from Docker's `manifest.json` (as written by `docker save`).
fn from_docker_manifest(
    manifest: &[u8],
    name: Option<&str>,
    by_path: &HashMap<String, Digest>,
    store: &BlobStore,
    what: &str,
) -> Result<Image, Error> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Entry {
        config: String,
        #[serde(default)]
        repo_tags: Option<Vec<String>>,
        layers: Vec<String>,
    }
    let entries: Vec<Entry> = serde_json::from_slice(manifest)
        .map_err(|e| Error::Invalid(format!("{what}: manifest.json is not valid: {e}")))?;
    let entry = match name {
        Some(n) => entries.iter().find(|e| e.repo_tags.iter().flatten().any(|t| t == n)),
        None if entries.len() == 1 => entries.first(),
        None => None,
    }
    .ok_or_else(|| {
        let tags: Vec<&str> = entries.iter().flat_map(|e| e.repo_tags.iter().flatten()).map(String::as_str).collect();
        Error::Invalid(format!("{what}: name the image to read (…:NAME); it has: {}", tags.join(", ")))
    })?;
    let blob = |p: &str| {
        by_path
            .get(p)
            .cloned()
            .ok_or_else(|| Error::Invalid(format!("{what}: manifest.json names `{p}`, which is missing")))
    };
    let config_digest = blob(&entry.config)?;
    let config = std::fs::read(store.path(&config_digest)).map_err(|e| Error::io(format!("reading {what}"), e))?;
    let mut layers = Vec::new();
    for p in &entry.layers {
        let digest = blob(p)?;
        let path = store.path(&digest);
        let mut head = [0u8; 2];
        let gz = File::open(&path).and_then(|mut f| f.read_exact(&mut head)).is_ok() && head == [0x1f, 0x8b];
        let layer = if gz {
            let size = std::fs::metadata(&path).map_err(|e| Error::io("reading a layer", e))?.len();
            Layer::file(Descriptor::new(media::DOCKER_LAYER_GZIP, digest, size), path)
        } else {
            // Registries want compressed layers; the diff_id (of the tar) stays the same.
            let mut w = store.writer()?;
            {
                let mut gz = ParallelGzip::new(&mut w, Compression::new(crate::gzip::LEVEL));
                let mut src = File::open(&path).map_err(|e| Error::io("reading a layer", e))?;
                std::io::copy(&mut src, &mut gz).map_err(|e| Error::io("compressing a layer", e))?;
                gz.finish().map_err(|e| Error::io("compressing a layer", e))?;
            }
            let size = w.written();
            let (digest, gz_path) = w.commit_computed()?;
            Layer::file(Descriptor::new(media::DOCKER_LAYER_GZIP, digest, size), gz_path)
        };
        layers.push(layer);
    }
    Image::assemble_raw(Format::Docker, config, layers, &BTreeMap::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{read_layout, write_layout};

    fn sample(store: &BlobStore) -> Image {
        let mut l = LayerBuilder::new(0, Owner::ROOT);
        l.bytes("etc/hello", b"hello\n".to_vec(), Owner::ROOT, 0o644);
        let blob = l.write_gzip(store).unwrap();
        let config =
            json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [blob.diff_id]}});
        let layer = Layer::file(blob.descriptor(media::OCI_LAYER_GZIP), blob.path);
        Image::assemble(Format::Oci, &config, vec![layer], &BTreeMap::new()).unwrap()
    }

    #[test]
    fn layout_and_archive_round_trip_to_the_same_digest() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path().join("store")).unwrap();
        let image = sample(&store);
        let host = Platform::host();

        write_layout(&image, &dir.path().join("layout"), Some("v1")).unwrap();
        let back = read_layout(&dir.path().join("layout"), Some("v1"), &host).unwrap().0;
        assert_eq!(back.digest(), image.digest());
        let e = read_layout(&dir.path().join("layout"), Some("v2"), &host).unwrap_err().to_string();
        assert!(e.contains("no image named `v2`") && e.contains("v1"), "{e}");

        let archive = dir.path().join("image.tar");
        write_archive(&image, &[], &archive, &["example.com/app:v1".to_string()]).unwrap();
        let other = BlobStore::open(dir.path().join("other")).unwrap();
        let back = read_archive(&archive, None, &host, &other).unwrap().0;
        assert_eq!(back.digest(), image.digest());
        assert!(back.layers()[0].path().unwrap().starts_with(other.root()));

        // Docker's manifest tags only whole references: `podman load` refuses `latest`.
        let names = ["latest".to_string(), "localhost/team/app:v1".to_string(), "127.0.0.1:5000/app".to_string()];
        write_archive(&image, &[], &archive, &names).unwrap();
        let mut tar = tar::Archive::new(std::fs::File::open(&archive).unwrap());
        let mut manifest = None;
        for entry in tar.entries().unwrap() {
            let mut entry = entry.unwrap();
            if entry.path().unwrap().to_str() == Some("manifest.json") {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut entry, &mut text).unwrap();
                manifest = Some(serde_json::from_str::<serde_json::Value>(&text).unwrap());
            }
        }
        assert_eq!(manifest.unwrap()[0]["RepoTags"], json!(["localhost/team/app:v1"]));
        let back = read_archive(&archive, Some("latest"), &host, &other).unwrap().0;
        assert_eq!(back.digest(), image.digest(), "the OCI side keeps every name");
    }

    /// An SBOM-like artifact referring to `image`.
    fn referrer(store: &BlobStore, image: &Image, text: &str) -> Image {
        let digest = store.insert_bytes(text.as_bytes()).unwrap();
        let payload = Layer::file(
            crate::Descriptor::new("application/spdx+json", digest.clone(), text.len() as u64),
            store.path(&digest),
        );
        Image::artifact("application/spdx+json", payload, &image.descriptor(), &BTreeMap::new())
    }

    /// An archive whose manifest names a blob it does not hold is refused,
    /// even when that blob is in the store from an earlier read.
    #[test]
    fn a_blob_missing_from_the_archive_is_not_taken_from_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path().join("store")).unwrap();
        let image = sample(&store);
        let mut tar = LayerBuilder::new(0, Owner::ROOT);
        let blob = |d: &Digest| format!("blobs/sha256/{}", d.hex());
        tar.bytes(&blob(&image.config_descriptor().digest), image.config().to_vec(), Owner::ROOT, 0o644);
        tar.bytes(&blob(&image.digest()), image.manifest().to_vec(), Owner::ROOT, 0o644);
        tar.bytes("oci-layout", canonical_json(&json!({"imageLayoutVersion": "1.0.0"})), Owner::ROOT, 0o644);
        tar.bytes(
            "index.json",
            index_json(vec![serde_json::to_value(named(&image, None)).unwrap()]),
            Owner::ROOT,
            0o644,
        );
        let path = dir.path().join("short.tar");
        persist(tar, &path).unwrap();
        assert!(store.contains(&image.layers()[0].descriptor.digest), "the layer is in the store");
        let e = read_archive(&path, None, &Platform::host(), &store).unwrap_err().to_string();
        assert!(e.contains("is missing") && e.contains(image.layers()[0].descriptor.digest.as_str()), "{e}");
    }

    #[test]
    fn referrers_travel_in_layouts_and_archives_beside_their_image() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path().join("store")).unwrap();
        let image = sample(&store);
        let sbom = referrer(&store, &image, "{\"spdxVersion\":\"SPDX-2.3\"}");
        let unrelated = referrer(&store, &sample_other(), "{}");
        let host = Platform::host();

        let archive = dir.path().join("image.tar");
        write_archive(&image, std::slice::from_ref(&sbom), &archive, &[]).unwrap();
        let other = BlobStore::open(dir.path().join("other")).unwrap();
        let (back, referrers) = read_archive(&archive, None, &host, &other).unwrap();
        assert_eq!(back.digest(), image.digest(), "the referrer is not taken for the image");
        assert_eq!(referrers.len(), 1);
        assert_eq!(referrers[0].digest(), sbom.digest());
        assert_eq!(referrers[0].artifact_type(), Some("application/spdx+json"));
        assert_eq!(referrers[0].subject().unwrap().digest, image.digest());

        let layout = dir.path().join("layout");
        write_layout(&image, &layout, Some("v1")).unwrap();
        write_layout(&sbom, &layout, None).unwrap();
        write_layout(&unrelated, &layout, None).unwrap();
        let (_, referrers) = read_layout(&layout, Some("v1"), &host).unwrap();
        let digests: Vec<_> = referrers.iter().map(Image::digest).collect();
        assert_eq!(digests, [sbom.digest()], "only the image's own referrers");
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
        assert!(index["manifests"].as_array().unwrap().iter().any(|m| m["artifactType"] == "application/spdx+json"));
    }

    fn sample_other() -> Image {
        let config = json!({"architecture": "arm64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}});
        Image::assemble(Format::Oci, &config, Vec::new(), &BTreeMap::new()).unwrap()
    }

    #[test]
    fn a_tampered_or_missing_blob_in_a_layout_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path().join("store")).unwrap();
        let image = sample(&store);
        let layout = dir.path().join("layout");
        write_layout(&image, &layout, None).unwrap();
        let layer = layout.join("blobs/sha256").join(image.layers()[0].descriptor.digest.hex());
        let mut bytes = std::fs::read(&layer).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&layer, bytes).unwrap();
        let e = read_layout(&layout, None, &Platform::host()).unwrap_err().to_string();
        assert!(e.contains("does not match its digest"), "{e}");
        std::fs::remove_file(&layer).unwrap();
        let e = read_layout(&layout, None, &Platform::host()).unwrap_err().to_string();
        assert!(e.contains("is missing"), "{e}");
    }

    fn tar_with(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut b = tar::Builder::new(&mut out);
            for (name, data) in entries {
                let mut h = tar::Header::new_gnu();
                h.set_size(data.len() as u64);
                h.set_mode(0o644);
                h.set_entry_type(tar::EntryType::Regular);
                // Written raw, so that names the tar crate would refuse still get in.
                let field = &mut h.as_old_mut().name;
                field[..name.len()].copy_from_slice(name.as_bytes());
                h.set_cksum();
                b.append(&h, *data).unwrap();
            }
            b.finish().unwrap();
        }
        out
    }

    #[test]
    fn traversal_and_mismatched_blobs_in_an_archive_are_rejected_and_write_nothing_outside() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path().join("store")).unwrap();
        let evil = dir.path().join("evil.tar");
        std::fs::write(&evil, tar_with(&[("../../escaped", b"x")])).unwrap();
        let e = read_archive(&evil, None, &Platform::host(), &store).unwrap_err().to_string();
        assert!(e.contains("leads outside the archive") && e.contains("../../escaped"), "{e}");
        assert!(!dir.path().join("escaped").exists() && !dir.path().parent().unwrap().join("escaped").exists());

        let wrong = format!("blobs/sha256/{}", Digest::of(b"something else").hex());
        std::fs::write(&evil, tar_with(&[(&wrong, b"not that")])).unwrap();
        let e = read_archive(&evil, None, &Platform::host(), &store).unwrap_err().to_string();
        assert!(e.contains("digest mismatch"), "{e}");
    }

    /// Legacy `docker save` writes a layer that appears twice once, and the
    /// second copy is a symlink to the first (`../abc/layer.tar`).
    #[test]
    fn docker_save_archives_with_linked_repeated_layers_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path().join("store")).unwrap();
        let mut l = LayerBuilder::new(0, Owner::ROOT);
        l.bytes("same", b"twice".to_vec(), Owner::ROOT, 0o644);
        let layer_tar = l.write_tar(Vec::new()).unwrap();
        let diff_id = Digest::of(&layer_tar);
        let config = canonical_json(
            &json!({"os": "linux", "architecture": "amd64", "rootfs": {"type": "layers", "diff_ids": [diff_id, diff_id]}}),
        );
        let layers = ["abc/layer.tar", "def/layer.tar", "ghi/layer.tar"];
        let manifest = canonical_json(&json!([{"Config": "cfg.json", "RepoTags": ["app:v1"], "Layers": layers}]));
        let mut out = Vec::new();
        {
            let mut b = tar::Builder::new(&mut out);
            let mut file = |name: &str, data: &[u8]| {
                let mut h = tar::Header::new_gnu();
                h.set_size(data.len() as u64);
                h.set_mode(0o644);
                b.append_data(&mut h, name, data).unwrap();
            };
            file("cfg.json", &config);
            file("abc/layer.tar", &layer_tar);
            file("manifest.json", &manifest);
            let mut link = tar::Header::new_gnu();
            link.set_entry_type(tar::EntryType::Symlink);
            link.set_size(0);
            b.append_link(&mut link, "def/layer.tar", "../abc/layer.tar").unwrap();
            let mut hard = tar::Header::new_gnu();
            hard.set_entry_type(tar::EntryType::Link);
            hard.set_size(0);
            b.append_link(&mut hard, "ghi/layer.tar", "def/layer.tar").unwrap();
            let mut out_of_bounds = tar::Header::new_gnu();
            out_of_bounds.set_entry_type(tar::EntryType::Symlink);
            out_of_bounds.set_size(0);
            b.append_link(&mut out_of_bounds, "evil/layer.tar", "../../etc/passwd").unwrap();
            b.finish().unwrap();
        }
        let path = dir.path().join("saved.tar");
        std::fs::write(&path, out).unwrap();
        let image = read_archive(&path, Some("app:v1"), &Platform::host(), &store).unwrap().0;
        assert_eq!(image.layers().len(), 3);
        let digests: Vec<_> = image.layers().iter().map(|l| l.descriptor.digest.clone()).collect();
        assert!(digests.iter().all(|d| *d == digests[0]), "{digests:?}");

        // A link that climbs out of the archive is never followed.
        let evil = canonical_json(&json!([{"Config": "cfg.json", "Layers": ["evil/layer.tar"]}]));
        let mut out = Vec::new();
        {
            let mut b = tar::Builder::new(&mut out);
            let mut h = tar::Header::new_gnu();
            h.set_size(config.len() as u64);
            b.append_data(&mut h, "cfg.json", config.as_slice()).unwrap();
            let mut h = tar::Header::new_gnu();
            h.set_size(evil.len() as u64);
            b.append_data(&mut h, "manifest.json", evil.as_slice()).unwrap();
            let mut link = tar::Header::new_gnu();
            link.set_entry_type(tar::EntryType::Symlink);
            link.set_size(0);
            b.append_link(&mut link, "evil/layer.tar", "../../etc/passwd").unwrap();
            b.finish().unwrap();
        }
        std::fs::write(&path, out).unwrap();
        let e = read_archive(&path, None, &Platform::host(), &store).unwrap_err().to_string();
        assert!(e.contains("evil/layer.tar") && e.contains("missing"), "{e}");
    }

    #[test]
    fn docker_save_archives_with_uncompressed_layers_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path().join("store")).unwrap();
        let mut l = LayerBuilder::new(0, Owner::ROOT);
        l.bytes("hello", b"hi".to_vec(), Owner::ROOT, 0o644);
        let layer_tar = l.write_tar(Vec::new()).unwrap();
        let config = canonical_json(
            &json!({"os": "linux", "architecture": "amd64", "rootfs": {"type": "layers", "diff_ids": [Digest::of(&layer_tar)]}}),
        );
        let manifest =
            canonical_json(&json!([{"Config": "cfg.json", "RepoTags": ["app:v1"], "Layers": ["abc/layer.tar"]}]));
        let path = dir.path().join("saved.tar");
        std::fs::write(
            &path,
            tar_with(&[("cfg.json", &config), ("abc/layer.tar", &layer_tar), ("manifest.json", &manifest)]),
        )
        .unwrap();
        let image = read_archive(&path, Some("app:v1"), &Platform::host(), &store).unwrap().0;
        assert_eq!(image.config(), config.as_slice(), "the config bytes are kept");
        let gz = std::fs::read(image.layers()[0].path().unwrap()).unwrap();
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(gz.as_slice()).read_to_end(&mut plain).unwrap();
        assert_eq!(plain, layer_tar);
    }
}
