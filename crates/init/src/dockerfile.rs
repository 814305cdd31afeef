//! What a Dockerfile says about how the app runs, read with a real parser
//! (`parse-dockerfile`: line continuations, JSON and shell forms, heredocs,
//! stages), then evaluated the way a build would: global `ARG`s in `FROM`,
//! `ARG` defaults and `ENV` values substituted, the final stage followed back
//! through the stages it starts `FROM`, and the stages it copies from read for
//! the install step.

use std::collections::BTreeMap;

use parse_dockerfile::{Command, HealthcheckArguments, Instruction};

use crate::{Health, Note};

/// What was carried over from a Dockerfile.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FromDockerfile {
    /// The final stage's base image, `ARG`s substituted.
    pub base: Option<String>,
    /// `WORKDIR`, absolute.
    pub workdir: Option<String>,
    /// `USER`'s name, and the uid a `useradd`/`adduser` line gives it.
    pub user: Option<(String, Option<u32>)>,
    /// `ENTRYPOINT` as an argument vector.
    pub entrypoint: Option<Vec<String>>,
    /// `CMD` as an argument vector.
    pub cmd: Option<Vec<String>>,
    /// `ENV` of the final stage (and the stages it starts from).
    pub env: BTreeMap<String, String>,
    /// `EXPOSE`d TCP ports.
    pub ports: Vec<u16>,
    /// Directories a `RUN mkdir` of the final stage makes: `[image] dirs`.
    pub dirs: Vec<String>,
    /// `HEALTHCHECK`.
    pub health: Option<Health>,
    /// `COPY`/`ADD` sources from the build context, in order.
    pub copies: Vec<String>,
    /// The lock or requirements file the install step reads, and the tool.
    pub lock: Option<(String, &'static str)>,
    /// Whether the Dockerfile installs the project itself, when it installs
    /// anything: false when every install takes its dependencies only
    /// (`poetry install --no-root`, `uv sync --no-install-project`, or one
    /// that runs before the project's files are copied), with the step.
    pub installs_project: Option<(bool, String)>,
    /// Dependency groups the install step adds to production's (`poetry
    /// install --with prod`, `uv sync --group prod`, `pdm install -G prod`).
    pub groups: Vec<String>,
    /// The project's extras its install step adds (`uv sync --extra web`,
    /// `poetry install -E web`, `pip install .[web]`).
    pub extras: Vec<String>,
    /// What could not be carried over, and why.
    pub notes: Vec<Note>,
    /// Packages an install step names outside any lock (`pip install gunicorn`).
    pub unlocked: Vec<String>,
    /// What stages the final one copies from took from the context to build
    /// files with (a front end's `package.json`, sources): inputs of a build
    /// step, not files of the image.
    pub build_inputs: Vec<String>,
    /// Build commands (`npm run build`) a stage the final one copies from
    /// runs, which oxbuild does not.
    builds: Vec<String>,
    /// The programs the stage's `RUN` lines start (`flake8` for `RUN flake8 .`).
    ran: Vec<String>,
    /// What `COPY`/`ADD` put where: (source in the context, absolute
    /// destination, whether the destination is a directory the source goes
    /// into: `dir/`, `.`, or one of several sources).
    placed: Vec<(String, String, bool)>,
    /// Virtual environments the Dockerfile makes or names, in any stage it
    /// reads (`python -m venv /venv`, `virtualenv`, `uv venv`, `ENV
    /// VIRTUAL_ENV=/venv`, `ENV PATH=/venv/bin:$PATH`): absolute, no
    /// trailing slash.
    venvs: Vec<String>,
    /// What `COPY --from=STAGE SRC DEST` took: (stage, SRC, DEST), absolute.
    taken: Vec<(String, String, String)>,
}

/// Where images keep commands, which a bare program name is looked up in.
const BIN_DIRS: [&str; 5] = ["/usr/local/bin", "/usr/local/sbin", "/usr/bin", "/bin", "/usr/sbin"];

impl FromDockerfile {
    /// The file in the build context that a `COPY`/`ADD` put on PATH under
    /// the bare program name `name` (`COPY docker-entrypoint.sh
    /// /usr/local/bin/` with `ENTRYPOINT ["docker-entrypoint.sh"]`).
    pub fn program_source(&self, name: &str) -> Option<String> {
        if name.contains('/') {
            return None;
        }
        self.placed.iter().rev().find_map(|(src, dest, _)| {
            let src = src.trim_start_matches("./").trim_end_matches('/');
            let base = src.rsplit('/').next().unwrap_or(src);
            let dest = dest.trim_end_matches('/');
            let hit = BIN_DIRS.iter().any(|b| dest == format!("{b}/{name}") || (dest == *b && base == name));
            hit.then(|| src.to_string())
        })
    }

    /// Where a path the image's command names (relative to `workdir`, or
    /// absolute) came from in the build context, when a `COPY`/`ADD` put it
    /// there under another name (`COPY dist/api api`).
    pub fn source_of(&self, path: &str, workdir: &str) -> Option<String> {
        in_context(path, workdir, &self.placed)
    }

    /// Where the program a command starts came from in the build context:
    /// a path by [`source_of`](Self::source_of), a bare name by
    /// [`program_source`](Self::program_source).
    pub fn program_from(&self, program: &str, workdir: &str) -> Option<String> {
        match program.contains('/') {
            true => self.source_of(program, workdir),
            false => self.program_source(program),
        }
    }

    /// Where the final stage's `COPY`s and `ADD`s from the context put
    /// their sources: (source, destination, whether the destination is a
    /// directory the source goes into).
    pub fn placed(&self) -> &[(String, String, bool)] {
        &self.placed
    }

    /// `path` as the program of the image's venv that it is in the
    /// Dockerfile's own: `/venv/bin/gunicorn` is `gunicorn`, and any of its
    /// Pythons `python3`; None for a path in no venv. (oxbuild's venv is
    /// elsewhere, with its bin on PATH.) A `.venv` anywhere is one (uv's
    /// and Poetry's in-project venvs), and so is a Python image's
    /// `/usr/local`, where its pip installs console scripts system-wide.
    pub fn venv_program(&self, path: &str) -> Option<String> {
        let (dir, name) = path.rsplit_once("/bin/")?;
        let system_pip = dir == "/usr/local" && self.base.as_deref().is_some_and(|b| b.contains("python"));
        let known = system_pip || self.venvs.iter().any(|v| v == dir) || dir.ends_with("/.venv");
        if !known || name.is_empty() || name.contains('/') {
            return None;
        }
        let python = name.strip_prefix("python").is_some_and(|v| v.chars().all(|c| c.is_ascii_digit() || c == '.'));
        Some(if python { "python3".to_string() } else { name.to_string() })
    }
}

/// One stage: its name, what it starts from, and its instructions.
struct Stage<'a, 'b> {
    name: Option<String>,
    image: String,
    instructions: &'b [Instruction<'a>],
}

/// The stage that stage `i` of `stages` starts FROM, if it is one of them.
fn parent(stages: &[Stage<'_, '_>], i: usize) -> Option<usize> {
    stages.iter().position(|s| s.name.as_deref() == Some(&stages[i].image.to_ascii_lowercase()))
}

/// Reads the Dockerfile `text` (its file name is `file`, for notes), its
/// last stage being the image.
pub fn read(text: &str, file: &str) -> Result<FromDockerfile, String> {
    read_target(text, file, None)
}

/// Reads the Dockerfile `text` with the stage named `target` as the image
/// (as `docker build --target` does), else its last.
pub fn read_target(text: &str, file: &str, target: Option<&str>) -> Result<FromDockerfile, String> {
    // `ENTRYPOINT []` (the base's entrypoint cleared, as Docker allows) is
    // refused by the parser: it reads a placeholder argument instead.
    let text: String = text
        .lines()
        .map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                [ins, "[]"] | [ins, "[", "]"]
                    if ins.eq_ignore_ascii_case("entrypoint") || ins.eq_ignore_ascii_case("cmd") =>
                {
                    format!("{ins} [\"{CLEARED}\"]\n")
                }
                [ins, program, ..] if ins.eq_ignore_ascii_case("run") && !program.starts_with("<<") => {
                    match heredoc_after_program(line) {
                        Some(moved) => format!("{moved}\n"),
                        None => format!("{line}\n"),
                    }
                }
                _ => format!("{line}\n"),
            }
        })
        .collect();
    let parsed = parse_dockerfile::parse(&text).map_err(|e| format!("{file}:{}: {e}", e.line()))?;
    // Global ARGs (before the first FROM) apply to FROM lines only.
    let mut global = BTreeMap::new();
    for arg in parsed.global_args() {
        let (k, v) = key_value(&arg.arguments.value);
        global.insert(k, v.map(|v| expand(&v, &global)).unwrap_or_default());
    }
    let stages: Vec<Stage<'_, '_>> = parsed
        .stages()
        .map(|s| Stage {
            name: s.from.as_.as_ref().map(|(_, n)| n.value.to_ascii_lowercase()),
            image: expand(&s.from.image.value, &global),
            instructions: s.instructions,
        })
        .collect();
    let Some(mut last) = stages.len().checked_sub(1) else {
        return Err(format!("{file} has no FROM"));
    };
    if let Some(target) = target {
        last =
            stages.iter().position(|s| s.name.as_deref() == Some(&target.to_ascii_lowercase())).ok_or_else(|| {
                let names: Vec<&str> = stages.iter().filter_map(|s| s.name.as_deref()).collect();
                format!(
                    "{file} has no stage named `{target}` (--target); its named stages: {}",
                    if names.is_empty() { "none".to_string() } else { names.join(", ") }
                )
            })?;
    }
    // The final stage and the stages it starts FROM, base first.
    let mut chain = vec![last];
    while let Some(above) = chain.last().and_then(|&i| parent(&stages, i)) {
        if chain.contains(&above) {
            break;
        }
        chain.push(above);
    }
    chain.reverse();
    let mut out = FromDockerfile { base: Some(stages[chain[0]].image.clone()), ..Default::default() };
    let mut vars = global.clone();
    let mut copied_from = Vec::new();
    let mut users: BTreeMap<String, u32> = BTreeMap::new();
    for &i in &chain {
        read_stage(&stages[i], &mut vars, &mut out, &mut copied_from, &mut users, true, file);
    }
    // A last stage with no command of its own (a CI step that uploads
    // what the others built) is seldom the image: a stage that has one is
    // named, for `--target`.
    if target.is_none() && out.entrypoint.is_none() && out.cmd.is_none() {
        let commanded: Vec<&str> = stages
            .iter()
            .enumerate()
            .filter(|(i, s)| {
                !chain.contains(i)
                    && s.instructions.iter().any(|ins| matches!(ins, Instruction::Cmd(_) | Instruction::Entrypoint(_)))
            })
            .filter_map(|(_, s)| s.name.as_deref())
            .collect();
        if let Some(nearest) = commanded.last() {
            let what = match &stages[last].name {
                Some(name) => format!("stage {name} in {file}"),
                None => format!("the last stage in {file}"),
            };
            out.notes.push(Note::new(
                what,
                format!(
                    "read as the image, as a build without --target takes it, but it sets no command, and stage {} does: if that is the image, run `oxbuild init --force --target {nearest}`",
                    commanded.join(", ")
                ),
            ));
        }
    }
    // Stages the final one copies from: where the install step usually is.
    let mut seen = chain.clone();
    let into_final = copied_from.clone();
    while let Some(name) = copied_from.pop() {
        let by_index = name.parse::<usize>().ok().filter(|i| *i < stages.len());
        let found = by_index.or_else(|| {
            stages.iter().position(|s| s.name.as_deref() == Some(&name.to_ascii_lowercase()) || name == s.image)
        });
        // Another image (`COPY --from=nginx:1.27 /etc/nginx ...`), or a
        // stage that is only one (`FROM registry/app:builder AS builder`),
        // in the final image: oxbuild copies out of none.
        let image = match found {
            None => Some(name.clone()),
            Some(i) if stages[i].instructions.is_empty() && parent(&stages, i).is_none() => {
                Some(stages[i].image.clone())
            }
            Some(_) => None,
        };
        if let Some(image) = &image
            && into_final.contains(&name)
            && !out.notes.iter().any(|n| n.what.contains(&format!("--from={name} ")))
        {
            let tool = ["uv", "poetry", "pip"]
                .iter()
                .any(|t| image.rsplit('/').next().is_some_and(|last| last.split(':').next() == Some(t)));
            let what: Vec<String> =
                out.taken.iter().filter(|(stage, _, _)| *stage == name).map(|(_, src, _)| src.clone()).collect();
            out.notes.push(Note::new(
                format!("COPY --from={name} in {file}"),
                match tool {
                    true => "an installer the Dockerfile uses; oxbuild installs the lock itself and needs none in the image".to_string(),
                    false => format!(
                        "oxbuild copies nothing out of other images ({image}{}): use a base that has what the app needs from it, or put it in the project",
                        if what.is_empty() { String::new() } else { format!(": {}", what.join(", ")) }
                    ),
                },
            ));
        }
        let Some(i) = found.filter(|_| image.is_none()) else { continue };
        if seen.contains(&i) {
            continue;
        }
        seen.push(i);
        let mut their_vars = global.clone();
        let mut ignored = FromDockerfile::default();
        read_stage(&stages[i], &mut their_vars, &mut ignored, &mut copied_from, &mut users, false, file);
        let installs = ignored.lock.is_some();
        if out.lock.is_none() {
            out.lock = ignored.lock;
        }
        // A venv made there and copied here (`COPY --from=builder /venv
        // /venv`), under its new name too (`/app/venv` to `/app`).
        let stage_names = [stages[i].name.clone().unwrap_or_default(), i.to_string()];
        let moved: Vec<String> = out
            .taken
            .iter()
            .filter(|(stage, src, _)| stage_names.contains(&stage.to_ascii_lowercase()) && ignored.venvs.contains(src))
            .map(|(_, _, dest)| dest.clone())
            .collect();
        for v in std::mem::take(&mut ignored.venvs).into_iter().chain(moved) {
            if !out.venvs.contains(&v) {
                out.venvs.push(v);
            }
        }
        // What its install step says of groups and of the project itself
        // (`FROM python AS builder` with `poetry install --with prod --no-root`).
        for g in ignored.groups {
            if !out.groups.contains(&g) {
                out.groups.push(g);
            }
        }
        for e in std::mem::take(&mut ignored.extras) {
            if !out.extras.contains(&e) {
                out.extras.push(e);
            }
        }
        out.installs_project = match (out.installs_project.take(), ignored.installs_project) {
            (Some((true, s)), _) | (_, Some((true, s))) => Some((true, s)),
            (mine, theirs) => mine.or(theirs),
        };
        // A tool the stage installs and runs there (a linter, a test
        // runner) never reaches the image.
        for p in ignored.unlocked {
            let name = p.split('[').next().unwrap_or(&p);
            if ignored.ran.iter().any(|r| r.eq_ignore_ascii_case(name)) {
                continue;
            }
            if !out.unlocked.contains(&p) {
                out.unlocked.push(p);
            }
        }
        // A stage that builds files (a front end's `npm run build`) hands
        // the image its output; what it took from the context are inputs.
        // Not so for a Python builder that also runs one: it may hand over
        // the app itself (`COPY . /src` there).
        if let Some(command) = ignored.builds.first()
            && !installs
            && !stages[i].image.contains("python")
        {
            let name = stages[i].name.clone().unwrap_or_else(|| stages[i].image.clone());
            out.notes.push(Note::new(
                format!("stage {name} in {file}"),
                format!(
                    "it runs `{command}` and the image copies what that built; oxbuild runs no build steps: run it before `oxbuild build` (a CI step) so that its output is in the project, and check that [app] include has it"
                ),
            ));
            out.build_inputs.extend(ignored.copies);
            continue;
        }
        // What the image copies from it that none of its COPYs put there
        // was made by its RUN steps (`make js`, a script that downloads a
        // front end), which oxbuild does not run; what else it took from
        // the context fed them. Not so for a stage that installs packages
        // (the dependency layer stands for what it made, and a system
        // package is the base's to have), nor for one built FROM another
        // stage, whose files this does not follow.
        let here: Vec<&(String, String, String)> =
            out.taken.iter().filter(|(stage, _, _)| stage_names.contains(&stage.to_ascii_lowercase())).collect();
        let made: Vec<String> = here
            .iter()
            .filter(|(_, src, _)| !out.venvs.contains(src) && !ignored.placed.iter().any(|p| copied_there(p, src)))
            .map(|(_, src, dest)| format!("{src} (to {dest})"))
            .collect();
        const INSTALLERS: [&str; 10] =
            ["npm", "yarn", "pnpm", "bun", "apt-get", "apt", "apk", "dnf", "yum", "microdnf"];
        let packages = ignored
            .ran
            .iter()
            .any(|r| PACKAGING_TOOLS.contains(&r.as_str()) || is_pip(r) || INSTALLERS.contains(&r.as_str()));
        let from_stage = parent(&stages, i).is_some();
        if !made.is_empty() && !installs && !packages && !from_stage && !ignored.ran.is_empty() {
            let name = stages[i].name.clone().unwrap_or_else(|| stages[i].image.clone());
            let mut programs = ignored.ran.clone();
            programs.dedup();
            out.notes.push(Note::new(
                format!("stage {name} in {file}"),
                format!(
                    "the image copies {} from it, which its RUN steps make ({}); oxbuild runs no build steps: run them before `oxbuild build` (a CI step) so that their output is in the project, and check that [app] include has it",
                    made.join(", "),
                    programs.join(", ")
                ),
            ));
            // Its copies that the image takes from it as they are stay the app's.
            let handed = |c: &String| {
                ignored.placed.iter().any(|p| &p.0 == c && here.iter().any(|(_, src, _)| copied_there(p, src)))
            };
            let (kept, inputs): (Vec<String>, Vec<String>) =
                std::mem::take(&mut ignored.copies).into_iter().partition(handed);
            out.build_inputs.extend(inputs);
            ignored.copies = kept;
        }
        // What it took from the context reaches the final image through it
        // (`COPY . /src` there, `COPY --from=builder /src /app` here), but
        // for the lock it installed from: the dependency layer has that.
        let lock = out.lock.as_ref().map(|(path, _)| path.trim_start_matches("./").to_string());
        for p in ignored.copies {
            let installed_from = lock.as_deref() == Some(p.trim_start_matches("./"))
                || ["requirements.txt", "poetry.lock", "uv.lock", "Pipfile", "Pipfile.lock", "pdm.lock", "pylock.toml"]
                    .contains(&p.trim_start_matches("./"));
            if !installed_from && !out.copies.contains(&p) {
                out.copies.push(p);
            }
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    out.notes.retain(|n| seen.insert((n.what.clone(), n.why.clone())));
    if let Some((user, uid)) = &mut out.user {
        match uid {
            None => *uid = users.get(user.as_str()).copied(),
            // `USER 1001` after `useradd -u 1001 ctfd`: the account's name.
            Some(n) if user.is_empty() => {
                if let Some((name, _)) = users.iter().find(|(_, u)| **u == *n) {
                    *user = name.clone();
                }
            }
            Some(_) => {}
        }
    }
    Ok(out)
}

/// What [`read`] puts in an `ENTRYPOINT []` or `CMD []` for the parser.
const CLEARED: &str = "oxbuild:empty-brackets";

/// An empty command for the placeholder of `ENTRYPOINT []`.
fn cleared(argv: Vec<String>) -> Vec<String> {
    if argv.len() == 1 && argv[0] == CLEARED { Vec::new() } else { argv }
}

/// Reads one stage into `out`. `last` is false for a stage the final one only
/// copies from: then only its install step and accounts are taken.
#[allow(clippy::too_many_arguments)]
fn read_stage(
    stage: &Stage<'_, '_>,
    vars: &mut BTreeMap<String, String>,
    out: &mut FromDockerfile,
    copied_from: &mut Vec<String>,
    users: &mut BTreeMap<String, u32>,
    last: bool,
    file: &str,
) {
    // The working directory as the stage's instructions run.
    let mut cwd = if last { out.workdir.clone().unwrap_or_else(|| "/".into()) } else { "/".to_string() };
    // Whether the stage has copied the whole context (`COPY . .`) yet.
    let mut copied_all = false;
    for ins in stage.instructions {
        match ins {
            Instruction::Arg(a) => {
                let (k, v) = key_value(&a.arguments.value);
                // A redeclared global ARG takes the global value.
                let value = v.map(|v| expand(&v, vars)).or_else(|| vars.get(&k).cloned()).unwrap_or_default();
                vars.insert(k, value);
            }
            Instruction::Env(e) => {
                for (k, v) in env_pairs(&e.arguments.value) {
                    let unset = unset_vars(&v, vars);
                    let v = expand(&v, vars);
                    if last && !unset.is_empty() && !crate::ENV_NOT_CARRIED.contains(&k.as_str()) {
                        out.notes.push(Note::new(
                            format!("ENV {k} in {file}"),
                            format!(
                                "{} is set nowhere in {file} (its base image may set it, and init does not read the base), so {k} is written as `{v}`: check it in [image] env",
                                dollars(&unset)
                            ),
                        ));
                    }
                    let named: Vec<&str> = match k.as_str() {
                        "VIRTUAL_ENV" | "UV_PROJECT_ENVIRONMENT" => vec![v.as_str()],
                        "PATH" => v.split(':').filter_map(|p| p.trim_end_matches('/').strip_suffix("/bin")).collect(),
                        _ => Vec::new(),
                    };
                    for venv in named {
                        let venv = absolute(&cwd, venv).trim_end_matches('/').to_string();
                        let system = ["", "/usr", "/usr/local", "/opt/conda"].contains(&venv.as_str());
                        if !system && !venv.contains('$') && !out.venvs.contains(&venv) {
                            out.venvs.push(venv);
                        }
                    }
                    vars.insert(k.clone(), v.clone());
                    if last {
                        out.env.insert(k, v);
                    }
                }
            }
            Instruction::Run(r) => {
                // As written, and with the Dockerfile's variables.
                let written = heredoc_script(&command_text(&r.arguments), &r.here_docs);
                let text = expand(&written, vars);
                users.extend(accounts(&text));
                // Where the whole context was copied: `pip install /httpbin` installs the project.
                let project_at: Vec<&str> = out
                    .placed
                    .iter()
                    .filter(|(src, _, _)| matches!(src.trim_end_matches('/'), "." | ""))
                    .map(|(_, dest, _)| dest.trim_end_matches('/'))
                    .collect();
                if let Some((installs, step)) = installs_project(&text, copied_all, &project_at) {
                    out.installs_project = match out.installs_project.take() {
                        Some((true, s)) => Some((true, s)),
                        _ => Some((installs, step)),
                    };
                }
                for g in install_groups(&text) {
                    if !out.groups.contains(&g) {
                        out.groups.push(g);
                    }
                }
                for e in install_extras(&text, &project_at) {
                    if !out.extras.contains(&e) {
                        out.extras.push(e);
                    }
                }
                if out.lock.is_none()
                    && let Some((path, tool)) = install_step(&text)
                {
                    // The file as the context has it (`COPY requirements/ /req/` then `-r /req/prod.txt`).
                    out.lock = Some((in_context(&path, &cwd, &out.placed).unwrap_or(path), tool));
                }
                for p in unlocked_packages(&text) {
                    if !out.unlocked.contains(&p) {
                        out.unlocked.push(p);
                    }
                }
                if r.options.iter().any(|f| {
                    f.name.value == "mount" && f.value.as_ref().is_some_and(|v| v.value.contains("type=secret"))
                }) {
                    out.notes.push(Note::new(
                        format!("RUN --mount=type=secret in {file}"),
                        "build secrets are not carried over: oxbuild installs from the lock with [python] index-url credentials from the environment (see the README), and never puts them in a layer",
                    ));
                }
                for words in shell_commands(&text) {
                    if let Some(program) = words.first() {
                        out.ran.push(program.rsplit('/').next().unwrap_or(program).to_string());
                    }
                    if let Some(venv) = made_venv(&words) {
                        let venv = absolute(&cwd, &venv).trim_end_matches('/').to_string();
                        if !out.venvs.contains(&venv) {
                            out.venvs.push(venv);
                        }
                    }
                }
                if !last && let Some(command) = builds_files(&text) {
                    out.builds.push(command);
                }
                if last {
                    not_carried(&text, &written, vars, file, &mut out.notes);
                    // From the line as written: a `$VAR` may be the shell's, not the Dockerfile's.
                    for d in made_dirs(&written, &cwd) {
                        if !out.dirs.contains(&d) {
                            out.dirs.push(d);
                        }
                    }
                }
            }
            Instruction::Copy(c) => {
                let from = c.options.iter().find(|f| f.name.value == "from").and_then(|f| f.value.as_ref());
                match from {
                    Some(stage) => {
                        let stage = word(&stage.value, vars);
                        let dest = absolute(&cwd, &word(&c.dest.value, vars));
                        for src in &c.src {
                            if let parse_dockerfile::Source::Path(p) = src {
                                let src = absolute("/", &word(&p.value, vars));
                                out.taken.push((stage.clone(), src, dest.clone()));
                            }
                        }
                        copied_from.push(stage);
                    }
                    None => {
                        let raw = word(&c.dest.value, vars);
                        let dest = absolute(&cwd, &raw);
                        let into = raw.ends_with('/') || raw == "." || c.src.len() > 1;
                        for src in &c.src {
                            if let parse_dockerfile::Source::Path(p) = src {
                                let p = word(&p.value, vars);
                                copied_all |= copies_project(&p);
                                out.placed.push((p.clone(), dest.clone(), into));
                                out.copies.push(p);
                            }
                        }
                    }
                }
            }
            Instruction::Add(a) => {
                let raw = word(&a.dest.value, vars);
                let dest = absolute(&cwd, &raw);
                let into = raw.ends_with('/') || raw == "." || a.src.len() > 1;
                for src in &a.src {
                    if let parse_dockerfile::Source::Path(p) = src {
                        let p = word(&p.value, vars);
                        if p.contains("://") {
                            if last {
                                out.notes.push(Note::new(
                                    format!("ADD {p} in {file}"),
                                    "downloads at build time are not carried over: vendor the file into the project",
                                ));
                            }
                        } else {
                            copied_all |= copies_project(&p);
                            out.placed.push((p.clone(), dest.clone(), into));
                            out.copies.push(p);
                        }
                    }
                }
            }
            Instruction::Workdir(w) => {
                cwd = absolute(&cwd, &word(&w.arguments.value, vars));
                if last {
                    out.workdir = Some(cwd.clone());
                }
            }
            Instruction::User(u) if last => {
                let spec = word(&u.arguments.value, vars);
                let name = spec.split(':').next().unwrap_or("").to_string();
                out.user = match name.parse::<u32>() {
                    Ok(uid) => Some((String::new(), Some(uid))),
                    Err(_) => Some((name, None)),
                };
            }
            Instruction::Expose(e) if last => {
                for port in &e.arguments {
                    let port = word(&port.value, vars);
                    let (number, proto) = port.split_once('/').unwrap_or((&port, "tcp"));
                    match number.parse::<u16>() {
                        Ok(n) if proto.eq_ignore_ascii_case("tcp") && !out.ports.contains(&n) => out.ports.push(n),
                        Ok(_) => {}
                        Err(_) => out.notes.push(Note::new(
                            format!("EXPOSE {port} in {file}"),
                            "not a port number once its ARGs are substituted; set [image] ports by hand",
                        )),
                    }
                }
            }
            Instruction::Entrypoint(e) if last => {
                out.entrypoint = Some(cleared(argv(&e.arguments, vars)));
                // As in Docker, ENTRYPOINT resets a CMD inherited from before it.
                out.cmd = None;
            }
            Instruction::Cmd(c) if last => out.cmd = Some(cleared(argv(&c.arguments, vars))),
            Instruction::Healthcheck(h) if last => {
                out.health = match &h.arguments {
                    HealthcheckArguments::Cmd { arguments, .. } => {
                        let flag = |name: &str| {
                            h.options
                                .iter()
                                .find(|f| f.name.value == name)
                                .and_then(|f| f.value.as_ref())
                                .map(|v| expand(&v.value, vars))
                        };
                        let (health, expanded) = Health::from_command(
                            argv(arguments, vars),
                            vars,
                            flag("interval"),
                            flag("timeout"),
                            flag("retries").and_then(|r| r.parse().ok()),
                            flag("start-period"),
                        );
                        if expanded {
                            out.notes.push(Note::new(
                                format!("the variables in HEALTHCHECK's URL in {file}"),
                                "filled in from its ENV, else their defaults: the probe sends [healthcheck] http as written, so change it there if the app runs with other values",
                            ));
                        }
                        Some(health)
                    }
                    _ => None,
                };
            }
            Instruction::Volume(v) if last => {
                // The app writes there: the directory is made, the user's,
                // so that a volume mounted on it is writable.
                let written: Vec<&str> = match &v.arguments {
                    parse_dockerfile::JsonOrStringArray::Json(list) => list.value.iter().map(|s| &*s.value).collect(),
                    parse_dockerfile::JsonOrStringArray::String(list) => list.iter().map(|s| &*s.value).collect(),
                };
                // A path made of a variable the Dockerfile never sets is not known.
                let (unknown, known): (Vec<&str>, Vec<&str>) =
                    written.into_iter().partition(|p| !unset_vars(p, vars).is_empty());
                for p in &unknown {
                    out.notes.push(Note::new(
                        format!("VOLUME {p} in {file}"),
                        format!(
                            "{} is set nowhere in {file} (its base image may set it), so the directory is not known: if the app writes there, add it to [image] dirs",
                            dollars(&unset_vars(p, vars))
                        ),
                    ));
                }
                if known.is_empty() {
                    continue;
                }
                let paths: Vec<String> = known.iter().map(|p| expand(p, vars)).collect();
                let root = cwd.trim_end_matches('/');
                let inside = |d: &str| !root.is_empty() && (d == root || d.starts_with(&format!("{root}/")));
                let outside: Vec<String> =
                    paths.iter().map(|p| absolute(&cwd, p)).filter(|d| d != "/" && !inside(d)).collect();
                for d in &outside {
                    if !out.dirs.contains(d) {
                        out.dirs.push(d.clone());
                    }
                }
                out.notes.push(Note::new(
                    format!("VOLUME in {file}"),
                    if outside.is_empty() {
                        "volumes are the runtime's business (podman run -v, a Kubernetes volume); the image does not declare them"
                    } else {
                        "volumes are the runtime's business (podman run -v, a Kubernetes volume); the image does not declare them, but [image] dirs makes the directory, the app user's, so that one mounted there is writable"
                    },
                ));
            }
            _ => {}
        }
    }
}

/// `path` made absolute against `cwd`, normalised (`.` and `..` resolved,
/// no trailing slash).
fn absolute(cwd: &str, path: &str) -> String {
    let joined = if path.starts_with('/') { path.to_string() } else { format!("{cwd}/{path}") };
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Where the file an install step reads at `path` (in the image, as the
/// stage's working directory `cwd` resolves it) came from in the build
/// context, by the `COPY`/`ADD`s before it; None when no copy placed it.
fn in_context(path: &str, cwd: &str, placed: &[(String, String, bool)]) -> Option<String> {
    let target = absolute(cwd, path);
    for (src, dest, _) in placed.iter().rev() {
        let src_clean = src.trim_start_matches("./").trim_end_matches('/');
        let base = src_clean.rsplit('/').next().unwrap_or(src_clean);
        if &target == dest {
            // `COPY requirements.txt /build/req.txt`, or a file into a directory of that name.
            return Some(src_clean.to_string());
        }
        if let Some(rest) = target.strip_prefix(&format!("{}/", dest.trim_end_matches('/'))) {
            if rest == base {
                // `COPY requirements.txt .`
                return Some(src_clean.to_string());
            }
            if src.ends_with('/') || src_clean == "." || !base.contains('.') {
                // A directory's content: `COPY requirements/ /requirements/`.
                return Some(if src_clean == "." || src_clean.is_empty() {
                    rest.to_string()
                } else {
                    format!("{src_clean}/{rest}")
                });
            }
        }
    }
    None
}

/// Each command of a shell line on its own (split at `&&`, `||`, `|` and
/// `;`), as words: `pip install x || echo "…"` is two commands.
/// The directory a command makes a venv in: `python3 -m venv DIR`,
/// `virtualenv DIR`, `uv venv DIR` (their options skipped).
fn made_venv(words: &[String]) -> Option<String> {
    let program = words.first()?.rsplit('/').next()?;
    let after = if program.starts_with("python") {
        let m = words.iter().position(|w| w == "-m")?;
        (words.get(m + 1)?.as_str() == "venv").then_some(m + 2)?
    } else if program == "virtualenv" {
        1
    } else if program == "uv" && words.get(1)?.as_str() == "venv" {
        2
    } else {
        return None;
    };
    let mut rest = words[after..].iter();
    while let Some(w) = rest.next() {
        match w.as_str() {
            // Options whose value is the next word.
            "-p" | "--python" | "--prompt" => {
                rest.next();
            }
            w if w.starts_with('-') => {}
            w => return Some(w.to_string()),
        }
    }
    None
}

fn shell_commands(text: &str) -> Vec<Vec<String>> {
    shell_pieces(text)
        .iter()
        .map(|part| {
            // A line continuation left at a piece's end (`set -ex \` before `&&`) is no word.
            let part = part.trim_end_matches('\\').trim_end();
            shlex::split(part).unwrap_or_else(|| vec![part.to_string()])
        })
        .collect()
}

/// A shell line cut at `&&`, `||`, `|` and `;` outside quotes
/// (`python -c "import a; a.b()"` is one piece), each trimmed.
fn shell_pieces(text: &str) -> Vec<String> {
    shell_split(text).into_iter().map(|(piece, _)| piece).collect()
}

/// [`shell_pieces`], each with the operator that follows it as written
/// (`&&`, `|`; empty after the last).
fn shell_split(text: &str) -> Vec<(String, String)> {
    let mut pieces = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                current.push(c);
            }
            (None, '\'' | '"') => {
                quote = Some(c);
                current.push(c);
            }
            (None, '\\') => {
                current.push(c);
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            }
            // `2>&1`, `&>log`: a redirection, not a cut.
            (None, '&') if current.ends_with('>') || chars.peek() == Some(&'>') => current.push(c),
            (None, ';' | '|' | '&') => {
                // `&&` and `||` are one cut; a lone `&` (background) too.
                let mut op = c.to_string();
                if (c == '&' || c == '|') && chars.peek() == Some(&c) {
                    chars.next();
                    op.push(c);
                }
                pieces.push((std::mem::take(&mut current).trim().to_string(), op));
            }
            _ => current.push(c),
        }
    }
    pieces.push((current.trim().to_string(), String::new()));
    pieces
}

/// The command of a `RUN` line that builds a JavaScript front end (`npm run
/// build`, `yarn build`, `bun run build`, `npx vite build`), as written.
fn builds_files(text: &str) -> Option<String> {
    shell_commands(text).into_iter().find_map(|words| {
        let tool = words.first()?.rsplit('/').next()?;
        let builds = ["npm", "pnpm", "yarn", "bun", "npx", "bunx"].contains(&tool)
            && words[1..].iter().take(3).any(|w| w == "build" || w.starts_with("build:"));
        builds.then(|| words.join(" "))
    })
}

/// Whether a COPY that `placed` (source, destination, into) may have put
/// the path `at` in the stage there: the destination or what is below it,
/// for a source copied as it is; for one copied into a folder, what it
/// names there (a file's name), or anything when it is the whole context
/// or a wildcard, or when the folder has the source's name (`COPY vendor/
/// ./vendor/`). A folder copied into another (`COPY assets ./`) brings
/// contents the Dockerfile does not name, so they do not count.
fn copied_there((src, dest, into): &(String, String, bool), at: &str) -> bool {
    let Some(rel) = crate::within(dest, at) else { return false };
    if rel.is_empty() || !*into {
        return true;
    }
    let src = src.trim_start_matches("./").trim_end_matches('/');
    let name = src.rsplit('/').next().unwrap_or(src);
    let folder = dest.trim_end_matches('/').rsplit('/').next();
    src.is_empty()
        || src == "."
        || src.contains(['*', '?', '['])
        || rel.split('/').next() == Some(name)
        || folder == Some(name)
}

/// The packaging tools a Dockerfile installs for its own install steps,
/// which oxbuild does not need.
const PACKAGING_TOOLS: [&str; 8] = ["poetry", "uv", "pipenv", "pdm", "pip", "setuptools", "wheel", "virtualenv"];

/// Whether a command word runs pip: `pip`, `pip3`, `pip3.12`, by any path.
fn is_pip(word: &str) -> bool {
    let tool = word.rsplit('/').next().unwrap_or(word);
    tool == "pip" || tool.starts_with("pip3")
}

/// Packages a `pip install` (or `uv pip install`, or a builder's `pip
/// wheel`) names by themselves, outside any requirements file or lock; the
/// packaging tools aside, and the build tools a Dockerfile installs so that
/// pip can build sdists (oxbuild builds each with its own build
/// requirements). Extras stay with the name (`uvicorn[standard]`).
fn unlocked_packages(text: &str) -> Vec<String> {
    const BUILD_TOOLS: [&str; 11] = [
        "pip-tools",
        "build",
        "cython",
        "setuptools-rust",
        "setuptools-scm",
        "maturin",
        "hatchling",
        "flit-core",
        "poetry-core",
        "pdm-backend",
        "scikit-build",
    ];
    let mut out = Vec::new();
    for words in shell_commands(text) {
        let Some(at) = words.iter().position(|w| w == "install" || w == "wheel") else { continue };
        let runs_pip = words[..at].iter().any(|w| is_pip(w));
        if !runs_pip {
            continue;
        }
        let mut skip_next = false;
        for w in &words[at + 1..] {
            if skip_next {
                skip_next = false;
                continue;
            }
            if [
                "-r",
                "--requirement",
                "-c",
                "--constraint",
                "-e",
                "--editable",
                "-t",
                "--target",
                "--prefix",
                "-i",
                "--index-url",
                "--extra-index-url",
                "-f",
                "--find-links",
                "--root",
                "-w",
                "--wheel-dir",
                "--trusted-host",
                "--progress-bar",
                "--cache-dir",
                "--platform",
                "--python-version",
                "--implementation",
                "--abi",
                "--only-binary",
                "--no-binary",
                "--upgrade-strategy",
                "--log",
                "--src",
                "--timeout",
                "--retries",
            ]
            .contains(&w.as_str())
            {
                skip_next = true;
                continue;
            }
            let redirection = w.trim_start_matches(|c: char| c.is_ascii_digit()).starts_with(['>', '<']);
            if redirection || w.starts_with('-') || w.starts_with('.') || w.starts_with('/') || w.contains("://") {
                continue;
            }
            let name = w.split(['=', '<', '>', '~', '[', '!', ';', '@']).next().unwrap_or("").to_string();
            // Only what can be a project name (PEP 508): not a redirection or a message.
            let valid = oxbuild_python::name::is_valid(&name);
            let extras = w[name.len()..].strip_prefix('[').and_then(|r| r.split_once(']')).map(|(e, _)| e);
            let named = match extras {
                Some(e) if !e.is_empty() => format!("{name}[{e}]"),
                _ => name.clone(),
            };
            let normal = oxbuild_python::name::normalize(&name);
            let tool = PACKAGING_TOOLS.contains(&normal.as_str()) || BUILD_TOOLS.contains(&normal.as_str());
            if valid && !tool && !out.contains(&named) {
                out.push(named);
            }
        }
    }
    out
}

/// The directories `mkdir` makes in a shell line (as absolute paths from
/// `cwd`), but for those a shell variable names.
fn made_dirs(text: &str, cwd: &str) -> Vec<String> {
    let mut out = Vec::new();
    for words in shell_commands(text) {
        if words.first().map(String::as_str) != Some("mkdir") {
            continue;
        }
        let mut skip_next = false;
        for w in &words[1..] {
            if std::mem::take(&mut skip_next) {
                continue;
            }
            // `-m MODE` is the only option with a separate value.
            if w == "-m" || w == "--mode" {
                skip_next = true;
                continue;
            }
            if w.starts_with('-') || w.contains('$') || w.contains('{') || w.contains('>') {
                continue;
            }
            let d = absolute(cwd, w);
            if d != "/" && !out.contains(&d) {
                out.push(d);
            }
        }
    }
    out
}

/// `NAME=value` (or `NAME` alone) of an `ARG`.
fn key_value(text: &str) -> (String, Option<String>) {
    match text.split_once('=') {
        Some((k, v)) => (k.trim().to_string(), Some(unquote(v.trim()))),
        None => (text.trim().to_string(), None),
    }
}

/// An `ENV`'s pairs: `K=V K2="V 2"`, or the legacy `K value with spaces`.
fn env_pairs(text: &str) -> Vec<(String, String)> {
    let first = text.split_whitespace().next().unwrap_or("");
    if !first.contains('=') {
        let (k, v) = text.trim().split_once(char::is_whitespace).unwrap_or((text.trim(), ""));
        return vec![(k.to_string(), v.trim().to_string())];
    }
    shlex::split(text)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|w| w.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect()
}

/// A path or name as Docker reads it in WORKDIR, COPY, ADD, USER and
/// EXPOSE: variables substituted, then quotes removed (`"${APP}"/app.py`
/// is `/srv/app/app.py`). Text that is not one word stays as it is
/// (`WORKDIR /my app` is the folder `/my app`).
fn word(text: &str, vars: &BTreeMap<String, String>) -> String {
    let expanded = expand(text, vars);
    match shlex::split(&expanded) {
        Some(words) if words.len() == 1 => words.into_iter().next().unwrap_or_default(),
        _ => expanded,
    }
}

fn unquote(v: &str) -> String {
    shlex::split(v).and_then(|w| w.into_iter().next()).unwrap_or_else(|| v.to_string())
}

/// Each variable `text` refers to, in order: its name, and whether it is
/// used plainly (`$VAR`, `${VAR}`) rather than with a default or an
/// alternative (`${VAR:-x}`, `${VAR-x}`, `${VAR:+y}`). A `$` that starts
/// no name gives an empty one.
fn var_refs(text: &str) -> Vec<(&str, bool)> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut refs = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        let after = &rest[i + 1..];
        match after.strip_prefix('{') {
            Some(inner) => {
                let name = &inner[..inner.find(|c| !is_name(c)).unwrap_or(inner.len())];
                let Some(end) = inner.find('}') else {
                    refs.push((name, false));
                    break;
                };
                refs.push((name, end == name.len()));
                rest = &inner[end + 1..];
            }
            None => {
                let len = after.find(|c| !is_name(c)).unwrap_or(after.len());
                refs.push((&after[..len], true));
                rest = &after[len..];
            }
        }
    }
    refs
}

/// The variables `text` uses plainly (see [`var_refs`]) that `vars` does
/// not hold: set, if at all, by the base image, which init does not read,
/// so [`expand`] empties them.
pub(crate) fn unset_vars(text: &str, vars: &BTreeMap<String, String>) -> Vec<String> {
    let mut unset: Vec<String> = Vec::new();
    for (name, plain) in var_refs(text) {
        if plain && !name.is_empty() && !vars.contains_key(name) && !unset.iter().any(|u| u == name) {
            unset.push(name.to_string());
        }
    }
    unset
}

/// `$A, $B` for a note.
fn dollars(names: &[String]) -> String {
    names.iter().map(|n| format!("${n}")).collect::<Vec<_>>().join(", ")
}

/// Substitutes `$VAR`, `${VAR}`, `${VAR:-default}` and `${VAR:+alternative}`
/// as a Dockerfile build does; unknown variables become empty.
pub(crate) fn expand(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(inner) = after.strip_prefix('{') {
            let Some(end) = inner.find('}') else {
                out.push_str(&rest[i..]);
                return out;
            };
            let body = &inner[..end];
            let value = if let Some((name, default)) = body.split_once(":-") {
                vars.get(name).filter(|v| !v.is_empty()).cloned().unwrap_or_else(|| expand(default, vars))
            } else if let Some((name, alternative)) = body.split_once(":+") {
                if vars.get(name).is_some_and(|v| !v.is_empty()) { expand(alternative, vars) } else { String::new() }
            } else {
                vars.get(body).cloned().unwrap_or_default()
            };
            out.push_str(&value);
            rest = &inner[end + 1..];
        } else {
            let len = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
            if len == 0 {
                out.push('$');
            } else {
                out.push_str(vars.get(&after[..len]).map(String::as_str).unwrap_or(""));
            }
            rest = &after[len..];
        }
    }
    out.push_str(rest);
    out
}

/// `RUN python3 <<EOF` (a here-document after the program) as `RUN <<EOF
/// python3`, a form the parser reads (it takes the first only): the
/// document is the same, and [`here_script`] sees the program. None for a
/// line with no here-document (`$((1 << 2))` is none).
fn heredoc_after_program(line: &str) -> Option<String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| {
        let delimiter = w.strip_prefix("<<").map(|d| d.trim_start_matches('-').trim_matches(['"', '\'']));
        delimiter.is_some_and(|d| d.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_'))
    })?;
    if at < 2 {
        return None;
    }
    let mut moved: Vec<&str> = vec![words[0], words[at]];
    moved.extend(words[1..at].iter().chain(&words[at + 1..]));
    Some(moved.join(" "))
}

/// What a `RUN` with here-documents runs: for `RUN <<EOF` (or `RUN
/// <<EOF bash`), the shell script in the document, its commands joined
/// with `;` so that each is weighed as on one line; for another program
/// (`RUN python3 <<EOF`), its command line as written.
fn here_script(command: &str, docs: &[parse_dockerfile::HereDoc<'_>]) -> Option<String> {
    let first = docs.first()?;
    let program: Vec<&str> = command.split_whitespace().filter(|w| !w.starts_with("<<")).collect();
    let shell = program.is_empty()
        || matches!(program.as_slice(), [p, ..] if ["sh", "bash", "/bin/sh", "/bin/bash"].contains(p)
            && program[1..].iter().all(|a| a.starts_with('-')));
    if !shell {
        return None;
    }
    // Its lines, `\` continuations joined.
    let mut lines: Vec<String> = Vec::new();
    let mut current = String::new();
    for line in first.value.lines().map(str::trim).filter(|l| !l.starts_with('#')) {
        match line.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part.trim());
                current.push(' ');
            }
            None => {
                current.push_str(line);
                let command = std::mem::take(&mut current);
                if !command.trim().is_empty() {
                    lines.push(command.trim().to_string());
                }
            }
        }
    }
    Some(lines.join(" ; "))
}

/// `command`, or what its here-documents run (see [`here_script`]).
fn heredoc_script(command: &str, docs: &[parse_dockerfile::HereDoc<'_>]) -> String {
    match here_script(command, docs) {
        Some(script) => script,
        None if !docs.is_empty() => format!("{} (with a here-document)", command.trim()),
        None => command.to_string(),
    }
}

/// The text of a command, line continuations joined.
fn command_text(c: &Command<'_>) -> String {
    match c {
        Command::Exec(words) => words.value.iter().map(|w| w.value.to_string()).collect::<Vec<_>>().join(" "),
        Command::Shell(text) => join_lines(text.value),
        _ => String::new(),
    }
}

/// Joins a shell-form command's continuation lines and drops the comment
/// lines between them.
fn join_lines(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') {
            continue;
        }
        let (body, continued) = match trimmed.strip_suffix('\\') {
            Some(b) => (b, true),
            None => (trimmed, false),
        };
        out.push_str(body.trim());
        out.push(' ');
        if !continued {
            out.push(' ');
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A command as an argument vector. Exec form is taken as it is (Docker
/// substitutes nothing there); shell form is split into words when it is a
/// plain command, and run by `/bin/sh -c` (as Docker runs it) when it uses
/// the shell.
fn argv(c: &Command<'_>, vars: &BTreeMap<String, String>) -> Vec<String> {
    match c {
        Command::Exec(words) => words.value.iter().map(|w| w.value.to_string()).collect(),
        Command::Shell(text) => shell_argv(&join_lines(text.value), vars),
        _ => Vec::new(),
    }
}

/// A shell-form command line as an argument vector (see [`argv`]).
pub(crate) fn shell_argv(text: &str, vars: &BTreeMap<String, String>) -> Vec<String> {
    let uses_shell = text.contains(['|', '&', ';', '<', '>', '`', '*', '?', '(', ')']) || text.contains("$(");
    if !uses_shell {
        // Variables the image sets (ENV) are known here; others would be
        // the runtime's, which only a shell can read.
        let expanded = expand(text, vars);
        let unknown = var_refs(text).iter().any(|(name, _)| !vars.contains_key(*name));
        if !unknown && let Some(words) = shlex::split(&expanded) {
            return words;
        }
    }
    vec!["/bin/sh".into(), "-c".into(), text.to_string()]
}

/// Accounts that `useradd`/`adduser` lines create, with the uid they give.
fn accounts(text: &str) -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    for part in text.split("&&").flat_map(|p| p.split(';')) {
        let words: Vec<String> = shlex::split(part.trim()).unwrap_or_default();
        let Some(pos) = words.iter().position(|w| w == "useradd" || w == "adduser") else { continue };
        let args = &words[pos + 1..];
        let mut uid = None;
        let mut name = None;
        let mut i = 0;
        while i < args.len() {
            let a = &args[i];
            if let Some(v) = a.strip_prefix("--uid=") {
                uid = v.parse().ok();
            } else if a == "-u" || a == "--uid" {
                uid = args.get(i + 1).and_then(|v| v.parse().ok());
                i += 1;
            } else if [
                "-g",
                "--gid",
                "-G",
                "--groups",
                "-s",
                "--shell",
                "-d",
                "--home",
                "--home-dir",
                "-c",
                "--comment",
                "--gecos",
                "-h",
                "-k",
                "--ingroup",
                "-K",
            ]
            .contains(&a.as_str())
            {
                i += 1;
            } else if !a.starts_with('-') {
                name = Some(a.clone());
            }
            i += 1;
        }
        if let (Some(name), Some(uid)) = (name, uid) {
            out.insert(name, uid);
        }
    }
    out
}

/// The lock an install step reads: `pip install -r FILE`, `poetry install`,
/// `pipenv install`/`sync`, `uv sync`/`uv pip install -r`, `pdm install`/`sync`.
fn install_step(text: &str) -> Option<(String, &'static str)> {
    for part in text.split("&&").flat_map(|p| p.split(';')) {
        let words: Vec<String> = shlex::split(part.trim()).unwrap_or_default();
        let has = |w: &str| words.iter().any(|x| x == w);
        let after = |flag: &[&str]| {
            words.iter().enumerate().find_map(|(i, w)| {
                if flag.contains(&w.as_str()) {
                    words.get(i + 1).cloned()
                } else {
                    flag.iter().find_map(|f| w.strip_prefix(&format!("{f}="))).map(String::from)
                }
            })
        };
        let tool = words.iter().map(|w| w.rsplit('/').next().unwrap_or(w)).find(|w| {
            ["pip", "pip3", "pip-sync", "poetry", "pipenv", "uv", "pdm"].contains(w) || w.starts_with("pip3.")
        });
        match tool {
            // pip-tools' `pip-sync requirements.txt`: exactly that lock.
            Some("pip-sync") => {
                if let Some(file) = words.iter().skip(1).find(|w| !w.starts_with('-')) {
                    return Some((file.clone(), "pip"));
                }
            }
            Some(t) if is_pip(t) && (has("install") || has("wheel") || has("download")) => {
                if let Some(file) = after(&["-r", "--requirement"]) {
                    return Some((file, "pip"));
                }
            }
            Some("uv") if has("sync") => return Some(("uv.lock".into(), "uv")),
            Some("uv") if has("pip") && has("install") => {
                if let Some(file) = after(&["-r", "--requirement"]) {
                    return Some((file, "uv"));
                }
            }
            Some("poetry") if has("install") || has("export") => return Some(("poetry.lock".into(), "poetry")),
            Some("pipenv") if has("install") || has("sync") => return Some(("Pipfile.lock".into(), "pipenv")),
            Some("pdm") if has("install") || has("sync") => return Some(("pdm.lock".into(), "pdm")),
            _ => {}
        }
    }
    None
}

/// The dependency groups a RUN's Poetry, uv or PDM install (or export) adds to the
/// production ones: `--with a,b` and `--only main,b` (Poetry; `main` is
/// production itself), `--group a` (uv, PDM), `-G a` (PDM).
pub(crate) fn install_groups(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for words in shell_commands(text) {
        let Some((at, tool, sub)) = packaging_tool(&words) else { continue };
        if !matches!(sub, "install" | "sync" | "export") {
            continue;
        }
        let flags: &[&str] = match tool {
            "poetry" => &["--with", "--only"],
            "uv" => &["--group"],
            "pdm" => &["--group", "-G"],
            // pip 25.1's PEP 735 groups, `--group [PATH:]NAME`.
            t if is_pip(t) => &["--group"],
            _ => continue,
        };
        let pip = is_pip(tool);
        let names = flag_values(&words[at + 2..], flags).into_iter().flat_map(|v| v.split(','));
        for g in names.map(|g| if pip { g.rsplit_once(':').map_or(g, |(_, name)| name) } else { g }.trim()) {
            if !g.is_empty() && g != "main" && g != ":all" && !out.iter().any(|o| o == g) {
                out.push(g.to_string());
            }
        }
    }
    out
}

/// The values `words` give any of `flags`, in order: `--flag value` and
/// `--flag=value` alike.
fn flag_values<'a>(words: &'a [String], flags: &[&str]) -> Vec<&'a str> {
    let mut values = Vec::new();
    let mut rest = words.iter();
    while let Some(w) = rest.next() {
        match w.split_once('=') {
            Some((flag, v)) if flags.contains(&flag) => values.push(v),
            _ if flags.contains(&w.as_str()) => values.extend(rest.next().map(String::as_str)),
            _ => {}
        }
    }
    values
}

/// What [`install_extras`] says for `--all-extras`: every extra the
/// project declares.
pub(crate) const ALL_EXTRAS: &str = "*";

/// The project's extras a RUN's install steps ask for: uv's `--extra X`,
/// Poetry's `-E X`/`--extras "X Y"`, and `pip install .[X,Y]` (or the path
/// the context was copied to, `project_at`). `--all-extras` (uv's,
/// Poetry's) is [`ALL_EXTRAS`], for the caller to read the project's.
pub(crate) fn install_extras(text: &str, project_at: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |list: &str| {
        for e in list.split([',', ' ']).map(str::trim).filter(|e| !e.is_empty()) {
            if !out.iter().any(|o| o == e) {
                out.push(e.to_string());
            }
        }
    };
    for words in shell_commands(text) {
        let Some((at, tool, sub)) = packaging_tool(&words) else { continue };
        let flags: &[&str] = match (tool, sub) {
            ("uv", "sync" | "export") => &["--extra"],
            ("poetry", "install") => &["-E", "--extras"],
            _ => &[],
        };
        for v in flag_values(&words[at + 1..], flags) {
            add(v);
        }
        if matches!((tool, sub), ("uv", "sync" | "export") | ("poetry", "install"))
            && words[at + 1..].iter().any(|w| w == "--all-extras")
        {
            add(ALL_EXTRAS);
        }
        for w in &words[at + 1..] {
            // `pip install .[web]`, `-e .[web]`, `/app[web]`.
            if (is_pip(tool) || tool == "uv")
                && let Some((path, list)) = w.trim_matches(['"', '\'']).split_once('[')
                && let Some(list) = list.strip_suffix(']')
            {
                let path = path.trim_end_matches('/');
                if matches!(path, "." | "") || path.starts_with("./") || project_at.contains(&path) {
                    add(list);
                }
            }
        }
    }
    out
}

/// Whether a COPY of `source` brings the project's code (`.`, `src/`), not
/// only what resolving its dependencies needs (pyproject.toml, a lock,
/// requirements, a README the metadata names).
fn copies_project(source: &str) -> bool {
    let name = source.trim_end_matches('/').rsplit('/').next().unwrap_or(source).to_ascii_lowercase();
    let metadata = ["pyproject.toml", "poetry.lock", "uv.lock", "pdm.lock", "pipfile", "pipfile.lock", "setup.cfg"];
    !(metadata.contains(&name.as_str())
        || name.starts_with("requirements")
        || name.starts_with("readme")
        || name.starts_with("license")
        || name.starts_with("constraints"))
}

/// The first packaging tool a command runs (pip, Poetry, uv, PDM): where
/// it is, its name, and its subcommand, the word after it (`poetry run pip
/// install` is Poetry's `run`, not an install of Poetry's).
fn packaging_tool(words: &[String]) -> Option<(usize, &str, &str)> {
    let name = |w: &str| w.rsplit('/').next().unwrap_or(w).to_string();
    let at = words.iter().position(|w| {
        let n = name(w);
        ["pip", "pip3", "poetry", "uv", "pdm"].contains(&n.as_str()) || n.starts_with("pip3.")
    })?;
    let tool = words[at].rsplit('/').next().unwrap_or(&words[at]);
    Some((at, tool, words.get(at + 1).map(String::as_str).unwrap_or("")))
}

/// Whether a RUN's install steps install the project itself (Some(true)),
/// only its dependencies (Some(false)), or install nothing (None).
/// `copied_all`: the stage has copied the project's files already, without
/// which a tool cannot install the project even when asked.
/// `project_at`: where the stage copied the whole context to, so that an
/// install of that path installs the project.
fn installs_project(text: &str, copied_all: bool, project_at: &[&str]) -> Option<(bool, String)> {
    let mut found: Option<(bool, String)> = None;
    for command in shell_commands(text) {
        let Some((_, tool, sub)) = packaging_tool(&command) else { continue };
        let words: Vec<&str> = command.iter().map(String::as_str).collect();
        let has = |w: &str| words.contains(&w);
        let this = match tool {
            "poetry" if sub == "run" => None,
            "poetry" if sub == "install" => Some(copied_all && !has("--no-root")),
            "uv" if sub == "sync" => Some(copied_all && !has("--no-install-project") && !has("--no-install-workspace")),
            "pdm" if sub == "install" || sub == "sync" => Some(copied_all && !has("--no-self")),
            t if (is_pip(t) || t == "uv") && has("install") => {
                // `pip install .`, `-e .`, or the workdir by path: the project.
                let targets = words.iter().skip_while(|w| **w != "install").skip(1);
                let project = targets.filter(|w| !w.starts_with('-') || **w == "-e").any(|w| {
                    let path = w.split('[').next().unwrap_or(w).trim_end_matches('/');
                    matches!(*w, "." | "./" | "-e")
                        || w.starts_with("./")
                        || w.starts_with(".[")
                        || (path.starts_with('/') && project_at.contains(&path))
                });
                if project { Some(true) } else { has("-r").then_some(false).or(has("--requirement").then_some(false)) }
            }
            _ => None,
        };
        found = match (found, this) {
            (Some((true, step)), _) => Some((true, step)),
            (f, Some(t)) if t || f.is_none() => Some((t, words.join(" "))),
            (f, _) => f,
        };
    }
    found
}

/// `pip install poetry` and the like: the Dockerfile installing its own
/// packaging tool, which oxbuild does not need.
fn installs_packaging_tool(words: &[&str]) -> bool {
    let pip_install =
        words.windows(2).any(|w| w[0].rsplit('/').next().is_some_and(|t| t.starts_with("pip")) && w[1] == "install");
    pip_install
        && words.iter().skip_while(|w| **w != "install").skip(1).filter(|w| !w.starts_with('-')).all(|w| {
            let name = w.trim_matches(['"', '\'']).split(['=', '<', '>', '~', '[']).next().unwrap_or("");
            PACKAGING_TOOLS.contains(&name)
        })
}

/// `npm ci`, or `npm install` / `yarn install` / `pnpm install` with flags
/// only: the lock's packages, which oxbuild's Node layer installs.
fn installs_from_node_lock(words: &[&str]) -> bool {
    words.windows(2).any(|w| {
        let tool = w[0].rsplit('/').next().unwrap_or(w[0]);
        ["npm", "yarn", "pnpm"].contains(&tool) && ["ci", "install", "i"].contains(&w[1])
    }) && !words
        .iter()
        .skip_while(|w| !["ci", "install", "i"].contains(w))
        .skip(1)
        .take_while(|w| !["&&", ";", "||"].contains(w))
        .any(|w| !w.starts_with('-'))
}

/// Notes for what a final stage's `RUN` does that oxbuild does not carry over.
/// `pip install /wheels/*`, `pip install *.whl` or `--find-links /wheels`:
/// the wheels another stage built from the requirements, which oxbuild's
/// dependency layer installs from the lock instead.
fn installs_built_wheels(words: &[&str]) -> bool {
    words.iter().any(|w| is_pip(w))
        && words.contains(&"install")
        && words.iter().any(|w| w.ends_with(".whl") || w.ends_with("/*") || w.starts_with("--find-links") || *w == "-f")
}

/// `text` is the RUN with the Dockerfile's variables expanded, `written`
/// as written: a variable the RUN sets itself is expanded from there.
fn not_carried(text: &str, written: &str, vars: &BTreeMap<String, String>, file: &str, notes: &mut Vec<Note>) {
    let words: Vec<&str> = text.split_whitespace().collect();
    let installs = |tool: &str| {
        words.windows(2).any(|w| w[0].ends_with(tool) && (w[1] == "install" || w[1] == "add" || w[1] == "-y"))
    };
    if installs("apt-get") || installs("apt") || installs("apk") || installs("yum") || installs("dnf") {
        // Variables the same RUN sets first (`RUN_DEPS="libpq5 ..." && apt-get
        // install $RUN_DEPS`), as its shell would expand them, then the
        // Dockerfile's own.
        let mut assigned = vars.clone();
        assigned.extend(
            shell_commands(written)
                .iter()
                .filter(|c| !c.is_empty() && c.iter().all(|w| w.split_once('=').is_some_and(|(k, _)| is_name(k))))
                .flatten()
                .filter_map(|w| w.split_once('=').map(|(k, v)| (k.to_string(), v.to_string()))),
        );
        let packages = system_packages(written, &assigned);
        let packages: Vec<&str> = packages.iter().map(String::as_str).collect();
        let named = packages.iter().all(|p| !p.contains('$')) && !packages.is_empty();
        let packages = if named { packages.join(" ") } else { "packages named by a shell variable".to_string() };
        notes.push(Note::new(
            format!("RUN that installs system packages in {file}: {packages}"),
            "oxbuild runs no commands in the image: use a base image that already has these packages (or build one once and name it in [image] base)",
        ));
    } else {
        // Command by command: `mkdir data && python manage.py collectstatic`
        // carries the mkdir over (`dirs`) but not the collectstatic, and
        // `[ -d /x ] || mkdir /x` is carried over whole.
        let commands = shell_commands(text);
        // Each command as written, with the operator after it (`curl … |
        // sh`, a quoted `'$d'`), when the expanded line cuts the same way.
        let raw = Some(shell_split(written)).filter(|r| r.len() == commands.len());
        // Commands by their place in the line.
        type Numbered = Vec<(usize, Vec<String>)>;
        let (edits, left): (Numbered, Numbered) = commands
            .into_iter()
            .enumerate()
            .filter(|(_, c)| !c.is_empty() && !carried(c))
            .partition(|(_, c)| edits_files(c));
        let shown = |commands: &[(usize, Vec<String>)]| {
            let mut text = String::new();
            for (n, (i, words)) in commands.iter().enumerate() {
                match &raw {
                    Some(raw) => {
                        let piece = raw[*i].0.replace("\\\n", " ");
                        text.push_str(&piece.split_whitespace().collect::<Vec<_>>().join(" "));
                        if n + 1 < commands.len() {
                            let op = if commands[n + 1].0 == i + 1 { raw[*i].1.as_str() } else { "&&" };
                            text.push_str(&format!(" {op} "));
                        }
                    }
                    None => {
                        text.push_str(&words.join(" "));
                        if n + 1 < commands.len() {
                            text.push_str(" && ");
                        }
                    }
                }
            }
            let short: String = text.chars().take(80).collect();
            format!("RUN {}{} in {file}", short.trim_end(), if text.chars().count() > 80 { "…" } else { "" })
        };
        if !edits.is_empty() {
            notes.push(Note::new(
                shown(&edits),
                if edits.iter().all(|(_, c)| edits_system_files(c)) {
                    "it edits the base's own files: oxbuild runs no commands in the image, so use a base image that has the change (build one once and name it in [image] base)"
                } else {
                    "it edits files in the image (line endings, settings): oxbuild copies the project as the checkout has it, so make the change in the project itself"
                },
            ));
        }
        if left.is_empty() {
            return;
        }
        notes.push(Note::new(
            shown(&left),
            "oxbuild runs no commands in the image: if the app needs what it makes (collectstatic, compiled translations, a frontend build), run it in CI before `oxbuild build` so that its output is in the project, or make it part of the base",
        ));
    }
}

/// The packages the system package manager's installs of a `RUN` name
/// (`apt-get install`, `apk add`, `yum`/`dnf install`), command by command,
/// so that an `echo "install build dependencies"` names none; a `$VAR` is
/// expanded from `vars`, and stays as it is when they do not set it.
fn system_packages(written: &str, vars: &BTreeMap<String, String>) -> Vec<String> {
    // Options whose value is the next word.
    const VALUED: [&str; 8] = ["--virtual", "-t", "--repository", "-X", "-o", "--target-release", "--enablerepo", "-c"];
    let mut out: Vec<String> = Vec::new();
    for words in shell_commands(written) {
        let at = words.iter().position(|w| {
            ["apt-get", "apt", "apk", "yum", "dnf", "microdnf"].contains(&w.rsplit('/').next().unwrap_or(w))
        });
        let Some(at) = at else { continue };
        let Some(verb) = words[at + 1..].iter().position(|w| w == "install" || w == "add") else { continue };
        let mut skip = false;
        for w in &words[at + 2 + verb..] {
            if std::mem::take(&mut skip) {
                continue;
            }
            if w.starts_with('-') {
                skip = VALUED.contains(&w.as_str());
                continue;
            }
            let name = w.trim_start_matches('$').trim_start_matches('{').trim_end_matches('}');
            let expanded = match vars.get(name).filter(|_| w.starts_with('$')) {
                Some(value) => value.split_whitespace().filter(|p| *p != "\\").map(str::to_string).collect(),
                None => vec![w.clone()],
            };
            for p in expanded {
                if !out.contains(&p) {
                    out.push(p);
                }
            }
        }
    }
    out
}

/// Whether `word` is a shell variable's name.
fn is_name(word: &str) -> bool {
    word.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && word.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether one command edits files in place (`sed -i`, `dos2unix`, `perl -pi`).
fn edits_files(words: &[String]) -> bool {
    let program = words.first().map(|w| w.rsplit('/').next().unwrap_or(w)).unwrap_or("");
    match program {
        "sed" => words[1..].iter().any(|w| w == "-i" || w.starts_with("-i") || w == "--in-place"),
        "perl" => words[1..].iter().any(|w| w.starts_with("-pi") || w.starts_with("-i")),
        "dos2unix" | "unix2dos" => true,
        _ => false,
    }
}

/// Whether an editing command ([`edits_files`]) edits only the system's
/// files (`sed -i … /etc/ssl/openssl.cnf`), which come with the base, not
/// the project.
fn edits_system_files(words: &[String]) -> bool {
    const SYSTEM: [&str; 5] = ["/etc/", "/usr/", "/lib/", "/var/", "/root/"];
    let paths: Vec<&String> = words[1..].iter().filter(|w| w.starts_with('/')).collect();
    !paths.is_empty() && paths.iter().all(|p| SYSTEM.iter().any(|s| p.starts_with(s)))
}

/// Whether one command of a final stage's `RUN` is carried over, or needs
/// nothing: an install from the lock (or of what it lacks, noted apart), a
/// user, a directory or its owner, bytecode (oxbuild compiles it), a test
/// or a message, a cache removed.
fn carried(words: &[String]) -> bool {
    let text = words.join(" ");
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let program = words.first().map(|w| w.rsplit('/').next().unwrap_or(w)).unwrap_or("");
    let setup = ["useradd", "adduser", "groupadd", "addgroup", "usermod", "mkdir", "chown", "chmod"];
    // (An `echo` into a file writes the image: not nothing.)
    let writes = words.iter().any(|w| w.contains('>'));
    let nothing = ["[", "test", "true", ":", "echo", "printf", "set", "cd", "export"];
    let compiles = program.starts_with("python") && words.get(1..3) == Some(&["-m", "compileall"]);
    // The Dockerfile's own packaging tool's settings (`poetry config
    // virtualenvs.create false`): oxbuild uses no such tool.
    let tools = ["poetry", "pip", "pip3", "pipenv", "pdm", "uv", "npm", "yarn", "pnpm"];
    let configures_tool = tools.contains(&program) && words.get(1) == Some(&"config");
    let caches = ["/tmp/", "/var/lib/apt/lists", "/var/cache/", "/var/apk/", "/root/.cache", "~/.cache"];
    let removes_cache = program == "rm"
        && words[1..].iter().filter(|w| !w.starts_with('-')).all(|w| caches.iter().any(|c| w.starts_with(c)));
    // The project itself, or its groups or extras (`pip install --group docker .`).
    let installs_the_project = installs_project(&text, true, &[]).is_some_and(|(p, _)| p)
        || !install_groups(&text).is_empty()
        || !install_extras(&text, &[]).is_empty();
    install_step(&text).is_some()
        || installs_the_project
        || installs_from_node_lock(&words)
        || installs_packaging_tool(&words)
        || installs_built_wheels(&words)
        || !unlocked_packages(&text).is_empty()
        || setup.contains(&program)
        || (nothing.contains(&program) && !writes)
        || compiles
        || removes_cache
        || configures_tool
}

#[cfg(test)]
mod tests {
    use super::*;

    const MULTI: &str = r#"# syntax=docker/dockerfile:1
ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim AS builder
WORKDIR /build
COPY requirements.txt .
RUN pip install --no-cache-dir --prefix=/install \
        -r requirements.txt

FROM python:${PYTHON_VERSION}-slim AS runtime
ARG APP_PORT=5000
ENV PYTHONUNBUFFERED=1 \
    APP_HOME=/srv/app
RUN apt-get update && apt-get install -y --no-install-recommends libpq5 \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home -u 10001 web
WORKDIR $APP_HOME
COPY --from=builder /install /usr/local
COPY --chown=web:web app ./app
COPY boot.sh .
USER web
EXPOSE ${APP_PORT}/tcp
HEALTHCHECK --interval=10s --timeout=3s CMD curl -fsS http://localhost:5000/health || exit 1
ENTRYPOINT ["./boot.sh"]
"#;

    #[test]
    fn a_multi_stage_file_gives_the_final_stage_with_its_builders_install_step() {
        let d = read(MULTI, "Dockerfile").unwrap();
        assert_eq!(d.base.as_deref(), Some("python:3.11-slim"));
        assert_eq!(d.workdir.as_deref(), Some("/srv/app"));
        assert_eq!(d.user, Some(("web".to_string(), Some(10001))));
        assert_eq!(d.entrypoint, Some(vec!["./boot.sh".to_string()]));
        assert_eq!(d.ports, vec![5000]);
        assert_eq!(d.env.get("APP_HOME").map(String::as_str), Some("/srv/app"));
        assert_eq!(d.copies, vec!["app".to_string(), "boot.sh".to_string()]);
        assert_eq!(d.lock, Some(("requirements.txt".to_string(), "pip")));
        let health = d.health.unwrap();
        assert_eq!(health.http.as_deref(), Some("http://127.0.0.1:5000/health"));
        assert_eq!(health.interval.as_deref(), Some("10s"));
        assert!(d.notes.iter().any(|n| n.what.contains("libpq5") && n.why.contains("base image")), "{:?}", d.notes);
    }

    #[test]
    fn whether_the_dockerfile_installs_the_project_itself_is_read() {
        let installs = |text: &str| read(text, "Dockerfile").unwrap().installs_project.map(|(i, _)| i);
        // Dependencies first, before the files: the app runs from its files.
        let deps_first = "FROM python:3.11\nWORKDIR /app\nCOPY poetry.lock pyproject.toml ./\nRUN pip install poetry && poetry install --no-dev\nCOPY . ./\nCMD [\"uvicorn\", \"app.main:app\"]\n";
        assert_eq!(installs(deps_first), Some(false));
        let no_root = "FROM python:3.11\nCOPY . .\nRUN poetry install --no-root\nCMD [\"python3\", \"main.py\"]\n";
        assert_eq!(installs(no_root), Some(false));
        let uv =
            "FROM python:3.11\nCOPY . .\nRUN uv sync --frozen --no-install-project\nCMD [\"python3\", \"main.py\"]\n";
        assert_eq!(installs(uv), Some(false));
        // Installed after the files are there, or by `pip install .`.
        let after = "FROM python:3.11\nCOPY pyproject.toml .\nRUN poetry install --no-root\nCOPY . .\nRUN poetry install\nCMD [\"app\"]\n";
        // `poetry run pip install -U pip` is pip's, and installs no project.
        let run = "FROM python:3.11\nCOPY pyproject.toml poetry.lock ./\nRUN poetry run pip install -U pip && poetry install --with prod\nCOPY . .\nCMD [\"app\"]\n";
        let d = read(run, "Dockerfile").unwrap();
        assert_eq!(d.installs_project, Some((false, "poetry install --with prod".to_string())));
        assert_eq!(d.groups, ["prod"]);
        // The package's code copied in parts (`COPY src ./src`) is copied too.
        let parts = "FROM python:3.11\nCOPY pyproject.toml poetry.lock ./\nCOPY src ./src\nRUN poetry install --only main\nCMD [\"app\"]\n";
        assert_eq!(installs(parts), Some(true));
        // From a builder stage the final one copies from.
        let builder = "FROM python:3.11 AS builder\nCOPY pyproject.toml poetry.lock ./\nRUN poetry install --with prod --no-root\nFROM python:3.11-slim\nCOPY --from=builder /app/.venv /app/.venv\nCOPY . .\nCMD [\"app\"]\n";
        let d = read(builder, "Dockerfile").unwrap();
        assert_eq!(d.groups, ["prod"]);
        assert_eq!(d.installs_project.map(|(i, _)| i), Some(false));
        assert_eq!(install_groups("uv sync --frozen --group web --group=jobs"), ["web", "jobs"]);
        assert_eq!(install_groups("poetry install --only main,gunicorn"), ["gunicorn"]);
        assert_eq!(install_groups("pdm install -G prod --prod"), ["prod"]);
        // The project's extras.
        assert_eq!(
            install_extras("uv sync --frozen --extra postgresql --extra=redis --no-dev", &[]),
            ["postgresql", "redis"]
        );
        assert_eq!(install_extras("poetry install -E web --extras \"db cache\"", &[]), ["web", "db", "cache"]);
        assert_eq!(install_extras("uv sync --frozen --all-extras", &[]), [ALL_EXTRAS]);
        assert_eq!(install_extras("pip install --no-deps '.[mainapp,speed]'", &[]), ["mainapp", "speed"]);
        assert_eq!(install_extras("pip install /httpbin[mainapp]", &["/httpbin"]), ["mainapp"]);
        // Another package's extras are not the project's.
        assert_eq!(install_extras("pip install uvicorn[standard] /wheels/x[y]", &["/httpbin"]), Vec::<String>::new());
        // pip's PEP 735 groups, a file's path before the name or not.
        assert_eq!(install_groups("pip install --group docker --group pyproject.toml:web ."), ["docker", "web"]);
        assert_eq!(installs(after), Some(true));
        // The context copied to a path, then installed by that path (httpbin).
        let by_path = "FROM python:3.11\nCOPY requirements.txt /\nRUN pip install --no-deps -r /requirements.txt\nCOPY . /httpbin\nRUN pip install --no-deps /httpbin\nCMD [\"app\"]\n";
        assert_eq!(installs(by_path), Some(true));
        // Another path is not the project.
        let other = "FROM python:3.11\nCOPY . /httpbin\nRUN pip install -r /httpbin/requirements.txt && pip install /wheels/x.whl\nCMD [\"app\"]\n";
        assert_eq!(installs(other), Some(false));
        let pip = "FROM python:3.11\nCOPY . .\nRUN pip install -r requirements.txt && pip install --no-deps .\nCMD [\"app\"]\n";
        assert_eq!(installs(pip), Some(true));
        let none = "FROM python:3.11\nCOPY . .\nCMD [\"python3\", \"main.py\"]\n";
        assert_eq!(installs(none), None);
    }

    #[test]
    fn a_volume_is_a_directory_the_user_owns() {
        let text = "FROM python:3.11\nWORKDIR /app\nCOPY . .\nVOLUME /var/lib/radicale /app/cache\nVOLUME [\"/data\"]\nCMD [\"radicale\"]\n";
        let d = read(text, "Dockerfile").unwrap();
        assert_eq!(d.dirs, ["/var/lib/radicale", "/data"]);
        assert!(
            d.notes.iter().any(|n| n.what == "VOLUME in Dockerfile" && n.why.contains("[image] dirs")),
            "{:?}",
            d.notes
        );
    }

    /// isso's and kinto's front ends: a stage that makes files with RUN
    /// (`make js`), which the image copies from it.
    #[test]
    fn what_a_stage_makes_with_run_is_named_and_its_inputs_stay_out() {
        let text = "FROM python:3.11 AS assets\nWORKDIR /src\nCOPY Makefile assets ./\nCOPY vendor/ ./vendor/\nRUN make js\nFROM python:3.11\nWORKDIR /app\nCOPY app.py .\nCOPY --from=assets /src/dist ./static\nCOPY --from=assets /src/Makefile /src/vendor/x.js ./\nCMD [\"python3\", \"app.py\"]\n";
        let d = read(text, "Dockerfile").unwrap();
        let note = d.notes.iter().find(|n| n.what == "stage assets in Dockerfile").expect("a note");
        assert!(
            note.why.contains("copies /src/dist (to /app/static) from it, which its RUN steps make (make)"),
            "{}",
            note.why
        );
        // What a COPY put there by name is the context's, not made.
        assert!(!note.why.contains("Makefile") && !note.why.contains("x.js"), "{}", note.why);
        // The Makefile and vendor/ the image takes from it are the app's.
        assert_eq!(d.copies, ["app.py", "Makefile", "vendor/"]);
        assert_eq!(d.build_inputs, ["assets"], "what fed `make js`");
        // What the image takes from it as it was copied there stays the app's.
        let text = "FROM python:3.12-slim AS build\nWORKDIR /src\nCOPY app/ ./app/\nCOPY Makefile ./\nRUN make static\nFROM python:3.12-slim\nWORKDIR /srv\nCOPY --from=build /src/app ./app\nCOPY --from=build /src/static ./static\nCMD [\"gunicorn\", \"app.wsgi\"]\n";
        let d = read(text, "Dockerfile").unwrap();
        assert!(d.notes.iter().any(|n| n.why.contains("/src/static (to /srv/static)")), "{:?}", d.notes);
        assert_eq!(d.copies, ["app/"]);
        assert_eq!(d.build_inputs, ["Makefile"]);
        // A system package's program is no build output.
        let text = "FROM debian:12 AS tools\nRUN apt-get install -y ffmpeg\nFROM python:3.12\nCOPY --from=tools /usr/bin/ffmpeg /usr/bin/\nCOPY app.py .\nCMD [\"python3\", \"app.py\"]\n";
        assert!(!read(text, "Dockerfile").unwrap().notes.iter().any(|n| n.what.starts_with("stage tools")));
        // A stage that only copies hands over the context's files.
        let text = "FROM alpine AS src\nCOPY . /src\nRUN rm -rf /src/tests\nFROM python:3.11\nCOPY --from=src /src /app\nCMD [\"python3\", \"/app/app.py\"]\n";
        let d = read(text, "Dockerfile").unwrap();
        assert!(!d.notes.iter().any(|n| n.what.starts_with("stage ")), "{:?}", d.notes);
    }

    /// A stage that is only another image, copied from, is another image.
    #[test]
    fn files_copied_from_a_stage_that_is_only_an_image_are_named() {
        let text = "FROM example.org/team/app:builder AS builder\nFROM python:3.11-slim\nWORKDIR /srv\nCOPY --from=builder /srv/app/ ./app/\nCOPY app.py .\nCMD [\"python3\", \"app/main.py\"]\n";
        let d = read(text, "Dockerfile").unwrap();
        let note = d.notes.iter().find(|n| n.what == "COPY --from=builder in Dockerfile").expect("a note");
        assert!(note.why.contains("(example.org/team/app:builder: /srv/app)"), "{note:?}");
        // A stage with steps of its own is read as before.
        let text = "FROM python:3.11 AS builder\nRUN echo\nFROM python:3.11-slim\nCOPY --from=builder /x /x\nCMD [\"python3\", \"app.py\"]\n";
        assert!(!read(text, "Dockerfile").unwrap().notes.iter().any(|n| n.what.starts_with("COPY --from=builder")));
    }

    #[test]
    fn quoted_paths_are_read_as_docker_reads_them() {
        let text = "FROM python:3.11-slim\nARG D=/srv/app\nWORKDIR \"${D}\"\nCOPY app.py \"${D}\"/app.py\nCOPY \"static\" ./\nUSER \"app\"\nEXPOSE \"8000\"\nCMD [\"python3\", \"app.py\"]\n";
        let d = read(text, "Dockerfile").unwrap();
        assert_eq!(d.workdir.as_deref(), Some("/srv/app"));
        let placed: Vec<(String, String)> = d.placed().iter().map(|(s, t, _)| (s.clone(), t.clone())).collect();
        assert_eq!(
            placed,
            [("app.py".to_string(), "/srv/app/app.py".to_string()), ("static".to_string(), "/srv/app".to_string())]
        );
        assert_eq!(d.user, Some(("app".to_string(), None)));
        assert_eq!(d.ports, [8000]);
    }

    #[test]
    fn a_variable_only_the_base_could_set_is_noted_not_silently_emptied() {
        let vars: BTreeMap<String, String> = [("A".to_string(), "1".to_string())].into();
        assert_eq!(unset_vars("$A/$B/${C}/${D:-x}/${E:+y}/${F-z}/$B/$$", &vars), ["B", "C"]);
        // A command whose variables are all known runs without a shell; one
        // that names any other, even with a default, keeps the shell, which
        // reads the container's environment at run time.
        assert_eq!(shell_argv("gunicorn -b :${A}", &vars), ["gunicorn", "-b", ":1"]);
        assert_eq!(shell_argv("gunicorn -b :${PORT:-8000}", &vars), ["/bin/sh", "-c", "gunicorn -b :${PORT:-8000}"]);
        assert_eq!(shell_argv("run $", &vars), ["/bin/sh", "-c", "run $"]);
        let text = "FROM searxng/base\nARG EMPTY\nENV P=\"$CONFIG_PATH/settings.yml\" Q=\"$EMPTY\" PATH=\"/venv/bin:$PATH\"\nWORKDIR /app\nVOLUME $DATA_PATH\nVOLUME /data\nCMD [\"app\"]\n";
        let d = read(text, "Dockerfile").unwrap();
        assert_eq!(d.env.get("P").map(String::as_str), Some("/settings.yml"));
        let env = d.notes.iter().find(|n| n.what == "ENV P in Dockerfile").expect("a note on P");
        assert!(env.why.contains("$CONFIG_PATH is set nowhere") && env.why.contains("`/settings.yml`"), "{}", env.why);
        // An ARG with no value is set, to nothing, by the Dockerfile itself.
        // PATH is not carried (the image's is oxbuild's), so nothing is said of it.
        assert!(!d.notes.iter().any(|n| ["ENV Q in Dockerfile", "ENV PATH in Dockerfile"].contains(&&*n.what)));
        let volume = d.notes.iter().find(|n| n.what == "VOLUME $DATA_PATH in Dockerfile").expect("a note");
        assert!(volume.why.contains("add it to [image] dirs"), "{}", volume.why);
        assert_eq!(d.dirs, ["/data"]);
    }

    #[test]
    fn system_packages_a_variable_of_the_same_run_names_are_listed() {
        let text = "FROM python:3.11\nRUN set -ex \\\n    && RUN_DEPS=\" \\\n        libexpat1 \\\n        libpq5 \\\n    \" \\\n    && apt-get update && apt-get install -y --no-install-recommends $RUN_DEPS \\\n    && rm -rf /var/lib/apt/lists/*\nCMD [\"python3\", \"app.py\"]\n";
        let d = read(text, "Dockerfile").unwrap();
        let notes: Vec<&str> = d.notes.iter().map(|n| n.what.as_str()).collect();
        assert!(notes.contains(&"RUN that installs system packages in Dockerfile: libexpat1 libpq5"), "{notes:?}");
        // One the RUN does not set stays unnamed.
        let text = "FROM python:3.11\nRUN apt-get install -y $DEPS\nCMD [\"python3\", \"app.py\"]\n";
        let d = read(text, "Dockerfile").unwrap();
        assert!(d.notes.iter().any(|n| n.what.ends_with("packages named by a shell variable")), "{:?}", d.notes);
    }

    #[test]
    fn a_packaging_tools_settings_need_no_note_and_an_in_place_edit_gets_its_own() {
        let text = "FROM python:3.11\nWORKDIR /app\nRUN pip install poetry && poetry config virtualenvs.in-project true\nCOPY . .\nRUN sed -i 's/\\r$//g' /app/entrypoint.sh && chmod +x /app/entrypoint.sh\nCMD [\"./entrypoint.sh\"]\n";
        let d = read(text, "Dockerfile").unwrap();
        let notes: Vec<(&str, &str)> = d.notes.iter().map(|n| (n.what.as_str(), n.why.as_str())).collect();
        assert!(!notes.iter().any(|(what, _)| what.contains("poetry")), "{notes:?}");
        let edit = notes.iter().find(|(what, _)| what.starts_with("RUN sed -i")).unwrap_or_else(|| panic!("{notes:?}"));
        assert!(edit.1.contains("edits files in the image") && !edit.0.contains("chmod"), "{edit:?}");
        assert!(!notes.iter().any(|(_, why)| why.contains("collectstatic")), "{notes:?}");
        // changedetection.io's edit of the base's OpenSSL settings: a base with the change.
        let text = "FROM python:3.11\nRUN sed -i 's/^CipherString.*/CipherString = DEFAULT@SECLEVEL=1/' /etc/ssl/openssl.cnf\nCMD [\"python3\", \"app.py\"]\n";
        let d = read(text, "Dockerfile").unwrap();
        let edit = d.notes.iter().find(|n| n.what.starts_with("RUN sed -i")).expect("a note");
        assert!(edit.why.starts_with("it edits the base's own files") && edit.why.contains("[image] base"), "{edit:?}");
    }

    #[test]
    /// sissbruecker/linkding's check: the URL's variables are filled in as
    /// the image's shell would (ENV, else the default, else empty), with a
    /// note; one a shell alone can work out stays a command.
    fn a_healthcheck_urls_variables_are_filled_in_or_the_command_kept() {
        let text = "FROM python:3.12\nENV LD_CONTEXT_PATH=\nHEALTHCHECK --interval=30s CMD curl -f http://localhost:${LD_SERVER_PORT:-9090}/${LD_CONTEXT_PATH}health || exit 1\nCMD [\"./run.sh\"]\n";
        let d = read(text, "Dockerfile").unwrap();
        assert_eq!(d.health.unwrap().http.as_deref(), Some("http://127.0.0.1:9090/health"));
        assert!(d.notes.iter().any(|n| n.what == "the variables in HEALTHCHECK's URL in Dockerfile"), "{:?}", d.notes);
        let text = "FROM python:3.12\nENV PORT=8000\nHEALTHCHECK CMD curl -f http://localhost:$PORT/ping\nCMD [\"./run.sh\"]\n";
        assert_eq!(
            read(text, "Dockerfile").unwrap().health.unwrap().http.as_deref(),
            Some("http://127.0.0.1:8000/ping")
        );
        let text =
            "FROM python:3.12\nHEALTHCHECK CMD curl -f http://localhost:$(cat /port)/ || exit 1\nCMD [\"./run.sh\"]\n";
        let d = read(text, "Dockerfile").unwrap();
        let health = d.health.unwrap();
        assert_eq!(health.http, None);
        assert_eq!(health.cmd.unwrap()[0], "/bin/sh");
        assert!(d.notes.iter().all(|n| !n.what.contains("HEALTHCHECK")), "{:?}", d.notes);
    }

    /// What a note quotes of a `RUN` is as written: its pipes, its quotes
    /// and what they keep from the shell (`'$d'`); the system packages
    /// are those the installs name, not an `echo`'s words.
    #[test]
    fn a_run_line_is_quoted_as_written() {
        let text = "FROM python:3.12\nRUN curl -LsSf https://astral.sh/uv/install.sh | sh\nRUN sed -i '/# Development/,$d' requirements.txt\nRUN echo \"**** install build dependencies ****\" &&\\\n    apk add --no-cache --virtual=build-deps \\\n    gcc musl-dev &&\\\n    echo \"**** install runtime packages ****\" && \\\n    apk add --no-cache --virtual .run-deps shadow postgresql-libs && \\\n    mkdir -p /etc/app\nCMD [\"./run.sh\"]\n";
        let d = read(text, "Dockerfile").unwrap();
        let notes: Vec<&str> = d.notes.iter().map(|n| n.what.as_str()).collect();
        assert!(notes.contains(&"RUN curl -LsSf https://astral.sh/uv/install.sh | sh in Dockerfile"), "{notes:?}");
        assert!(notes.contains(&"RUN sed -i '/# Development/,$d' requirements.txt in Dockerfile"), "{notes:?}");
        assert!(
            notes.contains(&"RUN that installs system packages in Dockerfile: gcc musl-dev shadow postgresql-libs"),
            "{notes:?}"
        );
    }

    #[test]
    /// A `RUN` is weighed command by command: what is carried over (a
    /// directory, a user, bytecode) or needs nothing (a test, a cache
    /// removed) is not named; what is left is, alone.
    fn a_run_line_names_only_the_commands_left_behind() {
        let text = "FROM python:3.12\nWORKDIR /srv\nRUN [ ! -d \"/datastore\" ] && mkdir /datastore\nRUN mkdir data && python manage.py collectstatic --noinput\nRUN python -m compileall . && rm -rf /root/.cache/pip\nRUN ln -s /usr/share/zoneinfo/UTC /etc/localtime\nRUN python -c \"import nltk; nltk.download('punkt')\"\nRUN echo Europe/Berlin > /etc/timezone && echo done\nCMD [\"./run.sh\"]\n";
        let d = read(text, "Dockerfile").unwrap();
        assert_eq!(d.dirs, ["/datastore", "/srv/data"]);
        let runs: Vec<&str> = d.notes.iter().map(|n| n.what.as_str()).filter(|w| w.starts_with("RUN")).collect();
        assert_eq!(
            runs,
            [
                "RUN python manage.py collectstatic --noinput in Dockerfile",
                "RUN ln -s /usr/share/zoneinfo/UTC /etc/localtime in Dockerfile",
                "RUN python -c \"import nltk; nltk.download('punkt')\" in Dockerfile",
                "RUN echo Europe/Berlin > /etc/timezone in Dockerfile"
            ]
        );
        assert_eq!(
            shell_pieces("pip install x 2>&1 | tee log && echo ok &> /dev/null; a || b"),
            ["pip install x 2>&1", "tee log", "echo ok &> /dev/null", "a", "b"]
        );
    }

    /// uptime-kuma's last stage uploads artifacts in CI and sets no
    /// command; its `release` stage is the image.
    #[test]
    fn a_last_stage_with_no_command_names_the_stages_that_have_one() {
        let text = "FROM node:20 AS build\nRUN npm ci\nFROM node:20-slim AS release\nCOPY --from=build /app /app\nCMD [\"node\", \"server/server.js\"]\nFROM release AS nightly\nRUN echo x\nFROM alpine AS upload-artifact\nRUN echo upload\n";
        let d = read(text, "Dockerfile").unwrap();
        let note = d.notes.iter().find(|n| n.what == "stage upload-artifact in Dockerfile").expect("a note");
        assert!(note.why.contains("stage release does") && note.why.contains("--target release"), "{}", note.why);
        // The stage named reads with its command; nightly inherits one from release.
        let d = read_target(text, "Dockerfile", Some("release")).unwrap();
        assert!(!d.notes.iter().any(|n| n.what.starts_with("stage ")), "{:?}", d.notes);
        assert!(read_target(text, "Dockerfile", Some("nightly")).unwrap().cmd.is_some());
    }

    #[test]
    /// linkding's last stage adds a browser for snapshots to the plain
    /// image: `--target linkding` reads that one (and what it builds on),
    /// and a name the file lacks is an error that lists the stages.
    fn a_target_stage_is_the_image() {
        let text = "FROM python:3.12 AS linkding\nENV LD_PORT=9090\nCMD [\"./bootstrap.sh\"]\n\nFROM linkding AS linkding-plus\nENV LD_ENABLE_SNAPSHOTS=True\n";
        let last = read(text, "Dockerfile").unwrap();
        assert!(last.env.contains_key("LD_ENABLE_SNAPSHOTS"));
        let plain = read_target(text, "Dockerfile", Some("LinkDing")).unwrap();
        assert!(!plain.env.contains_key("LD_ENABLE_SNAPSHOTS") && plain.env.contains_key("LD_PORT"), "{:?}", plain.env);
        assert_eq!(plain.cmd, Some(vec!["./bootstrap.sh".to_string()]));
        let e = read_target(text, "Dockerfile", Some("prod")).unwrap_err();
        assert_eq!(e, "Dockerfile has no stage named `prod` (--target); its named stages: linkding, linkding-plus");
    }

    #[test]
    /// awesome-compose's dev-envs stage: a `RUN <<EOF` script is weighed
    /// command by command like any RUN, and a `COPY --from` another image
    /// (not a stage) is named; one by stage number is that stage.
    fn here_documents_and_copies_from_other_images_are_weighed() {
        let text = "FROM python:3.12 AS builder\nCOPY requirements.txt .\nRUN pip install -r requirements.txt\n\nFROM python:3.12\nRUN python3 <<EOF\nprint('hi')\nEOF\nRUN echo $((1 << 2))\nRUN <<EOF\nset -e\napt-get update\napt-get install -y libpq5 \\\n  git\nmkdir /data\nEOF\nRUN <<EOT bash\npython manage.py collectstatic\nEOT\nCOPY --from=nginx:1.27 /etc/nginx /etc/nginx\nCOPY --from=ghcr.io/astral-sh/uv:0.5 /uv /bin/\nCOPY --from=0 /usr/local /usr/local\nCOPY . .\nCMD [\"python3\", \"app.py\"]\n";
        let d = read(text, "Dockerfile").unwrap();
        let notes: Vec<&str> = d.notes.iter().map(|n| n.what.as_str()).collect();
        assert!(notes.contains(&"RUN that installs system packages in Dockerfile: libpq5 git"), "{notes:?}");
        assert!(notes.contains(&"RUN python manage.py collectstatic in Dockerfile"), "{notes:?}");
        assert!(notes.contains(&"COPY --from=nginx:1.27 in Dockerfile"), "{notes:?}");
        // A here-document after a program: read, and the program named.
        assert!(notes.contains(&"RUN python3 (with a here-document) in Dockerfile"), "{notes:?}");
        let uv = d.notes.iter().find(|n| n.what.starts_with("COPY --from=ghcr.io/astral-sh/uv")).expect("a note");
        assert!(uv.why.starts_with("an installer"), "{}", uv.why);
        assert!(!notes.iter().any(|n| n.contains("--from=0")), "stage 0 is the builder: {notes:?}");
        assert_eq!(d.lock, Some(("requirements.txt".to_string(), "pip")), "read through --from=0");
        assert_eq!(d.dirs, ["/data"]);
    }

    #[test]
    fn what_a_builder_stage_took_from_the_context_reaches_the_final_image() {
        let text = "FROM python:3.12 AS builder\nCOPY requirements.txt /tmp\nRUN pip wheel -r /tmp/requirements.txt -w /wheels\nCOPY . /opt/app/\nRUN python manage.py collectstatic\n\nFROM python:3.12-slim\nWORKDIR /opt/app\nCOPY --from=builder /opt/app/ /opt/app/\nCOPY docker/status.py /opt/app/\nCMD [\"uwsgi\", \"docker/uwsgi.ini\"]\n";
        let d = read(text, "docker/Dockerfile").unwrap();
        assert_eq!(d.copies, vec!["docker/status.py".to_string(), ".".to_string()]);
    }

    #[test]
    fn a_front_end_stage_hands_over_its_output_and_a_python_builder_its_copies() {
        let text = "FROM node:20 AS web\nCOPY package.json ./\nCOPY . .\nRUN npm ci && npm run build\n\nFROM python:3.12 AS builder\nCOPY . /src\nRUN npm ci && npm run build:css && pip install --prefix /install -r /src/requirements.txt\n\nFROM python:3.12-slim\nCOPY --from=web /dist /app/static\nCOPY --from=builder /src /app\nCOPY docker/status.py /app/\nCMD [\"python3\", \"app.py\"]\n";
        let d = read(text, "Dockerfile").unwrap();
        assert_eq!(d.build_inputs, ["package.json", "."]);
        assert_eq!(d.copies, ["docker/status.py", "."], "the builder's copies reach the image");
        assert!(d.notes.iter().any(|n| n.what == "stage web in Dockerfile"), "{:?}", d.notes);
        assert!(!d.notes.iter().any(|n| n.what == "stage builder in Dockerfile"), "{:?}", d.notes);
    }

    #[test]
    /// testdrivenio's production Dockerfiles: a builder lints with flake8 and
    /// makes wheels of the requirements, the final stage installs them.
    fn wheels_built_from_the_requirements_are_the_install_step_and_a_linter_is_no_package() {
        let text = "FROM python:3.11 AS builder\nWORKDIR /src\nRUN pip install flake8==6.0.0\nCOPY . /src/\nRUN flake8 --ignore=E501 .\nCOPY ./requirements.txt .\nRUN pip wheel --no-cache-dir --no-deps --wheel-dir /src/wheels -r requirements.txt\n\nFROM python:3.11-slim\nWORKDIR /home/app/web\nCOPY --from=builder /src/wheels /wheels\nRUN pip install --no-cache /wheels/*\nCOPY . .\nCMD [\"gunicorn\", \"app:app\"]\n";
        let d = read(text, "Dockerfile").unwrap();
        assert_eq!(d.lock, Some(("requirements.txt".to_string(), "pip")));
        assert!(d.unlocked.is_empty(), "{:?}", d.unlocked);
        assert!(!d.notes.iter().any(|n| n.what.starts_with("RUN pip")), "{:?}", d.notes);
    }

    #[test]
    /// `ENTRYPOINT []` clears the base's entrypoint (uv's example images do
    /// it); the parser refuses an empty list, so it is read as cleared.
    fn an_empty_entrypoint_clears_the_bases() {
        let text = "FROM ghcr.io/astral-sh/uv:python3.12-bookworm-slim\nWORKDIR /app\nENTRYPOINT []\nCMD [\"fastapi\", \"run\"]\n";
        let d = read(text, "Dockerfile").unwrap();
        assert_eq!(d.entrypoint, Some(Vec::new()));
        assert_eq!(d.cmd, Some(vec!["fastapi".to_string(), "run".to_string()]));
        let d = read("FROM python:3.12\nentrypoint [ ]\n", "Dockerfile").unwrap();
        assert_eq!(d.entrypoint, Some(Vec::new()));
    }

    #[test]
    fn directories_a_run_makes_become_dirs() {
        let text = "FROM python:3.12\nWORKDIR /app\nRUN mkdir /datastore && mkdir -p -m 755 uploads /var/log/app $HOME/x \\\n && chown app /datastore\nCMD [\"python3\", \"serve.py\"]\n";
        assert_eq!(read(text, "Dockerfile").unwrap().dirs, ["/datastore", "/app/uploads", "/var/log/app"]);
    }

    #[test]
    fn a_numeric_user_takes_the_name_of_the_account_made_with_that_uid() {
        let text = "FROM python:3.12\nRUN useradd \\\n    --no-log-init \\\n    -u 1001 \\\n    ctfd && mkdir -p /var/log/app\nUSER 1001\nCMD [\"python3\", \"serve.py\"]\n";
        assert_eq!(read(text, "Dockerfile").unwrap().user, Some(("ctfd".to_string(), Some(1001))));
    }

    #[test]
    fn stages_chained_by_name_inherit_and_shell_forms_split() {
        let text = "FROM python:3.12-slim AS base\nENV PORT=8080\nWORKDIR /app\n\nFROM base AS final\nRUN pip install poetry && poetry install --only main\nCMD gunicorn -b 0.0.0.0:$PORT web:app\n";
        let d = read(text, "Dockerfile").unwrap();
        assert_eq!(d.base.as_deref(), Some("python:3.12-slim"));
        assert_eq!(d.workdir.as_deref(), Some("/app"));
        assert_eq!(d.cmd, Some(vec!["gunicorn".into(), "-b".into(), "0.0.0.0:8080".into(), "web:app".into()]));
        assert_eq!(d.lock, Some(("poetry.lock".to_string(), "poetry")));
        let shell = read("FROM x\nCMD python manage.py migrate && gunicorn app.wsgi\n", "Dockerfile").unwrap();
        assert_eq!(shell.cmd.unwrap()[..2], ["/bin/sh".to_string(), "-c".to_string()]);
    }

    #[test]
    fn an_install_step_reads_the_file_the_context_copied_and_names_packages_outside_the_lock() {
        let text = "FROM python:3.12-slim\nADD requirements/ /requirements/\nRUN uv pip install --no-cache -r /requirements/production.txt\nWORKDIR /code/\nADD . /code/\nRUN pip install gunicorn pymysql \"cryptography>=42\"\n";
        let d = read(text, "Dockerfile").unwrap();
        assert_eq!(d.lock, Some(("requirements/production.txt".to_string(), "uv")));
        assert_eq!(d.workdir.as_deref(), Some("/code"));
        assert_eq!(d.unlocked, ["gunicorn", "pymysql", "cryptography"]);
        assert!(!d.notes.iter().any(|n| n.what.starts_with("RUN pip install")), "{:?}", d.notes);
        // Only the packages of a shell line, not what follows `||` or a redirection.
        // A builder's `pip wheel` names them too, with their extras.
        let wheel = "FROM python:3.12 AS builder\nRUN pip wheel --wheel-dir /wheels -r requirements.txt uwsgi \"psycopg[c]\"\nFROM python:3.12\nCOPY --from=builder /wheels /wheels\nRUN pip install /wheels/*\n";
        assert_eq!(read(wheel, "Dockerfile").unwrap().unlocked, ["uwsgi", "psycopg[c]"]);
        // An option's value is no package.
        let options = "FROM x\nRUN pip install --trusted-host pypi.org --progress-bar off --timeout 60 gunicorn\n";
        assert_eq!(read(options, "Dockerfile").unwrap().unlocked, ["gunicorn"]);
        // Tools pip needs to build sdists are no part of the image.
        let build_tools = "FROM x\nRUN pip install Cython setuptools_rust wheel && pip install gunicorn\n";
        assert_eq!(read(build_tools, "Dockerfile").unwrap().unlocked, ["gunicorn"]);
        let optional = "FROM x\nRUN pip3 install playwright || echo \"WARN: Failed to install. It can still run.\" && pip install -q opencv-python-headless 2>/dev/null | tee log\n";
        assert_eq!(read(optional, "Dockerfile").unwrap().unlocked, ["playwright", "opencv-python-headless"]);
        // A variable the same RUN sets is expanded as its shell would.
        let apt = read("FROM x\nRUN DEPS=\"libpq5 zlib1g\" && apt-get install -y $DEPS\n", "Dockerfile").unwrap();
        assert!(apt.notes[0].what.ends_with("system packages in Dockerfile: libpq5 zlib1g"), "{:?}", apt.notes);
    }

    #[test]
    fn substitution_forms() {
        let vars: BTreeMap<String, String> = [("A".to_string(), "1".to_string())].into();
        assert_eq!(expand("$A-${A}-${B:-two}-${A:+yes}-${B:+no}-$$", &vars), "1-1-two-yes--$$");
    }

    #[test]
    fn accounts_and_install_steps() {
        let a = accounts("groupadd -g 999 app && useradd -r -u 999 -g app app");
        assert_eq!(a.get("app"), Some(&999));
        assert_eq!(accounts("adduser -D -u 1001 worker").get("worker"), Some(&1001));
        assert_eq!(install_step("uv sync --frozen --no-dev"), Some(("uv.lock".into(), "uv")));
        assert_eq!(
            install_step("python -m pip install -r requirements/prod.txt"),
            Some(("requirements/prod.txt".into(), "pip"))
        );
        assert_eq!(install_step("pipenv install --deploy --system"), Some(("Pipfile.lock".into(), "pipenv")));
        assert_eq!(install_step("echo hi"), None);
    }
}
