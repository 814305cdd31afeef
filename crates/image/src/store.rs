//! An on-disk, content-addressed blob store: `<root>/sha256/<hex>`.
//!
//! Blobs enter only through [`BlobStore::insert`] or a [`BlobWriter`], which
//! verify the digest before an atomic rename, so a blob in the store is always
//! whole and correct, and two builds writing the same blob at once cannot see
//! half a file.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::digest::Hasher;
use crate::{Digest, Error};

/// See the module docs.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
    /// Adds the bytes of every blob committed, when someone counts them
    /// (the cache, to know when it may have outgrown its size limit).
    grown: Option<Arc<AtomicU64>>,
}

impl BlobStore {
    /// Opens (creating) a store at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<BlobStore, Error> {
        let root = root.into();
        let dir = root.join("sha256");
        fs::create_dir_all(&dir).map_err(|e| Error::io(format!("creating the blob cache {}", dir.display()), e))?;
        Ok(BlobStore { root, grown: None })
    }

    /// This store, adding the size of every blob committed to `counter`.
    pub fn counting(self, counter: Arc<AtomicU64>) -> BlobStore {
        BlobStore { grown: Some(counter), ..self }
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob with `digest` lives (whether or not it is there yet).
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.root.join(digest.algorithm()).join(digest.hex())
    }

    /// True when the blob is in the store. A blob found is marked used (its
    /// modification time), so that pruning the cache removes the least
    /// recently used blobs first.
    pub fn contains(&self, digest: &Digest) -> bool {
        let path = self.path(digest);
        if !path.is_file() {
            return false;
        }
        touch(&path);
        true
    }

    /// Moves the file at `from` into the store as `digest`, after checking it.
    pub fn insert(&self, from: &Path, digest: &Digest) -> Result<PathBuf, Error> {
        let mut w = self.writer()?;
        let mut f = fs::File::open(from).map_err(|e| Error::io(format!("reading {}", from.display()), e))?;
        io::copy(&mut f, &mut w)
            .map_err(|e| Error::io(format!("copying {} into the blob cache", from.display()), e))?;
        let path = w.commit(digest)?;
        let _ = fs::remove_file(from);
        Ok(path)
    }

    /// Stores `bytes`, returning their digest.
    pub fn insert_bytes(&self, bytes: &[u8]) -> Result<Digest, Error> {
        let digest = Digest::of(bytes);
        if !self.contains(&digest) {
            let mut w = self.writer()?;
            w.write_all(bytes).map_err(|e| Error::io("writing into the blob cache", e))?;
            w.commit(&digest)?;
        }
        Ok(digest)
    }

    /// A writer for a blob whose digest is checked on [`BlobWriter::commit`].
    pub fn writer(&self) -> Result<BlobWriter, Error> {
        let file = tempfile::Builder::new()
            .prefix(".partial-")
            .tempfile_in(&self.root)
            .map_err(|e| Error::io(format!("creating a file in the blob cache {}", self.root.display()), e))?;
        Ok(BlobWriter {
            file: io::BufWriter::with_capacity(1 << 20, file),
            hasher: Hasher::new(),
            store: self.clone(),
            tee: None,
        })
    }
}

/// Where a copy of a blob's bytes goes as they are written (an upload that
/// streams the blob while it is made): best effort, never the blob's own
/// fate. The first write that fails drops it, and the blob is written whole.
pub type Tee = Box<dyn Write + Send>;

/// A blob being written into a [`BlobStore`]; dropped without commit, it leaves nothing.
pub struct BlobWriter {
    file: io::BufWriter<tempfile::NamedTempFile>,
    hasher: Hasher,
    store: BlobStore,
    tee: Option<Tee>,
}

impl BlobWriter {
    /// This writer, also copying every byte into `tee` (see [`Tee`]).
    pub fn teeing(mut self, tee: Option<Tee>) -> BlobWriter {
        self.tee = tee;
        self
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.hasher.len()
    }

    /// The digest of what was written so far (nothing is committed).
    pub fn digest(&self) -> Digest {
        self.hasher.clone().finish().0
    }

    /// Moves the content into place under the digest of what was written.
    pub fn commit_computed(self) -> Result<(Digest, PathBuf), Error> {
        let (digest, _) = self.hasher.clone().finish();
        let path = self.commit(&digest)?;
        Ok((digest, path))
    }

    /// Checks the content against `expected` and moves it into place.
    pub fn commit(self, expected: &Digest) -> Result<PathBuf, Error> {
        let size = self.hasher.len();
        let (actual, _) = self.hasher.finish();
        if &actual != expected {
            return Err(Error::Invalid(format!(
                "digest mismatch: expected {expected}, got {actual}; the blob was not stored"
            )));
        }
        let file = self.file.into_inner().map_err(|e| Error::io("writing into the blob cache", e.into_error()))?;
        let path = self.store.path(expected);
        file.persist(&path).map_err(|e| Error::io(format!("saving {}", path.display()), e.error))?;
        if let Some(grown) = &self.store.grown {
            grown.fetch_add(size, Ordering::Relaxed);
        }
        Ok(path)
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        if let Some(tee) = &mut self.tee
            && tee.write_all(&buf[..n]).is_err()
        {
            self.tee = None;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Marks a file used now, for least-recently-used pruning of the cache it
/// is in. A file that cannot be touched only ages sooner.
pub fn touch(path: &Path) {
    if let Ok(f) = fs::File::open(path) {
        let _ = f.set_modified(std::time::SystemTime::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mismatched_content_never_enters_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let mut w = store.writer().unwrap();
        w.write_all(b"corrupt").unwrap();
        let expected = Digest::of(b"original");
        let err = w.commit(&expected).unwrap_err().to_string();
        assert!(err.contains("digest mismatch"), "{err}");
        assert!(!store.contains(&expected));
        let leftovers: Vec<_> =
            fs::read_dir(dir.path()).unwrap().filter_map(|e| e.ok()).filter(|e| e.path().is_file()).collect();
        assert!(leftovers.is_empty(), "partial file left behind: {leftovers:?}");
    }

    #[test]
    fn bytes_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let d = store.insert_bytes(b"abc").unwrap();
        assert_eq!(fs::read(store.path(&d)).unwrap(), b"abc");
    }
}
