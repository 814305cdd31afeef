//! pyweb's app locked by Poetry, Pipenv, PDM and uv (testdata/poetryweb,
//! pipenvweb, pdmweb, uvweb hold each tool's project file and the lock it wrote;
//! the tests add pyweb's code), read with no tool
//! installed: each builds, passes its tests in the test variant, reaches
//! healthy in podman and is published; production holds only the
//! production group. A lock with a pin removed by hand fails before
//! anything is pushed, naming what is missing.

mod common;

use common::{base, offline_pyweb_locked_as, run};
use oxbuild_testkit::Registry;

const PROJECTS: [(&str, &str); 4] =
    [("poetryweb", "poetry.lock"), ("pipenvweb", "Pipfile.lock"), ("pdmweb", "pdm.lock"), ("uvweb", "uv.lock")];

#[test]
fn poetry_pipenv_pdm_and_uv_projects_build_pass_their_tests_reach_healthy_and_publish() {
    let registry = Registry::start();
    for (app, lock) in PROJECTS {
        let ws = offline_pyweb_locked_as(app);
        let repo = registry.reference(&format!("team/{app}"));
        let (report, stages) = common::pipeline(&ws, &repo, &[]);
        let stages: Vec<(&str, &str)> = stages.iter().map(|(s, t)| (s.as_str(), t.as_str())).collect();
        assert_eq!(
            &stages[..4],
            [("build", "passed"), ("assess", "passed"), ("health", "passed"), ("publish", "passed")],
            "{app}: {report}"
        );
        let mut wheels: Vec<String> = report["stages"][0]["python"]["wheels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w.as_str().unwrap().split('-').next().unwrap().to_lowercase())
            .collect();
        wheels.sort();
        assert_eq!(
            wheels,
            ["gunicorn", "langdetect", "markupsafe", "six"],
            "{app} ({lock}): production holds its production group only"
        );
        // langdetect is published only as a setup.py sdist (and a Python 2
        // wheel): it was built here, by setuptools' legacy backend.
        assert!(
            report["stages"][0]["python"]["wheels"].to_string().contains("langdetect-1.0.9-py3-none-any.whl"),
            "{report}"
        );
        let test: Vec<String> = report["stages"][0]["python"]["test"]["wheels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w.as_str().unwrap().split('-').next().unwrap().to_lowercase())
            .collect();
        assert!(test.contains(&"pytest".to_string()) && test.contains(&"pluggy".to_string()), "{app}: {test:?}");
    }
}

#[test]
fn a_hand_edited_lock_of_each_format_fails_before_anything_is_pushed() {
    let registry = Registry::start();
    for (app, lock) in PROJECTS {
        let ws = offline_pyweb_locked_as(app);
        let path = ws.app().join(lock);
        let text = std::fs::read_to_string(&path).unwrap();
        // Drop pluggy, which pytest needs, from the dev group.
        let edited = match lock {
            "Pipfile.lock" => {
                let mut doc: serde_json::Value = serde_json::from_str(&text).unwrap();
                doc["develop"].as_object_mut().unwrap().remove("pluggy");
                serde_json::to_string_pretty(&doc).unwrap()
            }
            _ => text
                .split("\n[[package]]\n")
                .filter(|p| !p.starts_with("name = \"pluggy\""))
                .collect::<Vec<_>>()
                .join("\n[[package]]\n"),
        };
        assert_ne!(edited, text, "{app}: pluggy was in the lock");
        std::fs::write(&path, edited).unwrap();
        let target = registry.reference(&format!("team/{app}:v1"));
        let (code, _, stderr) = run(ws
            .oxbuild()
            .args(["build", "-q", "--variant", "test", "--base", &base(), "--push", "--tag", &target])
            .arg(ws.app()));
        assert_eq!(code, 3, "{app}: {stderr}");
        // uv.lock's edges name the package dropped: the lock itself is
        // incomplete, and every package that needs it is named.
        let needed =
            if lock == "uv.lock" { "needed by the project `uvweb` (group `dev`), pytest," } else { "needed by pytest" };
        assert!(stderr.contains(lock) && stderr.contains("pluggy") && stderr.contains(needed), "{app}: {stderr}");
        assert!(registry.skopeo_list_tags(&format!("team/{app}")).is_empty(), "{app}: nothing was pushed");
    }
}

/// A Poetry project that is a package (poetry-core backend), whose app
/// layer holds none of its code: its entrypoint imports the package that
/// oxbuild built and installed into the venv, as `poetry install` would,
/// and the image reaches healthy. `install-project = false` leaves it out,
/// and then the build says nothing of it.
#[test]
fn a_poetry_project_that_is_a_package_is_installed_and_its_entrypoint_imports_it() {
    let registry = Registry::start();
    let ws = offline_pyweb_locked_as("poetryweb");
    ws.edit("pyproject.toml", "[tool.poetry]\npackage-mode = false\n", "[tool.poetry]\npackages = [{ include = \"pyweb\" }]\n\n[build-system]\nrequires = [\"poetry-core>=2.0\"]\nbuild-backend = \"poetry.core.masonry.api\"\n");
    ws.edit_config("include = [\"pyweb\"]", "include = [\"pyproject.toml\"]");
    let (report, stages) = common::pipeline(&ws, &registry.reference("team/package"), &["--skip-assess"]);
    let stages: Vec<(&str, &str)> = stages.iter().map(|(s, t)| (s.as_str(), t.as_str())).collect();
    assert_eq!(&stages[..3], [("build", "passed"), ("assess", "skipped"), ("health", "passed")], "{report}");
    assert!(
        report["stages"][0]["python"]["project"]["wheel"]
            .as_str()
            .is_some_and(|w| w.starts_with("poetryweb-0.1.0-py3-none-any")),
        "{report}"
    );

    ws.edit_config("[python]\n", "[python]\ninstall-project = false\n");
    let (code, stdout, stderr) = run(ws.oxbuild().args(["build", "-q", "--json", "--base", &base()]).arg(ws.app()));
    assert_eq!(code, 0, "{stderr}");
    assert!(!stdout.contains("\"project\""), "{stdout}");
}
