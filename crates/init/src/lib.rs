//! `oxbuild init`: writes a working oxbuild.toml from what a project already
//! says about how it runs, in this order of trust:
//! 1. a Dockerfile ([`dockerfile`]): base, entrypoint and command, ports,
//!    environment, workdir, user and uid, healthcheck, what it copies, and
//!    which lock its install step reads; what cannot be carried over
//!    (system packages, build secrets, other `RUN` steps) becomes a comment
//!    saying why;
//! 2. a `Procfile`'s `web:` line;
//! 3. the framework's conventions ([`framework`]).
//!
//! Nothing of the project is run or imported: everything is read as text.

pub mod dockerfile;
pub mod framework;

use std::collections::BTreeMap;
use std::path::Path;

/// Something that could not be carried over, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// What it is: `RUN apt-get install ... in Dockerfile`.
    pub what: String,
    /// Why it is not carried over, and what to do.
    pub why: String,
}

impl Note {
    /// A note.
    pub fn new(what: impl Into<String>, why: impl Into<String>) -> Note {
        Note { what: what.into(), why: why.into() }
    }
}

/// A healthcheck: an HTTP probe, or a command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    /// `http = "..."`: polled by the image's own Python.
    pub http: Option<String>,
    /// `cmd = [...]` when the check is not a plain HTTP request.
    pub cmd: Option<Vec<String>>,
    /// Durations as the Dockerfile writes them (`10s`).
    pub interval: Option<String>,
    /// See `interval`.
    pub timeout: Option<String>,
    /// Tries before unhealthy.
    pub retries: Option<u32>,
    /// See `interval`.
    pub start_period: Option<String>,
}

impl Health {
    /// A Dockerfile's `HEALTHCHECK CMD`: a `curl`/`wget` of a local URL
    /// becomes an HTTP probe (so the image needs neither tool); anything
    /// else stays a command. Variables in the URL
    /// (`:${PORT:-8000}/${PREFIX}health`) are expanded as the image's shell
    /// would: from `vars` (its ENV), else their defaults, else empty; the
    /// second value says so. A URL that is still no plain `host:port/path`
    /// after that (`$(cat port)`) leaves the command as it is.
    pub fn from_command(
        argv: Vec<String>,
        vars: &BTreeMap<String, String>,
        interval: Option<String>,
        timeout: Option<String>,
        retries: Option<u32>,
        start_period: Option<String>,
    ) -> (Health, bool) {
        let text = argv.join(" ");
        let fetches = ["curl", "wget"].iter().any(|t| text.split_whitespace().any(|w| w.rsplit('/').next() == Some(t)))
            || text.contains("urllib.request");
        let found = text
            .split(|c: char| c.is_whitespace() || c == '\'' || c == '"' || c == '(' || c == ')')
            .find(|w| w.starts_with("http://"));
        let expanded = found.is_some_and(|u| u.contains('$'));
        let url = found
            .map(|u| dockerfile::expand(u, vars))
            .map(|u| u.replace("://localhost", "://127.0.0.1").replace("://0.0.0.0", "://127.0.0.1"))
            .filter(|u| plain_url(u));
        let (http, cmd) = match url {
            Some(u) if fetches => (Some(u), None),
            _ => (None, Some(argv)),
        };
        let expanded = expanded && http.is_some();
        (Health { http, cmd, interval, timeout, retries, start_period }, expanded)
    }
}

/// True for an `http://` URL the probe can send as it is (the config's own
/// rule) with nothing a shell would still have to expand (`` `…` ``, `$`).
fn plain_url(url: &str) -> bool {
    url.starts_with("http://") && oxbuild_config::check_probe_url(url).is_ok() && !url.contains(['$', '`'])
}

/// What `init` says when it found no command.
pub const NO_COMMAND: &str = "found no way to run the app: no Dockerfile CMD or ENTRYPOINT, no Procfile web line, no Django project, FastAPI/Starlette/Flask app, package __main__.py or [project.scripts], and no package.json start script (start, start:prod, serve) that runs node or a program of a production package in the lock, nor a main";

/// What `init` is asked.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The base image (`--base`, else `OXBUILD_IMAGE_BASE`): wins over the Dockerfile's.
    pub base: Option<String>,
    /// The Dockerfile to read (`--dockerfile`), relative to the project;
    /// else the one `init` finds.
    pub dockerfile: Option<String>,
    /// The Dockerfile's stage that is the image (`--target`); else its last.
    pub target: Option<String>,
}

/// The oxbuild.toml that `init` writes, before it is text.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// What was read, most trusted first: `Dockerfile`, `Procfile`, a convention.
    pub sources: Vec<String>,
    /// The base image, and where it came from.
    pub base: Option<(String, String)>,
    /// The workdir.
    pub workdir: String,
    /// The user's name, its uid when known, and a comment.
    pub user: (String, Option<u32>, Option<String>),
    /// `[image] entrypoint`.
    pub entrypoint: Option<Vec<String>>,
    /// `[image] cmd`.
    pub cmd: Option<Vec<String>>,
    /// Where the command came from.
    pub entry_from: String,
    /// `[image] env`.
    pub env: BTreeMap<String, String>,
    /// `[image] ports`, and whether they are a guess.
    pub ports: (Vec<u16>, bool),
    /// `[image] dirs`: what the Dockerfile's `RUN mkdir` made, and its
    /// `VOLUME`s, outside the workdir.
    pub dirs: Vec<String>,
    /// `[healthcheck]`, and whether it is a guess.
    pub health: Option<(Health, bool)>,
    /// `[app] root`: the folder whose contents the Dockerfile copies into
    /// its workdir (`COPY shynet .`).
    pub root: Option<String>,
    /// `[app] include`; None for the whole directory (less `.dockerignore`).
    pub include: Option<Vec<String>>,
    /// `[python]`: the key (`requirements` or `lock`) and the file.
    pub python: Option<(&'static str, String)>,
    /// `[python] lock-input`: the requirements file `oxbuild lock` resolved.
    pub lock_input: Option<String>,
    /// The production lock (or what init locks) has pytest itself.
    pub pytest_locked: bool,
    /// `[python] install-project = false`, and why: the Dockerfile installs
    /// the package's dependencies but not the package.
    pub install_project: Option<String>,
    /// `[python] groups`: those the Dockerfile's install step adds, and the step's file.
    pub groups: Option<(Vec<String>, String)>,
    /// `[python] extras`: the project's extras the Dockerfile's install step adds.
    pub extras: Option<(Vec<String>, String)>,
    /// A uv.lock group with pytest in it, for the test variant.
    pub pytest_group: Option<String>,
    /// The test lock `oxbuild lock` wrote (`pylock.test.toml`), and whether
    /// pytest is in it.
    pub test_lock: Option<(String, bool)>,
    /// A Node.js project's lock, its `scripts.test` when that is a plain
    /// `node ...` command, and its production packages with install scripts.
    pub node: Option<NodePlan>,
    /// A `tests` directory is there.
    pub tests: bool,
    /// A `pyproject.toml` is there (so a missing lock is worth a comment).
    pub pyproject: bool,
    /// What could not be carried over.
    pub notes: Vec<Note>,
}

/// What `init` found of a Node.js project.
#[derive(Debug, Clone, Default)]
pub struct NodePlan {
    /// `package-lock.json` or `npm-shrinkwrap.json`, when there is one.
    pub lock: Option<String>,
    /// `scripts.test`, when it is a plain `node ...` command: a gate.
    pub test: Option<String>,
    /// Production packages with install scripts, which oxbuild never runs.
    pub scripts: Vec<String>,
    /// package.json itself.
    pub package: serde_json::Value,
}

/// A Node.js project in `dir` (a package.json), with what must be done
/// before it builds, as notes.
fn node_plan(dir: &Path, notes: &mut Vec<Note>) -> Option<NodePlan> {
    let package: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("package.json")).ok()?).ok()?;
    let lock = ["npm-shrinkwrap.json", "package-lock.json"].into_iter().find(|f| dir.join(f).is_file());
    let test = package["scripts"]["test"].as_str().and_then(oxbuild_node::plain_node).map(|w| w.join(" "));
    let mut scripts: Vec<String> = Vec::new();
    match lock.map(|l| (l, oxbuild_node::lockfile::load(&dir.join(l)))) {
        Some((_, Ok(l))) => {
            // An optional package for another OS (fsevents on macOS) is
            // never installed on Linux, so its scripts do not matter.
            let linux = |os: &[String]| {
                os.is_empty()
                    || os.iter().any(|o| o == "linux")
                    || (os.iter().all(|o| o.starts_with('!')) && !os.iter().any(|o| o == "!linux"))
            };
            scripts = l
                .packages
                .into_iter()
                .filter(|p| p.install_script && !p.dev && (!p.optional || linux(&p.os)))
                .map(|p| p.name)
                .collect();
        }
        Some((l, Err(e))) => notes.push(Note::new(format!("{l} cannot be installed yet"), e.to_string())),
        None if package["dependencies"].as_object().is_some_and(|d| !d.is_empty()) => notes.push(Note::new(
            "package.json has dependencies but no package-lock.json",
            "run `npm install --package-lock-only` and commit the lock: oxbuild installs exactly what a lock says",
        )),
        None => {}
    }
    scripts.sort();
    scripts.dedup();
    Some(NodePlan { lock: lock.map(str::to_string), test, scripts, package })
}

/// `[app] root` for a Dockerfile that lays out one folder of the project
/// as its WORKDIR: `COPY shynet .`, or `COPY src/run.py .` with `COPY
/// src/app ./app`. Each folder it copies into the workdir says which folder
/// of the project the workdir is (`src`); they must all agree, and none may
/// say the project itself. Files copied there under their own name have the
/// same say when no folder is copied. The dependencies' manifests (read at
/// the project's root) and files copied under another name have none; the
/// whole project copied (`COPY . .`) is no root.
fn app_folder(dir: &Path, d: &dockerfile::FromDockerfile, workdir: &str) -> Option<String> {
    let workdir = workdir.trim_end_matches('/');
    // Folders' votes, then files'.
    let mut votes: (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
    for (src, dest, into) in d.placed() {
        let rel = src.trim_start_matches("./").trim_end_matches('/');
        if rel.is_empty() || rel == "." {
            return None;
        }
        let Some(rel) = in_project(dir, rel) else { continue };
        let name = rel.rsplit('/').next().unwrap_or(&rel);
        let is_dir = dir.join(&rel).is_dir();
        if !is_dir && MANIFESTS.contains(&name) {
            continue;
        }
        let Some(at) = within(workdir, dest) else {
            // Beside the workdir, in the tree it is part of (`commons/` at
            // /usr/src/app/commons, the workdir /usr/src/app/backend): the
            // app needs more than one folder.
            let parent = workdir.rsplit_once('/').map(|(p, _)| p).filter(|p| !p.is_empty());
            if is_dir && parent.is_some_and(|p| within(p, dest).is_some()) {
                return None;
            }
            continue;
        };
        // Where it lands in the workdir: a folder's contents at `dest`, a
        // file put into a folder under its own name.
        let at = match (is_dir, *into) {
            (false, true) if at.is_empty() => name.to_string(),
            (false, true) => format!("{at}/{name}"),
            _ => at.to_string(),
        };
        let voted = if at.is_empty() {
            rel.clone()
        } else {
            match rel.strip_suffix(&format!("/{at}")) {
                Some(f) => f.to_string(),
                None if rel == at => String::new(),
                // A file under another name says nothing; a folder moved
                // elsewhere means no one folder is the workdir.
                None if !is_dir => continue,
                None => return None,
            }
        };
        match is_dir {
            true => votes.0.push(voted),
            false => votes.1.push(voted),
        }
    }
    let decided = if votes.0.is_empty() { votes.1 } else { votes.0 };
    let folder = decided.first()?;
    let agreed = !folder.is_empty() && decided.iter().all(|v| v == folder);
    agreed.then(|| folder.clone()).filter(|f| dir.join(f).is_dir())
}

/// `path` relative to the folder `dir`, both in the project (`[app]
/// root`) or both in the image (the workdir, `/` included): empty for the
/// folder itself, None for a path outside it. Trailing slashes do not count.
fn within<'a>(dir: &str, path: &'a str) -> Option<&'a str> {
    let (dir, path) = (dir.trim_end_matches('/'), path.trim_end_matches('/'));
    if path == dir {
        return Some("");
    }
    path.strip_prefix(dir)?.strip_prefix('/')
}

/// The dependencies' own files, which a Dockerfile copies for its install
/// step and oxbuild reads at the project's root.
const MANIFESTS: [&str; 14] = [
    "pyproject.toml",
    "setup.py",
    "setup.cfg",
    "poetry.lock",
    "uv.lock",
    "pdm.lock",
    "Pipfile",
    "Pipfile.lock",
    "pylock.toml",
    "package.json",
    "package-lock.json",
    "npm-shrinkwrap.json",
    "yarn.lock",
    ".npmrc",
];

/// A note when the Dockerfile puts some of the project's files elsewhere
/// under the workdir than oxbuild does, which keeps the project's layout
/// there (`COPY ./backend/app /app/app` with `WORKDIR /app`: oxbuild has
/// `/app/backend/app`), so that the command may look in the wrong place.
/// Files outside `[app] root` are in no app layer, and not compared.
fn moved(dir: &Path, file: &str, d: &dockerfile::FromDockerfile, workdir: &str, root: Option<&str>) -> Option<Note> {
    let workdir = workdir.trim_end_matches('/');
    let inside = |p: &str| within(workdir, p).is_some();
    let mut moves = Vec::new();
    for (src, dest, into) in d.placed() {
        let rel = src.trim_start_matches("./").trim_end_matches('/');
        // Built from the folder above (`COPY ./backend/app ...` in backend/).
        let rel = &in_project(dir, rel).unwrap_or_else(|| rel.to_string());
        // Where the app layer has it: relative to `[app] root`, and not
        // at all when outside it.
        let in_app = match root.map(|root| within(root, rel)) {
            Some(Some(r)) => r,
            Some(None) => continue,
            None => rel.as_str(),
        };
        let ours = if in_app.is_empty() || in_app == "." { workdir.to_string() } else { format!("{workdir}/{in_app}") };
        // The workdir and the directories a `RUN mkdir` made are directories
        // whatever the line's trailing slash (`COPY entry.sh $APP_HOME`).
        let into = *into || dest.trim_end_matches('/') == workdir || d.dirs.contains(dest);
        let theirs = match (into && !dir.join(rel).is_dir(), rel.rsplit('/').next()) {
            (true, Some(name)) => format!("{}/{name}", dest.trim_end_matches('/')),
            _ => dest.clone(),
        };
        // A Dockerfile with no WORKDIR runs from `/`, and oxbuild from its
        // workdir: a file placed relative to `/` is where oxbuild puts it
        // relative to the workdir (microblog's `COPY app app`). One put in
        // the system's directories is outside the app, as ever.
        let system = ["/etc/", "/usr/", "/var/", "/lib/", "/bin/", "/sbin/", "/root/", "/tmp/"];
        let compared = match &d.workdir {
            None if system.iter().any(|s| theirs.starts_with(s)) => continue,
            None => format!("{workdir}{}", theirs.trim_end_matches('/')),
            Some(_) => theirs.clone(),
        };
        if compared != ours && inside(&compared) && !moves.iter().any(|(s, _, _): &(String, String, String)| s == rel) {
            moves.push((rel.to_string(), theirs, ours));
        }
    }
    if moves.is_empty() {
        return None;
    }
    let theirs: Vec<String> = moves.iter().map(|(s, t, _)| format!("{s} at {t}")).collect();
    let ours: Vec<String> = moves.iter().map(|(_, _, o)| o.clone()).collect();
    Some(Note::new(
        format!("where {file} puts the project's files"),
        format!(
            "it puts {}; oxbuild keeps the project's layout under [image] workdir ({}): check workdir and the command, or lay the project out as the image has it",
            theirs.join(", "),
            ours.join(", ")
        ),
    ))
}

/// The project's script that `entrypoint` runs (`/app/entrypoint.sh`, or
/// `sh entrypoint.sh`), when it ends by running its own arguments (`exec
/// "$@"`), as a wrapper that waits for a database or migrates first does.
fn argument_runner(dir: &Path, d: &dockerfile::FromDockerfile, entrypoint: &[String]) -> Option<String> {
    let workdir = d.workdir.clone().unwrap_or_else(|| "/".into());
    entrypoint.iter().take(2).find_map(|program| {
        let src = d
            .program_from(program, &workdir)
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| program.trim_start_matches("./").to_string());
        let text = std::fs::read_to_string(dir.join(&src)).ok()?;
        let runs = text.lines().any(|l| {
            let l = l.trim();
            l.starts_with("exec ") && (l.contains("\"$@\"") || l.contains("$@") || l.contains("${@}"))
        });
        runs.then(|| program.clone())
    })
}

/// Whether `name` is a Dockerfile's: `Dockerfile`, `Containerfile`,
/// `Dockerfile.prod`, `production.Dockerfile` and the like.
fn is_dockerfile(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    ["dockerfile", "containerfile"]
        .iter()
        .any(|d| lower == *d || lower.starts_with(&format!("{d}.")) || lower.ends_with(&format!(".{d}")))
        && !lower.ends_with(".dockerignore")
}

/// The Dockerfile `init` reads when none is named: a production one
/// (`Dockerfile.prod`, `docker/production.Dockerfile`) when there is
/// exactly one, since that makes the image to ship (another often starts a
/// dev server, or wipes a development database at every start); else
/// `Dockerfile` or `Containerfile` at the root; else the only one so named
/// in a folder (built with the project's root as its context, as `docker
/// build -f docker/Dockerfile .` and compose files do). Other variants
/// (`bench.Dockerfile`), or several with no way to choose: a note, and none.
fn choose_dockerfile(dir: &Path, notes: &mut Vec<Note>) -> Option<String> {
    let files_in = |sub: &str| -> Vec<String> {
        let mut found: Vec<String> = std::fs::read_dir(dir.join(sub))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| is_dockerfile(n))
            .map(|n| if sub.is_empty() { n } else { format!("{sub}/{n}") })
            .collect();
        found.sort();
        found
    };
    let mut all = files_in("");
    let mut subs: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.') && n != "node_modules")
        .collect();
    subs.sort();
    for sub in &subs {
        all.extend(files_in(sub));
    }
    let name = |f: &String| f.rsplit('/').next().unwrap_or(f).to_ascii_lowercase();
    let plain = |f: &&String| ["dockerfile", "containerfile"].contains(&name(f).as_str());
    let production: Vec<&String> = all.iter().filter(|f| name(f).contains("prod")).collect();
    // A plain name at the root, in the order of preference; else the only
    // plainly named one in a folder (`docker/Dockerfile`). A variant such
    // as `bench.Dockerfile` or `dev.Dockerfile` is never guessed at.
    let at_root = ["Dockerfile", "Containerfile", "dockerfile"].iter().find_map(|n| all.iter().find(|f| f == n));
    let in_folder: Vec<&String> = all.iter().filter(plain).collect();
    let chosen = match (production.as_slice(), at_root, in_folder.as_slice()) {
        ([one], _, _) => Some((*one, ", the production one")),
        (_, Some(root), _) => Some((root, "")),
        (_, None, [one]) => Some((*one, "")),
        _ => None,
    };
    match chosen {
        Some((one, why)) => {
            let rest: Vec<&str> = all.iter().filter(|f| *f != one).map(String::as_str).collect();
            if !rest.is_empty() {
                notes.push(Note::new(
                    format!("{} beside {one}", rest.join(", ")),
                    format!("init read {one}{why}; `oxbuild init --dockerfile FILE` reads another"),
                ));
            }
            Some(one.clone())
        }
        None if all.is_empty() => None,
        None => {
            notes.push(Note::new(
                format!("Dockerfiles: {}", all.join(", ")),
                "init reads a production one, else a Dockerfile at the project's root, else the only one in a folder: name the one you build with `oxbuild init --dockerfile FILE`",
            ));
            None
        }
    }
}

/// Python project tools whose `run` starts a program in the project's
/// environment.
const RUNNERS: [&str; 4] = ["poetry", "pipenv", "pdm", "uv"];

/// Drops `poetry run` (`pipenv run`, `pdm run`, `uv run` and uv's flags)
/// from a command, in exec form and inside a `sh -c` string; returns the
/// `<tool> run` phrases it dropped.
fn drop_runners(argv: &mut Vec<String>) -> Vec<String> {
    let mut dropped = Vec::new();
    if argv.len() > 2 && RUNNERS.contains(&argv[0].as_str()) && argv[1] == "run" {
        dropped.push(format!("{} run", argv[0]));
        let flags = argv[2..].iter().take_while(|a| argv[0] == "uv" && a.starts_with("--")).count();
        argv.drain(..2 + flags);
    }
    if let Some(at) = argv.iter().position(|a| a == "-c")
        && at >= 1
        && argv[at - 1].ends_with("sh")
        && let Some(script) = argv.get_mut(at + 1)
    {
        for tool in RUNNERS {
            let phrase = format!("{tool} run ");
            let (mut out, mut from) = (String::new(), 0);
            for (i, _) in script.match_indices(&phrase) {
                // Only where it starts a word: not `mypoetry run`.
                if script[..i].chars().last().is_none_or(char::is_whitespace) {
                    out.push_str(&script[from..i]);
                    from = i + phrase.len();
                    dropped.push(format!("{tool} run"));
                }
            }
            out.push_str(&script[from..]);
            *script = out;
        }
    }
    dropped
}

/// The port a Node.js app is guessed to listen on (Express's habit).
const NODE_PORT: u16 = 3000;

/// Locks oxbuild reads, in the order `init` prefers them when nothing names one.
const LOCKS: [(&str, &str); 6] = [
    ("requirements", "requirements.txt"),
    ("lock", "pylock.toml"),
    ("lock", "uv.lock"),
    ("lock", "poetry.lock"),
    ("lock", "Pipfile.lock"),
    ("lock", "pdm.lock"),
];

/// Environment a Dockerfile sets for its own tools or its own layout, which
/// the oxbuild image (its venv on `PATH`) must not inherit.
const ENV_NOT_CARRIED: [&str; 9] =
    ["PATH", "VIRTUAL_ENV", "PYTHON_VERSION", "PYTHON_SHA256", "GPG_KEY", "LANG", "LC_ALL", "PYTHONPATH", "HOME"];

/// `extras` with `--all-extras` ([`dockerfile::ALL_EXTRAS`]) replaced by
/// the extras the project declares (`[project.optional-dependencies]`,
/// Poetry's `[tool.poetry.extras]`), by name.
fn every_extra(dir: &Path, extras: Vec<String>) -> Vec<String> {
    if !extras.iter().any(|e| e == dockerfile::ALL_EXTRAS) {
        return extras;
    }
    let doc = oxbuild_python::input::pyproject(dir).ok().flatten().unwrap_or_default();
    let declared = [
        doc.get("project").and_then(|p| p.get("optional-dependencies")),
        doc.get("tool").and_then(|t| t.get("poetry")).and_then(|p| p.get("extras")),
    ];
    let mut out: Vec<String> = extras.into_iter().filter(|e| e != dockerfile::ALL_EXTRAS).collect();
    for name in declared.into_iter().flatten().filter_map(|t| t.as_table()).flat_map(|t| t.keys()) {
        if !out.contains(name) {
            out.push(name.clone());
        }
    }
    out
}

/// A Dockerfile's `PYTHONPATH` when each of its entries is `workdir` or a
/// folder in it (`$PYTHONPATH` itself dropped: the image has none before);
/// None when one points elsewhere.
fn app_python_path(value: &str, workdir: &str) -> Option<String> {
    let workdir = workdir.trim_end_matches('/');
    let entries: Vec<&str> = value
        .split(':')
        .map(|e| e.trim_end_matches('/'))
        .filter(|e| !e.is_empty() && *e != "$PYTHONPATH" && *e != "${PYTHONPATH}")
        .collect();
    let inside = |e: &&str| !workdir.is_empty() && within(workdir, e).is_some();
    (!entries.is_empty() && entries.iter().all(inside)).then(|| entries.join(":"))
}

/// A Procfile: the `web:` command with its port, and the other processes
/// (`release`, `worker`: kind and command).
struct Procfile {
    web: Vec<String>,
    port: u16,
    others: Vec<(String, String)>,
}

/// The Procfile's `web:` command, with `$PORT` set to the port it gets, and
/// its other processes.
fn procfile(dir: &Path) -> Option<Procfile> {
    let text = std::fs::read_to_string(dir.join("Procfile")).ok()?;
    let others = text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(kind, command)| (kind.trim().to_string(), command.trim().to_string()))
        .filter(|(kind, _)| kind != "web" && !kind.is_empty() && !kind.starts_with('#'))
        .collect();
    let line = text.lines().find_map(|l| l.trim().strip_prefix("web:"))?.trim().to_string();
    let port = port_default(&line).unwrap_or(framework::PORT);
    let vars: BTreeMap<String, String> = [("PORT".to_string(), port.to_string())].into();
    Some(Procfile { web: dockerfile::shell_argv(&line, &vars), port, others })
}

/// The N of a `${PORT:-N}` in `text`: the port the app expects without a
/// platform to set PORT.
fn port_default(text: &str) -> Option<u16> {
    text.split("${PORT:-").nth(1)?.split('}').next()?.parse().ok()
}

/// The port a command line (or the script it runs) binds, if it names one.
fn port_in(argv: &[String], dir: &Path) -> Option<u16> {
    let mut words: Vec<String> = argv.to_vec();
    // A script the command runs (`./boot.sh`): its text.
    for w in argv {
        let path = dir.join(w.trim_start_matches("./"));
        if (w.ends_with(".sh") || w.starts_with("./")) && path.is_file() {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            words.extend(text.split_whitespace().map(String::from));
        }
    }
    let after = |flags: &[&str]| {
        words.iter().enumerate().find_map(|(i, w)| {
            let value = if flags.contains(&w.as_str()) {
                words.get(i + 1).cloned()
            } else {
                flags.iter().find_map(|f| w.strip_prefix(&format!("{f}="))).map(String::from)
            };
            // The first of several (`--hosts 0.0.0.0:5232,[::]:5232`).
            value.and_then(|v| v.split(',').next()?.rsplit(':').next().and_then(|p| p.parse().ok()))
        })
    };
    after(&["-b", "--bind", "--port", "-p", "--server.port", "--hosts", "--listen"]).or_else(|| {
        // `runserver 0.0.0.0:8000`, `0.0.0.0:5000` anywhere in a word.
        words.iter().find_map(|w| {
            let at = w.find("0.0.0.0:")? + "0.0.0.0:".len();
            let digits: String = w[at..].chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
    })
}

/// Notes for the project's scripts that `command` runs (by path, or
/// through `sh`/`bash`) which source a virtualenv's `bin/activate`: the
/// image has none there, as oxbuild installs the lock into its own venv,
/// already on PATH. Under `sh` a missing file to source ends the script.
fn activations(dir: &Path, workdir: &str, command: &[String]) -> Vec<Note> {
    let mut notes = Vec::new();
    for word in command.iter().take(3) {
        let rel = within(workdir, word).filter(|r| !r.is_empty()).unwrap_or(word);
        let rel = rel.trim_start_matches("./");
        if rel.starts_with('/') || !(rel.ends_with(".sh") || word.starts_with("./") || word.starts_with(workdir)) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(dir.join(rel)) else { continue };
        for line in text.lines().map(str::trim) {
            let sourced = line.strip_prefix("source ").or_else(|| line.strip_prefix(". ")).map(str::trim);
            if let Some(activate) = sourced.filter(|s| s.ends_with("bin/activate")) {
                notes.push(Note::new(
                    format!("`{line}` in {rel}"),
                    format!(
                        "the image has no virtualenv at {activate}: oxbuild installs the lock into its own venv, whose bin is on PATH already; delete the line, or the script stops there"
                    ),
                ));
            }
        }
    }
    notes
}

/// A Dockerfile in a folder whose COPY sources are there and not at the
/// project's root is built with that folder as its context (compose's
/// `context: ./project`): the app is that folder, and init says so rather
/// than write a config for the root that builds none of it.
fn own_context(dir: &Path, file: &str, d: &dockerfile::FromDockerfile) -> Result<(), String> {
    let Some((sub, _)) = file.rsplit_once('/') else { return Ok(()) };
    let sources: Vec<&String> = d.copies.iter().filter(|c| !matches!(c.trim_end_matches('/'), "." | "")).collect();
    let at_root = sources.iter().filter(|c| dir.join(c.as_str()).exists()).count();
    let beside: Vec<&str> = sources
        .iter()
        .filter(|c| !dir.join(c.as_str()).exists() && dir.join(sub).join(c.as_str()).exists())
        .map(|c| c.as_str())
        .collect();
    if at_root == 0 && !beside.is_empty() {
        return Err(format!(
            "{file} copies {}, which are in {sub}/ and not here: it is built with {sub}/ as its context, so the app is there; run `oxbuild init {}`",
            beside.join(", "),
            dir.join(sub).display()
        ));
    }
    Ok(())
}

/// `path` (a Dockerfile's COPY source) as the project in `dir` has it:
/// itself; or, for a Dockerfile built with the folder above as its context
/// (compose's `context: .` with `dockerfile: backend/Dockerfile`), with
/// the project's own folder name taken off its front (`backend/app` is
/// `app`); None when neither is there.
fn in_project(dir: &Path, path: &str) -> Option<String> {
    if dir.join(path).exists() {
        return Some(path.to_string());
    }
    let name = dir.canonicalize().ok()?.file_name()?.to_string_lossy().into_owned();
    let rest = path.strip_prefix(&format!("{name}/")).filter(|r| !r.is_empty())?;
    dir.join(rest).exists().then(|| rest.to_string())
}

/// A COPY source with wildcards in its last part (`package*.json`,
/// `src/*.py`) as the paths of the project it matches, sorted; the source
/// itself when it has none, or when nothing matches (a wildcard in a
/// folder's name is left as it is).
fn expand_copy(dir: &Path, source: &str) -> Vec<String> {
    let (folder, name) = source.rsplit_once('/').unwrap_or(("", source));
    let wild = |s: &str| s.contains(['*', '?', '[']);
    if !wild(name) || wild(folder) {
        return vec![source.to_string()];
    }
    let Ok(glob) = globset::GlobBuilder::new(name).literal_separator(true).build() else {
        return vec![source.to_string()];
    };
    let matcher = glob.compile_matcher();
    let mut found: Vec<String> = std::fs::read_dir(dir.join(folder))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| matcher.is_match(n))
        .map(|n| if folder.is_empty() { n } else { format!("{folder}/{n}") })
        .collect();
    found.sort();
    if found.is_empty() { vec![source.to_string()] } else { found }
}

/// Reads the project in `dir` and plans its oxbuild.toml.
pub fn plan(dir: &Path, options: &Options) -> Result<Plan, String> {
    let mut plan = Plan { workdir: "/app".into(), user: ("app".into(), None, None), ..Default::default() };
    let file = match &options.dockerfile {
        Some(named) if dir.join(named).is_file() => Some(named.clone()),
        Some(named) => return Err(format!("{}: no such Dockerfile (--dockerfile)", dir.join(named).display())),
        None => choose_dockerfile(dir, &mut plan.notes),
    };
    let docker = match file {
        Some(file) => {
            let text =
                std::fs::read_to_string(dir.join(&file)).map_err(|e| format!("{}: {e}", dir.join(&file).display()))?;
            plan.sources.push(match file.contains('/') {
                true => format!("{file} (built from the project's root)"),
                false => file.clone(),
            });
            let read = dockerfile::read_target(&text, &file, options.target.as_deref())?;
            own_context(dir, &file, &read)?;
            Some((file, read))
        }
        None => None,
    };
    let procfile = procfile(dir);
    let convention = framework::detect(dir);
    // A package.json that only a build stage of the Dockerfile reads (a
    // front end built for a Python app) is no Node.js app to install.
    let root = |p: &String| matches!(p.trim_start_matches("./").trim_end_matches('/'), "package.json" | "" | ".");
    let only_built =
        docker.as_ref().is_some_and(|(_, d)| d.build_inputs.iter().any(root) && !d.copies.iter().any(root));
    plan.node = if only_built { None } else { node_plan(dir, &mut plan.notes) };
    // A Python app's package.json with devDependencies alone (eslint,
    // stylelint, prettier) holds tools for the developer, not a part of
    // the image.
    let python_app = LOCKS.iter().any(|(_, f)| dir.join(f).is_file())
        || docker.as_ref().is_some_and(|(_, d)| d.base.as_deref().is_some_and(|b| b.contains("python")));
    if python_app
        && let Some(n) = &plan.node
        && n.package["dependencies"].as_object().is_none_or(|d| d.is_empty())
    {
        let dev = n.package["devDependencies"].as_object().is_some_and(|d| !d.is_empty());
        plan.notes.push(Note::new(
            "package.json",
            format!(
                "it has {} and the app is a Python one: no [node] section; add one by hand if the image needs Node.js packages",
                if dev { "devDependencies alone (linters, formatters)" } else { "no dependencies" }
            ),
        ));
        plan.node = None;
    }
    // One with a build script and nothing that serves (no start script, no
    // main) builds the front end of a Python app (rollup, postcss): its
    // output is what the image needs, not its packages.
    let runs_node = docker.as_ref().is_some_and(|(_, d)| {
        d.entrypoint.iter().chain(d.cmd.iter()).flatten().next().is_some_and(|p| p.rsplit('/').next() == Some("node"))
    });
    // One that serves nothing at all (no start script, no main) holds the
    // developer's tools or the front end's sources: `build` reads its lock
    // as a front end's on a Python base, and so does init.
    if python_app
        && !runs_node
        && let Some(n) = &plan.node
        && !oxbuild_node::serves(&n.package)
    {
        let why = match n.package["scripts"]["build"].as_str() {
            Some(build) => format!("it builds the front end (`npm run build`: {build}) and serves nothing, and the app is a Python one: no [node] section; run `npm ci && npm run build` in CI before `oxbuild build`, so that its output is in the project"),
            None => "it serves nothing (no start script, no main) and the app is a Python one: no [node] section; if the image needs what its packages build, build that in CI before `oxbuild build`".to_string(),
        };
        plan.notes.push(Note::new("package.json", why));
        plan.node = None;
    }
    if let Some(n) = &plan.node {
        plan.sources.push(match &n.lock {
            Some(lock) => format!("package.json and {lock}"),
            None => "package.json".to_string(),
        });
        if !n.scripts.is_empty() {
            plan.notes.push(Note::new(
                format!("install scripts of {}", n.scripts.join(", ")),
                "oxbuild never runs them, so the build stops on them until [node] allow-install-scripts-missing names them: do that for packages whose scripts only check or print (esbuild, @nestjs/core), not for native addons that compile or download a .node file (bcrypt, sqlite3): use a version or an alternative with prebuilt binaries in optional packages, or pure JavaScript (bcryptjs)",
            ));
        }
    }

    // The command: the Dockerfile's, then the Procfile's, then conventions.
    if let Some((file, d)) = &docker
        && (d.entrypoint.is_some() || d.cmd.is_some())
    {
        plan.entrypoint = d.entrypoint.clone();
        plan.cmd = d.cmd.clone();
        let named = d.entrypoint.as_ref().is_some_and(|e| !e.is_empty());
        plan.entry_from = match (named, &d.entrypoint) {
            (true, _) => format!("{file}'s ENTRYPOINT"),
            (false, Some(_)) => format!("{file}'s ENTRYPOINT [] and CMD"),
            (false, None) => format!("{file}'s CMD"),
        };
        // The programs of the Dockerfile's own venv run from the image's,
        // by name (its bin is on PATH).
        // A script the project has there itself (`/app/bin/start` of its
        // own `bin/`) stays.
        let workdir = d.workdir.clone().unwrap_or_else(|| "/".into());
        // So does one the Dockerfile copied there from the project (`ADD
        // httpbin.bash /opt/httpbin/bin`): it runs from where the app has it.
        let of_venv = |w: &str| {
            let own = within(&workdir, w).is_some_and(|r| !r.is_empty() && dir.join(r).is_file());
            let placed = d.source_of(w, &workdir).is_some_and(|s| !s.is_empty() && dir.join(&s).is_file());
            d.venv_program(w).filter(|_| !own && !placed)
        };
        let mut from_venv = false;
        for argv in [plan.entrypoint.as_mut(), plan.cmd.as_mut()].into_iter().flatten() {
            let was: Vec<bool> = argv.iter().map(|w| of_venv(w).is_some()).collect();
            for w in argv.iter_mut() {
                if let Some(name) = of_venv(w) {
                    *w = name;
                    from_venv = true;
                }
            }
            // `/venv/bin/python /venv/bin/app`: the script runs by itself.
            if was.len() > 1 && was[0] && was[1] && argv[0] == "python3" {
                argv.remove(0);
            }
        }
        if from_venv {
            plan.entry_from = format!("{}, the programs it installs run from the image's venv", plan.entry_from);
        }
        // An entrypoint script that ends by running its arguments, with no
        // CMD to give it any: the command comes from elsewhere (a compose
        // file's `command:`), and the image would run nothing. The Procfile
        // or the framework's convention gives it one.
        let fallback = procfile
            .as_ref()
            .map(|p| (p.web.clone(), "the Procfile's web line".to_string()))
            .or_else(|| convention.as_ref().map(|c| (c.argv.clone(), c.what.clone())));
        if d.cmd.is_none()
            && let Some(script) = d.entrypoint.as_ref().and_then(|e| argument_runner(dir, d, e))
            && let Some((argv, what)) = fallback
        {
            plan.notes.push(Note::new(
                format!("a CMD for {script}"),
                format!(
                    "{file}'s ENTRYPOINT {script} ends by running its arguments (`exec \"$@\"`) and {file} gives it none (a compose file's `command:` does, say); cmd comes from {what}: check it"
                ),
            ));
            plan.cmd = Some(argv);
        }
    } else if let Some(p) = &procfile {
        plan.sources.push("Procfile".into());
        for (kind, command) in &p.others {
            plan.notes.push(Note::new(
                format!("the Procfile's {kind} process ({command})"),
                "an image runs one process: run it from the same image with another command (a CI step or a Kubernetes Job before rollout, a second Deployment for workers)",
            ));
        }
        plan.entrypoint = Some(p.web.clone());
        plan.entry_from = "the Procfile's web line".into();
        plan.env.insert("PORT".into(), p.port.to_string());
    } else if let Some(c) = &convention {
        plan.sources.push(c.what.clone());
        plan.entrypoint = Some(c.argv.clone());
        plan.entry_from = c.what.clone();
    } else {
        // The rest of what was found is still worth writing down: the file
        // gets a commented entrypoint to fill in.
        plan.notes
            .push(Note::new("how the app starts", format!("{NO_COMMAND}; set [image] entrypoint (see the README)")));
    }
    // `poetry run X` and the like: the image has no such tool, and the
    // venv's bin is on PATH, so X runs as it is.
    let mut runners = Vec::new();
    for argv in [plan.entrypoint.as_mut(), plan.cmd.as_mut()].into_iter().flatten() {
        runners.extend(drop_runners(argv));
        // `python` is a name the python:3 images add and Debian's or
        // Alpine's python3 packages do not, and an image without Python
        // dependencies has no venv to provide it; every base has python3.
        if let Some(first) = argv.first_mut()
            && first == "python"
        {
            *first = "python3".into();
        }
    }
    runners.sort();
    runners.dedup();
    if !runners.is_empty() {
        plan.notes.push(Note::new(
            format!("{} in the command", runners.join(", ")),
            "the image has no such tool: oxbuild installs the lock into its venv, whose bin is on PATH, so the command runs the program itself",
        ));
    }
    // Paths the command names that a COPY put under another name: oxbuild
    // copies the app as it is laid out, so the command names the source.
    if let Some((file, d)) = &docker {
        let workdir = d.workdir.clone().unwrap_or_else(|| "/".into());
        let app_root = d.workdir.clone().unwrap_or_else(|| plan.workdir.clone());
        plan.root = d.workdir.as_deref().and_then(|w| app_folder(dir, d, w));
        // A source in the project as the app layer has it: inside `[app] root`.
        let in_app = |src: String| match &plan.root {
            Some(root) => src.strip_prefix(&format!("{root}/")).map(str::to_string).unwrap_or(src),
            None => src,
        };
        let mut mapped = false;
        plan.health = d.health.clone().map(|h| (h, false));
        let health = plan.health.as_mut().and_then(|(h, _)| h.cmd.as_mut());
        for argv in [plan.entrypoint.as_mut(), plan.cmd.as_mut(), health].into_iter().flatten() {
            // A script the Dockerfile copied onto PATH (`COPY entry.sh
            // /usr/local/bin/`) or anywhere else (`COPY entry.sh /entry.sh`):
            // oxbuild keeps it where the app has it.
            if let Some(program) = argv.first_mut() {
                let at = d
                    .program_from(program, &workdir)
                    .filter(|s| !s.is_empty() && dir.join(s).is_file())
                    .map(|src| format!("{}/{}", app_root.trim_end_matches('/'), in_app(src)));
                // `./boot.sh` in the workdir is where the app has it already;
                // a bare name is looked up on PATH, where it is not.
                let now = if program.starts_with('/') {
                    Some(program.clone())
                } else if program.contains('/') {
                    Some(format!("{}/{}", workdir.trim_end_matches('/'), program.trim_start_matches("./")))
                } else {
                    None
                };
                if let Some(at) = at.filter(|at| now.as_ref() != Some(at)) {
                    *program = at;
                    mapped = true;
                }
            }
            for arg in argv.iter_mut().skip(1) {
                if arg.starts_with('-') || arg.contains("://") || arg.contains('=') {
                    continue;
                }
                let rel = within(&workdir, arg).filter(|r| !r.is_empty()).unwrap_or(arg);
                if rel.starts_with('/') || dir.join(rel).exists() {
                    continue;
                }
                if let Some(src) = d.source_of(arg, &workdir).map(&in_app).filter(|s| s != rel && !s.is_empty()) {
                    *arg = if arg.starts_with('/') { format!("{}/{src}", workdir.trim_end_matches('/')) } else { src };
                    mapped = true;
                }
            }
        }
        if mapped {
            plan.entry_from =
                format!("{}, with the paths {file}'s COPY renamed mapped back to the project's", plan.entry_from);
        }
    }
    // `npm start` or `npm run x`: the image needs no npm to run what the script runs.
    if let Some(n) = &plan.node {
        let command: Vec<String> = plan.entrypoint.iter().chain(plan.cmd.iter()).flatten().cloned().collect();
        match oxbuild_node::resolve_script(&n.package, &command) {
            Some(Ok(argv)) => {
                plan.entry_from = format!("{}, through its package.json script", plan.entry_from);
                if plan.entrypoint.is_some() {
                    plan.entrypoint = Some(argv);
                    plan.cmd = None;
                } else {
                    plan.cmd = Some(argv);
                }
            }
            Some(Err(script)) => plan.notes.push(Note::new(
                format!("the command `{}` runs the script `{script}`", command.join(" ")),
                "the image runs no package manager (the Node layer installs the lock without npm): set [image] entrypoint to the `node ...` command that starts the app",
            )),
            None => {
                // `sh -c "npm run migrate && npm start"`: a shell line that needs npm.
                let managers = ["npm", "npx", "yarn", "pnpm"];
                let shell_line = command.last().filter(|_| command.len() >= 3 && command[1] == "-c");
                if let Some(line) = shell_line.filter(|l| l.split_whitespace().any(|w| managers.contains(&w))) {
                    plan.notes.push(Note::new(
                        format!("the command `{line}` runs a package manager"),
                        "the image has no npm (the Node layer installs the lock without it): run what its scripts run with node directly, and migrations as a step of their own (a CI step or a Kubernetes Job)",
                    ));
                }
            }
        }
    }
    let command: Vec<String> = plan.entrypoint.iter().chain(plan.cmd.iter()).flatten().cloned().collect();
    let node_command = command.first().is_some_and(|c| c == "node");

    // The base: asked for, else the Dockerfile's.
    plan.base = match (&options.base, &docker) {
        (Some(b), _) => Some((b.clone(), "--base / OXBUILD_IMAGE_BASE".into())),
        (None, Some((file, d))) => d.base.clone().map(|b| (b, format!("{file}'s FROM"))),
        (None, None) => None,
    };
    // The Python the project asks for, when the base is another image: the
    // build installs for the base's own Python, which may be older.
    if options.base.is_some() && options.base != docker.as_ref().and_then(|(_, d)| d.base.clone()) {
        let from = docker.as_ref().and_then(|(file, d)| {
            let tag = d
                .base
                .as_deref()?
                .strip_prefix("python:")
                .or_else(|| d.base.as_deref()?.split_once("/python:").map(|(_, t)| t))?;
            let version: String = tag.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
            version.contains('.').then(|| (version.trim_end_matches('.').to_string(), format!("{file}'s FROM")))
        });
        // `.python-version` (pyenv, uv), else Heroku's `runtime.txt` (`python-3.12.0`).
        let pinned = [".python-version", "runtime.txt"].iter().find_map(|name| {
            std::fs::read_to_string(dir.join(name))
                .ok()
                .and_then(|t| t.lines().next().map(|l| l.trim().trim_start_matches("python-").to_string()))
                .filter(|v| v.starts_with(|c: char| c.is_ascii_digit()))
                .map(|v| (v, name.to_string()))
        });
        // A base whose name says it has that Python (`python:3.11-slim`,
        // `python-3.11-….oci.tar`) needs no check.
        let named_by_base = |version: &str| {
            let minor: String = version.split('.').take(2).collect::<Vec<_>>().join(".");
            options.base.as_deref().is_some_and(|base| {
                base.match_indices(&minor).any(|(at, _)| {
                    let before = base[..at].chars().next_back();
                    let after = base[at + minor.len()..].chars().next();
                    matches!(before, Some(':' | '-' | 'n')) && !after.is_some_and(|c| c.is_ascii_digit())
                })
            })
        };
        if let Some((version, source)) = pinned.or(from).filter(|(v, _)| !named_by_base(v)) {
            plan.notes.push(Note::new(
                format!("Python {version} ({source})"),
                "oxbuild installs for the base's own Python, and [image] base is another image: check that it has that Python, or that the app and its lock fit the one it has (build says which it is)",
            ));
        }
    }

    if let Some((file, d)) = &docker {
        if let Some(w) = &d.workdir {
            plan.workdir = w.clone();
        }
        match &d.user {
            Some((name, uid)) if name == "root" || *uid == Some(0) => {
                plan.user.2 = Some(format!("{file} runs as root; oxbuild images never do"));
            }
            Some((name, uid)) => {
                if !name.is_empty() {
                    plan.user.0 = name.clone();
                }
                plan.user.1 = *uid;
                plan.user.2 = Some(format!("from {file}'s USER"));
            }
            None => plan.user.2 = Some(format!("{file} sets no USER; oxbuild images never run as root")),
        }
        let mut dropped_env: Vec<(&str, Vec<String>)> = Vec::new();
        for (k, v) in &d.env {
            // A PYTHONPATH of the app's own directories still holds in the
            // image (console scripts such as `celery` need it to import the
            // app); one of the Dockerfile's own layout does not.
            if k == "PYTHONPATH"
                && let Some(path) = app_python_path(v, &plan.workdir)
            {
                plan.env.insert(k.clone(), path);
                continue;
            }
            // libuv's own settings (Node's thread pool) share uv's prefix.
            let libuv = ["UV_THREADPOOL_SIZE", "UV_USE_IO_URING"].contains(&k.as_str());
            if ENV_NOT_CARRIED.contains(&k.as_str())
                || k.starts_with("PIP_")
                || k.starts_with("POETRY_")
                || (k.starts_with("UV_") && !libuv)
            {
                let why = match k.as_str() {
                    "PYTHONPATH" => {
                        "it points outside the workdir, at the Dockerfile's own layout; oxbuild installs the dependencies into its venv and puts the app in [image] workdir; set [image] env PYTHONPATH to the workdir (or a folder of it) if a console script must import the app"
                    }
                    "LANG" | "LC_ALL" => {
                        "the locale must exist in the base image (the Dockerfile may have installed it); set [image] env if the base has it"
                    }
                    "HOME" => "oxbuild gives the image's user a home of its own",
                    k if k.starts_with("PIP_") || k.starts_with("POETRY_") || k.starts_with("UV_") => {
                        "it configures an installer the Dockerfile runs; oxbuild installs the lock itself, and compiles bytecode as [python] compile-bytecode says"
                    }
                    _ => {
                        "it configures the Dockerfile's own tools or layout; oxbuild puts its venv's bin and node_modules/.bin on PATH itself"
                    }
                };
                // One note per reason, naming every variable it covers.
                match dropped_env.iter_mut().find(|(w, _)| *w == why) {
                    Some((_, names)) => names.push(k.clone()),
                    None => dropped_env.push((why, vec![k.clone()])),
                }
            } else {
                plan.env.insert(k.clone(), v.clone());
            }
        }
        for (why, names) in dropped_env {
            plan.notes.push(Note::new(format!("ENV {} in {file}", names.join(", ")), why));
        }
        plan.ports = (d.ports.clone(), false);
        // Inside the workdir the app's own files are the user's already.
        let inside = |p: &str| within(&plan.workdir, p).is_some();
        // The user's home is theirs already, and the workdir's parents are
        // made with it (`mkdir -p /home/app` before `WORKDIR /home/app/web`).
        let home = format!("/home/{}", plan.user.0);
        let above = |p: &str| plan.workdir.starts_with(&format!("{}/", p.trim_end_matches('/')));
        plan.dirs = d.dirs.iter().filter(|p| !inside(p) && **p != home && !above(p)).cloned().collect();
        // What the Dockerfile copies from the context; all of it for `COPY . .`.
        if !d.copies.is_empty() && !d.copies.iter().any(|c| c.trim_end_matches('/') == "." || c == "./") {
            let mut include: Vec<String> = Vec::new();
            let mut absent: Vec<String> = Vec::new();
            let copies =
                d.copies.iter().flat_map(|c| expand_copy(dir, c.trim_start_matches("./").trim_end_matches('/')));
            for c in copies {
                // One the project lacks stays in the list, as in the
                // Dockerfile: the build says so until a step makes it.
                let c = in_project(dir, &c).unwrap_or_else(|| {
                    absent.push(c.clone());
                    c
                });
                if !include.contains(&c) {
                    include.push(c);
                }
            }
            if !absent.is_empty() {
                plan.notes.push(Note::new(
                    format!("COPY of {} in {file}", absent.join(", ")),
                    "not in the project (made by an earlier build step?): [app] include names it as the Dockerfile does, so `oxbuild build` says it is missing until a step before it (in CI) makes it",
                ));
            }
            // With `[app] root`, what it copies from there (all of it for
            // the folder itself); what else it copies is the dependencies'
            // files, read at the project's root, or named in a note.
            plan.include = match &plan.root {
                None => Some(include),
                Some(root) => {
                    let inside: Vec<String> =
                        include.iter().filter_map(|i| within(root, i)).map(str::to_string).collect();
                    Some(inside).filter(|i| !i.iter().any(String::is_empty))
                }
            };
        }
        if let Some(root) = &plan.root {
            // Files from outside the root the Dockerfile puts in the workdir,
            // but for the dependencies' own (read at the project's root).
            let workdir = plan.workdir.trim_end_matches('/');
            let left: Vec<String> = d
                .placed()
                .iter()
                .filter(|(_, dest, _)| within(workdir, dest).is_some())
                .filter_map(|(src, _, _)| in_project(dir, src.trim_start_matches("./").trim_end_matches('/')))
                .filter(|rel| within(root, rel).is_none())
                .filter(|rel| {
                    let name = rel.rsplit('/').next().unwrap_or(rel);
                    let requirements = name.starts_with("requirements") && name.ends_with(".txt");
                    !(MANIFESTS.contains(&name) || requirements)
                })
                .collect();
            if !left.is_empty() {
                plan.notes.push(Note::new(
                    format!("COPY of {} in {file}", left.join(", ")),
                    format!("outside [app] root ({root}), so not in the app layer: if the app reads it, move it into {root}/"),
                ));
            }
        }
        if let Some(note) = moved(dir, file, d, &plan.workdir, plan.root.as_deref()) {
            plan.notes.push(note);
        }
        if let Some((lock, _)) = &d.lock
            && let Some(lock) = in_project(dir, lock).filter(|l| dir.join(l).is_file())
        {
            // A requirements file exported from a lock at the root
            // (`uv export --group prod -o requirements/prod.txt`): that lock,
            // with the export's groups, which holds what an export cannot
            // (a git source, the hashes of every file).
            let mut extras = d.extras.clone();
            let (lock, groups, from) = match oxbuild_config::exported_by(&dir.join(&lock)) {
                Some((source, command)) if dir.join(source).is_file() => {
                    let shown: Vec<String> = command
                        .split_whitespace()
                        .map(|w| if w.contains("://") { oxbuild_python::source::redact(w) } else { w.to_string() })
                        .collect();
                    plan.notes.push(Note::new(
                        format!("{lock}, which {file} installs"),
                        format!(
                            "it was exported from {source} (`{}`), so oxbuild reads {source} itself",
                            shown.join(" ")
                        ),
                    ));
                    for e in dockerfile::install_extras(&command, &[]) {
                        if !extras.contains(&e) {
                            extras.push(e);
                        }
                    }
                    (source.to_string(), dockerfile::install_groups(&command), lock.clone())
                }
                _ => (lock, d.groups.clone(), file.clone()),
            };
            if !groups.is_empty() && !lock.ends_with(".txt") {
                plan.groups = Some((groups, from.clone()));
            }
            let extras = every_extra(dir, extras);
            if !extras.is_empty() {
                plan.extras = Some((extras, from));
            }
            plan.python = Some((if lock.ends_with(".txt") { "requirements" } else { "lock" }, lock));
        }
        // Groups and extras of an install step that names no lock the
        // project has (`pip install --group docker`, or a builder stage's
        // `uv sync --extra x` in a folder of its own): the project's still,
        // for the lock oxbuild finds or writes.
        if plan.groups.is_none()
            && !d.groups.is_empty()
            && plan.python.as_ref().is_none_or(|(k, _)| *k != "requirements")
        {
            plan.groups = Some((d.groups.clone(), file.clone()));
        }
        let extras = every_extra(dir, d.extras.clone());
        if plan.extras.is_none() && !extras.is_empty() {
            plan.extras = Some((extras, file.clone()));
        }
        // A package that the Dockerfile does not install (its dependencies
        // only): the image runs it from its files, as oxbuild then does. A
        // setup.py alone counts too: build would install no such project,
        // and say so at every build until told it is meant.
        if let Some((false, step)) = &d.installs_project
            && (oxbuild_python::sdist::is_package(dir) || dir.join("setup.py").is_file())
        {
            plan.install_project = Some(format!("{file} installs the dependencies only (`{step}`)"));
        }
        plan.notes.extend(d.notes.iter().cloned());
    }
    if plan.python.is_none() {
        let mut found = LOCKS.iter().filter(|(_, f)| dir.join(f).is_file()).map(|(k, f)| (*k, f.to_string()));
        plan.python = found.next();
        // A requirements.txt that is no lock (loose pins, a leftover) gives
        // way to a lock beside it (uv.lock, poetry.lock, ...).
        if let Some(lock) = found.find(|(k, _)| *k == "lock")
            && let Some(why) = needs_lock(dir, &plan)
        {
            plan.notes.push(Note::new(
                "requirements.txt".to_string(),
                format!("{why}, and {} beside it is a lock: [python] lock names that", lock.1),
            ));
            plan.python = Some(lock);
        }
    }
    // A member of a uv workspace (`backend/` of a monorepo) has no lock of
    // its own: the workspace's, above it, holds its part.
    if plan.python.is_none()
        && let Some((_, member)) = oxbuild_python::lockfile::workspace_lock(dir)
    {
        let up = "../".repeat(member.components().count());
        plan.python = Some(("lock", format!("{up}uv.lock")));
        // A Dockerfile built from the workspace's root (`COPY uv.lock`, which
        // only the root has, then `COPY . /workspace`): the member is at
        // its folder under the WORKDIR, where its command looks for it.
        if let Some((file, d)) = &docker
            && let Some(workdir) = d.workdir.as_deref().map(|w| w.trim_end_matches('/'))
            && d.copies.iter().any(|c| c.trim_start_matches("./").trim_end_matches('/') == "uv.lock")
            && !dir.join("uv.lock").exists()
            && d.placed().iter().any(|(src, dest, _)| {
                matches!(src.trim_start_matches("./").trim_end_matches('/'), "" | ".")
                    && dest.trim_end_matches('/') == workdir
            })
        {
            plan.workdir = format!("{workdir}/{}", member.display());
            plan.notes.push(Note::new(
                format!("the build context of {file}"),
                format!(
                    "it copies the uv workspace's root ({up}) to {workdir}, so this member is at {}: [image] workdir is that folder",
                    plan.workdir
                ),
            ));
        }
    }
    // Packages the Dockerfile installs by name, which the lock lacks.
    if let Some((file, d)) = &docker {
        let lock =
            plan.python.as_ref().and_then(|(_, f)| std::fs::read_to_string(dir.join(f)).ok()).unwrap_or_default();
        let lock = lock.to_ascii_lowercase().replace('_', "-");
        let locked = |p: &str| {
            let p = p.split('[').next().unwrap_or(p).to_ascii_lowercase().replace('_', "-");
            lock.lines().any(|l| {
                let l = l.trim_start().trim_start_matches("name = \"");
                l.starts_with(&format!("{p}=")) || l.starts_with(&format!("{p}\"")) || l.starts_with(&format!("{p} "))
            })
        };
        let missing: Vec<&str> = d.unlocked.iter().filter(|p| !locked(p)).map(String::as_str).collect();
        if !missing.is_empty() {
            let them = if missing.len() == 1 { "it" } else { "them" };
            plan.notes.push(Note::new(
                format!("{file} installs {} outside the lock", missing.join(", ")),
                format!("add {them} to the project's dependencies and lock again, or the image will lack {them}"),
            ));
        }
        // `uvicorn[standard]` where the lock has uvicorn: what the extra
        // adds (uvloop, httptools) may well be missing, and nothing fails.
        let extras: Vec<&str> =
            d.unlocked.iter().filter(|p| p.contains('[') && locked(p)).map(String::as_str).collect();
        if !extras.is_empty() {
            plan.notes.push(Note::new(
                format!("{file} installs {} with extras", extras.join(", ")),
                "the lock has the package, but maybe not what its extras add: name it with its extras in the project's dependencies and lock again",
            ));
        }
    }
    // A Django site whose wsgi.py leaves its settings to the deployment
    // starts with none: gunicorn reads no manage.py. Its default there is
    // the best guess, often the development one.
    if !plan.env.contains_key("DJANGO_SETTINGS_MODULE")
        && let Some((default, modules)) = framework::django_settings_unset(dir)
    {
        let have = match modules.as_slice() {
            [] => String::new(),
            m => format!(" (the project has {})", m.join(", ")),
        };
        let why = match default {
            Some(module) => {
                plan.env.insert("DJANGO_SETTINGS_MODULE".into(), module.clone());
                format!(
                    "wsgi.py does not set it and gunicorn does not read manage.py, so env sets manage.py's default, {module}: make it the production settings{have}"
                )
            }
            None => format!(
                "neither manage.py nor wsgi.py sets it, so Django would start with no settings: set the production one in [image] env{have}"
            ),
        };
        plan.notes.push(Note::new("DJANGO_SETTINGS_MODULE", why));
    }
    // A command that reads $PORT, as platforms such as Heroku and Cloud Run
    // set it, gets it from the image's env: the port the Dockerfile exposes,
    // else the command's own default (`${PORT:-5000}`), else the framework's.
    let reads_port = command.iter().any(|w| w.contains("$PORT") || w.contains("${PORT"));
    if reads_port && !plan.env.contains_key("PORT") {
        let default = command.iter().find_map(|w| port_default(w));
        let port = plan.ports.0.first().copied().or(default).unwrap_or(framework::PORT);
        plan.env.insert("PORT".into(), port.to_string());
        plan.notes.push(Note::new(
            "$PORT in the command",
            format!("a platform would set it; [image] env sets PORT = \"{port}\" so the image runs anywhere, and a runtime can still override it"),
        ));
    }
    if plan.ports.0.is_empty() {
        plan.ports = match port_in(&command, dir) {
            Some(p) => (vec![p], false),
            None if plan.env.contains_key("PORT") => (vec![plan.env["PORT"].parse().unwrap_or(framework::PORT)], false),
            None if plan.node.is_some()
                && (node_command || convention.as_ref().is_some_and(|c| c.what.starts_with("package.json"))) =>
            {
                framework::node_port(dir).map(|p| (vec![p], false)).unwrap_or((vec![NODE_PORT], true))
            }
            None if convention.is_some() || procfile.is_some() => (vec![framework::PORT], true),
            None => (Vec::new(), true),
        };
    }
    if plan.health.is_none()
        && let Some(port) = plan.ports.0.first()
    {
        let streamlit = command.first().is_some_and(|p| p == "streamlit");
        let (path, guess) = match framework::health_route(dir) {
            Some((p, routed)) => (p, routed),
            // Streamlit serves its own health endpoint.
            None if streamlit => ("/_stcore/health".to_string(), false),
            None => (framework::fallback_route(dir), true),
        };
        plan.health = Some((
            Health { http: Some(format!("http://127.0.0.1:{port}{path}")), ..Default::default() },
            guess || plan.ports.1,
        ));
    }
    // A server the command runs must be in the lock, or in what init is
    // about to lock (requirements.in, pyproject.toml's dependencies).
    let locked = match &plan.python {
        // A requirements file with what it includes (`-r requirements/prod.txt`).
        Some(("requirements", file)) => {
            oxbuild_python::input::read(&dir.join(file)).ok().map(|i| (file.clone(), i.requirements.join("\n")))
        }
        Some((_, lock)) => Some((lock.clone(), std::fs::read_to_string(dir.join(lock)).unwrap_or_default())),
        None if dir.join("requirements.in").is_file() => oxbuild_python::input::read(&dir.join("requirements.in"))
            .ok()
            .map(|i| ("requirements.in".to_string(), i.requirements.join("\n"))),
        None => pyproject_dependencies(dir).map(|d| ("pyproject.toml's dependencies".to_string(), d.join("\n"))),
    };
    // pytest among the production packages runs in the test variant as it is.
    // (A lock with groups may hold it in a dev group only: `pytest_group` reads those.)
    let grouped = matches!(&plan.python, Some(("lock", _)));
    plan.pytest_locked = !grouped
        && locked.as_ref().is_some_and(|(_, text)| {
            text.lines().any(|l| {
                let l = l.trim();
                l.eq_ignore_ascii_case("name = \"pytest\"")
                    || oxbuild_python::name::parse_requirement(l)
                        .is_ok_and(|r| oxbuild_python::name::normalize(r.name.as_ref()) == "pytest")
            })
        });
    if let Some(c) = &convention
        && let Some(server) = c.server
        && command.first().map(String::as_str) == Some(server)
        && let Some((lock, text)) = locked
        && !text.to_ascii_lowercase().contains(server)
    {
        plan.notes.push(Note::new(
            format!("{server} is not in {lock}"),
            format!("the command runs {server}: add it to the project's dependencies and lock again"),
        ));
    }
    // A script the command runs that activates a virtualenv of its own
    // (made by a RUN that is not carried over) stops there in the image.
    if plan.python.is_some() {
        plan.notes.extend(activations(dir, &plan.workdir, &command));
    }
    plan.pytest_group = match &plan.python {
        Some((_, f)) if f.ends_with("uv.lock") => oxbuild_python::lockfile::uv_groups(&dir.join(f), dir)
            .ok()
            .and_then(|groups| groups.into_iter().find(|(_, names)| names.iter().any(|n| n == "pytest")))
            .map(|(group, _)| group),
        _ => None,
    };
    plan.tests = dir.join("tests").is_dir();
    plan.pyproject = dir.join("pyproject.toml").is_file();
    // Beside a requirements file that is the lock, a pinned one of the
    // developer's (pip-compile's requirements-dev.txt): the test variant's.
    if matches!(&plan.python, Some(("requirements", _))) && plan.test_lock.is_none() {
        for name in ["requirements-dev.txt", "requirements-test.txt", "dev-requirements.txt", "test-requirements.txt"] {
            let Ok(read) = oxbuild_python::input::read(&dir.join(name)) else { continue };
            if !read.requirements.is_empty()
                && oxbuild_python::requirements::unpinned(&read.requirements.join("\n")).is_empty()
            {
                let pytest = read.requirements.iter().any(|r| {
                    oxbuild_python::name::parse_requirement(r)
                        .is_ok_and(|r| oxbuild_python::name::normalize(r.name.as_ref()) == "pytest")
                });
                plan.test_lock = Some((name.to_string(), pytest));
                break;
            }
        }
    }
    Ok(plan)
}

/// pyproject.toml's `[project] dependencies`, when it has any.
fn pyproject_dependencies(dir: &Path) -> Option<Vec<String>> {
    oxbuild_python::input::project_dependencies(&oxbuild_python::input::pyproject(dir).ok()??)
}

/// Why the project needs `oxbuild lock` before it can build, if it does:
/// its requirements are top-level or ranges, not a lock; or they pin what
/// they name but are no compiled lock, and so may well lack the
/// dependencies of what they name (locking a complete one changes nothing:
/// its pins hold).
pub fn needs_lock(dir: &Path, plan: &Plan) -> Option<String> {
    match &plan.python {
        Some(("requirements", file)) => {
            let text = std::fs::read_to_string(dir.join(file)).ok()?;
            // With what it includes: `-r requirements/prod.txt` alone pins nothing itself.
            let read = oxbuild_python::input::read(&dir.join(file)).ok();
            let lines = read.as_ref().map(|i| i.requirements.join("\n")).unwrap_or_else(|| text.clone());
            let loose = oxbuild_python::requirements::unpinned(&lines);
            let mut named = std::collections::BTreeSet::new();
            let loose: Vec<String> = loose.into_iter().filter(|r| named.insert(r.clone())).collect();
            if !loose.is_empty() {
                return Some(format!("{file} does not pin {}", loose.join(", ")));
            }
            // Nothing to install (an empty file, or only options) is nothing to lock.
            if read.is_some_and(|i| i.requirements.is_empty()) {
                return None;
            }
            let compiled = oxbuild_python::requirements::compiled(&text);
            (!compiled).then(|| format!("{file} pins what it names but is no compiled lock (no hashes, no `# via`), so it may lack their dependencies"))
        }
        Some(_) => None,
        None if dir.join("requirements.in").is_file() => {
            Some("requirements.in lists top-level requirements only".into())
        }
        None => pyproject_dependencies(dir).map(|_| "pyproject.toml has dependencies but no lock".to_string()),
    }
}

fn toml_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| toml_string(i)).collect();
    format!("[{}]", quoted.join(", "))
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

impl Plan {
    /// The oxbuild.toml text, commented.
    pub fn render(&self) -> String {
        let mut t = String::from("# oxbuild.toml, written by `oxbuild init`");
        if !self.sources.is_empty() {
            t.push_str(&format!(" from {}", self.sources.join(", then ")));
        }
        t.push_str(". Reference: the README's configuration section.\n\n[image]\n");
        match &self.base {
            Some((b, from)) => t.push_str(&format!("base = {}   # from {from}\n", toml_string(b))),
            None => t.push_str("base = \"registry.example.com/python:3.12-slim\"   # set your Python base image\n"),
        }
        t.push_str("# repository = \"registry.example.com/team/app\"   # where --push and publish go\n");
        t.push_str(&format!("workdir = {}\n", toml_string(&self.workdir)));
        let note = self.user.2.as_ref().map(|n| format!("   # {n}")).unwrap_or_default();
        t.push_str(&format!("user = {}{note}\n", toml_string(&self.user.0)));
        if let Some(uid) = self.user.1 {
            t.push_str(&format!("uid = {uid}\n"));
        }
        if let Some(e) = &self.entrypoint {
            t.push_str(&format!("entrypoint = {}   # from {}\n", toml_list(e), self.entry_from));
        }
        if self.entrypoint.is_none() && self.cmd.is_none() {
            let example = if self.node.is_some() && self.python.is_none() {
                "[\"node\", \"server.js\"]"
            } else {
                "[\"gunicorn\", \"--bind\", \"0.0.0.0:8000\", \"app:app\"]"
            };
            t.push_str(&format!("# entrypoint = {example}   # set how the app starts: init found no command\n"));
        }
        if let Some(c) = &self.cmd {
            t.push_str(&format!(
                "cmd = {}{}\n",
                toml_list(c),
                if self.entrypoint.is_none() { format!("   # from {}", self.entry_from) } else { String::new() }
            ));
        }
        let mut env = self.env.clone();
        // Python's output unbuffered, so logs show at once; a Node app has no Python.
        let node_only = self.node.is_some() && self.python.is_none() && !self.pyproject;
        if !node_only {
            env.entry("PYTHONUNBUFFERED".into()).or_insert_with(|| "1".into());
        }
        if !env.is_empty() {
            let pairs: Vec<String> = env.iter().map(|(k, v)| format!("{} = {}", toml_key(k), toml_string(v))).collect();
            t.push_str(&format!("env = {{ {} }}\n", pairs.join(", ")));
        }
        match &self.ports {
            (p, _) if p.is_empty() => t.push_str("# ports = [8000]\n"),
            (p, guess) => {
                let list: Vec<String> = p.iter().map(u16::to_string).collect();
                let note = if *guess { "   # a guess: the usual port of such an app; check it" } else { "" };
                t.push_str(&format!("ports = [{}]{note}\n", list.join(", ")));
            }
        }
        if !self.dirs.is_empty() {
            let list: Vec<String> = self.dirs.iter().map(|d| toml_string(d)).collect();
            t.push_str(&format!(
                "dirs = [{}]   # from the Dockerfile's RUN mkdir and VOLUME: empty, the user's, for what the app writes\n",
                list.join(", ")
            ));
        }
        t.push_str("\n[app]\n");
        if let Some(root) = &self.root {
            t.push_str(&format!(
                "root = {}   # the Dockerfile lays this folder out as its workdir\n",
                toml_string(root)
            ));
        }
        match &self.include {
            Some(i) => t.push_str(&format!(
                "include = {}   # what the Dockerfile copies; .dockerignore applies too\n",
                toml_list(i)
            )),
            None => t.push_str("# include = [\"...\"]   # default: the whole directory, less .dockerignore\n"),
        }
        if let Some((key, file)) = &self.python {
            // The lock of the uv workspace the project is a member of.
            let workspace = if file.starts_with("../") && file.ends_with("/uv.lock") {
                "   # the uv workspace's: build installs what this member needs, as `uv sync --package` does"
            } else {
                ""
            };
            t.push_str(&format!("\n[python]\n{key} = {}{workspace}\n", toml_string(file)));
            if let Some(input) = &self.lock_input {
                t.push_str(&format!("lock-input = {}   # what `oxbuild lock` resolves\n", toml_string(input)));
            }
            if let Some((groups, from)) = &self.groups {
                let list = groups.iter().map(|g| toml_string(g)).collect::<Vec<_>>().join(", ");
                t.push_str(&format!("groups = [{list}]   # {from} installs them with production's\n"));
            }
            if let Some((extras, from)) = &self.extras {
                let list = extras.iter().map(|e| toml_string(e)).collect::<Vec<_>>().join(", ");
                t.push_str(&format!("extras = [{list}]   # the project's extras {from} installs\n"));
            }
            if let Some(why) = &self.install_project {
                t.push_str(&format!("install-project = false   # {why}: the app runs from its files\n"));
            }
            if let Some((test_lock, _)) = &self.test_lock {
                t.push_str(&format!(
                    "test-requirements = {}   # the test variant's, over production's (pins production has are skipped)\n",
                    toml_string(test_lock)
                ));
            } else if let (Some(group), true) = (&self.pytest_group, self.tests) {
                let groups =
                    if group == "dev" { String::new() } else { format!("\ntest-groups = [{}]", toml_string(group)) };
                t.push_str(&format!(
                    "test-requirements = {}   # its `{group}` group, in the test variant only{groups}\n",
                    toml_string(file)
                ));
            }
        } else if self.pyproject {
            t.push_str("\n# [python]\n# no lock found: `oxbuild lock`, `uv lock` or `uv pip compile pyproject.toml -o requirements.txt --generate-hashes`, then name it here\n");
        }
        if let Some(n) = &self.node {
            match &n.lock {
                Some(lock) => t.push_str(&format!(
                    "\n[node]                          # {lock}: installed by oxbuild, no npm runs\n"
                )),
                None => {
                    t.push_str("\n[node]                          # no package-lock.json yet: see the notes below\n")
                }
            }
            if !n.scripts.is_empty() {
                let names: Vec<String> = n.scripts.iter().map(|s| toml_string(s)).collect();
                t.push_str(&format!(
                    "# allow-install-scripts-missing = [{}]   # their install scripts never run: uncomment only for those whose scripts build nothing the app loads (see the notes)\n",
                    names.join(", ")
                ));
            }
            if let Some(test) = &n.test {
                t.push_str(&format!(
                    "\n[assess]                        # run by `oxbuild assess` in the test variant (dev dependencies included)\ngates = [{{ name = \"test\", run = {} }}]   # package.json's scripts.test\n",
                    toml_string(test)
                ));
            }
        }
        let pytest = self.pytest_locked
            || self.pytest_group.is_some()
            || self.test_lock.as_ref().is_some_and(|(_, pytest)| *pytest);
        match (self.tests && self.node.is_none(), pytest) {
            (true, true) => t.push_str(
                "\n[assess]                        # run by `oxbuild assess` in the test variant\n\
                 gates = [{ name = \"pytest\", run = \"python -m pytest -q tests\" }]\n",
            ),
            (true, false) => t.push_str(
                "\n# [assess]                      # run by `oxbuild assess` in the test variant\n\
                 # gates = [{ name = \"pytest\", run = \"python -m pytest -q tests\" }]\n\
                 # (add pytest to [python] test-requirements)\n",
            ),
            _ => {}
        }
        match &self.health {
            Some((h, guess)) => {
                t.push_str("\n[healthcheck]                   # polled by `oxbuild health`");
                t.push_str(if *guess { "; a guess: check the path\n" } else { "\n" });
                if let Some(u) = &h.http {
                    t.push_str(&format!("http = {}\n", toml_string(u)));
                } else if let Some(c) = &h.cmd {
                    t.push_str(&format!("cmd = {}\n", toml_list(c)));
                }
                for (k, v) in [("interval", &h.interval), ("timeout", &h.timeout), ("start-period", &h.start_period)] {
                    if let Some(v) = v {
                        t.push_str(&format!("{k} = {}\n", toml_string(v)));
                    }
                }
                if let Some(r) = h.retries {
                    t.push_str(&format!("retries = {r}\n"));
                }
            }
            None => t.push_str(
                "\n# [healthcheck]                 # polled by `oxbuild health`\n# http = \"http://127.0.0.1:8000/health\"\n",
            ),
        }
        if !self.notes.is_empty() {
            t.push_str("\n# Not carried over:\n");
            for n in &self.notes {
                // A why of several lines (an error `oxbuild lock` gave)
                // stays a comment on every line.
                let why = n.why.trim_end().replace('\n', "\n#   ");
                t.push_str(&format!("# - {}: {why}\n", n.what.replace('\n', " ")));
            }
        }
        t
    }

    /// What `--json` reports.
    pub fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "sources": self.sources,
            "entrypoint": self.entrypoint,
            "cmd": self.cmd,
            "ports": self.ports.0,
            "ports_guessed": self.ports.1,
            "healthcheck": self.health.as_ref().map(|(h, guess)| serde_json::json!({"http": h.http, "cmd": h.cmd, "guessed": guess})),
            "python": self.python.as_ref().map(|(k, f)| serde_json::json!({k.to_string(): f})),
            "not_carried_over": self.notes.iter().map(|n| format!("{}: {}", n.what, n.why)).collect::<Vec<_>>(),
        })
    }
}

/// A TOML key, quoted when it must be.
fn toml_key(k: &str) -> String {
    if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        k.to_string()
    } else {
        toml_string(k)
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use std::path::Path;

    /// Writes `files` (path, text) under `root`, making their folders; a
    /// path ending in `/` is a folder of its own.
    pub(crate) fn write(root: &Path, files: &[(&str, &str)]) {
        for (p, text) in files {
            let path = root.join(p);
            if p.ends_with('/') {
                std::fs::create_dir_all(path).unwrap();
                continue;
            }
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
    }

    /// A project directory holding `files`, as [`write`] puts them.
    pub(crate) fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), files);
        dir
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{project, write};
    use super::*;

    #[test]
    fn a_probe_url_is_carried_only_when_the_probe_can_send_it_as_it_is() {
        for ok in ["http://127.0.0.1:8000/health", "http://127.0.0.1/health?full=1", "http://[::1]:8000/"] {
            assert!(plain_url(ok), "{ok}");
        }
        for no in [
            "http://127.0.0.1:$(cat port)/health",
            "http://127.0.0.1:`cat port`/",
            "http://127.0.0.1:99999/",
            "http://:8000/",
            "https://127.0.0.1:8443/health",
            "http://127.0.0.1:${PORT}/health",
            // A shell would expand `$top` in a command line.
            "http://127.0.0.1/health?$top=1",
        ] {
            assert!(!plain_url(no), "{no}");
        }
    }

    #[test]
    fn packages_installed_beside_the_lock_are_named_unless_the_lock_has_them() {
        let dir = project(&[
            (
                "Dockerfile",
                "FROM python:3.12-slim\nCOPY requirements.txt .\nRUN pip install -r requirements.txt\nRUN pip install gunicorn PyMySQL\nCOPY . .\nCMD [\"./boot.sh\"]\n",
            ),
            ("requirements.txt", "flask==3.1.0\npymysql==1.1.1\n"),
        ]);
        let plan = plan(dir.path(), &Options::default()).unwrap();
        let notes: Vec<&str> = plan.notes.iter().map(|n| n.what.as_str()).collect();
        assert_eq!(notes, ["Dockerfile installs gunicorn outside the lock"]);
        assert!(
            plan.render().contains("# - Dockerfile installs gunicorn outside the lock: add it to the project's dependencies and lock again, or the image will lack it"),
            "{}",
            plan.render()
        );
    }

    #[test]
    fn a_setup_py_project_whose_dockerfile_installs_requirements_only_is_not_installed() {
        let dir = project(&[
            (
                "Dockerfile",
                "FROM python:3.11\nWORKDIR /app\nCOPY requirements.txt .\nRUN pip install -r requirements.txt\nCOPY . .\nCMD [\"python3\", \"./serve.py\"]\n",
            ),
            ("setup.py", "from setuptools import setup\nsetup(name='serve')\n"),
            ("requirements.txt", "flask==3.1.0\n"),
            ("serve.py", "print('hi')\n"),
        ]);
        let text = plan(dir.path(), &Options::default()).unwrap().render();
        assert!(text.contains("install-project = false   # Dockerfile installs the dependencies only (`"), "{text}");
        // With no setup.py there is no project to speak of.
        std::fs::remove_file(dir.path().join("setup.py")).unwrap();
        let text = plan(dir.path(), &Options::default()).unwrap().render();
        assert!(!text.contains("install-project"), "{text}");
    }

    #[test]
    fn a_package_whose_dockerfile_installs_its_dependencies_only_is_not_installed() {
        let dir = project(&[
            (
                "Dockerfile",
                "FROM python:3.11\nWORKDIR /app\nCOPY poetry.lock pyproject.toml ./\nRUN pip install poetry==1.1 && poetry config virtualenvs.in-project true && poetry install --no-dev\nCOPY . ./\nCMD [\"uvicorn\", \"--host=0.0.0.0\", \"app.main:app\"]\n",
            ),
            (
                "pyproject.toml",
                "[tool.poetry]\nname = \"app\"\nversion = \"0.1.0\"\n\n[build-system]\nrequires = [\"poetry>=1.0\"]\nbuild-backend = \"poetry.masonry.api\"\n",
            ),
            ("poetry.lock", "# locked\n"),
            ("app/__init__.py", ""),
            ("app/main.py", "from fastapi import FastAPI\napp = FastAPI()\n"),
        ]);
        let plan = plan(dir.path(), &Options::default()).unwrap();
        let text = plan.render();
        assert!(text.contains("install-project = false   # Dockerfile installs the dependencies only (`"), "{text}");
        // Installed after its files are copied: the default stays.
        write(
            dir.path(),
            &[(
                "Dockerfile",
                "FROM python:3.11\nWORKDIR /app\nCOPY . ./\nRUN pip install poetry && poetry install --no-dev\nCMD [\"uvicorn\", \"app.main:app\"]\n",
            )],
        );
        let text = super::plan(dir.path(), &Options::default()).unwrap().render();
        assert!(!text.contains("install-project"), "{text}");
        // The groups its install step adds are production's too.
        write(
            dir.path(),
            &[(
                "Dockerfile",
                "FROM python:3.11\nWORKDIR /app\nCOPY . ./\nRUN poetry install --with prod\nCMD [\"uvicorn\", \"app.main:app\"]\n",
            )],
        );
        let text = super::plan(dir.path(), &Options::default()).unwrap().render();
        assert!(text.contains("\ngroups = [\"prod\"]   # Dockerfile installs them with production's\n"), "{text}");
    }

    #[test]
    fn pytest_among_the_production_requirements_makes_a_gate() {
        let dir = project(&[
            ("requirements.txt", "flask==3.1.0\ngunicorn==23.0.0\npytest==8.3.0\n"),
            ("app.py", "from flask import Flask\napp = Flask(__name__)\n"),
            ("tests/test_app.py", "def test_ok():\n    pass\n"),
        ]);
        let text = plan(dir.path(), &Options::default()).unwrap().render();
        assert!(text.contains("\n[assess]") && text.contains("python -m pytest -q tests"), "{text}");
        assert!(!text.contains("add pytest to"), "{text}");
    }

    #[test]
    fn variables_dropped_for_one_reason_make_one_note() {
        let dir = project(&[
            (
                "Dockerfile",
                "FROM python:3.11\nENV PIP_NO_CACHE_DIR=1 POETRY_VERSION=1.8 POETRY_VIRTUALENVS_CREATE=false LC_ALL=C.UTF-8 APP=1\nCOPY . .\nCMD [\"python3\", \"web.py\"]\n",
            ),
            ("web.py", ""),
        ]);
        let plan = plan(dir.path(), &Options::default()).unwrap();
        let env_notes: Vec<&str> =
            plan.notes.iter().map(|n| n.what.as_str()).filter(|w| w.starts_with("ENV ")).collect();
        assert_eq!(
            env_notes,
            [
                "ENV LC_ALL in Dockerfile",
                "ENV PIP_NO_CACHE_DIR, POETRY_VERSION, POETRY_VIRTUALENVS_CREATE in Dockerfile"
            ]
        );
        assert_eq!(plan.env.get("APP").map(String::as_str), Some("1"));
    }

    #[test]
    fn the_users_home_and_the_workdirs_parents_are_no_dirs_to_make() {
        let dir = project(&[
            (
                "Dockerfile",
                "FROM python:3.11\nRUN mkdir -p /home/app && mkdir /data /srv/cache\nENV APP_HOME=/home/app/web\nWORKDIR $APP_HOME\nRUN addgroup --system app && adduser --system --group app\nCOPY . .\nUSER app\nCMD [\"python3\", \"web.py\"]\n",
            ),
            ("web.py", ""),
        ]);
        let plan = plan(dir.path(), &Options::default()).unwrap();
        assert_eq!(plan.workdir, "/home/app/web");
        assert_eq!(plan.dirs, ["/data", "/srv/cache"]);
    }

    /// shynet: `COPY shynet .` into the WORKDIR puts that folder's contents
    /// there, as `[app] root` does; the command is then where it was.
    #[test]
    fn a_folder_copied_into_the_workdir_is_the_app_root() {
        let dir = project(&[
            (
                "Dockerfile",
                "FROM python:3.11\nWORKDIR /usr/src/shynet\nCOPY assets/GeoLite2.tar.gz GeoLite2.tar.gz\nCOPY poetry.lock pyproject.toml ./\nCOPY package.json ../\nRUN pip install poetry && poetry install\nCOPY shynet .\nCMD [\"./entrypoint.sh\"]\n",
            ),
            ("poetry.lock", ""),
            ("pyproject.toml", "[tool.poetry]\nname = \"shynet\"\n"),
            ("package.json", "{}"),
            ("shynet/entrypoint.sh", "#!/bin/sh\n./startup_checks.sh\n"),
            ("shynet/startup_checks.sh", ""),
            ("shynet/manage.py", ""),
            ("assets/GeoLite2.tar.gz", ""),
        ]);
        let plan = plan(dir.path(), &Options::default()).unwrap();
        assert_eq!(plan.root.as_deref(), Some("shynet"));
        assert_eq!(plan.include, None);
        assert_eq!(plan.cmd, Some(vec!["./entrypoint.sh".to_string()]));
        assert!(!plan.notes.iter().any(|n| n.what.starts_with("where ")), "{:?}", plan.notes);
        let outside: Vec<&str> =
            plan.notes.iter().filter(|n| n.why.starts_with("outside")).map(|n| n.what.as_str()).collect();
        assert_eq!(outside, ["COPY of assets/GeoLite2.tar.gz in Dockerfile"], "the manifests are read where they are");
        let text = plan.render();
        assert!(
            text.contains("\n[app]\nroot = \"shynet\"   # the Dockerfile lays this folder out as its workdir\n"),
            "{text}"
        );
        let cfg = oxbuild_config::Config::parse(Path::new("oxbuild.toml"), &text).unwrap();
        assert_eq!(cfg.app.root_rel(), "shynet");
        // Two folders into the workdir, or the whole project: no root.
        write(
            dir.path(),
            &[("Dockerfile", "FROM python:3.11\nWORKDIR /srv\nCOPY shynet .\nCOPY . .\nCMD [\"./entrypoint.sh\"]\n")],
        );
        assert_eq!(super::plan(dir.path(), &Options::default()).unwrap().root, None);
        // benc-uk/python-demoapp: files and folders of src/, each where
        // src/ has it: src/ is the workdir, with what was copied from it.
        write(
            dir.path(),
            &[
                ("src/app/__init__.py", ""),
                ("src/run.py", ""),
                ("src/requirements.txt", "flask==3.1.0\n"),
                (
                    "Dockerfile",
                    "FROM python:3.11\nARG srcDir=src\nWORKDIR /app\nCOPY $srcDir/requirements.txt .\nRUN pip install -r requirements.txt\nCOPY $srcDir/run.py .\nCOPY $srcDir/app ./app\nCMD [\"gunicorn\", \"run:app\"]\n",
                ),
            ],
        );
        let plan = super::plan(dir.path(), &Options::default()).unwrap();
        assert_eq!(plan.root.as_deref(), Some("src"));
        assert_eq!(plan.include, Some(vec!["requirements.txt".into(), "run.py".into(), "app".into()]));
        // A folder laid out beside the workdir, in the same tree (a monorepo's
        // commons/ next to backend/): the app is more than one folder, no root.
        write(
            dir.path(),
            &[
                ("commons/x.py", ""),
                (
                    "Dockerfile",
                    "FROM python:3.11\nWORKDIR /usr/src/app\nCOPY src/app src/app\nCOPY commons commons\nWORKDIR /usr/src/app/src\nCMD [\"gunicorn\", \"app:app\"]\n",
                ),
            ],
        );
        assert_eq!(super::plan(dir.path(), &Options::default()).unwrap().root, None);
    }

    /// `COPY package*.json ./`, the most common line of a Node Dockerfile:
    /// the files it matches, not a path no project has.
    #[test]
    fn a_copy_with_wildcards_names_the_files_it_matches() {
        let dir = project(&[
            (
                "Dockerfile",
                "FROM node:18\nWORKDIR /app\nCOPY package*.json ./\nRUN npm ci --omit=dev\nCOPY src ./src\nCOPY conf/*.yml conf/\nCMD [\"node\", \"src/index.js\"]\n",
            ),
            ("package.json", "{\"name\": \"x\", \"dependencies\": {}}"),
            ("package-lock.json", "{\"lockfileVersion\": 3, \"packages\": {}}"),
            ("src/index.js", ""),
            ("conf/a.yml", ""),
            ("conf/b.yml", ""),
            ("conf/c.json", ""),
        ]);
        let plan = plan(dir.path(), &Options::default()).unwrap();
        let include: Vec<&str> = plan.include.iter().flatten().map(String::as_str).collect();
        assert_eq!(include, ["package-lock.json", "package.json", "src", "conf/a.yml", "conf/b.yml"]);
        assert!(!plan.notes.iter().any(|n| n.what.starts_with("COPY of")), "{:?}", plan.notes);
        assert_eq!(expand_copy(dir.path(), "*.toml"), ["*.toml"], "nothing matched: as written");
    }

    #[test]
    fn a_uv_workspace_member_names_the_workspaces_lock() {
        let lock = "version = 1\n\n[manifest]\nmembers = [\"api\"]\n\n[[package]]\nname = \"api\"\nversion = \"0.1.0\"\nsource = { editable = \"services/api\" }\ndependencies = [{ name = \"flask\" }]\n\n[package.dev-dependencies]\ntest = [{ name = \"pytest\" }]\n";
        let dir = project(&[
            ("pyproject.toml", "[tool.uv.workspace]\nmembers = [\"services/*\"]\n"),
            ("uv.lock", lock),
            (
                "services/api/pyproject.toml",
                "[project]\nname = \"api\"\nversion = \"0.1.0\"\ndependencies = [\"flask\"]\n",
            ),
            ("services/api/app.py", "from flask import Flask\napp = Flask(__name__)\n"),
            ("services/api/tests/test_app.py", ""),
            ("services/web/app.py", ""),
        ]);
        let plan = plan(&dir.path().join("services/api"), &Options::default()).unwrap();
        assert_eq!(plan.python, Some(("lock", "../../uv.lock".to_string())));
        let text = plan.render();
        assert!(
            text.contains("\nlock = \"../../uv.lock\"   # the uv workspace's: build installs what this member needs"),
            "{text}"
        );
        assert!(text.contains("\ntest-requirements = \"../../uv.lock\"   # its `test` group"), "{text}");
        // A Dockerfile of the member built from the workspace's root.
        write(
            dir.path(),
            &[(
                "services/api/Dockerfile",
                "FROM python:3.11\nWORKDIR /workspace\nCOPY pyproject.toml uv.lock /workspace/\nRUN uv sync --frozen --no-install-workspace --package=api\nCOPY . /workspace\nCMD [\"python3\", \"/workspace/services/api/app.py\"]\n",
            )],
        );
        let plan = super::plan(&dir.path().join("services/api"), &Options::default()).unwrap();
        assert_eq!(plan.workdir, "/workspace/services/api");
        assert_eq!(plan.cmd, Some(vec!["python3".to_string(), "/workspace/services/api/app.py".to_string()]));
        // A folder the workspace does not list gets no lock of it.
        let other = super::plan(&dir.path().join("services/web"), &Options::default()).unwrap();
        assert_eq!(other.python, None);
    }

    #[test]
    fn a_requirements_file_exported_from_a_lock_is_read_as_that_lock() {
        let dir = project(&[
            (
                "Dockerfile",
                "FROM python:3.12\nCOPY requirements/prod.txt /tmp/\nRUN pip install -r /tmp/prod.txt\nCOPY . .\nCMD [\"gunicorn\", \"site.wsgi\"]\n",
            ),
            (
                "requirements/prod.txt",
                "# This file was autogenerated by uv via the following command:\n#    uv export --frozen --group prod --extra s3 --no-dev --output-file=requirements/prod.txt\ndjango==5.2\n",
            ),
            ("uv.lock", "version = 1\n"),
        ]);
        let plan = plan(dir.path(), &Options::default()).unwrap();
        assert_eq!(plan.python, Some(("lock", "uv.lock".to_string())));
        let text = plan.render();
        assert!(text.contains("\ngroups = [\"prod\"]   # requirements/prod.txt installs them"), "{text}");
        assert!(text.contains("\nextras = [\"s3\"]   # the project's extras requirements/prod.txt installs"), "{text}");
        assert!(plan.notes.iter().any(|n| n.why.starts_with("it was exported from uv.lock")), "{:?}", plan.notes);
    }

    /// A loose requirements.txt beside a real lock is not taken for the lock;
    /// one that is a compiled lock still is.
    #[test]
    fn a_loose_requirements_file_gives_way_to_the_lock_beside_it() {
        let files = [
            ("app.py", "print(1)\n"),
            ("pyproject.toml", "[project]\nname = \"demo\"\nversion = \"0.1.0\"\ndependencies = [\"blinker>=1.9\"]\n"),
            ("requirements.txt", "blinker>=1.4\n"),
            ("uv.lock", "version = 1\n"),
        ];
        let dir = project(&files);
        let plan = plan(dir.path(), &Options::default()).unwrap();
        assert_eq!(plan.python, Some(("lock", "uv.lock".to_string())));
        let note = plan.notes.iter().find(|n| n.what == "requirements.txt").expect("a note on requirements.txt");
        assert!(note.why.contains("does not pin blinker") && note.why.contains("uv.lock beside it"), "{note:?}");
        assert_eq!(needs_lock(dir.path(), &plan), None, "nothing to lock");
        let pinned =
            "blinker==1.9.0 \\\n    --hash=sha256:ba0efaa9080b619ff2f3459d1d500c57bddea4a6b424b60a91141db6fd2f08bc\n";
        std::fs::write(dir.path().join("requirements.txt"), pinned).unwrap();
        let again = super::plan(dir.path(), &Options::default()).unwrap();
        assert_eq!(again.python, Some(("requirements", "requirements.txt".to_string())));
    }

    /// libuv's settings are the app's to keep; uv's (the installer's) are dropped.
    #[test]
    fn libuv_settings_are_kept_and_uv_installer_settings_dropped() {
        let dir = project(&[
            (
                "Dockerfile",
                "FROM node:18\nWORKDIR /app\nENV UV_THREADPOOL_SIZE=64 UV_COMPILE_BYTECODE=1\nCOPY . .\nCMD [\"node\", \"server.js\"]\n",
            ),
            ("package.json", "{\"name\": \"a\", \"version\": \"1.0.0\"}\n"),
            ("package-lock.json", "{\"lockfileVersion\": 3, \"packages\": {}}\n"),
            ("server.js", "1\n"),
        ]);
        let plan = plan(dir.path(), &Options::default()).unwrap();
        assert_eq!(plan.env.get("UV_THREADPOOL_SIZE").map(String::as_str), Some("64"), "{:?}", plan.env);
        assert!(!plan.env.contains_key("UV_COMPILE_BYTECODE"), "{:?}", plan.env);
    }

    #[test]
    fn a_dockerfile_built_from_its_own_folder_sends_init_there() {
        let dir = project(&[
            (
                "project/Dockerfile",
                "FROM python:3.11\nWORKDIR /usr/src/app\nCOPY ./requirements.txt .\nRUN pip install -r requirements.txt\nCOPY . .\nCMD [\"uvicorn\", \"app.main:app\"]\n",
            ),
            ("project/requirements.txt", "fastapi==0.115.0\n"),
            ("project/app/main.py", "from fastapi import FastAPI\napp = FastAPI()\n"),
            ("README.md", ""),
        ]);
        let e = plan(dir.path(), &Options::default()).unwrap_err();
        assert!(e.contains("project/Dockerfile copies ./requirements.txt, which are in project/ and not here"), "{e}");
        assert!(e.contains("run `oxbuild init ") && e.ends_with("/project`"), "{e}");
    }

    #[test]
    fn copies_from_the_folder_above_are_read_as_the_project_has_them() {
        let dir = project(&[
            (
                "backend/Dockerfile",
                "FROM python:3.11\nWORKDIR /app\nCOPY ./backend/requirements.txt /app/\nRUN pip install -r requirements.txt\nCOPY ./backend/app /app/app\nCOPY ./backend/alembic.ini ./generated /app/\nCMD [\"uvicorn\", \"app.main:app\"]\n",
            ),
            ("backend/requirements.txt", "fastapi==0.115.0\n"),
            ("backend/alembic.ini", ""),
            ("backend/app/main.py", "from fastapi import FastAPI\napp = FastAPI()\n"),
        ]);
        let plan = plan(&dir.path().join("backend"), &Options::default()).unwrap();
        assert_eq!(
            plan.include,
            Some(vec!["requirements.txt".into(), "app".into(), "alembic.ini".into(), "generated".into()])
        );
        assert_eq!(plan.python, Some(("requirements", "requirements.txt".to_string())));
        let note = plan.notes.iter().find(|n| n.what.starts_with("COPY of generated")).expect("a note");
        assert!(note.why.contains("names it as the Dockerfile does"), "{}", note.why);
    }

    #[test]
    fn a_server_missing_from_what_init_will_lock_gets_a_note() {
        let dir = project(&[
            ("pyproject.toml", "[project]\nname = \"flaskr\"\nversion = \"1.0.0\"\ndependencies = [\"flask\"]\n"),
            (
                "flaskr/__init__.py",
                "from flask import Flask\n\ndef create_app():\n    app = Flask(__name__)\n    return app\n",
            ),
        ]);
        let plan = plan(dir.path(), &Options::default()).unwrap();
        assert_eq!(plan.entrypoint.as_ref().and_then(|e| e.first()).map(String::as_str), Some("gunicorn"));
        let notes: Vec<&str> = plan.notes.iter().map(|n| n.what.as_str()).collect();
        assert!(notes.contains(&"gunicorn is not in pyproject.toml's dependencies"), "{notes:?}");
        // A requirements file's includes count (flask-realworld's `-r requirements/prod.txt`).
        let reqs = project(&[
            ("requirements.txt", "-r requirements/prod.txt\n"),
            ("requirements/prod.txt", "flask==3.1.0\ngunicorn==23.0.0\n"),
            ("app.py", "from flask import Flask\napp = Flask(__name__)\n"),
        ]);
        let plan = super::plan(reqs.path(), &Options::default()).unwrap();
        assert!(!plan.notes.iter().any(|n| n.what.starts_with("gunicorn is not in")), "{:?}", plan.notes);
        // Listed: no note.
        write(
            dir.path(),
            &[(
                "pyproject.toml",
                "[project]\nname = \"flaskr\"\nversion = \"1.0.0\"\ndependencies = [\"flask\", \"gunicorn>=22\"]\n",
            )],
        );
        let plan = super::plan(dir.path(), &Options::default()).unwrap();
        assert!(!plan.notes.iter().any(|n| n.what.starts_with("gunicorn is not in")), "{:?}", plan.notes);
    }

    #[test]
    fn a_script_that_activates_the_dockerfiles_own_venv_gets_a_note() {
        let dir = project(&[
            (
                "Dockerfile",
                "FROM python:3.11-slim\nWORKDIR /home/app\nCOPY requirements.txt .\nRUN python -m venv venv && venv/bin/pip install -r requirements.txt\nCOPY . .\nENTRYPOINT [\"./boot.sh\"]\n",
            ),
            ("requirements.txt", "flask==3.1.0\ngunicorn==23.0.0\n"),
            ("boot.sh", "#!/bin/bash\nsource venv/bin/activate\nflask db upgrade\nexec gunicorn -b :5000 app:app\n"),
        ]);
        let plan = plan(dir.path(), &Options::default()).unwrap();
        let note = plan.notes.iter().find(|n| n.what == "`source venv/bin/activate` in boot.sh");
        let note = note.unwrap_or_else(|| panic!("{:?}", plan.notes));
        assert!(
            note.why.contains("no virtualenv at venv/bin/activate") && note.why.contains("on PATH"),
            "{}",
            note.why
        );
        // A script that activates nothing gets no such note.
        write(dir.path(), &[("boot.sh", "#!/bin/bash\nexec gunicorn -b :5000 app:app\n")]);
        let plan = super::plan(dir.path(), &Options::default()).unwrap();
        assert!(!plan.notes.iter().any(|n| n.what.contains("activate")), "{:?}", plan.notes);
    }

    #[test]
    fn a_script_the_dockerfile_copied_out_of_the_app_is_run_where_the_app_has_it() {
        let dir = project(&[
            (
                "Dockerfile",
                "FROM python:3.12-slim\nWORKDIR /app\nCOPY requirements.txt .\nRUN pip install -r requirements.txt\nCOPY web.py /app/web.py\nCOPY docker-entrypoint.sh /docker-entrypoint.sh\nCOPY boot.sh /usr/local/bin/\nCOPY docker/status.py /app/\nHEALTHCHECK CMD ./status.py\nENV LC_ALL=en_US.UTF-8\nENTRYPOINT [\"/docker-entrypoint.sh\"]\nCMD [\"boot.sh\", \"/app/web.py\"]\n",
            ),
            ("requirements.txt", "flask==3.1.0\n"),
            ("web.py", ""),
            ("docker-entrypoint.sh", ""),
            ("boot.sh", ""),
            ("docker/status.py", ""),
        ]);
        let plan = plan(dir.path(), &Options::default()).unwrap();
        assert_eq!(plan.entrypoint, Some(vec!["/app/docker-entrypoint.sh".to_string()]));
        let notes: Vec<&str> = plan.notes.iter().map(|n| n.what.as_str()).collect();
        assert!(notes.contains(&"ENV LC_ALL in Dockerfile"), "{notes:?}");
        // The healthcheck's program too (`COPY docker/status.py /app/`).
        assert_eq!(plan.health.unwrap().0.cmd, Some(vec!["/app/docker/status.py".to_string()]));
        // A program on PATH maps too; a path already where the app has it stays.
        assert_eq!(plan.cmd, Some(vec!["/app/boot.sh".to_string(), "/app/web.py".to_string()]));
        assert!(plan.entry_from.contains("COPY renamed mapped back"), "{}", plan.entry_from);
    }

    #[test]
    fn the_only_dockerfile_in_a_folder_is_read_with_the_root_as_its_context() {
        let dir = project(&[
            (
                "docker/Dockerfile",
                "FROM python:3.12-slim\nWORKDIR /srv\nCOPY requirements.txt .\nRUN pip install -r requirements.txt\nCOPY . .\nUSER hc\nCMD [\"uwsgi\", \"docker/uwsgi.ini\"]\n",
            ),
            ("docker/uwsgi.ini", "[uwsgi]\n"),
            ("requirements.txt", "uwsgi==2.0.28\n"),
        ]);
        let plan = plan(dir.path(), &Options::default()).unwrap();
        assert_eq!(plan.sources[0], "docker/Dockerfile (built from the project's root)");
        assert_eq!(plan.cmd, Some(vec!["uwsgi".to_string(), "docker/uwsgi.ini".to_string()]));
        assert_eq!(plan.workdir, "/srv");
        // Two: neither is guessed at, and the note says so.
        write(
            dir.path(),
            &[
                ("deploy/Containerfile", "FROM python:3.12\nCMD [\"x\"]\n"),
                ("web.py", "from flask import Flask\napp = Flask(__name__)\n"),
            ],
        );
        let two = super::plan(dir.path(), &Options::default()).unwrap();
        let notes: Vec<&str> = two.notes.iter().map(|n| n.what.as_str()).collect();
        assert!(notes.contains(&"Dockerfiles: deploy/Containerfile, docker/Dockerfile"), "{notes:?}");
    }

    #[test]
    /// A Python app whose Dockerfile builds its front end in a stage of its
    /// own (bun, npm) and copies the output: the front end's package.json
    /// and sources are that stage's inputs, not a Node.js app to install nor
    /// files of the image, and the note says to build it first.
    fn a_front_end_built_in_a_stage_is_a_note_not_a_node_app() {
        let dir = project(&[
            ("backend/app/", ""),
            ("frontend/", ""),
            (
                "Dockerfile",
                "FROM oven/bun:1 AS frontend-build\nWORKDIR /app\nCOPY package.json bun.lock /app/\nCOPY ./frontend /app/frontend\nRUN cd frontend && bun install && bun run build\n\nFROM python:3.12\nENV UV_COMPILE_BYTECODE=1\nWORKDIR /app\nCOPY ./backend/app /app/backend/app\nCOPY --from=frontend-build /app/frontend/dist /app/backend/app/frontend\nCMD [\"fastapi\", \"run\"]\n",
            ),
            ("package.json", r#"{"dependencies": {"react": "19.0.0"}}"#),
        ]);
        let plan = plan(dir.path(), &Options::default()).unwrap();
        assert!(plan.node.is_none(), "no [node] section for a build stage's package.json");
        assert_eq!(plan.include.as_deref(), Some(["backend/app".to_string()].as_slice()));
        let note =
            plan.notes.iter().find(|n| n.what == "stage frontend-build in Dockerfile").expect("a note on the stage");
        assert!(note.why.contains("`bun run build`"), "{}", note.why);
        let env = plan.notes.iter().find(|n| n.what == "ENV UV_COMPILE_BYTECODE in Dockerfile").expect("a note");
        assert!(env.why.contains("compile-bytecode"), "{}", env.why);
        // The same package.json copied into the final stage is the app's.
        write(
            dir.path(),
            &[(
                "Dockerfile",
                "FROM node:20\nWORKDIR /app\nCOPY package.json package-lock.json ./\nRUN npm ci\nCOPY . .\nCMD [\"node\", \"server.js\"]\n",
            )],
        );
        assert!(super::plan(dir.path(), &Options::default()).unwrap().node.is_some());
    }

    #[test]
    /// Files the Dockerfile puts elsewhere under the workdir than the
    /// project has them are named, with where oxbuild puts them; files in
    /// the same place, and those copied outside the workdir, are not.
    fn files_the_dockerfile_moves_within_the_workdir_are_named() {
        let dir = project(&[
            ("backend/app/", ""),
            ("src/", ""),
            ("static/", ""),
            ("requirements.txt", "flask==3.1.0\n"),
            (
                "Dockerfile",
                "FROM python:3.12\nWORKDIR /app\nCOPY requirements.txt .\nRUN pip install -r requirements.txt\nCOPY ./backend/app /app/app\nCOPY src/ .\nCOPY static static/\nCOPY entry.sh /entry.sh\nCMD [\"python3\", \"main.py\"]\n",
            ),
        ]);
        let plan = plan(dir.path(), &Options::default()).unwrap();
        let note = plan.notes.iter().find(|n| n.what == "where Dockerfile puts the project's files").expect("a note");
        assert!(note.why.starts_with("it puts backend/app at /app/app, src at /app;"), "{}", note.why);
        assert!(note.why.contains("(/app/backend/app, /app/src)"), "{}", note.why);
        // With no WORKDIR the Dockerfile's files sit relative to `/` as
        // oxbuild's do relative to its workdir (miguelgrinberg/microblog).
        write(
            dir.path(),
            &[(
                "Dockerfile",
                "FROM python:slim\nCOPY requirements.txt requirements.txt\nRUN pip install -r requirements.txt\nCOPY src src\nCOPY static /static\nCOPY static/x.conf /etc/nginx/x.conf\nCOPY backend/app ./app\nENTRYPOINT [\"./boot.sh\"]\n",
            )],
        );
        let plan = super::plan(dir.path(), &Options::default()).unwrap();
        let note = plan.notes.iter().find(|n| n.what == "where Dockerfile puts the project's files").expect("a note");
        assert!(note.why.starts_with("it puts backend/app at /app;"), "{}", note.why);
        // Laid out as the image has it: no note.
        write(
            dir.path(),
            &[(
                "Dockerfile",
                "FROM python:3.12\nWORKDIR /app\nCOPY requirements.txt .\nCOPY backend/app backend/app\nCOPY static/ /app/static/\nCOPY entry.sh /app\nCMD [\"python3\", \"main.py\"]\n",
            )],
        );
        let plan = super::plan(dir.path(), &Options::default()).unwrap();
        assert!(!plan.notes.iter().any(|n| n.what.starts_with("where ")), "{:?}", plan.notes);
        // Built from the folder above (`-f backend/Dockerfile .`), read in
        // backend/: laid out as the image has it too.
        write(
            dir.path(),
            &[(
                "backend/Dockerfile",
                "FROM python:3.12\nWORKDIR /app/\nCOPY ./backend/app /app/backend/app\nWORKDIR /app/backend/\nCMD [\"python3\", \"-m\", \"app\"]\n",
            )],
        );
        let plan = super::plan(&dir.path().join("backend"), &Options::default()).unwrap();
        assert_eq!(plan.workdir, "/app/backend");
        assert!(!plan.notes.iter().any(|n| n.what.starts_with("where ")), "{:?}", plan.notes);
    }

    #[test]
    /// `ENTRYPOINT ["/app/entrypoint.sh"]` with no CMD, where the script
    /// waits for a database and then runs `exec "$@"`: the command came from
    /// a compose file, and the image would run nothing. The Procfile's web
    /// line becomes the cmd, with a note; a script that runs the app itself
    /// gets none.
    fn an_entrypoint_that_runs_its_arguments_gets_a_cmd() {
        let dir = project(&[
            (
                "Dockerfile",
                "FROM python:3.11\nWORKDIR /app\nCOPY requirements.txt .\nRUN pip install -r requirements.txt\nCOPY . .\nENTRYPOINT [\"/app/entrypoint.sh\"]\n",
            ),
            ("requirements.txt", "gunicorn==23.0.0\n"),
            ("Procfile", "web: gunicorn web:app\n"),
            ("entrypoint.sh", "#!/bin/sh\nuntil nc -z db 5432; do sleep 1; done\nexec \"$@\"\n"),
        ]);
        let plan = plan(dir.path(), &Options::default()).unwrap();
        assert_eq!(plan.entrypoint, Some(vec!["/app/entrypoint.sh".to_string()]));
        assert_eq!(plan.cmd, Some(vec!["gunicorn".to_string(), "web:app".to_string()]));
        let note = plan.notes.iter().find(|n| n.what == "a CMD for /app/entrypoint.sh").expect("a note");
        assert!(note.why.contains("the Procfile's web line"), "{}", note.why);
        write(dir.path(), &[("entrypoint.sh", "#!/bin/sh\nexec gunicorn web:app\n")]);
        assert_eq!(super::plan(dir.path(), &Options::default()).unwrap().cmd, None);
    }

    #[test]
    /// Beside a Dockerfile, a Dockerfile.prod is the one read (with a note),
    /// unless --dockerfile names another; a name that is not there is an
    /// error that says which flag gave it.
    fn a_production_dockerfile_is_read_first_and_dockerfile_names_one() {
        let dir = project(&[
            ("Dockerfile", "FROM python:3.11\nCMD [\"python3\", \"dev.py\"]\n"),
            ("Dockerfile.prod", "FROM python:3.11\nCMD [\"python3\", \"prod.py\"]\n"),
        ]);
        let prod = plan(dir.path(), &Options::default()).unwrap();
        assert_eq!(prod.sources[0], "Dockerfile.prod");
        assert_eq!(prod.cmd, Some(vec!["python3".to_string(), "prod.py".to_string()]));
        assert!(prod.notes.iter().any(|n| n.what == "Dockerfile beside Dockerfile.prod"), "{:?}", prod.notes);
        let named = Options { dockerfile: Some("Dockerfile".into()), ..Options::default() };
        let dev = super::plan(dir.path(), &named).unwrap();
        assert_eq!(dev.cmd, Some(vec!["python3".to_string(), "dev.py".to_string()]));
        assert!(dev.notes.iter().all(|n| !n.what.contains("beside")), "{:?}", dev.notes);
        let missing = Options { dockerfile: Some("deploy/Dockerfile".into()), ..Options::default() };
        let e = super::plan(dir.path(), &missing).unwrap_err();
        assert!(e.contains("deploy/Dockerfile: no such Dockerfile (--dockerfile)"), "{e}");
    }

    #[test]
    /// wagtail/bakerydemo: a Django app whose package.json holds eslint and
    /// stylelint as devDependencies. No [node] section, and a note says why.
    fn a_python_apps_package_json_of_dev_tools_makes_no_node_section() {
        let dir = project(&[
            (
                "Dockerfile",
                "FROM python:3.12-slim\nWORKDIR /code\nADD . /code/\nCMD [\"uwsgi\", \"/code/etc/uwsgi.ini\"]\n",
            ),
            ("requirements.txt", "uwsgi==2.0.28\n"),
            ("package.json", r#"{"private": true, "devDependencies": {"eslint": "9.0.0"}}"#),
            ("package-lock.json", r#"{"lockfileVersion": 3, "packages": {"": {}}}"#),
        ]);
        let plan = plan(dir.path(), &Options::default()).unwrap();
        assert!(plan.node.is_none());
        assert!(
            plan.notes.iter().any(|n| n.what == "package.json" && n.why.contains("devDependencies alone")),
            "{:?}",
            plan.notes
        );
        // One with no dependencies of either kind (searxng's scripts only) is
        // said to have none.
        write(dir.path(), &[("package.json", r#"{"private": true, "scripts": {"lint": "eslint ."}}"#)]);
        let plan = super::plan(dir.path(), &Options::default()).unwrap();
        let note = plan.notes.iter().find(|n| n.what == "package.json").expect("a note");
        assert!(note.why.starts_with("it has no dependencies and"), "{}", note.why);
        // Production dependencies that nothing serves (datasette's editor
        // sources): no [node] either, as `build` leaves such a lock out on a
        // Python base.
        write(dir.path(), &[("package.json", r#"{"dependencies": {"codemirror": "6.0.1"}}"#)]);
        let plan = super::plan(dir.path(), &Options::default()).unwrap();
        assert!(plan.node.is_none());
        assert!(
            plan.notes.iter().any(|n| n.why.contains("serves nothing (no start script, no main)")),
            "{:?}",
            plan.notes
        );
        // With a start script it is an app of its own.
        write(
            dir.path(),
            &[("package.json", r#"{"dependencies": {"express": "4.21.0"}, "scripts": {"start": "node server.js"}}"#)],
        );
        assert!(super::plan(dir.path(), &Options::default()).unwrap().node.is_some());
    }

    #[test]
    /// testdrivenio/fastapi-tdd-docker runs `--port $PORT` as Heroku sets
    /// it: the image sets PORT itself (the exposed port, else the default),
    /// and the ports and healthcheck follow. A PYTHONPATH of the workdir
    /// holds in the image; one elsewhere is a note.
    fn a_command_that_reads_port_gets_it_and_an_app_pythonpath_is_kept() {
        let dir = project(&[
            (
                "Dockerfile",
                "FROM python:3.12\nWORKDIR /app\nENV PYTHONPATH=/app:$PYTHONPATH\nCOPY . .\nCMD uvicorn main:app --host 0.0.0.0 --port $PORT\n",
            ),
            ("main.py", "from fastapi import FastAPI\napp = FastAPI()\n"),
        ]);
        let plan = plan(dir.path(), &Options::default()).unwrap();
        assert_eq!(plan.env.get("PORT").map(String::as_str), Some("8000"));
        assert_eq!(plan.ports.0, [8000]);
        assert!(plan.health.as_ref().unwrap().0.http.as_deref().unwrap().starts_with("http://127.0.0.1:8000/"));
        assert!(plan.notes.iter().any(|n| n.what == "$PORT in the command"), "{:?}", plan.notes);
        assert_eq!(plan.env.get("PYTHONPATH").map(String::as_str), Some("/app"));
        write(
            dir.path(),
            &[(
                "Dockerfile",
                "FROM python:3.12\nWORKDIR /app\nENV PYTHONPATH=/opt/lib:/app\nEXPOSE 9000\nCOPY . .\nCMD gunicorn -b 0.0.0.0:${PORT} main:app\n",
            )],
        );
        let plan = super::plan(dir.path(), &Options::default()).unwrap();
        assert_eq!(plan.env.get("PORT").map(String::as_str), Some("9000"));
        assert!(!plan.env.contains_key("PYTHONPATH"));
        assert!(plan.notes.iter().any(|n| n.what == "ENV PYTHONPATH in Dockerfile"), "{:?}", plan.notes);
    }

    #[test]
    /// microblog pins the packages it names but not their dependencies:
    /// init locks it. A compiled lock (hashes, `# via`) is left as it is.
    fn requirements_that_pin_only_what_they_name_are_locked() {
        let dir = project(&[("requirements.txt", "flask==3.1.0\ngunicorn==23.0.0\n")]);
        let plan = Plan { python: Some(("requirements", "requirements.txt".into())), ..Plan::default() };
        let why = needs_lock(dir.path(), &plan).unwrap();
        assert!(why.contains("pins what it names but is no compiled lock"), "{why}");
        write(dir.path(), &[("requirements.txt", "flask==3.1.0\n    # via -r requirements.in\n")]);
        assert_eq!(needs_lock(dir.path(), &plan), None);
        write(dir.path(), &[("requirements.txt", "# no dependencies\n")]);
        assert_eq!(needs_lock(dir.path(), &plan), None);
        write(dir.path(), &[("requirements.txt", "-r base.txt\n"), ("base.txt", "flask==3.1.0\n")]);
        assert!(needs_lock(dir.path(), &plan).is_some(), "an include of pins is locked too");
        write(dir.path(), &[("requirements.txt", "flask>=3\n")]);
        assert_eq!(needs_lock(dir.path(), &plan).as_deref(), Some("requirements.txt does not pin flask>=3"));
        // What an include leaves unpinned is named too.
        write(dir.path(), &[("requirements.txt", "-r base.txt\n"), ("base.txt", "flask\ngunicorn==23.0.0\n")]);
        assert_eq!(needs_lock(dir.path(), &plan).as_deref(), Some("requirements.txt does not pin flask"));
    }

    #[test]
    /// healthchecks builds wheels of uwsgi beside its requirements, and an
    /// app installs uvicorn[standard] over a lock with plain uvicorn.
    fn packages_a_builder_wheels_and_extras_the_lock_may_lack_are_named() {
        let dir = project(&[
            (
                "Dockerfile",
                "FROM python:3.12 AS builder\nCOPY requirements.txt .\nRUN pip wheel --wheel-dir /wheels -r requirements.txt uwsgi\nFROM python:3.12\nCOPY --from=builder /wheels /wheels\nRUN pip install /wheels/* \"uvicorn[standard]==0.26.0\"\nCOPY . .\nCMD [\"uwsgi\", \"app.ini\"]\n",
            ),
            ("requirements.txt", "uvicorn==0.26.0\n    # via -r requirements.in\n"),
        ]);
        let plan = plan(dir.path(), &Options::default()).unwrap();
        let notes: Vec<&str> = plan.notes.iter().map(|n| n.what.as_str()).collect();
        assert!(notes.contains(&"Dockerfile installs uwsgi outside the lock"), "{notes:?}");
        assert!(notes.contains(&"Dockerfile installs uvicorn[standard] with extras"), "{notes:?}");
    }

    #[test]
    /// sissbruecker/linkding: a Django app whose package.json builds its
    /// JavaScript and CSS with rollup and postcss, listed as dependencies,
    /// and serves nothing. No [node] section, and a note says to build
    /// first; a macOS-only optional package's scripts are no concern.
    fn a_python_apps_front_end_build_makes_no_node_section() {
        let dir = project(&[
            ("manage.py", "import os\n"),
            ("uv.lock", "version = 1\n"),
            ("package.json", r#"{"scripts": {"build": "rollup -c"}, "dependencies": {"rollup": "4.0.0"}}"#),
            (
                "package-lock.json",
                r#"{"lockfileVersion": 3, "packages": {"": {}, "node_modules/fsevents": {"version": "2.3.3", "optional": true, "os": ["darwin"], "hasInstallScript": true, "integrity": "sha512-AA=="}}}"#,
            ),
            ("web/__init__.py", ""),
            ("web/wsgi.py", "application = get_wsgi_application()\n"),
        ]);
        let plan = plan(dir.path(), &Options::default()).unwrap();
        assert!(plan.node.is_none());
        let note = plan.notes.iter().find(|n| n.what == "package.json").expect("a note");
        assert!(note.why.contains("`npm run build`: rollup -c"), "{}", note.why);
        // With a start script it is the app's, and fsevents's scripts are not named.
        write(
            dir.path(),
            &[(
                "package.json",
                r#"{"scripts": {"build": "rollup -c", "start": "node server.js"}, "dependencies": {"rollup": "4.0.0"}}"#,
            )],
        );
        let plan = super::plan(dir.path(), &Options::default()).unwrap();
        assert!(plan.node.as_ref().unwrap().scripts.is_empty(), "{:?}", plan.node.unwrap().scripts);
    }

    #[test]
    /// `CMD ["python", ...]` from a python:3 image: Debian's python3 has no
    /// `python`, and an app without dependencies gets no venv to add one.
    fn python_is_python3_in_the_command() {
        let dir = project(&[("Dockerfile", "FROM python:3.12\nCOPY . .\nCMD [\"python\", \"main.py\"]\n")]);
        assert_eq!(
            plan(dir.path(), &Options::default()).unwrap().cmd,
            Some(vec!["python3".to_string(), "main.py".to_string()])
        );
    }

    #[test]
    /// heroku/python-getting-started: a note that quotes a lock error of
    /// several lines wrote them as TOML, and the file did not load.
    fn a_note_of_several_lines_stays_a_comment() {
        let dir = project(&[("Procfile", "web: gunicorn app:app\n"), ("app.py", "")]);
        let mut plan = plan(dir.path(), &Options::default()).unwrap();
        plan.notes.push(Note::new(
            "requirements.txt, and `oxbuild lock` failed",
            "no versions satisfy:\n  - django 6.0 (Requires-Python >=3.12)\n",
        ));
        let text = plan.render();
        text.parse::<toml::Table>().unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(text.contains("\n#     - django 6.0 (Requires-Python >=3.12)\n"), "{text}");
    }

    #[test]
    /// heroku/python-getting-started asks for Python 3.14 in
    /// .python-version; with another base, a note says to check it.
    fn the_python_the_project_asks_for_is_noted_when_the_base_is_another() {
        let dir = project(&[("Dockerfile", "FROM python:3.14-slim\nCOPY . .\nCMD [\"python3\", \"app.py\"]\n")]);
        let other = Options { base: Some("registry.example/python:3.11".into()), ..Options::default() };
        let plan = plan(dir.path(), &other).unwrap();
        assert!(plan.notes.iter().any(|n| n.what == "Python 3.14 (Dockerfile's FROM)"), "{:?}", plan.notes);
        write(dir.path(), &[(".python-version", "3.13\n")]);
        let plan = super::plan(dir.path(), &other).unwrap();
        assert!(plan.notes.iter().any(|n| n.what == "Python 3.13 (.python-version)"), "{:?}", plan.notes);
        // Heroku's runtime.txt too.
        std::fs::remove_file(dir.path().join(".python-version")).unwrap();
        write(dir.path(), &[("runtime.txt", "python-3.12.0\n")]);
        let plan = super::plan(dir.path(), &other).unwrap();
        assert!(plan.notes.iter().any(|n| n.what == "Python 3.12.0 (runtime.txt)"), "{:?}", plan.notes);
        // A base whose name says it has that Python: nothing to check.
        let named =
            Options { base: Some("oci-archive:/cache/python-3.12-d26ea03d.oci.tar".into()), ..Options::default() };
        let plan = super::plan(dir.path(), &named).unwrap();
        assert!(!plan.notes.iter().any(|n| n.what.starts_with("Python 3")), "{:?}", plan.notes);
        let not_quite = Options { base: Some("registry.example/python:3.121".into()), ..Options::default() };
        assert!(super::plan(dir.path(), &not_quite).unwrap().notes.iter().any(|n| n.what.starts_with("Python 3.12")));
        std::fs::remove_file(dir.path().join("runtime.txt")).unwrap();
        // The Dockerfile's own base, named or not: nothing to say.
        for same in [Options::default(), Options { base: Some("python:3.14-slim".into()), ..Options::default() }] {
            let plan = super::plan(dir.path(), &same).unwrap();
            assert!(!plan.notes.iter().any(|n| n.what.starts_with("Python 3")), "{:?}", plan.notes);
        }
    }

    #[test]
    fn poetry_run_and_its_kin_are_dropped_from_commands() {
        let words = |s: &[&str]| s.iter().map(|w| w.to_string()).collect::<Vec<_>>();
        let mut exec = words(&["uv", "run", "--no-sync", "uvicorn", "app.main:app"]);
        assert_eq!(drop_runners(&mut exec), ["uv run"]);
        assert_eq!(exec, words(&["uvicorn", "app.main:app"]));
        let mut shell = words(&["/bin/sh", "-c", "poetry run alembic upgrade head && poetry run uvicorn app.main:app"]);
        assert_eq!(drop_runners(&mut shell), ["poetry run", "poetry run"]);
        assert_eq!(shell, words(&["/bin/sh", "-c", "alembic upgrade head && uvicorn app.main:app"]));
        let mut other = words(&["python3", "-m", "myapp.poetry", "run"]);
        assert!(drop_runners(&mut other).is_empty());
        let mut inside = words(&["/bin/sh", "-c", "echo mypoetry run x"]);
        assert!(drop_runners(&mut inside).is_empty(), "{inside:?}");
    }

    #[test]
    /// HackSoftware/Django-Styleguide-Example keeps `docker/local.Dockerfile`
    /// and `docker/production.Dockerfile`: the production one is read.
    fn a_production_dockerfile_in_a_folder_is_read() {
        let dir = project(&[
            ("docker/local.Dockerfile", "FROM python:3.12\nCMD [\"python3\", \"manage.py\", \"runserver\"]\n"),
            ("docker/production.Dockerfile", "FROM python:3.12\nWORKDIR /app\nCMD [\"gunicorn\", \"config.wsgi\"]\n"),
            (".dockerignore", "*.pyc\n"),
        ]);
        let plan = plan(dir.path(), &Options::default()).unwrap();
        assert_eq!(plan.sources[0], "docker/production.Dockerfile (built from the project's root)");
        assert_eq!(plan.cmd, Some(vec!["gunicorn".to_string(), "config.wsgi".to_string()]));
        assert!(
            plan.notes.iter().any(|n| n.what == "docker/local.Dockerfile beside docker/production.Dockerfile"),
            "{:?}",
            plan.notes
        );
        assert!(
            is_dockerfile("Containerfile.prod") && is_dockerfile("prod.dockerfile") && !is_dockerfile(".dockerignore")
        );
        // A variant that is not the production one is never guessed at.
        let other = project(&[
            ("bench.Dockerfile", "FROM python:3.12\nCMD [\"python3\", \"bench.py\"]\n"),
            ("web.py", "from flask import Flask\napp = Flask(__name__)\n"),
        ]);
        let plan = super::plan(other.path(), &Options::default()).unwrap();
        assert!(plan.sources.iter().all(|s| !s.contains("Dockerfile")), "{:?}", plan.sources);
        assert!(plan.notes.iter().any(|n| n.what == "Dockerfiles: bench.Dockerfile"), "{:?}", plan.notes);
    }

    #[test]
    fn the_port_a_command_binds_is_read_from_its_usual_flags() {
        let port = |argv: &[&str]| {
            let d = tempfile::tempdir().unwrap();
            port_in(&argv.iter().map(|s| s.to_string()).collect::<Vec<_>>(), d.path())
        };
        assert_eq!(port(&["radicale", "--hosts", "0.0.0.0:5232,[::]:5232"]), Some(5232));
        assert_eq!(port(&["waitress-serve", "--listen=0.0.0.0:8080", "app:app"]), Some(8080));
        assert_eq!(port(&["gunicorn", "-b", "[::]:9000", "app:app"]), Some(9000));
        assert_eq!(port(&["sh", "-c", "exec server 0.0.0.0:7000,[::]:7000"]), Some(7000));
        assert_eq!(port(&["python3", "-m", "app"]), None);
    }

    #[test]
    fn a_pinned_requirements_dev_txt_beside_the_lock_is_the_test_variants() {
        let dir = project(&[
            (
                "Dockerfile",
                "FROM python:3.11\nCOPY requirements.txt .\nRUN pip install -r requirements.txt\nCOPY . .\nCMD [\"gunicorn\", \"api:app\"]\n",
            ),
            ("requirements.txt", "flask==3.0.3\n    # via -r requirements.in\n"),
            (
                "requirements-dev.txt",
                "flask==3.0.3\n    # via -r requirements-dev.in\npytest==8.3.3\n    # via -r requirements-dev.in\n",
            ),
            ("tests/test_api.py", "def test_ok():\n    pass\n"),
        ]);
        let plan = super::plan(dir.path(), &Options::default()).unwrap();
        assert_eq!(plan.test_lock, Some(("requirements-dev.txt".to_string(), true)));
        let text = plan.render();
        assert!(text.contains("\ntest-requirements = \"requirements-dev.txt\""), "{text}");
        assert!(text.contains("\ngates = [{ name = \"pytest\""), "{text}");
        // One that leaves packages unpinned is not taken as it is.
        write(dir.path(), &[("requirements-dev.txt", "pytest\n")]);
        assert_eq!(super::plan(dir.path(), &Options::default()).unwrap().test_lock, None);
    }

    #[test]
    fn groups_and_extras_of_an_install_that_names_no_lock_are_kept() {
        // pypiserver: pip's own group install, of the project.
        let dir = project(&[
            (
                "Dockerfile",
                "FROM python:3.11\nWORKDIR /app\nCOPY . .\nRUN python -m pip install --prefix=/install --group docker .\nCMD [\"pypi-server\", \"run\"]\n",
            ),
            (
                "pyproject.toml",
                "[project]\nname = \"pypiserver\"\ndependencies = [\"pip\"]\n[dependency-groups]\ndocker = [\"gunicorn\"]\n",
            ),
        ]);
        let plan = super::plan(dir.path(), &Options::default()).unwrap();
        assert_eq!(plan.groups.as_ref().map(|(g, _)| g.clone()), Some(vec!["docker".to_string()]));
        assert!(
            !plan.notes.iter().any(|n| n.what.contains("pip install")),
            "the project's install needs no note: {:?}",
            plan.notes
        );
        // Kinto: a builder stage syncs in a folder of its own.
        let dir = project(&[
            (
                "Dockerfile",
                "FROM python:3.11 AS build\nWORKDIR /build\nCOPY pyproject.toml uv.lock LICENSE ./\nRUN uv sync --frozen --no-install-project --extra postgresql --extra redis\nWORKDIR /build/src\nCOPY . .\nFROM python:3.11-slim\nCOPY --from=build /build/.venv /app/.venv\nWORKDIR /app\nCOPY . .\nCMD [\"kinto\", \"start\"]\n",
            ),
            ("uv.lock", "version = 1\n"),
            ("pyproject.toml", "[project]\nname = \"kinto\"\n"),
        ]);
        let plan = super::plan(dir.path(), &Options::default()).unwrap();
        assert_eq!(
            plan.extras.as_ref().map(|(e, _)| e.clone()),
            Some(vec!["postgresql".to_string(), "redis".to_string()])
        );
        // pip-sync of a requirements file reads as that lock.
        let dir = project(&[
            (
                "Dockerfile",
                "FROM python:3.11\nCOPY requirements.txt .\nRUN pip install pip-tools && pip-sync requirements.txt\nCOPY . .\nCMD [\"gunicorn\", \"app:app\"]\n",
            ),
            ("requirements.txt", "# via\nflask==3.0.3 --hash=sha256:aa\n"),
        ]);
        let plan = super::plan(dir.path(), &Options::default()).unwrap();
        assert_eq!(plan.python, Some(("requirements", "requirements.txt".to_string())));
        assert!(!plan.notes.iter().any(|n| n.what.contains("pip-sync")), "{:?}", plan.notes);
    }

    #[test]
    fn the_extras_the_dockerfile_installs_are_production_s() {
        let dir = project(&[
            (
                "Dockerfile",
                "FROM python:3.11\nWORKDIR /app\nCOPY . .\nRUN uv sync --frozen --extra postgresql --extra redis\nCMD [\"kinto\", \"start\"]\n",
            ),
            ("uv.lock", "version = 1\n"),
            ("pyproject.toml", "[project]\nname = \"kinto\"\n"),
        ]);
        let plan = super::plan(dir.path(), &Options::default()).unwrap();
        let text = plan.render();
        assert!(
            text.contains("\nextras = [\"postgresql\", \"redis\"]   # the project's extras Dockerfile installs\n"),
            "{text}"
        );
        let cfg = oxbuild_config::Config::parse(Path::new("oxbuild.toml"), &text).unwrap();
        assert_eq!(cfg.python.extras, ["postgresql", "redis"]);
        // `--all-extras`: every extra the project declares (lnbits).
        write(
            dir.path(),
            &[
                (
                    "Dockerfile",
                    "FROM python:3.11\nWORKDIR /app\nCOPY . .\nRUN uv sync --all-extras\nCMD [\"kinto\", \"start\"]\n",
                ),
                (
                    "pyproject.toml",
                    "[project]\nname = \"kinto\"\n[project.optional-dependencies]\nredis = [\"redis\"]\nbreez = [\"breez-sdk\"]\n",
                ),
            ],
        );
        let plan = super::plan(dir.path(), &Options::default()).unwrap();
        assert_eq!(plan.extras.map(|(e, _)| e), Some(vec!["breez".to_string(), "redis".to_string()]));
    }

    #[test]
    fn programs_of_the_dockerfiles_own_venv_run_from_the_images_by_name() {
        let radicale = project(&[
            (
                "Dockerfile",
                "FROM python:3.11 AS builder\nRUN python -m venv --copies /app\nCOPY . /src\nRUN /app/bin/pip install /src\nFROM python:3.11-slim\nCOPY --from=builder /app /app\nENTRYPOINT [\"/app/bin/python\", \"/app/bin/radicale\"]\nCMD [\"--hosts\", \"0.0.0.0:5232\"]\n",
            ),
            ("radicale/__init__.py", ""),
        ]);
        let plan = super::plan(radicale.path(), &Options::default()).unwrap();
        assert_eq!(plan.entrypoint, Some(vec!["radicale".to_string()]));
        assert_eq!(plan.cmd, Some(vec!["--hosts".to_string(), "0.0.0.0:5232".to_string()]));
        assert!(plan.entry_from.contains("the programs it installs run from the image's venv"), "{}", plan.entry_from);

        let isso = project(&[
            (
                "Dockerfile",
                "FROM python:3.11-slim\nENV PATH=\"/isso/bin:$PATH\"\nWORKDIR /isso\nCOPY . .\nCMD [\"/isso/bin/gunicorn\", \"-b\", \"0.0.0.0:8080\", \"isso.run\"]\n",
            ),
            ("isso/__init__.py", ""),
        ]);
        let plan = super::plan(isso.path(), &Options::default()).unwrap();
        let cmd = plan.cmd.unwrap();
        assert_eq!(cmd[0], "gunicorn", "{cmd:?}");
        // A venv copied under another name (`/app/venv` to `/app`) is one there too.
        let renamed = project(&[
            (
                "Dockerfile",
                "FROM python:3-alpine AS builder\nRUN python -m venv /app/venv && /app/venv/bin/pip install radicale\nFROM python:3-alpine\nWORKDIR /app\nCOPY --from=builder /app/venv /app\nENTRYPOINT [\"/app/bin/python\", \"/app/bin/radicale\"]\n",
            ),
            ("radicale/__init__.py", ""),
        ]);
        let plan = super::plan(renamed.path(), &Options::default()).unwrap();
        assert_eq!(plan.entrypoint, Some(vec!["radicale".to_string()]));
        // A project file the Dockerfile put in the venv's bin runs from the app.
        let placed = project(&[
            (
                "Dockerfile",
                "FROM python:3.10-slim AS build\nRUN python3 -m venv /opt/httpbin\nADD . /httpbin\nRUN /opt/httpbin/bin/pip install --no-deps /httpbin\nFROM python:3.10-slim\nCOPY --from=build /opt/httpbin /opt/httpbin\nWORKDIR /opt/httpbin\nADD httpbin.bash /opt/httpbin/bin\nCMD [\"/opt/httpbin/bin/httpbin.bash\"]\n",
            ),
            ("httpbin.bash", "#!/bin/bash\nexec gunicorn httpbin:app\n"),
        ]);
        let plan = super::plan(placed.path(), &Options::default()).unwrap();
        assert_eq!(plan.cmd, Some(vec!["/opt/httpbin/httpbin.bash".to_string()]), "{:?}", plan.notes);
        // The project's own script in a bin/ on the venv's PATH stays.
        let own = project(&[
            (
                "Dockerfile",
                "FROM python:3.11\nWORKDIR /app\nENV PATH=/app/bin:$PATH\nCOPY . .\nCMD [\"/app/bin/start\"]\n",
            ),
            ("bin/start", "#!/bin/sh\nexec gunicorn app:app\n"),
        ]);
        let plan = super::plan(own.path(), &Options::default()).unwrap();
        assert_eq!(plan.cmd, Some(vec!["/app/bin/start".to_string()]));
        // A path in no venv is left as it is.
        let other = project(&[("Dockerfile", "FROM python:3.11\nCMD [\"/opt/tool/bin/serve\"]\n")]);
        let plan = super::plan(other.path(), &Options::default()).unwrap();
        assert_eq!(plan.cmd, Some(vec!["/opt/tool/bin/serve".to_string()]));
        // What a Python image's pip installed system-wide runs from the
        // venv too; a script the Dockerfile copied there, or one on
        // another base, stays.
        let system = project(&[
            (
                "Dockerfile",
                "FROM python:3.11-slim\nCOPY requirements.txt .\nRUN pip install -r requirements.txt\nCOPY entry.sh /usr/local/bin/entry.sh\nCOPY . .\nENTRYPOINT [\"/usr/local/bin/entry.sh\"]\nCMD [\"/usr/local/bin/gunicorn\", \"app:app\"]\n",
            ),
            ("requirements.txt", "gunicorn==23.0.0\n"),
            ("entry.sh", "#!/bin/sh\nexec \"$@\"\n"),
        ]);
        let plan = super::plan(system.path(), &Options::default()).unwrap();
        assert_eq!(plan.cmd.as_ref().map(|c| c[0].as_str()), Some("gunicorn"), "{:?}", plan.cmd);
        assert_ne!(plan.entrypoint.as_ref().map(|e| e[0].as_str()), Some("entry.sh"), "{:?}", plan.entrypoint);
        let debian = project(&[("Dockerfile", "FROM debian:12\nCMD [\"/usr/local/bin/serve\"]\n")]);
        let plan = super::plan(debian.path(), &Options::default()).unwrap();
        assert_eq!(plan.cmd, Some(vec!["/usr/local/bin/serve".to_string()]));
    }

    #[test]
    fn a_project_with_no_way_to_run_gets_the_rest_and_an_entrypoint_to_fill_in() {
        let dir = project(&[("requirements.txt", "flask==3.0.3\n"), ("README.md", "hello\n")]);
        let plan = plan(dir.path(), &Options::default()).unwrap();
        assert_eq!((&plan.entrypoint, &plan.cmd), (&None, &None));
        let note = plan.notes.iter().find(|n| n.what == "how the app starts").expect("a note");
        assert!(
            note.why.contains("found no way to run the app") && note.why.contains("[image] entrypoint"),
            "{note:?}"
        );
        let text = plan.render();
        assert!(text.contains("\n# entrypoint = [\"gunicorn\"") && text.contains("init found no command"), "{text}");
        // What was found is kept, and the file loads.
        let cfg = oxbuild_config::Config::parse(Path::new("oxbuild.toml"), &text).unwrap();
        assert_eq!(cfg.python.requirements.as_deref(), Some("requirements.txt"));
        assert!(cfg.image.entrypoint.is_none());
        // A Node app's example is Node's.
        let node_app = project(&[
            ("package.json", "{\"name\": \"x\", \"version\": \"1.0.0\", \"scripts\": {\"start\": \"nodemon x.js\"}}"),
            ("package-lock.json", "{\"lockfileVersion\": 3, \"packages\": {\"\": {}}}"),
        ]);
        let text = super::plan(node_app.path(), &Options::default()).unwrap().render();
        assert!(text.contains("\n# entrypoint = [\"node\", \"server.js\"]"), "{text}");
    }
}
