//! Bytecode: every `.py` oxbuild puts in an image has a `.pyc` that the
//! image's own interpreter uses as it is, for the production image and the
//! test variant, on one architecture or another.

mod common;

use std::path::Path;

use common::{Workspace, base, blob_in, build_json, layer_entries, layer_file, offline_pyweb, run};
use oxbuild_image::{Descriptor, Platform, canonical_json, media};
use oxbuild_registry::{Client, ClientOptions, Reference};
use oxbuild_testkit::{Registry, arm64_base_archive, podman_output, unique_name};

/// Run in the image by its own interpreter: imports `modules`, then checks
/// that every imported module from the venv or the app has a `.pyc` whose
/// header matches its source exactly as it is (timestamp form, the source's
/// mtime and size), which is what makes the interpreter use it.
const CHECK: &str = r#"
import importlib, importlib.util, os, sys
for m in sys.argv[1:]:
    importlib.import_module(m)
checked, bad = 0, []
for name, mod in sorted(sys.modules.items()):
    f = getattr(mod, "__file__", None) or ""
    if not f.endswith(".py") or not (f.startswith("/opt/venv/") or f.startswith("/app/")):
        continue
    checked += 1
    try:
        head = open(importlib.util.cache_from_source(f), "rb").read(16)
    except OSError as e:
        bad.append("no pyc for %s (%s)" % (f, e)); continue
    st = os.stat(f)
    want = importlib.util.MAGIC_NUMBER + (0).to_bytes(4, "little") + (int(st.st_mtime) & 0xFFFFFFFF).to_bytes(4, "little") + (st.st_size & 0xFFFFFFFF).to_bytes(4, "little")
    if head != want:
        bad.append("stale pyc for %s" % f)
print(checked)
print("\n".join(bad))
"#;

/// Loads the image at `archive` into podman and runs CHECK and `python -v`
/// on `modules` in it, as the image's user; returns how many modules were checked.
fn check_in_podman(archive: &Path, modules: &[&str]) -> usize {
    let name = format!("localhost/{}:bytecode", unique_name("oxbuild-test"));
    let out = podman_output(&["load", "-q", "-i", &archive.display().to_string()]);
    assert!(out.status.success(), "podman load: {}", String::from_utf8_lossy(&out.stderr));
    let loaded = String::from_utf8_lossy(&out.stdout).trim().rsplit(' ').next().unwrap_or("").to_string();
    let out = podman_output(&["tag", &loaded, &name]);
    assert!(out.status.success(), "podman tag: {}", String::from_utf8_lossy(&out.stderr));
    let mut args = vec!["run", "--rm", "--entrypoint", "python", &name, "-c", CHECK];
    args.extend_from_slice(modules);
    let out = podman_output(&args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let mut lines = stdout.lines();
    let checked: usize = lines.next().unwrap().trim().parse().unwrap();
    let bad: Vec<&str> = lines.filter(|l| !l.is_empty()).collect();
    assert!(bad.is_empty(), "{bad:#?}");
    // And the interpreter itself says so: nothing is compiled from source.
    let imports = modules.iter().map(|m| format!("import {m}")).collect::<Vec<_>>().join("; ");
    let out = podman_output(&["run", "--rm", "--entrypoint", "python", &name, "-v", "-c", &imports]);
    let verbose = String::from_utf8_lossy(&out.stderr);
    let compiled: Vec<&str> = verbose
        .lines()
        .filter(|l| l.starts_with("# code object from /") || l.contains("bytecode is stale"))
        .filter(|l| l.contains("/opt/venv/") || l.contains("/app/"))
        .collect();
    assert!(compiled.is_empty(), "modules compiled at start: {compiled:#?}");
    let _ = podman_output(&["rmi", "-f", &name, &loaded]);
    checked
}

/// A cache named by a relative path (`OXBUILD_CACHE_DIR=.cache/oxbuild`, as
/// a CI job may set it) still compiles with the base's own interpreter,
/// which runs from a directory of its own, not from the one the build
/// started in.
#[test]
fn a_relative_cache_directory_still_compiles_with_the_bases_interpreter() {
    let ws = offline_pyweb();
    let report = build_json(
        ws.oxbuild()
            .current_dir(ws.tmp.path())
            .env("OXBUILD_CACHE_DIR", "relative-cache")
            .args(["build", "-q", "--base"])
            .arg(base())
            .arg("--output")
            .arg(format!("oci:{}", ws.tmp.path().join("layout").display()))
            .arg("app"),
    );
    let bytecode = &report["bytecode"];
    assert_eq!(bytecode["interpreter"], "the base's /usr/bin/python3.11", "{bytecode}");
    assert!(report["python"]["compiled"].as_u64().unwrap() > 50, "{}", report["python"]);
    assert!(ws.tmp.path().join("relative-cache").is_dir(), "the cache is where it was named");
}

#[test]
fn production_and_test_images_load_every_module_from_bytecode() {
    let ws = offline_pyweb();
    let prod = ws.tmp.path().join("prod.tar");
    let report = build_json(
        ws.oxbuild()
            .args(["build", "-q", "--base"])
            .arg(base())
            .arg("--output")
            .arg(format!("docker-archive:{}", prod.display()))
            .arg(ws.app()),
    );
    let bytecode = &report["bytecode"];
    assert_eq!(bytecode["compiled"], true, "{bytecode}");
    assert_eq!(bytecode["interpreter"], "the base's /usr/bin/python3.11", "{bytecode}");
    assert!(bytecode["version"].as_str().unwrap().starts_with("3.11.2"), "{bytecode}");
    assert!(report["python"]["compiled"].as_u64().unwrap() > 50, "gunicorn and markupsafe: {}", report["python"]);
    assert!(bytecode["app"].as_u64().unwrap() >= 2, "{bytecode}");
    let checked = check_in_podman(&prod, &["pyweb.app", "gunicorn.app.wsgiapp", "markupsafe"]);
    assert!(checked > 10, "{checked} modules checked");

    let test = ws.tmp.path().join("test.tar");
    let report = build_json(
        ws.oxbuild()
            .args(["build", "-q", "--variant", "test", "--base"])
            .arg(base())
            .arg("--output")
            .arg(format!("docker-archive:{}", test.display()))
            .arg(ws.app()),
    );
    assert!(report["python"]["test"]["compiled"].as_u64().unwrap() > 50, "pytest: {}", report["python"]["test"]);
    let checked = check_in_podman(&test, &["pyweb.app", "pytest", "tests.test_app"]);
    assert!(checked > 50, "{checked} modules checked");
}

/// A checkout's `__pycache__` never reaches the image; a source that does
/// not compile is skipped with a warning, as pip does.
#[test]
fn checkout_bytecode_is_dropped_and_bad_sources_are_skipped() {
    let ws = Workspace::new();
    let pkg = ws.app().join("plainweb");
    std::fs::create_dir_all(pkg.join("__pycache__")).unwrap();
    std::fs::write(pkg.join("__pycache__/stale.cpython-39.pyc"), b"not from this image").unwrap();
    std::fs::write(pkg.join("legacy.py"), "print 'python 2'\n").unwrap();
    // A source in a CJK encoding compiles: its codec is an extension module
    // of the base's standard library, which the interpreter's kit carries.
    std::fs::write(pkg.join("hanzi.py"), b"# -*- coding: big5 -*-\nTEXT = '\xa4\xa4\xa4\xe5'\n").unwrap();
    let layout = ws.tmp.path().join("layout");
    let (code, stdout, stderr) = run(ws
        .oxbuild()
        .args(["build", "--json", "--base"])
        .arg(base())
        .arg("--output")
        .arg(format!("oci:{}", layout.display()))
        .arg(ws.app()));
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("legacy.py was not byte-compiled") && stderr.contains("SyntaxError"), "{stderr}");
    assert!(stderr.contains("the image's Python 3.11.2 cannot import it"), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let app = report["added"].as_array().unwrap().last().unwrap()["digest"].as_str().unwrap().to_string();
    let names: Vec<String> = layer_entries(&blob_in(&layout, &app)).into_iter().map(|(n, _)| n).collect();
    assert!(names.iter().any(|n| n == "app/plainweb/__pycache__/__main__.cpython-311.pyc"), "{names:?}");
    assert!(names.iter().any(|n| n == "app/plainweb/legacy.py"), "the source itself stays: {names:?}");
    assert!(names.iter().any(|n| n == "app/plainweb/__pycache__/hanzi.cpython-311.pyc"), "{names:?}");
    assert!(!stderr.contains("hanzi.py"), "{stderr}");
    assert!(!names.iter().any(|n| n.contains("stale") || n.contains("legacy.cpython")), "{names:?}");

    // compile-bytecode = false ships none.
    ws.edit_config("[app]", "[python]\ncompile-bytecode = false\n\n[app]");
    let report = build_json(ws.oxbuild().args(["build", "-q", "--base"]).arg(base()).arg(ws.app()));
    assert_eq!(report["bytecode"]["mode"], "off");
    assert_ne!(report["added"], serde_json::Value::Null);
}

/// A two-platform base (the amd64 and the arm64 test bases under one index):
/// the arm64 image is compiled by the amd64 member's interpreter on this
/// x86_64 machine, and its pure-Python bytecode is byte for byte the amd64 image's.
#[test]
fn an_arm64_image_gets_the_same_bytecode_from_the_runnable_member() {
    let registry = Registry::start();
    let amd64 = Reference::parse(&registry.seed("python:3.11-amd64")).unwrap();
    let arm64 = Reference::parse(&registry.seed_archive(&arm64_base_archive(), "python:3.11-arm64")).unwrap();
    let multi = amd64.with_tag("multi");
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let client = Client::new(ClientOptions::default()).unwrap();
        let mut entries = Vec::new();
        for (r, arch) in [(&amd64, "amd64"), (&arm64, "arm64")] {
            let (bytes, media_type, digest) = client.get_manifest(r).await.unwrap();
            let mut d = Descriptor::new(media_type, digest, bytes.len() as u64);
            d.platform = Some(Platform { os: "linux".into(), architecture: arch.into(), variant: None });
            entries.push(d);
        }
        let index = serde_json::json!({"schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": entries});
        client.put_manifest(&multi, "multi", &canonical_json(&index), media::OCI_INDEX).await.unwrap();
    });
    let ws = offline_pyweb();
    let pyc = "opt/venv/lib/python3.11/site-packages/gunicorn/__pycache__/__init__.cpython-311.pyc";
    let mut found = Vec::new();
    for platform in ["linux/amd64", "linux/arm64"] {
        let layout = ws.tmp.path().join(platform.replace('/', "-"));
        let report = build_json(
            ws.oxbuild()
                .args(["build", "-q", "--base", &multi.to_string(), "--platform", platform, "--output"])
                .arg(format!("oci:{}", layout.display()))
                .arg(ws.app()),
        );
        assert_eq!(report["bytecode"]["compiled"], true, "{platform}: {}", report["bytecode"]);
        let deps = report["python"]["layer"].as_str().unwrap();
        let blob = blob_in(&layout, deps);
        found.push((
            report["bytecode"]["interpreter"].clone(),
            layer_file(&blob, pyc).expect("the pyc is in the layer"),
        ));
    }
    assert_eq!(found[0].0, "the base's /usr/bin/python3.11");
    assert_eq!(found[1].0, "the base's /usr/bin/python3.11 of its linux/amd64 image", "the runnable member compiled");
    assert_eq!(found[0].1, found[1].1, "the same bytecode bytes on both architectures");
}

/// An app layer an earlier build wrote is taken again when nothing that
/// decides its bytes changed (nothing is compiled, and what compiling it
/// warned about is said again); a file's content or mode, or the epoch,
/// changes its key, and it is written again.
#[test]
fn an_unchanged_app_layer_is_reused_and_any_change_writes_it_again() {
    let ws = Workspace::new();
    std::fs::write(ws.app().join("plainweb/legacy.py"), "print 'python 2'\n").unwrap();
    let build = |epoch: &str| {
        let (code, stdout, stderr) = run(ws
            .oxbuild()
            .env("SOURCE_DATE_EPOCH", epoch)
            .args(["build", "--json", "--base"])
            .arg(base())
            .arg(ws.app()));
        assert_eq!(code, 0, "{stderr}");
        assert!(stderr.contains("legacy.py was not byte-compiled"), "{stderr}");
        let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        (report["digest"].as_str().unwrap().to_string(), report["bytecode"].clone(), stderr)
    };
    let (first, bytecode, _) = build("0");
    assert_eq!(bytecode["app_layer"], "built", "{bytecode}");
    assert!(bytecode["app"].as_u64().unwrap() >= 2, "{bytecode}");

    let (again, reused, stderr) = build("0");
    assert_eq!(again, first);
    assert_eq!(reused["app_layer"], "local cache", "{reused}");
    assert_eq!(reused["app"], bytecode["app"], "the count of the build that compiled it");
    assert!(stderr.contains("app layer unchanged, from the local cache: nothing compiled"), "{stderr}");

    use std::os::unix::fs::PermissionsExt as _;
    let legacy = ws.app().join("plainweb/legacy.py");
    std::fs::set_permissions(&legacy, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (moded, report, _) = build("0");
    assert_eq!(report["app_layer"], "built", "a mode changed");
    assert_ne!(moded, first);

    let (dated, report, _) = build("1700000000");
    assert_eq!(report["app_layer"], "built", "another epoch");
    assert_ne!(dated, moded);

    std::fs::write(&legacy, "print('python 3')\n").unwrap();
    let (fixed, report, _) = {
        let (code, stdout, stderr) = run(ws.oxbuild().args(["build", "--json", "--base"]).arg(base()).arg(ws.app()));
        assert_eq!(code, 0, "{stderr}");
        assert!(!stderr.contains("not byte-compiled"), "{stderr}");
        let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        (report["digest"].as_str().unwrap().to_string(), report["bytecode"].clone(), stderr)
    };
    assert_eq!(report["app_layer"], "built", "a file changed");
    assert_eq!(report["app"].as_u64().unwrap(), bytecode["app"].as_u64().unwrap() + 1, "{report}");
    assert_ne!(fixed, moded);
}

/// A rebuild starts the interpreter that compiled the last build of the same
/// base while the base is read (a hint in the cache); a hint that no longer
/// fits is left aside and corrected, and neither changes a byte of the image.
#[test]
fn a_rebuild_starts_the_last_interpreter_early_and_a_wrong_guess_changes_nothing() {
    let ws = Workspace::new();
    // Every build compiles the app: the app layer the last one kept is
    // forgotten first (it would be reused as it is, with nothing to compile).
    let build = || {
        for record in std::fs::read_dir(ws.bucket("layers")).into_iter().flatten().filter_map(Result::ok) {
            if record.file_name().to_string_lossy().starts_with("app-") {
                std::fs::remove_file(record.path()).unwrap();
            }
        }
        let report = build_json(ws.oxbuild().args(["build", "-q", "--base"]).arg(base()).arg(ws.app()));
        assert_eq!(report["bytecode"]["app_layer"], "built", "{}", report["bytecode"]);
        report
    };
    let first = build();
    let bucket = ws.cache().join(format!("interpreters-v{}", oxbuild_cache::FORMAT));
    let hints: Vec<_> = std::fs::read_dir(&bucket)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("hint-"))
        .collect();
    assert_eq!(hints.len(), 1, "one hint for the one base: {hints:?}");
    let read = || serde_json::from_slice::<serde_json::Value>(&std::fs::read(&hints[0]).unwrap()).unwrap();
    let hint = read();
    assert_eq!(hint["value"]["probe"]["version"], first["bytecode"]["version"], "{hint}");

    // The kit's interpreter starts from compiled codecs: its zip has them
    // only as `.pyc` (their sources are gone), and it compiled the app.
    let kits: Vec<_> = std::fs::read_dir(&bucket)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path().join("root/usr/lib/python311.zip"))
        .filter(|p| p.is_file())
        .collect();
    assert_eq!(kits.len(), 1, "one kit: {kits:?}");
    let zipped = zip::ZipArchive::new(std::fs::File::open(&kits[0]).unwrap()).unwrap();
    let names: Vec<String> = zipped.file_names().map(|n| n.unwrap().into_owned()).collect();
    for startup in ["encodings/__init__", "encodings/aliases", "encodings/utf_8"] {
        assert!(names.contains(&format!("{startup}.pyc")), "{startup}.pyc in {names:?}");
        assert!(!names.contains(&format!("{startup}.py")), "{startup}.py in {names:?}");
    }
    assert!(names.contains(&"encodings/cp1252.py".to_string()), "other codecs stay sources: {names:?}");
    assert!(first["bytecode"]["app"].as_u64().unwrap() > 0, "{}", first["bytecode"]);

    let warm = build();
    assert_eq!(warm["digest"], first["digest"]);
    assert_eq!(warm["bytecode"], first["bytecode"]);

    // A guess at another interpreter is not used: the report names the one
    // the base has, and the hint says so again afterwards.
    let mut wrong = hint.clone();
    wrong["value"]["probe"]["version"] = serde_json::json!("3.11.99 (a wrong guess)");
    std::fs::write(&hints[0], wrong.to_string()).unwrap();
    let guessed = build();
    assert_eq!(guessed["digest"], first["digest"]);
    assert_eq!(guessed["bytecode"], first["bytecode"]);
    assert_eq!(read()["value"]["probe"]["version"], first["bytecode"]["version"]);

    // A guess at a kit that is not there starts nothing.
    let mut gone = hint;
    gone["value"]["kit_key"] = serde_json::json!("interpreter-kit-v2-gone");
    std::fs::write(&hints[0], gone.to_string()).unwrap();
    let again = build();
    assert_eq!(again["digest"], first["digest"]);
    assert_eq!(again["bytecode"], first["bytecode"]);
}

/// `[app] root`: a folder's contents go into the workdir (a Dockerfile's
/// `COPY src .`), compiled like any app, and `.dockerignore` still reads
/// paths from the project's root.
#[test]
fn a_folder_of_the_project_is_the_app_with_its_bytecode() {
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.app().join("src")).unwrap();
    std::fs::rename(ws.app().join("plainweb"), ws.app().join("src/plainweb")).unwrap();
    std::fs::write(ws.app().join("src/notes.txt"), "not for the image\n").unwrap();
    std::fs::write(ws.app().join(".dockerignore"), "src/notes.txt\n").unwrap();
    ws.edit_config("include = [\"plainweb\"]", "root = \"src\"");
    let layout = ws.tmp.path().join("layout");
    let report = build_json(
        ws.oxbuild()
            .args(["build", "-q", "--base"])
            .arg(base())
            .arg("--output")
            .arg(format!("oci:{}", layout.display()))
            .arg(ws.app()),
    );
    let app = report["added"].as_array().unwrap().last().unwrap()["digest"].as_str().unwrap().to_string();
    let names: Vec<String> = layer_entries(&blob_in(&layout, &app)).into_iter().map(|(n, _)| n).collect();
    assert!(names.iter().any(|n| n == "app/plainweb/__main__.py"), "{names:?}");
    assert!(names.iter().any(|n| n == "app/plainweb/__pycache__/__main__.cpython-311.pyc"), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("app/src") || n.contains("notes.txt")), "{names:?}");
    assert!(!names.iter().any(|n| n.contains("oxbuild.toml")), "{names:?}");

    // A root that is no folder of the project is named before anything is read.
    ws.edit_config("root = \"src\"", "root = \"source\"");
    let (code, _, stderr) = run(ws.oxbuild().args(["build", "-q", "--base"]).arg(base()).arg(ws.app()));
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("[app] root names") && stderr.contains("source"), "{stderr}");
}
