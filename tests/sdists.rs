//! Packages published only as source distributions, built into wheels in
//! the same run by their own PEP 517 backend, with the backend installed by
//! oxbuild from wheels: flit-core, and setuptools' legacy backend for a
//! `setup.py`-only sdist. A sdist that compiles C is named.

mod common;

use std::path::Path;

use common::{base, blob_in, build_json, layer_file, offline_pyweb, run, sdist};

/// Runs `build` (a `build` command of `ws`'s oxbuild, with its flags) with
/// `--output` into an OCI layout of the workspace; the layout and the report.
fn into_layout(ws: &common::Workspace, build: &mut std::process::Command) -> (std::path::PathBuf, serde_json::Value) {
    let layout = ws.tmp.path().join("layout");
    let report = build_json(build.arg("--output").arg(format!("oci:{}", layout.display())).arg(ws.app()));
    (layout, report)
}

/// `legacy-2.0.tar.gz`, a `setup.py`-only sdist (setuptools' legacy
/// backend), written into `dir`; its sha256.
fn legacy_sdist(dir: &Path) -> String {
    let files = [
        ("setup.py", "from setuptools import setup\nsetup(name='legacy', version='2.0', py_modules=['legacy'])\n"),
        ("legacy.py", "ANSWER = 42\n"),
        ("PKG-INFO", "Metadata-Version: 2.1\nName: legacy\nVersion: 2.0\n"),
    ];
    sdist(dir, "legacy", "2.0", &files).1
}

/// pyweb, offline, with `sdists` and the build backends' wheels in
/// `find-links`, and `pins` as its whole production lock.
fn app_with(sdists: &Path, pins: &str) -> common::Workspace {
    let ws = offline_pyweb();
    let house = oxbuild_testkit::wheelhouse();
    ws.edit_config(
        &format!("find-links = [\"{}\"]", house.display()),
        &format!(
            "find-links = [\"{}\", \"{}\", \"{}\"]",
            house.display(),
            sdists.display(),
            oxbuild_testkit::build_wheelhouse().display()
        ),
    );
    std::fs::write(ws.app().join("requirements.txt"), pins).unwrap();
    ws
}

/// pyweb whose whole lock is one sdist, `name==version` holding `files`;
/// the temporary directory holds the sdist and must outlive the workspace's use.
fn app_with_one_sdist(name: &str, version: &str, files: &[(&str, &str)]) -> (tempfile::TempDir, common::Workspace) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sdists");
    let (_, sha) = sdist(&dir, name, version, files);
    let ws = app_with(&dir, &format!("{name}=={version} --hash=sha256:{sha}\n"));
    (tmp, ws)
}

#[test]
fn source_only_packages_are_built_with_their_backend_and_the_image_is_reproducible() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sdists");
    let (_, flit) = sdist(
        &dir,
        "greet",
        "1.0",
        &[
            (
                "pyproject.toml",
                "[build-system]\nrequires = [\"flit_core >=3.2,<4\"]\nbuild-backend = \"flit_core.buildapi\"\n\n[project]\nname = \"greet\"\nversion = \"1.0\"\ndescription = \"Says hello\"\n",
            ),
            ("greet.py", "\"\"\"Says hello.\"\"\"\n\ndef hello():\n    return 'hello from an sdist'\n"),
            ("PKG-INFO", "Metadata-Version: 2.1\nName: greet\nVersion: 1.0\n"),
        ],
    );
    let legacy = legacy_sdist(&dir);
    let ws = app_with(&dir, &format!("greet==1.0 --hash=sha256:{flit}\nlegacy==2.0 --hash=sha256:{legacy}\n"));
    let (layout, report) = into_layout(&ws, ws.oxbuild().args(["build", "-q", "--base", &base()]));
    let wheels = report["python"]["wheels"].to_string();
    assert!(
        wheels.contains("greet-1.0-py2.py3-none-any.whl") && wheels.contains("legacy-2.0-py3-none-any.whl"),
        "{wheels}"
    );
    let deps = report["python"]["layer"].as_str().unwrap();
    let greet =
        layer_file(&blob_in(&layout, deps), "opt/venv/lib/python3.11/site-packages/greet.py").expect("installed");
    assert!(String::from_utf8_lossy(&greet).contains("hello from an sdist"));
    assert!(layer_file(&blob_in(&layout, deps), "opt/venv/lib/python3.11/site-packages/legacy.py").is_some());

    // A fresh runner builds them again, to the same image.
    let again = build_json(
        ws.oxbuild()
            .env("OXBUILD_CACHE_DIR", ws.tmp.path().join("fresh"))
            .args(["build", "-q", "--base", &base()])
            .arg(ws.app()),
    );
    assert_eq!(again["digest"], report["digest"], "sdist builds are reproducible");
}

#[test]
fn an_sdist_that_compiles_c_fails_naming_it_with_what_to_do() {
    let (_sdists, ws) = app_with_one_sdist(
        "fast",
        "1.0",
        &[
            (
                "setup.py",
                "from setuptools import setup, Extension\nsetup(name='fast', version='1.0', ext_modules=[Extension('fast', ['fast.c'])])\n",
            ),
            ("fast.c", "#include <Python.h>\n"),
            ("PKG-INFO", "Metadata-Version: 2.1\nName: fast\nVersion: 1.0\n"),
        ],
    );
    let (code, _, stderr) = run(ws.oxbuild().args(["build", "-q", "--base", &base()]).arg(ws.app()));
    assert_eq!(code, 4, "{stderr}");
    for needle in [
        "fast==1.0",
        "fast-1.0.tar.gz",
        "the build by the base's /usr/bin/python3.11 failed",
        "gcc",
        "compiles C",
        "find-links",
    ] {
        assert!(stderr.contains(needle), "`{needle}`: {stderr}");
    }
}

/// `[python] build-constraints` pins the backend's version: a version the
/// sources lack is named; the one they have builds.
#[test]
fn build_constraints_pin_the_backend() {
    let (_sdists, ws) = app_with_one_sdist(
        "legacy",
        "2.0",
        &[
            ("setup.py", "from setuptools import setup\nsetup(name='legacy', version='2.0', py_modules=['legacy'])\n"),
            ("legacy.py", "ANSWER = 42\n"),
        ],
    );
    std::fs::write(ws.app().join("build-constraints.txt"), "setuptools==70.0.0\n").unwrap();
    ws.edit_config("no-index = true", "no-index = true\nbuild-constraints = \"build-constraints.txt\"");
    let (code, _, stderr) = run(ws.oxbuild().args(["build", "-q", "--base", &base()]).arg(ws.app()));
    assert_eq!(code, 4, "{stderr}");
    assert!(stderr.contains("setuptools>=40.8.0") && stderr.contains("at 70.0.0 (build-constraints)"), "{stderr}");

    std::fs::write(ws.app().join("build-constraints.txt"), "setuptools==75.8.0\n").unwrap();
    let report = build_json(ws.oxbuild().args(["build", "-q", "--base", &base()]).arg(ws.app()));
    assert!(report["python"]["wheels"].to_string().contains("legacy-2.0-py3-none-any.whl"), "{report}");
}

/// A build requirement published only as a wheel for a platform (as
/// MarkupSafe is, under jinja2, under a hatch plugin) is taken when it is
/// one for the base's own interpreter, which runs the build; before, only
/// pure-Python wheels were.
#[test]
fn a_build_requirement_with_only_a_wheel_for_the_bases_platform_is_installed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sdists");
    // A wheel tagged for CPython 3.11 on x86_64 glibc (its content need not be native).
    let made = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile\nname = 'helperlib-1.0-cp311-cp311-manylinux_2_17_x86_64.whl'\nwith zipfile.ZipFile(sys.argv[1] + '/' + name, 'w') as z:\n    z.writestr('helperlib.py', 'VERSION = \"1.0\"\\n')\n    z.writestr('helperlib-1.0.dist-info/METADATA', 'Metadata-Version: 2.1\\nName: helperlib\\nVersion: 1.0\\n')\n    z.writestr('helperlib-1.0.dist-info/WHEEL', 'Wheel-Version: 1.0\\nRoot-Is-Purelib: false\\nTag: cp311-cp311-manylinux_2_17_x86_64\\n')\n    z.writestr('helperlib-1.0.dist-info/RECORD', '')\n",
        ])
        .arg({
            std::fs::create_dir_all(&dir).unwrap();
            &dir
        })
        .status()
        .unwrap();
    assert!(made.success());
    let files = [
        (
            "pyproject.toml",
            "[build-system]\nrequires = [\"setuptools>=61\", \"helperlib\"]\nbuild-backend = \"setuptools.build_meta\"\n",
        ),
        // The backend's own run imports it: installed, not only resolved.
        (
            "setup.py",
            "import helperlib\nfrom setuptools import setup\nsetup(name='usesnative', version=helperlib.VERSION, py_modules=['usesnative'])\n",
        ),
        ("usesnative.py", "ANSWER = 42\n"),
    ];
    let (_, sha) = sdist(&dir, "usesnative", "1.0", &files);
    let ws = app_with(&dir, &format!("usesnative==1.0 --hash=sha256:{sha}\n"));
    let (code, stdout, stderr) = run(ws.oxbuild().args(["build", "-q", "--json", "--base", &base()]).arg(ws.app()));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("usesnative-1.0-py3-none-any.whl"), "{stdout}");
}

/// A package whose C speedups are optional (as SQLAlchemy's and
/// MarkupSafe's are) builds without them here; its backend still tags the
/// wheel for this platform, but with no native code in it, it is taken.
#[test]
fn optional_c_speedups_are_left_out_and_the_pure_package_is_installed() {
    let (_sdists, ws) = app_with_one_sdist(
        "speedy",
        "1.0",
        &[
            (
                "setup.py",
                "from setuptools import setup, Extension\nsetup(name='speedy', version='1.0', py_modules=['speedy'], ext_modules=[Extension('_speedups', ['speedups.c'], optional=True)])\n",
            ),
            ("speedy.py", "FAST = False\n"),
            ("speedups.c", "#include <Python.h>\n"),
        ],
    );
    let (layout, report) = into_layout(&ws, ws.oxbuild().args(["build", "-q", "--base", &base()]));
    let deps = report["python"]["layer"].as_str().unwrap();
    assert!(
        layer_file(&blob_in(&layout, deps), "opt/venv/lib/python3.11/site-packages/speedy.py").is_some(),
        "{report}"
    );
}

/// A sdist whose `setup.py` starts Python again, as backends and their
/// plugins do: by `sys.executable` and by `python3` on `PATH`. Each child
/// reports which program the kernel runs for it.
const SPAWNING_SETUP: &str = r#"import os, subprocess, sys
from setuptools import setup
probe = "import os; print(os.readlink('/proc/self/exe'))"
by_executable = subprocess.check_output([sys.executable, "-c", probe]).decode().strip()
by_path = subprocess.check_output(["python3", "-c", probe]).decode().strip()
with open("spawned.py", "w") as f:
    f.write(f"BY_EXECUTABLE = {by_executable!r}\nBY_PATH = {by_path!r}\n")
setup(name="spawned", version="1.0", py_modules=["spawned"])
"#;

/// What `python.built` of a `--json` report lists: each wheel and whether it was reused.
fn built(report: &serde_json::Value) -> Vec<(String, bool)> {
    let list = report["python"]["built"].as_array().cloned().unwrap_or_default();
    list.iter().map(|b| (b["wheel"].as_str().unwrap().to_string(), b["reused"].as_bool().unwrap())).collect()
}

/// `(wheel, reused)` pairs, as [`built`] gives them.
fn pairs(list: &[(&str, bool)]) -> Vec<(String, bool)> {
    list.iter().map(|(w, r)| (w.to_string(), *r)).collect()
}

/// The `name` entry's CycloneDX `oxbuild:index` property (where it came from).
fn sbom_source(sbom_dir: &Path, name: &str) -> String {
    let bom: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sbom_dir.join("sbom.cdx.json")).unwrap()).unwrap();
    let component = bom["components"].as_array().unwrap().iter().find(|c| c["name"] == name).cloned();
    let component = component.unwrap_or_else(|| panic!("{name} in the SBOM"));
    let props = component["properties"].as_array().cloned().unwrap_or_default();
    let source = props.iter().find(|p| p["name"] == "oxbuild:index").and_then(|p| p["value"].as_str());
    source.unwrap_or_else(|| panic!("{component}")).to_string()
}

#[test]
fn sdists_build_with_the_bases_own_interpreter_and_a_built_wheel_serves_the_whole_fleet() {
    let registry = oxbuild_testkit::Registry::start();
    let cache_repo = registry.reference("cache/deps");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sdists");
    let (_, spawned) = sdist(
        &dir,
        "spawned",
        "1.0",
        &[("setup.py", SPAWNING_SETUP), ("PKG-INFO", "Metadata-Version: 2.1\nName: spawned\nVersion: 1.0\n")],
    );
    let legacy = legacy_sdist(&dir);
    let ws = app_with(&dir, &format!("spawned==1.0 --hash=sha256:{spawned}\n"));
    let (runner_a, runner_b) = (ws.tmp.path().join("runner-a"), ws.tmp.path().join("runner-b"));
    let sbom_dir = ws.tmp.path().join("sbom");
    let (layout, first) = into_layout(
        &ws,
        ws.oxbuild()
            .env("OXBUILD_CACHE_DIR", &runner_a)
            .args(["build", "-q", "--base", &base(), "--cache-repo", &cache_repo, "--sbom-dir"])
            .arg(&sbom_dir),
    );
    assert_eq!(built(&first), pairs(&[("spawned-1.0-py3-none-any.whl", false)]));
    // The backend, and both processes it started, ran the base's interpreter
    // through the base's own loader, from the kit oxbuild unpacked.
    let deps = first["python"]["layer"].as_str().unwrap();
    let module = layer_file(&blob_in(&layout, deps), "opt/venv/lib/python3.11/site-packages/spawned.py").unwrap();
    let module = String::from_utf8(module).unwrap();
    let kit = runner_a.join(format!("interpreters-v{}", oxbuild_cache::FORMAT));
    for line in module.lines() {
        let exe = line.split('\'').nth(1).unwrap_or_default();
        assert!(exe.starts_with(kit.to_str().unwrap()) && exe.ends_with("ld-linux-x86-64.so.2"), "{module}");
    }
    // The SBOM says how it was built: from which sdist, with which backend.
    let source = sbom_source(&sbom_dir, "spawned");
    assert!(source.starts_with(&format!("built by oxbuild from spawned-1.0.tar.gz (sha256:{spawned})")), "{source}");
    assert!(source.contains("with build requirements setuptools=="), "{source}");
    // The provenance lists indexes as package indexes, not that sentence.
    let provenance = std::fs::read_to_string(sbom_dir.join("provenance.intoto.json")).unwrap();
    assert!(!provenance.contains("built by oxbuild"), "{provenance}");
    let tags = registry.skopeo_list_tags("cache/deps");
    assert!(
        tags.iter().any(|t| t.starts_with("wheel-v")),
        "the built wheel is in the cache repository: {tags:?}\n{}",
        registry.log()
    );

    // Another runner, another lock (so the dependency layer is new): the
    // wheel comes from the cache repository, not from a build.
    std::fs::write(
        ws.app().join("requirements.txt"),
        format!("spawned==1.0 --hash=sha256:{spawned}\nlegacy==2.0 --hash=sha256:{legacy}\n"),
    )
    .unwrap();
    let second = build_json(
        ws.oxbuild()
            .env("OXBUILD_CACHE_DIR", &runner_b)
            .args(["build", "-q", "--base", &base(), "--cache-repo", &cache_repo])
            .arg(ws.app()),
    );
    assert_eq!(
        built(&second),
        pairs(&[("spawned-1.0-py3-none-any.whl", true), ("legacy-2.0-py3-none-any.whl", false)])
    );
    // How it was built travels with it.
    assert!(second["python"]["built"][0]["how"].as_str().unwrap().contains("setuptools=="), "{}", second["python"]);
    // The first runner has its own build in its own cache, with no cache
    // repository; legacy was built by the other runner only.
    let third = build_json(
        ws.oxbuild().env("OXBUILD_CACHE_DIR", &runner_a).args(["build", "-q", "--base", &base()]).arg(ws.app()),
    );
    assert_eq!(built(&third), pairs(&[("spawned-1.0-py3-none-any.whl", true), ("legacy-2.0-py3-none-any.whl", false)]));
    assert_eq!(third["python"]["layer"], second["python"]["layer"], "a reused wheel installs the same layer");
}

/// A git repository in `dir` holding a flit-core project `greet`, with two
/// commits; returns the first commit (whose greeting is "first").
fn greet_repository(dir: &Path) -> String {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("pyproject.toml"),
        "[build-system]\nrequires = [\"flit_core >=3.2,<4\"]\nbuild-backend = \"flit_core.buildapi\"\n\n[project]\nname = \"greet\"\nversion = \"1.0\"\ndescription = \"Says hello\"\n",
    )
    .unwrap();
    std::fs::write(dir.join("greet.py"), "\"\"\"Says hello.\"\"\"\nGREETING = 'first'\n").unwrap();
    common::git(dir, &["init", "-q", "-b", "main"]);
    common::git(dir, &["add", "-A"]);
    common::git(dir, &["commit", "-q", "-m", "first"]);
    let first = common::git(dir, &["rev-parse", "HEAD"]).trim().to_string();
    std::fs::write(dir.join("greet.py"), "\"\"\"Says hello.\"\"\"\nGREETING = 'second'\n").unwrap();
    common::git(dir, &["commit", "-q", "-am", "second"]);
    first
}

/// A member of a uv workspace (the app, in a folder of the monorepo) builds
/// from the workspace's uv.lock above it: what the member needs, another
/// member among it, and nothing the workspace's root needs.
#[test]
fn a_uv_workspace_member_builds_from_the_workspaces_lock() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("no-sdists")).unwrap();
    let ws = app_with(&tmp.path().join("no-sdists"), "");
    let root = ws.tmp.path();
    let helper = root.join("packages/helper");
    std::fs::create_dir_all(&helper).unwrap();
    std::fs::write(
        helper.join("setup.py"),
        "from setuptools import setup\nsetup(name='helper', version='2.0', py_modules=['helper'])\n",
    )
    .unwrap();
    std::fs::write(helper.join("helper.py"), "HELPS = True\n").unwrap();
    // The root's own dependency is not in the lock: following it would fail.
    std::fs::write(
        root.join("uv.lock"),
        "version = 1\nrequires-python = \">=3.11\"\n\n[manifest]\nmembers = [\"app\", \"helper\", \"tools\"]\n\n\
         [[package]]\nname = \"tools\"\nversion = \"0.1.0\"\nsource = { virtual = \".\" }\ndependencies = [{ name = \"absent\" }]\n\n\
         [[package]]\nname = \"app\"\nversion = \"0.1.0\"\nsource = { editable = \"app\" }\ndependencies = [{ name = \"helper\" }]\n\n\
         [[package]]\nname = \"helper\"\nversion = \"2.0\"\nsource = { editable = \"packages/helper\" }\n",
    )
    .unwrap();
    ws.edit_config("requirements = \"requirements.txt\"", "lock = \"../uv.lock\"");
    std::fs::remove_file(ws.app().join("requirements.txt")).unwrap();
    let (layout, report) = into_layout(&ws, ws.oxbuild().args(["build", "-q", "--base", &base()]));
    assert_eq!(built(&report), pairs(&[("helper-2.0-py3-none-any.whl", false)]));
    let deps = blob_in(&layout, report["python"]["layer"].as_str().unwrap());
    assert!(layer_file(&deps, "opt/venv/lib/python3.11/site-packages/helper.py").is_some());
}

#[test]
fn git_and_directory_packages_of_a_uv_lock_are_built_from_their_trees() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = app_with(&tmp.path().join("no-sdists"), "");
    std::fs::create_dir_all(tmp.path().join("no-sdists")).unwrap();
    let commit = greet_repository(&tmp.path().join("greet"));
    let repo = format!("file://{}", tmp.path().join("greet").display());
    // A workspace member, as uv locks one (`editable`), built with setuptools.
    let member = ws.app().join("packages/helper");
    std::fs::create_dir_all(&member).unwrap();
    std::fs::write(
        member.join("setup.py"),
        "from setuptools import setup\nsetup(name='helper', version='2.0', py_modules=['helper'])\n",
    )
    .unwrap();
    std::fs::write(member.join("helper.py"), "HELPS = True\n").unwrap();
    let lock = |commit: &str| {
        format!(
            "version = 1\nrequires-python = \">=3.11\"\n\n[[package]]\nname = \"app\"\nversion = \"0.1.0\"\nsource = {{ virtual = \".\" }}\ndependencies = [\n    {{ name = \"greet\" }},\n    {{ name = \"helper\" }},\n]\n\n\
             [[package]]\nname = \"greet\"\nversion = \"1.0\"\nsource = {{ git = \"{repo}?rev=main#{commit}\" }}\n\n\
             [[package]]\nname = \"helper\"\nversion = \"2.0\"\nsource = {{ editable = \"packages/helper\" }}\n"
        )
    };
    std::fs::write(ws.app().join("uv.lock"), lock(&commit)).unwrap();
    ws.edit_config("requirements = \"requirements.txt\"", "lock = \"uv.lock\"");
    std::fs::remove_file(ws.app().join("requirements.txt")).unwrap();
    let sbom_dir = ws.tmp.path().join("sbom");
    let (layout, report) =
        into_layout(&ws, ws.oxbuild().args(["build", "-q", "--base", &base(), "--sbom-dir"]).arg(&sbom_dir));
    assert_eq!(
        built(&report),
        pairs(&[("greet-1.0-py2.py3-none-any.whl", false), ("helper-2.0-py3-none-any.whl", false)])
    );
    let deps = blob_in(&layout, report["python"]["layer"].as_str().unwrap());
    let greet = layer_file(&deps, "opt/venv/lib/python3.11/site-packages/greet.py").expect("greet installed");
    assert!(String::from_utf8_lossy(&greet).contains("'first'"), "the locked commit, not the branch's head");
    assert!(layer_file(&deps, "opt/venv/lib/python3.11/site-packages/helper.py").is_some());
    let source = sbom_source(&sbom_dir, "greet");
    assert!(source.starts_with(&format!("built by oxbuild from git {repo} at {commit}")), "{source}");

    // A change to the member (which no lock pins) makes a new layer.
    std::fs::write(member.join("helper.py"), "HELPS = 'more'\n").unwrap();
    let again = build_json(ws.oxbuild().args(["build", "-q", "--base", &base()]).arg(ws.app()));
    assert_eq!(again["python"]["reused"], false, "{}", again["python"]);
    assert_ne!(again["python"]["layer"], report["python"]["layer"]);

    // A commit the repository does not have is named, with the package.
    std::fs::write(ws.app().join("uv.lock"), lock(&"0".repeat(40))).unwrap();
    let (code, _, stderr) = run(ws.oxbuild().args(["build", "-q", "--base", &base()]).arg(ws.app()));
    assert_eq!(code, 4, "{stderr}");
    assert!(stderr.contains("greet==1.0") && stderr.contains("is not in the repository"), "{stderr}");
}
