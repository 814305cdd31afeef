//! What the cache holds, and pruning it: by age, then least recently used
//! first until it fits a size.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::{Bucket, Cache, Error, io};

/// What is in the cache.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Info {
    /// The cache's directory.
    pub root: PathBuf,
    /// Each bucket directory, of this format or another.
    pub buckets: Vec<BucketInfo>,
    /// Bytes in all of them.
    pub bytes: u64,
    /// Entries in all of them.
    pub entries: u64,
}

/// One bucket directory.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BucketInfo {
    /// Its directory name, e.g. `blobs-v1`.
    pub name: String,
    /// Files in it.
    pub entries: u64,
    /// Their bytes.
    pub bytes: u64,
    /// False for buckets of another cache format (another oxbuild version).
    pub current: bool,
}

/// What to prune.
#[derive(Debug, Clone, Default)]
pub struct Prune {
    /// Remove least recently used entries until the cache is at most this big.
    pub max_size: Option<u64>,
    /// Remove entries not used for this long.
    pub older_than: Option<Duration>,
}

/// What pruning did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Pruned {
    /// Entries removed.
    pub removed: u64,
    /// Bytes freed.
    pub freed: u64,
    /// Bytes left.
    pub remaining: u64,
}

struct File {
    path: PathBuf,
    bytes: u64,
    used: SystemTime,
}

fn walk(dir: &Path, out: &mut Vec<File>) -> Result<(), Error> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io(dir))?;
        let meta = match entry.path().symlink_metadata() {
            Ok(m) => m,
            // Removed by someone else meanwhile.
            Err(_) => continue,
        };
        if meta.is_dir() {
            walk(&entry.path(), out)?;
        } else {
            out.push(File {
                path: entry.path(),
                bytes: meta.len(),
                used: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            });
        }
    }
    Ok(())
}

impl Cache {
    /// The bucket directories at the root, with their files.
    fn contents(&self) -> Result<Vec<(String, Vec<File>)>, Error> {
        let mut out = Vec::new();
        let entries = fs::read_dir(&self.root).map_err(io(&self.root))?;
        let mut dirs: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_dir()).collect();
        dirs.sort();
        for dir in dirs {
            let mut files = Vec::new();
            walk(&dir, &mut files)?;
            out.push((dir.file_name().unwrap_or_default().to_string_lossy().into_owned(), files));
        }
        Ok(out)
    }

    /// What the cache holds, per bucket.
    pub fn info(&self) -> Result<Info, Error> {
        let current: Vec<String> = Bucket::ALL.iter().map(|b| b.dir()).collect();
        let buckets: Vec<BucketInfo> = self
            .contents()?
            .into_iter()
            .map(|(name, files)| BucketInfo {
                current: current.contains(&name),
                entries: files.len() as u64,
                bytes: files.iter().map(|f| f.bytes).sum(),
                name,
            })
            .collect();
        Ok(Info {
            root: self.root.clone(),
            bytes: buckets.iter().map(|b| b.bytes).sum(),
            entries: buckets.iter().map(|b| b.entries).sum(),
            buckets,
        })
    }

    /// Removes entries not used for `older_than`, then the least recently used
    /// ones until the cache is at most `max_size`. Leftover partial files of
    /// interrupted writes go too. Hold [`Cache::lock_exclusive`] while calling
    /// it, so that no running build loses what it is using.
    pub fn prune(&self, what: &Prune) -> Result<Pruned, Error> {
        let now = SystemTime::now();
        let mut files: Vec<File> = self.contents()?.into_iter().flat_map(|(_, files)| files).collect();
        files.sort_by_key(|f| f.used);
        let mut total: u64 = files.iter().map(|f| f.bytes).sum();
        let mut done = Pruned::default();
        for f in files {
            let partial = f.path.file_name().is_some_and(|n| n.to_string_lossy().starts_with(".partial-"));
            let stale = what.older_than.is_some_and(|age| now.duration_since(f.used).unwrap_or_default() >= age);
            let too_big = what.max_size.is_some_and(|max| total > max);
            if !(partial || stale || too_big) {
                continue;
            }
            match fs::remove_file(&f.path) {
                Ok(()) => {
                    done.removed += 1;
                    done.freed += f.bytes;
                    total -= f.bytes;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => total -= f.bytes,
                Err(e) => return Err(io(&f.path)(e)),
            }
        }
        done.remaining = total;
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn aged(path: &Path, bytes: usize, age: Duration) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, vec![0u8; bytes]).unwrap();
        fs::File::open(path).unwrap().set_modified(SystemTime::now() - age).unwrap();
    }

    #[test]
    fn prunes_by_age_then_least_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let blobs = cache.bucket(Bucket::Blobs).unwrap();
        let hour = Duration::from_secs(3600);
        aged(&blobs.join("sha256/old"), 100, 48 * hour);
        aged(&blobs.join("sha256/older-used"), 100, 5 * hour);
        aged(&blobs.join("sha256/recent"), 100, hour);
        aged(&dir.path().join("blobs-v0/sha256/legacy"), 100, 2 * hour);
        aged(&blobs.join(".partial-x"), 10, Duration::ZERO);

        let info = cache.info().unwrap();
        assert_eq!((info.entries, info.bytes), (5, 410));
        let legacy = info.buckets.iter().find(|b| b.name == "blobs-v0").unwrap();
        assert!(!legacy.current);

        let pruned = cache.prune(&Prune { older_than: Some(24 * hour), max_size: None }).unwrap();
        assert_eq!((pruned.removed, pruned.freed, pruned.remaining), (2, 110, 300));
        assert!(!blobs.join("sha256/old").exists() && !blobs.join(".partial-x").exists());

        // Least recently used first: the 5-hour-old one, then the legacy one.
        let pruned = cache.prune(&Prune { max_size: Some(150), older_than: None }).unwrap();
        assert_eq!((pruned.removed, pruned.remaining), (2, 100));
        assert!(blobs.join("sha256/recent").exists());
        assert!(!blobs.join("sha256/older-used").exists());

        // Using an entry makes it recent again.
        aged(&blobs.join("sha256/a"), 100, 3 * hour);
        crate::touch(&blobs.join("sha256/a"));
        cache.prune(&Prune { max_size: Some(100), older_than: None }).unwrap();
        assert!(blobs.join("sha256/a").exists() && !blobs.join("sha256/recent").exists());
    }
}
