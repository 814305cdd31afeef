//! Bad input gets one clear line, a documented exit code, no panic, and never a secret.

mod common;

use std::io::Read as _;

use common::{Workspace, base, build_json, run};
use oxbuild_testkit::Registry;

/// Asserts a failed run: the exit code, one `error:` line on stderr that
/// contains each of `needles`, and no panic.
fn assert_fails(result: (i32, String, String), code: i32, needles: &[&str]) -> String {
    let (got, stdout, stderr) = result;
    assert_eq!(got, code, "exit code; stderr:\n{stderr}\nstdout:\n{stdout}");
    assert!(!stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line of error: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    for n in needles {
        assert!(lines[0].contains(n), "`{n}` missing from: {stderr}");
    }
    stderr
}

#[test]
fn missing_config_file() {
    let ws = Workspace::new();
    std::fs::remove_file(ws.app().join("oxbuild.toml")).unwrap();
    assert_fails(run(ws.oxbuild().args(["build", "-q"]).arg(ws.app())), 3, &["oxbuild.toml", "not found"]);
}

#[test]
fn unknown_key_names_file_key_and_line() {
    let ws = Workspace::new();
    let path = ws.app().join("oxbuild.toml");
    let text = std::fs::read_to_string(&path).unwrap().replace("workdir = \"/app\"", "workdri = \"/app\"");
    std::fs::write(&path, &text).unwrap();
    let line = text.lines().position(|l| l.starts_with("workdri")).unwrap() + 1;
    assert_fails(
        run(ws.oxbuild().args(["build", "-q"]).arg(ws.app())),
        3,
        &[&format!("oxbuild.toml:{line}:"), "workdri"],
    );
}

#[test]
fn malformed_duration() {
    let ws = Workspace::new();
    let path = ws.app().join("oxbuild.toml");
    let text = std::fs::read_to_string(&path).unwrap().replace("interval = \"2s\"", "interval = \"2 fortnights\"");
    std::fs::write(&path, text).unwrap();
    assert_fails(
        run(ws.oxbuild().args(["build", "-q"]).arg(ws.app())),
        3,
        &["oxbuild.toml:", "2 fortnights", "duration"],
    );
}

#[test]
fn base_image_that_does_not_exist() {
    let registry = Registry::start();
    let ws = Workspace::new();
    let missing = registry.reference("python:0.0-nope");
    assert_fails(
        run(ws.oxbuild().args(["build", "-q", "--base", &missing]).arg(ws.app())),
        5,
        &[&missing, "not found"],
    );
}

#[test]
fn unreachable_registry() {
    let ws = Workspace::new();
    // Port 1 (tcpmux) is privileged and unused: a probed "free" port could be
    // taken by another test's server before oxbuild connects.
    let base = "127.0.0.1:1/python:3.11".to_string();
    assert_fails(
        run(ws.oxbuild().args(["build", "-q", "--base", &base]).arg(ws.app())),
        5,
        &["cannot reach registry 127.0.0.1:"],
    );
}

#[test]
fn bad_tag_is_a_config_error() {
    let ws = Workspace::new();
    assert_fails(run(ws.oxbuild().args(["build", "-q", "--tag", "Bad Tag!"]).arg(ws.app())), 3, &["--tag", "Bad Tag!"]);
}

#[test]
fn wrong_password_is_rejected_and_never_shown() {
    let secret = "s3cret-Wrong-Passw0rd";
    let registry = Registry::start_with_auth("ci", "right-password");
    let base = registry.seed("python:3.11");
    let ws = Workspace::new();
    for json in [false, true] {
        let mut cmd = ws.oxbuild();
        cmd.env("OXBUILD_REGISTRY", registry.host())
            .env("OXBUILD_REGISTRY_USER", "ci")
            .env("OXBUILD_REGISTRY_PASSWORD", secret)
            .args(["build", "-q", "--base", &base]);
        if json {
            cmd.arg("--json");
        }
        let (code, stdout, stderr) = run(cmd.arg(ws.app()));
        assert_eq!(code, 5, "{stderr}");
        assert!(stderr.contains(registry.host()) && stderr.contains("`ci`"), "names the registry and user: {stderr}");
        assert!(!stderr.contains(secret) && !stdout.contains(secret), "the password leaked:\n{stderr}\n{stdout}");
        if json {
            let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
            assert_eq!(report["error"]["kind"], "registry");
        }
    }
    // No credentials at all: told what to set.
    assert_fails(run(ws.oxbuild().args(["build", "-q", "--base", &base]).arg(ws.app())), 5, &["OXBUILD_REGISTRY_USER"]);
}

#[test]
fn right_password_pushes_and_the_secret_stays_out_of_the_image() {
    let secret = "right-Passw0rd-xyz";
    let registry = Registry::start_with_auth("ci", secret);
    let base = registry.seed("python:3.11");
    let ws = Workspace::new();
    let target = registry.reference("team/private:v1");
    let layout = ws.tmp.path().join("layout");
    let report = build_json(
        ws.oxbuild()
            .env("OXBUILD_REGISTRY", registry.host())
            .env("OXBUILD_REGISTRY_USER", "ci")
            .env("OXBUILD_REGISTRY_PASSWORD", secret)
            .args(["build", "-q", "--base", &base, "--push", "--tag", &target, "--output"])
            .arg(format!("oci:{}", layout.display()))
            .arg(ws.app()),
    );
    assert_eq!(registry.skopeo_inspect(&target, false)["Digest"], report["digest"]);
    assert!(!report.to_string().contains(secret));
    // Neither the config nor any layer oxbuild wrote carries the secret.
    for added in report["added"].as_array().unwrap().iter().chain([&report["config"]]) {
        let digest = added.get("digest").unwrap_or(added).as_str().unwrap();
        let blob = std::fs::read(layout.join("blobs/sha256").join(&digest["sha256:".len()..])).unwrap();
        let mut plain = Vec::new();
        if flate2::read::GzDecoder::new(blob.as_slice()).read_to_end(&mut plain).is_err() {
            plain = blob;
        }
        assert!(!String::from_utf8_lossy(&plain).contains(secret), "secret found in blob {digest}");
    }
}

/// The base may come from `--base` or `OXBUILD_IMAGE_BASE` alone; with none
/// of the three, the error says where to set it.
#[test]
fn the_base_may_come_from_the_command_line_or_the_environment_alone() {
    let ws = Workspace::new();
    ws.edit_config("base = \"127.0.0.1:5000/python:3.11\"", "");
    let archive = base();
    let by_flag = build_json(ws.oxbuild().args(["build", "-q", "--base", &archive]).arg(ws.app()));
    let by_env = build_json(ws.oxbuild().env("OXBUILD_IMAGE_BASE", &archive).args(["build", "-q"]).arg(ws.app()));
    assert_eq!(by_flag["digest"], by_env["digest"]);
    assert_fails(
        run(ws.oxbuild().env_remove("OXBUILD_IMAGE_BASE").args(["build", "-q"]).arg(ws.app())),
        3,
        &["no base image", "[image] base", "--base"],
    );
}

/// `--tag` without `--push` or `--output` does nothing, and says so.
#[test]
fn a_tag_without_push_or_output_is_pointed_out() {
    let ws = Workspace::new();
    let archive = base();
    let (code, _, stderr) =
        run(ws.oxbuild().args(["build", "-q", "--base", &archive, "--tag", "127.0.0.1:5000/a/b:v1"]).arg(ws.app()));
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("warning: --tag names the image for --push and --output only"), "{stderr}");
}

/// An app copied to `/` with a `lib/` of its own would replace the base's
/// `/lib` → `usr/lib` link, and the image could not start: refused.
#[test]
fn an_app_layer_over_a_base_symlink_is_refused() {
    let ws = Workspace::new();
    ws.edit_config("workdir = \"/app\"", "workdir = \"/\"");
    ws.edit_config("include = [\"plainweb\"]", "include = [\"plainweb\", \"lib\"]");
    std::fs::create_dir_all(ws.app().join("lib")).unwrap();
    std::fs::write(ws.app().join("lib/data.txt"), "x").unwrap();
    assert_fails(
        run(ws.oxbuild().args(["build", "-q", "--base", &base()]).arg(ws.app())),
        4,
        &["puts files at /lib (→ usr/lib), where the base has a symlink", "[image] workdir"],
    );
    // Without its lib/, the same app at / builds.
    std::fs::remove_dir_all(ws.app().join("lib")).unwrap();
    ws.edit_config("include = [\"plainweb\", \"lib\"]", "include = [\"plainweb\"]");
    build_json(ws.oxbuild().args(["build", "-q", "--base", &base()]).arg(ws.app()));
}

/// The bundled example as a setuptools package declaring `dependencies`
/// (a TOML array's items), with no lock.
fn package_without_lock(dependencies: &str) -> Workspace {
    let ws = Workspace::new();
    std::fs::write(
        ws.app().join("pyproject.toml"),
        format!("[build-system]\nrequires = [\"setuptools\"]\nbuild-backend = \"setuptools.build_meta\"\n\n[project]\nname = \"plainweb\"\nversion = \"1.0\"\ndependencies = [{dependencies}]\n"),
    )
    .unwrap();
    ws
}

/// A package whose pyproject.toml declares dependencies, with no lock: the
/// build says to lock, before it builds anything, rather than naming each
/// dependency as missing from a lock there is not.
#[test]
fn a_package_with_dependencies_and_no_lock_is_told_to_lock() {
    let ws =
        package_without_lock("\"flask>=3\", \"gunicorn\", \"bleach\", \"misaka\", \"tomli; python_version < '3.11'\"");
    assert_fails(
        run(ws.oxbuild().args(["build", "-q", "--base", &base()]).arg(ws.app())),
        3,
        &[
            "pyproject.toml: the project declares 4 dependencies (flask>=3, gunicorn, bleach and 1 more)",
            "`oxbuild lock`",
        ],
    );
}

/// Dependencies that hold only elsewhere (a marker for older Pythons, for
/// Windows) need no lock for this base: the build goes on as before.
#[test]
fn a_package_whose_only_dependencies_are_conditional_builds_without_a_lock() {
    let ws = package_without_lock("\"tomli; python_version < '3.11'\", \"pywin32; sys_platform == 'win32'\"");
    build_json(ws.oxbuild().args(["build", "-q", "--base", &base()]).arg(ws.app()));
}
