//! Hostile conditions and input: a full disk, and files that are garbled,
//! truncated, absurd or trying to escape. Each gets a clear error naming the
//! thing, no panic, and nothing written outside oxbuild's own directories.

mod common;

use std::path::Path;

use common::{Workspace, build_json, run};

/// A tmpfs of `size` mounted at `at` (this test runs as root, as CI does);
/// unmounted when dropped.
struct Tmpfs<'a> {
    at: &'a Path,
}

impl<'a> Tmpfs<'a> {
    fn mount(at: &'a Path, size: &str) -> Tmpfs<'a> {
        std::fs::create_dir_all(at).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mounting a tmpfs needs root (CI runs as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { at }
    }

    fn resize(&self, size: &str) {
        let status = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.at)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Tmpfs<'_> {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(self.at).status();
    }
}

/// Every file in the cache's blob store holds what its name says.
fn assert_blobs_intact(cache: &Path) {
    let dir = cache.join(format!("blobs-v{}", oxbuild_cache::FORMAT)).join("sha256");
    for entry in std::fs::read_dir(&dir).into_iter().flatten() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let hex = oxbuild_image::Digest::of(&bytes).hex().to_string();
        assert_eq!(path.file_name().unwrap().to_string_lossy(), hex, "a corrupt cache entry: {}", path.display());
    }
}

/// The cache on a full disk: at two sizes (full while the base's layers come
/// in, and full later, in the interpreter and dependency layers) the build
/// fails with an error that says the disk is full and where, leaves no
/// corrupt blob and no temporary file, and once there is room the next build
/// succeeds with the image a clean build makes.
#[test]
fn reliability_a_full_disk_under_the_cache_is_a_clear_error_and_the_next_build_succeeds() {
    let ws = common::offline_pyweb();
    let clean = build_json(ws.oxbuild().args(["build", "-q", "--base", &common::base()]).arg(ws.app()));
    for size in ["24M", "100M"] {
        let mnt = ws.tmp.path().join(format!("disk-{size}"));
        let disk = Tmpfs::mount(&mnt, size);
        let cache = mnt.join("cache");
        let build = || {
            run(ws
                .oxbuild()
                .env("OXBUILD_CACHE_DIR", &cache)
                .args(["build", "-q", "--base", &common::base()])
                .arg(ws.app()))
        };
        let (code, _, stderr) = build();
        assert_ne!(code, 0, "the disk of {size} is too small for a build");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(stderr.contains("No space left on device"), "the error says the disk is full: {stderr}");
        assert!(stderr.contains(&cache.display().to_string()), "and names where: {stderr}");
        assert_blobs_intact(&cache);
        let tmp = cache.join(format!("tmp-v{}", oxbuild_cache::FORMAT));
        let left: Vec<_> = std::fs::read_dir(&tmp).into_iter().flatten().map(|e| e.unwrap().path()).collect();
        assert!(left.is_empty(), "temporary files were left: {left:?}");

        disk.resize("600M");
        let (code, stdout, stderr) = build();
        assert_eq!(code, 0, "{stderr}");
        let again: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_default();
        let _ = again;
        let report = build_json(
            ws.oxbuild()
                .env("OXBUILD_CACHE_DIR", &cache)
                .args(["build", "-q", "--base", &common::base()])
                .arg(ws.app()),
        );
        assert_eq!(report["digest"], clean["digest"], "the same image as a clean build");
        assert_blobs_intact(&cache);
    }
}
