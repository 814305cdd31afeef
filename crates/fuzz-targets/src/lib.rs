//! Fuzz entry points: one function per parser that reads untrusted bytes.
//!
//! The cargo-fuzz targets in `fuzz/fuzz_targets/` call these under
//! libFuzzer on nightly; `tests/replay.rs` feeds every file of the committed
//! corpora (`fuzz/corpus/<target>/`) through the same functions on stable,
//! so that an input that once crashed stays fixed. A function returns
//! normally for any input; an error is a fine answer, a panic is a bug.
//!
//! Parsers that read files (locks, wheels, archives, layouts) are fed
//! through a scratch directory, so that the fuzzed path is the real one.

use std::cell::RefCell;
use std::io::Write as _;
use std::path::{Path, PathBuf};

pub use oxbuild_python::fuzz::simple_index;
pub use oxbuild_registry::fuzz::www_authenticate;

/// A fuzz entry point: any bytes, no panic.
pub type Target = fn(&[u8]);

/// Every target: its name (the directory of its corpus) and its function.
pub const TARGETS: &[(&str, Target)] = &[
    ("image_reference", image_reference),
    ("dockerignore", dockerignore),
    ("requirements", requirements),
    ("uv_lock", uv_lock),
    ("pylock", pylock),
    ("poetry_lock", poetry_lock),
    ("pipfile_lock", pipfile_lock),
    ("pdm_lock", pdm_lock),
    ("sdist", sdist),
    ("manifest", manifest),
    ("index", index),
    ("www_authenticate", www_authenticate),
    ("simple_index", simple_index),
    ("wheel", wheel),
    ("wheel_metadata_record", wheel_metadata_record),
    ("oci_archive", oci_archive),
    ("oci_layout", oci_layout),
    ("config", config),
];

/// The function of target `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

thread_local! {
    static SCRATCH: RefCell<Option<tempfile::TempDir>> = const { RefCell::new(None) };
}

/// `data` written to `name` in this thread's scratch directory.
fn scratch_file(name: &str, data: &[u8]) -> PathBuf {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        let dir = s.get_or_insert_with(|| tempfile::tempdir().expect("a scratch directory"));
        let path = dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("a scratch directory");
        }
        std::fs::write(&path, data).expect("a scratch file");
        path
    })
}

fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}

/// Image references and locations (`host/repo:tag@digest`, `oci:DIR:NAME`, ...).
pub fn image_reference(data: &[u8]) {
    let s = text(data);
    if let Ok(r) = oxbuild_registry::Reference::parse(&s) {
        // What parses must print and parse again to itself.
        let again = oxbuild_registry::Reference::parse(&r.to_string());
        assert_eq!(again.map(|a| a.to_string()).ok(), Some(r.to_string()), "a reference round-trips");
    }
    let _ = oxbuild_location::Location::parse(&s, "fuzz");
}

/// `.dockerignore`, and matching paths against it.
pub fn dockerignore(data: &[u8]) {
    if let Ok(d) = oxbuild_build::dockerignore::DockerIgnore::parse(&text(data)) {
        for rel in ["app.py", "a/b/c.txt", ".git/config", "node_modules/x/y.js", "tests", "..", "a/../b"] {
            let _ = d.is_ignored(rel);
        }
    }
}

/// A requirements file (pip freeze, pip-compile).
pub fn requirements(data: &[u8]) {
    let _ = oxbuild_python::Requirements::parse(&text(data), "requirements.txt", Path::new("/app"));
}

/// The target the lock parsers evaluate markers for.
fn target_for_locks() -> oxbuild_python::Target {
    oxbuild_python::Target {
        major: 3,
        minor: 11,
        interpreter: "/usr/bin/python3.11".into(),
        full_version: "3.11.2".into(),
        machine: "x86_64".into(),
        libc: oxbuild_python::Libc::Glibc(36),
    }
}

/// A `uv.lock`, for its dependencies and its dev group.
pub fn uv_lock(data: &[u8]) {
    let path = scratch_file("uv/uv.lock", data);
    let _ = oxbuild_python::lockfile::load(&path, &target_for_locks(), &Default::default());
    let dev = oxbuild_python::lockfile::Selection::groups(vec!["dev".to_string()]);
    let _ = oxbuild_python::lockfile::load(&path, &target_for_locks(), &dev);
    let _ = oxbuild_python::lockfile::uv_groups(&path, path.parent().unwrap_or(&path));
}

/// A PEP 751 `pylock.toml`.
pub fn pylock(data: &[u8]) {
    let path = scratch_file("pylock/pylock.toml", data);
    let _ = oxbuild_python::lockfile::load(&path, &target_for_locks(), &Default::default());
}

/// Each lock with groups, for production and for its test group.
fn grouped_lock(name: &str, data: &[u8]) {
    let path = scratch_file(&format!("{name}/{name}"), data);
    let dev = oxbuild_python::lockfile::Selection::groups(vec!["dev".to_string(), "develop".to_string()]);
    let _ = oxbuild_python::lockfile::load(&path, &target_for_locks(), &Default::default());
    let _ = oxbuild_python::lockfile::load(&path, &target_for_locks(), &dev);
}

/// A `poetry.lock`.
pub fn poetry_lock(data: &[u8]) {
    grouped_lock("poetry.lock", data);
}

/// A `Pipfile.lock`.
pub fn pipfile_lock(data: &[u8]) {
    grouped_lock("Pipfile.lock", data);
}

/// A `pdm.lock`.
pub fn pdm_lock(data: &[u8]) {
    grouped_lock("pdm.lock", data);
}

/// A source distribution (`.tar.gz`), unpacked as a build would unpack it:
/// nothing may land outside the directory it is unpacked into.
pub use oxbuild_python::fuzz::sdist;

/// An image manifest, with an empty config.
pub fn manifest(data: &[u8]) {
    let _ = oxbuild_image::Image::from_raw(data.to_vec(), b"{}".to_vec(), Vec::new());
}

/// An image index.
pub fn index(data: &[u8]) {
    let _ = oxbuild_image::Index::from_raw(data.to_vec(), Vec::new());
}

/// A wheel file: its METADATA, then installing it.
pub fn wheel(data: &[u8]) {
    let path = scratch_file("wheel/fuzz-1.0-py3-none-any.whl", data);
    wheel_at(&path);
}

fn wheel_at(path: &Path) {
    let filename = "fuzz-1.0-py3-none-any.whl";
    let _ = oxbuild_python::wheel::metadata(path, filename);
    let venv = oxbuild_python::wheel::VenvLayout { prefix: "/opt/venv".into(), python_dir: "python3.11".into() };
    if let Ok(staged) = oxbuild_python::wheel::install(path, filename, &venv) {
        for s in &staged {
            assert!(!s.rel.starts_with('/') && !s.rel.split('/').any(|p| p == ".."), "stays inside: {}", s.rel);
        }
    }
}

/// A well-formed wheel around fuzzed METADATA, RECORD and entry points
/// (the input split at its first two NUL bytes), so that the fuzzer reaches
/// those parsers without having to find the zip format first.
pub fn wheel_metadata_record(data: &[u8]) {
    let mut parts = data.splitn(3, |b| *b == 0);
    let (metadata, record, entry_points) =
        (parts.next().unwrap_or_default(), parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default().unix_permissions(0o644);
    let files: [(&str, &[u8]); 5] = [
        ("fuzz/__init__.py", b"x = 1\n"),
        ("fuzz-1.0.dist-info/WHEEL", b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\n"),
        ("fuzz-1.0.dist-info/METADATA", metadata),
        ("fuzz-1.0.dist-info/entry_points.txt", entry_points),
        ("fuzz-1.0.dist-info/RECORD", record),
    ];
    for (name, bytes) in files {
        zip.start_file(name, opts).expect("writing to memory");
        zip.write_all(bytes).expect("writing to memory");
    }
    let bytes = zip.finish().expect("writing to memory").into_inner();
    let path = scratch_file("wheel/fuzz-1.0-py3-none-any.whl", &bytes);
    wheel_at(&path);
}

/// An OCI or Docker archive (tar), read into a scratch blob store.
pub fn oci_archive(data: &[u8]) {
    let path = scratch_file("archive/image.tar", data);
    let store = oxbuild_image::BlobStore::open(path.with_file_name("store")).expect("a store");
    let _ = oxbuild_image::archive::read_archive_any(&path, None, None, &store);
}

/// An OCI layout's `index.json`.
pub fn oci_layout(data: &[u8]) {
    let path = scratch_file("layout/index.json", data);
    scratch_file("layout/oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    let dir = path.parent().expect("a directory");
    let _ = oxbuild_image::layout::read_layout_any(dir, None, None);
    let _ = oxbuild_image::layout::read_layout_any(dir, Some("latest"), Some(&oxbuild_image::Platform::host()));
}

/// `oxbuild.toml`, and the same text as a pyproject.toml.
pub fn config(data: &[u8]) {
    let s = text(data);
    let _ = oxbuild_config::Config::parse(Path::new("oxbuild.toml"), &s);
    let _ = oxbuild_config::Config::parse_pyproject(Path::new("pyproject.toml"), &s);
}
