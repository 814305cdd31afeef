//! Platforms: choosing one from a multi-platform base, and building several
//! at once under one index. The base is real: Debian's amd64 minbase and an
//! arm64 root filesystem unpacked without emulation, under one OCI index
//! that podman made (scripts/test-env).

mod common;

use std::time::{Duration, Instant};

use common::{Workspace, build_json, offline_pyweb, run};
use oxbuild_testkit::{Container, Registry, http_get};
use serde_json::Value;

fn raw(registry: &Registry, reference: &str) -> Value {
    registry.skopeo_inspect(reference, true)
}

#[test]
fn the_platform_is_chosen_from_an_index_and_a_missing_one_lists_what_exists() {
    let registry = Registry::start();
    let multi = registry.seed_multi("python:multi");
    let index = raw(&registry, &multi);
    let amd64 =
        index["manifests"].as_array().unwrap().iter().find(|m| m["platform"]["architecture"] == "amd64").unwrap();
    let ws = Workspace::new();

    let report =
        build_json(ws.oxbuild().args(["build", "-q", "--base", &multi, "--platform", "linux/amd64"]).arg(ws.app()));
    assert!(report["base"].as_str().unwrap().ends_with(amd64["digest"].as_str().unwrap()), "{report}");
    assert_eq!(report["platform"], "linux/amd64");
    let report =
        build_json(ws.oxbuild().args(["build", "-q", "--base", &multi, "--platform", "linux/arm64"]).arg(ws.app()));
    assert_eq!(report["platform"], "linux/arm64");

    let (code, _, stderr) =
        run(ws.oxbuild().args(["build", "-q", "--base", &multi, "--platform", "linux/s390x"]).arg(ws.app()));
    assert_eq!(code, 5, "{stderr}");
    assert!(stderr.contains("linux/s390x") && stderr.contains("linux/amd64, linux/arm64"), "{stderr}");

    let (code, _, stderr) =
        run(ws.oxbuild().args(["build", "-q", "--base", &multi, "--platform", "linux"]).arg(ws.app()));
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("--platform"), "{stderr}");
}

/// A base that is one image, not an index, is the platform it is: a
/// --platform it does not have is refused, naming both, and without one the
/// report says what was really built.
#[test]
fn a_single_image_base_is_its_own_platform() {
    let ws = Workspace::new();
    let amd64 = format!("oci-archive:{}", oxbuild_testkit::base_archive().display());
    let (code, stdout, stderr) =
        run(ws.oxbuild().args(["build", "-q", "--base", &amd64, "--platform", "linux/s390x"]).arg(ws.app()));
    assert_eq!(code, 4, "{stderr}");
    assert!(stderr.contains("linux/amd64") && stderr.contains("linux/s390x"), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");

    let arm64 = format!("oci-archive:{}", oxbuild_testkit::arm64_base_archive().display());
    let report = build_json(ws.oxbuild().args(["build", "-q", "--base", &arm64]).arg(ws.app()));
    assert!(report["platform"].as_str().unwrap().starts_with("linux/arm64"), "{report}");
}

/// The machine type of an ELF file (62: x86-64, 183: AArch64).
fn elf_machine(bytes: &[u8]) -> u16 {
    assert_eq!(&bytes[..4], b"\x7fELF", "not an ELF file");
    u16::from_le_bytes([bytes[18], bytes[19]])
}

#[test]
fn a_two_platform_index_is_pushed_runs_copies_and_rebuilds_to_the_same_digest() {
    let registry = Registry::start();
    let elsewhere = Registry::start();
    let multi = registry.seed_multi("python:multi");
    let ws = offline_pyweb();
    let target = format!("{}/team/pyweb:v1", registry.host());
    let platforms = "linux/amd64,linux/arm64";
    let build = |ws: &Workspace, extra: &[&str]| {
        build_json(
            ws.oxbuild().args(["build", "-q", "--base", &multi, "--platform", platforms]).args(extra).arg(ws.app()),
        )
    };
    let key = ws.tmp.path().join("key.pem");
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl").args(args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    openssl(&["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key.to_str().unwrap()]);
    let public = ws.tmp.path().join("key.pub");
    openssl(&["pkey", "-in", key.to_str().unwrap(), "-pubout", "-out", public.to_str().unwrap()]);
    let report = build(&ws, &["--push", "--tag", &target, "--sign-key", key.to_str().unwrap()]);
    let digest = report["digest"].as_str().unwrap();

    // The index has the provenance (naming both platforms); each image its SBOMs and signature.
    let fallback = format!("{}/team/pyweb:sha256-{}", registry.host(), &digest["sha256:".len()..]);
    let listed = raw(&registry, &fallback);
    let types: Vec<&str> =
        listed["manifests"].as_array().unwrap().iter().filter_map(|m| m["artifactType"].as_str()).collect();
    assert_eq!(types, ["application/vnd.in-toto+json"], "{listed}");
    let (code, verified, err) = run(ws.oxbuild().args(["verify", "--json", &target, "--key"]).arg(&public));
    assert_eq!(code, 0, "{err}\n{verified}");
    let verified: Value = serde_json::from_str(&verified).unwrap();
    assert_eq!(verified["index"], digest, "{verified}");
    let manifests = report["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 2, "{report}");
    assert!(manifests.iter().all(|m| m["python"]["wheels"].as_array().unwrap().len() == 2), "{report}");

    // skopeo sees the index with both platforms; it is a manifest list, as the healthcheck needs Docker media types.
    let index = raw(&registry, &target);
    assert_eq!(index["mediaType"], "application/vnd.docker.distribution.manifest.list.v2+json");
    let archs: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(archs, ["amd64", "arm64"]);
    assert_eq!(registry.skopeo_inspect(&target, false)["Digest"], digest, "tags point at the index");

    // Each image has its own SBOM: the arm64 one lists the aarch64 wheel.
    let (code, sbom, err) = run(ws.oxbuild().args(["sbom", "--platform", "linux/arm64", &target]));
    assert_eq!(code, 0, "{err}");
    assert!(sbom.contains("aarch64") && !sbom.contains("x86_64.whl"), "the arm64 image's SBOM");

    // The arm64 child's native extension is an AArch64 ELF file.
    let layout = ws.tmp.path().join("arm64");
    let out = std::process::Command::new("skopeo")
        .args(["copy", "--quiet", "--src-tls-verify=false", "--override-arch", "arm64"])
        .arg(format!("docker://{target}"))
        .arg(format!("oci:{}", layout.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut machines = Vec::new();
    for entry in std::fs::read_dir(layout.join("blobs/sha256")).unwrap() {
        let path = entry.unwrap().path();
        if flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap()).header().is_none() {
            continue;
        }
        for (name, _) in common::layer_entries(&path) {
            if name.contains("markupsafe/_speedups") && name.ends_with(".so") {
                machines.push((name.clone(), elf_machine(&common::layer_file(&path, &name).unwrap())));
            }
        }
    }
    assert!(!machines.is_empty() && machines.iter().all(|(_, m)| *m == 183), "{machines:?}");

    // podman on this amd64 machine runs the amd64 member, and it gets healthy.
    let (container, port) = Container::serve(&target, 8000);
    let (status, _) = http_get(port, "/health", Duration::from_secs(60))
        .unwrap_or_else(|| panic!("no HTTP answer; logs:\n{}", container.logs()));
    assert_eq!(status, 200);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !container.healthcheck() {
        assert!(Instant::now() < deadline, "never healthy; logs:\n{}", container.logs());
        std::thread::sleep(Duration::from_millis(500));
    }

    // copy to another repository and to an oci-archive, then push the archive: the same digests.
    let copy = format!("{}/team/copy:v1", registry.host());
    let (code, _, err) = run(ws.oxbuild().args(["copy", &target, &copy]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(raw(&registry, &copy), index);
    let archive = format!("oci-archive:{}", ws.tmp.path().join("index.tar").display());
    let (code, _, err) = run(ws.oxbuild().args(["copy", &target, &archive]));
    assert_eq!(code, 0, "{err}");
    let moved = format!("{}/air/pyweb:v1", elsewhere.host());
    let (code, stdout, err) = run(ws.oxbuild().args(["push", "--json", &archive, &moved]));
    assert_eq!(code, 0, "{err}");
    let pushed: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(pushed["digest"], digest);
    assert_eq!(elsewhere.skopeo_inspect(&moved, false)["Digest"], digest);
    let (code, carried, err) = run(ws.oxbuild().args(["sbom", "--platform", "linux/arm64", &moved]));
    assert_eq!(code, 0, "the SBOMs crossed the air gap with the index: {err}");
    assert_eq!(carried, sbom);
    let (code, stdout, _) = run(ws.oxbuild().args(["inspect", "--json", &moved]));
    assert_eq!(code, 0);
    let inspected: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(inspected["manifests"].as_array().unwrap().len(), 2, "{inspected}");

    // A fresh build elsewhere gives the same index, and so does `all` of this base's platforms.
    let again = offline_pyweb();
    let rebuilt = build(&again, &[]);
    assert_eq!(rebuilt["digest"], digest);
    let all = build_json(again.oxbuild().args(["build", "-q", "--base", &multi, "--platform", "all"]).arg(again.app()));
    assert_eq!(all["platforms"], serde_json::json!(["linux/amd64", "linux/arm64"]));
    assert_eq!(all["digest"], digest);
}

#[test]
fn a_platform_without_wheels_fails_every_platform_it_must_and_publishes_nothing() {
    let registry = Registry::start();
    let multi = registry.seed_multi("python:multi");
    // The flask app's wheelhouse has x86_64 wheels only (numpy, markupsafe).
    let ws = common::offline_flaskapp();
    let target = format!("{}/team/flask:v1", registry.host());
    let (code, stdout, stderr) = run(ws
        .oxbuild()
        .args(["build", "--base", &multi, "--platform", "linux/amd64,linux/arm64", "--push", "--tag", &target])
        .arg(ws.app()));
    assert_eq!(code, 4, "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("1 of 2 platforms failed (linux/arm64)"), "{stderr}");
    assert!(stderr.contains("aarch64") && (stderr.contains("numpy") || stderr.contains("markupsafe")), "{stderr}");
    let tags = std::process::Command::new("skopeo")
        .args(["list-tags", "--tls-verify=false"])
        .arg(format!("docker://{}/team/flask", registry.host()))
        .output()
        .unwrap();
    assert!(!tags.status.success() || !String::from_utf8_lossy(&tags.stdout).contains("v1"), "no tag was published");

    let (code, _, stderr) = run(ws
        .oxbuild()
        .args(["build", "--base", &multi, "--platform", "linux/amd64,linux/arm64", "--output"])
        .arg(format!("docker-archive:{}", ws.tmp.path().join("x.tar").display()))
        .arg(ws.app()));
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("docker-archive holds one image") && stderr.contains("oci-archive:"), "{stderr}");
}

#[test]
fn the_pipeline_assesses_and_checks_the_native_member_and_publishes_the_index() {
    let registry = Registry::start();
    let multi = registry.seed_multi("python:multi");
    let ws = offline_pyweb();
    common::commit_all(&ws.app());
    let (code, stdout, stderr) = run(ws
        .oxbuild()
        .env("CONTAINERS_CONF", oxbuild_testkit::containers_conf())
        .env("OXBUILD_PUBLISH_REPOSITORY", registry.reference("team/pyweb"))
        .args(["pipeline", "--json", "--base", &multi, "--platform", "linux/amd64,linux/arm64"])
        .arg(ws.app()));
    assert_eq!(code, 0, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let stage = |name: &str| report["stages"].as_array().unwrap().iter().find(|s| s["stage"] == name).unwrap().clone();
    let build = stage("build");
    let index_digest = build["digest"].as_str().unwrap().to_string();
    assert_eq!(build["manifests"].as_array().unwrap().len(), 2, "{build}");
    for name in ["assess", "health"] {
        let s = stage(name);
        assert_eq!(s["status"], "passed", "{s}");
        assert_eq!(s["detail"]["ran_on"], "linux/amd64", "{s}");
        let arm = &s["detail"]["not_run"][0];
        assert_eq!(arm["platform"], "linux/arm64");
        assert_eq!(arm["run"], false);
        assert!(arm["native_extensions"].as_u64().unwrap() > 0, "{arm}");
        assert!(arm["extensions_for_other_machines"].as_array().unwrap().is_empty(), "{arm}");
        assert!(arm["note"].as_str().unwrap().contains("was not run"), "{arm}");
    }
    let publish = stage("publish");
    assert_eq!(publish["detail"]["digest"], index_digest.as_str());
    let tags = publish["detail"]["tags"].as_array().unwrap();
    assert!(!tags.is_empty(), "on main the policy tags latest and the commit: {publish}");
    for tag in tags {
        let reference = registry.reference(&format!("team/pyweb:{}", tag.as_str().unwrap()));
        assert_eq!(
            registry.skopeo_inspect(&reference, false)["Digest"],
            index_digest.as_str(),
            "tags point at the index"
        );
    }
}

#[test]
fn a_fresh_runner_with_a_warm_cache_repository_builds_both_platforms_without_a_wheel() {
    let registry = Registry::start();
    let multi = registry.seed_multi("python:multi");
    let cache_repo = registry.reference("cache/oxbuild");
    let ws = offline_pyweb();
    let args = ["build", "--base", &multi, "--platform", "linux/amd64,linux/arm64", "--cache-repo", &cache_repo];
    let first = build_json(ws.oxbuild().args(args).arg(ws.app()));
    assert!(first["manifests"].as_array().unwrap().iter().all(|m| m["python"]["reused"] == false), "{first}");

    // No wheels at all on the fresh runner: its find-links directory is empty.
    let empty = ws.tmp.path().join("no-wheels");
    std::fs::create_dir_all(&empty).unwrap();
    let fresh = Workspace::of("pyweb");
    fresh.edit_config(
        "requirements = \"requirements.txt\"",
        &format!("requirements = \"requirements.txt\"\nfind-links = [\"{}\"]\nno-index = true", empty.display()),
    );
    let (code, stdout, stderr) = run(fresh.oxbuild().args(args).arg("--json").arg(fresh.app()));
    assert_eq!(code, 0, "{stderr}");
    let second: Value = serde_json::from_str(&stdout).unwrap();
    for m in second["manifests"].as_array().unwrap() {
        assert_eq!(m["python"]["source"], "cache repository", "{m}");
        assert_eq!(m["python"]["downloaded"], 0, "{m}");
    }
    assert!(stderr.matches("dependency layer found").count() == 2, "{stderr}");
}
