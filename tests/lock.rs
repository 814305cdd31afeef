//! `oxbuild lock`: the project's requirements resolved for its base image
//! and written as a pylock.toml that `build` installs. Against a local index
//! (data the test controls) and against PyPI itself with `--exclude-newer`.

mod common;

use std::time::Duration;

use common::{Workspace, base, build_json, git, run};
use oxbuild_testkit::{Container, PackageIndex, Registry, http_get, make_wheel};

/// A project in `ws` whose top-level requirements are `requirements_in`,
/// on the test base.
fn project(ws: &Workspace, requirements_in: &str) {
    let app = ws.app();
    std::fs::create_dir_all(app.join("svc")).unwrap();
    std::fs::write(app.join("svc/__init__.py"), "").unwrap();
    std::fs::write(app.join("requirements.in"), requirements_in).unwrap();
    std::fs::write(
        app.join("oxbuild.toml"),
        format!(
            "[image]\nbase = \"{}\"\nentrypoint = [\"gunicorn\", \"--bind\", \"0.0.0.0:8000\", \"svc.web:app\"]\nports = [8000]\n\n[healthcheck]\nhttp = \"http://127.0.0.1:8000/health\"\n",
            base()
        ),
    )
    .unwrap();
}

/// A project in `ws` whose only input is this pyproject.toml.
fn pyproject_project(ws: &Workspace, pyproject: &str) {
    std::fs::remove_dir_all(ws.app()).unwrap();
    project(ws, "");
    std::fs::remove_file(ws.app().join("requirements.in")).unwrap();
    std::fs::write(ws.app().join("pyproject.toml"), pyproject).unwrap();
}

/// An index serving pure-Python wheels of these (name, version) pairs.
/// `oxbuild lock` of `ws`'s app from `index` alone, as of 2026-01-01.
fn lock_from(ws: &Workspace, index: &PackageIndex) -> (i32, String, String) {
    run(ws
        .oxbuild()
        .env("OXBUILD_PYTHON_INDEX_URL", index.url())
        .args(["lock", "--exclude-newer", "2026-01-01"])
        .arg(ws.app()))
}

fn local_index(wheels: &[(&str, &str)]) -> (tempfile::TempDir, PackageIndex) {
    let dir = tempfile::tempdir().unwrap();
    for (name, version) in wheels {
        make_wheel(dir.path(), name, version, "py3-none-any", &[], None);
    }
    let index = PackageIndex::start(dir.path());
    (dir, index)
}

#[test]
fn a_local_index_is_locked_twice_to_the_same_bytes_and_a_conflict_is_explained() {
    let wheels = tempfile::tempdir().unwrap();
    let any = "py3-none-any";
    make_wheel(wheels.path(), "alpha", "1.0", any, &["gamma>=1"], None);
    make_wheel(wheels.path(), "beta", "1.0", any, &["gamma<3"], None);
    for v in ["1.0", "2.0", "3.0"] {
        make_wheel(wheels.path(), "gamma", v, any, &[], None);
    }
    make_wheel(wheels.path(), "delta", "1.0", any, &["gamma>=3"], None);
    // Versions with files, none for the target: a newer Python, another platform.
    make_wheel(wheels.path(), "epsilon", "2.0", any, &[], Some(">=3.99"));
    make_wheel(wheels.path(), "zeta", "1.0", "cp311-cp311-win_amd64", &[], None);
    let index = PackageIndex::start(wheels.path());
    let ws = Workspace::new();
    std::fs::remove_dir_all(ws.app()).unwrap();
    project(&ws, "alpha\nbeta\n");
    let lock = |ws: &Workspace| lock_from(ws, &index);
    let (code, stdout, stderr) = lock(&ws);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("locked 3 packages"), "{stdout}");
    assert!(
        stderr.contains("have no upload time"),
        "the index gives no upload times, and the output says so: {stderr}"
    );
    let first = std::fs::read_to_string(ws.app().join("pylock.toml")).unwrap();
    assert!(first.contains("name = \"gamma\"\nversion = \"2.0\""), "{first}");
    let config = std::fs::read_to_string(ws.app().join("oxbuild.toml")).unwrap();
    assert!(config.contains("[python]\nlock = \"pylock.toml\""), "the build reads what was locked:\n{config}");
    let requests = |stdout: &str| -> u64 {
        let line = stdout.lines().find(|l| l.ends_with("HTTP requests to the indexes")).unwrap_or_default();
        line.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{stdout}"))
    };
    assert!(requests(&stdout) > 0, "{stdout}");
    let (code, again, stderr) = lock(&ws);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(std::fs::read_to_string(ws.app().join("pylock.toml")).unwrap(), first, "byte-identical");
    assert_eq!(requests(&again), 0, "pages (for 10 minutes) and metadata come from the cache: {again}");

    // A conflict: the error says which requirements clash, in sentences.
    std::fs::write(ws.app().join("requirements.in"), "beta\ndelta\n").unwrap();
    let (code, _, stderr) = lock(&ws);
    assert_eq!(code, 3, "{stderr}");
    for needle in ["no versions satisfy", "beta", "depends on gamma<3", "delta", "depends on gamma>=3", "Because"] {
        assert!(stderr.contains(needle), "`{needle}`: {stderr}");
    }
    assert_eq!(std::fs::read_to_string(ws.app().join("pylock.toml")).unwrap(), first, "a failed lock writes nothing");

    // Versions that exist but fit no file to the target: the error says why.
    for (requirement, why) in [
        ("epsilon==2.0", "epsilon 2.0: for another Python (Requires-Python >=3.99), and the target has Python 3.11"),
        ("zeta", "zeta 1.0: wheels only for other Pythons or platforms than x86_64"),
    ] {
        std::fs::write(ws.app().join("requirements.in"), format!("{requirement}\n")).unwrap();
        let (code, _, stderr) = lock(&ws);
        assert_eq!(code, 3, "{stderr}");
        assert!(stderr.contains(why), "`{why}`: {stderr}");
    }
}

#[test]
fn init_locks_a_project_whose_only_input_is_an_unpinned_requirements_txt() {
    let wheels = tempfile::tempdir().unwrap();
    make_wheel(wheels.path(), "alpha", "1.0", "py3-none-any", &[], None);
    make_wheel(wheels.path(), "alpha", "1.1", "py3-none-any", &[], None);
    let index = PackageIndex::start(wheels.path());
    let ws = Workspace::new();
    std::fs::remove_dir_all(ws.app()).unwrap();
    let app = ws.app();
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("requirements.txt"), "alpha>=1\n").unwrap();
    std::fs::write(app.join("web.py"), "print('hi')\n").unwrap();
    std::fs::write(
        app.join("Dockerfile"),
        "FROM python:3.11\nWORKDIR /app\nCOPY requirements.txt .\nRUN pip install -r requirements.txt\nCOPY web.py .\nCMD [\"python3\", \"web.py\"]\n",
    )
    .unwrap();
    let (code, stdout, stderr) =
        run(ws.oxbuild().env("OXBUILD_PYTHON_INDEX_URL", index.url()).args(["init", "--base", &base()]).arg(&app));
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("running `oxbuild lock`"), "{stderr}");
    assert!(stderr.contains("locked 1 packages into pylock.toml"), "{stdout}\n{stderr}");
    let config = std::fs::read_to_string(app.join("oxbuild.toml")).unwrap();
    assert!(config.contains("lock = \"pylock.toml\"\nlock-input = \"requirements.txt\""), "{config}");
    let lock = std::fs::read_to_string(app.join("pylock.toml")).unwrap();
    assert!(lock.contains("name = \"alpha\"\nversion = \"1.1\""), "{lock}");
}

/// flasky: the Dockerfile installs `requirements/docker.txt`, and the root
/// requirements.txt is another one (Heroku's). init locks the one the
/// Dockerfile installs and names it as `lock-input`, which a later
/// `oxbuild lock` resolves again.
#[test]
fn init_locks_the_requirements_file_the_dockerfile_installs() {
    let wheels = tempfile::tempdir().unwrap();
    make_wheel(wheels.path(), "alpha", "1.0", "py3-none-any", &[], None);
    make_wheel(wheels.path(), "beta", "2.0", "py3-none-any", &[], None);
    make_wheel(wheels.path(), "gamma", "1.0", "py3-none-any", &[], None);
    let index = PackageIndex::start(wheels.path());
    let ws = Workspace::new();
    std::fs::remove_dir_all(ws.app()).unwrap();
    let app = ws.app();
    std::fs::create_dir_all(app.join("requirements")).unwrap();
    std::fs::write(app.join("requirements.txt"), "beta==2.0\n").unwrap();
    // Its first line includes another file, whose pins count as its own.
    std::fs::write(app.join("requirements/docker.txt"), "-r common.txt\nalpha==1.0\n").unwrap();
    std::fs::write(app.join("requirements/common.txt"), "gamma==1.0\n").unwrap();
    std::fs::write(app.join("web.py"), "print('hi')\n").unwrap();
    std::fs::write(
        app.join("Dockerfile"),
        "FROM python:3.11\nWORKDIR /app\nCOPY requirements requirements\nRUN pip install -r requirements/docker.txt\nCOPY web.py .\nCMD [\"python3\", \"web.py\"]\n",
    )
    .unwrap();
    let oxbuild = || {
        let mut cmd = ws.oxbuild();
        cmd.env("OXBUILD_PYTHON_INDEX_URL", index.url());
        cmd
    };
    let (code, _, stderr) = run(oxbuild().args(["init", "--base", &base()]).arg(&app));
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("from requirements/docker.txt"), "{stderr}");
    let config = std::fs::read_to_string(app.join("oxbuild.toml")).unwrap();
    assert!(config.contains("lock = \"pylock.toml\"\nlock-input = \"requirements/docker.txt\""), "{config}");
    let locked = || std::fs::read_to_string(app.join("pylock.toml")).unwrap();
    assert!(locked().contains("name = \"alpha\"") && !locked().contains("name = \"beta\""), "{}", locked());
    assert!(locked().contains("name = \"gamma\""), "the -r include: {}", locked());
    std::fs::remove_file(app.join("pylock.toml")).unwrap();
    let (code, _, stderr) = run(oxbuild().args(["lock"]).arg(&app));
    assert_eq!(code, 0, "{stderr}");
    assert!(locked().contains("name = \"alpha\"") && !locked().contains("name = \"beta\""), "{}", locked());
}

#[test]
fn locking_the_requirements_file_the_config_names_switches_the_build_to_the_lock() {
    let wheels = tempfile::tempdir().unwrap();
    make_wheel(wheels.path(), "alpha", "1.0", "py3-none-any", &[], None);
    let index = PackageIndex::start(wheels.path());
    let ws = Workspace::new();
    std::fs::remove_dir_all(ws.app()).unwrap();
    project(&ws, "");
    std::fs::remove_file(ws.app().join("requirements.in")).unwrap();
    std::fs::create_dir_all(ws.app().join("requirements")).unwrap();
    std::fs::write(ws.app().join("requirements/prod.txt"), "alpha>=1\n").unwrap();
    // Another requirements file at the root, which is not the input.
    std::fs::write(ws.app().join("requirements.txt"), "not-on-the-index\n").unwrap();
    ws.append_config(
        "\n[python]\nrequirements = \"requirements/prod.txt\"   # the app's own\ninstall-project = false\n",
    );
    let lock =
        |ws: &Workspace| run(ws.oxbuild().env("OXBUILD_PYTHON_INDEX_URL", index.url()).args(["lock"]).arg(ws.app()));
    let (code, stdout, stderr) = lock(&ws);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("set [python] lock = \"pylock.toml\" (locked from requirements/prod.txt)"),
        "{stdout}{stderr}"
    );
    let config = std::fs::read_to_string(ws.app().join("oxbuild.toml")).unwrap();
    assert!(config.contains("\n[python]\nlock = \"pylock.toml\"   # written by `oxbuild lock` from requirements/prod.txt\nlock-input = \"requirements/prod.txt\"   # what `oxbuild lock` resolves\ninstall-project = false\n"), "{config}");
    assert!(!config.contains("requirements = "), "{config}");
    // Again: the lock is named, its input is still the one it was made
    // from (not the root's requirements.txt), and that input beside it is
    // no lock to warn about.
    let (code, stdout, stderr) = lock(&ws);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("requirements from requirements/prod.txt"), "{stdout}{stderr}");
    assert!(stderr.contains("[python] lock already names pylock.toml"), "{stderr}");
    // A lock by any other name is refused before the work: the config,
    // which would name it, would no longer load.
    let before = std::fs::read_to_string(ws.app().join("oxbuild.toml")).unwrap();
    let (code, _, stderr) = run(ws
        .oxbuild()
        .env("OXBUILD_PYTHON_INDEX_URL", index.url())
        .args(["lock", "-o"])
        .arg(ws.app().join("requirements.lock"))
        .arg(ws.app()));
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("requirements.lock: a lock is named pylock.toml or pylock.NAME.toml"), "{stderr}");
    assert!(!ws.app().join("requirements.lock").exists());
    assert_eq!(std::fs::read_to_string(ws.app().join("oxbuild.toml")).unwrap(), before);
    let (code, _, stderr) = run(ws
        .oxbuild()
        .env("OXBUILD_PYTHON_INDEX_URL", index.url())
        .args(["build", "-q", "--output"])
        .arg(format!("oci:{}", ws.tmp.path().join("out").display()))
        .arg(ws.app()));
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("beside the lock in use"), "{stderr}");
}

#[test]
fn an_unmodified_input_under_git_is_resolved_as_of_its_last_commit() {
    let wheels = tempfile::tempdir().unwrap();
    make_wheel(wheels.path(), "alpha", "1.0", "py3-none-any", &[], None);
    let index = PackageIndex::start(wheels.path());
    let ws = Workspace::new();
    std::fs::remove_dir_all(ws.app()).unwrap();
    project(&ws, "alpha\n");
    git(&ws.app(), &["init", "-q", "-b", "main"]);
    git(&ws.app(), &["add", "-A"]);
    git(&ws.app(), &["commit", "-q", "-m", "pins", "--date", "2024-03-01T12:00:00Z"]);
    let (code, stdout, stderr) = run(ws
        .oxbuild()
        .env("GIT_COMMITTER_DATE", "2024-03-01T12:00:00Z")
        .env("OXBUILD_PYTHON_INDEX_URL", index.url())
        .args(["lock"])
        .arg(ws.app()));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("(the last commit of requirements.in, which git tracks unmodified)"), "{stdout}");
    // Modified: now.
    std::fs::write(ws.app().join("requirements.in"), "alpha>=1\n").unwrap();
    let (code, stdout, stderr) =
        run(ws.oxbuild().env("OXBUILD_PYTHON_INDEX_URL", index.url()).args(["lock"]).arg(ws.app()));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("now, as requirements.in is modified or not tracked by git"), "{stdout}");

    // The files it includes count: the newest commit among them, and one
    // of them modified is now.
    let commit_at = |date: &str| {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(ws.app())
            .args(["-c", "user.name=t", "-c", "user.email=t@oxbuild.invalid", "commit", "-q", "-a", "-m", date])
            .env("GIT_AUTHOR_DATE", date)
            .env("GIT_COMMITTER_DATE", date)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    let lock = || run(ws.oxbuild().env("OXBUILD_PYTHON_INDEX_URL", index.url()).args(["lock"]).arg(ws.app()));
    std::fs::write(ws.app().join("requirements.in"), "-r base.in\n").unwrap();
    std::fs::write(ws.app().join("base.in"), "alpha\n").unwrap();
    git(&ws.app(), &["add", "-A"]);
    commit_at("2024-03-01T12:00:00Z");
    std::fs::write(ws.app().join("base.in"), "alpha>=1\n").unwrap();
    let (code, stdout, stderr) = lock();
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("now, as base.in is modified or not tracked by git"), "{stdout}");
    commit_at("2024-05-01T12:00:00Z");
    let (code, stdout, stderr) = lock();
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("before 2024-05-01T12:00:00Z (the last commit of base.in, the newest of the 2 files it reads"),
        "{stdout}"
    );

    // A last commit from before the base's Python came out is no date its
    // pins were chosen for: three months after that Python came out.
    std::fs::write(ws.app().join("base.in"), "alpha>=1.0\n").unwrap();
    commit_at("2020-11-03T12:00:00Z");
    std::fs::write(ws.app().join("requirements.in"), "-r base.in\n# old\n").unwrap();
    commit_at("2020-11-04T12:00:00Z");
    let (code, stdout, stderr) = lock();
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("before 2023-01-22T00:00:00Z (three months after Python 3.11 came out (2022-10-24T00:00:00Z): the last commit of requirements.in (2020-11-04T12:00:00Z) predates it"),
        "{stdout}"
    );
}

/// Against PyPI itself, with the date fixed: a Flask and numpy project is
/// locked, built from the lock, and runs healthy in podman.
#[test]
fn a_flask_and_numpy_project_locked_from_pypi_builds_and_runs_healthy() {
    let registry = Registry::start();
    let ws = Workspace::new();
    std::fs::remove_dir_all(ws.app()).unwrap();
    project(&ws, "flask\ngunicorn\nnumpy\n");
    std::fs::write(
        ws.app().join("svc/web.py"),
        "import numpy\nfrom flask import Flask\n\napp = Flask(__name__)\n\n\n@app.get(\"/health\")\ndef health():\n    return {\"sum\": int(numpy.arange(5).sum())}\n",
    )
    .unwrap();
    let (code, stdout, stderr) = run(ws.oxbuild().args(["lock", "--exclude-newer", "2025-06-01"]).arg(ws.app()));
    assert_eq!(code, 0, "{stderr}");
    // A date alone is the whole of that day, as uv reads it.
    assert!(stdout.contains("files uploaded before 2025-06-02T00:00:00Z"), "{stdout}");
    let lock = std::fs::read_to_string(ws.app().join("pylock.toml")).unwrap();
    for needle in [
        "name = \"flask\"\nversion = \"3.1.1\"",
        "name = \"numpy\"\nversion = \"2.2.6\"",
        "name = \"gunicorn\"\nversion = \"23.0.0\"",
    ] {
        assert!(lock.contains(needle), "`{needle}`:\n{lock}");
    }
    let target = registry.reference("team/locked:v1");
    build_json(ws.oxbuild().args(["build", "-q", "--push", "--tag", &target]).arg(ws.app()));
    let (container, port) = Container::serve(&target, 8000);
    let answer = http_get(port, "/health", Duration::from_secs(60));
    assert_eq!(answer.as_ref().map(|a| a.0), Some(200), "logs:\n{}", container.logs());
    assert!(answer.unwrap().1.contains("\"sum\":10"));
}

/// `init` on a project whose dependencies are ranges locks them itself, for
/// the base's Python, says so, and the config it writes builds from the lock.
#[test]
fn init_locks_a_project_whose_requirements_are_ranges() {
    let wheels = tempfile::tempdir().unwrap();
    make_wheel(wheels.path(), "alpha", "1.0", "py3-none-any", &["gamma>=1"], None);
    make_wheel(wheels.path(), "alpha", "2.0", "py3-none-any", &["gamma>=2"], None);
    make_wheel(wheels.path(), "gamma", "2.5", "py3-none-any", &[], None);
    let ws = Workspace::new();
    std::fs::remove_dir_all(ws.app()).unwrap();
    std::fs::create_dir_all(ws.app().join("tool")).unwrap();
    std::fs::write(ws.app().join("tool/__init__.py"), "").unwrap();
    std::fs::write(ws.app().join("tool/__main__.py"), "import alpha, gamma\nprint(alpha.VERSION, gamma.VERSION)\n")
        .unwrap();
    std::fs::write(
        ws.app().join("pyproject.toml"),
        "[project]\nname = \"tool\"\nversion = \"0.1\"\ndependencies = [\"alpha>=1\"]\n\n[dependency-groups]\ndev = [\"pytest\"]\n",
    )
    .unwrap();
    std::fs::create_dir_all(ws.app().join("tests")).unwrap();
    make_wheel(wheels.path(), "pytest", "8.0", "py3-none-any", &[], None);
    let index = PackageIndex::start(wheels.path());
    let (code, stdout, stderr) =
        run(ws.oxbuild().env("OXBUILD_PYTHON_INDEX_URL", index.url()).args(["init", "--base", &base()]).arg(ws.app()));
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("pyproject.toml has dependencies but no lock: running `oxbuild lock`"), "{stderr}");
    assert!(stderr.contains("locked 2 packages into pylock.toml"), "{stderr}\n{stdout}");
    let config = std::fs::read_to_string(ws.app().join("oxbuild.toml")).unwrap();
    assert!(config.contains("lock = \"pylock.toml\""), "{config}");
    // The dev group (with pytest) is the test variant's lock, and a gate runs it.
    assert!(stderr.contains("locked the test requirements (pyproject.toml group dev)"), "{stderr}");
    assert!(config.contains("test-requirements = \"pylock.test.toml\""), "{config}");
    assert!(config.contains("\n[assess]") && config.contains("python -m pytest"), "{config}");
    let lock = std::fs::read_to_string(ws.app().join("pylock.toml")).unwrap();
    assert!(lock.contains("name = \"alpha\"\nversion = \"2.0\""), "{lock}");
    let report =
        build_json(ws.oxbuild().env("OXBUILD_PYTHON_INDEX_URL", index.url()).args(["build", "-q"]).arg(ws.app()));
    let wheels = report["python"]["wheels"].to_string();
    assert!(wheels.contains("alpha-2.0-py3-none-any.whl") && wheels.contains("gamma-2.5"), "{wheels}");
}

/// A sdist whose dependencies are dynamic (a `setup.py` with
/// `install_requires`, metadata 2.1) is built to read them, as a build
/// would build it; what it needs is locked too.
#[test]
fn a_sdist_with_dynamic_dependencies_is_built_to_read_them() {
    let files = tempfile::tempdir().unwrap();
    make_wheel(files.path(), "gamma", "2.0", "py3-none-any", &[], None);
    common::sdist(
        files.path(),
        "legacyapp",
        "1.0",
        &[
            (
                "setup.py",
                "from setuptools import setup\nsetup(name='legacyapp', version='1.0', py_modules=['legacyapp'], install_requires=['gamma>=2'])\n",
            ),
            ("legacyapp.py", "X = 1\n"),
            ("PKG-INFO", "Metadata-Version: 2.1\nName: legacyapp\nVersion: 1.0\n"),
        ],
    );
    let index = PackageIndex::start(files.path());
    let ws = Workspace::new();
    std::fs::remove_dir_all(ws.app()).unwrap();
    project(&ws, "legacyapp\n");
    let build_wheels = format!("[\"{}\"]", oxbuild_testkit::build_wheelhouse().display());
    let (code, stdout, stderr) = run(ws
        .oxbuild()
        .env("OXBUILD_PYTHON_INDEX_URL", index.url())
        .env("OXBUILD_PYTHON_FIND_LINKS", &build_wheels)
        .args(["lock", "--exclude-newer", "2030-01-01"])
        .arg(ws.app()));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("locked 2 packages"), "{stdout}");
    let lock = std::fs::read_to_string(ws.app().join("pylock.toml")).unwrap();
    assert!(lock.contains("name = \"legacyapp\"") && lock.contains("name = \"gamma\"\nversion = \"2.0\""), "{lock}");
    // [python] build-constraints bind the lock's builds as they bind a build's.
    std::fs::write(ws.app().join("bc.txt"), "setuptools==0.1\n").unwrap();
    ws.edit_config("[python]\n", "[python]\nbuild-constraints = \"bc.txt\"\n");
    let (code, _, stderr) = run(ws
        .oxbuild()
        .env("OXBUILD_PYTHON_INDEX_URL", index.url())
        .env("OXBUILD_PYTHON_FIND_LINKS", &build_wheels)
        .args(["lock", "--upgrade", "--exclude-newer", "2030-01-01"])
        .arg(ws.app()));
    assert_ne!(code, 0, "{stderr}");
    assert!(stderr.contains("at 0.1 (build-constraints)"), "the constraint was applied: {stderr}");
}

/// The test requirements (`requirements-test.in`) are locked too, into
/// pylock.test.toml on production's versions: `checker` 3.0 needs a
/// `gamma` older than the one production took, so the test lock takes
/// checker 2.0 and keeps gamma 3.0. oxbuild.toml names both locks, and the
/// test variant `assess` runs has exactly those versions.
#[test]
fn test_requirements_are_locked_on_productions_versions() {
    let wheels = tempfile::tempdir().unwrap();
    let any = "py3-none-any";
    make_wheel(wheels.path(), "alpha", "1.0", any, &["gamma>=1"], None);
    for v in ["1.0", "2.0", "3.0"] {
        make_wheel(wheels.path(), "gamma", v, any, &[], None);
    }
    make_wheel(wheels.path(), "checker", "2.0", any, &["gamma>=2"], None);
    make_wheel(wheels.path(), "checker", "3.0", any, &["gamma<3"], None);
    let index = PackageIndex::start(wheels.path());
    let ws = Workspace::new();
    std::fs::remove_dir_all(ws.app()).unwrap();
    project(&ws, "alpha\n");
    std::fs::write(ws.app().join("requirements-test.in"), "-r requirements.in\nchecker\n").unwrap();
    let mut config = std::fs::read_to_string(ws.app().join("oxbuild.toml")).unwrap();
    config.push_str(
        "\n[assess]\ngates = [{ name = \"versions\", run = \"python -c 'import checker, gamma; print(checker.VERSION, gamma.VERSION)'\" }]\n",
    );
    std::fs::write(ws.app().join("oxbuild.toml"), config).unwrap();
    let (code, stdout, stderr) = lock_from(&ws, &index);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("locked 2 packages into"), "{stdout}");
    let test_lock = std::fs::read_to_string(ws.app().join("pylock.test.toml")).unwrap();
    for pinned in [
        "name = \"alpha\"\nversion = \"1.0\"",
        "name = \"gamma\"\nversion = \"3.0\"",
        "name = \"checker\"\nversion = \"2.0\"",
    ] {
        assert!(test_lock.contains(pinned), "{pinned}:\n{test_lock}");
    }
    let config = std::fs::read_to_string(ws.app().join("oxbuild.toml")).unwrap();
    assert!(config.contains("test-requirements = \"pylock.test.toml\""), "{config}");
    assert!(config.contains("lock = \"pylock.toml\""), "{config}");
    let production = std::fs::read_to_string(ws.app().join("pylock.toml")).unwrap();
    assert!(!production.contains("checker"), "{production}");

    let (code, _, stderr) = run(ws
        .oxbuild()
        .env("CONTAINERS_CONF", oxbuild_testkit::containers_conf())
        .env("OXBUILD_PYTHON_INDEX_URL", index.url())
        .args(["assess"])
        .arg(ws.app()));
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("2.0 3.0"), "the test variant has checker 2.0 over production's gamma 3.0: {stderr}");

    // `--no-test` leaves the test lock alone; a test requirement that cannot
    // fit production's versions is explained, and neither lock changes.
    std::fs::write(ws.app().join("requirements-test.in"), "checker>=3\n").unwrap();
    let (code, _, stderr) = lock_from(&ws, &index);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("the test requirements do not fit the production lock's versions"), "{stderr}");
    assert!(stderr.contains("gamma==3.0"), "{stderr}");
    assert_eq!(std::fs::read_to_string(ws.app().join("pylock.test.toml")).unwrap(), test_lock);
    let (code, _, stderr) = run(ws
        .oxbuild()
        .env("OXBUILD_PYTHON_INDEX_URL", index.url())
        .args(["lock", "--no-test", "--exclude-newer", "2026-01-01"])
        .arg(ws.app()));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(std::fs::read_to_string(ws.app().join("pylock.test.toml")).unwrap(), test_lock);
}

/// A requirements.in that names its own private index (its token read from
/// the environment, as pip reads `${VAR}`) and a constraints file: lock
/// resolves from that index within the constraints, and never shows the
/// token; the build fetches the locked files from that index with the
/// credentials it is given, and without them says what to do.
#[test]
fn a_requirements_input_names_its_index_and_constraints_and_lock_uses_both() {
    const TOKEN: &str = "tok-9f3c2e71d4";
    let wheels = tempfile::tempdir().unwrap();
    let any = "py3-none-any";
    make_wheel(wheels.path(), "alpha", "1.0", any, &["gamma>=1"], None);
    for v in ["1.0", "2.0", "3.0"] {
        make_wheel(wheels.path(), "gamma", v, any, &[], None);
    }
    let auth = Some(("ci".to_string(), TOKEN.to_string()));
    let index = PackageIndex::start_with(wheels.path(), oxbuild_testkit::IndexOptions { auth, ..Default::default() });
    let ws = Workspace::new();
    std::fs::remove_dir_all(ws.app()).unwrap();
    let private = index.url().replace("http://", "http://ci:${OXTEST_INDEX_TOKEN}@");
    project(&ws, &format!("--index-url {private}\n-c constraints.txt\nalpha\n"));
    std::fs::write(ws.app().join("constraints.txt"), "gamma<3\n").unwrap();
    let lock = |ws: &Workspace| {
        run(ws
            .oxbuild()
            .env("OXTEST_INDEX_TOKEN", TOKEN)
            .env_remove("OXBUILD_PYTHON_INDEX_URL")
            .args(["lock", "--exclude-newer", "2026-01-01"])
            .arg(ws.app()))
    };
    let (code, stdout, stderr) = lock(&ws);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("from requirements.in ([python] index-url or OXBUILD_PYTHON_INDEX_URL picks another)"),
        "where the index comes from: {stderr}"
    );
    let locked = std::fs::read_to_string(ws.app().join("pylock.toml")).unwrap();
    assert!(locked.contains("name = \"gamma\"\nversion = \"2.0\""), "the constraint holds gamma below 3:\n{locked}");
    for text in [&stdout, &stderr, &locked] {
        assert!(!text.contains(TOKEN), "the token stays secret: {text}");
    }

    // A constraint that leaves no version: the error names it.
    std::fs::write(ws.app().join("constraints.txt"), "gamma>=4\n").unwrap();
    let (code, _, stderr) = lock(&ws);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("outside the constraint `gamma>=4`"), "{stderr}");
    std::fs::write(ws.app().join("constraints.txt"), "gamma<3\n").unwrap();

    // The build downloads the lock's files from the private index: with
    // its credentials when the build is given the index, and else a clear
    // refusal that says how to give them.
    let build = |index_url: Option<String>| {
        let mut cmd = ws.oxbuild();
        cmd.env_remove("OXBUILD_PYTHON_INDEX_URL");
        if let Some(url) = index_url {
            cmd.env("OXBUILD_PYTHON_INDEX_URL", url);
        }
        run(cmd.args(["build", "--json"]).arg(ws.app()))
    };
    let (code, stdout, stderr) = build(None);
    assert_ne!(code, 0, "{stdout}");
    assert!(stderr.contains("answered 401") && stderr.contains("wants a login"), "{stderr}");
    let (code, stdout, stderr) = build(Some(index.url().replace("http://", &format!("http://ci:{TOKEN}@"))));
    assert_eq!(code, 0, "{stderr}");
    for text in [&stdout, &stderr] {
        assert!(!text.contains(TOKEN), "the token stays secret: {text}");
    }
    assert!(stdout.contains("\"gamma-2.0-py3-none-any.whl\""), "{stdout}");
}

/// A requirements.in locked for the first time keeps the versions of the
/// requirements.txt pip-compile made from it, while they fit: the versions
/// the project has been running (djangogirls got a django-recaptcha whose
/// module had been renamed).
#[test]
fn a_first_lock_keeps_the_versions_pip_compile_wrote_beside_the_input() {
    let (_wheels, index) = local_index(&[("alpha", "1.0"), ("alpha", "1.5"), ("beta", "2.0")]);
    let ws = Workspace::new();
    project(&ws, "alpha\nbeta\n");
    std::fs::write(
        ws.app().join("requirements.txt"),
        "# This file is autogenerated by pip-compile\nalpha==1.0\n    # via -r requirements.in\nbeta==2.0\n    # via -r requirements.in\n",
    )
    .unwrap();
    let lock = |ws: &Workspace| {
        let (code, _, stderr) = lock_from(ws, &index);
        assert_eq!(code, 0, "{stderr}");
        std::fs::read_to_string(ws.app().join("pylock.toml")).unwrap()
    };
    let locked = lock(&ws);
    assert!(locked.contains("name = \"alpha\"\nversion = \"1.0\""), "{locked}");
    // Without it, the newest.
    std::fs::remove_file(ws.app().join("requirements.txt")).unwrap();
    std::fs::remove_file(ws.app().join("pylock.toml")).unwrap();
    let locked = lock(&ws);
    assert!(locked.contains("name = \"alpha\"\nversion = \"1.5\""), "{locked}");
    // The versions of the project's other locks, as a project moving from
    // uv, Poetry, PDM or Pipenv to pylock.toml has been running them.
    let others = [
        ("uv.lock", "version = 1\n\n[[package]]\nname = \"Alpha\"\nversion = \"1.0\"\n"),
        ("poetry.lock", "[[package]]\nname = \"alpha\"\nversion = \"1.0\"\n"),
        ("Pipfile.lock", "{\"default\": {\"alpha\": {\"version\": \"==1.0\"}}, \"develop\": {}}"),
    ];
    for (file, text) in others {
        std::fs::remove_file(ws.app().join("pylock.toml")).unwrap();
        std::fs::write(ws.app().join(file), text).unwrap();
        let locked = lock(&ws);
        assert!(locked.contains("name = \"alpha\"\nversion = \"1.0\""), "{file}: {locked}");
        // Recorded as replaced, so that the build warns of it only once it changes.
        assert!(locked.contains(&format!("\n    {{ file = \"{file}\", sha256 = \"")), "{locked}");
        std::fs::remove_file(ws.app().join(file)).unwrap();
    }
}

/// A project whose own requires-python excludes the base's Python is told
/// so before anything is resolved, and nothing is written.
#[test]
fn a_project_that_requires_another_python_is_refused_before_resolving() {
    let (_wheels, index) = local_index(&[("alpha", "1.0")]);
    let ws = Workspace::new();
    // `oxbuild lock`, which must fail as a configuration error (exit 3); what it said.
    let refused = |ws: &Workspace| {
        let (code, _, stderr) =
            run(ws.oxbuild().env("OXBUILD_PYTHON_INDEX_URL", index.url()).args(["lock"]).arg(ws.app()));
        assert_eq!(code, 3, "{stderr}");
        stderr
    };
    pyproject_project(
        &ws,
        "[project]\nname = \"svc\"\nversion = \"1.0\"\nrequires-python = \">=3.14,<4.0\"\ndependencies = [\"alpha\"]\n",
    );
    let stderr = refused(&ws);
    assert!(stderr.contains("requires-python `>=3.14,<4.0` excludes the base's Python 3.11.2"), "{stderr}");
    assert!(!ws.app().join("pylock.toml").exists(), "nothing was written");
    assert_eq!(index.requests().len(), 0, "nothing was asked of the index");

    // Poetry's own `python` dependency says the same.
    pyproject_project(
        &ws,
        "[tool.poetry]\nname = \"svc\"\nversion = \"0.1.0\"\n\n[tool.poetry.dependencies]\npython = \"^3.12\"\nalpha = \"^1.0\"\n",
    );
    let stderr = refused(&ws);
    assert!(stderr.contains("requires-python `>=3.12,<4` excludes the base's Python 3.11.2"), "{stderr}");

    // Requirements whose markers all exclude it lock nothing, and say so.
    std::fs::remove_file(ws.app().join("pyproject.toml")).unwrap();
    std::fs::write(ws.app().join("requirements.in"), "alpha==1.0 ; python_version >= \"3.12\"\n").unwrap();
    let stderr = refused(&ws);
    assert!(stderr.contains("none of the 1 requirements of requirements.in applies to Python 3.11.2"), "{stderr}");
    assert!(!ws.app().join("pylock.toml").exists(), "nothing was written");
}

/// A Poetry project with no [project] dependencies is locked from
/// [tool.poetry.dependencies], read as the ranges Poetry means (`^1.0` is
/// below 2), so that a project whose poetry.lock predates the base's Python
/// can be locked again.
#[test]
fn a_poetry_projects_dependencies_are_locked_as_poetry_reads_them() {
    let (_wheels, index) = local_index(&[("alpha", "1.0"), ("alpha", "1.5"), ("alpha", "2.0")]);
    let ws = Workspace::new();
    pyproject_project(
        &ws,
        "[tool.poetry]\nname = \"svc\"\nversion = \"0.1.0\"\n\n[tool.poetry.dependencies]\npython = \"^3.9\"\nalpha = \"^1.0\"\n",
    );
    let (code, _, stderr) = lock_from(&ws, &index);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("from pyproject.toml [tool.poetry.dependencies]"), "{stderr}");
    let locked = std::fs::read_to_string(ws.app().join("pylock.toml")).unwrap();
    assert!(locked.contains("name = \"alpha\"\nversion = \"1.5\""), "^1.0 stays below 2:\n{locked}");
}

#[test]
fn a_find_links_wheel_is_locked_by_its_path_and_the_sha256_of_its_bytes() {
    let ws = Workspace::new();
    std::fs::remove_dir_all(ws.app()).unwrap();
    project(&ws, "alpha\n");
    let wheels = ws.app().join("wheelhouse");
    std::fs::create_dir_all(&wheels).unwrap();
    make_wheel(&wheels, "alpha", "1.0", "py3-none-any", &[], None);
    ws.append_config("\n[python]\nfind-links = [\"wheelhouse\"]\nno-index = true\n");
    let (code, stdout, stderr) = run(ws.oxbuild().args(["lock", "--exclude-newer", "2026-01-01"]).arg(ws.app()));
    assert_eq!(code, 0, "{stdout}{stderr}");
    let lock = std::fs::read_to_string(ws.app().join("pylock.toml")).unwrap();
    let bytes = std::fs::read(wheels.join("alpha-1.0-py3-none-any.whl")).unwrap();
    let sha = oxbuild_image::Digest::of(&bytes).hex().to_string();
    assert!(
        lock.contains(&format!(
            "path = \"./wheelhouse/alpha-1.0-py3-none-any.whl\", hashes = {{ sha256 = \"{sha}\" }}"
        )),
        "{lock}"
    );
    // The build installs it from there, checked against that hash.
    let out = ws.tmp.path().join("out");
    build_json(ws.oxbuild().args(["build", "-q", "--output"]).arg(format!("oci:{}", out.display())).arg(ws.app()));
}
