//! The engine as a library, without the `oxbuild` binary: build the bundled
//! example on a base in a real registry, push it, and read it back.

use std::sync::{Arc, Mutex};

use oxbuild_cache::Cache;
use oxbuild_engine::{Events, Request, Services, assemble};
use oxbuild_registry::{Client, ClientOptions, Reference};
use oxbuild_testkit::Registry;

/// Events kept for the test to read.
#[derive(Default)]
struct Recorded(Mutex<Vec<String>>);

impl Events for Recorded {
    fn step(&self, message: &str) {
        self.0.lock().unwrap().push(message.to_string());
    }
    fn detail(&self, _: &str) {}
    fn warn(&self, message: &str) {
        self.0.lock().unwrap().push(format!("warning: {message}"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn builds_and_pushes_an_image_without_the_binary() {
    let registry = Registry::start();
    let base = registry.seed("python:3.11");
    let tmp = tempfile::tempdir().unwrap();
    let cache = Cache::open(tmp.path().join("cache")).unwrap();
    let client = Client::new(ClientOptions {
        blob_locations: Some(Arc::new(oxbuild_engine::CacheLocations(cache.clone()))),
        ..Default::default()
    })
    .unwrap();
    let events = Arc::new(Recorded::default());
    let services = Services::new(client, cache.clone(), events.clone()).unwrap();

    let mut request = Request::new(oxbuild_testkit::repo_root().join("testdata/plainweb"));
    request.base = Some(base.clone());
    request.test_variant = true;
    let built = assemble(&request, &services).await.unwrap();
    assert!(built.test.is_some());
    assert_eq!(built.platform.architecture, oxbuild_image::Platform::host().architecture);
    assert_eq!(built.resolved_base.as_ref().unwrap().registry, registry.host());
    let steps = events.0.lock().unwrap().clone();
    assert!(steps.iter().any(|s| s.starts_with("reading base")), "{steps:?}");

    let target: Reference = Reference::parse(&registry.reference("lib/app:v1")).unwrap();
    let image = &built.prod.image;
    let report =
        oxbuild_registry::push(&services.client, image, &target, &["v1".to_string()], &built.mount_from).await.unwrap();
    assert!(report.blobs_mounted >= 1, "the base's layers were mounted: {report:?}");
    assert_eq!(registry.skopeo_inspect(&target.to_string(), false)["Digest"], image.digest().to_string());
    registry.pull_and_verify(&target.to_string(), &tmp.path().join("pulled"));

    // The same request again is the same image, from the cache (no base download).
    let again = assemble(&request, &services).await.unwrap();
    assert_eq!(again.prod.image.digest(), image.digest());

    // A bad request is a typed error, not a panic.
    let mut bad = Request::new(tmp.path().join("no-such-app"));
    bad.base = Some(base);
    let err = assemble(&bad, &services).await.unwrap_err();
    assert_eq!(err.kind, oxbuild_engine::Kind::Config, "{err}");
}
