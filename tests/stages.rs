//! assess and health against real podman: healthy, unhealthy, dying apps,
//! failing gates, and cleanup after each, SIGTERM included.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Workspace, base, run};
use oxbuild_testkit::{podman_output, wheelhouse};

/// Names of containers that oxbuild process `pid` started and left behind.
fn leftovers(pid: u32) -> Vec<String> {
    let out = podman_output(&["ps", "-a", "--format", "{{.Names}}"]);
    assert!(out.status.success(), "podman ps failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|n| n.starts_with(&format!("oxbuild-{pid}-")))
        .map(String::from)
        .collect()
}

/// Runs oxbuild and returns (exit code, stdout, stderr, pid).
fn run_stage(cmd: &mut Command) -> (i32, String, String, u32) {
    let child = cmd
        .env("CONTAINERS_CONF", oxbuild_testkit::containers_conf())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr), pid)
}

#[test]
fn a_healthy_app_passes_and_leaves_no_container() {
    let ws = Workspace::new();
    let (code, stdout, stderr, pid) = run_stage(ws.oxbuild().args(["health", "--base", &base()]).arg(ws.app()));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("healthy after"), "{stdout}");
    assert!(leftovers(pid).is_empty(), "{:?}", leftovers(pid));
}

#[test]
fn a_slow_starting_app_is_seen_healthy_long_before_its_interval() {
    let ws = Workspace::new();
    // Not listening for its first 8 s, then healthy; the image's interval is 60 s.
    ws.edit_config("PLAINWEB_PORT = \"8000\"", "PLAINWEB_PORT = \"8000\", PLAINWEB_START_DELAY = \"8\"");
    ws.edit_config("interval = \"2s\"", "interval = \"60s\"");
    let (code, stdout, stderr, pid) =
        run_stage(ws.oxbuild().args(["health", "--json", "--base", &base()]).arg(ws.app()));
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("probing every 1.0s until healthy, 3 failures 1m00s apart fail it"), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["report"]["outcome"]["status"], "healthy", "{report}");
    // Failed probes while it started, then the healthy one, none an interval apart.
    let probes = report["report"]["probes"].as_array().unwrap();
    let at: Vec<f64> = probes.iter().map(|p| p["at"].as_f64().unwrap()).collect();
    assert!(probes.len() >= 2 && probes[0]["exit_code"] != 0, "{report}");
    assert_eq!(probes.last().unwrap()["exit_code"], 0, "{report}");
    assert!(at.windows(2).all(|w| w[1] - w[0] < 60.0), "probes between the image's intervals: {at:?}");
    assert!(leftovers(pid).is_empty());
}

#[test]
fn an_unhealthy_app_is_reported_with_its_logs_and_probe_output() {
    let ws = Workspace::new();
    ws.edit_config("PLAINWEB_PORT = \"8000\"", "PLAINWEB_PORT = \"8000\", PLAINWEB_HEALTH = \"fail\"");
    let (code, stdout, stderr, pid) =
        run_stage(ws.oxbuild().args(["health", "--json", "--timeout", "120s", "--base", &base()]).arg(ws.app()));
    assert_eq!(code, 8, "{stderr}");
    assert!(stderr.contains("unhealthy: 3 probes in a row failed"), "{stderr}");
    assert!(stderr.contains("plainweb: listening on :8000"), "the container's logs are shown: {stderr}");
    assert!(stderr.contains("500"), "the probe's output is shown: {stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["report"]["outcome"]["status"], "unhealthy");
    assert_eq!(report["ok"], false);
    assert_eq!(report["error"]["kind"], "health", "the documented error object: {report}");
    assert_eq!(report["error"]["code"], 8);
    assert!(leftovers(pid).is_empty());
}

#[test]
fn an_app_only_its_own_container_can_reach_fails_health_saying_why() {
    let ws = Workspace::new();
    // The probe, inside the container, passes; nothing outside it gets in.
    ws.edit_config("PLAINWEB_PORT = \"8000\"", "PLAINWEB_PORT = \"8000\", PLAINWEB_HOST = \"127.0.0.1\"");
    let (code, stdout, stderr, pid) =
        run_stage(ws.oxbuild().args(["health", "--json", "--base", &base()]).arg(ws.app()));
    assert_eq!(code, 8, "{stderr}");
    assert!(stderr.contains("port 8000 does not answer from outside it"), "{stderr}");
    assert!(stderr.contains("listen on 0.0.0.0"), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["report"]["outcome"]["status"], "unreachable", "{report}");
    assert_eq!(report["report"]["outcome"]["port"], 8000, "{report}");
    assert!(leftovers(pid).is_empty());
}

#[test]
fn an_image_whose_command_is_missing_fails_health_saying_so() {
    let ws = Workspace::new();
    ws.edit_config("entrypoint = [\"python3\", \"-m\", \"plainweb\"]", "entrypoint = [\"/docker-entrypoint.sh\"]");
    let (code, _, stderr, pid) = run_stage(ws.oxbuild().args(["health", "--base", &base()]).arg(ws.app()));
    assert_eq!(code, 8, "the image's failure, not podman's: {stderr}");
    assert!(stderr.contains("its command `/docker-entrypoint.sh` is not in the image"), "{stderr}");
    assert!(stderr.contains("the app's files are under /app"), "{stderr}");
    assert!(leftovers(pid).is_empty());
}

#[test]
fn a_command_script_without_its_execute_bit_is_named_by_build_and_health() {
    use std::os::unix::fs::PermissionsExt as _;
    let ws = Workspace::new();
    let script = ws.app().join("start.sh");
    std::fs::write(&script, "#!/bin/sh\nexec python3 -m plainweb\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();
    ws.edit_config("entrypoint = [\"python3\", \"-m\", \"plainweb\"]", "entrypoint = [\"/app/start.sh\"]");
    ws.edit_config("include = [\"plainweb\"]", "include = [\"plainweb\", \"start.sh\"]");
    let (code, _, stderr, pid) = run_stage(ws.oxbuild().args(["health", "--base", &base()]).arg(ws.app()));
    assert_eq!(code, 8, "the image's failure, not the runtime's: {stderr}");
    assert!(stderr.contains("start.sh, which is not executable (mode 644)"), "build warns: {stderr}");
    assert!(stderr.contains("its command `/app/start.sh` is not executable"), "{stderr}");
    assert!(stderr.contains("chmod +x"), "{stderr}");
    assert!(leftovers(pid).is_empty());
}

#[test]
fn an_app_that_exits_at_start_is_reported_with_its_exit_code_not_at_the_deadline() {
    let ws = Workspace::new();
    ws.edit_config("PLAINWEB_PORT = \"8000\"", "PLAINWEB_PORT = \"8000\", PLAINWEB_EXIT = \"3\"");
    let (code, stdout, stderr, pid) =
        run_stage(ws.oxbuild().args(["health", "--json", "--timeout", "600s", "--base", &base()]).arg(ws.app()));
    assert_eq!(code, 8, "{stderr}");
    assert!(stderr.contains("the container exited with code 3"), "{stderr}");
    assert!(stderr.contains("exiting at start"), "{stderr}");
    assert!(!stderr.contains("exec session"), "a probe of the exited container is not shown: {stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["report"]["outcome"]["status"], "exited", "reported on exit, not after the 600s deadline");
    assert!(leftovers(pid).is_empty());
}

/// `--env` reaches the container that health starts, never the image: the
/// variable that makes plainweb exit at start, given at run time by name
/// (its value from oxbuild's environment) beside a secret-like one whose
/// value must show nowhere.
#[test]
fn env_given_to_health_reaches_the_container_not_the_image() {
    let ws = Workspace::new();
    let secret = "s3cr3t-token-value";
    let (code, stdout, stderr, pid) = run_stage(
        ws.oxbuild()
            .args([
                "health",
                "--json",
                "-e",
                "PLAINWEB_EXIT",
                "--env",
                &format!("API_TOKEN={secret}"),
                "--base",
                &base(),
            ])
            // The container's, not podman's own: podman would fail to read it.
            .args(["-e", "CONTAINERS_CONF=/nonexistent/containers.conf"])
            .env("PLAINWEB_EXIT", "4")
            .arg(ws.app()),
    );
    assert_eq!(code, 8, "{stderr}");
    assert!(stderr.contains("the container exited with code 4"), "{stderr}");
    assert!(!stdout.contains(secret) && !stderr.contains(secret), "{stdout}\n{stderr}");
    assert!(leftovers(pid).is_empty());
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let (_, built, _) = run(ws.oxbuild().args(["build", "-q", "--base", &base()]).arg(ws.app()));
    assert_eq!(report["image"].as_str(), Some(built.trim()), "the image is the one built without --env");
    // A name with no value here is refused before anything runs.
    let (code, _, stderr) =
        run(ws.oxbuild().args(["health", "--env", "OXBUILD_TEST_UNSET_VAR", "--base", &base()]).arg(ws.app()));
    assert_eq!(code, 3, "{stderr}");
    assert!(!stderr.contains("building"), "refused before the build: {stderr}");
    assert!(
        stderr.contains("--env OXBUILD_TEST_UNSET_VAR: OXBUILD_TEST_UNSET_VAR is not set in oxbuild's environment"),
        "{stderr}"
    );
}

/// `oxbuild health` on an app whose image would have no healthcheck (none in
/// oxbuild.toml, none in the base) says so before anything is built.
#[test]
fn health_without_a_healthcheck_is_refused_before_the_build() {
    let ws = Workspace::new();
    let section = "[healthcheck]\nhttp = \"http://127.0.0.1:8000/health\"\ninterval = \"2s\"\ntimeout = \"2s\"\nretries = 3\nstart-period = \"1s\"\n";
    ws.edit_config(section, "");
    let (code, _, stderr, pid) = run_stage(ws.oxbuild().args(["health", "--base", &base()]).arg(ws.app()));
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("no healthcheck to run") && stderr.contains("[healthcheck]"), "{stderr}");
    assert!(!stderr.contains("building"), "refused before the build: {stderr}");
    assert!(leftovers(pid).is_empty());
}

/// pyweb with the offline wheelhouse, and a third gate after pytest.
fn pyweb_for_assess() -> Workspace {
    let ws = Workspace::of("pyweb");
    ws.edit_config(
        "test-requirements = \"requirements-test.txt\"",
        &format!(
            "test-requirements = \"requirements-test.txt\"\nfind-links = [\"{}\"]\nno-index = true",
            wheelhouse().display()
        ),
    );
    ws.edit_config(
        "  { name = \"pytest\"",
        "  { name = \"after\", run = \"echo after-ran; id -u\" },\n  { name = \"pytest\"",
    );
    ws
}

#[test]
fn passing_gates_pass_and_the_production_image_has_no_test_files() {
    let ws = pyweb_for_assess();
    let (code, stdout, stderr, pid) = run_stage(ws.oxbuild().args(["assess", "--base", &base()]).arg(ws.app()));
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("[pytest] 2 passed"), "{stderr}");
    assert!(stderr.contains("[after] 1000"), "gates run as the image's user: {stderr}");
    assert!(stdout.contains("pytest   pass"), "{stdout}");
    assert!(leftovers(pid).is_empty());

    // The production image of the same app: no tests, no pytest.
    let layout = ws.tmp.path().join("prod");
    let (code, out, err) = run(ws
        .oxbuild()
        .args(["build", "-q", "--json", "--base", &base(), "--output"])
        .arg(format!("oci:{}", layout.display()))
        .arg(ws.app()));
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    for layer in report["added"].as_array().unwrap() {
        let blob = layout.join("blobs/sha256").join(&layer["digest"].as_str().unwrap()["sha256:".len()..]);
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(std::fs::File::open(blob).unwrap()));
        for e in archive.entries().unwrap() {
            let path = e.unwrap().path().unwrap().to_string_lossy().into_owned();
            assert!(
                !path.starts_with("app/tests") && !path.contains("site-packages/pytest"),
                "{path} is in production"
            );
        }
    }
}

/// uv users keep one lock: the project's dependencies go to production and
/// its `dev` group to the test variant, where pytest then runs.
#[test]
fn a_uv_lock_dev_group_is_the_test_variant() {
    let ws = pyweb_for_assess();
    ws.edit_config("requirements = \"requirements.txt\"", "lock = \"uv.lock\"");
    ws.edit_config("test-requirements = \"requirements-test.txt\"", "test-requirements = \"uv.lock\"");
    let (code, _, stderr, pid) = run_stage(ws.oxbuild().args(["assess", "--base", &base()]).arg(ws.app()));
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("(groups: dev)"), "{stderr}");
    assert!(stderr.contains("[pytest] 2 passed"), "{stderr}");
    assert!(leftovers(pid).is_empty());

    // A group the lock does not have is named, with the ones it has.
    ws.edit_config("test-requirements = \"uv.lock\"", "test-requirements = \"uv.lock\"\ntest-groups = [\"lint\"]");
    let (code, _, stderr, _) = run_stage(ws.oxbuild().args(["assess", "--base", &base()]).arg(ws.app()));
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("uv.lock") && stderr.contains("`lint`") && stderr.contains("dev"), "{stderr}");
}

#[test]
fn a_failing_test_fails_assess_after_every_gate_ran() {
    let ws = pyweb_for_assess();
    std::fs::write(ws.app().join("tests/test_broken.py"), "def test_broken():\n    assert 1 + 1 == 3\n").unwrap();
    let junit = ws.tmp.path().join("junit.xml");
    let (code, stdout, stderr, pid) =
        run_stage(ws.oxbuild().args(["assess", "--base", &base(), "--junit"]).arg(&junit).arg(ws.app()));
    assert_eq!(code, 7, "{stderr}");
    assert!(stderr.contains("1 of 3 gates failed: pytest"), "{stderr}");
    assert!(stderr.contains("[compile]") || stdout.contains("compile  pass"), "{stdout}");
    assert!(stderr.contains("[after] after-ran"), "{stderr}");
    assert!(stdout.contains("FAIL (1)"), "{stdout}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("tests=\"3\" failures=\"1\"") && xml.contains("test_broken"), "{xml}");
    assert!(leftovers(pid).is_empty());
}

#[test]
fn sigterm_mid_stage_removes_the_containers() {
    let ws = Workspace::new();
    ws.edit_config("PLAINWEB_PORT = \"8000\"", "PLAINWEB_PORT = \"8000\", PLAINWEB_HEALTH = \"fail\"");
    ws.edit_config("retries = 3", "retries = 1000");
    let mut child = ws
        .oxbuild()
        .env("CONTAINERS_CONF", oxbuild_testkit::containers_conf())
        .args(["health", "--timeout", "600s", "--base", &base()])
        .arg(ws.app())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Wait (bounded) until the container exists, then terminate oxbuild.
    let until = Instant::now() + Duration::from_secs(120);
    while leftovers(pid).is_empty() {
        assert!(Instant::now() < until, "the health container never appeared");
        assert!(child.try_wait().unwrap().is_none(), "oxbuild ended before the container appeared");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap().success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(143), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(leftovers(pid).is_empty(), "{:?}", leftovers(pid));
}
