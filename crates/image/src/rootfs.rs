//! Reading files of an image's root filesystem straight from its layers,
//! without unpacking or running anything: the base's `/etc/passwd`, its
//! Python interpreter, its libc.
//!
//! Layers are applied bottom to top with OCI whiteouts (`.wh.NAME` removes a
//! path, `.wh..wh..opq` empties a directory of what lower layers put there).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};

use crate::{Error, Layer};

/// What a scan wants of a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Not interested.
    Skip,
    /// Whether it exists, and what it is (a symlink's target is kept).
    Exists,
    /// Its content too, for regular files.
    Content,
}

/// A path found in the root filesystem.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Node {
    /// A regular file; its bytes when they were asked for.
    File(Option<Vec<u8>>),
    /// A symbolic link and its target.
    Symlink(String),
    /// A hard link to another path of the image.
    Hardlink(String),
    /// A directory.
    Dir,
}

/// What one layer does to the layers below it ([`scan_layer`]); layers'
/// scans are combined bottom to top by [`merge`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct LayerScan {
    /// Whiteouts: paths this layer removes.
    removed: Vec<String>,
    /// Opaque directories: their lower contents are hidden.
    opaque: Vec<String>,
    /// Wanted paths this layer adds or replaces.
    added: Vec<(String, Node)>,
}

/// Paths (without a leading `/`) of the final root filesystem chosen by `want`:
/// [`scan_layer`] of each layer, then [`merge`]. (A build on a fresh runner
/// reads each layer as it downloads instead, several at once, and merges the
/// same way.)
pub fn scan(layers: &[Layer], want: impl Fn(&str) -> Want) -> Result<BTreeMap<String, Node>, Error> {
    let scans = layers.iter().map(|layer| scan_layer(layer, &want)).collect::<Result<Vec<_>, _>>()?;
    Ok(merge(scans))
}

/// The root filesystem that layers' scans (bottom first) make together:
/// each layer's whiteouts and opaque directories hide what is below, then
/// its own paths are added.
pub fn merge(scans: impl IntoIterator<Item = LayerScan>) -> BTreeMap<String, Node> {
    let mut fs: BTreeMap<String, Node> = BTreeMap::new();
    for LayerScan { removed, opaque, added } in scans {
        let under = |p: &str, dir: &str| dir.is_empty() || p == dir || p.starts_with(&format!("{dir}/"));
        fs.retain(|p, _| !removed.iter().any(|r| under(p, r)) && !opaque.iter().any(|d| p != d && under(p, d)));
        fs.extend(added);
    }
    // A hard link to a file whose content was read gets that content too.
    let resolved: Vec<(String, Node)> = fs
        .iter()
        .filter_map(|(p, n)| match n {
            Node::Hardlink(target) => fs.get(target).map(|t| (p.clone(), t.clone())),
            _ => None,
        })
        .collect();
    fs.extend(resolved);
    fs
}

/// Reads one layer (on disk): its whiteouts, opaque directories and the
/// paths `want` asks for.
pub fn scan_layer(layer: &Layer, want: &impl Fn(&str) -> Want) -> Result<LayerScan, Error> {
    let mut scans = scan_layer_each(layer, &[want as &dyn Fn(&str) -> Want])?;
    Ok(scans.pop().unwrap_or_default())
}

/// [`scan_layer`] for several scans in one pass over the layer: one
/// [`LayerScan`] per entry of `wants`, each exactly what a scan of its own
/// would give.
pub fn scan_layer_each(layer: &Layer, wants: &[&dyn Fn(&str) -> Want]) -> Result<Vec<LayerScan>, Error> {
    let what = format!("reading layer {}", layer.descriptor.digest);
    let file = File::open(layer.path()?).map_err(|e| Error::io(what.clone(), e))?;
    scan_stream_each(file, &what, wants)
}

/// [`scan_layer_each`] of a layer's bytes as they come from `reader` (a
/// blob being downloaded, say); `what` names it in errors.
pub fn scan_stream_each(
    mut reader: impl Read + 'static,
    what: &str,
    wants: &[&dyn Fn(&str) -> Want],
) -> Result<Vec<LayerScan>, Error> {
    let err = |e: std::io::Error| Error::io(what.to_string(), e);
    // The first four bytes say how the layer is compressed, however few
    // bytes each read gives; they are put back in front of the rest.
    let mut magic = Vec::with_capacity(4);
    (&mut reader).take(4).read_to_end(&mut magic).map_err(err)?;
    let reader = BufReader::with_capacity(1 << 20, std::io::Cursor::new(magic.clone()).chain(reader));
    let stream: Box<dyn Read> = match magic.as_slice() {
        [0x1f, 0x8b, ..] => Box::new(flate2::read::MultiGzDecoder::new(reader)),
        [0x28, 0xb5, 0x2f, 0xfd] => Box::new(zstd::stream::read::Decoder::with_buffer(reader).map_err(err)?),
        _ => Box::new(reader),
    };
    let mut scans: Vec<LayerScan> = wants.iter().map(|_| LayerScan::default()).collect();
    let mut archive = tar::Archive::new(stream);
    for entry in archive.entries().map_err(err)? {
        let mut entry = entry.map_err(err)?;
        let path = entry.path().map_err(err)?.to_string_lossy().into_owned();
        let path = path.trim_start_matches("./").trim_start_matches('/').trim_end_matches('/').to_string();
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path.as_str()));
        if name == ".wh..wh..opq" {
            scans.iter_mut().for_each(|s| s.opaque.push(dir.to_string()));
            continue;
        }
        if let Some(hidden) = name.strip_prefix(".wh.") {
            let removed = if dir.is_empty() { hidden.to_string() } else { format!("{dir}/{hidden}") };
            scans.iter_mut().for_each(|s| s.removed.push(removed.clone()));
            continue;
        }
        let wanted: Vec<Want> = wants.iter().map(|w| w(&path)).collect();
        if wanted.iter().all(|w| *w == Want::Skip) {
            continue;
        }
        let link = |e: &tar::Entry<'_, Box<dyn Read>>| {
            e.link_name().ok().flatten().map(|l| l.to_string_lossy().into_owned()).unwrap_or_default()
        };
        let node = match entry.header().entry_type() {
            tar::EntryType::Directory => Node::Dir,
            tar::EntryType::Symlink => Node::Symlink(link(&entry)),
            tar::EntryType::Link => Node::Hardlink(link(&entry).trim_start_matches('/').to_string()),
            t if t.is_file() => {
                if wanted.contains(&Want::Content) {
                    let mut bytes = Vec::new();
                    entry.read_to_end(&mut bytes).map_err(err)?;
                    Node::File(Some(bytes))
                } else {
                    Node::File(None)
                }
            }
            _ => continue,
        };
        for (scan, want) in scans.iter_mut().zip(&wanted) {
            let node = match (&node, want) {
                (_, Want::Skip) => continue,
                (Node::File(Some(_)), Want::Exists) => Node::File(None),
                _ => node.clone(),
            };
            scan.added.push((path.clone(), node));
        }
    }
    Ok(scans)
}

/// The content of `path` in `scanned`, following links within it in every
/// component: a merged /usr's `lib -> usr/lib` on the way as well as a link
/// at the end.
pub fn content<'a>(scanned: &'a BTreeMap<String, Node>, path: &str) -> Option<&'a [u8]> {
    let mut pending: std::collections::VecDeque<String> =
        path.split('/').filter(|p| !p.is_empty()).map(String::from).collect();
    let mut current = String::new();
    let mut hops = 0;
    while let Some(part) = pending.pop_front() {
        let candidate = if current.is_empty() { part } else { format!("{current}/{part}") };
        let resolved = match scanned.get(&candidate) {
            Some(Node::Symlink(target)) => resolve_link(&candidate, target),
            Some(Node::Hardlink(target)) => target.clone(),
            Some(Node::File(Some(bytes))) if pending.is_empty() => return Some(bytes),
            _ => {
                current = candidate;
                continue;
            }
        };
        hops += 1;
        if hops > 16 {
            return None;
        }
        let mut restart: std::collections::VecDeque<String> =
            resolved.split('/').filter(|p| !p.is_empty()).map(String::from).collect();
        restart.extend(pending.drain(..));
        pending = restart;
        current.clear();
    }
    None
}

/// Resolves a symlink target relative to the link's directory, lexically.
pub fn resolve_link(link: &str, target: &str) -> String {
    let mut parts: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        link.rsplit_once('/').map(|(d, _)| d.split('/').collect()).unwrap_or_default()
    };
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BlobStore, Digest, LayerBuilder, Owner, media};

    fn layer(store: &BlobStore, build: impl FnOnce(&mut LayerBuilder)) -> Layer {
        let mut b = LayerBuilder::new(0, Owner::ROOT);
        build(&mut b);
        let blob = b.write_gzip(store).unwrap();
        Layer::file(blob.descriptor(media::OCI_LAYER_GZIP), blob.path)
    }

    #[test]
    fn content_follows_links_in_every_component() {
        let mut fs = BTreeMap::new();
        fs.insert("lib".to_string(), Node::Symlink("usr/lib".into()));
        fs.insert("lib64".to_string(), Node::Symlink("/usr/lib64".into()));
        fs.insert("usr/lib/x/libc.so.6".to_string(), Node::File(Some(b"libc".to_vec())));
        fs.insert("usr/lib64/ld.so".to_string(), Node::Symlink("/lib/x/libc.so.6".into()));
        fs.insert("usr/lib/x/libc.hard".to_string(), Node::Hardlink("usr/lib/x/libc.so.6".into()));
        fs.insert("loop".to_string(), Node::Symlink("loop".into()));
        assert_eq!(content(&fs, "lib/x/libc.so.6"), Some(b"libc".as_slice()));
        assert_eq!(content(&fs, "/lib64/ld.so"), Some(b"libc".as_slice()));
        assert_eq!(content(&fs, "usr/lib/x/libc.hard"), Some(b"libc".as_slice()));
        assert_eq!(content(&fs, "usr/lib/x"), None, "a directory has no content");
        assert_eq!(content(&fs, "loop"), None, "a link loop ends");
    }

    #[test]
    /// Two scans in one pass are each what a pass of its own gives:
    /// whiteouts and opaque directories in both, content only where asked.
    fn one_pass_gives_each_scan_what_its_own_pass_would() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let low = layer(&store, |b| {
            b.bytes("etc/passwd", b"root".to_vec(), Owner::ROOT, 0o644)
                .bytes("usr/lib/libc.so.6", b"libc".to_vec(), Owner::ROOT, 0o755)
                .bytes("usr/lib/old.so", b"old".to_vec(), Owner::ROOT, 0o755)
                .symlink("lib", "usr/lib", Owner::ROOT);
        });
        let high = layer(&store, |b| {
            b.bytes("usr/lib/.wh.old.so", Vec::new(), Owner::ROOT, 0o644).bytes(
                "usr/bin/python3.11",
                b"ELF".to_vec(),
                Owner::ROOT,
                0o755,
            );
        });
        let first = |p: &str| if p.starts_with("etc/") { Want::Content } else { Want::Exists };
        let second = |p: &str| if p.starts_with("usr/") { Want::Content } else { Want::Skip };
        let layers = [low, high];
        let wants: [&dyn Fn(&str) -> Want; 2] = [&first, &second];
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for l in &layers {
            let mut each = scan_layer_each(l, &wants).unwrap();
            b.push(each.pop().unwrap());
            a.push(each.pop().unwrap());
        }
        assert_eq!(merge(a), scan(&layers, first).unwrap());
        assert_eq!(merge(b), scan(&layers, second).unwrap());
        let alone = scan(&layers, first).unwrap();
        assert_eq!(alone.get("usr/bin/python3.11"), Some(&Node::File(None)));
        assert!(!alone.contains_key("usr/lib/old.so"));
    }

    #[test]
    fn upper_layers_win_and_whiteouts_remove() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let low = layer(&store, |b| {
            b.bytes("etc/passwd", b"old".to_vec(), Owner::ROOT, 0o644)
                .bytes("etc/group", b"g".to_vec(), Owner::ROOT, 0o644)
                .bytes("opt/x/a", b"a".to_vec(), Owner::ROOT, 0o644)
                .bytes("usr/bin/python3.11", b"ELF".to_vec(), Owner::ROOT, 0o755)
                .symlink("usr/bin/python3", "python3.11", Owner::ROOT);
        });
        let high = layer(&store, |b| {
            b.bytes("etc/passwd", b"new".to_vec(), Owner::ROOT, 0o644)
                .bytes("etc/.wh.group", Vec::new(), Owner::ROOT, 0o644)
                .bytes("opt/x/.wh..wh..opq", Vec::new(), Owner::ROOT, 0o644)
                .bytes("opt/x/b", b"b".to_vec(), Owner::ROOT, 0o644);
        });
        let fs = scan(&[low, high], |_| Want::Content).unwrap();
        assert_eq!(fs.get("etc/passwd"), Some(&Node::File(Some(b"new".to_vec()))));
        assert!(!fs.contains_key("etc/group"));
        assert!(!fs.contains_key("opt/x/a") && fs.contains_key("opt/x/b"));
        assert_eq!(content(&fs, "/usr/bin/python3"), Some(b"ELF".as_slice()));
    }

    /// Layers are applied in order: the topmost write wins and a whiteout in
    /// a higher layer hides a lower one's file; a broken layer is named.
    #[test]
    fn many_layers_apply_in_order_and_a_broken_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let mut layers: Vec<Layer> = (0..7)
            .map(|i| {
                layer(&store, |b| {
                    b.bytes("etc/passwd", format!("v{i}").into_bytes(), Owner::ROOT, 0o644);
                    if i == 2 {
                        b.bytes("etc/gone", b"x".to_vec(), Owner::ROOT, 0o644);
                    }
                    if i == 5 {
                        b.bytes("etc/.wh.gone", Vec::new(), Owner::ROOT, 0o644);
                    }
                })
            })
            .collect();
        let fs = scan(&layers, |_| Want::Content).unwrap();
        assert_eq!(fs.get("etc/passwd"), Some(&Node::File(Some(b"v6".to_vec()))));
        assert!(!fs.contains_key("etc/gone"));

        let broken = dir.path().join("broken");
        std::fs::write(&broken, [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255, 1, 2, 3]).unwrap();
        let digest = Digest::of(b"broken");
        layers[3] = Layer::file(crate::Descriptor::new(media::OCI_LAYER_GZIP, digest.clone(), 13), broken);
        let e = scan(&layers, |_| Want::Content).unwrap_err().to_string();
        assert!(e.contains(digest.as_str()), "{e}");
    }

    #[test]
    fn link_resolution() {
        assert_eq!(resolve_link("usr/bin/python3", "python3.11"), "usr/bin/python3.11");
        assert_eq!(resolve_link("usr/bin/python3", "../local/bin/python3.12"), "usr/local/bin/python3.12");
        assert_eq!(resolve_link("lib/x", "/usr/lib/x"), "usr/lib/x");
    }
}
