//! The one cache: `oxbuild cache info` and `prune`, also while a build is
//! running. (Pushes that mount what another repository of the same registry
//! holds, from the cache's locations bucket, are in registry_faults.rs.)

mod common;

use std::time::{Duration, Instant};

use common::{Workspace, build_json, run};
use oxbuild_testkit::{Fault, Proxy, Registry};

fn info(ws: &Workspace) -> serde_json::Value {
    let (code, stdout, stderr) = run(ws.oxbuild().args(["cache", "info", "--json"]));
    assert_eq!(code, 0, "{stderr}");
    serde_json::from_str(&stdout).unwrap()
}

#[test]
fn cache_info_and_prune_by_age_and_size() {
    let registry = Registry::start();
    let base = registry.seed("python:3.11");
    let ws = Workspace::new();
    let first = build_json(ws.oxbuild().args(["build", "-q", "--base", &base]).arg(ws.app()));

    let before = info(&ws);
    let buckets = before["info"]["buckets"].as_array().unwrap();
    let blobs = buckets.iter().find(|b| b["name"] == format!("blobs-v{}", oxbuild_cache::FORMAT)).unwrap();
    assert!(blobs["entries"].as_u64().unwrap() >= 2, "{before}");
    assert!(buckets.iter().any(|b| b["name"].as_str().unwrap().starts_with("scans-")), "{before}");
    assert!(before["info"]["bytes"].as_u64().unwrap() > 0);

    // Nothing is a thousand days old.
    let (code, stdout, stderr) = run(ws.oxbuild().args(["cache", "prune", "--json", "--older-than", "1000d"]));
    assert_eq!(code, 0, "{stderr}");
    let pruned: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(pruned["pruned"]["removed"], 0);
    assert_eq!(info(&ws)["info"]["bytes"], before["info"]["bytes"]);

    // A limit keeps the most recently used entries.
    let total = before["info"]["bytes"].as_u64().unwrap();
    let (code, _, stderr) = run(ws.oxbuild().args(["cache", "prune", "--max-size", &format!("{}B", total / 2)]));
    assert_eq!(code, 0, "{stderr}");
    assert!(info(&ws)["info"]["bytes"].as_u64().unwrap() <= total / 2);

    // Empty, and the next build makes what it needs again, to the same digest.
    let (code, _, stderr) = run(ws.oxbuild().args(["cache", "prune"]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(info(&ws)["info"]["entries"], 0);
    let again = build_json(ws.oxbuild().args(["build", "-q", "--base", &base]).arg(ws.app()));
    assert_eq!(again["digest"], first["digest"]);

    // A command keeps the cache under OXBUILD_CACHE_MAX_SIZE when it ends:
    // what this build adds (the app's new layer and config) is counted, and
    // takes it over the limit of what it held before.
    let held = info(&ws)["info"]["bytes"].as_u64().unwrap();
    std::fs::write(ws.app().join("added.txt"), "one more file").unwrap();
    let limit = format!("{}B", held - 1024);
    let (code, _, stderr) =
        run(ws.oxbuild().args(["build", "-q", "--base", &base]).arg(ws.app()).env("OXBUILD_CACHE_MAX_SIZE", &limit));
    assert_eq!(code, 0, "{stderr}");
    assert!(info(&ws)["info"]["bytes"].as_u64().unwrap() <= held - 1024);

    // Bad input names the flag.
    let (code, _, stderr) = run(ws.oxbuild().args(["cache", "prune", "--older-than", "soon"]));
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("--older-than") && !stderr.contains("panicked"), "{stderr}");
    let (code, _, stderr) = run(ws.oxbuild().args(["cache", "prune", "--max-size", "lots"]));
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("--max-size"), "{stderr}");
}

#[test]
fn prune_waits_for_a_running_build_and_the_build_completes() {
    let registry = Registry::start();
    registry.seed("python:3.11");
    // A slow registry: every request is held, so the build is still running
    // when prune starts.
    let slow = Proxy::start(registry.host(), Fault::Delay { millis: 150 });
    let base = format!("{}/python:3.11", slow.host());
    let target = format!("{}/team/app:v1", slow.host());
    let ws = Workspace::new();
    let build = ws
        .oxbuild()
        .args(["build", "--json", "-q", "--base", &base, "--push", "--tag", &target])
        .arg(ws.app())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();

    // Wait until the build holds the cache, as a second process sees it.
    let cache = oxbuild_cache::Cache::open(ws.cache()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while cache.lock_exclusive(false).unwrap().is_some() {
        assert!(Instant::now() < deadline, "the build never took the cache");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (code, stdout, stderr) = run(ws.oxbuild().args(["cache", "prune", "--json"]));

    let out = build.wait_with_output().unwrap();
    let build_err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the running build was not disturbed: {build_err}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("waiting for the oxbuild builds"), "prune said it waited: {stderr}");
    // Prune ran after the build: it removed what the build left.
    let pruned: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(pruned["pruned"]["removed"].as_u64().unwrap() >= 2, "{pruned}");
    // What the build pushed is whole.
    let pushed = registry.reference("team/app:v1");
    assert_eq!(registry.skopeo_inspect(&pushed, false)["Digest"], report["digest"]);
    registry.pull_and_verify(&pushed, &ws.tmp.path().join("pulled"));
}
