//! Helpers shared by the integration tests: the oxbuild binary and copies of
//! the bundled example app.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The example app bundled in testdata/.
pub fn example_app() -> PathBuf {
    oxbuild_testkit::repo_root().join("testdata/plainweb")
}

/// Copies `from` recursively into `to` (created).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        let ft = entry.file_type().unwrap();
        if ft.is_dir() {
            copy_tree(&entry.path(), &dest);
        } else if ft.is_file() {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

/// A private copy of the example app, and a private blob cache, per test.
pub struct Workspace {
    pub tmp: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Workspace {
        Workspace::of("plainweb")
    }

    /// A copy of `testdata/<name>`.
    pub fn of(name: &str) -> Workspace {
        let tmp = tempfile::tempdir().unwrap();
        copy_tree(&oxbuild_testkit::repo_root().join("testdata").join(name), &tmp.path().join("app"));
        Workspace { tmp }
    }

    /// Replaces `from` by `to` in the app's oxbuild.toml (which must contain it).
    pub fn edit_config(&self, from: &str, to: &str) {
        self.edit("oxbuild.toml", from, to);
    }

    /// Appends `text` to the app's oxbuild.toml.
    #[allow(dead_code)]
    pub fn append_config(&self, text: &str) {
        let path = self.app().join("oxbuild.toml");
        let mut config = std::fs::read_to_string(&path).unwrap();
        config.push_str(text);
        std::fs::write(&path, config).unwrap();
    }

    /// Replaces `from` by `to` in an app file (which must contain it).
    pub fn edit(&self, file: &str, from: &str, to: &str) {
        let path = self.app().join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{file} has no `{from}`");
        std::fs::write(&path, text.replace(from, to)).unwrap();
    }

    pub fn app(&self) -> PathBuf {
        self.tmp.path().join("app")
    }

    pub fn cache(&self) -> PathBuf {
        self.tmp.path().join("cache")
    }

    /// A bucket of this workspace's cache (`blobs`, `layers`, ...).
    #[allow(dead_code)]
    pub fn bucket(&self, name: &str) -> PathBuf {
        self.cache().join(format!("{name}-v{}", oxbuild_cache::FORMAT))
    }

    /// `oxbuild` with this workspace's cache and no registry credentials.
    pub fn oxbuild(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_oxbuild"));
        cmd.env("OXBUILD_CACHE_DIR", self.cache())
            .env_remove("OXBUILD_REGISTRY_USER")
            .env_remove("OXBUILD_REGISTRY_PASSWORD")
            .env_remove("SOURCE_DATE_EPOCH")
            .env_remove("DOCKER_CONFIG")
            .env_remove("REGISTRY_AUTH_FILE")
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("OXBUILD_CA_FILE")
            .env_remove("OXBUILD_REGISTRY")
            .env_remove("GITHUB_HEAD_REF")
            .env_remove("GITHUB_REF_NAME")
            .env_remove("CI_COMMIT_REF_NAME")
            .env_remove("BRANCH_NAME")
            .env("HOME", self.tmp.path().join("home"));
        cmd
    }
}

/// The cached Python base image, as an `oci-archive:` location.
pub fn base() -> String {
    format!("oci-archive:{}", oxbuild_testkit::base_archive().display())
}

/// The blob of `digest` in the OCI layout at `layout`.
pub fn blob_in(layout: &Path, digest: &str) -> PathBuf {
    layout.join("blobs/sha256").join(&digest["sha256:".len()..])
}

/// Entries of a gzip layer blob: (path, mode).
pub fn layer_entries(blob: &Path) -> Vec<(String, u32)> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(std::fs::File::open(blob).unwrap()));
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.path().unwrap().to_string_lossy().trim_end_matches('/').to_string(), e.header().mode().unwrap())
        })
        .collect()
}

/// The bytes of the file at `path` in a gzip layer blob.
pub fn layer_file(blob: &Path, path: &str) -> Option<Vec<u8>> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(std::fs::File::open(blob).unwrap()));
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().to_string_lossy() == path {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
            return Some(bytes);
        }
    }
    None
}

/// The pyweb app (gunicorn, markupsafe; pytest in its test variant),
/// offline: wheels from the test wheelhouse only.
pub fn offline_pyweb() -> Workspace {
    offline("pyweb", &oxbuild_testkit::wheelhouse())
}

/// `testdata/<name>` (a lock of pyweb's dependencies by another tool, plus
/// langdetect, a setup.py-only sdist) with pyweb's app and tests, offline:
/// its `[python]` section takes the test wheelhouse and the build backends
/// (and langdetect's sdist) as `find-links`, with no index.
pub fn offline_pyweb_locked_as(name: &str) -> Workspace {
    let ws = Workspace::of(name);
    let pyweb = oxbuild_testkit::repo_root().join("testdata/pyweb");
    for dir in ["pyweb", "tests"] {
        copy_tree(&pyweb.join(dir), &ws.app().join(dir));
    }
    ws.edit_config(
        "[python]\n",
        &format!(
            "[python]\nfind-links = [\"{}\", \"{}\"]\nno-index = true\n",
            oxbuild_testkit::wheelhouse().display(),
            oxbuild_testkit::build_wheelhouse().display()
        ),
    );
    ws
}

/// The flask + numpy app (x86_64 wheels only), offline.
pub fn offline_flaskapp() -> Workspace {
    offline("flaskapp", &oxbuild_testkit::flask_wheelhouse())
}

/// A copy of `testdata/<name>` whose wheels come from `wheelhouse` only.
fn offline(name: &str, wheelhouse: &Path) -> Workspace {
    let ws = Workspace::of(name);
    ws.edit_config(
        "requirements = \"requirements.txt\"",
        &format!("requirements = \"requirements.txt\"\nfind-links = [\"{}\"]\nno-index = true", wheelhouse.display()),
    );
    ws
}

/// The air-gap path: `oxbuild copy SOURCE oci-archive:…` in the workspace,
/// then `oxbuild push` of that archive to `dest`; both must succeed.
pub fn carry_through_archive(ws: &Workspace, source: &str, dest: &str) {
    let archive = format!("oci-archive:{}", ws.tmp.path().join("carried.tar").display());
    let (code, _, err) = run(ws.oxbuild().args(["copy", source, &archive]));
    assert_eq!(code, 0, "copy {source} {archive}: {err}");
    let (code, _, err) = run(ws.oxbuild().args(["push", &archive, dest]));
    assert_eq!(code, 0, "push {archive} {dest}: {err}");
}

/// Output as (exit code, stdout, stderr).
pub fn run(cmd: &mut Command) -> (i32, String, String) {
    let Output { status, stdout, stderr } = cmd.output().expect("oxbuild runs");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// Runs a build that must succeed and returns its `--json` report.
pub fn build_json(cmd: &mut Command) -> serde_json::Value {
    let (code, stdout, stderr) = run(cmd.arg("--json"));
    assert_eq!(code, 0, "oxbuild failed:\n{stderr}\n{stdout}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("--json output is not JSON ({e}): {stdout}"))
}

/// Runs git in `dir`, which must succeed.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=oxbuild test",
            "-c",
            "user.email=test@oxbuild.invalid",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Makes `dir` a git repository on `main` with one commit of everything in it.
pub fn commit_all(dir: &Path) {
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["add", "."]);
    git(dir, &["commit", "-q", "-m", "app"]);
}

/// Runs `oxbuild pipeline` on the app, publishing to `repository` (with
/// `extra` arguments); returns its report and each stage's (name, status).
pub fn pipeline(ws: &Workspace, repository: &str, extra: &[&str]) -> (serde_json::Value, Vec<(String, String)>) {
    let report = build_json(
        ws.oxbuild()
            .env("CONTAINERS_CONF", oxbuild_testkit::containers_conf())
            .env("OXBUILD_PUBLISH_REPOSITORY", repository)
            .arg("pipeline")
            .args(extra)
            .args(["--base", &base()])
            .arg(ws.app()),
    );
    let stages = report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["stage"].as_str().unwrap().to_string(), s["status"].as_str().unwrap().to_string()))
        .collect();
    (report, stages)
}

/// oxbuild's own image, released by `scripts/release` (with this build's
/// binary, to spare CI a release build) into `registry`; its reference.
#[allow(dead_code)]
pub fn release_image(registry: &oxbuild_testkit::Registry) -> String {
    let image = registry.reference("tools/oxbuild:test");
    // Removed when the release is pushed: nothing reads this cache again.
    let cache = tempfile::tempdir().unwrap();
    let out = Command::new(oxbuild_testkit::repo_root().join("scripts/release"))
        .env("CONTAINERS_CONF", oxbuild_testkit::containers_conf())
        .env("OXBUILD_CACHE_DIR", cache.path())
        .args(["--binary", env!("CARGO_BIN_EXE_oxbuild"), "--base"])
        .arg(format!("oci-archive:{}", oxbuild_testkit::base_archive().display()))
        .args(["--tag", &image, "--push"])
        .output()
        .unwrap();
    assert!(out.status.success(), "scripts/release: {}", String::from_utf8_lossy(&out.stderr));
    image
}

/// Writes `name-version.tar.gz` into `dir` holding `files` under
/// `name-version/`, as `python -m build --sdist` lays one out; returns its
/// path and sha256.
#[allow(dead_code)]
pub fn sdist(dir: &Path, name: &str, version: &str, files: &[(&str, &str)]) -> (PathBuf, String) {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(format!("{name}-{version}.tar.gz"));
    let spec = serde_json::json!(
        files.iter().map(|(p, c)| [format!("{name}-{version}/{p}"), c.to_string()]).collect::<Vec<_>>()
    );
    let made = std::process::Command::new("python3")
        .args(["-c", "import io, json, sys, tarfile\nwith tarfile.open(sys.argv[1], 'w:gz') as t:\n    for name, text in json.loads(sys.argv[2]):\n        data = text.encode()\n        info = tarfile.TarInfo(name)\n        info.size = len(data)\n        t.addfile(info, io.BytesIO(data))\n"])
        .arg(&path)
        .arg(spec.to_string())
        .status()
        .unwrap();
    assert!(made.success());
    let sha = oxbuild_image::Digest::of(&std::fs::read(&path).unwrap()).hex().to_string();
    (path, sha)
}
