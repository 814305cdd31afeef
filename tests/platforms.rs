//! Choosing the platform from a multi-platform base.

mod common;

use common::{Workspace, build_json, run};
use oxbuild_image::{Descriptor, Platform, canonical_json, media};
use oxbuild_registry::{Client, ClientOptions, Reference};
use oxbuild_testkit::Registry;

/// Pushes an index to `registry` at `python:multi` whose amd64 entry is the
/// seeded base and whose arm64/v8 entry is the same manifest (the bytes do
/// not matter for choosing).
fn push_index(registry: &Registry) -> (String, oxbuild_image::Digest) {
    let base = Reference::parse(&registry.seed("python:3.11")).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = Client::new(ClientOptions::default()).unwrap();
        let (bytes, media_type, digest) = client.get_manifest(&base).await.unwrap();
        let entry = |os: &str, arch: &str, variant: Option<&str>| {
            let mut d = Descriptor::new(media_type.clone(), digest.clone(), bytes.len() as u64);
            d.platform = Some(Platform { os: os.into(), architecture: arch.into(), variant: variant.map(Into::into) });
            d
        };
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media::OCI_INDEX,
            "manifests": [entry("linux", "arm64", Some("v8")), entry("linux", "amd64", None)],
        });
        let multi = base.with_tag("multi");
        client.put_manifest(&multi, "multi", &canonical_json(&index), media::OCI_INDEX).await.unwrap();
        (multi.to_string(), digest)
    })
}

#[test]
fn the_platform_is_chosen_from_an_index_and_a_missing_one_lists_what_exists() {
    let registry = Registry::start();
    let (multi, amd64_digest) = push_index(&registry);
    let ws = Workspace::new();

    let report =
        build_json(ws.oxbuild().args(["build", "-q", "--base", &multi, "--platform", "linux/amd64"]).arg(ws.app()));
    assert!(report["base"].as_str().unwrap().ends_with(amd64_digest.as_str()), "{report}");
    assert_eq!(report["platform"], "linux/amd64");

    let (code, _, stderr) =
        run(ws.oxbuild().args(["build", "-q", "--base", &multi, "--platform", "linux/s390x"]).arg(ws.app()));
    assert_eq!(code, 5, "{stderr}");
    assert!(stderr.contains("linux/s390x") && stderr.contains("linux/arm64/v8, linux/amd64"), "{stderr}");

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
