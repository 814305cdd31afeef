//! oxbuild's one cache, shared by every command (as `uv-cache` is for uv).
//!
//! It lives under `OXBUILD_CACHE_DIR` (default `$XDG_CACHE_HOME/oxbuild` or
//! `~/.cache/oxbuild`) and holds one directory per [`Bucket`], each named with
//! the cache [`FORMAT`], so that runners of different oxbuild versions sharing
//! a cache never misread each other's entries:
//!
//! | bucket | holds |
//! |---|---|
//! | `blobs` | layers, configs and wheels, content-addressed and verified ([`BlobStore`]) |
//! | `scans` | what a build read of a base image (accounts, interpreter, libc), by its layer digests |
//! | `layers` | finished dependency layers, by lock key |
//! | `index` | package-index metadata |
//! | `locations` | which registry repositories hold which blob, so that pushes mount instead of uploading |
//! | `interpreters` | which blob holds the files a base's Python needs to compile bytecode (or build sdists) outside the image |
//! | `built` | which blob holds the wheel built from a sdist, by everything that went into it |
//! | `tmp` | scratch files (archives for `podman load`) |
//!
//! Entries are written atomically (a temporary file renamed into place) and
//! JSON entries carry the format they were written with. Reading an entry
//! marks it used (its modification time), which [`Cache::prune`] follows,
//! least recently used first.
//!
//! Builds hold a shared [`Lock`] while they run; pruning takes it exclusively,
//! so it waits for running builds instead of deleting what they are using.
//!
//! ```no_run
//! let cache = oxbuild_cache::Cache::open(oxbuild_cache::Cache::default_root())?;
//! let _building = cache.lock_shared()?;
//! let blobs = cache.blobs()?;
//! # Ok::<(), oxbuild_cache::Error>(())
//! ```

mod prune;

use std::fs;
use std::path::{Path, PathBuf};

use oxbuild_image::{BlobStore, Digest};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use prune::{BucketInfo, Info, Prune, Pruned};

/// The cache's format. Bumped when an entry's meaning changes; each format
/// has its own bucket directories, so old and new runners can share a cache.
pub const FORMAT: u32 = 1;

/// The size the cache is kept under when nothing else is configured: 10 GiB.
pub const DEFAULT_MAX_SIZE: u64 = 10 << 30;

/// A cache problem, naming the path.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory of the cache could not be used.
    #[error("cache {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The blob store failed.
    #[error(transparent)]
    Image(#[from] oxbuild_image::Error),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.display().to_string(), source }
}

/// The kinds of entry, each in a directory of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    /// Content-addressed blobs.
    Blobs,
    /// Base-image scans.
    Scans,
    /// Dependency layers' records.
    Layers,
    /// Package-index metadata.
    Index,
    /// Which repositories hold which blobs.
    Locations,
    /// The files a base's interpreter needs to run outside the image.
    Interpreters,
    /// Wheels built from sdists, by a key of what went into them.
    Built,
    /// Scratch files.
    Tmp,
}

impl Bucket {
    /// Every bucket.
    pub const ALL: [Bucket; 8] = [
        Bucket::Blobs,
        Bucket::Scans,
        Bucket::Layers,
        Bucket::Index,
        Bucket::Locations,
        Bucket::Interpreters,
        Bucket::Built,
        Bucket::Tmp,
    ];

    /// The bucket's name, as `cache info` shows it.
    pub fn name(self) -> &'static str {
        match self {
            Bucket::Blobs => "blobs",
            Bucket::Scans => "scans",
            Bucket::Layers => "layers",
            Bucket::Index => "index",
            Bucket::Locations => "locations",
            Bucket::Interpreters => "interpreters",
            Bucket::Built => "built",
            Bucket::Tmp => "tmp",
        }
    }

    /// The directory name: the bucket's name and the cache format.
    fn dir(self) -> String {
        format!("{}-v{FORMAT}", self.name())
    }
}

/// The cache at one root. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
    /// Bytes this process added to the cache, as far as they are counted
    /// (blobs, JSON entries, [`Cache::note_growth`]): see [`Cache::keep_under`].
    grown: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// A JSON entry as stored: the format it was written with, and the value.
#[derive(Serialize, serde::Deserialize)]
struct Entry<T> {
    format: u32,
    value: T,
}

impl Cache {
    /// `OXBUILD_CACHE_DIR`, else `$XDG_CACHE_HOME/oxbuild`, else
    /// `~/.cache/oxbuild`, else a directory under the system's temporary one.
    pub fn default_root() -> PathBuf {
        if let Some(dir) = std::env::var_os("OXBUILD_CACHE_DIR").filter(|d| !d.is_empty()) {
            return PathBuf::from(dir);
        }
        std::env::var_os("XDG_CACHE_HOME")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").filter(|d| !d.is_empty()).map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_else(std::env::temp_dir)
            .join("oxbuild")
    }

    /// The default cache ([`Cache::default_root`]), opened and checked to be
    /// writable, and a note for the user when it is not where they would
    /// look. A locked-down pod (read-only root filesystem, a random uid,
    /// no `HOME`) cannot write `~/.cache`: then the cache is a directory
    /// under the system's temporary one for this run, and the note says so.
    /// An `OXBUILD_CACHE_DIR` that cannot be written is an error: it was asked for.
    pub fn open_default() -> Result<(Cache, Option<String>), Error> {
        let root = Cache::default_root();
        let asked = std::env::var_os("OXBUILD_CACHE_DIR").is_some_and(|d| !d.is_empty());
        let usable = Cache::open(&root).and_then(|c| c.writable().map(|()| c));
        match usable {
            Ok(cache) => {
                let homeless = !asked
                    && std::env::var_os("XDG_CACHE_HOME").is_none_or(|d| d.is_empty())
                    && std::env::var_os("HOME").is_none_or(|d| d.is_empty());
                let note = homeless.then(|| {
                    format!(
                        "no OXBUILD_CACHE_DIR, XDG_CACHE_HOME or HOME: caching in {}; set OXBUILD_CACHE_DIR to keep the cache elsewhere",
                        root.display()
                    )
                });
                Ok((cache, note))
            }
            Err(Error::Io { path, source }) if asked => {
                Err(Error::Io { path: format!("{path} (OXBUILD_CACHE_DIR; make it a writable directory)"), source })
            }
            Err(e) if asked => Err(e),
            Err(e) => {
                // SAFETY: getuid has no preconditions and cannot fail.
                let uid = unsafe { libc::getuid() };
                let fallback = std::env::temp_dir().join(format!("oxbuild-cache-{uid}"));
                let cache = Cache::open(&fallback)?;
                cache.writable()?;
                Ok((
                    cache,
                    Some(format!(
                        "{e}; using {} for this run instead: set OXBUILD_CACHE_DIR to a writable directory (a volume in a pod) to keep the cache between runs",
                        fallback.display()
                    )),
                ))
            }
        }
    }

    /// Ok when a file can be created in the cache's directory.
    fn writable(&self) -> Result<(), Error> {
        tempfile::Builder::new()
            .prefix(".writable-")
            .tempfile_in(&self.root)
            .map(drop)
            .map_err(|source| Error::Io { path: self.root.display().to_string(), source })
    }

    /// Opens (creating) the cache at `root`. A relative root is made
    /// absolute here, against the current directory: the paths the cache
    /// hands out (an interpreter kit's loader, say) are used by processes
    /// that run elsewhere.
    pub fn open(root: impl Into<PathBuf>) -> Result<Cache, Error> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(io(&root))?;
        let root = std::path::absolute(&root).map_err(io(&root))?;
        Ok(Cache { root, grown: Default::default() })
    }

    /// The cache's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of `bucket` (created on first use).
    pub fn bucket(&self, bucket: Bucket) -> Result<PathBuf, Error> {
        let dir = self.root.join(bucket.dir());
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        Ok(dir)
    }

    /// The blob store, in the `blobs` bucket.
    pub fn blobs(&self) -> Result<BlobStore, Error> {
        Ok(BlobStore::open(self.bucket(Bucket::Blobs)?)?.counting(self.grown.clone()))
    }

    /// Counts `bytes` written into a bucket by hand (an unpacked kit), so
    /// that [`Cache::keep_under`] knows the cache grew.
    pub fn note_growth(&self, bytes: u64) {
        self.grown.fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    fn entry_path(&self, bucket: Bucket, key: &str) -> Result<PathBuf, Error> {
        Ok(self.bucket(bucket)?.join(format!("{}.json", sanitize(key))))
    }

    /// The JSON entry `key` of `bucket`, if there is one of this format; reading it marks it used.
    pub fn get<T: DeserializeOwned>(&self, bucket: Bucket, key: &str) -> Option<T> {
        let path = self.entry_path(bucket, key).ok()?;
        let bytes = fs::read(&path).ok()?;
        let entry: Entry<T> = serde_json::from_slice(&bytes).ok()?;
        if entry.format != FORMAT {
            return None;
        }
        touch(&path);
        Some(entry.value)
    }

    /// Writes the JSON entry `key` of `bucket`, atomically: a reader sees the
    /// old entry or the new one, never part of either.
    pub fn put<T: Serialize>(&self, bucket: Bucket, key: &str, value: &T) -> Result<(), Error> {
        let path = self.entry_path(bucket, key)?;
        let dir = path.parent().expect("an entry has a bucket");
        let bytes = serde_json::to_vec(&Entry { format: FORMAT, value }).expect("cache entries serialise");
        let mut tmp = tempfile::Builder::new().prefix(".partial-").tempfile_in(dir).map_err(io(dir))?;
        std::io::Write::write_all(&mut tmp, &bytes).map_err(io(&path))?;
        tmp.persist(&path).map_err(|e| Error::Io { path: path.display().to_string(), source: e.error })?;
        self.note_growth(bytes.len() as u64);
        Ok(())
    }

    /// Repositories (`registry/repository`) this machine has seen holding `digest`.
    pub fn locations(&self, digest: &Digest) -> Vec<String> {
        self.get(Bucket::Locations, digest.hex()).unwrap_or_default()
    }

    /// Records that `repository` holds `digest`. Two runs recording at once
    /// may lose one record, which only costs a later push an upload.
    pub fn add_location(&self, digest: &Digest, repository: &str) {
        let mut known = self.locations(digest);
        if known.iter().any(|r| r == repository) {
            return;
        }
        known.insert(0, repository.to_string());
        // A blob seen in many repositories needs only a few to mount from.
        known.truncate(8);
        let _ = self.put(Bucket::Locations, digest.hex(), &known);
    }

    /// A shared lock, held by a build while it uses the cache.
    pub fn lock_shared(&self) -> Result<Lock, Error> {
        let file = self.lock_file()?;
        file.lock_shared().map_err(io(&self.lock_path()))?;
        Ok(Lock { _file: file })
    }

    /// The exclusive lock that pruning takes: waits while builds hold the
    /// shared one, unless `wait` is false (then None when it is taken).
    pub fn lock_exclusive(&self, wait: bool) -> Result<Option<Lock>, Error> {
        let file = self.lock_file()?;
        if wait {
            file.lock().map_err(io(&self.lock_path()))?;
            return Ok(Some(Lock { _file: file }));
        }
        match file.try_lock() {
            Ok(()) => Ok(Some(Lock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(io(&self.lock_path())(e)),
        }
    }

    fn lock_path(&self) -> PathBuf {
        self.root.join(".lock")
    }

    fn lock_file(&self) -> Result<fs::File, Error> {
        let path = self.lock_path();
        fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(io(&path))
    }
}

/// A held cache lock, released when dropped.
#[derive(Debug)]
pub struct Lock {
    _file: fs::File,
}

pub use oxbuild_image::store::touch;

/// A key as a file name: anything but `[A-Za-z0-9._-]` becomes `_`.
fn sanitize(key: &str) -> String {
    key.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relative_root_is_made_absolute() {
        let dir = tempfile::tempdir().unwrap();
        let was = std::env::current_dir().unwrap();
        std::env::set_current_dir(dir.path()).unwrap();
        let cache = Cache::open("relative/cache");
        let here = std::env::current_dir().unwrap();
        std::env::set_current_dir(was).unwrap();
        let cache = cache.unwrap();
        assert_eq!(cache.root(), here.join("relative/cache"));
        assert!(cache.bucket(Bucket::Scans).unwrap().starts_with(here.join("relative/cache")));
    }

    #[test]
    fn entries_round_trip_and_other_formats_are_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        cache.put(Bucket::Scans, "abc", &vec!["x".to_string()]).unwrap();
        assert_eq!(cache.get::<Vec<String>>(Bucket::Scans, "abc"), Some(vec!["x".to_string()]));
        let path = cache.entry_path(Bucket::Scans, "abc").unwrap();
        assert!(path.starts_with(dir.path().join(format!("scans-v{FORMAT}"))), "{}", path.display());
        fs::write(&path, br#"{"format":999,"value":["x"]}"#).unwrap();
        assert_eq!(cache.get::<Vec<String>>(Bucket::Scans, "abc"), None);
        fs::write(&path, b"{garbled").unwrap();
        assert_eq!(cache.get::<Vec<String>>(Bucket::Scans, "abc"), None);
    }

    #[test]
    fn locations_are_remembered_once_each() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let d = Digest::of(b"layer");
        cache.add_location(&d, "127.0.0.1:5000/staging/app");
        cache.add_location(&d, "127.0.0.1:5000/prod/app");
        cache.add_location(&d, "127.0.0.1:5000/staging/app");
        assert_eq!(cache.locations(&d), vec!["127.0.0.1:5000/prod/app", "127.0.0.1:5000/staging/app"]);
        assert!(cache.locations(&Digest::of(b"other")).is_empty());
    }

    #[test]
    fn the_exclusive_lock_waits_for_shared_holders() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let building = cache.lock_shared().unwrap();
        let second = cache.lock_shared().unwrap();
        assert!(cache.lock_exclusive(false).unwrap().is_none(), "a build holds the cache");
        drop(building);
        assert!(cache.lock_exclusive(false).unwrap().is_none(), "another build still holds it");
        drop(second);
        assert!(cache.lock_exclusive(false).unwrap().is_some());
    }
}
