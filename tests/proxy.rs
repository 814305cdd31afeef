//! Corporate networks: registries reached through an HTTP CONNECT proxy
//! started by the test, `NO_PROXY` respected, and proxy credentials never shown.

mod common;

use common::{Workspace, build_json, run};
use oxbuild_testkit::{ForwardProxy, Registry};

#[test]
fn builds_and_pushes_through_a_connect_proxy_and_no_proxy_goes_direct() {
    let registry = Registry::start_tls();
    let base = registry.seed("python:3.11");
    let ca = registry.ca_file();
    let target = registry.reference("team/proxied:v1");
    let proxy = ForwardProxy::start_with_auth("ci", "Pr0xy-Secret");
    let ws = Workspace::new();
    let proxied = |cmd: &mut std::process::Command| {
        cmd.env("HTTPS_PROXY", proxy.url_with_credentials()).env_remove("NO_PROXY").env_remove("no_proxy");
    };

    let mut cmd = ws.oxbuild();
    proxied(&mut cmd);
    let (code, stdout, stderr) = run(cmd
        .args(["build", "-v", "--json", "--base", &base, "--push", "--tag", &target, "--ca-file"])
        .arg(&ca)
        .arg(ws.app()));
    assert_eq!(code, 0, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(registry.skopeo_inspect(&target, false)["Digest"], report["digest"]);
    let tunnels: Vec<_> = proxy.seen().into_iter().filter(|s| s.method == "CONNECT").collect();
    assert!(
        tunnels.iter().any(|s| s.target == registry.host()),
        "the registry was reached through the proxy: {tunnels:?}"
    );
    assert!(!stdout.contains("Pr0xy-Secret") && !stderr.contains("Pr0xy-Secret"));

    // NO_PROXY: the same registry, reached directly.
    let before = proxy.seen().len();
    let mut cmd = ws.oxbuild();
    proxied(&mut cmd);
    let report = build_json(
        cmd.env("NO_PROXY", "127.0.0.1")
            .args(["build", "-q", "--base", &base, "--push", "--tag", &target, "--ca-file"])
            .arg(&ca)
            .arg(ws.app()),
    );
    assert_eq!(registry.skopeo_inspect(&target, false)["Digest"], report["digest"]);
    assert_eq!(proxy.seen().len(), before, "nothing went through the proxy");
}

#[test]
fn a_proxy_that_refuses_is_a_clear_error_without_its_password() {
    let registry = Registry::start_tls();
    let base = registry.seed("python:3.11");
    let proxy = ForwardProxy::start_with_auth("ci", "right-password");
    let wrong = proxy.url().replace("http://", "http://ci:Wr0ng-Secret@");
    let ws = Workspace::new();
    let (code, stdout, stderr) = run(ws
        .oxbuild()
        .env("HTTPS_PROXY", &wrong)
        .env_remove("NO_PROXY")
        .args(["build", "--base", &base, "--ca-file"])
        .arg(registry.ca_file())
        .arg(ws.app()));
    assert_eq!(code, 5, "{stderr}");
    assert!(stderr.contains(registry.host()), "{stderr}");
    assert!(!stderr.contains("Wr0ng-Secret") && !stdout.contains("Wr0ng-Secret"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    // A proxy variable that is not a URL names the variable, not its secret.
    let (code, _, stderr) =
        run(ws.oxbuild().env("HTTPS_PROXY", "http://ci:S3cret@").args(["build", "--base", &base]).arg(ws.app()));
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("HTTPS_PROXY") && !stderr.contains("S3cret"), "{stderr}");
}
