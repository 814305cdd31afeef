//! SBOMs and provenance: exact, valid by the standard validators (installed
//! from PyPI by scripts/test-env), attached as OCI referrers through the
//! fallback tag of a real registry that lacks the referrers API, carried by
//! copy and push, and the same across two reproducible builds.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{base, build_json, commit_all, run};
use oxbuild_image::{BlobStore, Descriptor, Format, Image, Layer};
use oxbuild_registry::{Client, ClientOptions, Reference};
use oxbuild_testkit::{Fault, Proxy, Registry};
use serde_json::Value;

/// `(name, sha256)` of every pin of a pip-compile requirements file.
fn pins(requirements: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(requirements).unwrap();
    let mut out = Vec::new();
    let mut name = String::new();
    for line in text.lines() {
        if let Some((n, _)) = line.split_once("==") {
            name = n.trim().to_string();
        }
        if let Some(h) = line.trim().strip_prefix("--hash=sha256:") {
            out.push((name.clone(), h.to_string()));
        }
    }
    out
}

fn validate(dir: &Path) {
    let v = oxbuild_testkit::validators();
    let (code, out, err) =
        run(std::process::Command::new(v.join("bin/pyspdxtools")).arg("-i").arg(dir.join("sbom.spdx.json")));
    assert_eq!(code, 0, "pyspdxtools refuses the SPDX document:\n{out}\n{err}");
    let script = "import sys\nfrom cyclonedx.validation.json import JsonStrictValidator\nfrom cyclonedx.schema import SchemaVersion\n\
                  err = JsonStrictValidator(SchemaVersion.V1_6).validate_str(open(sys.argv[1]).read())\n\
                  sys.exit(f'invalid: {err}' if err else 0)\n";
    let (code, out, err) =
        run(std::process::Command::new(v.join("bin/python")).args(["-c", script]).arg(dir.join("sbom.cdx.json")));
    assert_eq!(code, 0, "cyclonedx-python-lib refuses the CycloneDX document:\n{out}\n{err}");
}

fn json_file(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn client() -> Client {
    Client::new(ClientOptions::default()).unwrap()
}

/// The referrers of `digest` in `repo` as the fallback tag lists them.
async fn fallback_index(repo: &Reference, digest: &str) -> Vec<Descriptor> {
    let tag = format!("sha256-{}", &digest["sha256:".len()..]);
    let (bytes, media_type, _) = client().get_manifest(&repo.with_tag(&tag)).await.expect("the fallback tag exists");
    assert_eq!(media_type, oxbuild_image::media::OCI_INDEX);
    let index: oxbuild_image::IndexView = serde_json::from_slice(&bytes).unwrap();
    index.manifests
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sbom_is_exact_valid_attached_carried_and_reproducible() {
    let registry = Registry::start();
    let other = Registry::start();
    let ws = common::offline_flaskapp();
    commit_all(&ws.app());
    let sbom_dir = ws.tmp.path().join("sbom");
    let target = format!("{}/team/flaskapp:v1", registry.host());
    let built = build_json(
        ws.oxbuild()
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .args(["build", "-q", "--base", &base(), "--push", "--tag", &target, "--sbom-dir"])
            .arg(&sbom_dir)
            .arg(ws.app()),
    );
    let digest = built["digest"].as_str().unwrap().to_string();
    validate(&sbom_dir);

    // Every locked package, with the sha256 the lock gave, and the base's Debian packages.
    let spdx = json_file(&sbom_dir.join("sbom.spdx.json"));
    let packages = spdx["packages"].as_array().unwrap();
    let sha_of = |name: &str| {
        packages
            .iter()
            .find(|p| p["name"] == name && p["primaryPackagePurpose"] == "LIBRARY")
            .and_then(|p| p["checksums"][0]["checksumValue"].as_str())
            .map(str::to_string)
    };
    let locked = pins(&ws.app().join("requirements.txt"));
    assert_eq!(locked.len(), 8);
    for (name, sha) in &locked {
        assert_eq!(sha_of(name).as_deref(), Some(sha.as_str()), "{name} in the SPDX document");
    }
    let python = packages.iter().find(|p| p["name"] == "python3.11").expect("the base's python3.11 package");
    assert!(python["versionInfo"].as_str().unwrap().starts_with("3.11."), "{python}");
    assert!(
        python["externalRefs"][0]["referenceLocator"].as_str().unwrap().starts_with("pkg:deb/debian/python3.11@3.11."),
        "{python}"
    );
    let cdx = json_file(&sbom_dir.join("sbom.cdx.json"));
    let numpy = cdx["components"].as_array().unwrap().iter().find(|c| c["name"] == "numpy").unwrap();
    assert_eq!(numpy["purl"], "pkg:pypi/numpy@2.4.6");
    assert_eq!(numpy["licenses"][0]["expression"], "BSD-3-Clause AND 0BSD AND MIT AND Zlib AND CC0-1.0");
    let layer = numpy["properties"].as_array().unwrap().iter().find(|p| p["name"] == "oxbuild:layer").unwrap();
    assert!(built["layers"].as_array().unwrap().iter().any(|l| l["digest"] == layer["value"]), "{layer}");
    let flask = cdx["dependencies"].as_array().unwrap().iter().find(|d| d["ref"] == "pkg:pypi/flask@3.1.3").unwrap();
    assert_eq!(flask["dependsOn"].as_array().unwrap().len(), 6, "flask's edges from the `# via` comments: {flask}");
    assert_eq!(spdx["creationInfo"]["created"], "2023-11-14T22:13:20Z");

    // Attached through the fallback tag: each artifact names the image as its subject.
    let repo = Reference::parse(&format!("{}/team/flaskapp", registry.host())).unwrap();
    let listed = fallback_index(&repo, &digest).await;
    let mut types: Vec<&str> = listed.iter().filter_map(|d| d.artifact_type.as_deref()).collect();
    types.sort();
    assert_eq!(types, ["application/spdx+json", "application/vnd.cyclonedx+json", "application/vnd.in-toto+json"]);
    let mut provenance = None;
    for d in &listed {
        let pulled =
            oxbuild_registry::open(&client(), &repo.with_digest(d.digest.clone()), &oxbuild_image::Platform::host())
                .await
                .unwrap();
        assert_eq!(pulled.image.subject().unwrap().digest.as_str(), digest, "the subject is the image");
        if d.artifact_type.as_deref() == Some("application/vnd.in-toto+json") {
            let layer = &pulled.image.layers()[0].descriptor;
            provenance = Some(client().get_blob_bytes(&repo, layer).await.unwrap());
        }
    }
    let statement: Value = serde_json::from_slice(&provenance.unwrap()).unwrap();
    assert_eq!(
        statement,
        json_file(&sbom_dir.join("provenance.intoto.json")),
        "the attached provenance is the written one"
    );
    assert_eq!(statement["subject"][0]["digest"]["sha256"], digest["sha256:".len()..]);
    let (_, base_out, _) = run(ws.oxbuild().args(["inspect", "--json", &base()]));
    let base_digest: Value = serde_json::from_str(&base_out).unwrap();
    let resolved = &statement["predicate"]["buildDefinition"]["resolvedDependencies"];
    assert_eq!(resolved[0]["digest"]["sha256"], base_digest["digest"].as_str().unwrap()["sha256:".len()..]);
    assert!(resolved.as_array().unwrap().iter().any(|r| r["digest"]["gitCommit"].is_string()), "{resolved}");

    // `oxbuild sbom` reads back what was attached, byte for byte.
    let (code, printed, err) = run(ws.oxbuild().args(["sbom", &target]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(printed.trim_end().as_bytes(), std::fs::read(sbom_dir.join("sbom.spdx.json")).unwrap());

    // copy to an oci-archive, then push it to another registry: the referrers come along.
    let moved = format!("{}/air/gapped:v1", other.host());
    common::carry_through_archive(&ws, &target, &moved);
    let there = fallback_index(&Reference::parse(&format!("{}/air/gapped", other.host())).unwrap(), &digest).await;
    assert_eq!(there.len(), 3, "{there:?}");
    let (code, printed, err) = run(ws.oxbuild().args(["sbom", "--format", "cyclonedx", &moved]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(printed.trim_end().as_bytes(), std::fs::read(sbom_dir.join("sbom.cdx.json")).unwrap());
    let inspected: Value = serde_json::from_str(&run(ws.oxbuild().args(["inspect", "--json", &moved])).1).unwrap();
    assert_eq!(inspected["referrers"].as_array().unwrap().len(), 3, "{inspected}");

    // A second, fresh build of the same checkout: the same image and the same SBOMs.
    let again = ws.tmp.path().join("sbom-again");
    let rebuilt = build_json(
        ws.oxbuild()
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .env("OXBUILD_CACHE_DIR", ws.tmp.path().join("fresh-cache"))
            .args(["build", "-q", "--base", &base(), "--sbom-dir"])
            .arg(&again)
            .arg(ws.app()),
    );
    assert_eq!(rebuilt["digest"], built["digest"]);
    for file in ["sbom.spdx.json", "sbom.cdx.json"] {
        assert_eq!(std::fs::read(again.join(file)).unwrap(), std::fs::read(sbom_dir.join(file)).unwrap(), "{file}");
    }
}

/// A config-only image and two artifacts that refer to it.
fn subject_and_artifacts(store: &BlobStore) -> (Image, Image, Image) {
    let config =
        serde_json::json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}});
    let subject = Image::assemble(Format::Oci, &config, Vec::new(), &BTreeMap::new()).unwrap();
    let artifact = |text: &str| {
        let digest = store.insert_bytes(text.as_bytes()).unwrap();
        let payload =
            Layer::file(Descriptor::new("application/example", digest.clone(), text.len() as u64), store.path(&digest));
        Image::artifact("application/example", payload, &subject.descriptor(), &BTreeMap::new())
    };
    let (a, b) = (artifact("first"), artifact("second"));
    (subject, a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_referrers_attached_at_once_are_both_listed() {
    let registry = Registry::start();
    // Writer A's update of the fallback index is held until writer B's has
    // landed, and B's check waits until A's stale write has replaced it.
    let proxy = Proxy::start(registry.host(), Fault::HoldFirstPut { path: "/manifests/sha256-" });
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).unwrap();
    let (subject, a, b) = subject_and_artifacts(&store);
    let repo = Reference::parse(&format!("{}/team/app", proxy.host())).unwrap();
    oxbuild_registry::push(&client(), &subject, &repo, &["v1".into()], &[]).await.unwrap();

    let (repo_a, a_copy) = (repo.clone(), a.clone());
    let first = tokio::spawn(async move { oxbuild_registry::attach(&client(), &repo_a, &a_copy).await });
    let proxy = std::sync::Arc::new(proxy);
    let p = proxy.clone();
    assert!(tokio::task::spawn_blocking(move || p.wait_held()).await.unwrap(), "writer A's PUT is held");
    oxbuild_registry::attach(&client(), &repo, &b).await.expect("writer B attaches");
    first.await.unwrap().expect("writer A attaches");

    let listed = oxbuild_registry::referrers(&client(), &repo, &subject.digest()).await.unwrap();
    let digests: Vec<_> = listed.iter().map(|d| d.digest.clone()).collect();
    assert!(digests.contains(&a.digest()) && digests.contains(&b.digest()), "{digests:?}");
    let puts = proxy.seen().iter().filter(|s| s.method == "PUT" && s.path.contains("/manifests/sha256-")).count();
    assert!(puts >= 3, "B found its entry lost and wrote again ({puts} index writes)");
}

#[test]
fn no_attach_pushes_the_image_alone_and_a_docker_archive_says_it_cannot_carry_referrers() {
    let registry = Registry::start();
    let ws = common::offline_pyweb();
    let target = format!("{}/team/pyweb:v1", registry.host());
    let built = build_json(
        ws.oxbuild().args(["build", "-q", "--base", &base(), "--push", "--no-attach", "--tag", &target]).arg(ws.app()),
    );
    assert_eq!(built["referrers"].as_array().unwrap().len(), 0);
    let (code, _, err) = run(ws.oxbuild().args(["sbom", &target]));
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("has no spdx SBOM attached") && err.contains("--no-attach"), "{err}");

    let docker = ws.tmp.path().join("image.tar");
    let (code, _, err) = run(ws
        .oxbuild()
        .args(["build", "--base", &base(), "--output", &format!("docker-archive:{}", docker.display())])
        .arg(ws.app()));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("docker-archive has no place for referrers") && err.contains("oci-archive:"), "{err}");
}
