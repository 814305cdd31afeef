//! `oxbuild init` on projects that already say how they run (testdata/init):
//! a Flask app with a multi-stage Dockerfile (ARG, HEALTHCHECK, USER with a
//! uid, EXPOSE 5000, an entrypoint script, apt-get), a Django app with a
//! Procfile, a FastAPI app under backend/app/ with neither, and Poetry and
//! uv apps with their Dockerfiles. Each config is written with no edits,
//! then built, pushed, passes `oxbuild health`, and serves on the port its
//! Dockerfile or Procfile named.

mod common;

use std::time::Duration;

use common::{Workspace, build_json, run};
use oxbuild_testkit::{Container, Registry, http_get};

/// `(testdata/init/<app>, the port it serves on, what `/` answers with)`.
const APPS: [(&str, u16, &str); 5] = [
    ("flaskdocker", 5000, "\"app\":\"flaskdocker\""),
    ("djangoprocfile", 8080, "\"app\": \"djangoprocfile\""),
    ("fastapibackend", 8000, "\"app\":\"fastapibackend\""),
    ("poetrydocker", 8080, "\"app\":\"poetrydocker\""),
    ("uvdocker", 8000, "\"app\":\"uvdocker\""),
];

/// `oxbuild` for `ws`, offline: the init apps' wheelhouse through the
/// documented environment overrides, so the written config is not edited.
fn offline(ws: &Workspace) -> std::process::Command {
    let mut cmd = ws.oxbuild();
    cmd.env("CONTAINERS_CONF", oxbuild_testkit::containers_conf())
        .env("OXBUILD_PYTHON_FIND_LINKS", format!("[\"{}\"]", oxbuild_testkit::init_wheelhouse().display()))
        .env("OXBUILD_PYTHON_NO_INDEX", "true");
    cmd
}

#[test]
fn init_migrates_dockerfiles_procfiles_and_conventions_into_configs_that_build_pass_health_and_serve() {
    let registry = Registry::start();
    let base = registry.seed("python:3.11");
    for (app, port, answer) in APPS {
        let ws = Workspace::of(&format!("init/{app}"));
        let (code, stdout, stderr) = run(offline(&ws).env("OXBUILD_IMAGE_BASE", &base).args(["init"]).arg(ws.app()));
        assert_eq!(code, 0, "{app}: {stderr}");
        assert!(stdout.contains("wrote"), "{app}: {stdout}");
        let written = std::fs::read_to_string(ws.app().join("oxbuild.toml")).unwrap();
        assert!(written.contains(&format!("base = \"{base}\"")), "{app}: OXBUILD_IMAGE_BASE is honoured:\n{written}");
        assert!(written.contains(&format!("ports = [{port}]")), "{app}:\n{written}");

        let target = registry.reference(&format!("init/{app}:v1"));
        let report = build_json(offline(&ws).args(["build", "-q", "--push", "--tag", &target]).arg(ws.app()));
        assert!(report["push"].is_array(), "{app}: {report}");
        let (code, stdout, stderr) = run(offline(&ws).args(["health"]).arg(ws.app()));
        assert_eq!(code, 0, "{app}: oxbuild health:\n{stderr}\n{written}");
        assert!(stdout.contains("healthy after"), "{app}: {stdout}");

        let (container, host) = Container::serve(&target, port);
        let got = http_get(host, "/", Duration::from_secs(60));
        assert_eq!(got.as_ref().map(|g| g.0), Some(200), "{app} on {port}: logs:\n{}", container.logs());
        let body = got.unwrap().1;
        assert!(body.contains(answer), "{app}: {body}");
        // Never root: the Dockerfile's user and uid where it names them.
        let uid = match app {
            "flaskdocker" => 10001,
            "uvdocker" => 2000,
            _ => 1000,
        };
        assert!(body.contains(&format!("\"uid\":{uid}")) || body.contains(&format!("\"uid\": {uid}")), "{app}: {body}");
    }
}

/// What cannot be carried over is written as a comment saying why; an
/// existing config is left alone without --force; the static files a
/// Dockerfile copies are included.
#[test]
fn init_explains_what_it_leaves_out_and_never_overwrites() {
    let ws = Workspace::of("init/flaskdocker");
    let (code, _, stderr) = run(ws.oxbuild().args(["init", "--base", "registry.example/python:3.11"]).arg(ws.app()));
    assert_eq!(code, 0, "{stderr}");
    let written = std::fs::read_to_string(ws.app().join("oxbuild.toml")).unwrap();
    for needle in [
        "# Not carried over:",
        "RUN that installs system packages in Dockerfile: curl",
        "use a base image that already has these packages",
        "user = \"web\"",
        "uid = 10001",
        "entrypoint = [\"./boot.sh\"]",
        "include = [\"web\", \"static\", \"boot.sh\"]",
        "requirements = \"requirements.txt\"",
        "http = \"http://127.0.0.1:5000/health\"",
        "interval = \"5s\"",
        "APP_ENV = \"production\"",
    ] {
        assert!(written.contains(needle), "`{needle}`:\n{written}");
    }
    assert!(stderr.contains("not carried over: RUN that installs system packages"), "{stderr}");
    let (code, _, stderr) = run(ws.oxbuild().args(["init"]).arg(ws.app()));
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("exists; use --force"), "{stderr}");
    assert_eq!(std::fs::read_to_string(ws.app().join("oxbuild.toml")).unwrap(), written, "left alone");

    // The Procfile's other processes are named, and the Dockerfile's tools' settings.
    let django = Workspace::of("init/djangoprocfile");
    let (code, _, stderr) = run(django.oxbuild().args(["init"]).arg(django.app()));
    assert_eq!(code, 0, "{stderr}");
    let written = std::fs::read_to_string(django.app().join("oxbuild.toml")).unwrap();
    assert!(written.contains("the Procfile's release process (python manage.py check --deploy)"), "{written}");
    let uv = Workspace::of("init/uvdocker");
    let (code, _, stderr) = run(uv.oxbuild().args(["init"]).arg(uv.app()));
    assert_eq!(code, 0, "{stderr}");
    let written = std::fs::read_to_string(uv.app().join("oxbuild.toml")).unwrap();
    assert!(written.contains("ENV PATH in Dockerfile") && written.contains("base = \"python:3.11-slim\""), "{written}");
}

/// A Node.js service with a multi-stage Dockerfile (`npm ci` in a build
/// stage, ENV, a numeric USER, EXPOSE, a HEALTHCHECK run by node, CMD):
/// init writes a config that builds on the Node base, passes its own
/// `scripts.test` as a gate in the test variant, reaches healthy and
/// serves on the Dockerfile's port as the Dockerfile's uid.
#[test]
fn init_migrates_a_node_dockerfile_into_a_config_that_passes_its_tests_and_serves() {
    let registry = Registry::start();
    let ws = Workspace::of("init/nodedocker");
    let node_base = format!("oci-archive:{}", oxbuild_testkit::node_base_archive().display());
    let oxbuild = || {
        let mut cmd = ws.oxbuild();
        cmd.env("CONTAINERS_CONF", oxbuild_testkit::containers_conf());
        cmd
    };
    let (code, _, stderr) = run(oxbuild().args(["init", "--base", &node_base]).arg(ws.app()));
    assert_eq!(code, 0, "{stderr}");
    let written = std::fs::read_to_string(ws.app().join("oxbuild.toml")).unwrap();
    for needle in [
        "ports = [8080]",
        "uid = 10002",
        "cmd = [\"node\", \"src/index.js\"]",
        "NODE_ENV = \"production\"",
        "[node]",
        "gates = [{ name = \"test\", run = \"node --test test/\" }]",
    ] {
        assert!(written.contains(needle), "`{needle}`:\n{written}");
    }
    assert!(!written.contains("PYTHONUNBUFFERED"), "a Node app has no Python:\n{written}");
    assert!(!written.contains("RUN npm ci"), "npm ci is what the node layer does:\n{written}");

    let (code, _, stderr) = run(oxbuild().args(["assess"]).arg(ws.app()));
    assert_eq!(code, 0, "{stderr}\n{written}");
    assert!(stderr.contains("# pass 1"), "{stderr}");
    let (code, stdout, stderr) = run(oxbuild().args(["health"]).arg(ws.app()));
    assert_eq!(code, 0, "{stderr}\n{written}");
    assert!(stdout.contains("healthy after"), "{stdout}");

    let target = registry.reference("init/nodedocker:v1");
    build_json(oxbuild().args(["build", "-q", "--push", "--tag", &target]).arg(ws.app()));
    let (container, host) = Container::serve(&target, 8080);
    let got = http_get(host, "/", Duration::from_secs(60));
    assert_eq!(got.as_ref().map(|g| g.0), Some(200), "logs:\n{}", container.logs());
    let body = got.unwrap().1;
    assert!(body.contains("\"app\":\"nodedocker\"") && body.contains("\"uid\":10002"), "{body}");
    assert!(body.contains("\"env\":\"production\""), "{body}");
}
