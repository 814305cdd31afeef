//! oxbuild's own image, made by `scripts/release` with oxbuild, and oxbuild
//! running in a locked-down pod: a random non-root uid, no capabilities, a
//! read-only root filesystem with only /tmp writable, no new privileges and
//! no HOME, as a Kubernetes build pod runs it.

mod common;

use std::time::Duration;

use common::{Workspace, run};
use oxbuild_testkit::{Container, Registry, base_archive, http_get, podman_output};

#[test]
fn the_released_image_runs_oxbuild_and_builds_and_pushes_in_a_locked_down_pod() {
    let registry = Registry::start();
    let image = common::release_image(&registry);
    let out = podman_output(&["run", "--rm", "--tls-verify=false", &image, "--version"]);
    let version = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(version.trim(), format!("oxbuild {}", env!("CARGO_PKG_VERSION")));
    let out = podman_output(&["run", "--rm", "--tls-verify=false", "--entrypoint", "id", &image, "-u"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "65532", "the image runs as its non-root user");

    // The example app, built and pushed from inside the image.
    let ws = Workspace::new();
    let target = registry.reference("team/locked-down:v1");
    let app = format!("{}:/src:ro", ws.app().display());
    let base = format!("{}:/base.tar:ro", base_archive().display());
    let out = podman_output(&[
        "run",
        "--rm",
        "--tls-verify=false",
        "--network",
        "host",
        "--user",
        "4242:4242",
        "--cap-drop=ALL",
        "--read-only",
        "--tmpfs",
        "/tmp",
        "--security-opt",
        "no-new-privileges",
        "--unsetenv",
        "HOME",
        "-v",
        &app,
        "-v",
        &base,
        &image,
        "build",
        "--base",
        "oci-archive:/base.tar",
        "--push",
        "--tag",
        &target,
        "/src",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "build --push in the locked-down pod:\n{stderr}");
    // The default cache cannot be written there (podman gives the unknown
    // uid the workdir as HOME): it went to /tmp, and said so.
    assert!(stderr.contains("/tmp/oxbuild") && stderr.contains("set OXBUILD_CACHE_DIR"), "{stderr}");
    let (container, port) = Container::serve(&target, 8000);
    let answer = http_get(port, "/", Duration::from_secs(60));
    assert_eq!(answer.as_ref().map(|a| a.0), Some(200), "logs:\n{}", container.logs());

    // A HOME that cannot be written: the cache falls back to /tmp, and says so.
    let (code, _, stderr) = run(ws
        .oxbuild()
        .env_remove("OXBUILD_CACHE_DIR")
        .env_remove("XDG_CACHE_HOME")
        .env("HOME", "/proc")
        .args(["cache", "info"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("/proc/.cache/oxbuild") && stderr.contains("for this run instead"), "{stderr}");
}
