//! Replays every committed corpus (`fuzz/corpus/<target>/`) through its
//! target on stable, so that an input that once crashed a parser, found by
//! `cargo fuzz` on nightly, stays fixed. One test per target, `fuzz_<target>`.

use std::path::PathBuf;

fn corpus(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target)
}

fn replay(target: &str) {
    let run = oxbuild_fuzz_targets::target(target).expect("a target of that name");
    let dir = corpus(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} has no inputs", dir.display());
    for file in files {
        // A file that a fuzzer running beside this test has just minimised away.
        let Ok(data) = std::fs::read(&file) else { continue };
        if std::panic::catch_unwind(|| run(&data)).is_err() {
            panic!("{target} panicked on {}", file.display());
        }
    }
}

/// Every target has its replay test below (RELIABILITY.md lists each).
#[test]
fn every_target_is_replayed() {
    let source = include_str!("replay.rs");
    for (name, _) in oxbuild_fuzz_targets::TARGETS {
        assert!(
            source.contains(&format!("fn fuzz_{name}() {{\n    replay(\"{name}\");")),
            "no fuzz_{name} replay test"
        );
    }
}

#[test]
fn fuzz_image_reference() {
    replay("image_reference");
}

#[test]
fn fuzz_dockerignore() {
    replay("dockerignore");
}

#[test]
fn fuzz_requirements() {
    replay("requirements");
}

#[test]
fn fuzz_uv_lock() {
    replay("uv_lock");
}

#[test]
fn fuzz_pylock() {
    replay("pylock");
}

#[test]
fn fuzz_manifest() {
    replay("manifest");
}

#[test]
fn fuzz_index() {
    replay("index");
}

#[test]
fn fuzz_www_authenticate() {
    replay("www_authenticate");
}

#[test]
fn fuzz_simple_index() {
    replay("simple_index");
}

#[test]
fn fuzz_wheel() {
    replay("wheel");
}

#[test]
fn fuzz_wheel_metadata_record() {
    replay("wheel_metadata_record");
}

#[test]
fn fuzz_oci_archive() {
    replay("oci_archive");
}

#[test]
fn fuzz_oci_layout() {
    replay("oci_layout");
}

#[test]
fn fuzz_config() {
    replay("config");
}

#[test]
fn fuzz_poetry_lock() {
    replay("poetry_lock");
}

#[test]
fn fuzz_pipfile_lock() {
    replay("pipfile_lock");
}

#[test]
fn fuzz_pdm_lock() {
    replay("pdm_lock");
}

#[test]
fn fuzz_sdist() {
    replay("sdist");
}
