//! `oxbuild init`: looks at a Python project and writes a commented
//! oxbuild.toml that builds and runs it.

use std::path::Path;

use crate::cli::InitArgs;
use crate::report::{Failure, Reporter};

/// What init found.
struct Project {
    packages: Vec<String>,
    entrypoint: Vec<String>,
    entry_note: String,
    /// The `[python]` key and file: `requirements`/`lock`.
    requirements: Option<(&'static str, String)>,
    lock_note: Option<String>,
    /// uv.lock dependency groups that name pytest (for the test variant).
    pytest_group: Option<String>,
    tests: bool,
}

fn detect(dir: &Path) -> Result<Project, Failure> {
    let read = std::fs::read_dir(dir).map_err(|e| Failure::config(format!("{}: {e}", dir.display())))?;
    let mut entries: Vec<_> = read.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    let packages: Vec<String> = entries
        .iter()
        .filter(|p| p.is_dir() && (p.join("__init__.py").is_file() || p.join("__main__.py").is_file()))
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .filter(|n| n != "tests" && !n.starts_with('.'))
        .collect();
    let runnable = packages.iter().find(|p| dir.join(p).join("__main__.py").is_file());
    let script = ["app.py", "main.py", "manage.py", "server.py"].into_iter().find(|f| dir.join(f).is_file());
    let (entrypoint, entry_note) = match (runnable, script) {
        (Some(pkg), _) => (vec!["python3".into(), "-m".into(), pkg.clone()], format!("{pkg}/__main__.py")),
        (None, Some(f)) => (vec!["python3".into(), f.into()], format!("{f} at the root")),
        (None, None) => {
            return Err(Failure::config(format!(
                "{}: found no entry point (a package with __main__.py, or app.py/main.py); write oxbuild.toml by hand (see the README)",
                dir.display()
            )));
        }
    };
    // oxbuild reads these locks itself, most specific first.
    let requirements = if dir.join("requirements.txt").is_file() {
        Some(("requirements", "requirements.txt".to_string()))
    } else if dir.join("pylock.toml").is_file() {
        Some(("lock", "pylock.toml".to_string()))
    } else if dir.join("uv.lock").is_file() {
        Some(("lock", "uv.lock".to_string()))
    } else {
        None
    };
    let lock_note = (requirements.is_none() && dir.join("pyproject.toml").is_file()).then(|| {
        "pyproject.toml found but no lock: `uv lock` (then set lock = \"uv.lock\"), or pin the dependencies with `uv pip compile pyproject.toml -o requirements.txt --generate-hashes`".to_string()
    });
    // A uv.lock whose dev group has pytest can be the test variant's lock too.
    let pytest_group = match &requirements {
        Some((_, f)) if f == "uv.lock" => oxbuild_python::lockfile::uv_groups(&dir.join(f))
            .ok()
            .and_then(|groups| groups.into_iter().find(|(_, names)| names.iter().any(|n| n == "pytest")))
            .map(|(group, _)| group),
        _ => None,
    };
    Ok(Project {
        packages,
        entrypoint,
        entry_note,
        requirements,
        lock_note,
        pytest_group,
        tests: dir.join("tests").is_dir(),
    })
}

fn toml_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

pub fn run(args: InitArgs, out: Reporter) -> Result<(), Failure> {
    let path = args.dir.join(oxbuild_config::FILE_NAME);
    if path.exists() && !args.force {
        return Err(Failure::config(format!("{} exists; use --force to replace it", path.display())));
    }
    let p = detect(&args.dir)?;
    let base = args.base.clone().unwrap_or_else(|| "registry.example.com/python:3.12-slim".into());
    let mut include = p.packages.clone();
    if let Some(f) = p.entrypoint.get(1).filter(|f| f.ends_with(".py")) {
        include.push(f.clone());
    }
    let mut text = format!(
        "# oxbuild.toml, written by `oxbuild init`. Reference: the README's configuration section.\n\n\
         [image]\n\
         base = {base:?}{base_note}\n\
         # repository = \"registry.example.com/team/app\"   # where --push and publish go\n\
         workdir = \"/app\"\n\
         user = \"app\"                 # created in the image; never root\n\
         uid = 1000\n\
         entrypoint = {entry}   # from {entry_note}\n\
         env = {{ PYTHONUNBUFFERED = \"1\" }}\n\
         # ports = [8000]\n\n\
         [app]\n\
         include = {include}   # .dockerignore applies too\n",
        base_note = if args.base.is_some() { "" } else { "   # set your Python base image" },
        entry = toml_list(&p.entrypoint),
        entry_note = p.entry_note,
        include = toml_list(&include),
    );
    match (&p.requirements, &p.lock_note) {
        (Some((key, file)), _) => {
            text.push_str(&format!("\n[python]\n{key} = {file:?}\n"));
            if let (Some(group), true) = (&p.pytest_group, p.tests) {
                let groups = if group == "dev" { String::new() } else { format!("\ntest-groups = [{group:?}]") };
                text.push_str(&format!(
                    "test-requirements = {file:?}   # its `{group}` group, in the test variant only{groups}\n"
                ));
            }
        }
        (None, Some(note)) => text.push_str(&format!("\n# [python]\n# {note}\n")),
        (None, None) => {}
    }
    match (p.tests, &p.pytest_group) {
        (true, Some(_)) => text.push_str(
            "\n[assess]                        # run by `oxbuild assess` in the test variant\n\
             gates = [{ name = \"pytest\", run = \"python -m pytest -q tests\" }]\n",
        ),
        (true, None) => text.push_str(
            "\n# [assess]                      # run by `oxbuild assess` in the test variant\n\
             # gates = [{ name = \"pytest\", run = \"python -m pytest -q tests\" }]\n\
             # (add pytest to [python] test-requirements)\n",
        ),
        _ => {}
    }
    text.push_str(
        "\n# [healthcheck]                 # polled by `oxbuild health`\n\
         # http = \"http://127.0.0.1:8000/health\"\n\
         # interval = \"5s\"\n# timeout = \"2s\"\n# retries = 3\n",
    );
    std::fs::write(&path, &text).map_err(|e| Failure::output(format!("writing {}: {e}", path.display())))?;
    out.step(format!("detected: entry point {}, packages {}", p.entry_note, include.join(", ")));
    out.result(
        &serde_json::json!({"ok": true, "written": path, "entrypoint": p.entrypoint}),
        &[format!("wrote {}", path.display())],
    );
    Ok(())
}
