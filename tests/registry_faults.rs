//! Pushes and pulls through an in-test proxy that misbehaves the way real
//! networks and registries do: dropped connections, 500/503, 429, corruption.

mod common;

use common::{Workspace, build_json, offline_pyweb, run};
use oxbuild_testkit::{Fault, LoggedRequest, Proxy, Registry};

#[test]
fn a_push_survives_a_proxy_that_fails_one_request_in_ten() {
    let registry = Registry::start();
    registry.seed("python:3.11");
    let proxy = Proxy::start(registry.host(), Fault::Flaky { every: 10 });
    let ws = Workspace::new();
    let base = format!("{}/python:3.11", proxy.host());
    let target = format!("{}/team/flaky:v1", proxy.host());

    let report =
        build_json(ws.oxbuild().args(["build", "-q", "--base", &base, "--push", "--tag", &target]).arg(ws.app()));
    assert!(proxy.injected() >= 1, "the proxy must have failed something: {} requests", proxy.seen().len());

    // Read back without the proxy, with skopeo: manifest, and every blob verified on copy.
    let direct = registry.reference("team/flaky:v1");
    assert_eq!(registry.skopeo_inspect(&direct, false)["Digest"], report["digest"]);
    registry.pull_and_verify(&direct, &ws.tmp.path().join("pulled"));
}

/// A dependency layer written by a build with `--push` goes to the
/// registry while it is written; where that upload fails (every PATCH
/// answered 500), the push uploads it as usual. Either way the image is the
/// same and verifies blob by blob.
#[test]
fn a_new_dependency_layer_streams_to_the_registry_and_a_failed_stream_is_uploaded_again() {
    let registry = Registry::start();
    registry.seed("python:3.11");
    let proxy = Proxy::start(registry.host(), Fault::FailPatches);
    let ws = offline_pyweb();
    let push = |host: &str, cache: &str| {
        let (base, target) = (format!("{host}/python:3.11"), format!("{host}/team/streamed:{cache}"));
        let (code, stdout, stderr) = run(ws
            .oxbuild()
            .env("OXBUILD_CACHE_DIR", ws.tmp.path().join(cache))
            .args(["build", "-v", "--json", "--base", &base, "--push", "--tag", &target])
            .arg(ws.app()));
        assert_eq!(code, 0, "{stderr}");
        let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        let deps = report["python"]["layer"].as_str().unwrap().to_string();
        (report, deps, stderr)
    };
    let (direct, deps, stderr) = push(registry.host(), "direct");
    let moved =
        |stderr: &str, word: &str| stderr.lines().any(|l| l.trim_start().starts_with(word) && l.contains(&deps[7..19]));
    assert!(moved(&stderr, "streamed"), "{stderr}");
    assert!(!moved(&stderr, "uploaded"), "sent once: {stderr}");
    registry.pull_and_verify(&registry.reference("team/streamed:direct"), &ws.tmp.path().join("pulled-direct"));

    let (failed, same_deps, stderr) = push(proxy.host(), "failed");
    assert_eq!(same_deps, deps);
    assert!(proxy.injected() >= 1, "the stream's PATCH was refused");
    assert!(!moved(&stderr, "streamed") && moved(&stderr, "uploaded"), "{stderr}");
    // The same layers (the config names the base by its registry's host).
    assert_eq!(failed["layers"], direct["layers"]);
    registry.pull_and_verify(&registry.reference("team/streamed:failed"), &ws.tmp.path().join("pulled-failed"));
}

#[test]
fn a_corrupted_blob_is_a_digest_error_and_never_enters_the_cache() {
    let registry = Registry::start();
    let seeded = registry.seed("python:3.11");
    let proxy = Proxy::start(registry.host(), Fault::CorruptBlobs);
    let ws = Workspace::new();
    let base = format!("{}/python:3.11", proxy.host());

    let (code, _, stderr) = run(ws.oxbuild().args(["build", "-q", "--base", &base]).arg(ws.app()));
    assert_eq!(code, 5, "{stderr}");
    assert!(stderr.contains("digest mismatch"), "{stderr}");
    assert!(proxy.injected() >= 1);
    let blobs = ws.bucket("blobs");
    let files = |dir: &std::path::Path| -> Vec<std::path::PathBuf> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.file_type().unwrap().is_file())
            .map(|e| e.path())
            .collect()
    };
    assert!(files(&blobs).is_empty(), "no partial download is left: {:?}", files(&blobs));
    // What is kept (the base's config, which came through whole) is exactly
    // what its name says; the corrupted layer is not there.
    for path in files(&blobs.join("sha256")) {
        let sha = oxbuild_image::Digest::of(&std::fs::read(&path).unwrap()).hex().to_string();
        assert_eq!(path.file_name().unwrap().to_string_lossy(), sha, "a stored blob is what its name says");
    }
    let layer = registry.skopeo_inspect(&seeded, false)["Layers"][0].as_str().unwrap().to_string();
    assert!(!blobs.join("sha256").join(&layer["sha256:".len()..]).exists(), "the corrupt layer is not kept");
}

#[test]
fn a_second_push_uploads_nothing_and_another_repository_gets_only_mounts_by_the_registrys_own_count() {
    let registry = Registry::start();
    let base = registry.seed("python:3.11");
    let ws = Workspace::new();
    let first = registry.reference("team/one:v1");
    // The image's blobs only: each build attaches a provenance of its own run.
    let push = ["build", "-q", "--no-attach", "--base", &base, "--push", "--tag"];
    build_json(ws.oxbuild().args(push).arg(&first).arg(ws.app()));
    let uploads = |log: &str, repo: &str| log.matches(&format!("\"PUT /v2/{repo}/blobs/uploads/")).count();
    let mounts = |log: &str, repo: &str| log.matches(&format!("\"POST /v2/{repo}/blobs/uploads/?mount=")).count();
    let after_first = registry.log();
    assert!(uploads(&after_first, "team/one") >= 2, "app, user and config layers went up");

    build_json(ws.oxbuild().args(push).arg(&first).arg(ws.app()));
    let after_second = registry.log();
    assert_eq!(uploads(&after_second, "team/one"), uploads(&after_first, "team/one"), "second push uploads nothing");

    // Another repository of the same registry gets mounts, not uploads: the
    // base layer from python (named by the build), the rest from team/one
    // (remembered in the cache's locations bucket). Only the manifest is new.
    let second = registry.reference("team/two:v1");
    let report = build_json(ws.oxbuild().args(push).arg(&second).arg(ws.app()));
    let log = registry.log();
    let blobs = report["layers"].as_array().unwrap().len() + 1;
    assert_eq!(uploads(&log, "team/two"), 0, "no blob bytes went to team/two:\n{log}");
    assert_eq!(log.matches("\"PATCH /v2/team/two/blobs/uploads/").count(), 0);
    assert_eq!(mounts(&log, "team/two"), blobs, "every layer and the config are mounted");
    assert_eq!(log.matches("\"PUT /v2/team/two/manifests/v1").count(), 1);
    assert_eq!(report["push"][0]["report"]["blobs_mounted"], blobs);
    assert_eq!(report["push"][0]["report"]["bytes_uploaded"], 0);
    registry.pull_and_verify(&second, &ws.tmp.path().join("pulled"));
}

#[test]
fn a_push_asks_about_each_blob_once_and_small_new_blobs_go_up_without_asking() {
    let registry = Registry::start();
    let base = registry.seed("python:3.11");
    let ws = Workspace::new();
    let target = registry.reference("team/asks:v1");
    let push = ["build", "-q", "--base", &base, "--push", "--tag", &target];
    let heads = |log: &str, digest: &str| log.matches(&format!("\"HEAD /v2/team/asks/blobs/{digest} ")).count();
    let blobs = |report: &serde_json::Value| {
        let mut all: Vec<String> =
            report["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap().to_string()).collect();
        all.push(report["config"].as_str().unwrap().to_string());
        all
    };

    // A fresh cache has seen none of the app's blobs anywhere: the small
    // ones (user layer, app layer, config) go up without a HEAD; the base
    // layer is asked about, then mounted from where the base came from.
    let report = build_json(ws.oxbuild().args(push).arg(ws.app()));
    let first = registry.log();
    let all = blobs(&report);
    let base_layer = &all[0];
    assert_eq!(heads(&first, base_layer), 1, "{first}");
    for small in &all[1..] {
        assert_eq!(heads(&first, small), 0, "{small} was never seen, so it went up without asking:\n{first}");
    }
    // The artifacts (SBOMs, provenance) share the empty config: asked about once.
    let empty_config = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
    assert!(heads(&first, empty_config) <= 1, "{first}");
    registry.pull_and_verify(&target, &ws.tmp.path().join("first"));

    // The same image again: every blob was seen in team/asks, so each is
    // asked about (once) and none goes up.
    let again = build_json(ws.oxbuild().args(push).arg(ws.app()));
    assert_eq!(again["digest"], report["digest"]);
    let log = registry.log();
    let second = &log[first.len()..];
    for blob in &all {
        assert_eq!(heads(second, blob), 1, "{blob}:\n{second}");
    }
    assert_eq!(again["push"][0]["report"]["blobs_uploaded"], 0, "{again}");
}

#[test]
fn a_build_opens_upload_sessions_while_it_builds_and_closes_those_left_unused() {
    let registry = Registry::start();
    let base = registry.seed("python:3.11");
    let ws = Workspace::new();
    let target = registry.reference("team/ahead:v1");
    let push = ["build", "-q", "--base", &base, "--push", "--tag", &target];
    let count = |log: &str, what: &str| log.matches(&format!("\"{what} /v2/team/ahead/blobs/uploads/")).count();
    // Plain POSTs open sessions; mounts are POSTs with a query.
    let opened = |log: &str| log.matches("\"POST /v2/team/ahead/blobs/uploads/ ").count();
    // A session the registry still holds has its start time; a closed one
    // (by DELETE, or by the PUT that completed it) has not.
    let open_sessions = || {
        let dir = registry.storage().join("docker/registry/v2/repositories/team/ahead/_uploads");
        let sessions = std::fs::read_dir(dir).into_iter().flatten().flatten();
        sessions.filter(|s| s.path().join("startedat").exists()).count()
    };

    // The app layer, the config and the three artifacts' payloads go into
    // sessions opened while the image was built: before the push asked the
    // registry about any blob.
    // Compared by when the registry began on each request: its log is
    // written as answers complete, and a POST may finish after a HEAD that
    // was asked later.
    let report = build_json(ws.oxbuild().args(push).arg(ws.app()));
    let first = registry.log();
    let requests = registry.requests();
    let in_repo = |r: &&LoggedRequest| r.uri.starts_with("/v2/team/ahead/blobs/");
    let first_head =
        requests.iter().filter(in_repo).filter(|r| r.method == "HEAD").map(|r| r.started).fold(f64::INFINITY, f64::min);
    assert!(first_head.is_finite(), "the push asks about the base layer:\n{first}");
    let ahead = requests
        .iter()
        .filter(|r| r.method == "POST" && r.uri == "/v2/team/ahead/blobs/uploads/" && r.started < first_head)
        .count();
    assert!(ahead >= 5, "five sessions opened ahead, {ahead} were:\n{first}");
    assert_eq!(opened(&first), count(&first, "PUT") + count(&first, "DELETE"), "{first}");
    assert_eq!(count(&first, "PATCH"), 0, "one PUT per blob:\n{first}");
    assert_eq!(open_sessions(), 0, "no session is left open:\n{first}");
    registry.pull_and_verify(&target, &ws.tmp.path().join("first"));

    // The same image again: only the provenance (of this run) is new, so the
    // sessions no blob took are closed.
    let again = build_json(ws.oxbuild().args(push).arg(ws.app()));
    assert_eq!(again["digest"], report["digest"]);
    let log = registry.log();
    let second = &log[first.len()..];
    assert!(count(second, "DELETE") >= 1, "unused sessions are closed:\n{second}");
    assert_eq!(opened(second), count(second, "PUT") + count(second, "DELETE"), "{second}");
    assert_eq!(open_sessions(), 0, "no session is left open:\n{second}");

    // A build that fails (its base is not there) closes every session it opened.
    let missing = registry.reference("python:missing");
    let failed = ws
        .oxbuild()
        .args(["build", "-q", "--base", &missing, "--push", "--tag", &target])
        .arg(ws.app())
        .output()
        .unwrap();
    assert_eq!(failed.status.code(), Some(5), "{}", String::from_utf8_lossy(&failed.stderr));
    let after = registry.log();
    let third = &after[log.len()..];
    assert!(opened(third) >= 5, "{third}");
    assert_eq!(count(third, "DELETE"), opened(third), "{third}");
    assert_eq!(count(third, "PUT"), 0, "{third}");
    assert_eq!(open_sessions(), 0, "no session is left open:\n{third}");
}

#[test]
fn progress_is_one_plain_line_per_blob_moved_and_nothing_when_quiet() {
    let registry = Registry::start();
    let base = registry.seed("python:3.11");
    let ws = Workspace::new();
    let target = registry.reference("team/progress:v1");
    let (code, _, stderr) =
        run(ws.oxbuild().args(["build", "--no-attach", "--base", &base, "--push", "--tag", &target]).arg(ws.app()));
    assert_eq!(code, 0, "{stderr}");
    let lines =
        |word: &str| stderr.lines().filter(|l| l.trim_start().starts_with(word) && l.contains("sha256:")).count();
    assert_eq!(lines("downloaded"), 1, "the base layer: {stderr}");
    assert_eq!(lines("mounted"), 1, "{stderr}");
    assert_eq!(lines("uploaded"), 3, "user layer, app layer, config: {stderr}");

    let (code, _, stderr) =
        run(ws.oxbuild().args(["build", "-q", "--base", &base, "--push", "--tag", &target]).arg(ws.app()));
    assert_eq!(code, 0);
    assert!(stderr.trim().is_empty(), "quiet means quiet: {stderr}");
    // Writing a layout needs the base's bytes: they come from the local cache.
    let layout = format!("oci:{}", ws.tmp.path().join("layout").display());
    let args = ["build", "-v", "--base", &base, "--push", "--tag", &target, "--output", &layout];
    let (_, _, verbose) = run(ws.oxbuild().args(args).arg(ws.app()));
    assert!(verbose.contains("cached") && verbose.contains("present"), "-v lists blobs that did not move: {verbose}");
}

#[test]
fn chunked_uploads_send_patches_and_the_result_verifies() {
    let registry = Registry::start();
    let base = registry.seed("python:3.11");
    let dest = Registry::start();
    let ws = Workspace::new();
    let target = dest.reference("team/chunked:v1");
    let report = build_json(
        ws.oxbuild()
            .args(["build", "-q", "--base", &base, "--push", "--tag", &target, "--chunk-size", "8MiB"])
            .arg(ws.app()),
    );
    let patches = dest.log().matches("\"PATCH /v2/team/chunked/blobs/uploads/").count();
    let base_size = report["layers"][0]["size"].as_u64().unwrap();
    assert!(patches as u64 >= base_size / (8 << 20), "the base layer went up in 8 MiB pieces: {patches} PATCHes");
    assert_eq!(dest.skopeo_inspect(&target, false)["Digest"], report["digest"]);
    dest.pull_and_verify(&target, &ws.tmp.path().join("pulled"));

    let (code, _, stderr) =
        run(ws.oxbuild().args(["build", "-q", "--push", "--tag", &target, "--chunk-size", "lots"]).arg(ws.app()));
    assert_eq!(code, 3, "{stderr}");
}

#[test]
fn a_fresh_runner_with_a_cache_repo_does_not_download_the_base() {
    let registry = Registry::start();
    let base = registry.seed("python:3.11");
    let ws = Workspace::new();
    let cache_repo = registry.reference("cache/oxbuild");
    let first =
        build_json(ws.oxbuild().args(["build", "-q", "--base", &base, "--cache-repo", &cache_repo]).arg(ws.app()));

    let fresh = ws.tmp.path().join("fresh-runner");
    let target = registry.reference("team/fresh:v1");
    let (code, stdout, stderr) = run(ws
        .oxbuild()
        .env("OXBUILD_CACHE_DIR", &fresh)
        .args(["build", "--json", "--base", &base, "--cache-repo", &cache_repo, "--push", "--tag", &target])
        .arg(ws.app()));
    assert_eq!(code, 0, "{stderr}");
    let second: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(second["digest"], first["digest"]);
    assert!(stderr.contains("base scan found"), "{stderr}");
    // The base itself never comes down, and neither does the app layer: the
    // first runner stored it, with its bytecode, so nothing is compiled.
    assert!(stderr.contains("interpreter kit found"), "{stderr}");
    assert!(stderr.contains("app layer unchanged, from the cache repository"), "{stderr}");
    assert_eq!(second["bytecode"]["app"], first["bytecode"]["app"], "{}", second["bytecode"]);
    let app_layer = second["layers"].as_array().unwrap().last().unwrap()["digest"].as_str().unwrap().to_string();
    let base_layer = second["layers"][0]["digest"].as_str().unwrap();
    let downloads = |stderr: &str| -> Vec<String> {
        stderr.lines().filter(|l| l.trim_start().starts_with("downloaded")).map(String::from).collect()
    };
    // At most the small kit of the base's interpreter (fetched ahead, in case
    // something needs compiling), never a layer of the image.
    let fetched = downloads(&stderr);
    assert!(fetched.len() <= 1, "{stderr}");
    assert!(fetched.iter().all(|d| !d.contains(&base_layer[..19]) && !d.contains(&app_layer[..19])), "{stderr}");
    let blobs = fresh.join(format!("blobs-v{}", oxbuild_cache::FORMAT)).join("sha256");
    assert!(blobs.is_dir(), "{}", blobs.display());
    assert!(!blobs.join(&base_layer["sha256:".len()..]).exists());
    assert!(!blobs.join(&app_layer["sha256:".len()..]).exists());
    assert_eq!(second["push"][0]["report"]["blobs_mounted"], 2, "the base and the app layer: {}", second["push"]);
    assert_eq!(registry.skopeo_inspect(&target, false)["Digest"], second["digest"]);

    // A changed app on another fresh runner: its layer is compiled there, by
    // the kit's interpreter (the one download), and the image is the one a
    // runner without the cache repository builds.
    ws.edit("plainweb/__main__.py", "\"\"\"Serves /", "\"\"\"Changed. Serves /");
    let (code, stdout, stderr) = run(ws
        .oxbuild()
        .env("OXBUILD_CACHE_DIR", ws.tmp.path().join("third-runner"))
        .args(["build", "--json", "--base", &base, "--cache-repo", &cache_repo])
        .arg(ws.app()));
    assert_eq!(code, 0, "{stderr}");
    let third: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(!stderr.contains("app layer unchanged"), "{stderr}");
    assert!(third["bytecode"]["app"].as_u64().unwrap() > 0, "{}", third["bytecode"]);
    assert_eq!(third["bytecode"]["app_layer"], "built");
    let fetched = downloads(&stderr);
    assert_eq!(fetched.len(), 1, "the kit: {stderr}");
    assert!(!fetched[0].contains(&base_layer[..19]), "{stderr}");
    let alone = build_json(
        ws.oxbuild()
            .env("OXBUILD_CACHE_DIR", ws.tmp.path().join("alone"))
            .args(["build", "-q", "--base", &base])
            .arg(ws.app()),
    );
    assert_eq!(third["digest"], alone["digest"]);
    assert_ne!(third["digest"], first["digest"]);
}

/// A fresh runner compiles while the interpreter kit of the cache repository
/// downloads; when that download fails (here its bytes arrive corrupted),
/// the kit is read from the base instead and the image is the same.
#[test]
fn a_kit_that_fails_to_download_is_read_from_the_base() {
    let registry = Registry::start();
    let base = registry.seed("python:3.11");
    let ws = Workspace::new();
    let cache_repo = registry.reference("cache/oxbuild");
    let first =
        build_json(ws.oxbuild().args(["build", "-q", "--base", &base, "--cache-repo", &cache_repo]).arg(ws.app()));

    // The cache repository through a proxy that flips a byte of every blob
    // over 64 KiB: the kit. The app changed, so its layer must be compiled.
    ws.edit("plainweb/__main__.py", "\"\"\"Serves /", "\"\"\"Changed. Serves /");
    let alone = build_json(
        ws.oxbuild()
            .env("OXBUILD_CACHE_DIR", ws.tmp.path().join("alone"))
            .args(["build", "-q", "--base", &base])
            .arg(ws.app()),
    );
    let proxy = Proxy::start(registry.host(), Fault::CorruptBlobs);
    let through = format!("{}/cache/oxbuild", proxy.host());
    let (code, stdout, stderr) = run(ws
        .oxbuild()
        .env("OXBUILD_CACHE_DIR", ws.tmp.path().join("fresh-runner"))
        .args(["build", "--json", "--base", &base, "--cache-repo", &through])
        .arg(ws.app()));
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("interpreter kit found"), "{stderr}");
    assert!(stderr.contains("could not be fetched") && stderr.contains("reading it from the base"), "{stderr}");
    let second: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(second["digest"], alone["digest"]);
    assert_eq!(second["bytecode"]["app_layer"], "built");
    assert_eq!(second["bytecode"]["version"], first["bytecode"]["version"]);
}

/// The cache repository is verified, not trusted: with OXBUILD_CACHE_KEY an
/// entry someone changed there (a scan whose /etc/passwd gains a root
/// account) is detected, reported and rebuilt from the source, and the image
/// is bit-identical to one built without the cache repository.
#[test]
fn a_tampered_cache_repository_entry_is_detected_and_rebuilt() {
    let registry = Registry::start();
    let base = registry.seed("python:3.11");
    let ws = Workspace::new();
    let cache_repo = registry.reference("cache/oxbuild");
    let key = "fleet-Key-2718";
    let build = |cache: &str, key: Option<&str>| {
        let mut cmd = ws.oxbuild();
        cmd.env("OXBUILD_CACHE_DIR", ws.tmp.path().join(cache)).env_remove("OXBUILD_CACHE_KEY");
        if let Some(k) = key {
            cmd.env("OXBUILD_CACHE_KEY", k);
        }
        run(cmd.args(["build", "--json", "--base", &base, "--cache-repo", &cache_repo]).arg(ws.app()))
    };
    let (code, first, stderr) = build("one", Some(key));
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("unauthenticated"), "{stderr}");
    let first: serde_json::Value = serde_json::from_str(&first).unwrap();

    // Someone with push access rewrites the scan entry.
    let tags = registry.skopeo_list_tags("cache/oxbuild");
    let scan_tag = tags.iter().find(|t| t.starts_with("scan-")).expect("a scan entry").clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = oxbuild_registry::Client::new(Default::default()).unwrap();
        let tagged = oxbuild_registry::Reference::parse(&format!("{cache_repo}:{scan_tag}")).unwrap();
        let opened = oxbuild_registry::open(&client, &tagged, &oxbuild_image::Platform::host()).await.unwrap();
        let mut config = opened.image.config_json().unwrap();
        let passwd = &mut config["oxbuild"]["scan"]["etc/passwd"]["File"];
        let mut bytes: Vec<u8> = serde_json::from_value(passwd.clone()).unwrap();
        bytes.extend_from_slice(b"app:x:0:0::/root:/bin/sh\n");
        *passwd = serde_json::json!(bytes);
        let forged =
            oxbuild_image::Image::assemble(oxbuild_image::Format::Oci, &config, Vec::new(), &Default::default())
                .unwrap();
        oxbuild_registry::push(&client, &forged, &tagged, std::slice::from_ref(&scan_tag), &[]).await.unwrap();
    });

    let (code, second, stderr) = build("two", Some(key));
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("MAC does not match") && stderr.contains(&scan_tag), "reported: {stderr}");
    let second: serde_json::Value = serde_json::from_str(&second).unwrap();
    assert_eq!(second["digest"], first["digest"], "rebuilt from the source, bit for bit");

    // Without a key the entry is used, and the build says it is unauthenticated.
    let (code, _, stderr) = build("three", None);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("unauthenticated") && stderr.contains("OXBUILD_CACHE_KEY"), "{stderr}");
}

/// Package indexes fail too: the index pages and wheel downloads of a build
/// go through a proxy that fails every third request (resets, 500, 503,
/// 429 with Retry-After), and the build still installs every wheel.
#[test]
fn reliability_wheel_downloads_survive_a_flaky_index() {
    let index = oxbuild_testkit::PackageIndex::start(&oxbuild_testkit::wheelhouse());
    let upstream = index.base().trim_start_matches("http://").trim_end_matches('/').to_string();
    let proxy = Proxy::start(&upstream, Fault::Flaky { every: 3 });
    let ws = Workspace::of("pyweb");
    ws.edit_config(
        "requirements = \"requirements.txt\"",
        &format!("requirements = \"requirements.txt\"\nindex-url = \"http://{}/simple/\"", proxy.host()),
    );
    let base = format!("oci-archive:{}", oxbuild_testkit::base_archive().display());
    let report = build_json(ws.oxbuild().args(["build", "-q", "--base", &base]).arg(ws.app()));
    assert_eq!(report["python"]["wheels"].as_array().unwrap().len(), 2, "{report}");
    assert_eq!(report["python"]["downloaded"], 2);
    assert!(proxy.injected() >= 1, "the proxy failed something: {} requests", proxy.seen().len());
}

/// Several builds at once (pyweb, and plainweb from two directories),
/// sharing one cache and one registry, one of them killed midway: the others succeed, the killed one
/// succeeds when run again, and the cache is still readable.
#[test]
fn reliability_concurrent_builds_share_a_cache_and_survive_a_killed_one() {
    let registry = Registry::start();
    let base = registry.seed("python:3.11");
    let shared = tempfile::tempdir().unwrap();
    let apps = [Workspace::new(), common::offline_pyweb(), Workspace::of("plainweb")];
    let start = |i: usize| {
        let ws = &apps[i];
        ws.oxbuild()
            .env("OXBUILD_CACHE_DIR", shared.path())
            .args(["build", "-q", "--base", &base, "--push", "--tag"])
            .arg(registry.reference(&format!("team/app{i}:v1")))
            .arg(ws.app())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut children: Vec<std::process::Child> = (0..apps.len()).map(start).collect();
    // Kill the second build once it has started working (it has made the
    // cache's lock or written something), wherever it is by then.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::fs::read_dir(shared.path()).map(|d| d.count()).unwrap_or(0) == 0 && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    children[1].kill().unwrap();
    let killed = children.remove(1).wait_with_output().unwrap();
    assert!(!killed.status.success(), "the build was killed");
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "a build beside the killed one failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    // Run again, it completes, and its tag resolves to complete blobs.
    let mut again = start(1);
    let status = again.wait().unwrap();
    assert!(status.success(), "the killed build completes when run again");
    registry.pull_and_verify(&registry.reference("team/app1:v1"), &shared.path().join("pulled"));
    let (code, _, stderr) = run(apps[0].oxbuild().env("OXBUILD_CACHE_DIR", shared.path()).args(["cache", "info"]));
    assert_eq!(code, 0, "the cache is still readable: {stderr}");
}

/// `[cache] key-file` names the fleet's key: entries are signed and checked
/// under it, a file that cannot be read is an error naming it, and a key file
/// inside the app directory (which would ship in the image) is refused.
#[test]
fn a_cache_key_file_named_in_the_config_signs_and_checks_entries() {
    let registry = Registry::start();
    let base = registry.seed("python:3.11");
    let ws = Workspace::new();
    let secrets = tempfile::tempdir().unwrap();
    let key_file = secrets.path().join("cache.key");
    std::fs::write(&key_file, "fleet-secret-31415\n").unwrap();
    let cache = format!(
        "[cache]\nrepository = \"{}\"\nkey-file = \"{}\"\n",
        registry.reference("cache/oxbuild"),
        key_file.display()
    );
    ws.append_config(&cache);
    let build = |cache_dir: &str| {
        let mut cmd = ws.oxbuild();
        cmd.env("OXBUILD_CACHE_DIR", ws.tmp.path().join(cache_dir))
            .env_remove("OXBUILD_CACHE_KEY")
            .env_remove("OXBUILD_CACHE_KEY_FILE");
        run(cmd.args(["build", "-q", "--base", &base]).arg(ws.app()))
    };
    let (code, _, stderr) = build("one");
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("unauthenticated"), "the config's key is used: {stderr}");
    assert!(registry.skopeo_list_tags("cache/oxbuild").iter().any(|t| t.starts_with("scan-")));

    // Another key: every entry fails its check, is reported and rebuilt.
    std::fs::write(&key_file, "another-fleet").unwrap();
    let (code, _, stderr) = build("two");
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("MAC does not match"), "{stderr}");
    assert!(!stderr.contains("another-fleet") && !stderr.contains("fleet-secret"), "{stderr}");

    std::fs::remove_file(&key_file).unwrap();
    let (code, _, stderr) = build("three");
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains(&key_file.display().to_string()) && stderr.contains("key-file"), "{stderr}");

    let inside = ws.app().join("cache.key");
    std::fs::write(&inside, "fleet-secret-31415").unwrap();
    ws.edit_config(&format!("key-file = \"{}\"", key_file.display()), "key-file = \"cache.key\"");
    let (code, _, stderr) = build("four");
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("inside the app directory"), "{stderr}");
}

/// Builds the default app with its base pulled through a proxy with `fault`,
/// the read timeout at 2 s; returns the report and how many faults were injected.
fn build_through(fault: Fault, push: bool) -> (serde_json::Value, serde_json::Value, u64) {
    let registry = Registry::start();
    registry.seed("python:3.11");
    let proxy = Proxy::start(registry.host(), fault);
    let ws = Workspace::new();
    let base = format!("{}/python:3.11", proxy.host());
    let direct = build_json(
        ws.oxbuild()
            .env("OXBUILD_CACHE_DIR", ws.tmp.path().join("direct"))
            .args(["build", "-q", "--base", &registry.reference("python:3.11")])
            .arg(ws.app()),
    );
    let mut cmd = ws.oxbuild();
    cmd.env("OXBUILD_READ_TIMEOUT", "2s").args(["build", "-q", "--base", &base]);
    let target = format!("{}/team/faults:v1", proxy.host());
    if push {
        cmd.args(["--push", "--tag", &target]);
    }
    let report = build_json(cmd.arg(ws.app()));
    if push {
        let direct = registry.reference("team/faults:v1");
        assert_eq!(registry.skopeo_inspect(&direct, false)["Digest"], report["digest"]);
        registry.pull_and_verify(&direct, &ws.tmp.path().join("pulled"));
    }
    (report, direct, proxy.injected())
}

/// A base pulled over a link that cuts every other answer short: each cut
/// transfer is dropped (nothing half-written is kept) and tried again, and
/// the image has the same layers as one built from the base directly.
#[test]
fn reliability_a_base_pull_survives_bodies_cut_short() {
    let (report, direct, injected) = build_through(Fault::Truncate { every: 2 }, false);
    assert!(injected >= 2, "the proxy cut answers: {injected}");
    assert_eq!(report["layers"], direct["layers"]);
}

/// A base pulled over a link that stalls every third answer midway: the
/// read timeout (`OXBUILD_READ_TIMEOUT`) drops the transfer and it is tried
/// again.
#[test]
fn reliability_a_base_pull_survives_stalled_bodies() {
    let (report, direct, injected) = build_through(Fault::Stall { every: 3 }, false);
    assert!(injected >= 1, "the proxy stalled answers: {injected}");
    assert_eq!(report["layers"], direct["layers"]);
}

/// A slow link (bodies in 16 KiB pieces with a pause after each) is slow,
/// not broken: pull and push complete, and the pushed image verifies.
#[test]
fn reliability_a_build_and_push_over_a_slow_link_completes() {
    let (report, direct, _) = build_through(Fault::SlowBodies { piece: 16 * 1024, millis: 1 }, true);
    assert_eq!(report["layers"], direct["layers"]);
}

/// Wheel downloads and index pages cut short or stalled are tried again as
/// a whole; every wheel is installed and matches its lock.
#[test]
fn reliability_wheel_downloads_survive_bodies_cut_short_or_stalled() {
    for fault in [Fault::Truncate { every: 2 }, Fault::Stall { every: 3 }] {
        let index = oxbuild_testkit::PackageIndex::start(&oxbuild_testkit::wheelhouse());
        let upstream = index.base().trim_start_matches("http://").trim_end_matches('/').to_string();
        let proxy = Proxy::start(&upstream, fault);
        let ws = Workspace::of("pyweb");
        ws.edit_config(
            "requirements = \"requirements.txt\"",
            &format!("requirements = \"requirements.txt\"\nindex-url = \"http://{}/simple/\"", proxy.host()),
        );
        let base = format!("oci-archive:{}", oxbuild_testkit::base_archive().display());
        let report = build_json(
            ws.oxbuild().env("OXBUILD_READ_TIMEOUT", "2s").args(["build", "-q", "--base", &base]).arg(ws.app()),
        );
        assert_eq!(report["python"]["downloaded"], 2, "{report}");
        assert!(proxy.injected() >= 1, "the proxy broke something: {} requests", proxy.seen().len());
    }
}

/// A kill point from a seed: a request number in 1..=`of` (splitmix64, so
/// the points are spread but the same on every run).
fn kill_point(seed: u64, of: usize) -> usize {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    1 + ((z ^ (z >> 31)) % of.max(1) as u64) as usize
}

/// Runs `cmd`, SIGKILLs it once the proxy has seen `after` more requests
/// (or lets it finish if it finishes first); returns whether it was killed.
fn kill_after(mut cmd: std::process::Command, proxy: &Proxy, after: usize) -> bool {
    let start = proxy.seen().len();
    let mut child =
        cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().expect("oxbuild runs");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if proxy.seen().len() >= start + after || std::time::Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// `build --push` SIGKILLed at seeded points through its requests (the
/// base's pull, the blob uploads, the manifest, the referrers), all sharing
/// one cache: after each kill every tag of the repository resolves to
/// complete blobs, and a rerun completes with the image a clean run makes.
#[test]
fn reliability_build_push_killed_at_seeded_points_leaves_only_complete_tags() {
    let registry = Registry::start();
    registry.seed("python:3.11");
    let proxy = Proxy::start(registry.host(), Fault::Delay { millis: 15 });
    let ws = Workspace::new();
    let base = format!("{}/python:3.11", proxy.host());
    let push = |cache: &str, tag: &str| {
        let mut cmd = ws.oxbuild();
        cmd.env("OXBUILD_CACHE_DIR", ws.tmp.path().join(cache))
            .args(["build", "-q", "--base", &base, "--push", "--tag"])
            .arg(format!("{}/{tag}", proxy.host()))
            .arg(ws.app());
        cmd
    };
    // A clean run, to count the requests a whole build makes.
    let before = proxy.seen().len();
    let clean = build_json(&mut push("clean", "team/clean:v1"));
    let requests = proxy.seen().len() - before;
    assert!(requests > 10, "a build makes requests: {requests}");

    let mut killed = 0;
    for seed in 1..=5 {
        let at = kill_point(seed, requests);
        killed += usize::from(kill_after(push("shared", "team/killed:v1"), &proxy, at));
        // What the killed build left in flight lands first: a read racing
        // the registry's rewrite of the same manifest was seen to get a 500.
        // Then every tag must be whole.
        proxy.wait_idle();
        registry.assert_complete("team/killed");
    }
    assert!(killed >= 3, "most seeded points land inside the build: {killed} of 5");
    let again = build_json(&mut push("shared", "team/killed:v1"));
    assert_eq!(again["digest"], clean["digest"], "the rerun makes the clean run's image");
    assert!(registry.assert_complete("team/killed").contains(&"v1".to_string()));
    let (code, _, stderr) =
        run(ws.oxbuild().env("OXBUILD_CACHE_DIR", ws.tmp.path().join("shared")).args(["cache", "info"]));
    assert_eq!(code, 0, "the cache is still readable: {stderr}");
}

/// `copy` of a multi-platform index SIGKILLed at seeded points: the
/// destination never has a tag whose index, children or blobs are missing,
/// and a rerun completes with the source's digest.
#[test]
fn reliability_an_index_copy_killed_at_seeded_points_leaves_only_complete_tags() {
    let registry = Registry::start();
    let source = registry.seed_multi("multi/python:3.11");
    let proxy = Proxy::start(registry.host(), Fault::Delay { millis: 15 });
    let ws = Workspace::new();
    let from = format!("{}/multi/python:3.11", proxy.host());
    let copy = |to: &str| {
        let mut cmd = ws.oxbuild();
        cmd.args(["copy", "-q", &from]).arg(format!("{}/{to}", proxy.host()));
        cmd
    };
    let before = proxy.seen().len();
    let clean = build_json(&mut copy("mirror/clean:3.11"));
    let requests = proxy.seen().len() - before;
    let digest = registry.skopeo_inspect(&source, true);
    assert!(digest["manifests"].as_array().is_some_and(|m| m.len() >= 2), "an index: {digest}");

    let mut killed = 0;
    for seed in 11..=15 {
        let at = kill_point(seed, requests);
        killed += usize::from(kill_after(copy("mirror/killed:3.11"), &proxy, at));
        proxy.wait_idle();
        registry.assert_complete("mirror/killed");
    }
    assert!(killed >= 3, "most seeded points land inside the copy: {killed} of 5");
    let again = build_json(&mut copy("mirror/killed:3.11"));
    assert_eq!(again["digest"], clean["digest"]);
    assert!(registry.assert_complete("mirror/killed").contains(&"3.11".to_string()));
}
