//! The one command a CI job runs, the publish policy in real git checkouts,
//! and `oxbuild init`.

mod common;

use std::time::Duration;

use common::{Workspace, base, build_json, commit_all, git, run};
use oxbuild_testkit::{Container, Registry, base_archive, http_get, wheelhouse};

/// The tags of `repo` in `registry`, sorted.
fn tags(registry: &Registry, repo: &str) -> Vec<String> {
    let out = std::process::Command::new("skopeo")
        .args(["list-tags", "--tls-verify=false"])
        .arg(format!("docker://{}", registry.reference(repo)))
        .output()
        .unwrap();
    if !out.status.success() {
        // A repository nothing was ever pushed to has no tags; any other
        // failure (the registry is down, skopeo is broken) fails the test.
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("NAME_UNKNOWN") || stderr.contains("name unknown") || stderr.contains("404 (Not Found)"),
            "skopeo list-tags failed: {stderr}"
        );
        return Vec::new();
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut tags: Vec<String> = v["Tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect();
    tags.sort();
    // The referrers fallback tag lists the SBOMs and provenance; it is not a publish tag.
    let listing: Vec<String> = tags.iter().filter(|t| t.starts_with("sha256-")).cloned().collect();
    assert!(listing.len() <= 1, "one image, one referrers tag: {tags:?}");
    tags.retain(|t| !t.starts_with("sha256-"));
    tags
}

fn publish(ws: &Workspace, registry: &Registry, repo: &str) -> serde_json::Value {
    build_json(
        ws.oxbuild()
            .env("OXBUILD_PUBLISH_REPOSITORY", registry.reference(repo))
            .args(["publish", "-q", "--base", &base()])
            .arg(ws.app()),
    )
}

#[test]
fn the_whole_pipeline_builds_assesses_checks_health_and_publishes_what_passed() {
    let registry = Registry::start();
    let ws = Workspace::of("pyweb");
    ws.edit_config(
        "test-requirements = \"requirements-test.txt\"",
        &format!(
            "test-requirements = \"requirements-test.txt\"\nfind-links = [\"{}\"]\nno-index = true",
            wheelhouse().display()
        ),
    );
    commit_all(&ws.app());
    let sha = git(&ws.app(), &["rev-parse", "--short", "HEAD"]);
    let (report, stages) = common::pipeline(&ws, &registry.reference("team/pyweb"), &[]);
    let stages: Vec<(&str, &str)> = stages.iter().map(|(s, t)| (s.as_str(), t.as_str())).collect();
    assert_eq!(
        stages,
        vec![
            ("build", "passed"),
            ("assess", "passed"),
            ("health", "passed"),
            ("publish", "passed"),
            ("verify", "skipped")
        ],
        "verify runs only with --verify-key or --verify-policy"
    );
    let built = report["stages"][0]["digest"].as_str().unwrap();
    assert_eq!(report["stages"][3]["detail"]["digest"], built, "what passed is what is published");
    assert_ne!(report["stages"][0]["test_digest"], built, "assess ran on the test variant");
    assert_eq!(tags(&registry, "team/pyweb"), {
        let mut t = vec!["latest".to_string(), sha];
        t.sort();
        t
    });
    assert_eq!(registry.skopeo_inspect(&registry.reference("team/pyweb:latest"), false)["Digest"], built);

    // A rerun reuses the dependency layers and publishes the same digest.
    let again = build_json(
        ws.oxbuild()
            .env("CONTAINERS_CONF", oxbuild_testkit::containers_conf())
            .env("OXBUILD_PUBLISH_REPOSITORY", registry.reference("team/pyweb"))
            .args(["pipeline", "--skip-assess", "--skip-health", "--base", &base()])
            .arg(ws.app()),
    );
    assert_eq!(again["stages"][0]["digest"], built);
    assert_eq!(again["stages"][0]["python"]["reused"], true);
    assert_eq!(again["stages"][1]["status"], "skipped");
    assert_eq!(again["stages"][3]["detail"]["push"]["bytes_uploaded"], 0);
}

#[test]
fn a_failing_stage_stops_the_pipeline_with_its_code_and_publishes_nothing() {
    let registry = Registry::start();
    let ws = Workspace::new();
    // The app dies at start: its tests pass (they do not start it), its health fails.
    ws.edit_config("PLAINWEB_PORT = \"8000\"", "PLAINWEB_PORT = \"8000\", PLAINWEB_EXIT = \"3\"");
    let (code, stdout, stderr) = run(ws
        .oxbuild()
        .env("CONTAINERS_CONF", oxbuild_testkit::containers_conf())
        .env("OXBUILD_PUBLISH_REPOSITORY", registry.reference("team/broken"))
        .args(["pipeline", "--json", "--base", &base(), "--cache-repo", &registry.reference("team/cache")])
        .arg(ws.app()));
    assert_eq!(code, 8, "{stderr}");
    // What the build put in the cache repository is there though a later
    // stage failed: the next runner takes the app layer from it.
    let cached = tags(&registry, "team/cache");
    assert!(cached.iter().any(|t| t.starts_with("app-v2-")), "{cached:?}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["failed_stage"], "health");
    assert_eq!(report["error"]["code"], 8);
    let statuses: Vec<&str> =
        report["stages"].as_array().unwrap().iter().map(|s| s["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, vec!["passed", "passed", "failed"], "build and assess passed, health failed");
    assert!(tags(&registry, "team/broken").is_empty(), "nothing may be published after a failed stage");
}

#[test]
fn publish_policy_on_main_a_feature_branch_a_tag_and_a_configured_policy() {
    let registry = Registry::start();
    let ws = Workspace::new();
    commit_all(&ws.app());
    let sha = git(&ws.app(), &["rev-parse", "--short", "HEAD"]);

    let main = publish(&ws, &registry, "policy/main");
    assert_eq!(main["tags"], serde_json::json!(["latest", sha]));
    assert_eq!(tags(&registry, "policy/main").len(), 2);

    git(&ws.app(), &["checkout", "-q", "-b", "feature/login"]);
    let feature = publish(&ws, &registry, "policy/feature");
    assert_eq!(feature["tags"], serde_json::json!([sha]));
    assert!(feature["notes"][0].as_str().unwrap().contains("feature/login"), "says why there is no latest: {feature}");
    assert_eq!(tags(&registry, "policy/feature"), vec![sha.clone()]);

    git(&ws.app(), &["tag", "v1.2.3"]);
    git(&ws.app(), &["checkout", "-q", "v1.2.3"]);
    let tagged = publish(&ws, &registry, "policy/tagged");
    assert_eq!(tagged["tags"], serde_json::json!(["v1.2.3", sha]));

    git(&ws.app(), &["checkout", "-q", "-b", "release"]);
    ws.edit_config(
        "latest-branches = [\"main\"]\ngit-tag = true\nsha = true",
        "latest-branches = [\"release\"]\ngit-tag = false\nsha = false\ntags = [\"stable\"]",
    );
    let configured = publish(&ws, &registry, "policy/configured");
    assert_eq!(configured["tags"], serde_json::json!(["latest", "stable"]));
    assert_eq!(tags(&registry, "policy/configured"), vec!["latest".to_string(), "stable".to_string()]);
}

#[test]
fn init_writes_a_config_for_the_example_that_builds_and_runs() {
    let registry = Registry::start();
    let base_ref = registry.seed("python:3.11");
    let ws = Workspace::new();
    std::fs::remove_file(ws.app().join("oxbuild.toml")).unwrap();
    let (code, stdout, stderr) = run(ws.oxbuild().args(["init", "--base", &base_ref]).arg(ws.app()));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("wrote"), "{stdout}");
    let written = std::fs::read_to_string(ws.app().join("oxbuild.toml")).unwrap();
    assert!(written.contains("entrypoint = [\"python3\", \"-m\", \"plainweb\"]"), "{written}");
    let (code, _, stderr) = run(ws.oxbuild().args(["init"]).arg(ws.app()));
    assert_eq!(code, 3, "no overwrite without --force: {stderr}");

    let target = registry.reference("team/init:v1");
    build_json(ws.oxbuild().args(["build", "-q", "--push", "--tag", &target]).arg(ws.app()));
    let (container, port) = Container::serve(&target, 8000);
    let answer = http_get(port, "/", Duration::from_secs(60));
    assert_eq!(answer.as_ref().map(|a| a.0), Some(200), "logs:\n{}", container.logs());
    assert!(answer.unwrap().1.contains("\"uid\": 1000"));
}

/// A uv project: init reads uv.lock itself (no export), and since its dev
/// group has pytest, makes that the test variant's lock and a pytest gate;
/// the written config builds and assesses.
#[test]
fn init_takes_a_uv_lock_and_its_dev_group() {
    let ws = Workspace::of("pyweb");
    for f in ["oxbuild.toml", "requirements.txt", "requirements-test.txt", "pylock.toml"] {
        std::fs::remove_file(ws.app().join(f)).unwrap();
    }
    std::fs::write(ws.app().join("pyweb/__main__.py"), "print('pyweb')\n").unwrap();
    let base = format!("oci-archive:{}", base_archive().display());
    let (code, _, stderr) = run(ws.oxbuild().args(["init", "--base", &base]).arg(ws.app()));
    assert_eq!(code, 0, "{stderr}");
    let written = std::fs::read_to_string(ws.app().join("oxbuild.toml")).unwrap();
    assert!(written.contains("lock = \"uv.lock\""), "{written}");
    assert!(written.contains("test-requirements = \"uv.lock\""), "{written}");
    assert!(written.contains("\n[assess]") && written.contains("pytest"), "{written}");

    // Offline: the wheelhouse through the documented environment overrides.
    let wheels = format!("[\"{}\"]", wheelhouse().display());
    let (code, _, stderr) = run(ws
        .oxbuild()
        .env("CONTAINERS_CONF", oxbuild_testkit::containers_conf())
        .env("OXBUILD_PYTHON_FIND_LINKS", &wheels)
        .env("OXBUILD_PYTHON_NO_INDEX", "true")
        .args(["assess"])
        .arg(ws.app()));
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("[pytest] 2 passed"), "{stderr}");
}
