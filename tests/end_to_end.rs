//! The whole path against real parts: build, push to a real registry, read it
//! back with skopeo, run it in podman and check what oxbuild.toml promised.

mod common;

use std::time::{Duration, Instant};

use common::{Workspace, build_json};
use oxbuild_testkit::{Container, Registry, http_get, podman_output};

#[test]
fn build_push_and_run_the_example_in_podman() {
    let registry = Registry::start();
    let base = registry.seed("python:3.11");
    let ws = Workspace::new();
    let target = registry.reference("team/plainweb:e2e");

    let report = build_json(ws.oxbuild().args(["build", "--base", &base, "--push", "--tag", &target]).arg(ws.app()));
    let digest = report["digest"].as_str().unwrap().to_string();

    // skopeo, not oxbuild, reads it back.
    let inspected = registry.skopeo_inspect(&target, false);
    assert_eq!(inspected["Digest"].as_str(), Some(digest.as_str()));
    let raw = registry.skopeo_inspect(&target, true);
    assert_eq!(
        raw["mediaType"], "application/vnd.docker.distribution.manifest.v2+json",
        "healthchecks need Docker media types"
    );
    assert_eq!(raw["layers"].as_array().unwrap().len(), 3, "base + user + app layers");

    let (container, port) = Container::serve(&target, 8000);

    let (status, body) = http_get(port, "/", Duration::from_secs(60))
        .unwrap_or_else(|| panic!("no HTTP answer on port {port}; logs:\n{}", container.logs()));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"uid\": 1000"), "the app runs as uid 1000: {body}");

    let deadline = Instant::now() + Duration::from_secs(60);
    while !container.healthcheck() {
        assert!(Instant::now() < deadline, "never healthy; logs:\n{}", container.logs());
        std::thread::sleep(Duration::from_millis(500));
    }

    let id = container.exec(&["id", "-u"]);
    assert_eq!(String::from_utf8_lossy(&id.stdout).trim(), "1000");
    let files = container.exec(&["stat", "-c", "%u:%g %a %n", "/app/plainweb/__main__.py", "/home/app"]);
    let files = String::from_utf8_lossy(&files.stdout).to_string();
    assert!(files.contains("1000:1000 644 /app/plainweb/__main__.py"), "{files}");
    assert!(files.contains("1000:1000 755 /home/app"), "{files}");
    let ignored = container.exec(&["test", "-e", "/app/oxbuild.toml"]);
    assert!(!ignored.status.success(), "[app] include limits what is copied");

    let out = podman_output(&["image", "inspect", &target]);
    assert!(out.status.success());
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let info = &info[0];
    let config = &info["Config"];
    assert_eq!(config["User"], "1000:1000");
    assert_eq!(config["WorkingDir"], "/app");
    assert_eq!(config["Entrypoint"], serde_json::json!(["python3", "-m", "plainweb"]));
    let env: Vec<&str> = config["Env"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
    assert!(env.contains(&"PYTHONUNBUFFERED=1"), "{env:?}");
    assert!(config["ExposedPorts"].get("8000/tcp").is_some(), "{config}");
    assert_eq!(config["Labels"]["org.example.team"], "platform");
    let hc = &info["Healthcheck"];
    assert_eq!(hc["Test"][0], "CMD", "{info}");
    assert_eq!(hc["Interval"], 2_000_000_000u64);
    assert_eq!(hc["Retries"], 3);
}

#[test]
fn pushing_to_another_repository_of_the_same_registry_mounts_the_base() {
    let registry = Registry::start();
    let base = registry.seed("python:3.11");
    let ws = Workspace::new();
    let target = registry.reference("team/mounted:v1");
    let report =
        build_json(ws.oxbuild().args(["build", "-q", "--base", &base, "--push", "--tag", &target]).arg(ws.app()));
    let push = &report["push"][0]["report"];
    assert_eq!(push["blobs_mounted"], 1, "the base layer is mounted, not uploaded: {push}");
    let base_size = report["layers"][0]["size"].as_u64().unwrap();
    assert!(push["bytes_uploaded"].as_u64().unwrap() < base_size, "{push}");

    // The same image again: every blob is already there.
    let again =
        build_json(ws.oxbuild().args(["build", "-q", "--base", &base, "--push", "--tag", &target]).arg(ws.app()));
    assert_eq!(again["digest"], report["digest"]);
    assert_eq!(again["push"][0]["report"]["bytes_uploaded"], 0, "{again}");
}

#[test]
fn pushing_to_another_registry_copies_the_base_layers() {
    let source = Registry::start();
    let base = source.seed("python:3.11");
    let dest = Registry::start();
    let ws = Workspace::new();
    let target = dest.reference("team/copied:v1");
    let report =
        build_json(ws.oxbuild().args(["build", "-q", "--base", &base, "--push", "--tag", &target]).arg(ws.app()));
    let push = &report["push"][0]["report"];
    assert_eq!(push["blobs_mounted"], 0);
    let total: u64 = report["layers"].as_array().unwrap().iter().map(|l| l["size"].as_u64().unwrap()).sum();
    assert!(push["bytes_uploaded"].as_u64().unwrap() >= total, "every layer goes up: {push}");
    assert_eq!(dest.skopeo_inspect(&target, false)["Digest"], report["digest"]);
}

#[test]
fn oci_layout_output_is_readable_by_skopeo() {
    let registry = Registry::start();
    let base = registry.seed("python:3.11");
    let ws = Workspace::new();
    let layout = ws.tmp.path().join("layout");
    let out = format!("oci:{}", layout.display());
    // By default the SBOMs and the provenance sit beside the image in index.json.
    let report = build_json(ws.oxbuild().args(["build", "-q", "--base", &base, "--output", &out]).arg(ws.app()));
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let referrers = index["manifests"].as_array().unwrap().iter().filter(|m| m["artifactType"].is_string()).count();
    assert_eq!(referrers, 3, "{index}");
    let named = index["manifests"].as_array().unwrap().iter().find(|m| m["digest"] == report["digest"]).unwrap();
    assert_eq!(named["annotations"]["org.opencontainers.image.ref.name"], "latest", "so tools can pick it: {index}");

    // skopeo picks an image by name only among OCI manifests, and this app
    // (with a healthcheck) is a Docker one: without referrers it is the only entry.
    let plain = ws.tmp.path().join("plain");
    let out = format!("oci:{}", plain.display());
    let report =
        build_json(ws.oxbuild().args(["build", "-q", "--no-attach", "--base", &base, "--output", &out]).arg(ws.app()));
    let skopeo = std::process::Command::new("skopeo").args(["inspect"]).arg(&out).output().unwrap();
    assert!(skopeo.status.success(), "{}", String::from_utf8_lossy(&skopeo.stderr));
    let info: serde_json::Value = serde_json::from_slice(&skopeo.stdout).unwrap();
    assert_eq!(info["Digest"], report["digest"]);
    assert_eq!(info["Layers"].as_array().unwrap().len(), 3);
}

#[test]
fn zstd_layers_are_an_option_for_oci_images_and_run_in_podman() {
    let registry = Registry::start();
    let base = registry.seed("python:3.11");
    let ws = Workspace::new();
    ws.edit_config("labels = {", "compression = \"zstd\"\nlabels = {");
    let (code, _, stderr) = common::run(ws.oxbuild().args(["build", "-q", "--base", &base]).arg(ws.app()));
    assert_eq!(code, 3, "zstd and a healthcheck do not go together: {stderr}");
    assert!(stderr.contains("zstd") && stderr.contains("healthcheck"), "{stderr}");

    let toml = ws.app().join("oxbuild.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(&toml, &text[..text.find("[healthcheck]").unwrap()]).unwrap();
    let target = registry.reference("team/zstd:v1");
    let report =
        build_json(ws.oxbuild().args(["build", "-q", "--base", &base, "--push", "--tag", &target]).arg(ws.app()));
    let types: Vec<&str> =
        report["added"].as_array().unwrap().iter().map(|l| l["mediaType"].as_str().unwrap()).collect();
    assert!(types.iter().all(|t| *t == "application/vnd.oci.image.layer.v1.tar+zstd"), "{types:?}");

    let (container, port) = Container::serve(&target, 8000);
    let answer = http_get(port, "/health", Duration::from_secs(60));
    assert_eq!(answer.map(|a| a.0), Some(200), "logs:\n{}", container.logs());
}

/// A base of several layers, read from a registry: each layer is read as it
/// arrives and the results are stacked in order, so the account an upper
/// layer added is seen and no second user layer is made. (Whiteouts across
/// layers are covered by the rootfs unit tests.)
#[test]
fn a_multi_layer_base_is_read_in_layer_order() {
    let registry = Registry::start();
    let python = registry.seed("python:3.11");
    let ws = Workspace::new();
    // First image: python + a user layer (uid 1000 "app") + the app.
    let first = registry.reference("team/layered:base");
    let report =
        build_json(ws.oxbuild().args(["build", "-q", "--base", &python, "--push", "--tag", &first]).arg(ws.app()));
    assert_eq!(report["added"].as_array().unwrap().len(), 2, "user + app layers: {report}");

    // Built on top of it, with a fresh cache so the base is fetched and read.
    let fresh = Workspace::new();
    let second = build_json(
        fresh
            .oxbuild()
            .env("OXBUILD_CACHE_DIR", fresh.tmp.path().join("empty-cache"))
            .args(["build", "-q", "--base", &first])
            .arg(fresh.app()),
    );
    let added = second["added"].as_array().unwrap();
    assert_eq!(added.len(), 1, "the account comes from the base's second layer, so only the app is added: {second}");
    assert_eq!(second["layers"].as_array().unwrap().len(), 4);
}
