//! The base image: opened from any location, and scanned for what the build
//! reads of its root filesystem (accounts, interpreter, libc). A scan is
//! found in the local cache, else in the cache repository, else made by
//! fetching the layers once, each read while it downloads (what was read is
//! used only once the whole blob has matched its digest).

use std::collections::BTreeMap;

use futures_util::{StreamExt as _, TryStreamExt as _};
use oxbuild_cache::Bucket;
use oxbuild_image::rootfs::{self, Node};
use oxbuild_image::{Image, Layer, Platform};
use oxbuild_location::{Location, Opened};

use crate::error::task;
use crate::{Error, Kind, Request, Services, cache_repo};

/// A base's root filesystem, as far as the build reads it.
pub type Scan = BTreeMap<String, Node>;

/// What an interpreter kit needs of a base's files, kept by the base's scan,
/// with the lock of that kit, held from before the scan until the kit is
/// made from them: another platform of the same run that borrows this
/// base's interpreter waits for it instead of reading the layers again.
pub struct Captured {
    /// The files (see `interpreter::any_kit_want`).
    pub files: Scan,
    guard: std::sync::Mutex<Option<tokio::sync::OwnedMutexGuard<()>>>,
}

impl Captured {
    /// The kit's lock, to hold while the kit is made (once).
    pub(crate) fn take_guard(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        self.guard.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
    }
}

impl std::fmt::Debug for Captured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Captured({} paths)", self.files.len())
    }
}

/// The base as the build uses it.
#[derive(Debug, Clone)]
pub struct Base {
    /// Where it was read from.
    pub location: Location,
    /// As opened from its location.
    pub opened: Opened,
    /// The image; its layers are on disk when this run had to scan them,
    /// else still where they were.
    pub image: Image,
    /// Its config, parsed.
    pub config: serde_json::Value,
    /// The platform it is.
    pub platform: Platform,
    /// What the build reads of its files.
    pub fs: Scan,
    /// The `PATH` of its config, if it sets one.
    pub path: Option<String>,
    /// What an interpreter kit needs of its files (see
    /// `interpreter::any_kit_want`), when this run read its layers and was
    /// asked to: the kit is then made without reading them again.
    pub kit: Option<std::sync::Arc<Captured>>,
}

/// The platform an image config declares, if it declares one.
fn config_platform(config: &serde_json::Value) -> Option<Platform> {
    Some(Platform {
        os: config["os"].as_str()?.to_string(),
        architecture: config["architecture"].as_str()?.to_string(),
        variant: config["variant"].as_str().map(str::to_string),
    })
}

/// Opens the base at `location` for the request's platform and scans it;
/// with `kit`, a scan made now also keeps what an interpreter kit needs.
pub async fn open(location: &Location, request: &Request, services: &Services, kit: bool) -> Result<Base, Error> {
    let wanted = request.platform.clone().unwrap_or_else(Platform::host);
    services.events.step(&format!("reading base {location} ({wanted})"));
    let opened = location.open(&services.target(), &wanted).await?;
    let config = opened.image.config_json().map_err(|e| Error::new(Kind::Input, e))?;
    // A base that is one image (not an index) is the platform it is: a
    // --platform it does not have is an error, and what is reported is what
    // the image really is.
    let platform = match config_platform(&config) {
        Some(actual) if request.platform.is_some() && !wanted.matches(&actual) => {
            return Err(Error::new(
                Kind::Input,
                format!(
                    "base {location} is a {actual} image, not {wanted}: use a base that has {wanted} (a multi-platform index, or an archive of that platform), or drop --platform"
                ),
            ));
        }
        Some(actual) => actual,
        None => wanted,
    };
    let runs_here = platform.os == "linux" && platform.architecture == Platform::host().architecture;
    let (image, fs, kit) = scan(&opened.image, location, request, services, kit && runs_here).await?;
    let path = config["config"]["Env"]
        .as_array()
        .and_then(|a| a.iter().filter_map(|v| v.as_str()).find_map(|e| e.strip_prefix("PATH=")))
        .map(str::to_string);
    Ok(Base { location: location.clone(), opened, image, config, platform, fs, path, kit })
}

/// The scan of `image`: cached here, in the cache repository, or made now
/// (with `kit`, with what an interpreter kit needs, in the same pass).
/// Returns the image too, with its layers on disk when they had to be fetched.
async fn scan(
    image: &Image,
    location: &Location,
    request: &Request,
    services: &Services,
    kit: bool,
) -> Result<(Image, Scan, Option<std::sync::Arc<Captured>>), Error> {
    let key = oxbuild_build::scan_key(image).hex().to_string();
    if let Some(found) = services.cache.get::<Scan>(Bucket::Scans, &key) {
        return Ok((image.clone(), found, None));
    }
    if let Some(repo) = &request.cache_repo
        && let (Some(found), ()) = tokio::join!(
            cache_repo::scan(image, repo, services),
            // The kit that compiles with this base's interpreter comes from
            // the cache repository too: asked for at the same time.
            crate::interpreter::prefetch(image, kit, repo, services),
        )
    {
        let _ = services.cache.put(Bucket::Scans, &key, &found);
        return Ok((image.clone(), found, None));
    }
    // Held until the kit is made from what this scan keeps for it.
    let guard = match kit {
        true => Some(services.kit_lock(&crate::interpreter::kit_key(image)).lock_owned().await),
        false => None,
    };
    let (image, found, kit) = fetch_and_scan(image, location, services, kit).await?;
    let found = oxbuild_build::finish_scan(found);
    // A cache that cannot be written only costs the next build a rescan.
    let _ = services.cache.put(Bucket::Scans, &key, &found);
    if let Some(repo) = &request.cache_repo {
        cache_repo::store_scan(&image, &found, repo, services).await;
    }
    let kit = kit.map(|files| std::sync::Arc::new(Captured { files, guard: std::sync::Mutex::new(guard) }));
    Ok((image, found, kit))
}

/// What a base scan reads of each layer: what the build needs and, with
/// `kit`, what an interpreter kit needs.
fn scan_wants(kit: bool) -> Vec<&'static dyn Fn(&str) -> rootfs::Want> {
    let base: &dyn Fn(&str) -> rootfs::Want = &oxbuild_build::base_wants;
    let kit_wants: &dyn Fn(&str) -> rootfs::Want = &crate::interpreter::any_kit_want;
    if kit { vec![base, kit_wants] } else { vec![base] }
}

/// Fetches the base's layers and reads each while it downloads, so that
/// inflating it overlaps the transfer (up to four layers at a time); with
/// `kit`, what an interpreter kit needs is read in the same pass.
async fn fetch_and_scan(
    image: &Image,
    location: &Location,
    services: &Services,
    kit: bool,
) -> Result<(Image, Scan, Option<Scan>), Error> {
    let fetched: Vec<(Layer, Vec<rootfs::LayerScan>)> = futures_util::stream::iter(image.layers().iter().cloned())
        .map(|layer| async move {
            if let Some(streamed) = scan_while_fetching(&layer, services, kit).await {
                return Ok(streamed);
            }
            let local = oxbuild_registry::fetch_layer(&services.client, layer, &services.store)
                .await
                .map_err(|e| Error::new(Kind::Registry, format!("pulling base image {location}: {e}")))?;
            let reading = local.clone();
            let scanned = tokio::task::spawn_blocking(move || rootfs::scan_layer_each(&reading, &scan_wants(kit)))
                .await
                .map_err(task)?
                .map_err(|e| Error::from(oxbuild_build::Error::Base(e.to_string())))?;
            Ok::<_, Error>((local, scanned))
        })
        .buffered(4)
        .try_collect()
        .await?;
    let mut layers = Vec::new();
    let (mut scans, mut kits) = (Vec::new(), Vec::new());
    for (layer, mut each) in fetched {
        layers.push(layer);
        if each.len() > 1 {
            kits.push(each.pop().unwrap_or_default());
        }
        scans.push(each.pop().unwrap_or_default());
    }
    let image = image.relocated(layers).map_err(|e| Error::new(Kind::Input, e))?;
    let kit = kit.then(|| rootfs::merge(kits));
    Ok((image, rootfs::merge(scans), kit))
}

/// A layer in a registry, scanned from its bytes as they download: the
/// layer (on disk, verified) and its scans. None when that did not work
/// out, for whatever reason (the layer is not in a registry or is stored
/// already, the transfer broke, the blob did not match its digest, the scan
/// failed): the caller then fetches it with retries and reads it from disk,
/// and what was read here is thrown away, so an unverified byte never counts.
async fn scan_while_fetching(layer: &Layer, services: &Services, kit: bool) -> Option<(Layer, Vec<rootfs::LayerScan>)> {
    // Nothing to download (a file already, or stored): the caller scans it
    // from disk, with no thread started for a stream that never comes.
    let remote = matches!(layer.location, oxbuild_image::BlobLocation::Registry { .. });
    if !remote || services.store.contains(&layer.descriptor.digest) {
        return None;
    }
    // At most 8 pieces of the transfer wait for the scan (hyper hands over
    // up to a few hundred KiB at a time): a transfer faster than the scan
    // is held back rather than held in memory.
    let (tap, pieces) = tokio::sync::mpsc::channel(8);
    let what = format!("reading layer {}", layer.descriptor.digest);
    let scanning = tokio::task::spawn_blocking(move || {
        rootfs::scan_stream_each(Pieces { rx: pieces, piece: bytes::Bytes::new() }, &what, &scan_wants(kit))
    });
    let fetched = oxbuild_registry::fetch_layer_tapped(&services.client, layer, &services.store, tap).await;
    // The tap is dropped by now: the scan sees the end of the bytes.
    let scanned = scanning.await;
    match (fetched, scanned) {
        (Ok(Some(local)), Ok(Ok(scans))) => Some((local, scans)),
        _ => None,
    }
}

/// The pieces of a blob coming from a download, as one `Read` (for a
/// blocking thread).
struct Pieces {
    rx: tokio::sync::mpsc::Receiver<bytes::Bytes>,
    piece: bytes::Bytes,
}

impl std::io::Read for Pieces {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.piece.is_empty() {
            match self.rx.blocking_recv() {
                Some(piece) => self.piece = piece,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.piece.len());
        buf[..n].copy_from_slice(&self.piece.split_to(n));
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use oxbuild_image::{BlobStore, LayerBuilder, LayerCompression, Owner};

    use super::*;

    /// A layer read from its pieces as a download hands them over, whatever
    /// their sizes, reads exactly as it does from disk.
    #[test]
    fn a_layer_read_from_its_pieces_reads_as_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let mut l = LayerBuilder::new(0, Owner::ROOT);
        l.bytes("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n".to_vec(), Owner::ROOT, 0o644)
            .bytes("etc/os-release", b"ID=debian\nVERSION_ID=\"12\"\n".to_vec(), Owner::ROOT, 0o644)
            .symlink("usr/bin/python3", "python3.11", Owner::ROOT)
            .bytes("usr/bin/python3.11", vec![0x7f; 4096], Owner::ROOT, 0o755)
            .bytes("usr/share/doc/.wh.gone", Vec::new(), Owner::ROOT, 0o644);
        // Enough of everything else that the blob comes in many pieces.
        for i in 0..3000u32 {
            let filler: Vec<u8> =
                (0..400u32).map(|j| (i.wrapping_mul(2_654_435_761) ^ j.wrapping_mul(40503)) as u8).collect();
            l.bytes(&format!("usr/share/filler/{i}"), filler, Owner::ROOT, 0o644);
        }
        let blob = l.write(&store, LayerCompression::Gzip).unwrap();
        let layer = Layer::file(blob.descriptor(oxbuild_image::media::OCI_LAYER_GZIP), store.path(&blob.digest));
        let from_disk = rootfs::scan_layer_each(&layer, &scan_wants(true)).unwrap();

        let bytes = std::fs::read(store.path(&blob.digest)).unwrap();
        assert!(bytes.len() > 256 * 1024, "{} bytes", bytes.len());
        let (tap, rx) = tokio::sync::mpsc::channel(4);
        let sender = std::thread::spawn(move || {
            let (mut rest, mut size) = (&bytes[..], 1usize);
            while !rest.is_empty() {
                let k = size.min(rest.len());
                tap.blocking_send(bytes::Bytes::copy_from_slice(&rest[..k])).unwrap();
                rest = &rest[k..];
                size = size * 7 % 65_521 + 1;
            }
        });
        let streamed =
            rootfs::scan_stream_each(Pieces { rx, piece: bytes::Bytes::new() }, "a test layer", &scan_wants(true))
                .unwrap();
        sender.join().unwrap();
        assert_eq!(streamed, from_disk);
        let fs = rootfs::merge(streamed.into_iter().take(1));
        assert_eq!(fs.get("etc/passwd"), Some(&Node::File(Some(b"root:x:0:0:root:/root:/bin/sh\n".to_vec()))));
        assert!(fs.contains_key("usr/bin/python3.11"), "{:?}", fs.keys().collect::<Vec<_>>());
    }
}
