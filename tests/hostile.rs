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
    // 24M: full while the base comes in; 92M: the base fits (86 MB), its
    // interpreter kit and the dependency layer do not.
    for size in ["24M", "92M"] {
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

/// Asserts a clear failure: exit `code`, every needle in stderr, no panic.
fn refused(result: (i32, String, String), code: i32, needles: &[&str]) -> String {
    let (got, _, stderr) = result;
    assert_eq!(got, code, "{needles:?}: {stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"), "{stderr}");
    for n in needles {
        assert!(stderr.contains(n), "`{n}` is named: {stderr}");
    }
    stderr
}

/// oxbuild.toml garbled, cut short, binary or absurdly long: a config error
/// (exit 3) naming the file, never a panic.
#[test]
fn reliability_garbled_or_truncated_configs_are_named() {
    let ws = Workspace::new();
    let path = ws.app().join("oxbuild.toml");
    let good = std::fs::read(&path).unwrap();
    let deep = format!("[image]\nports = {}\n", "[".repeat(100_000));
    let variants: Vec<(&str, Vec<u8>)> = vec![
        ("cut short", good[..good.len() / 3].to_vec()),
        ("cut in a table name", b"[ima".to_vec()),
        ("binary", vec![0xff, 0xfe, 0x00, 0x9c, 0x80, 0x01]),
        ("a value of the wrong kind", b"[image]\nports = \"eighty\"\n".to_vec()),
        ("nested 100,000 deep", deep.into_bytes()),
    ];
    for (what, bytes) in variants {
        std::fs::write(&path, &bytes).unwrap();
        let result = run(ws.oxbuild().args(["build", "-q", "--base", &common::base()]).arg(ws.app()));
        eprintln!("variant: {what}");
        let stderr = refused(result, 3, &["oxbuild.toml"]);
        assert!(stderr.len() < 4096, "{what}: the error stays short: {} bytes", stderr.len());
    }
}

/// Locks garbled or cut short (requirements.txt, uv.lock, pylock.toml): a
/// config error naming the lock, never a panic and never a build without
/// the dependencies.
#[test]
fn reliability_garbled_or_truncated_locks_are_named() {
    let ws = common::offline_pyweb();
    let app = ws.app();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("requirements.txt", vec![0xff, 0xfe, b'\n', 0x80]),
        ("requirements.txt", b"gunicorn==23.0.0 --hash=sha256:".to_vec()),
        ("uv.lock", std::fs::read(app.join("uv.lock")).unwrap()[..200].to_vec()),
        ("pylock.toml", std::fs::read(app.join("pylock.toml")).unwrap()[..150].to_vec()),
    ];
    let original = std::fs::read_to_string(app.join("oxbuild.toml")).unwrap();
    for (file, bytes) in cases {
        let config = if file == "requirements.txt" {
            original.clone()
        } else {
            original.replace("requirements = \"requirements.txt\"", &format!("lock = \"{file}\""))
        };
        std::fs::write(app.join("oxbuild.toml"), config).unwrap();
        let kept = std::fs::read(app.join(file)).unwrap();
        std::fs::write(app.join(file), &bytes).unwrap();
        let result = run(ws.oxbuild().args(["build", "-q", "--base", &common::base()]).arg(&app));
        refused(result, 3, &[file]);
        std::fs::write(app.join(file), kept).unwrap();
    }
}

/// An OCI layout written by oxbuild, then damaged by `damage`: read as a
/// base and by `copy`, it fails with exit 4 naming `needles`.
fn damaged_layout(damage: impl Fn(&Path), needles: &[&str]) {
    let ws = Workspace::new();
    let layout = ws.tmp.path().join("layout");
    let dest = format!("oci:{}", layout.display());
    build_json(ws.oxbuild().args(["build", "-q", "--base", &common::base(), "--output", &dest]).arg(ws.app()));
    damage(&layout);
    let copy =
        run(ws.oxbuild().args(["copy", "-q", &dest]).arg(format!("oci:{}", ws.tmp.path().join("out").display())));
    refused(copy, 4, needles);
    let build = run(ws.oxbuild().args(["build", "-q", "--base", &dest]).arg(ws.app()));
    refused(build, 4, needles);
}

/// The manifest the layout's index.json points at, as JSON, and its path.
fn top_manifest(layout: &Path) -> (serde_json::Value, std::path::PathBuf) {
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let digest = index["manifests"][0]["digest"].as_str().unwrap().to_string();
    let path = common::blob_in(layout, &digest);
    (serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap(), path)
}

/// Stores `manifest` as a blob of the layout and points index.json at it.
fn replace_manifest(layout: &Path, manifest: &[u8]) {
    let digest = oxbuild_image::Digest::of(manifest);
    std::fs::write(common::blob_in(layout, &digest.to_string()), manifest).unwrap();
    let path = layout.join("index.json");
    let mut index: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    index["manifests"][0]["digest"] = serde_json::json!(digest.to_string());
    index["manifests"][0]["size"] = serde_json::json!(manifest.len());
    std::fs::write(path, serde_json::to_vec(&index).unwrap()).unwrap();
}

/// index.json cut short, or a manifest that is not JSON (under its own
/// correct digest): named.
#[test]
fn reliability_garbled_or_truncated_manifests_and_indexes_are_named() {
    damaged_layout(
        |layout| {
            let path = layout.join("index.json");
            let bytes = std::fs::read(&path).unwrap();
            std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        },
        &["index.json"],
    );
    damaged_layout(|layout| replace_manifest(layout, b"{\"schemaVersion\": 2, \"layers\": [tru"), &["manifest"]);
}

/// A descriptor claiming an absurd size (2^62 bytes) or the wrong digest:
/// refused by what it names, without trying to read or allocate that much.
#[test]
fn reliability_absurd_sizes_and_digest_mismatches_in_descriptors_are_refused() {
    damaged_layout(
        |layout| {
            let (mut manifest, _) = top_manifest(layout);
            manifest["layers"][0]["size"] = serde_json::json!(1u64 << 62);
            replace_manifest(layout, &serde_json::to_vec(&manifest).unwrap());
        },
        &["size"],
    );
    damaged_layout(
        |layout| {
            let (mut manifest, _) = top_manifest(layout);
            manifest["config"]["digest"] = serde_json::json!(format!("sha256:{}", "ab".repeat(32)));
            replace_manifest(layout, &serde_json::to_vec(&manifest).unwrap());
        },
        &["abababab"],
    );
}

/// Rewrites the archive at `from` into `to`, adding `extra` entries after its own.
fn with_extra_entries(from: &Path, to: &Path, extra: impl Fn(&mut tar::Builder<std::fs::File>)) {
    let mut out = tar::Builder::new(std::fs::File::create(to).unwrap());
    let mut archive = tar::Archive::new(std::fs::File::open(from).unwrap());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let mut header = entry.header().clone();
        let path = entry.path().unwrap().into_owned();
        out.append_data(&mut header, path, &mut entry).unwrap();
    }
    extra(&mut out);
    out.finish().unwrap();
}

/// OCI archives with entries that climb out with `..`, hard and symbolic
/// links out of the tree, device files and duplicate entries. oxbuild never
/// unpacks an archive onto disk (each blob goes into the store under its
/// digest), so links and devices are inert and nothing lands outside; an
/// escaping name and a duplicate are refused by name.
#[test]
fn reliability_hostile_archives_are_refused_or_inert_and_write_nothing_outside() {
    let ws = Workspace::new();
    let good = ws.tmp.path().join("good.tar");
    let dest = format!("oci-archive:{}", good.display());
    build_json(ws.oxbuild().args(["build", "-q", "--base", &common::base(), "--output", &dest]).arg(ws.app()));
    let copy = |archive: &Path| {
        let out = ws.tmp.path().join(format!("out-{}", archive.file_stem().unwrap().to_string_lossy()));
        let result = run(ws
            .oxbuild()
            .args(["copy", "-q"])
            .arg(format!("oci-archive:{}", archive.display()))
            .arg(format!("oci:{}", out.display())));
        (result, out)
    };
    let entry = |kind: tar::EntryType, size: u64| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(0o644);
        h
    };

    let escaping = ws.tmp.path().join("escaping.tar");
    with_extra_entries(&good, &escaping, |b| {
        let mut h = entry(tar::EntryType::Regular, 1);
        let name = b"../../escaped";
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_cksum();
        b.append(&h, &b"x"[..]).unwrap();
    });
    let ((code, _, stderr), _) = copy(&escaping);
    refused((code, String::new(), stderr), 4, &["../../escaped", "outside the archive"]);
    assert!(!ws.tmp.path().parent().unwrap().join("escaped").exists());

    let duplicate = ws.tmp.path().join("duplicate.tar");
    with_extra_entries(&good, &duplicate, |b| {
        let mut h = entry(tar::EntryType::Regular, 2);
        b.append_data(&mut h, "index.json", &b"{}"[..]).unwrap();
    });
    let ((code, _, stderr), _) = copy(&duplicate);
    refused((code, String::new(), stderr), 4, &["index.json", "appears twice"]);

    let inert = ws.tmp.path().join("inert.tar");
    with_extra_entries(&good, &inert, |b| {
        let mut h = entry(tar::EntryType::Link, 0);
        b.append_link(&mut h, "blobs/sha256/hardlink", "/etc/shadow").unwrap();
        let mut h = entry(tar::EntryType::Symlink, 0);
        b.append_link(&mut h, "blobs/sha256/symlink", "../../../../etc/passwd").unwrap();
        let mut h = entry(tar::EntryType::Char, 0);
        h.set_device_major(1).unwrap();
        h.set_device_minor(3).unwrap();
        b.append_data(&mut h, "blobs/sha256/null", std::io::empty()).unwrap();
    });
    let ((code, _, stderr), out) = copy(&inert);
    assert_eq!(code, 0, "links and devices are never followed or made: {stderr}");
    for entry in std::fs::read_dir(out.join("blobs/sha256")).unwrap() {
        let entry = entry.unwrap();
        assert!(entry.file_type().unwrap().is_file(), "only blobs: {}", entry.path().display());
        assert!(!["hardlink", "symlink", "null"].contains(&entry.file_name().to_str().unwrap()));
    }
}

/// A symlink loop on an include path is named as a loop; loops inside the
/// app are copied as the links they are (as `COPY` does), never followed;
/// a file the build cannot read (run as an unprivileged user) is named.
#[test]
fn reliability_symlink_loops_and_unreadable_app_files_are_named() {
    let ws = Workspace::new();
    let app = ws.app();
    std::os::unix::fs::symlink("b", app.join("plainweb/a")).unwrap();
    std::os::unix::fs::symlink("a", app.join("plainweb/b")).unwrap();
    std::os::unix::fs::symlink(".", app.join("plainweb/self")).unwrap();
    let layout = ws.tmp.path().join("layout");
    let report = build_json(
        ws.oxbuild()
            .args(["build", "-q", "--base", &common::base(), "--output"])
            .arg(format!("oci:{}", layout.display()))
            .arg(&app),
    );
    let app_layer = report["layers"].as_array().unwrap().last().unwrap()["digest"].as_str().unwrap().to_string();
    let entries = common::layer_entries(&common::blob_in(&layout, &app_layer));
    for link in ["app/plainweb/a", "app/plainweb/b", "app/plainweb/self"] {
        assert!(entries.iter().any(|(p, _)| p == link), "{link} is in the layer as a link: {entries:?}");
    }
    assert!(!entries.iter().any(|(p, _)| p.contains("self/")), "a loop is never followed");

    std::os::unix::fs::symlink("loop", app.join("loop")).unwrap();
    ws.edit_config("include = [\"plainweb\"]", "include = [\"plainweb\", \"loop/x\"]");
    let result = run(ws.oxbuild().args(["build", "-q", "--base", &common::base()]).arg(&app));
    refused(result, 4, &["loop/x", "loops"]);
    ws.edit_config("include = [\"plainweb\", \"loop/x\"]", "include = [\"plainweb\"]");

    // Unreadable: as root every file is readable, so run as `nobody`.
    let private = app.join("plainweb/private.txt");
    std::fs::write(&private, "not for the image").unwrap();
    std::fs::set_permissions(&private, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    let base = ws.tmp.path().join("base.tar");
    std::fs::copy(oxbuild_testkit::base_archive(), &base).unwrap();
    let cache = ws.tmp.path().join("nobody-cache");
    std::fs::create_dir(&cache).unwrap();
    let chown = std::process::Command::new("chown").arg("-R").arg("65534:65534").arg(&cache).status().unwrap();
    assert!(chown.success());
    std::fs::set_permissions(ws.tmp.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut cmd = std::process::Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_oxbuild"))
        .env("OXBUILD_CACHE_DIR", &cache)
        .env("HOME", &cache)
        .args(["build", "-q", "--base"])
        .arg(format!("oci-archive:{}", base.display()))
        .arg(&app);
    refused(run(&mut cmd), 4, &["private.txt", "Permission denied"]);
}

/// Files rewritten, resized and deleted while builds run: every build
/// either succeeds with each file in its app layer as it was at one moment, or
/// fails naming the file that changed or vanished. Never a torn file, never
/// a panic. (The writer never pauses, so most builds meet a change.)
#[test]
fn reliability_files_that_change_or_vanish_during_the_build_are_named() {
    let ws = Workspace::new();
    let app = ws.app();
    let hot = app.join("plainweb/hot.bin");
    let gone = app.join("plainweb/gone.txt");
    std::fs::write(&hot, vec![b'a'; 4 << 20]).unwrap();
    std::fs::write(&gone, "here").unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, hot, gone) = (stop.clone(), hot.clone(), gone.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (byte, len) = if n.is_multiple_of(2) { (b'b', 2 << 20) } else { (b'a', 4 << 20) };
                let _ = std::fs::write(&hot, vec![byte; len]);
                if n.is_multiple_of(3) {
                    let _ = std::fs::remove_file(&gone);
                } else {
                    let _ = std::fs::write(&gone, "here");
                }
                n += 1;
                // Apart by more than the kernel's timestamp tick (a few ms):
                // two rewrites of one size within one tick leave the same
                // mtime, which no reader can tell apart (see RELIABILITY.md).
                std::thread::sleep(std::time::Duration::from_millis(25));
            }
        })
    };
    // At least 8 builds, and on until one of them met a change (a build
    // that reads hot.bin between two rewrites ships it whole and is right):
    // how often a build meets the writer depends on how fast builds are.
    let mut changed = 0;
    for i in 0..40 {
        if i >= 8 && changed >= 1 {
            break;
        }
        let layout = ws.tmp.path().join(format!("layout-{i}"));
        let (code, stdout, stderr) = run(ws
            .oxbuild()
            .args(["build", "-q", "--json", "--base", &common::base(), "--output"])
            .arg(format!("oci:{}", layout.display()))
            .arg(&app));
        assert!(!stderr.contains("panicked"), "{stderr}");
        if code == 0 {
            let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
            let layer = report["layers"].as_array().unwrap().last().unwrap()["digest"].as_str().unwrap().to_string();
            if let Some(bytes) = common::layer_file(&common::blob_in(&layout, &layer), "app/plainweb/hot.bin") {
                // The file as it was at one moment: one version, or as much
                // of it as a write still under way had put there (a write
                // sets the file's time when it starts, so no reader can
                // tell it from a finished one; see RELIABILITY.md). Never a
                // mixture of two versions, never more than one holds.
                let one = |byte: u8, len: usize| bytes.len() <= len && bytes.iter().all(|b| *b == byte);
                let a = bytes.iter().filter(|b| **b == b'a').count();
                assert!(
                    one(b'a', 4 << 20) || one(b'b', 2 << 20),
                    "hot.bin shipped torn: {} bytes, {a} of them 'a'",
                    bytes.len()
                );
            }
        } else {
            assert_eq!(code, 4, "{stderr}");
            let named = stderr.contains("hot.bin") || stderr.contains("gone.txt");
            let said = ["changed while", "shrank while", "No such file"].iter().any(|w| stderr.contains(w));
            assert!(named && said, "the error names the file and what happened: {stderr}");
            changed += 1;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    assert!(changed >= 1, "the writer never met a build: the test did not test anything");
}
