//! `oxbuild cache info` and `oxbuild cache prune`, and the size limit every
//! command keeps the cache under when it finishes.

use std::time::Duration;

use oxbuild_cache::{Cache, DEFAULT_MAX_SIZE, Prune};
use serde_json::json;

use crate::build::{cache, parse_size};
use crate::cli::{CacheArgs, CacheCommand};
use crate::progress::size;
use crate::report::{Failure, Reporter};

/// The size limit: `OXBUILD_CACHE_MAX_SIZE`, else 10 GiB.
pub fn max_size() -> Result<u64, Failure> {
    match std::env::var("OXBUILD_CACHE_MAX_SIZE") {
        Ok(v) if !v.trim().is_empty() => parse_size(&v, "OXBUILD_CACHE_MAX_SIZE"),
        _ => Ok(DEFAULT_MAX_SIZE),
    }
}

/// Keeps the cache under its size limit, least recently used first (see
/// `Cache::keep_under` for when it is measured). Done only when no other
/// oxbuild is using the cache; it is never an error, since the command's
/// own work is done.
pub fn enforce_limit(cache: &Cache, out: Reporter) {
    let Ok(max) = max_size() else { return };
    match cache.keep_under(max) {
        Ok(Some(p)) if p.removed > 0 => {
            out.detail(format!("cache over {}: removed {} entries ({})", size(max), p.removed, size(p.freed)))
        }
        Ok(_) => {}
        Err(e) => out.warn(format!("could not keep the cache under {}: {e}", size(max))),
    }
}

pub fn run(args: CacheArgs, out: Reporter) -> Result<(), Failure> {
    let cache = cache(&out)?;
    match args.command {
        CacheCommand::Info => {
            let info = cache.info().map_err(Failure::output)?;
            let max = max_size()?;
            let mut human = vec![
                format!("cache  {}", info.root.display()),
                format!("size   {} in {} entries (limit {})", size(info.bytes), info.entries, size(max)),
            ];
            for b in &info.buckets {
                let note = if b.current { "" } else { "  (another oxbuild version's format)" };
                human.push(format!("  {:14} {:>10}  {:>7} entries{note}", b.name, size(b.bytes), b.entries));
            }
            out.result(&json!({"ok": true, "info": info, "max_size": max}), &human);
        }
        CacheCommand::Prune { max_size, older_than } => {
            let max_size = max_size.as_deref().map(|s| parse_size(s, "--max-size")).transpose()?;
            let older_than: Option<Duration> = older_than
                .as_deref()
                .map(|d| {
                    humantime::parse_duration(d)
                        .map_err(|e| Failure::config(format!("--older-than `{d}`: {e}; write it like 30d, 12h or 90m")))
                })
                .transpose()?;
            let what = Prune { max_size: max_size.or(if older_than.is_none() { Some(0) } else { None }), older_than };
            let lock = match cache.lock_exclusive(false).map_err(Failure::output)? {
                Some(lock) => lock,
                None => {
                    out.step("waiting for the oxbuild builds using the cache to finish");
                    cache.lock_exclusive(true).map_err(Failure::output)?.expect("a waiting lock is taken")
                }
            };
            let pruned = cache.prune(&what).map_err(Failure::output)?;
            drop(lock);
            let human = vec![format!(
                "removed {} entries ({}); {} left",
                pruned.removed,
                size(pruned.freed),
                size(pruned.remaining)
            )];
            out.result(&json!({"ok": true, "pruned": pruned}), &human);
        }
    }
    Ok(())
}
