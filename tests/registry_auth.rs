//! Credentials and TLS against the real registry: a CA made in the test,
//! docker config.json, podman auth.json and credential helpers.

mod common;

use std::os::unix::fs::PermissionsExt as _;

use base64::Engine as _;
use common::{Workspace, build_json, run};
use oxbuild_testkit::Registry;

#[test]
fn tls_registry_with_a_ca_file() {
    let registry = Registry::start_tls();
    let base = registry.seed("python:3.11");
    let ws = Workspace::new();
    let target = registry.reference("team/tls:v1");
    let ca = registry.ca_file();

    let report = build_json(
        ws.oxbuild()
            .args(["build", "-q", "--base", &base, "--push", "--tag", &target, "--ca-file"])
            .arg(&ca)
            .arg(ws.app()),
    );
    assert_eq!(registry.skopeo_inspect(&target, false)["Digest"], report["digest"]);

    // Without the CA the registry cannot be trusted, and oxbuild says so plainly.
    let (code, _, stderr) = run(ws.oxbuild().args(["build", "-q", "--base", &base]).arg(ws.app()));
    assert_eq!(code, 5, "{stderr}");
    assert!(stderr.contains(registry.host()), "{stderr}");

    let (code, _, stderr) = run(ws.oxbuild().args(["build", "-q", "--ca-file", "/nonexistent/ca.pem"]).arg(ws.app()));
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("/nonexistent/ca.pem"), "{stderr}");
}

fn write_json(path: &std::path::Path, value: serde_json::Value) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, value.to_string()).unwrap();
}

#[test]
fn docker_config_and_podman_auth_files_supply_credentials() {
    let secret = "cfg-Secret-77";
    let registry = Registry::start_with_auth("ci", secret);
    let base = registry.seed("python:3.11");
    let ws = Workspace::new();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("ci:{secret}"));
    let entry = serde_json::json!({"auths": {registry.host(): {"auth": auth}}});

    let docker = ws.tmp.path().join("docker");
    write_json(&docker.join("config.json"), entry.clone());
    let target = registry.reference("team/docker-config:v1");
    let (code, stdout, stderr) = run(ws
        .oxbuild()
        .env("DOCKER_CONFIG", &docker)
        .args(["build", "--base", &base, "--push", "--tag", &target])
        .arg(ws.app()));
    assert_eq!(code, 0, "{stderr}");
    assert!(!stdout.contains(secret) && !stderr.contains(secret));
    registry.skopeo_inspect(&target, false);

    let podman_auth = ws.tmp.path().join("auth.json");
    write_json(&podman_auth, entry);
    let target = registry.reference("team/podman-auth:v1");
    build_json(
        ws.oxbuild()
            .env("REGISTRY_AUTH_FILE", &podman_auth)
            .args(["build", "-q", "--base", &base, "--push", "--tag", &target])
            .arg(ws.app()),
    );
    registry.skopeo_inspect(&target, false);
}

#[test]
fn credential_helpers_are_run_and_a_missing_one_is_named() {
    let secret = "helper-Secret-42";
    let registry = Registry::start_with_auth("ci", secret);
    let base = registry.seed("python:3.11");
    let ws = Workspace::new();
    let bin = ws.tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-oxtest");
    std::fs::write(
        &helper,
        format!("#!/bin/sh\nread server\necho '{{\"Username\":\"ci\",\"Secret\":\"{secret}\"}}'\n"),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());

    let docker = ws.tmp.path().join("docker");
    write_json(&docker.join("config.json"), serde_json::json!({"credHelpers": {registry.host(): "oxtest"}}));
    let target = registry.reference("team/helper:v1");
    build_json(
        ws.oxbuild()
            .env("PATH", &path)
            .env("DOCKER_CONFIG", &docker)
            .args(["build", "-q", "--base", &base, "--push", "--tag", &target])
            .arg(ws.app()),
    );
    registry.skopeo_inspect(&target, false);

    write_json(&docker.join("config.json"), serde_json::json!({"credHelpers": {registry.host(): "not-installed"}}));
    let (code, stdout, stderr) = run(ws
        .oxbuild()
        .env("PATH", &path)
        .env("DOCKER_CONFIG", &docker)
        .args(["build", "-q", "--base", &base])
        .arg(ws.app()));
    assert_eq!(code, 5, "{stderr}");
    assert!(stderr.contains(registry.host()) && stderr.contains("could not be run"), "{stderr}");
    assert!(!stderr.contains(secret) && !stdout.contains(secret));
}
