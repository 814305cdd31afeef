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

    // A file that holds no certificate is named, before anything is fetched.
    let not_pem = ws.tmp.path().join("not-a-ca.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let (code, _, stderr) = run(ws.oxbuild().args(["build", "-q", "--ca-file"]).arg(&not_pem).arg(ws.app()));
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("not-a-ca.pem") && stderr.contains("no PEM certificate"), "{stderr}");
}

fn write_json(path: &std::path::Path, value: serde_json::Value) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, value.to_string()).unwrap();
}

/// Builds and pushes the app to `target` with credentials from the docker
/// config in `docker`, and checks that `secret` shows up in no output.
fn push_with_docker_config(ws: &Workspace, docker: &std::path::Path, base: &str, target: &str, secret: &str) {
    let (code, stdout, stderr) = run(ws
        .oxbuild()
        .env("DOCKER_CONFIG", docker)
        .args(["build", "--base", base, "--push", "--tag", target])
        .arg(ws.app()));
    assert_eq!(code, 0, "{stderr}");
    assert!(!stdout.contains(secret) && !stderr.contains(secret));
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
    push_with_docker_config(&ws, &docker, &base, &target, secret);
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

/// The bearer-token flow of Docker Hub, GHCR, Quay and Harbor, against the
/// real registry checking real signed tokens: oxbuild answers the challenge,
/// asks the token service for exactly the scopes each request needs (pull on
/// the base, push and pull on the target, and pull on the source of a
/// cross-repository mount), and never shows the password.
#[test]
fn bearer_tokens_from_a_token_service() {
    let secret = "token-Secret-314";
    let registry = Registry::start_with_token("ci", secret);
    let base = registry.seed("python:3.11");
    let seeding = registry.token_requests().len();
    let ws = Workspace::new();
    let target = registry.reference("team/bearer:v1");
    let (code, stdout, stderr) = run(ws
        .oxbuild()
        .env("OXBUILD_REGISTRY", registry.host())
        .env("OXBUILD_REGISTRY_USER", "ci")
        .env("OXBUILD_REGISTRY_PASSWORD", secret)
        .args(["build", "-q", "--json", "--base", &base, "--push", "--tag", &target])
        .arg(ws.app()));
    assert_eq!(code, 0, "{stderr}");
    let asked: Vec<_> = registry.token_requests().split_off(seeding);
    assert!(!stdout.contains(secret) && !stderr.contains(secret));
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(registry.skopeo_inspect(&target, false)["Digest"], report["digest"]);
    // The base's layer was mounted from `python`, not uploaded again.
    assert!(report["push"][0]["report"]["blobs_mounted"].as_u64().unwrap() >= 1, "{report}");

    assert!(asked.iter().all(|r| r.granted), "{asked:?}");
    let scopes: Vec<String> = asked.iter().flat_map(|r| r.scopes.clone()).collect();
    assert!(scopes.iter().any(|s| s == "repository:python:pull"), "{scopes:?}");
    assert!(scopes.iter().any(|s| s == "repository:team/bearer:pull,push"), "{scopes:?}");
    let mount = asked.iter().any(|r| {
        r.scopes.iter().any(|s| s == "repository:team/bearer:pull,push")
            && r.scopes.iter().any(|s| s == "repository:python:pull")
    });
    assert!(mount, "a mount asks for push on the target and pull on the source in one token: {asked:?}");
    // One token per set of scopes, however many requests run in parallel.
    let mut distinct: Vec<&Vec<String>> = asked.iter().map(|r| &r.scopes).collect();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), asked.len(), "a token was fetched twice: {asked:?}");

    // A wrong password: the token service refuses, oxbuild names the registry
    // and the user and exits 5, and the password appears nowhere.
    let wrong = "not-the-Secret-271";
    let (code, stdout, stderr) = run(ws
        .oxbuild()
        .env("OXBUILD_REGISTRY", registry.host())
        .env("OXBUILD_REGISTRY_USER", "ci")
        .env("OXBUILD_REGISTRY_PASSWORD", wrong)
        .args(["build", "-q", "--base", &base])
        .arg(ws.app()));
    assert_eq!(code, 5, "{stderr}");
    assert!(stderr.contains(registry.host()) && stderr.contains("`ci`"), "{stderr}");
    assert!(!stderr.contains(wrong) && !stdout.contains(wrong));
    assert!(registry.token_requests().iter().any(|r| !r.granted && r.user.as_deref() == Some("ci")));
}

/// `docker login` against a registry whose token service issues refresh
/// tokens stores an `identitytoken`; oxbuild trades it for access tokens with
/// an OAuth2 POST, as Docker does, and keeps it out of its output.
#[test]
fn docker_identity_tokens_are_traded_for_access_tokens() {
    let identity = "refresh-Token-5150";
    let registry = Registry::start_with_identity_token("ci", "a-password-not-given-to-oxbuild", identity);
    let base = registry.seed("python:3.11");
    let seeding = registry.token_requests().len();
    let ws = Workspace::new();
    let docker = ws.tmp.path().join("docker");
    write_json(
        &docker.join("config.json"),
        serde_json::json!({"auths": {registry.host(): {"identitytoken": identity}}}),
    );
    let target = registry.reference("team/identity:v1");
    push_with_docker_config(&ws, &docker, &base, &target, identity);
    let asked = registry.token_requests().split_off(seeding);
    assert!(!asked.is_empty() && asked.iter().all(|r| r.refresh && r.granted), "{asked:?}");
    registry.skopeo_inspect(&target, false);

    // A refresh token the service does not know is refused with the registry named.
    let stale = "stale-Token-0000";
    write_json(&docker.join("config.json"), serde_json::json!({"auths": {registry.host(): {"identitytoken": stale}}}));
    let (code, stdout, stderr) =
        run(ws.oxbuild().env("DOCKER_CONFIG", &docker).args(["build", "-q", "--base", &base]).arg(ws.app()));
    assert_eq!(code, 5, "{stderr}");
    assert!(stderr.contains(registry.host()), "{stderr}");
    assert!(!stderr.contains(stale) && !stdout.contains(stale));
}

/// Credentials from the environment go only to the registries named with
/// them, and never to a token service on another host unless the user
/// trusts it: a private registry's password must not reach a third party.
#[test]
fn credentials_go_only_where_they_belong() {
    let secret = "only-Mine-1618";
    let registry = Registry::start_with_token("ci", secret);
    let base = registry.seed("python:3.11");
    let ws = Workspace::new();
    // No OXBUILD_REGISTRY: refused, and the message says what to set.
    let (code, stdout, stderr) = run(ws
        .oxbuild()
        .env("OXBUILD_REGISTRY_USER", "ci")
        .env("OXBUILD_REGISTRY_PASSWORD", secret)
        .args(["build", "-q", "--base", &base])
        .arg(ws.app()));
    assert_eq!(code, 5, "{stderr}");
    assert!(stderr.contains("OXBUILD_REGISTRY=") && stderr.contains(registry.host()), "{stderr}");
    assert!(!stderr.contains(secret) && !stdout.contains(secret));
    assert!(registry.token_requests().iter().all(|r| r.user.is_none() || r.granted), "the password was never sent");

    // A token service on another host (127.0.0.2) gets no credentials...
    let foreign = Registry::start_with_foreign_token("ci", secret);
    let base = foreign.seed("python:3.11");
    let seeded = foreign.token_requests().len();
    let build = |trust: Option<&str>| {
        let mut cmd = ws.oxbuild();
        cmd.env("OXBUILD_REGISTRY", foreign.host())
            .env("OXBUILD_REGISTRY_USER", "ci")
            .env("OXBUILD_REGISTRY_PASSWORD", secret)
            .env_remove("OXBUILD_TOKEN_REALMS");
        if let Some(t) = trust {
            cmd.env("OXBUILD_TOKEN_REALMS", t);
        }
        run(cmd.args(["build", "-q", "--base", &base]).arg(ws.app()))
    };
    let (code, stdout, stderr) = build(None);
    assert_eq!(code, 5, "{stderr}");
    assert!(stderr.contains("127.0.0.2") && stderr.contains("OXBUILD_TOKEN_REALMS"), "says why: {stderr}");
    assert!(!stderr.contains(secret) && !stdout.contains(secret));
    let asked = foreign.token_requests().split_off(seeded);
    assert!(!asked.is_empty() && asked.iter().all(|r| r.user.is_none()), "no credentials went to 127.0.0.2: {asked:?}");
    // ...until the user lists it as trusted.
    let (code, _, stderr) = build(Some("127.0.0.2"));
    assert_eq!(code, 0, "{stderr}");
}
