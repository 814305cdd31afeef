//! The Python dependency layer: real PyPI wheels, a native extension, console
//! scripts, another architecture, caches, and the errors a lock can cause.

mod common;

use std::io::Read as _;

use base64::Engine as _;
use std::path::Path;
use std::time::Duration;

use common::{Workspace, base, blob_in, build_json, layer_entries, layer_file, offline_pyweb, run};
use oxbuild_testkit::{Container, IndexOptions, PackageIndex, Registry, arm64_base_archive, http_get, wheelhouse};

#[test]
fn native_wheels_and_console_scripts_run_in_podman() {
    let registry = Registry::start();
    let ws = offline_pyweb();
    let target = registry.reference("team/pyweb:v1");
    let report =
        build_json(ws.oxbuild().args(["build", "-q", "--base", &base(), "--push", "--tag", &target]).arg(ws.app()));
    let wheels = report["python"]["wheels"].as_array().unwrap();
    assert_eq!(wheels.len(), 2, "colorama's marker is for win32 only: {wheels:?}");
    assert!(wheels.iter().any(|w| w.as_str().unwrap().contains("x86_64")));

    // gunicorn is the entrypoint: it must be found on PATH in the venv.
    let (container, port) = Container::serve(&target, 8000);
    let (status, body) = http_get(port, "/", Duration::from_secs(60))
        .unwrap_or_else(|| panic!("no answer; logs:\n{}", container.logs()));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("&lt;b&gt;oxbuild&lt;/b&gt;") && body.contains("\"native\": true"), "{body}");
    let which = container.exec(&["sh", "-c", "command -v gunicorn && echo $VIRTUAL_ENV"]);
    assert_eq!(String::from_utf8_lossy(&which.stdout), "/opt/venv/bin/gunicorn\n/opt/venv\n");
    let owner = container.exec(&["stat", "-c", "%u", "/opt/venv/lib/python3.11/site-packages/markupsafe/__init__.py"]);
    assert_eq!(String::from_utf8_lossy(&owner.stdout).trim(), "0", "dependencies are root's, not the app's");
}

/// With `compression = "zstd"` the dependency layer is zstd like the others,
/// gets its own cache key (a gzip build does not reuse it), and runs.
#[test]
fn zstd_covers_the_dependency_layer_too() {
    let registry = Registry::start();
    let ws = offline_pyweb();
    let toml = ws.app().join("oxbuild.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    // zstd needs OCI media types, so no [healthcheck].
    let text =
        text[..text.find("[healthcheck]").unwrap()].replace("ports = [8000]", "ports = [8000]\ncompression = \"zstd\"");
    std::fs::write(&toml, text).unwrap();
    let target = registry.reference("team/pyweb-zstd:v1");
    let report =
        build_json(ws.oxbuild().args(["build", "-q", "--base", &base(), "--push", "--tag", &target]).arg(ws.app()));
    let added = report["added"].as_array().unwrap();
    let deps = added.iter().find(|l| l["digest"] == report["python"]["layer"]).expect("the dependency layer is added");
    assert_eq!(deps["mediaType"], "application/vnd.oci.image.layer.v1.tar+zstd", "{report}");
    assert!(added.iter().all(|l| l["mediaType"] == deps["mediaType"]), "{added:?}");

    ws.edit_config("compression = \"zstd\"", "compression = \"gzip\"");
    let gzip = build_json(ws.oxbuild().args(["build", "-q", "--base", &base()]).arg(ws.app()));
    assert_ne!(gzip["python"]["key"], report["python"]["key"]);
    assert_eq!(gzip["python"]["source"], "built", "{gzip}");

    let (container, port) = Container::serve(&target, 8000);
    let (status, body) = http_get(port, "/", Duration::from_secs(60))
        .unwrap_or_else(|| panic!("no answer; logs:\n{}", container.logs()));
    assert_eq!(status, 200, "{body}");
}

#[test]
fn an_arm64_target_gets_aarch64_wheels_on_this_machine() {
    let ws = offline_pyweb();
    let layout = ws.tmp.path().join("layout");
    let report = build_json(
        ws.oxbuild()
            .args(["build", "-q", "--platform", "linux/arm64", "--base"])
            .arg(format!("oci-archive:{}", arm64_base_archive().display()))
            .arg("--output")
            .arg(format!("oci:{}", layout.display()))
            .arg(ws.app()),
    );
    assert_eq!(report["python"]["machine"], "aarch64");
    let wheels = report["python"]["wheels"].to_string();
    assert!(wheels.contains("manylinux2014_aarch64") && !wheels.contains("x86_64"), "{wheels}");
    let deps = blob_in(&layout, report["python"]["layer"].as_str().unwrap());
    let entries = layer_entries(&deps);
    let so = entries
        .iter()
        .find(|(p, _)| p.contains("markupsafe/_speedups") && p.ends_with(".so"))
        .unwrap_or_else(|| panic!("no extension module in {entries:?}"));
    assert!(so.0.contains("aarch64"), "{}", so.0);

    // The extension really is an aarch64 ELF file (e_machine 183).
    let head = layer_file(&deps, &so.0).expect("the extension is in the layer");
    assert_eq!(&head[..4], b"\x7fELF");
    assert_eq!(u16::from_le_bytes([head[18], head[19]]), 183);
}

#[test]
fn the_dependency_layer_is_identical_across_clean_builds_and_reused_when_the_lock_is_unchanged() {
    let one = offline_pyweb();
    let two = offline_pyweb();
    let a = build_json(one.oxbuild().args(["build", "-q", "--base", &base()]).arg(one.app()));
    let b = build_json(two.oxbuild().args(["build", "-q", "--base", &base()]).arg(two.app()));
    assert_eq!(a["python"]["layer"], b["python"]["layer"]);
    assert_eq!(a["digest"], b["digest"]);
    assert_eq!(a["python"]["reused"], false);

    // An app change leaves the lock alone: the layer is reused without touching a wheel.
    one.edit("pyweb/app.py", "oxbuild", "oxbuild!");
    let c = build_json(one.oxbuild().args(["build", "-q", "--base", &base()]).arg(one.app()));
    assert_eq!(c["python"]["reused"], true);
    assert_eq!(c["python"]["layer"], a["python"]["layer"]);
    assert_ne!(c["digest"], a["digest"]);
}

#[test]
fn wheels_come_from_pypi_once_and_then_from_the_cache() {
    let ws = Workspace::of("pyweb");
    let first = build_json(ws.oxbuild().args(["build", "-q", "--base", &base()]).arg(ws.app()));
    assert_eq!(first["python"]["downloaded"], 2, "{}", first["python"]);
    // Without the layer cache, the wheels are still in the blob store by hash.
    std::fs::remove_dir_all(ws.bucket("layers")).unwrap();
    let second = build_json(ws.oxbuild().args(["build", "-q", "--base", &base()]).arg(ws.app()));
    assert_eq!(second["python"]["downloaded"], 0, "{}", second["python"]);
    assert_eq!(second["python"]["reused"], false);
    assert_eq!(second["python"]["layer"], first["python"]["layer"]);
}

fn assert_build_error(ws: &Workspace, code: i32, needles: &[&str]) {
    let (got, _, stderr) = run(ws.oxbuild().args(["build", "-q", "--base", &base()]).arg(ws.app()));
    assert_eq!(got, code, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for n in needles {
        assert!(stderr.contains(n), "`{n}` missing from: {stderr}");
    }
}

#[test]
fn a_hash_mismatch_is_refused() {
    let ws = offline_pyweb();
    ws.edit("requirements.txt", "378b26b9", "00000000");
    assert_build_error(&ws, 4, &["gunicorn==27.0.1", "requirements.txt:2", "hash"]);
    // The wheel the lock does not allow was streamed into the cache but never committed.
    let gunicorn = "378b26b9a38adcf4592f28828233c1716acc55e833ea06bf48719782efaa0d10";
    let blobs = ws.bucket("blobs").join("sha256");
    assert!(blobs.is_dir(), "the cache was used: {}", blobs.display());
    assert!(!blobs.join(gunicorn).exists());
    let partial: Vec<_> =
        std::fs::read_dir(ws.bucket("blobs")).unwrap().flatten().filter(|e| e.path().is_file()).collect();
    assert!(partial.iter().all(|e| !e.file_name().to_string_lossy().starts_with(".partial")), "{partial:?}");
}

#[test]
fn a_target_without_a_fitting_wheel_is_named_with_the_tags_tried() {
    let ws = offline_pyweb();
    let only_arm = ws.tmp.path().join("arm-only");
    std::fs::create_dir_all(&only_arm).unwrap();
    for entry in std::fs::read_dir(wheelhouse()).unwrap() {
        let entry = entry.unwrap();
        if !entry.file_name().to_string_lossy().contains("x86_64") {
            std::fs::copy(entry.path(), only_arm.join(entry.file_name())).unwrap();
        }
    }
    ws.edit_config(&format!("[\"{}\"]", wheelhouse().display()), &format!("[\"{}\"]", only_arm.display()));
    assert_build_error(
        &ws,
        4,
        &["markupsafe==3.0.4", "no wheel fits", "x86_64", "cp311-cp311-manylinux_2_36_x86_64", "aarch64.whl"],
    );
}

#[test]
fn an_sdist_only_package_says_how_to_supply_a_wheel() {
    let ws = offline_pyweb();
    let house = ws.tmp.path().join("sdists");
    std::fs::create_dir_all(&house).unwrap();
    std::fs::write(house.join("onlysource-1.0.tar.gz"), b"not really").unwrap();
    std::fs::write(house.join("alsosource-2.0.tar.gz"), b"not really").unwrap();
    ws.edit_config(
        &format!("find-links = [\"{}\"]", wheelhouse().display()),
        &format!("find-links = [\"{}\", \"{}\"]", wheelhouse().display(), house.display()),
    );
    std::fs::write(ws.app().join("requirements.txt"), "onlysource==1.0\ngunicorn==27.0.1\nalsosource==2.0\n").unwrap();
    // Every source-only package in one run, not one per run: here each is
    // built, and each is named as not a valid sdist.
    assert_build_error(
        &ws,
        4,
        &["2 packages cannot be installed", "onlysource-1.0.tar.gz: not a valid .tar.gz", "alsosource-2.0.tar.gz"],
    );
    // A runner that cannot run the base's interpreter (an arm64 base here)
    // and has no python3.11 cannot build them, and says how to go on.
    let empty = ws.tmp.path().join("no-python");
    std::fs::create_dir_all(&empty).unwrap();
    let arm64 = format!("oci-archive:{}", oxbuild_testkit::arm64_base_archive().display());
    let (code, _, stderr) = run(ws.oxbuild().env("PATH", &empty).args(["build", "-q", "--base", &arm64]).arg(ws.app()));
    assert_eq!(code, 4, "{stderr}");
    for needle in [
        "2 packages cannot be installed",
        "onlysource==1.0",
        "alsosource==2.0",
        "no Python 3.11 to build it with (the base's own cannot run on this runner): put python3.11 on PATH",
        "pip wheel",
    ] {
        assert!(stderr.contains(needle), "`{needle}`: {stderr}");
    }
}

#[test]
fn a_wheel_escaping_the_environment_is_refused() {
    let ws = offline_pyweb();
    let house = ws.tmp.path().join("evil");
    std::fs::create_dir_all(&house).unwrap();
    let script = format!(
        "import zipfile\nz = zipfile.ZipFile('{}/evil-1.0-py3-none-any.whl', 'w')\nz.writestr('../../../etc/evil', 'x')\nz.writestr('evil-1.0.dist-info/WHEEL', 'Wheel-Version: 1.0\\n')\nz.writestr('evil-1.0.dist-info/RECORD', '')\nz.close()\n",
        house.display()
    );
    let out = std::process::Command::new("python3").args(["-c", &script]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    ws.edit_config(
        &format!("find-links = [\"{}\"]", wheelhouse().display()),
        &format!("find-links = [\"{}\"]", house.display()),
    );
    std::fs::write(ws.app().join("requirements.txt"), "evil==1.0\n").unwrap();
    assert_build_error(&ws, 4, &["evil-1.0-py3-none-any.whl", "../../../etc/evil", "outside the environment"]);
}

#[test]
fn an_unpinned_requirement_names_the_line_and_the_fix() {
    let ws = offline_pyweb();
    std::fs::write(ws.app().join("requirements.txt"), "gunicorn==27.0.1\nmarkupsafe>=3\n").unwrap();
    assert_build_error(&ws, 3, &["requirements.txt:2", "markupsafe>=3", "uv pip compile"]);
}

/// Locks pin exact versions, and PEP 592 lets an exact pin use a yanked
/// file: the build goes on and says so, on stderr and in --json, also when
/// the layer is reused from the cache.
#[test]
fn a_yanked_pin_is_installed_with_a_warning() {
    let index = PackageIndex::start(&wheelhouse());
    index.yank("gunicorn", "use 27.0.2");
    let ws = Workspace::of("pyweb");
    ws.edit_config(
        "requirements = \"requirements.txt\"",
        &format!("requirements = \"requirements.txt\"\nindex-url = \"{}\"", index.url()),
    );
    let (code, stdout, stderr) = run(ws.oxbuild().args(["build", "--json", "--base", &base()]).arg(ws.app()));
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("gunicorn==27.0.1 is yanked on its index (use 27.0.2)"), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let yanked = report["python"]["yanked"].as_array().unwrap();
    assert_eq!(yanked.len(), 1, "markupsafe is not yanked: {yanked:?}");
    assert!(yanked[0].as_str().unwrap().starts_with("gunicorn==27.0.1"), "{yanked:?}");

    // Reused from the layer cache, the layer still says so.
    let (code, stdout, stderr) = run(ws.oxbuild().args(["build", "--json", "--base", &base()]).arg(ws.app()));
    assert_eq!(code, 0, "{stderr}");
    let again: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(again["python"]["reused"], true);
    assert!(stderr.contains("gunicorn==27.0.1 is yanked"), "{stderr}");
    assert_eq!(again["python"]["yanked"], report["python"]["yanked"]);
}

#[test]
fn a_fresh_runner_with_a_cache_repo_downloads_no_wheel() {
    let index = PackageIndex::start(&wheelhouse());
    let registry = Registry::start();
    let ws = Workspace::of("pyweb");
    ws.edit_config(
        "requirements = \"requirements.txt\"",
        &format!("requirements = \"requirements.txt\"\nindex-url = \"{}\"", index.url()),
    );
    let cache_repo = registry.reference("cache/deps");

    let first =
        build_json(ws.oxbuild().args(["build", "-q", "--base", &base(), "--cache-repo", &cache_repo]).arg(ws.app()));
    assert_eq!(first["python"]["source"], "built");
    assert_eq!(index.wheel_downloads(), 2, "gunicorn and markupsafe came from the index");

    // Another runner: an empty local cache, the same cache repository.
    let fresh = ws.tmp.path().join("fresh-runner-cache");
    let second = build_json(
        ws.oxbuild()
            .env("OXBUILD_CACHE_DIR", &fresh)
            .env("OXBUILD_CACHE_REPO", &cache_repo)
            .args(["build", "-q", "--base", &base()])
            .arg(ws.app()),
    );
    assert_eq!(second["python"]["source"], "cache repository");
    assert_eq!(index.wheel_downloads(), 2, "no wheel was downloaded again");
    assert_eq!(second["python"]["layer"], first["python"]["layer"]);
    assert_eq!(second["digest"], first["digest"]);
    // The cache repository's record says what the layer puts on PATH, so a
    // command that nothing installs is named on such a runner too.
    ws.edit_config("entrypoint = [\"gunicorn\",", "entrypoint = [\"celery\",");
    let third_runner = ws.tmp.path().join("third-runner-cache");
    let celery = build_json(
        ws.oxbuild()
            .env("OXBUILD_CACHE_DIR", &third_runner)
            .env("OXBUILD_CACHE_REPO", &cache_repo)
            .args(["build", "-q", "--base", &base()])
            .arg(ws.app()),
    );
    assert_eq!(celery["python"]["source"], "cache repository");
    assert!(celery["warnings"].to_string().contains("entrypoint runs `celery`"), "{}", celery["warnings"]);
    ws.edit_config("entrypoint = [\"celery\",", "entrypoint = [\"gunicorn\",");

    // Pushed to the same registry, the cached layer is mounted, never downloaded.
    let target = registry.reference("team/pyweb:v1");
    let third = build_json(
        ws.oxbuild()
            .env("OXBUILD_CACHE_DIR", &fresh)
            .args(["build", "-q", "--base", &base(), "--cache-repo", &cache_repo, "--push", "--tag", &target])
            .arg(ws.app()),
    );
    let layer = third["python"]["layer"].as_str().unwrap();
    let blobs = fresh.join(format!("blobs-v{}", oxbuild_cache::FORMAT)).join("sha256");
    assert!(blobs.is_dir(), "the fresh runner has a blob cache: {}", blobs.display());
    assert!(!blobs.join(&layer["sha256:".len()..]).exists(), "the layer stayed in the registry");
    assert!(third["push"][0]["report"]["blobs_mounted"].as_u64().unwrap() >= 1, "{}", third["push"]);
    assert_eq!(registry.skopeo_inspect(&target, false)["Digest"], third["digest"]);
}

#[test]
fn pylock_and_uv_lock_install_the_same_layer_as_the_requirements_file() {
    let plain = offline_pyweb();
    let reference = build_json(plain.oxbuild().args(["build", "-q", "--base", &base()]).arg(plain.app()));
    for lock in ["pylock.toml", "uv.lock"] {
        // Offline: the wheels come from the find-links wheelhouse, checked against the lock's hashes.
        let ws = offline_pyweb();
        ws.edit_config("requirements = \"requirements.txt\"", &format!("lock = \"{lock}\""));
        let report = build_json(ws.oxbuild().args(["build", "-q", "--base", &base()]).arg(ws.app()));
        assert_eq!(report["python"]["wheels"], reference["python"]["wheels"], "{lock}");
        assert_eq!(report["python"]["layer"], reference["python"]["layer"], "{lock}");
    }
    // Online, from the URLs the lock names: no index is asked.
    let ws = Workspace::of("pyweb");
    ws.edit_config("requirements = \"requirements.txt\"", "lock = \"uv.lock\"\nno-index = true");
    let report = build_json(ws.oxbuild().args(["build", "-q", "--base", &base()]).arg(ws.app()));
    assert_eq!(report["python"]["downloaded"], 2, "{}", report["python"]);
    assert_eq!(report["python"]["layer"], reference["python"]["layer"]);
}

#[test]
fn private_index_credentials_stay_out_of_output_and_image() {
    let secret = "idx-T0ken-9f8e7d";
    // The index demands credentials and sends downloads to a file host on
    // another origin, as indexes with a CDN do: the credentials must reach
    // the index and nothing else, redirect or not.
    let files = PackageIndex::start(&wheelhouse());
    let index = PackageIndex::start_with(
        &wheelhouse(),
        IndexOptions {
            auth: Some(("ci-bot".into(), secret.into())),
            files_at: Some(files.base()),
            ..IndexOptions::default()
        },
    );
    let with_credentials = index.url().replace("http://", &format!("http://ci-bot:{secret}@"));
    let ws = Workspace::of("pyweb");
    ws.edit_config(
        "requirements = \"requirements.txt\"",
        &format!("requirements = \"requirements.txt\"\nindex-url = \"{with_credentials}\""),
    );
    let layout = ws.tmp.path().join("layout");
    let (code, stdout, stderr) = run(ws
        .oxbuild()
        .args(["build", "--json", "--base", &base(), "--output"])
        .arg(format!("oci:{}", layout.display()))
        .arg(ws.app()));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(files.wheel_downloads(), 2, "the wheels came from the file host, through the redirect");
    let expected = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("ci-bot:{secret}")));
    let asked = index.requests();
    assert!(asked.iter().any(|r| r.line.starts_with("GET /simple/")), "{asked:?}");
    assert!(asked.iter().all(|r| r.authorization.as_deref() == Some(expected.as_str())), "{asked:?}");
    assert!(asked.iter().any(|r| r.status == 302), "downloads were redirected: {asked:?}");
    assert!(files.requests().iter().all(|r| r.authorization.is_none()), "{:?}", files.requests());
    assert!(!stdout.contains(secret) && !stderr.contains(secret), "the index token leaked into the output");
    // Nor into any blob of the image (config and every layer, decompressed).
    for entry in std::fs::read_dir(layout.join("blobs/sha256")).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let mut plain = Vec::new();
        if flate2::read::GzDecoder::new(bytes.as_slice()).read_to_end(&mut plain).is_err() {
            plain = bytes;
        }
        assert!(!plain.windows(secret.len()).any(|w| w == secret.as_bytes()), "the index token is in a blob");
    }
    // The SBOM beside the image names the index each package came from, without its credentials.
    let (code, sbom, stderr) =
        run(ws.oxbuild().args(["sbom", "--format", "cyclonedx"]).arg(format!("oci:{}", layout.display())));
    assert_eq!(code, 0, "{stderr}");
    assert!(sbom.contains(&format!("\"value\":\"{}", index.url())) && !sbom.contains(secret), "{sbom}");

    // An index that cannot be reached is named without the token.
    drop(index);
    std::fs::remove_dir_all(ws.cache()).unwrap();
    let (code, stdout, stderr) = run(ws.oxbuild().args(["build", "--json", "--base", &base()]).arg(ws.app()));
    assert_eq!(code, 5, "{stderr}");
    assert!(stderr.contains("127.0.0.1"), "{stderr}");
    assert!(!stdout.contains(secret) && !stderr.contains(secret), "the index token leaked into an error: {stderr}");
}

#[test]
fn index_credentials_from_netrc_default_entry() {
    let secret = "netrc-Pa55";
    let index = PackageIndex::start_with(
        &wheelhouse(),
        IndexOptions { auth: Some(("ci-bot".into(), secret.into())), ..IndexOptions::default() },
    );
    let ws = Workspace::of("pyweb");
    ws.edit_config(
        "requirements = \"requirements.txt\"",
        &format!("requirements = \"requirements.txt\"\nindex-url = \"{}\"", index.url()),
    );
    let netrc = ws.tmp.path().join("netrc");
    std::fs::write(&netrc, format!("# CI credentials\nmachine other.example.com login x password y\n\ndefault login ci-bot password \"{secret}\"\n"))
        .unwrap();
    // Without them the index refuses, and the error says where.
    let (code, _, stderr) =
        run(ws.oxbuild().env("NETRC", "/nonexistent").args(["build", "-q", "--base", &base()]).arg(ws.app()));
    assert_ne!(code, 0);
    assert!(stderr.contains("401") && !stderr.contains(secret), "{stderr}");
    let report = build_json(ws.oxbuild().env("NETRC", &netrc).args(["build", "-q", "--base", &base()]).arg(ws.app()));
    assert_eq!(report["python"]["downloaded"], 2);
}

/// Tiny pure-Python wheels, written by Python's zipfile so that oxbuild's own
/// code makes none of its test input: (name, version, module text).
fn make_wheels(dir: &Path, wheels: &[(&str, &str, &str)]) {
    std::fs::create_dir_all(dir).unwrap();
    let script = r#"
import base64, hashlib, sys, zipfile
out, name, version, text = sys.argv[1:5]
dist = f"{name}-{version}.dist-info"
files = {
    f"{name}.py": text.encode(),
    f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
    f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
def digest(b):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(b).digest()).rstrip(b"=").decode()
record = "".join(f"{p},{digest(b)},{len(b)}\n" for p, b in files.items()) + f"{dist}/RECORD,,\n"
with zipfile.ZipFile(f"{out}/{name}-{version}-py3-none-any.whl", "w") as z:
    for p, b in files.items():
        z.writestr(p, b)
    z.writestr(f"{dist}/RECORD", record)
"#;
    for (name, version, text) in wheels {
        let out = std::process::Command::new("python3")
            .args(["-c", script])
            .arg(dir)
            .args([name, version, text])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

/// Versions and markers as PEP 440 and PEP 508 say, against a real index
/// whose pages have a `<base>` and character references: local versions
/// (served as `%2B`), epochs, `===`, alternative spellings, and
/// `python_full_version` markers for the base's interpreter (3.11.2, read
/// from its package database).
#[test]
fn versions_and_markers_follow_pep_440_and_508() {
    let ws = Workspace::new();
    let house = ws.tmp.path().join("house");
    make_wheels(
        &house,
        &[
            ("localver", "1.0+cpu", "KIND = 'cpu'"),
            ("localver", "1.0", "KIND = 'plain'"),
            ("epochpkg", "2.0", "EPOCH = 0"),
            ("arb", "1.0", "WHICH = '1.0'"),
            ("arb", "1.0.0", "WHICH = '1.0.0'"),
            ("spell", "1.0a1", "X = 1"),
            ("newer", "1.0", "X = 1"),
        ],
    );
    let index = PackageIndex::start_with(&house, IndexOptions { base_and_entities: true, ..IndexOptions::default() });
    ws.edit_config(
        "[app]",
        &format!("[python]\nrequirements = \"requirements.txt\"\nindex-url = \"{}\"\n\n[app]", index.url()),
    );
    let build = |requirements: &str| {
        std::fs::write(ws.app().join("requirements.txt"), requirements).unwrap();
        run(ws.oxbuild().args(["build", "-q", "--json", "--base", &base()]).arg(ws.app()))
    };
    let wheels = |stdout: &str| -> Vec<String> {
        let report: serde_json::Value = serde_json::from_str(stdout).unwrap();
        report["python"]["wheels"].as_array().unwrap().iter().map(|w| w.as_str().unwrap().to_string()).collect()
    };

    let (code, stdout, stderr) = build(concat!(
        "localver==1.0+CPU\n",
        "arb===1.0\n",
        "spell==1.0-ALPHA-1\n",
        "newer==1.0 ; python_full_version >= \"3.11.3\"\n",
        "epochpkg==0!2.0 ; python_full_version >= \"3.11.2rc1\" and python_version < \"3.12\"\n",
    ));
    assert_eq!(code, 0, "{stderr}");
    let got = wheels(&stdout);
    assert_eq!(
        got,
        vec![
            "localver-1.0+cpu-py3-none-any.whl",
            "arb-1.0-py3-none-any.whl",
            "spell-1.0a1-py3-none-any.whl",
            "epochpkg-2.0-py3-none-any.whl",
        ],
        "the +cpu file (served as %2B), the exact === string, the normalised spelling; `newer` is for 3.11.3+ only"
    );
    // The links were relative to the page's <base>, with `&amp;` in them.
    let asked = index.requests();
    assert!(
        asked.iter().any(|r| r.line.starts_with("GET /files/localver-1.0%2Bcpu-py3-none-any.whl?via=index&n=1")),
        "{asked:?}"
    );

    // A release-candidate interpreter (the base says PYTHON_VERSION=3.11.0rc1)
    // is older than 3.11.0 in markers: PEP 440 orders pre-releases first.
    let rc_base = ws.tmp.path().join("rc-base");
    let (code, _, stderr) = run(ws
        .oxbuild()
        .env("OXBUILD_IMAGE_ENV", "{ PYTHON_VERSION = \"3.11.0rc1\" }")
        .args(["build", "-q", "--base", &base(), "--output"])
        .arg(format!("oci:{}", rc_base.display()))
        .arg(ws.app()));
    assert_eq!(code, 0, "{stderr}");
    std::fs::write(
        ws.app().join("requirements.txt"),
        "spell==1.0a1 ; python_full_version < \"3.11\"\nnewer==1.0 ; python_full_version >= \"3.11.0\"\n",
    )
    .unwrap();
    let (code, stdout, stderr) = run(ws
        .oxbuild()
        .args(["build", "-q", "--json", "--base"])
        .arg(format!("oci:{}", rc_base.display()))
        .arg(ws.app()));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(wheels(&stdout), vec!["spell-1.0a1-py3-none-any.whl"], "3.11.0rc1 < 3.11");

    // A local pin never takes a file without its label, and an epoch is part of the version.
    for (pin, name) in [("localver==1.0+cu121\n", "localver"), ("epochpkg==1!2.0\n", "epochpkg")] {
        let (code, _, stderr) = build(pin);
        assert_eq!(code, 4, "{pin}: {stderr}");
        assert!(stderr.contains(name) && stderr.contains("no file of this version"), "{stderr}");
    }
}

/// Removes the pin of `name` (and its hash lines) from a requirements file.
fn drop_pin(ws: &Workspace, file: &str, name: &str) {
    let path = ws.app().join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut out = Vec::new();
    let mut skipping = false;
    for line in text.lines() {
        if line.starts_with(&format!("{name}==")) {
            skipping = true;
            continue;
        }
        if skipping && line.starts_with(' ') {
            continue;
        }
        skipping = false;
        out.push(line);
    }
    std::fs::write(&path, out.join("\n") + "\n").unwrap();
}

/// A lock with pins dropped by hand (pytest's pluggy and iniconfig) fails
/// before anything is pushed, naming every missing requirement and who
/// needs it, with what to do; the registry gets no tag.
#[test]
fn an_incomplete_lock_fails_before_anything_is_pushed_naming_every_missing_requirement() {
    let registry = Registry::start();
    let ws = offline_pyweb();
    drop_pin(&ws, "requirements-test.txt", "pluggy");
    drop_pin(&ws, "requirements-test.txt", "iniconfig");
    let target = registry.reference("team/incomplete:v1");
    let (code, _, stderr) = run(ws
        .oxbuild()
        .args(["build", "-q", "--variant", "test", "--base", &base(), "--push", "--tag", &target])
        .arg(ws.app()));
    assert_eq!(code, 3, "{stderr}");
    for needle in [
        "requirements-test.txt",
        "pluggy",
        "iniconfig",
        "needed by pytest 9.2.0: not in the lock",
        "2 problems",
        "uv pip compile",
    ] {
        assert!(stderr.contains(needle), "`{needle}`: {stderr}");
    }
    assert!(registry.skopeo_list_tags("team/incomplete").is_empty(), "nothing was pushed");
}

/// A wheel whose Requires-Python excludes the base's interpreter is named
/// with both versions, before the layer is written; a lock whose own
/// requires-python excludes it says so before any wheel is fetched.
#[test]
fn a_package_needing_a_newer_python_is_named_with_both_versions() {
    let ws = offline_pyweb();
    let house = ws.tmp.path().join("newer");
    std::fs::create_dir_all(&house).unwrap();
    let made = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            r#"
import base64, hashlib, sys, zipfile
files = {"newer/__init__.py": b"", "newer-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\n",
         "newer-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: newer\nVersion: 1.0\nRequires-Python: >=3.12\n"}
rec = "".join(f"{n},sha256={base64.urlsafe_b64encode(hashlib.sha256(b).digest()).rstrip(b'=').decode()},{len(b)}\n" for n, b in files.items())
with zipfile.ZipFile(sys.argv[1], "w") as z:
    for n, b in files.items():
        z.writestr(n, b)
    z.writestr("newer-1.0.dist-info/RECORD", rec + "newer-1.0.dist-info/RECORD,,\n")
"#,
        )
        .arg(house.join("newer-1.0-py3-none-any.whl"))
        .status()
        .unwrap();
    assert!(made.success());
    let bytes = std::fs::read(house.join("newer-1.0-py3-none-any.whl")).unwrap();
    let sha = oxbuild_image::Digest::of(&bytes).hex().to_string();
    let path = ws.app().join("requirements.txt");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!("newer==1.0 --hash=sha256:{sha}\n"));
    std::fs::write(&path, text).unwrap();
    ws.edit_config("find-links = [", &format!("find-links = [\"{}\", ", house.display()));
    assert_build_error(&ws, 3, &["newer 1.0 needs Python >=3.12", "the base has Python 3.11", "requirements.txt"]);

    let lock = ws.app().join("uv.lock");
    let text = std::fs::read_to_string(&lock).unwrap();
    let line =
        text.lines().find(|l| l.starts_with("requires-python")).expect("uv.lock has requires-python").to_string();
    std::fs::write(&lock, text.replace(&line, "requires-python = \"==3.12.*\"")).unwrap();
    ws.edit_config("requirements = \"requirements.txt\"", "lock = \"uv.lock\"");
    assert_build_error(&ws, 3, &["uv.lock", "the lock is for Python ==3.12.*", "the base has Python 3.11"]);
}

/// A wheel built here for a hashed lock (a rebuilt gunicorn, so its bytes
/// differ from PyPI's) is refused by hash, unless `[python]
/// trust-local-wheels` names the package; then it is installed and the SBOM
/// says it was trusted rather than matched.
#[test]
fn a_local_wheel_for_a_hashed_lock_needs_trust_local_wheels_and_the_sbom_says_so() {
    let ws = offline_pyweb();
    let house = ws.tmp.path().join("rebuilt");
    std::fs::create_dir_all(&house).unwrap();
    let wheel = "gunicorn-27.0.1-py3-none-any.whl";
    let rezip = std::process::Command::new("python3")
        .args(["-c", "import sys, zipfile\nsrc, dst = sys.argv[1:]\nwith zipfile.ZipFile(src) as a, zipfile.ZipFile(dst, 'w', zipfile.ZIP_STORED) as b:\n    for i in a.infolist():\n        b.writestr(i.filename, a.read(i.filename))\n"])
        .arg(wheelhouse().join(wheel))
        .arg(house.join(wheel))
        .status()
        .unwrap();
    assert!(rezip.success());
    ws.edit_config(
        &format!("find-links = [\"{}\"]", wheelhouse().display()),
        &format!("find-links = [\"{}\", \"{}\"]", house.display(), wheelhouse().display()),
    );
    // Only the rebuilt gunicorn is offered: the wheelhouse's copy goes.
    let only = ws.tmp.path().join("only");
    std::fs::create_dir_all(&only).unwrap();
    for entry in std::fs::read_dir(wheelhouse()).unwrap() {
        let entry = entry.unwrap();
        if !entry.file_name().to_string_lossy().starts_with("gunicorn") {
            std::fs::copy(entry.path(), only.join(entry.file_name())).unwrap();
        }
    }
    ws.edit_config(&format!("\"{}\"]", wheelhouse().display()), &format!("\"{}\"]", only.display()));
    assert_build_error(&ws, 4, &["gunicorn==27.0.1", "hash mismatch"]);

    ws.edit_config("no-index = true", "no-index = true\ntrust-local-wheels = [\"gunicorn\"]");
    let sboms = ws.tmp.path().join("sboms");
    build_json(ws.oxbuild().args(["build", "-q", "--base", &base(), "--sbom-dir"]).arg(&sboms).arg(ws.app()));
    let spdx = std::fs::read_to_string(sboms.join("sbom.spdx.json")).unwrap();
    assert!(spdx.contains("trust-local-wheels"), "the SBOM marks the trusted wheel");
}

/// A setup.py with no pyproject.toml is no package oxbuild installs (as
/// for uv and poetry): the build says so and how to change it, once, and
/// `install-project = false` silences it.
#[test]
fn a_setup_py_project_is_not_installed_and_the_build_says_so() {
    let ws = Workspace::new();
    std::fs::write(ws.app().join("setup.py"), "from setuptools import setup\nsetup(name='plainweb')\n").unwrap();
    let build = |ws: &Workspace| run(ws.oxbuild().args(["build", "--base", &base()]).arg(ws.app()));
    let (code, _, stderr) = build(&ws);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stderr.matches("has a setup.py but no pyproject.toml").count(), 1, "{stderr}");
    assert!(stderr.contains("build-backend = \"setuptools.build_meta\""), "{stderr}");
    ws.edit_config("[app]", "[python]\ninstall-project = false\n\n[app]");
    let (code, _, stderr) = build(&ws);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("setup.py"), "{stderr}");
    // The advice followed: a pyproject.toml with a [build-system] beside
    // the setup.py makes the project a package, built and installed.
    ws.edit_config(
        "install-project = false",
        &format!("find-links = [\"{}\"]\nno-index = true", oxbuild_testkit::build_wheelhouse().display()),
    );
    std::fs::write(
        ws.app().join("pyproject.toml"),
        "[build-system]\nrequires = [\"setuptools\"]\nbuild-backend = \"setuptools.build_meta\"\n",
    )
    .unwrap();
    let report = build_json(ws.oxbuild().args(["build", "-q", "--base", &base()]).arg(ws.app()));
    let wheel = report["python"]["project"]["wheel"].as_str().unwrap_or_default();
    assert!(wheel.starts_with("plainweb-0.0.0-"), "{}", report["python"]);
}

/// A command whose program no package of the lock installs, and the base
/// lacks, is named by the build (the image could not start), from a layer
/// written now and from one the cache keeps; one the venv or the base has
/// is not.
#[test]
fn a_command_whose_program_nothing_installs_is_warned_about_at_build_time() {
    let ws = Workspace::of("pyweb");
    let warnings = |ws: &Workspace| -> Vec<String> {
        let report = build_json(ws.oxbuild().args(["build", "-q", "--base", &base()]).arg(ws.app()));
        report["warnings"].as_array().unwrap().iter().filter_map(|w| w.as_str().map(String::from)).collect()
    };
    let program_warnings =
        |ws: &Workspace| -> Vec<String> { warnings(ws).into_iter().filter(|w| w.contains(" runs `")).collect() };
    // The layer written now knows its programs: gunicorn is in the venv.
    assert_eq!(program_warnings(&ws), Vec::<String>::new(), "gunicorn is in the venv");
    // The layer's cache record knows them too.
    ws.edit_config("entrypoint = [\"gunicorn\",", "entrypoint = [\"celery\",");
    let warned = program_warnings(&ws);
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert!(warned[0].starts_with("[image] entrypoint runs `celery`"), "{warned:?}");
    assert!(warned[0].contains("/opt/venv/bin"), "the PATH searched is named: {warned:?}");
    // The base's own programs count (sh is in /bin, a symlink to usr/bin).
    ws.edit_config("entrypoint = [\"celery\",", "entrypoint = [\"sh\", \"-c\", \"exec gunicorn\",");
    assert_eq!(program_warnings(&ws), Vec::<String>::new());
}
