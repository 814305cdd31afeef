//! Reproducible layer tarballs.
//!
//! A [`LayerBuilder`] collects entries (directories, files, symlinks) with the
//! owner and mode they must have in the image, then writes them sorted by path,
//! with one fixed mtime, numeric owners only and missing parent directories
//! added. The same entries therefore always give the same bytes, whatever order
//! they were added in and whatever the source files' timestamps were.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use flate2::Compression;

use crate::digest::HashingWriter;
use crate::gzip::ParallelGzip;
use crate::{BlobStore, Descriptor, Digest, Error};

/// Who owns an entry in the image, and with which permission bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// Numeric user id.
    pub uid: u64,
    /// Numeric group id.
    pub gid: u64,
}

impl Owner {
    /// root:root
    pub const ROOT: Owner = Owner { uid: 0, gid: 0 };
}

/// The bytes of a layer entry, read when the layer is written rather than
/// when the entry is added: a file inside an archive, say, streamed straight
/// into the layer without being unpacked to disk first.
pub trait EntrySource: Send + Sync + std::fmt::Debug {
    /// How many bytes [`EntrySource::open`] yields: the size in the tar header.
    fn len(&self) -> u64;

    /// True for an empty entry.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A reader over the bytes. An error from it (a checksum that does not
    /// match, say) fails the layer, and nothing is committed to the store.
    fn open(&self) -> io::Result<Box<dyn Read + '_>>;
}

/// The bytes of an entry that another thread is still making (bytecode
/// being compiled while the layer is written), or none when the entry is to
/// be left out after all.
pub trait Deferred: Send + Sync + std::fmt::Debug {
    /// Blocks until the bytes are ready: `Some` to write them, `None` to
    /// leave the entry out. An error fails the layer.
    fn wait(&self) -> io::Result<Option<Vec<u8>>>;
}

#[derive(Debug, Clone)]
enum Content {
    Dir,
    File(PathBuf),
    Bytes(Vec<u8>),
    Source(Arc<dyn EntrySource>),
    Deferred(Arc<dyn Deferred>),
    Symlink(String),
}

#[derive(Debug, Clone)]
struct Entry {
    owner: Owner,
    mode: u32,
    content: Content,
}

/// Collects the entries of one layer; see the module docs.
#[derive(Debug, Clone)]
pub struct LayerBuilder {
    entries: BTreeMap<String, Entry>,
    parent_owner: Owner,
    mtime: u64,
    /// How each source file looked when [`LayerBuilder::identity`] hashed
    /// it: writing the layer refuses a file that no longer looks so, since
    /// the layer would then not hold what its identity says (and a cache
    /// keeping it under that identity would hand out the wrong bytes).
    hashed: Arc<Mutex<BTreeMap<PathBuf, Stamp>>>,
}

/// What a file's metadata says of its content: its size and modification
/// time. Two reads with equal stamps read the same bytes, except for a write
/// still under way (its time is set when it starts) or two rewrites of one
/// size within one tick of the kernel's clock; see RELIABILITY.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Stamp {
        Stamp { len: meta.len(), modified: meta.modified().ok() }
    }
}

/// The error for a file whose stamp changed while oxbuild read it.
fn changed(source: &Path) -> Error {
    Error::Invalid(format!(
        "{} changed while it was being archived; build again once nothing writes to it",
        source.display()
    ))
}

/// Copies all of `source` into `out`, failing when the file changed while
/// it was read (its stamp before and after differ), and returns its stamp.
fn read_steady(source: &Path, out: &mut impl Write) -> Result<Stamp, Error> {
    let reading = |e| Error::io(format!("reading {}", source.display()), e);
    let mut file = File::open(source).map_err(reading)?;
    let before = Stamp::of(&file.metadata().map_err(reading)?);
    io::copy(&mut file, out).map_err(reading)?;
    if Stamp::of(&file.metadata().map_err(reading)?) != before {
        return Err(changed(source));
    }
    Ok(before)
}

/// A finished layer blob on disk, with what a manifest and config need of it.
#[derive(Debug, Clone)]
pub struct LayerBlob {
    /// Where the compressed blob is.
    pub path: PathBuf,
    /// Digest of the compressed blob.
    pub digest: Digest,
    /// Size of the compressed blob.
    pub size: u64,
    /// Digest of the uncompressed tar (the config's `rootfs.diff_ids` entry).
    pub diff_id: Digest,
    /// How the blob is compressed.
    pub compression: LayerCompression,
}

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LayerCompression {
    /// gzip (every runtime reads it; the only choice for Docker media types).
    #[default]
    Gzip,
    /// zstd (OCI media types only).
    Zstd,
}

impl LayerCompression {
    /// The compressor and level, as cache keys name them: a layer cached
    /// under one is never reused where another would write other bytes.
    pub fn key(self) -> String {
        match self {
            LayerCompression::Gzip => format!("gzip-{}", crate::gzip::LEVEL),
            LayerCompression::Zstd => format!("zstd-{ZSTD_LEVEL}"),
        }
    }
}

/// zstd's level for layers.
const ZSTD_LEVEL: i32 = 3;

/// Bumped whenever [`LayerBuilder::write_tar`] would write other bytes for
/// the same entries, so that layers found by [`LayerBuilder::identity`] are
/// never those of an older writer.
const TAR_FORMAT: &str = "oxbuild-tar-v1";

impl LayerBlob {
    /// This blob's descriptor with `media_type`.
    pub fn descriptor(&self, media_type: &str) -> Descriptor {
        Descriptor::new(media_type, self.digest.clone(), self.size)
    }

    /// This blob's descriptor in `format`, or an error when the format cannot
    /// carry its compression (zstd in a Docker image).
    pub fn descriptor_in(&self, format: crate::Format) -> Result<Descriptor, Error> {
        match (self.compression, format) {
            (LayerCompression::Gzip, f) => Ok(self.descriptor(f.gzip_layer())),
            (LayerCompression::Zstd, crate::Format::Oci) => Ok(self.descriptor(crate::media::OCI_LAYER_ZSTD)),
            (LayerCompression::Zstd, crate::Format::Docker) => Err(Error::Invalid(
                "zstd layers need OCI media types, and this image uses Docker's (it has a healthcheck)".into(),
            )),
        }
    }
}

fn normalize(path: &str) -> String {
    path.trim_start_matches('/').trim_end_matches('/').to_string()
}

impl LayerBuilder {
    /// An empty layer whose entries all get `mtime` (seconds since the epoch), and
    /// whose implied parent directories are owned by `parent_owner`.
    pub fn new(mtime: u64, parent_owner: Owner) -> Self {
        LayerBuilder { entries: BTreeMap::new(), parent_owner, mtime, hashed: Arc::default() }
    }

    fn insert(&mut self, path: &str, owner: Owner, mode: u32, content: Content) {
        let path = normalize(path);
        if path.is_empty() {
            return;
        }
        self.entries.insert(path, Entry { owner, mode: mode & 0o7777, content });
    }

    /// A directory at `path` (relative to the image root; a leading `/` is ignored).
    pub fn dir(&mut self, path: &str, owner: Owner, mode: u32) -> &mut Self {
        self.insert(path, owner, mode, Content::Dir);
        self
    }

    /// A regular file at `path` whose bytes are read from `source` when the layer is written.
    pub fn file(&mut self, path: &str, source: &Path, owner: Owner, mode: u32) -> &mut Self {
        self.insert(path, owner, mode, Content::File(source.to_path_buf()));
        self
    }

    /// A regular file at `path` with `bytes` as its content.
    pub fn bytes(&mut self, path: &str, bytes: Vec<u8>, owner: Owner, mode: u32) -> &mut Self {
        self.insert(path, owner, mode, Content::Bytes(bytes));
        self
    }

    /// A regular file at `path` whose bytes come from `source` when the layer is written.
    pub fn source(&mut self, path: &str, source: Arc<dyn EntrySource>, owner: Owner, mode: u32) -> &mut Self {
        self.insert(path, owner, mode, Content::Source(source));
        self
    }

    /// A regular file at `path` whose bytes `deferred` gives (or withholds,
    /// leaving the entry out) when the writer reaches it.
    pub fn deferred(&mut self, path: &str, deferred: Arc<dyn Deferred>, owner: Owner, mode: u32) -> &mut Self {
        self.insert(path, owner, mode, Content::Deferred(deferred));
        self
    }

    /// A symbolic link at `path` pointing at `target` (kept as given).
    pub fn symlink(&mut self, path: &str, target: &str, owner: Owner) -> &mut Self {
        self.insert(path, owner, 0o777, Content::Symlink(target.to_string()));
        self
    }

    /// Reads the file entry at `path` now and keeps its bytes as the entry's
    /// content, returning them: for a caller that derives other entries from
    /// them (bytecode), so that the layer holds exactly the bytes it used
    /// even when the file is rewritten later. None for no file entry there.
    pub fn snapshot(&mut self, path: &str) -> Result<Option<Vec<u8>>, Error> {
        let Some(entry) = self.entries.get_mut(&normalize(path)) else { return Ok(None) };
        match &entry.content {
            Content::File(source) => {
                let mut bytes = Vec::new();
                read_steady(source, &mut bytes)?;
                entry.content = Content::Bytes(bytes.clone());
                Ok(Some(bytes))
            }
            Content::Bytes(bytes) => Ok(Some(bytes.clone())),
            _ => Ok(None),
        }
    }

    /// True when the layer has an entry at `path` (a leading `/` is ignored).
    pub fn has(&self, path: &str) -> bool {
        self.entries.contains_key(&normalize(path))
    }

    /// True when the layer puts anything at `path`: an entry, or a
    /// directory implied by an entry below it.
    pub fn touches(&self, path: &str) -> bool {
        let path = normalize(path);
        let below = format!("{path}/");
        self.entries.contains_key(&path)
            || self.entries.range(below.clone()..).next().is_some_and(|(k, _)| k.starts_with(&below))
    }

    /// Number of entries added (not counting implied parents).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// A digest of everything that decides the layer's bytes (its entries'
    /// paths, owners, modes, kinds and contents, the mtime and the tar
    /// writer's format; not the compression, which the caller adds), so that
    /// a layer written once can be found again by it instead of written.
    /// Files are read to hash them. None when an entry's bytes are not known
    /// yet ([`LayerBuilder::deferred`], [`LayerBuilder::source`]).
    pub fn identity(&self) -> Result<Option<Digest>, Error> {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        let field = |h: &mut sha2::Sha256, bytes: &[u8]| {
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        };
        field(&mut h, TAR_FORMAT.as_bytes());
        h.update(self.mtime.to_le_bytes());
        for (path, entry) in self.complete() {
            field(&mut h, path.as_bytes());
            for n in [entry.owner.uid, entry.owner.gid, u64::from(entry.mode)] {
                h.update(n.to_le_bytes());
            }
            match &entry.content {
                Content::Dir => field(&mut h, b"dir"),
                Content::Symlink(target) => {
                    field(&mut h, b"symlink");
                    field(&mut h, target.as_bytes());
                }
                Content::Bytes(bytes) => {
                    field(&mut h, b"file");
                    field(&mut h, &sha2::Sha256::digest(bytes));
                }
                Content::File(source) => {
                    let mut content = crate::digest::Hasher::new();
                    let stamp = read_steady(source, &mut content)?;
                    self.hashed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(source.clone(), stamp);
                    let (digest, _) = content.finish();
                    field(&mut h, b"file");
                    field(&mut h, digest.as_str().as_bytes());
                }
                Content::Source(_) | Content::Deferred(_) => return Ok(None),
            }
        }
        Ok(Some(Digest::of(&h.finalize())))
    }

    /// Every entry, with implied parent directories filled in, in path order.
    fn complete(&self) -> BTreeMap<String, Entry> {
        let mut all = self.entries.clone();
        for path in self.entries.keys() {
            let mut parent = Path::new(path).parent();
            while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
                let key = p.to_string_lossy().into_owned();
                all.entry(key).or_insert(Entry { owner: self.parent_owner, mode: 0o755, content: Content::Dir });
                parent = p.parent();
            }
        }
        all
    }

    /// Writes the uncompressed tar stream to `out`.
    pub fn write_tar<W: Write>(&self, out: W) -> Result<W, Error> {
        let mut tar = tar::Builder::new(out);
        tar.mode(tar::HeaderMode::Deterministic);
        for (path, entry) in self.complete() {
            self.append(&mut tar, &path, &entry)?;
        }
        tar.into_inner().map_err(|e| Error::io("finishing a layer tar", e))
    }

    fn append<W: Write>(&self, tar: &mut tar::Builder<W>, path: &str, entry: &Entry) -> Result<(), Error> {
        let mut header = tar::Header::new_ustar();
        header.set_mtime(self.mtime);
        header.set_uid(entry.owner.uid);
        header.set_gid(entry.owner.gid);
        header.set_mode(entry.mode);
        let mut pax: Vec<(&str, Vec<u8>)> = Vec::new();
        let name = match entry.content {
            Content::Dir => format!("{path}/"),
            _ => path.to_string(),
        };
        if header.set_path(&name).is_err() {
            // Too long for ustar's name+prefix: the PAX `path` record carries it,
            // and the ustar field gets a truncated stand-in old readers can show.
            pax.push(("path", name.clone().into_bytes()));
            let short: String = name.chars().rev().take(90).collect::<Vec<_>>().into_iter().rev().collect();
            header
                .set_path(short.trim_start_matches('/'))
                .map_err(|e| Error::io(format!("naming {path} in a layer"), e))?;
        }
        let write_err = |e| Error::io(format!("writing {path} into a layer"), e);
        match &entry.content {
            Content::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                finish(tar, header, pax, io::empty()).map_err(write_err)
            }
            Content::Symlink(target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                if target.len() > 100 {
                    pax.push(("linkpath", target.clone().into_bytes()));
                } else {
                    header.set_link_name(target).map_err(write_err)?;
                }
                finish(tar, header, pax, io::empty()).map_err(write_err)
            }
            Content::Deferred(deferred) => match deferred.wait().map_err(write_err)? {
                Some(bytes) => {
                    header.set_entry_type(tar::EntryType::Regular);
                    set_size(&mut header, &mut pax, bytes.len() as u64);
                    finish(tar, header, pax, bytes.as_slice()).map_err(write_err)
                }
                None => Ok(()),
            },
            Content::Bytes(bytes) => {
                header.set_entry_type(tar::EntryType::Regular);
                set_size(&mut header, &mut pax, bytes.len() as u64);
                finish(tar, header, pax, bytes.as_slice()).map_err(write_err)
            }
            Content::Source(source) => {
                let len = source.len();
                header.set_entry_type(tar::EntryType::Regular);
                set_size(&mut header, &mut pax, len);
                let inner = source.open().map_err(write_err)?.take(len);
                let reader = ExactReader { inner, left: len, short: || format!("{path} ended before its {len} bytes") };
                finish(tar, header, pax, reader).map_err(write_err)
            }
            Content::File(source) => {
                let reading = |e| Error::io(format!("reading {}", source.display()), e);
                let file = File::open(source).map_err(reading)?;
                let before = Stamp::of(&file.metadata().map_err(reading)?);
                let hashed = self.hashed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(source).copied();
                if hashed.is_some_and(|h| h != before) {
                    return Err(changed(source));
                }
                let len = before.len;
                header.set_entry_type(tar::EntryType::Regular);
                set_size(&mut header, &mut pax, len);
                // Guard against the file changing size while it is archived: the
                // header already promised `len` bytes.
                // Large reads: a layer of big files is otherwise a storm of 8 KiB syscalls.
                let buffered = io::BufReader::with_capacity(1 << 20, file.try_clone().map_err(reading)?);
                let short = || format!("{} shrank while it was being archived", source.display());
                let reader = ExactReader { inner: buffered.take(len), left: len, short };
                finish(tar, header, pax, reader).map_err(write_err)?;
                // A file that grew or was rewritten meanwhile would ship torn.
                if Stamp::of(&file.metadata().map_err(reading)?) != before {
                    return Err(changed(source));
                }
                Ok(())
            }
        }
    }

    /// Writes the layer as a gzip blob into `store`, returning its digests.
    ///
    /// Compression ([`crate::gzip::LEVEL`]) uses a fixed gzip header (no name, no mtime,
    /// unknown OS) and runs on every core in fixed-size blocks (see
    /// [`crate::gzip`]), so the blob digest depends only on the entries.
    pub fn write_gzip(&self, store: &BlobStore) -> Result<LayerBlob, Error> {
        self.write_gzip_teed(store, None)
    }

    fn write_gzip_teed(&self, store: &BlobStore, tee: Option<crate::store::Tee>) -> Result<LayerBlob, Error> {
        let gz = ParallelGzip::new(store.writer()?.teeing(tee), Compression::new(crate::gzip::LEVEL));
        let uncompressed = self.write_tar(HashingWriter::new(gz))?;
        let (gz, diff_id, _) = uncompressed.finish();
        let blob = gz.finish().map_err(|e| Error::io("compressing a layer", e))?;
        let size = blob.written();
        let (digest, path) = blob.commit_computed()?;
        Ok(LayerBlob { path, digest, size, diff_id, compression: LayerCompression::Gzip })
    }

    /// Writes the layer as a zstd blob (level 3, single-threaded, so the bytes
    /// depend only on the entries) into `store`.
    pub fn write_zstd(&self, store: &BlobStore) -> Result<LayerBlob, Error> {
        self.write_zstd_teed(store, None)
    }

    fn write_zstd_teed(&self, store: &BlobStore, tee: Option<crate::store::Tee>) -> Result<LayerBlob, Error> {
        let zst = zstd::stream::write::Encoder::new(store.writer()?.teeing(tee), ZSTD_LEVEL)
            .map_err(|e| Error::io("starting zstd", e))?;
        let uncompressed = self.write_tar(HashingWriter::new(zst))?;
        let (zst, diff_id, _) = uncompressed.finish();
        let blob = zst.finish().map_err(|e| Error::io("compressing a layer", e))?;
        let size = blob.written();
        let (digest, path) = blob.commit_computed()?;
        Ok(LayerBlob { path, digest, size, diff_id, compression: LayerCompression::Zstd })
    }

    /// Writes the layer with `compression`.
    pub fn write(&self, store: &BlobStore, compression: LayerCompression) -> Result<LayerBlob, Error> {
        self.write_teed(store, compression, None)
    }

    /// Writes the layer with `compression`, copying the blob's bytes into
    /// `tee` as they are made (see [`crate::store::Tee`]).
    pub fn write_teed(
        &self,
        store: &BlobStore,
        compression: LayerCompression,
        tee: Option<crate::store::Tee>,
    ) -> Result<LayerBlob, Error> {
        match compression {
            LayerCompression::Gzip => self.write_gzip_teed(store, tee),
            LayerCompression::Zstd => self.write_zstd_teed(store, tee),
        }
    }
}

fn set_size(header: &mut tar::Header, pax: &mut Vec<(&str, Vec<u8>)>, size: u64) {
    const USTAR_MAX: u64 = 0o77777777777;
    if size > USTAR_MAX {
        pax.push(("size", size.to_string().into_bytes()));
    }
    header.set_size(size);
}

fn finish<W: Write, R: Read>(
    tar: &mut tar::Builder<W>,
    mut header: tar::Header,
    pax: Vec<(&str, Vec<u8>)>,
    data: R,
) -> io::Result<()> {
    if !pax.is_empty() {
        tar.append_pax_extensions(pax.iter().map(|(k, v)| (*k, v.as_slice())))?;
    }
    header.set_cksum();
    tar.append(&header, data)
}

/// Reads exactly `left` bytes or fails, so a file truncated mid-build cannot
/// produce a corrupt tar.
struct ExactReader<R, F> {
    inner: R,
    left: u64,
    /// The error message for a short read.
    short: F,
}

impl<R: Read, F: Fn() -> String> Read for ExactReader<R, F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.left > 0 && !buf.is_empty() {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, (self.short)()));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(tar_bytes: &[u8]) -> Vec<(String, u64, u64, u32, u64)> {
        let mut a = tar::Archive::new(tar_bytes);
        a.entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    h.uid().unwrap(),
                    h.gid().unwrap(),
                    h.mode().unwrap(),
                    h.mtime().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn identity_follows_what_decides_the_bytes_and_only_that() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("main.py");
        std::fs::write(&file, "print(1)\n").unwrap();
        let app = Owner { uid: 1000, gid: 1000 };
        let layer = |mtime: u64, owner: Owner, mode: u32| {
            let mut l = LayerBuilder::new(mtime, Owner::ROOT);
            l.file("app/main.py", &file, owner, mode).symlink("app/link", "main.py", owner).dir("data", owner, 0o755);
            l
        };
        let id = |l: &LayerBuilder| l.identity().unwrap().expect("known bytes");
        let first = id(&layer(0, app, 0o644));
        // Added in another order, from another copy of the file: the same.
        let copy = dir.path().join("copy.py");
        std::fs::copy(&file, &copy).unwrap();
        let mut again = LayerBuilder::new(0, Owner::ROOT);
        again.dir("data", app, 0o755).symlink("/app/link", "main.py", app).file("app/main.py", &copy, app, 0o644);
        assert_eq!(id(&again), first);
        // Whatever changes the tar changes it.
        assert_ne!(id(&layer(1, app, 0o644)), first, "mtime");
        assert_ne!(id(&layer(0, Owner::ROOT, 0o644)), first, "owner");
        assert_ne!(id(&layer(0, app, 0o755)), first, "mode");
        std::fs::write(&file, "print(2)\n").unwrap();
        assert_ne!(id(&layer(0, app, 0o644)), first, "content");
        // Bytes not known yet: no identity.
        #[derive(Debug)]
        struct Later;
        impl Deferred for Later {
            fn wait(&self) -> io::Result<Option<Vec<u8>>> {
                Ok(None)
            }
        }
        let mut deferred = layer(0, app, 0o644);
        deferred.deferred("app/x.pyc", Arc::new(Later), app, 0o644);
        assert!(deferred.identity().unwrap().is_none());
    }

    /// A file rewritten after its layer's identity was taken fails the
    /// write: the layer would not hold what its identity says. A snapshot
    /// keeps the bytes it read, whatever happens to the file after.
    #[test]
    fn a_file_rewritten_after_hashing_is_refused_and_a_snapshot_keeps_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.txt"), dir.path().join("b.py"));
        std::fs::write(&a, "one\n").unwrap();
        std::fs::write(&b, "old = 1\n").unwrap();
        let mut layer = LayerBuilder::new(0, Owner::ROOT);
        layer.file("app/a.txt", &a, Owner::ROOT, 0o644).file("app/b.py", &b, Owner::ROOT, 0o644);
        assert_eq!(layer.snapshot("/app/b.py").unwrap(), Some(b"old = 1\n".to_vec()));
        assert_eq!(layer.snapshot("app/none.py").unwrap(), None);
        let hashed = layer.identity().unwrap().expect("known bytes");
        let was = std::fs::metadata(&a).unwrap().modified().unwrap();
        // The same size, another time: what a quick edit looks like.
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(10);
        std::fs::write(&a, "two\n").unwrap();
        File::options().write(true).open(&a).unwrap().set_modified(later).unwrap();
        std::fs::write(&b, "new = 2\n").unwrap();
        let err = layer.write_tar(Vec::new()).unwrap_err().to_string();
        assert!(err.contains("a.txt") && err.contains("changed while"), "{err}");
        // Put back as it was hashed, the file writes again; the snapshot never moved.
        std::fs::write(&a, "one\n").unwrap();
        File::options().write(true).open(&a).unwrap().set_modified(was).unwrap();
        let tar = layer.write_tar(Vec::new()).unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let mut found = BTreeMap::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let mut text = String::new();
            entry.read_to_string(&mut text).unwrap();
            found.insert(entry.path().unwrap().to_string_lossy().into_owned(), text);
        }
        assert_eq!(found["app/b.py"], "old = 1\n");
        assert_eq!(found["app/a.txt"], "one\n");
        assert_eq!(layer.identity().unwrap(), Some(hashed), "the same bytes, the same identity");
    }

    #[test]
    fn order_of_adding_does_not_change_bytes_and_parents_are_added() {
        let app = Owner { uid: 1000, gid: 1000 };
        let mut a = LayerBuilder::new(0, Owner::ROOT);
        a.bytes("app/b.py", b"b".to_vec(), app, 0o644).bytes("app/a.py", b"a".to_vec(), app, 0o755);
        let mut b = LayerBuilder::new(0, Owner::ROOT);
        b.bytes("/app/a.py", b"a".to_vec(), app, 0o755).bytes("app/b.py", b"b".to_vec(), app, 0o644);
        let ta = a.write_tar(Vec::new()).unwrap();
        assert_eq!(ta, b.write_tar(Vec::new()).unwrap());
        let list = entries(&ta);
        assert_eq!(list[0], ("app/".to_string(), 0, 0, 0o755, 0));
        assert_eq!(list[1], ("app/a.py".to_string(), 1000, 1000, 0o755, 0));
        assert_eq!(list[2].0, "app/b.py");
    }

    /// A fixed input must always give these digests. A change of compressor,
    /// level, header or tar layout changes them, and with them every layer
    /// digest users have: that must be a deliberate decision, not an accident.
    #[test]
    fn golden_digests_of_a_fixed_layer() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let mut l = LayerBuilder::new(1_700_000_000, Owner::ROOT);
        let app = Owner { uid: 1000, gid: 1000 };
        l.bytes("app/main.py", b"print('hello')\n".repeat(100), app, 0o644)
            .bytes("app/run.sh", b"#!/bin/sh\nexec python3 main.py\n".to_vec(), app, 0o755)
            .symlink("app/latest", "main.py", app)
            .dir("app/empty", app, 0o755);
        let blob = l.write_gzip(&store).unwrap();
        assert_eq!(blob.diff_id.as_str(), GOLDEN_DIFF_ID, "the tar layout changed");
        assert_eq!(blob.digest.as_str(), GOLDEN_DIGEST, "the gzip output changed");
    }

    const GOLDEN_DIFF_ID: &str = "sha256:154a526485c0be9ebb6a1efb3a44c5bb6c260c04bf027a31a1e34d7a17838785";
    const GOLDEN_DIGEST: &str = "sha256:834f25fcca821a675d046a801f36486dddf65a265c49ea8133dde6f9ea0b4f8d";

    #[test]
    fn zstd_layers_round_trip_and_are_reproducible() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let mut l = LayerBuilder::new(0, Owner::ROOT);
        l.bytes("etc/hello", b"hello\n".repeat(1000), Owner::ROOT, 0o644);
        let a = l.write_zstd(&store).unwrap();
        assert_eq!(a.digest, l.write_zstd(&store).unwrap().digest);
        assert_eq!(a.diff_id, l.write_gzip(&store).unwrap().diff_id, "the same tar underneath");
        let mut tar = Vec::new();
        zstd::stream::read::Decoder::new(std::fs::File::open(&a.path).unwrap()).unwrap().read_to_end(&mut tar).unwrap();
        assert_eq!(Digest::of(&tar), a.diff_id);
        assert!(a.descriptor_in(crate::Format::Docker).is_err());
        assert_eq!(a.descriptor_in(crate::Format::Oci).unwrap().media_type, crate::media::OCI_LAYER_ZSTD);
    }

    #[test]
    fn non_ascii_names_round_trip() {
        let mut l = LayerBuilder::new(0, Owner::ROOT);
        l.bytes("app/données/日本語.txt", b"x".to_vec(), Owner::ROOT, 0o644);
        let names: Vec<String> = entries(&l.write_tar(Vec::new()).unwrap()).into_iter().map(|e| e.0).collect();
        assert!(names.contains(&"app/données/日本語.txt".to_string()), "{names:?}");
    }

    /// A sparse file just over 8 GiB: its size does not fit ustar's 11 octal
    /// digits, so it needs a PAX size record. Only the header is checked; the
    /// stream is counted, not stored.
    #[test]
    fn files_over_8_gib_get_a_pax_size() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        let size = (8u64 << 30) + 1;
        std::fs::File::create(&big).unwrap().set_len(size).unwrap();
        let mut l = LayerBuilder::new(0, Owner::ROOT);
        l.file("big.bin", &big, Owner::ROOT, 0o644);
        struct Head {
            head: Vec<u8>,
            total: u64,
        }
        impl Write for Head {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                if self.head.len() < 4096 {
                    self.head.extend_from_slice(&buf[..buf.len().min(4096 - self.head.len())]);
                }
                self.total += buf.len() as u64;
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let out = l.write_tar(Head { head: Vec::new(), total: 0 }).unwrap();
        assert!(out.total > size, "the whole file went through: {}", out.total);
        let text = String::from_utf8_lossy(&out.head);
        assert!(text.contains(&format!("size={size}")), "no PAX size record");
    }

    #[test]
    fn long_paths_survive_through_pax() {
        let long = format!("app/{}/file.txt", "d".repeat(300));
        let mut l = LayerBuilder::new(7, Owner::ROOT);
        l.bytes(&long, b"x".to_vec(), Owner::ROOT, 0o644);
        let t = l.write_tar(Vec::new()).unwrap();
        let names: Vec<String> = entries(&t).into_iter().map(|e| e.0).collect();
        assert!(names.contains(&long), "{names:?}");
    }

    #[test]
    fn gzip_blob_is_reproducible_and_digests_are_consistent() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let mut l = LayerBuilder::new(0, Owner::ROOT);
        l.bytes("etc/hello", b"hello\n".to_vec(), Owner::ROOT, 0o644).symlink("etc/link", "hello", Owner::ROOT);
        let one = l.write_gzip(&store).unwrap();
        let bytes = std::fs::read(&one.path).unwrap();
        assert_eq!(Digest::of(&bytes), one.digest);
        assert_eq!(bytes.len() as u64, one.size);
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(bytes.as_slice()).read_to_end(&mut tar).unwrap();
        assert_eq!(Digest::of(&tar), one.diff_id);
        let other = tempfile::tempdir().unwrap();
        assert_eq!(l.write_gzip(&BlobStore::open(other.path()).unwrap()).unwrap().digest, one.digest);
    }
}
