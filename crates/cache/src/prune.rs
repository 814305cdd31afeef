//! What the cache holds, and pruning it: by age, then least recently used
//! first until it fits a size; [`Cache::keep_under`] after each command.

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

/// How long a measurement of the whole cache is trusted, however little was
/// counted since: growth no counter sees (files written by hand, other
/// versions of oxbuild) is found within this.
const MEASURED_FOR: Duration = Duration::from_secs(3600);

/// What the last measurement found, and what was counted since
/// (`.usage.json` at the cache's root).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Usage {
    /// Bytes the cache held when measured.
    bytes: u64,
    /// Bytes counted as added since then.
    grown: u64,
    /// When it was measured (seconds since the epoch).
    measured: u64,
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Cache {
    fn usage_path(&self) -> PathBuf {
        self.root.join(".usage.json")
    }

    fn write_usage(&self, usage: &Usage) {
        // A record that cannot be written only makes the next command measure.
        let Ok(mut tmp) = tempfile::Builder::new().prefix(".partial-usage-").tempfile_in(&self.root) else { return };
        let bytes = serde_json::to_vec(usage).expect("usage serialises");
        if std::io::Write::write_all(&mut tmp, &bytes).is_ok() {
            let _ = tmp.persist(self.usage_path());
        }
    }

    /// Keeps the cache at most `max` bytes, least recently used first, after
    /// a command. Measuring means reading the size of every file in it (a few
    /// milliseconds for a warm cache, most of a rebuild's own work), so it is
    /// measured only when the growth counted since the last measurement
    /// (blobs, entries, unpacked kits, by every command) could have taken
    /// it over `max`, or when that measurement is an hour old. Does nothing
    /// but count while another command holds the cache. Returns what was
    /// pruned, when the cache was measured.
    pub fn keep_under(&self, max: u64) -> Result<Option<Pruned>, Error> {
        let grown = self.grown.swap(0, std::sync::atomic::Ordering::Relaxed);
        let usage: Option<Usage> = fs::read(self.usage_path()).ok().and_then(|b| serde_json::from_slice(&b).ok());
        let due = usage.as_ref().is_none_or(|u| {
            now_secs().saturating_sub(u.measured) >= MEASURED_FOR.as_secs()
                || u.bytes.saturating_add(u.grown).saturating_add(grown) > max
        });
        let held = if due { self.lock_exclusive(false)? } else { None };
        let Some(_held) = held else {
            // Another command may add its own count at the same moment and
            // one of the two be lost: the hourly measurement makes up for it.
            // A command that added nothing (an inspect, a rebuild of the
            // same image) leaves the record as it is.
            if grown > 0 || usage.is_none() {
                let usage = usage.unwrap_or_default();
                self.write_usage(&Usage { grown: usage.grown.saturating_add(grown), ..usage });
            }
            return Ok(None);
        };
        let bytes = self.info()?.bytes;
        if bytes > max {
            return self.prune(&Prune { max_size: Some(max), older_than: None }).map(Some);
        }
        self.write_usage(&Usage { bytes, grown: 0, measured: now_secs() });
        Ok(Some(Pruned { remaining: bytes, ..Pruned::default() }))
    }

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
        self.write_usage(&Usage { bytes: total, grown: 0, measured: now_secs() });
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
    fn the_limit_measures_only_when_counted_growth_could_break_it_or_an_hour_passed() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let blobs = cache.bucket(Bucket::Blobs).unwrap();
        // Never measured: measured now.
        aged(&blobs.join("sha256/a"), 100, Duration::from_secs(60));
        let first = cache.keep_under(1000).unwrap().expect("measured");
        assert_eq!((first.removed, first.remaining), (0, 100));

        // A file no counter saw does not make the next command measure,
        // and a command that counted nothing leaves the record as it was...
        aged(&blobs.join("sha256/unseen"), 2000, Duration::from_secs(30));
        let written = fs::metadata(cache.usage_path()).unwrap().modified().unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert!(cache.keep_under(1000).unwrap().is_none());
        assert!(blobs.join("sha256/unseen").exists());
        assert_eq!(fs::metadata(cache.usage_path()).unwrap().modified().unwrap(), written);

        // ...counted growth that could pass the limit does.
        let store = cache.blobs().unwrap();
        store.insert_bytes(&[7u8; 950]).unwrap();
        let pruned = cache.keep_under(1000).unwrap().expect("counted growth passed the limit");
        assert!(pruned.removed >= 1 && pruned.remaining <= 1000, "{pruned:?}");
        assert!(!blobs.join("sha256/a").exists(), "least recently used first");

        // Growth counted while another command holds the cache is kept for later.
        aged(&blobs.join("sha256/b"), 10, Duration::from_secs(10));
        cache.note_growth(600);
        let building = cache.lock_shared().unwrap();
        assert!(cache.keep_under(1000).unwrap().is_none());
        drop(building);
        cache.note_growth(600);
        assert!(cache.keep_under(1000).unwrap().is_some(), "600 + 600 counted over two commands");

        // A measurement an hour old is taken again, however little was counted.
        let usage = cache.usage_path();
        let mut record: serde_json::Value = serde_json::from_slice(&fs::read(&usage).unwrap()).unwrap();
        assert!(cache.keep_under(1 << 30).unwrap().is_none());
        record["measured"] = serde_json::json!(now_secs() - 2 * 3600);
        fs::write(&usage, record.to_string()).unwrap();
        assert!(cache.keep_under(1 << 30).unwrap().is_some());
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
