//! Same inputs, same digest: from two copies in different directories, with
//! different file times and umask-dependent modes.

mod common;

use std::time::{Duration, SystemTime};

use common::{Workspace, build_json};
use oxbuild_testkit::Registry;

fn disturb(dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt as _;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            disturb(&path);
        } else {
            let f = std::fs::File::options().append(true).open(&path).unwrap();
            f.set_modified(SystemTime::now() + Duration::from_secs(7200)).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o664)).unwrap();
        }
    }
}

#[test]
fn two_copies_give_the_same_digest_and_one_byte_changes_only_the_app_layer() {
    let registry = Registry::start();
    let base = registry.seed("python:3.11");
    let one = Workspace::new();
    let two = Workspace::new();
    disturb(&two.app());
    assert_ne!(one.app(), two.app());

    let a = build_json(one.oxbuild().args(["build", "-q", "--base", &base]).arg(one.app()));
    let b = build_json(two.oxbuild().args(["build", "-q", "--base", &base]).arg(two.app()));
    assert_eq!(a["digest"], b["digest"], "the same app must give the same manifest digest");
    assert_eq!(a["config"], b["config"]);

    let main = two.app().join("plainweb/__main__.py");
    let mut text = std::fs::read_to_string(&main).unwrap();
    text.push('\n');
    std::fs::write(&main, text).unwrap();
    let c = build_json(two.oxbuild().args(["build", "-q", "--base", &base]).arg(two.app()));
    assert_ne!(a["digest"], c["digest"]);
    let (la, lc) = (a["layers"].as_array().unwrap(), c["layers"].as_array().unwrap());
    assert_eq!(la.len(), lc.len());
    let last = la.len() - 1;
    assert_eq!(la[..last], lc[..last], "only the app layer may change");
    assert_ne!(la[last], lc[last]);

    // SOURCE_DATE_EPOCH moves every timestamp, and so the digest.
    let d = build_json(
        one.oxbuild().env("SOURCE_DATE_EPOCH", "1700000000").args(["build", "-q", "--base", &base]).arg(one.app()),
    );
    assert_ne!(a["digest"], d["digest"]);
}

fn git(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("git").arg("-C").arg(dir).args(args).output().unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn two_git_clones_give_the_same_digest_and_carry_git_labels() {
    let registry = Registry::start();
    let base = registry.seed("python:3.11");
    let origin = Workspace::new();
    let repo = origin.app();
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "."]);
    git(&repo, &["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "app"]);
    git(&repo, &["tag", "v1.0.0"]);

    let clone = |name: &str| {
        let dir = origin.tmp.path().join(name);
        let out = std::process::Command::new("git").args(["clone", "-q"]).arg(&repo).arg(&dir).output().unwrap();
        assert!(out.status.success());
        dir
    };
    let (one, two) = (clone("one"), clone("two"));
    // Checkouts made at different times have different file times; git does not keep them.
    let later = std::fs::File::options().append(true).open(two.join("plainweb/__main__.py")).unwrap();
    later.set_modified(SystemTime::now() + Duration::from_secs(600)).unwrap();

    let layout = origin.tmp.path().join("layout");
    let a = build_json(
        origin
            .oxbuild()
            .args(["build", "-q", "--base", &base, "--output"])
            .arg(format!("oci:{}", layout.display()))
            .arg(&one),
    );
    let b = build_json(origin.oxbuild().args(["build", "-q", "--base", &base]).arg(&two));
    assert_eq!(a["digest"], b["digest"]);

    let config = layout.join("blobs/sha256").join(&a["config"].as_str().unwrap()["sha256:".len()..]);
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(config).unwrap()).unwrap();
    let labels = &config["config"]["Labels"];
    assert_eq!(labels["version"], "v1.0.0");
    assert_eq!(labels["branch"], "main");
    assert_eq!(labels["commit"].as_str().unwrap().len(), 40);
    assert_eq!(labels["org.opencontainers.image.revision"], labels["commit"]);
    assert_eq!(labels["org.opencontainers.image.created"], "1970-01-01T00:00:00Z");
}
