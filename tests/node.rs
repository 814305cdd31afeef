//! Node.js apps (issue 21): testdata/nodeexpress, an Express app whose
//! package-lock.json npm wrote, built on a Node base that mmdebstrap made
//! from Debian's nodejs (no Python in it), with its packages fetched from
//! the real npm registry. No npm runs anywhere.

mod common;

use std::time::Duration;

use common::{Workspace, base, blob_in, build_json, layer_entries, run};
use oxbuild_testkit::{Container, Registry, http_get};

fn node_base() -> String {
    format!("oci-archive:{}", oxbuild_testkit::node_base_archive().display())
}

/// The entries of every layer oxbuild added to the image a `build --json`
/// `report` describes, read from the layout it wrote.
fn added_entries(layout: &std::path::Path, report: &serde_json::Value) -> Vec<String> {
    report["added"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|l| layer_entries(&blob_in(layout, l["digest"].as_str().unwrap())))
        .map(|(p, _)| p)
        .collect()
}

/// The whole path: pipeline (build, `node --test` in the test variant,
/// healthy through the http probe that node runs, publish), then the
/// pushed image served by podman as a non-root user, with NODE_ENV set and
/// no dev dependency in it.
#[test]
fn an_express_app_passes_node_test_reaches_healthy_and_serves_without_dev_dependencies() {
    let registry = Registry::start();
    let ws = Workspace::of("nodeexpress");
    // On main, so that the publish policy tags `latest`.
    common::commit_all(&ws.app());
    let repo = registry.reference("team/express");
    let report = build_json(
        ws.oxbuild()
            .env("CONTAINERS_CONF", oxbuild_testkit::containers_conf())
            .env("OXBUILD_PUBLISH_REPOSITORY", &repo)
            .args(["pipeline", "--base", &node_base()])
            .arg(ws.app()),
    );
    let stages: Vec<(&str, &str)> = report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["stage"].as_str().unwrap(), s["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        &stages[..4],
        [("build", "passed"), ("assess", "passed"), ("health", "passed"), ("publish", "passed")],
        "{report}"
    );
    let node = &report["stages"][0]["node"];
    assert_eq!(node["node"].as_str().map(|v| v.starts_with("18.")), Some(true), "{node}");
    assert_eq!((node["cpu"].as_str(), node["libc"].as_str()), (Some("x64"), Some("glibc")), "{node}");
    assert!(node["packages"].as_u64().unwrap() > 60, "{node}");
    assert!(node["test"]["packages"].as_u64().unwrap() > 10, "supertest and its dependencies: {node}");
    assert!(report.to_string().contains("# pass 2"), "node --test ran both tests: {report}");

    // The published image: non-root, production, serving.
    let (container, port) = Container::serve(&format!("{repo}:latest"), 3000);
    let answer = http_get(port, "/health", Duration::from_secs(60));
    assert_eq!(answer.as_ref().map(|a| a.0), Some(200), "logs:\n{}", container.logs());
    let body = answer.unwrap().1;
    assert!(body.contains("\"env\":\"production\"") && body.contains("\"node\":\"v18."), "{body}");
    let path = container.exec(&["node", "-e", "console.log(process.env.PATH)"]);
    let path = String::from_utf8_lossy(&path.stdout).to_string();
    assert!(path.starts_with("/app/node_modules/.bin:"), "the dependencies' commands are on PATH: {path}");
    let uid = container.exec(&["node", "-e", "console.log(process.getuid())"]);
    let uid = String::from_utf8_lossy(&uid.stdout).trim().to_string();
    assert!(!uid.is_empty() && uid != "0", "runs as a non-root user, not `{uid}`");
    assert!(container.healthcheck(), "the image's own healthcheck (node's http probe) says healthy");
}

/// The production image holds the production packages at the lock's paths,
/// with npm's `.bin` links, and no dev dependency; the checkout's own
/// node_modules and .npmrc stay out of the app layer.
#[test]
fn production_has_the_locks_paths_and_bins_and_no_dev_dependency() {
    let ws = Workspace::of("nodeexpress");
    std::fs::create_dir_all(ws.app().join("node_modules/stale")).unwrap();
    std::fs::write(ws.app().join("node_modules/stale/index.js"), "host junk").unwrap();
    std::fs::write(ws.app().join(".npmrc"), "//registry.example/:_authToken=${NPM_SECRET_FOR_TEST}\n").unwrap();
    let layout = ws.tmp.path().join("layout");
    let report = build_json(
        ws.oxbuild()
            .env("NPM_SECRET_FOR_TEST", "s3cr3t-t0ken")
            .args(["build", "-q", "--base", &node_base(), "--output"])
            .arg(format!("oci:{}", layout.display()))
            .arg(ws.app()),
    );
    let entries = added_entries(&layout, &report);
    let has = |p: &str| entries.iter().any(|e| e == p);
    assert!(has("app/node_modules/express/package.json"), "express at the lock's path");
    assert!(has("app/node_modules/.bin/mime"), "mime's command is linked in .bin");
    assert!(has("app/server.js") && has("app/package-lock.json"), "the app itself");
    assert!(!entries.iter().any(|e| e.starts_with("app/node_modules/supertest")), "no dev dependency");
    assert!(!has("app/node_modules/stale/index.js"), "the checkout's node_modules stays out");
    assert!(!has("app/.npmrc"), "an .npmrc (tokens) never goes into the image");
    assert!(!report.to_string().contains("s3cr3t"), "{report}");
}

/// A tampered integrity is named, with its package, and nothing is
/// written; a package that needs an install script is named with what to
/// do, and accepted (unrun) once the config says so.
#[test]
fn a_tampered_integrity_and_an_install_script_are_named() {
    let ws = Workspace::of("nodeexpress");
    let lock_path = ws.app().join("package-lock.json");
    let lock = std::fs::read_to_string(&lock_path).unwrap();
    let mut doc: serde_json::Value = serde_json::from_str(&lock).unwrap();
    let morgan = &mut doc["packages"]["node_modules/morgan"];
    let original = morgan["integrity"].as_str().unwrap().to_string();
    // A valid SRI string of the right length, one character off.
    let first = if original.as_bytes()["sha512-".len()] == b'A' { 'B' } else { 'A' };
    let tampered = format!("sha512-{first}{}", &original["sha512-".len() + 1..]);
    assert_ne!(tampered, original);
    doc["packages"]["node_modules/morgan"]["integrity"] = serde_json::json!(tampered);
    std::fs::write(&lock_path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    let layout = ws.tmp.path().join("layout");
    let build = |ws: &Workspace| {
        run(ws
            .oxbuild()
            .args(["build", "--base", &node_base(), "--output"])
            .arg(format!("oci:{}", layout.display()))
            .arg(ws.app()))
    };
    let (code, _, stderr) = build(&ws);
    assert_ne!(code, 0, "{stderr}");
    assert!(stderr.contains("morgan@1.10.0 (node_modules/morgan)"), "{stderr}");
    assert!(stderr.contains("does not match the lock's integrity"), "{stderr}");
    assert!(!layout.join("index.json").exists(), "nothing was written");

    doc["packages"]["node_modules/morgan"]["integrity"] = serde_json::json!(original);
    doc["packages"]["node_modules/morgan"]["hasInstallScript"] = serde_json::json!(true);
    std::fs::write(&lock_path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    let (code, _, stderr) = build(&ws);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("need install scripts") && stderr.contains("morgan@1.10.0"), "{stderr}");
    assert!(stderr.contains("allow-install-scripts-missing = [\"morgan\"]"), "{stderr}");
    ws.append_config("\n[node]\nallow-install-scripts-missing = [\"morgan\"]\n");
    let (code, _, stderr) = build(&ws);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("morgan@1.10.0 has install scripts; taken without running them"), "{stderr}");
}

/// esbuild ships its binary as one optional package per platform: one
/// build for linux/amd64 and linux/arm64 from a two-platform Node base, on
/// this x86_64 machine, gives each image its own platform's binary (the
/// arm64 base has no dpkg database: libnode's soname tells its Node), the
/// others are skipped, and the amd64 image runs it.
#[test]
fn a_native_package_gets_the_binary_of_each_images_platform() {
    let registry = Registry::start();
    let ws = Workspace::of("nodenative");
    let multi = format!("oci-archive:{}", oxbuild_testkit::node_multi_base_archive().display());
    let layout = ws.tmp.path().join("layout");
    let report = build_json(
        ws.oxbuild()
            .args(["build", "-q", "--platform", "linux/amd64,linux/arm64", "--base", &multi, "--output"])
            .arg(format!("oci:{}", layout.display()))
            .arg(ws.app()),
    );
    let manifests = report["manifests"].as_array().unwrap();
    let of = |platform: &str| {
        let m = manifests.iter().find(|m| m["platform"] == platform).unwrap_or_else(|| panic!("{report}"));
        let entries: Vec<String> = m["layers"]
            .as_array()
            .unwrap()
            .iter()
            .skip(1)
            .flat_map(|l| layer_entries(&blob_in(&layout, l["digest"].as_str().unwrap())))
            .map(|(p, _)| p)
            .collect();
        (entries, m["node"].clone())
    };
    let (amd64, amd_node) = of("linux/amd64");
    let (arm64, arm_node) = of("linux/arm64");
    let binary = |arch: &str| format!("app/node_modules/@esbuild/linux-{arch}/bin/esbuild");
    assert!(amd64.contains(&binary("x64")) && !amd64.contains(&binary("arm64")), "{amd64:?}");
    assert!(arm64.contains(&binary("arm64")) && !arm64.contains(&binary("x64")), "{arm64:?}");
    assert!(amd64.contains(&"app/node_modules/.bin/esbuild".to_string()));
    assert_eq!(arm_node["cpu"], "arm64");
    assert_eq!(arm_node["node"], "18", "the arm64 base has no dpkg database: libnode's soname says 18");
    let skipped = amd_node["skipped"].to_string();
    assert!(skipped.contains("@esbuild/linux-arm64@0.24.2: cpu arm64 (the target is x64)"), "{skipped}");
    assert!(skipped.contains("@esbuild/darwin-arm64"), "{skipped}");

    let image = registry.reference("team/native:amd64");
    build_json(ws.oxbuild().args(["build", "-q", "--push", "--tag", &image, "--base", &node_base()]).arg(ws.app()));
    let out = oxbuild_testkit::podman_output(&["run", "--rm", "--tls-verify=false", &image]);
    let _ = oxbuild_testkit::podman_output(&["rmi", "-f", &image]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("const answer = 42;") && stdout.contains("on linux-x64"), "{stdout}");
}

/// What would only fail when the container starts fails at init or build
/// instead: `npm start` in a Dockerfile becomes the script's own `node`
/// command (the image has no npm); a start script that runs a `dist/` that
/// was never built is caught by build; a lock npm 6 wrote is named by init.
#[test]
fn init_and_build_catch_what_would_fail_only_at_start() {
    let ws = Workspace::of("nodeexpress");
    std::fs::remove_file(ws.app().join("oxbuild.toml")).unwrap();
    std::fs::write(
        ws.app().join("Dockerfile"),
        "FROM node:18\nWORKDIR /app\nCOPY . .\nRUN npm ci\nEXPOSE 3000\nCMD [\"npm\", \"start\"]\n",
    )
    .unwrap();
    let init = |ws: &Workspace| {
        let _ = std::fs::remove_file(ws.app().join("oxbuild.toml"));
        let (code, _, stderr) = run(ws.oxbuild().args(["init", "--base", &node_base()]).arg(ws.app()));
        assert_eq!(code, 0, "{stderr}");
        (std::fs::read_to_string(ws.app().join("oxbuild.toml")).unwrap(), stderr)
    };
    let (written, _) = init(&ws);
    assert!(written.contains("cmd = [\"node\", \"server.js\"]"), "npm start is `node server.js`:\n{written}");
    // A COPY that renames: the command names the path in the project.
    std::fs::write(
        ws.app().join("Dockerfile"),
        "FROM node:18\nWORKDIR /srv\nCOPY dist/api api\nCOPY package.json package-lock.json ./\nCMD [\"node\", \"api\"]\n",
    )
    .unwrap();
    let (written, _) = init(&ws);
    assert!(written.contains("cmd = [\"node\", \"dist/api\"]"), "{written}");
    // A script copied onto PATH runs from where the app has it.
    std::fs::write(ws.app().join("docker-entrypoint.sh"), "#!/bin/sh\nexec \"$@\"\n").unwrap();
    std::fs::write(
        ws.app().join("Dockerfile"),
        "FROM node:18\nWORKDIR /srv\nCOPY docker-entrypoint.sh /usr/local/bin/\nCOPY . .\nENTRYPOINT [\"docker-entrypoint.sh\"]\nCMD [\"node\", \"server.js\"]\n",
    )
    .unwrap();
    let (written, _) = init(&ws);
    assert!(written.contains("entrypoint = [\"/srv/docker-entrypoint.sh\"]"), "{written}");
    std::fs::remove_file(ws.app().join("docker-entrypoint.sh")).unwrap();
    // A shell line that needs npm is said, not carried silently.
    std::fs::write(
        ws.app().join("Dockerfile"),
        "FROM node:18\nWORKDIR /app\nCOPY . .\nCMD npm run migrate && npm start\n",
    )
    .unwrap();
    let (written, _) = init(&ws);
    assert!(written.contains("runs a package manager"), "{written}");
    // A package with an install script is listed for the user to decide, not accepted.
    let lock_path = ws.app().join("package-lock.json");
    let original_lock = std::fs::read_to_string(&lock_path).unwrap();
    let mut doc: serde_json::Value = serde_json::from_str(&original_lock).unwrap();
    doc["packages"]["node_modules/morgan"]["hasInstallScript"] = serde_json::json!(true);
    std::fs::write(&lock_path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    let (written, _) = init(&ws);
    assert!(written.contains("# allow-install-scripts-missing = [\"morgan\"]"), "{written}");
    std::fs::write(&lock_path, original_lock).unwrap();

    // A TypeScript-style start script whose output is not built.
    std::fs::remove_file(ws.app().join("Dockerfile")).unwrap();
    ws.edit(
        "package.json",
        "\"start\": \"node server.js\"",
        "\"start\": \"nest start\",\n    \"start:prod\": \"node dist/main\"",
    );
    let (written, _) = init(&ws);
    assert!(written.contains("entrypoint = [\"node\", \"dist/main\"]"), "{written}");
    let (code, _, stderr) = run(ws
        .oxbuild()
        .args(["build", "--output"])
        .arg(format!("oci:{}", ws.tmp.path().join("l").display()))
        .arg(ws.app()));
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("runs `node dist/main`") && stderr.contains("npm run build"), "{stderr}");

    // A lockfile version 1.
    std::fs::write(
        ws.app().join("package-lock.json"),
        "{\"name\": \"x\", \"lockfileVersion\": 1, \"dependencies\": {}}",
    )
    .unwrap();
    let (written, stderr) = init(&ws);
    assert!(
        stderr.contains("package-lock.json cannot be installed yet") && stderr.contains("lockfileVersion 1"),
        "{stderr}"
    );
    assert!(written.contains("npm install --package-lock-only"), "{written}");
}

/// A private registry (verdaccio, which wants a token for every package)
/// named by the project's `.npmrc`, its token a `${NPM_TOKEN}` from the
/// environment: the lock's npmjs URLs are fetched from it, and the token
/// is never in the output, the image or an error, whether it is missing
/// or wrong.
#[test]
fn a_private_registry_token_from_the_environment_is_used_and_never_shown() {
    let npm = oxbuild_testkit::NpmRegistry::start();
    let ws = Workspace::of("nodeexpress");
    std::fs::write(
        ws.app().join(".npmrc"),
        format!("registry={}\n//{}/:_authToken=${{NPM_TOKEN}}\n", npm.url(), npm.host()),
    )
    .unwrap();
    let layout = ws.tmp.path().join("layout");
    let build = |token: Option<&str>| {
        let mut cmd = ws.oxbuild();
        cmd.env_remove("NPM_TOKEN");
        if let Some(t) = token {
            cmd.env("NPM_TOKEN", t);
        }
        // A fresh cache each time, so that every tarball is fetched again.
        let _ = std::fs::remove_dir_all(ws.cache());
        run(cmd
            .args(["build", "--json", "--base", &node_base(), "--output"])
            .arg(format!("oci:{}", layout.display()))
            .arg(ws.app()))
    };
    let (code, stdout, stderr) = build(Some(npm.token()));
    assert_eq!(code, 0, "{stderr}");
    assert!(npm.storage().join("express/express-4.21.2.tgz").is_file(), "express came through the private registry");
    let everything = format!("{stdout}{stderr}");
    assert!(!everything.contains(npm.token()), "the token is never printed");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    for layer in report["added"].as_array().unwrap() {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(
                std::fs::File::open(blob_in(&layout, layer["digest"].as_str().unwrap())).unwrap(),
            ),
            &mut bytes,
        )
        .unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains(npm.token()), "the token is in no layer");
    }

    let (code, _, stderr) = build(None);
    assert_ne!(code, 0);
    assert!(stderr.contains(".npmrc:2") && stderr.contains("${NPM_TOKEN} is not set"), "{stderr}");

    let wrong = "npm_wrongtoken0123456789";
    let (code, stdout, stderr) = build(Some(wrong));
    assert_ne!(code, 0);
    assert!(stderr.contains("answered 401") && stderr.contains("check the token"), "{stderr}");
    assert!(!format!("{stdout}{stderr}").contains(wrong), "{stderr}");
}

/// An npm workspace: `greeter` is a link to the app's own packages/greeter
/// (whose dependency comes from the registry), and the image runs it. Two
/// builds from two copies, each with an empty cache, give the same digest.
#[test]
fn a_workspace_link_runs_and_the_image_is_reproducible() {
    let registry = Registry::start();
    let first = Workspace::of("nodeworkspace");
    let second = Workspace::of("nodeworkspace");
    let image = registry.reference("team/workspace:v1");
    let digest = |ws: &Workspace, push: bool| {
        let mut cmd = ws.oxbuild();
        cmd.args(["build", "-q", "--base", &node_base()]);
        if push {
            cmd.args(["--push", "--tag", &image]);
        } else {
            cmd.arg("--output").arg(format!("oci:{}", ws.tmp.path().join("layout").display()));
        }
        let report = build_json(cmd.arg(ws.app()));
        report["digest"].as_str().unwrap().to_string()
    };
    let a = digest(&first, false);
    assert_eq!(digest(&second, true), a, "the same inputs give the same image");
    let report = build_json(
        first
            .oxbuild()
            .args(["build", "-q", "--base", &node_base(), "--output"])
            .arg(format!("oci:{}", first.tmp.path().join("layout").display()))
            .arg(first.app()),
    );
    let layout = first.tmp.path().join("layout");
    let links: Vec<(String, u32)> = report["added"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|l| layer_entries(&blob_in(&layout, l["digest"].as_str().unwrap())))
        .filter(|(p, _)| p == "app/node_modules/greeter")
        .collect();
    assert_eq!(links.len(), 1, "greeter is linked into node_modules");
    let out = oxbuild_testkit::podman_output(&["run", "--rm", "--tls-verify=false", &image]);
    let _ = oxbuild_testkit::podman_output(&["rmi", "-f", &image]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("hello workspace, in 2m"), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
}

/// A fresh runner with the fleet's cache repository takes the node layer
/// from it (nothing downloaded), and the SBOM lists npm packages by purl.
#[test]
fn a_fresh_runner_takes_the_node_layer_from_the_cache_repository_and_the_sbom_lists_npm_purls() {
    let registry = Registry::start();
    let cache = registry.reference("team/oxbuild-cache");
    let build = |ws: &Workspace, tag: &str| {
        build_json(
            ws.oxbuild()
                .env("OXBUILD_CACHE_KEY", "a-fleet-key-for-tests-0123456789")
                .args(["build", "-q", "--push", "--tag", tag, "--cache-repo", &cache, "--base", &node_base()])
                .arg(ws.app()),
        )
    };
    let first = build(&Workspace::of("nodeexpress"), &registry.reference("team/express:one"));
    assert_eq!(first["node"]["source"], "built", "{first}");
    let second = build(&Workspace::of("nodeexpress"), &registry.reference("team/express:two"));
    assert_eq!(second["node"]["source"], "cache repository", "{second}");
    assert_eq!(second["node"]["downloaded"], 0, "{second}");
    assert_eq!(second["digest"], first["digest"], "the same image");

    let ws = Workspace::of("nodeexpress");
    let (code, stdout, stderr) = run(ws.oxbuild().args(["sbom", &registry.reference("team/express:two")]));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("pkg:npm/express@4.21.2"), "{stdout}");
    assert!(stdout.contains("pkg:deb/debian/nodejs@"), "the base's packages too");
}

/// Another package manager's lock is a clear error saying how to get a
/// package-lock; an npm-shrinkwrap.json is read like a package-lock.
#[test]
fn other_locks_are_named_and_a_shrinkwrap_is_read() {
    let ws = Workspace::of("nodeexpress");
    let lock = ws.app().join("package-lock.json");
    let build = |ws: &Workspace| {
        run(ws
            .oxbuild()
            .args(["build", "--base", &node_base(), "--output"])
            .arg(format!("oci:{}", ws.tmp.path().join("l").display()))
            .arg(ws.app()))
    };
    std::fs::rename(&lock, ws.app().join("npm-shrinkwrap.json")).unwrap();
    let (code, _, stderr) = build(&ws);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("from npm-shrinkwrap.json"), "{stderr}");
    std::fs::remove_file(ws.app().join("npm-shrinkwrap.json")).unwrap();
    for (file, tool) in [("pnpm-lock.yaml", "pnpm"), ("yarn.lock", "yarn")] {
        std::fs::write(ws.app().join(file), "# a lock\n").unwrap();
        let (code, _, stderr) = build(&ws);
        assert_eq!(code, 3, "{stderr}");
        assert!(
            stderr.contains(&format!("{tool}'s {file}")) && stderr.contains("npm install --package-lock-only"),
            "{stderr}"
        );
        std::fs::remove_file(ws.app().join(file)).unwrap();
    }
    let (code, _, stderr) = build(&ws);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("package.json has dependencies but there is no package-lock.json"), "{stderr}");
}

/// The build knows the commands the node layer's `.bin` offers, so a
/// command no package provides (and the base lacks) is named at build time,
/// while one from `.bin` or the base is not.
#[test]
fn a_command_no_package_provides_is_warned_about_and_bin_commands_count() {
    let ws = Workspace::of("nodeexpress");
    let warned = |entrypoint: &str| -> Vec<String> {
        let config = std::fs::read_to_string(ws.app().join("oxbuild.toml")).unwrap();
        let edited = match config.find("\nentrypoint = ") {
            Some(at) => {
                format!("{}\nentrypoint = {entrypoint}{}", &config[..at], &config[at..].split_once(']').unwrap().1)
            }
            None => config.replace("ports = [3000]", &format!("ports = [3000]\nentrypoint = {entrypoint}")),
        };
        std::fs::write(ws.app().join("oxbuild.toml"), edited).unwrap();
        let report = build_json(ws.oxbuild().args(["build", "-q", "--base", &node_base()]).arg(ws.app()));
        report["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|w| w.as_str())
            .filter(|w| w.contains(" runs `"))
            .map(String::from)
            .collect()
    };
    assert_eq!(warned("[\"mime\", \"--version\"]"), Vec::<String>::new(), "mime is in node_modules/.bin");
    assert_eq!(warned("[\"node\", \"server.js\"]"), Vec::<String>::new(), "node is the base's");
    let w = warned("[\"nodemon\", \"server.js\"]");
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].starts_with("[image] entrypoint runs `nodemon`") && w[0].contains("node_modules/.bin"), "{w:?}");
}

/// A Python app with a front-end's package-lock.json, on a Python base
/// without node: the lock is left out with a warning (as init reads it),
/// unless oxbuild.toml names it, which needs a Node.js base.
#[test]
fn a_front_end_lock_beside_a_python_app_is_left_out_unless_named() {
    let ws = Workspace::of("pyweb");
    for f in ["package.json", "package-lock.json"] {
        std::fs::copy(oxbuild_testkit::repo_root().join("testdata/nodeexpress").join(f), ws.app().join(f)).unwrap();
    }
    let (code, stdout, stderr) = run(ws.oxbuild().args(["build", "--json", "--base", &base()]).arg(ws.app()));
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("package-lock.json is left out: the base has Python and no node"), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(report["node"].is_null(), "no Node layer: {}", report["node"]);
    // One whose package.json serves nothing (no start script, no main) is
    // left out without a word, on every build.
    let package = std::fs::read_to_string(ws.app().join("package.json")).unwrap();
    let mut quiet: serde_json::Value = serde_json::from_str(&package).unwrap();
    quiet["scripts"] = serde_json::json!({"build": "rollup -c"});
    quiet.as_object_mut().unwrap().remove("main");
    std::fs::write(ws.app().join("package.json"), quiet.to_string()).unwrap();
    let (code, _, stderr) = run(ws.oxbuild().args(["build", "-q", "--base", &base()]).arg(ws.app()));
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("left out"), "{stderr}");
    std::fs::write(ws.app().join("package.json"), package).unwrap();
    ws.append_config("\n[node]\nlock = \"package-lock.json\"\n");
    let (code, _, stderr) = run(ws.oxbuild().args(["build", "-q", "--base", &base()]).arg(ws.app()));
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("the base image has no node"), "{stderr}");
}
