//! Whether the program an image starts is on its PATH: a command that names
//! a console script no package installs (`celery` with no celery in the
//! lock) makes an image that cannot start, which a build can say before it
//! ships. What the build knows: the programs in the base's standard PATH
//! directories (from its scan) and those each dependency layer puts in its
//! directory (the venv's `bin`). A PATH directory it knows nothing of
//! (a base's `/opt/conda/bin`, the workdir) leaves the question open, and
//! nothing is said.

use std::collections::BTreeMap;

use oxbuild_image::rootfs::{Node, Want};

use crate::ExtraLayer;

/// The PATH directories every Linux base has; Docker's default PATH.
const STANDARD: [&str; 6] = ["usr/local/sbin", "usr/local/bin", "usr/sbin", "usr/bin", "sbin", "bin"];

/// What a base scan keeps of the PATH directories: the directories
/// themselves (`bin` is a symlink to `usr/bin` in merged-/usr systems) and
/// whether each of their entries exists.
pub fn wants(path: &str) -> Want {
    let standard = STANDARD.contains(&path)
        || path.rsplit_once('/').is_some_and(|(dir, name)| !name.is_empty() && STANDARD.contains(&dir));
    if standard { Want::Exists } else { Want::Skip }
}

/// Warnings for programs of the app's (paths in the workdir) that cannot
/// start: the image's command, the script of a `python3 SCRIPT` command
/// (which the app layer must have, executable or not), and the
/// healthcheck's exec form
/// (`[healthcheck] cmd = ["bin/check"]`), which the probe runs in the
/// container. One the app layer (`app`) does not have (a path the
/// Dockerfile's COPY made, a file `[app] include` or `.dockerignore` left
/// out) and the base's scan does not show either, or one that is not
/// executable (a script checked in without its mode, which a Dockerfile's
/// `RUN chmod +x` mended: the app layer keeps the project's modes, so the
/// container would fail with "permission denied").
pub fn app_programs(
    config: &serde_json::Value,
    dir: &std::path::Path,
    workdir: &str,
    app: &oxbuild_image::LayerBuilder,
    base_fs: &BTreeMap<String, Node>,
    extra: &[ExtraLayer],
) -> Vec<String> {
    let mut run: Vec<((String, &str), String)> = Vec::new();
    if let Some((key, program)) = program(config) {
        run.push(((format!("[image] {key}"), "the container cannot start"), program));
    }
    // The script a `python3 app/main.py` command runs, which need not be executable.
    let script = python_script(config).map(|(key, script)| {
        // `main.py` is the workdir's, as `./main.py` is.
        let script = if script.starts_with('/') || script.contains('/') { script } else { format!("./{script}") };
        ((format!("[image] {key}"), "python3 cannot open it, and the container exits at once"), script)
    });
    let test = config["config"]["Healthcheck"]["Test"].as_array();
    if let Some(["CMD", program, ..]) = test.map(|t| t.iter().filter_map(|v| v.as_str()).collect::<Vec<_>>()).as_deref()
    {
        run.push((
            ("[healthcheck] cmd".to_string(), "its probe cannot run and it is never healthy"),
            program.to_string(),
        ));
    }
    let programs =
        run.iter().filter_map(|(named, program)| app_file(named, program, true, dir, workdir, app, base_fs, extra));
    let scripts = script.iter().filter_map(|(named, s)| app_file(named, s, false, dir, workdir, app, base_fs, extra));
    programs.chain(scripts).collect()
}

/// The script a Python command runs (`python3 -u app/main.py`): the first
/// argument that is no option, with the key that names the command. None
/// for `-m` and `-c`, and for a command that is not Python.
fn python_script(config: &serde_json::Value) -> Option<(&'static str, String)> {
    let c = &config["config"];
    let words = |key: &str| c[key].as_array().into_iter().flatten().filter_map(|v| v.as_str()).collect::<Vec<_>>();
    let (entrypoint, cmd) = (words("Entrypoint"), words("Cmd"));
    let key = if entrypoint.is_empty() { "cmd" } else { "entrypoint" };
    let argv: Vec<&str> = entrypoint.into_iter().chain(cmd).collect();
    let (program, args) = argv.split_first()?;
    let name = program.rsplit('/').next().unwrap_or(program);
    let version = name.strip_prefix("python")?;
    if !version.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return None;
    }
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match *arg {
            "-" | "." | "./" => return None,
            "--check-hash-based-pycs" => {
                args.next();
            }
            a if a.starts_with("--") => {}
            // Short options, clustered or not (`-um app`, `-Wignore`).
            a if a.starts_with('-') => {
                let flags = &a[1..];
                for (i, flag) in flags.char_indices() {
                    match flag {
                        'm' | 'c' => return None,
                        'W' | 'X' => {
                            if i + 1 == flags.len() {
                                args.next();
                            }
                            break;
                        }
                        _ => {}
                    }
                }
            }
            a => return Some((key, a.to_string())),
        }
    }
    None
}

/// See [`app_programs`]: `named` is the key that runs `program` and what
/// fails without it.
#[allow(clippy::too_many_arguments)]
fn app_file(
    (key, fails): &(String, &str),
    program: &str,
    executable: bool,
    dir: &std::path::Path,
    workdir: &str,
    app: &oxbuild_image::LayerBuilder,
    base_fs: &BTreeMap<String, Node>,
    extra: &[ExtraLayer],
) -> Option<String> {
    use std::os::unix::fs::PermissionsExt as _;
    let workdir = workdir.trim_end_matches('/');
    let rel = match program.strip_prefix(&format!("{workdir}/")) {
        Some(rel) if !workdir.is_empty() => rel.to_string(),
        Some(_) => return None,
        None if !program.starts_with('/') && program.contains('/') => program.trim_start_matches("./").to_string(),
        None => return None,
    };
    let in_image = format!("{workdir}/{rel}");
    if !app.has(&in_image) {
        // A venv (or node_modules) in the workdir puts programs there too.
        let layered = layer_programs(extra).is_none_or(|l| l.contains(&in_image.as_str()));
        if base_fs.contains_key(in_image.trim_start_matches('/')) || layered {
            return None;
        }
        let why = if dir.join(&rel).is_file() {
            format!("the project's {rel} is left out of the app layer (by [app] include or .dockerignore)")
        } else {
            format!("the project has no {rel}")
        };
        return Some(format!(
            "{key} runs `{program}`, in the workdir {workdir}, but {why}: unless the base has it, {fails}; point {key} at a file the project has, or add it"
        ));
    }
    let meta = std::fs::metadata(dir.join(&rel)).ok().filter(|m| m.is_file() && executable)?;
    (meta.permissions().mode() & 0o111 == 0).then(|| {
        format!(
            "{key} runs `{program}`, the project's {rel}, which is not executable (mode {:o}), so {fails}: `chmod +x {rel}` (and commit the mode), or run it through its interpreter ([\"sh\", \"{program}\"])",
            meta.permissions().mode() & 0o777
        )
    })
}

/// The program the image's config starts, and which key names it: the
/// entrypoint's first word, else the cmd's.
fn program(config: &serde_json::Value) -> Option<(&'static str, String)> {
    let c = &config["config"];
    let first = |key: &str| c[key].as_array().and_then(|a| a.first()).and_then(|v| v.as_str()).map(str::to_string);
    match first("Entrypoint") {
        Some(p) => Some(("entrypoint", p)),
        None => Some(("cmd", first("Cmd")?)),
    }
}

/// The programs the dependency layers put in their PATH directories (paths
/// in the image); None when one of them does not say what it holds, so it
/// could hold anything.
fn layer_programs(extra: &[ExtraLayer]) -> Option<Vec<&str>> {
    let mut layered = Vec::new();
    for e in extra {
        layered.extend(e.programs.as_ref()?.iter().map(String::as_str));
    }
    Some(layered)
}

/// A warning when the image's `config` starts a program by bare name that
/// none of its PATH directories holds, or by a path in a standard PATH
/// directory that nothing puts there, as far as `base_fs` and `extra` tell;
/// None when it is there, named by another path, or not known.
pub fn missing(config: &serde_json::Value, base_fs: &BTreeMap<String, Node>, extra: &[ExtraLayer]) -> Option<String> {
    let c = &config["config"];
    let (key, program) = program(config)?;
    let layered = layer_programs(extra)?;
    // By path, in a PATH directory every base has (a Dockerfile's
    // `/usr/local/bin/gunicorn`, where its pip installed it): there, or not.
    if let Some((dir, name)) = program.rsplit_once('/')
        && let Some(rel) = dir.strip_prefix('/')
        && STANDARD.contains(&rel)
    {
        if name.is_empty() || in_base(base_fs, rel, name) || layered.contains(&program.as_str()) {
            return None;
        }
        let elsewhere: Vec<&str> = layered.iter().copied().filter(|p| p.rsplit('/').next() == Some(name)).collect();
        let instead = match elsewhere.first() {
            Some(p) => format!("the image has it at {p}: name it bare (`{name}`), as PATH finds it"),
            None => format!(
                "use a base that has it (a system package), or add the app's dependency that provides `{name}` to its lock and name it bare (`{name}`)"
            ),
        };
        return Some(format!(
            "[image] {key} runs `{program}`, which the base does not have and no layer puts there, so the image cannot start; {instead}"
        ));
    }
    if program.is_empty() || program.contains('/') {
        return None;
    }
    let path = c["Env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str()?.strip_prefix("PATH="))
        .next_back()
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .to_string();
    let mut searched = Vec::new();
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let dir = dir.trim_end_matches('/');
        let wanted = format!("{dir}/{program}");
        if layered.contains(&wanted.as_str()) {
            return None;
        }
        let rel = dir.trim_start_matches('/');
        if STANDARD.contains(&rel) {
            if in_base(base_fs, rel, &program) {
                return None;
            }
        } else if !layered.iter().any(|p| p.rsplit_once('/').is_some_and(|(d, _)| d == dir)) {
            return None;
        }
        searched.push(dir.to_string());
    }
    Some(format!(
        "[image] {key} runs `{program}`, which is in none of the image's PATH directories ({}): no package of the lock installs it and the base has none, so the image cannot start; add the package that provides it to the project's dependencies and lock again, or name the program by its path",
        searched.join(", ")
    ))
}

/// Whether the base has `program` in the PATH directory `dir` (relative),
/// following a directory symlink (`bin` → `usr/bin`) once.
fn in_base(base_fs: &BTreeMap<String, Node>, dir: &str, program: &str) -> bool {
    let dir = match base_fs.get(dir) {
        // Relative to the root, `.` and `..` worked out (`usr/local/../bin` is `usr/bin`).
        Some(Node::Symlink(target)) if target.starts_with('/') => crate::dockerignore::clean(target),
        Some(Node::Symlink(target)) => match dir.rsplit_once('/') {
            Some((parent, _)) => crate::dockerignore::clean(&format!("{parent}/{target}")),
            None => crate::dockerignore::clean(target),
        },
        _ => dir.to_string(),
    };
    base_fs.contains_key(&format!("{dir}/{program}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_file_of_the_app_without_its_execute_bit_is_said() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("run.sh"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(dir.path().join("run.sh"), std::fs::Permissions::from_mode(0o664)).unwrap();
        let cmd = |argv: &[&str]| serde_json::json!({"config": {"Entrypoint": argv}});
        let mut app = oxbuild_image::LayerBuilder::new(0, oxbuild_image::Owner::ROOT);
        app.file("app/run.sh", &dir.path().join("run.sh"), oxbuild_image::Owner::ROOT, 0o644);
        let base = BTreeMap::new();
        let check = |argv: &[&str]| app_programs(&cmd(argv), dir.path(), "/app", &app, &base, &[]).pop();
        let w = check(&["/app/run.sh"]).unwrap();
        assert!(w.contains("run.sh, which is not executable (mode 664)") && w.contains("chmod +x run.sh"), "{w}");
        assert!(check(&["./run.sh"]).is_some());
        std::fs::set_permissions(dir.path().join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(check(&["/app/run.sh"]).is_none());
        // A program elsewhere, or by name, is not the app's.
        assert!(check(&["gunicorn"]).is_none());
        assert!(check(&["/usr/bin/run.sh"]).is_none());
        // One in the workdir that the app layer lacks: the project has none,
        // or it was left out. One the base's scan shows is there.
        let w = check(&["/app/entrypoint.sh", "serve"]).unwrap();
        assert!(w.contains("runs `/app/entrypoint.sh`") && w.contains("the project has no entrypoint.sh"), "{w}");
        std::fs::write(dir.path().join("start.sh"), "#!/bin/sh\n").unwrap();
        let w = check(&["./start.sh"]).unwrap();
        assert!(w.contains("start.sh is left out of the app layer"), "{w}");
        let base: BTreeMap<String, Node> = [("app/start.sh".to_string(), Node::File(None))].into();
        assert!(app_programs(&cmd(&["./start.sh"]), dir.path(), "/app", &app, &base, &[]).is_empty());
        // A venv in the workdir holds its programs; a layer that does not say what it holds may.
        let in_venv = cmd(&["/app/.venv/bin/gunicorn"]);
        let (none, empty) = (BTreeMap::new(), venv_layer(Some(&[])));
        assert!(!app_programs(&in_venv, dir.path(), "/app", &app, &none, std::slice::from_ref(&empty)).is_empty());
        let venv = venv_layer(Some(&["/app/.venv/bin/gunicorn"]));
        assert!(app_programs(&in_venv, dir.path(), "/app", &app, &none, &[empty, venv]).is_empty());
        assert!(app_programs(&in_venv, dir.path(), "/app", &app, &none, &[venv_layer(None)]).is_empty());
        // The healthcheck's program, the same way (uptime-kuma's
        // extra/healthcheck, a binary its Dockerfile made elsewhere).
        let probe = |test: &[&str]| serde_json::json!({"config": {"Healthcheck": {"Test": test}}});
        let w = app_programs(&probe(&["CMD", "extra/healthcheck"]), dir.path(), "/app", &app, &none, &[]).remove(0);
        assert!(w.starts_with("[healthcheck] cmd runs `extra/healthcheck`") && w.contains("never healthy"), "{w}");
        let shell = probe(&["CMD-SHELL", "extra/healthcheck"]);
        assert!(app_programs(&shell, dir.path(), "/app", &app, &none, &[]).is_empty());
        assert!(app_programs(&probe(&["CMD", "./run.sh"]), dir.path(), "/app", &app, &none, &[]).is_empty());
    }

    /// The script of a `python3 SCRIPT` command, which the app layer must
    /// have (it need not be executable); `-m` and `-c` run none.
    #[test]
    fn the_script_a_python_command_runs_must_be_in_the_app_layer() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("app")).unwrap();
        std::fs::write(dir.path().join("app/main.py"), "print(1)\n").unwrap();
        std::fs::write(dir.path().join("manage.py"), "print(1)\n").unwrap();
        let mut app = oxbuild_image::LayerBuilder::new(0, oxbuild_image::Owner::ROOT);
        app.file("app/app/main.py", &dir.path().join("app/main.py"), oxbuild_image::Owner::ROOT, 0o644);
        let none = BTreeMap::new();
        let check = |entrypoint: &[&str], cmd: &[&str]| {
            app_programs(&config(entrypoint, cmd, None), dir.path(), "/app", &app, &none, &[])
        };
        assert!(check(&["python3", "-u", "app/main.py"], &[]).is_empty(), "there, and need not be executable");
        assert!(check(&["python3"], &["/app/app/main.py"]).is_empty());
        assert!(check(&["python3", "-m", "app.main"], &[]).is_empty());
        assert!(check(&["/usr/bin/python3.11", "-c", "print(1)"], &[]).is_empty());
        assert!(check(&["python3", "/srv/elsewhere.py"], &[]).is_empty(), "outside the workdir: not known");
        let w = check(&["python3", "-X", "dev", "main.py"], &[]).remove(0);
        assert!(
            w.starts_with("[image] entrypoint runs `./main.py`") && w.contains("the project has no main.py"),
            "{w}"
        );
        let w = check(&[], &["python", "manage.py", "runserver"]).remove(0);
        assert!(w.starts_with("[image] cmd runs `./manage.py`") && w.contains("manage.py is left out"), "{w}");
        assert!(w.contains("python3 cannot open it"), "{w}");
        assert!(check(&["python3-config", "x.py"], &[]).is_empty(), "not Python itself");
        for argv in [
            &["python3", "-um", "app.main"][..],
            &["python", "-Bc", "1"],
            &["python3", "."],
            &["python3", "-Wignore", "app/main.py"],
        ] {
            assert!(check(argv, &[]).is_empty(), "{argv:?}");
        }
        assert!(check(&["python3", "--check-hash-based-pycs", "never", "app/main.py"], &[]).is_empty());
        assert!(!check(&["python3", "-u", "-W", "ignore", "gone.py"], &[]).is_empty());
    }

    fn config(entrypoint: &[&str], cmd: &[&str], path: Option<&str>) -> serde_json::Value {
        let env: Vec<String> = path.map(|p| format!("PATH={p}")).into_iter().collect();
        serde_json::json!({"config": {"Entrypoint": entrypoint, "Cmd": cmd, "Env": env}})
    }

    fn venv_layer(programs: Option<&[&str]>) -> ExtraLayer {
        ExtraLayer {
            layer: oxbuild_image::Layer::file(
                oxbuild_image::Descriptor::new(
                    "application/vnd.oci.image.layer.v1.tar+gzip",
                    oxbuild_image::Digest::of(b""),
                    0,
                ),
                "/nonexistent".into(),
            ),
            diff_id: oxbuild_image::Digest::of(b""),
            created_by: String::new(),
            env: Vec::new(),
            programs: programs.map(|p| p.iter().map(|s| s.to_string()).collect()),
        }
    }

    #[test]
    fn a_program_no_layer_and_no_base_directory_holds_is_named() {
        let mut fs = BTreeMap::new();
        fs.insert("bin".to_string(), Node::Symlink("usr/bin".into()));
        fs.insert("usr/bin/sh".to_string(), Node::File(None));
        fs.insert("usr/local/bin/uvicorn".to_string(), Node::File(None));
        fs.insert("sbin".to_string(), Node::Symlink("usr/local/../sbin/".into()));
        fs.insert("usr/sbin/nginx".to_string(), Node::File(None));
        let layers = [venv_layer(Some(&["/opt/venv/bin/python", "/opt/venv/bin/gunicorn"]))];
        let path = Some("/opt/venv/bin:/usr/local/bin:/usr/bin:/bin:/sbin");
        // In the venv, in the base (through the bin symlink too), by path: nothing to say.
        for (entrypoint, cmd) in [
            (&["gunicorn"][..], &[][..]),
            (&[], &["uvicorn"]),
            (&["sh", "-c"], &[]),
            (&["/app/run.sh"], &[]),
            (&["nginx"], &[]),
        ] {
            assert_eq!(missing(&config(entrypoint, cmd, path), &fs, &layers), None, "{entrypoint:?} {cmd:?}");
        }
        let warned = missing(&config(&[], &["celery", "worker"], path), &fs, &layers).expect("a warning");
        assert!(warned.starts_with("[image] cmd runs `celery`"), "{warned}");
        assert!(warned.contains("/opt/venv/bin, /usr/local/bin, /usr/bin, /bin, /sbin"), "{warned}");
        // A layer that does not say what it holds, or a PATH directory no
        // one knows: no verdict.
        assert_eq!(missing(&config(&["celery"], &[], path), &fs, &[venv_layer(None)]), None);
        let other = Some("/opt/conda/bin:/usr/bin");
        assert_eq!(missing(&config(&["celery"], &[], other), &fs, &layers), None);
        // By path in a standard PATH directory: a Dockerfile's system-wide
        // gunicorn is the venv's here; one nothing has is named; one the
        // base has (through the bin symlink too) is fine.
        let warned = missing(&config(&["/usr/local/bin/gunicorn"], &[], path), &fs, &layers).expect("a warning");
        assert!(warned.contains("the image has it at /opt/venv/bin/gunicorn: name it bare (`gunicorn`)"), "{warned}");
        let warned = missing(&config(&[], &["/usr/bin/celery"], path), &fs, &layers).expect("a warning");
        assert!(warned.starts_with("[image] cmd runs `/usr/bin/celery`, which the base does not have"), "{warned}");
        for present in ["/usr/local/bin/uvicorn", "/bin/sh", "/usr/bin/sh", "/opt/venv/bin/gunicorn", "/opt/other/x"] {
            assert_eq!(missing(&config(&[present], &[], path), &fs, &layers), None, "{present}");
        }
        assert_eq!(missing(&config(&["/usr/bin/celery"], &[], path), &fs, &[venv_layer(None)]), None);
    }

    #[test]
    fn the_scan_keeps_the_path_directories_and_their_entries_only() {
        assert_eq!(wants("bin"), Want::Exists);
        assert_eq!(wants("usr/local/bin/gunicorn"), Want::Exists);
        assert_eq!(wants("usr/bin/python3.11"), Want::Exists);
        assert_eq!(wants("usr/bin/x/y"), Want::Skip);
        assert_eq!(wants("usr/lib/x"), Want::Skip);
        assert_eq!(wants("usr"), Want::Skip);
    }
}
