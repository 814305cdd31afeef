//! `oxbuild assess` and `oxbuild health`: the only commands that use a
//! container runtime. The image goes into the runtime through a
//! docker-archive (`load`), so no registry is needed.

use std::time::Duration;

use oxbuild_image::Image;
use oxbuild_runtime::{Containers, Runtime, gates, health};
use serde_json::json;

use oxbuild_engine::{Assembled, Services};

use crate::build::{assemble, services};
use crate::cli::{AssessArgs, HealthArgs, StageArgs};
use crate::report::{Failure, Reporter};

/// The runtime `--runtime` or [runtime] names, with the variables of `--env`.
fn runtime(stage: &StageArgs, cfg: &oxbuild_config::Config) -> Result<Runtime, Failure> {
    let env = stage_env(stage)?;
    Ok(Runtime::detect(stage.runtime.as_deref().or(cfg.runtime.program.as_deref()))
        .map_err(Failure::runtime)?
        .with_env(env))
}

/// The variables of `--env`, from oxbuild's environment where only named:
/// checked before a command builds anything, and again when it runs a container.
pub fn stage_env(stage: &StageArgs) -> Result<Vec<(String, String)>, Failure> {
    container_env(&stage.env, |name| std::env::var(name).ok())
}

/// The (name, value) pairs of `--env`: NAME=VALUE, or NAME with the value
/// `lookup` finds (oxbuild's own environment). Errors name the flag and the
/// variable, never a value.
fn container_env(flags: &[String], lookup: impl Fn(&str) -> Option<String>) -> Result<Vec<(String, String)>, Failure> {
    let mut env: Vec<(String, String)> = Vec::new();
    for (n, flag) in flags.iter().enumerate() {
        let (name, value) = match flag.split_once('=') {
            Some((name, value)) => (name, Some(value.to_string())),
            None => (flag.as_str(), None),
        };
        let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            // Without `=` the whole flag may be a value typed wrongly
            // (`DATABASE_URL:postgres://...`): it is not shown then.
            let which = if value.is_some() { format!("`{name}`") } else { format!("number {}", n + 1) };
            return Err(Failure::config(format!(
                "--env {which}: not a variable name (letters, digits and _, not starting with a digit); write NAME=VALUE or NAME"
            )));
        }
        let value = match value {
            Some(v) => v,
            None => lookup(name).ok_or_else(|| {
                Failure::config(format!(
                    "--env {name}: {name} is not set in oxbuild's environment; set it, or write {name}=VALUE"
                ))
            })?,
        };
        env.retain(|(k, _)| k != name);
        env.push((name.to_string(), value));
    }
    Ok(env)
}

/// Puts `image` into the runtime (see `oxbuild_engine::load`) and returns its name there.
async fn load(runtime: &Runtime, image: &Image, assembled: &Assembled, services: &Services) -> Result<String, Failure> {
    let name = oxbuild_engine::load::runtime_name(&assembled.dir, image);
    oxbuild_engine::load::load(runtime, image, &name, services).await?;
    Ok(name)
}

/// Runs `stage`, removing every container of `containers` afterwards, also
/// when Ctrl-C or SIGTERM arrives first (then exiting 130 or 143).
async fn guarded<T>(containers: &Containers, stage: impl std::future::Future<Output = T>) -> T {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let sigterm = async {
        match term.as_mut() {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    let result = tokio::select! {
        r = stage => r,
        _ = tokio::signal::ctrl_c() => {
            containers.remove_all().await;
            eprintln!("interrupted: removed oxbuild's containers");
            std::process::exit(130);
        }
        _ = sigterm => {
            containers.remove_all().await;
            eprintln!("terminated: removed oxbuild's containers");
            std::process::exit(143);
        }
    };
    containers.remove_all().await;
    result
}

/// A finished stage: its JSON report and its human lines. A failed stage
/// carries its failure too; its diagnostics were printed on stderr already.
pub struct StageResult {
    pub json: serde_json::Value,
    pub human: Vec<String>,
    pub failure: Option<Failure>,
}

impl StageResult {
    /// Prints the result the way a single-stage command does.
    fn finish(self, out: Reporter) -> Result<(), Failure> {
        match self.failure {
            None => {
                out.result(&self.json, &self.human);
                Ok(())
            }
            Some(f) => {
                if out.json {
                    // The same error object every failed command reports, next to the stage's details.
                    let mut json = self.json;
                    json["error"] = json!({"kind": f.kind, "code": f.code, "message": f.message});
                    println!("{}", serde_json::to_string_pretty(&json).unwrap_or_default());
                } else {
                    for line in &self.human {
                        println!("{line}");
                    }
                }
                Err(f.reported())
            }
        }
    }
}

/// A container that could not start because the image's command is not
/// in it: the image's failure (health, exit 8), not the runtime's.
fn command_not_found(error: &str, config: &serde_json::Value) -> Option<Failure> {
    let missing = error.contains("executable file not found")
        || (error.contains("exec:") && error.contains("no such file or directory"));
    let denied = error.contains("exec:") && error.contains("permission denied");
    if !missing && !denied {
        return None;
    }
    let argv: Vec<&str> = ["Entrypoint", "Cmd"]
        .iter()
        .flat_map(|k| config["config"][k].as_array().into_iter().flatten().filter_map(|v| v.as_str()))
        .collect();
    let workdir = config["config"]["WorkingDir"].as_str().unwrap_or("/");
    if denied {
        let program = argv.first().copied().unwrap_or("");
        return Some(Failure::health(format!(
            "health: the container could not start: its command `{program}` is not executable ({}); mark it so in the project (`chmod +x {program}`, then commit the mode: git keeps it), or run it through its interpreter (`entrypoint = [\"sh\", \"{program}\"]`)",
            error.trim()
        )));
    }
    Some(Failure::health(format!(
        "health: the container could not start: its command `{}` is not in the image ({}); point [image] entrypoint (or cmd) at a program the image has: the app's files are under {workdir}, its dependencies' programs in the dependency layer's bin folder (the venv's, or node_modules/.bin), which is on PATH",
        argv.join(" "),
        error.trim()
    )))
}

/// The health stage on the production image of `assembled`.
pub async fn health_stage(
    assembled: &Assembled,
    services: &Services,
    stage: &StageArgs,
    timeout: Option<&str>,
    out: Reporter,
) -> Result<StageResult, Failure> {
    let image = &assembled.prod.image;
    let config = image.config_json().map_err(Failure::input)?;
    let check = health::Check::from_config(&config).ok_or_else(|| Failure::config(oxbuild_engine::NO_HEALTHCHECK))?;
    let runtime = runtime(stage, &assembled.cfg)?;
    for warning in moved_probe_ports(&stage_env(stage)?, &config, &check) {
        out.warn(warning);
    }
    let name = load(&runtime, image, assembled, services).await?;
    let ports: Vec<u16> = config["config"]["ExposedPorts"]
        .as_object()
        .map(|m| m.keys().filter_map(|k| k.split('/').next()?.parse().ok()).collect())
        .unwrap_or_default();
    let deadline = match timeout {
        Some(t) => humantime::parse_duration(t).map_err(|e| Failure::config(format!("--timeout `{t}`: {e}")))?,
        None => {
            (check.start_period + check.interval * (check.retries + 2) + check.timeout).max(Duration::from_secs(60))
        }
    };
    out.step(format!(
        "starting {name}; probing every {} until healthy, {} failures {} apart fail it (deadline {})",
        gates::human(health::WAITING_PACE.min(check.interval)),
        check.retries,
        gates::human(check.interval),
        gates::human(deadline)
    ));
    let containers = Containers::new(&runtime);
    let report = guarded(&containers, async {
        health::run(&runtime, &containers, &name, &check, &ports, deadline, |p| {
            let result = match p.exit_code {
                Some(0) => "healthy".to_string(),
                Some(c) => format!("failed (exit {c})"),
                None => "timed out".to_string(),
            };
            out.step(format!("  probe at {:.1}s: {result}", p.at));
        })
        .await
    })
    .await
    .map_err(|e| command_not_found(&e.to_string(), &config).unwrap_or_else(|| Failure::runtime(e)))?;

    let ok = matches!(report.outcome, health::Outcome::Healthy { .. });
    let json = json!({"ok": ok, "stage": "health", "image": image.digest(), "report": report});
    let (human, failure) = match &report.outcome {
        health::Outcome::Healthy { seconds } => (vec![format!("healthy after {seconds:.1}s")], None),
        failed => {
            let why = match failed {
                health::Outcome::Exited { exit_code } => format!("the container exited with code {exit_code}"),
                health::Outcome::Unhealthy => format!("unhealthy: {} probes in a row failed", check.retries),
                health::Outcome::Deadline { seconds } => format!("not healthy within the {seconds:.0}s deadline"),
                health::Outcome::Unreachable { port, seconds } => format!(
                    "its probe passed inside the container after {seconds:.1}s, but port {port} does not answer from outside it: the app listens on the container's 127.0.0.1 only, where no other container, node or host can reach it; make it listen on 0.0.0.0 (for example gunicorn's `--bind 0.0.0.0:{port}`, uvicorn's or datasette's `--host 0.0.0.0`)"
                ),
                health::Outcome::Healthy { .. } => unreachable!("matched above"),
            };
            eprintln!("--- container logs (last 200 lines) ---\n{}", report.logs.trim_end());
            for p in &report.probes {
                let exit = p.exit_code.map(|c| format!("exit {c}")).unwrap_or_else(|| "no exit code".into());
                eprintln!("--- probe at {:.1}s ({exit}) ---\n{}", p.at, p.output);
            }
            let setuptools = assembled
                .packages
                .iter()
                .find(|p| p.ecosystem == "pypi" && p.name.eq_ignore_ascii_case("setuptools"))
                .map(|p| p.version.as_str());
            let locked: Vec<(&str, &str)> = assembled
                .packages
                .iter()
                .filter(|p| p.ecosystem == "pypi")
                .map(|p| (p.name.as_str(), p.version.as_str()))
                .collect();
            // The project's own package is the app, not a version to pin.
            let own = oxbuild_python::input::pyproject(&assembled.dir)
                .ok()
                .flatten()
                .and_then(|doc| oxbuild_python::input::project_name(&doc).map(str::to_string));
            let hint = log_hint(&report.logs, setuptools)
                .or_else(|| import_hint(&report.logs, &locked, own.as_deref()))
                .or_else(|| probe_hint(&report.probes))
                .map(|h| format!("; {h}"))
                .unwrap_or_default();
            (Vec::new(), Some(Failure::health(format!("health: {why}{hint}"))))
        }
    };
    Ok(StageResult { json, human, failure })
}

/// What to do about a failure the container's log shows whose cause is
/// how oxbuild's venv differs from one `python -m venv` makes, or, with
/// `setuptools` (the version the image has) 82 or later, that it no longer
/// ships `pkg_resources`.
fn log_hint(logs: &str, setuptools: Option<&str>) -> Option<String> {
    let missing = ["pkg_resources", "setuptools", "distutils"]
        .into_iter()
        .find(|m| logs.contains(&format!("No module named '{m}'")))?;
    let major = setuptools.and_then(|v| v.split('.').next()?.parse::<u32>().ok());
    if let (Some(version), Some(major)) = (setuptools, major) {
        return (missing == "pkg_resources" && major >= 82).then(|| {
            format!(
                "the app or one of its packages imports `pkg_resources`, which setuptools removed in 82.0 (the image has setuptools {version}): pin `setuptools<82` in the requirements and lock again, or upgrade what imports it (the traceback above names it)"
            )
        });
    }
    Some(format!(
        "the app or one of its packages imports `{missing}`, which `python -m venv` on Python 3.11 and older puts in every venv and oxbuild's venv holds only when the lock does: add setuptools to the requirements (its own line) and lock again"
    ))
}

/// What to do about a name a package no longer (or not yet) has, which the
/// log shows as `ImportError: cannot import name 'escape' from 'jinja2'
/// (…/site-packages/jinja2/__init__.py)`: the locked version differs from
/// the one the importing code was written for, often because an old
/// project's pins leave its dependencies' dependencies free. `locked` holds
/// the image's Python packages, (name, version); `own` names the project's
/// own package, whose modules are the app's matter.
fn import_hint(logs: &str, locked: &[(&str, &str)], own: Option<&str>) -> Option<String> {
    let (name, module) = logs.lines().rev().find_map(|line| {
        let rest = line.trim().strip_prefix("ImportError: cannot import name '")?;
        let (name, rest) = rest.split_once("' from '")?;
        let (module, path) = rest.split_once("' (")?;
        path.contains("/site-packages/").then_some((name, module))
    })?;
    let top = module.split('.').next().unwrap_or(module);
    let same = |a: &str| a.replace(['-', '.'], "_").eq_ignore_ascii_case(top);
    if own.is_some_and(same) {
        return None;
    }
    let what = match locked.iter().find(|(n, _)| same(n)) {
        Some((n, v)) => format!("{n} {v}, the version the lock holds,"),
        None => format!("the locked package that provides `{top}`"),
    };
    Some(format!(
        "`{module}` has no `{name}` in {what} so the code that imports it (the traceback above names it) was written for another version: pin the one it needs in the requirements (or upgrade what imports it) and lock again; `oxbuild lock --exclude-newer DATE`, with a date the app last worked, resolves the versions of that day"
    ))
}

/// What to do when the probe itself could not run: exit 127 is a shell's
/// "command not found" (a `curl` the image does not have, often inside a
/// script the healthcheck runs).
fn probe_hint(probes: &[health::Probe]) -> Option<String> {
    let last = probes.last()?;
    (last.exit_code == Some(127)).then(|| {
        let said = last.output.lines().find(|l| l.contains("not found")).map(|l| format!(" ({})", l.trim())).unwrap_or_default();
        format!(
            "the probe's command was not found in the image{said}: an image from oxbuild has no curl or wget unless its base does; use [healthcheck] http = \"http://127.0.0.1:PORT/PATH\", which needs neither"
        )
    })
}

/// Warnings for `--env` values that move the port the healthcheck probes:
/// a variable the image sets to a port number that the probe's command
/// names (`PORT=8000` and `http://127.0.0.1:8000/health`), given another
/// value. The app then listens elsewhere, and the probe still knocks there.
fn moved_probe_ports(env: &[(String, String)], config: &serde_json::Value, check: &health::Check) -> Vec<String> {
    let probed = health::probe_port(check);
    let image_env: Vec<(&str, &str)> = config["config"]["Env"]
        .as_array()
        .map(|e| e.iter().filter_map(|v| v.as_str()?.split_once('=')).collect())
        .unwrap_or_default();
    env.iter()
        .filter_map(|(name, value)| {
            let (_, was) = image_env.iter().find(|(k, _)| k == name)?;
            let port: u16 = was.parse().ok()?;
            (probed == Some(port) && value != was).then(|| {
                format!(
                    "--env {name}: the image sets {name}={port}, the port its healthcheck probes; the probe still goes to {port}, so change the port in [healthcheck] http too (or leave {name} as it is)"
                )
            })
        })
        .collect()
}

/// The assess stage on the test variant of `assembled`.
pub async fn assess_stage(
    assembled: &Assembled,
    services: &Services,
    stage: &StageArgs,
    junit: Option<&std::path::Path>,
    out: Reporter,
) -> Result<StageResult, Failure> {
    let cfg = &assembled.cfg;
    if cfg.assess.gates.is_empty() {
        return Err(Failure::config(
            "no gates to run: add [assess] gates = [{ name = \"pytest\", run = \"python -m pytest\" }] to oxbuild.toml",
        ));
    }
    let image = &assembled.test.as_ref().ok_or_else(|| Failure::internal("the test variant was not built"))?.image;
    let config = image.config_json().map_err(Failure::input)?;
    let runtime = runtime(stage, cfg)?;
    let name = load(&runtime, image, assembled, services).await?;
    let opts = gates::GateOptions {
        image: name.clone(),
        user: config["config"]["User"].as_str().filter(|u| !u.is_empty()).map(String::from),
        workdir: config["config"]["WorkingDir"].as_str().filter(|w| !w.is_empty()).map(String::from),
        network: cfg.assess.network,
    };
    let containers = Containers::new(&runtime);
    let results = guarded(&containers, async {
        let mut results = Vec::new();
        for gate in &cfg.assess.gates {
            if !out.quiet {
                eprintln!("── {} ── {}", gate.name, gate.run);
            }
            let gate = gates::Gate { name: gate.name.clone(), run: gate.run.clone() };
            let prefix = format!("[{}] ", gate.name);
            let r = gates::run(&runtime, &containers, &gate, &opts, |line| {
                if !out.quiet {
                    // Gate output goes to stderr so that stdout stays the report.
                    eprintln!("{prefix}{line}");
                }
            })
            .await?;
            results.push(r);
        }
        Ok::<_, oxbuild_runtime::Error>(results)
    })
    .await
    .map_err(Failure::runtime)?;

    if let Some(path) = junit {
        std::fs::write(path, gates::junit(&results))
            .map_err(|e| Failure::output(format!("--junit {}: {e}", path.display())))?;
    }
    let failed: Vec<&str> = results.iter().filter(|r| !r.passed()).map(|r| r.name.as_str()).collect();
    let width = results.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
    let passed = results.len() - failed.len();
    let mut table =
        vec![format!("{passed} of {} gates passed", results.len()), format!("{:width$}  result  time", "gate")];
    for r in &results {
        let verdict = if r.passed() { "pass".to_string() } else { format!("FAIL ({})", r.exit_code) };
        table.push(format!("{:width$}  {verdict:6}  {}", r.name, gates::human(Duration::from_secs_f64(r.seconds))));
    }
    let json = json!({"ok": failed.is_empty(), "stage": "assess", "image": image.digest(), "gates": results});
    let failure = (!failed.is_empty()).then(|| {
        Failure::assess(format!("assess: {} of {} gates failed: {}", failed.len(), results.len(), failed.join(", ")))
    });
    Ok(StageResult { json, human: table, failure })
}

pub async fn health(args: HealthArgs, out: Reporter) -> Result<(), Failure> {
    stage_env(&args.stage)?;
    let services = services(&args.stage.app.registry, out)?;
    let done = services
        .finishing(async {
            let mut request = crate::build::request(&args.stage.app, false)?;
            request.healthcheck_required = true;
            let assembled = oxbuild_engine::assemble(&request, &services).await.map_err(Failure::from)?;
            health_stage(&assembled, &services, &args.stage, args.timeout.as_deref(), out).await
        })
        .await;
    done?.finish(out)
}

pub async fn assess(args: AssessArgs, out: Reporter) -> Result<(), Failure> {
    stage_env(&args.stage)?;
    let services = services(&args.stage.app.registry, out)?;
    let done = services
        .finishing(async {
            let assembled = assemble(&args.stage.app, true, &services).await?;
            assess_stage(&assembled, &services, &args.stage, args.junit.as_deref(), out).await
        })
        .await;
    done?.finish(out)
}

#[cfg(test)]
mod tests {
    use super::{container_env, import_hint, log_hint, moved_probe_ports, probe_hint};

    #[test]
    fn a_probe_whose_command_is_missing_says_to_use_the_http_probe() {
        let probe = |code, output: &str| oxbuild_runtime::health::Probe {
            at: 1.0,
            exit_code: Some(code),
            output: output.into(),
        };
        let hint = probe_hint(&[probe(127, "/healthcheck.sh: 3: curl: not found")]).unwrap();
        assert!(
            hint.contains("(/healthcheck.sh: 3: curl: not found)") && hint.contains("[healthcheck] http"),
            "{hint}"
        );
        assert!(probe_hint(&[probe(1, "HTTP Error 500")]).is_none());
    }

    #[test]
    fn a_module_pythons_venvs_carry_and_the_lock_lacks_gets_a_hint() {
        let logs = "Traceback (most recent call last):\n  File \"/app/x.py\", line 1\nModuleNotFoundError: No module named 'pkg_resources'\n";
        let hint = log_hint(logs, None).unwrap();
        assert!(hint.contains("`pkg_resources`") && hint.contains("add setuptools"), "{hint}");
        assert!(log_hint("ModuleNotFoundError: No module named 'flask'", None).is_none());
        // setuptools is there, but one that no longer ships pkg_resources.
        let hint = log_hint(logs, Some("84.2.1")).unwrap();
        assert!(hint.contains("setuptools 84.2.1") && hint.contains("`setuptools<82`"), "{hint}");
        assert!(!hint.contains("add setuptools"), "{hint}");
        assert!(log_hint(logs, Some("80.9.0")).is_none(), "advice that would change nothing");
    }

    #[test]
    fn a_name_a_locked_package_lacks_names_the_package_and_its_version() {
        let logs = "Traceback (most recent call last):\n  File \"/app/app.py\", line 1, in <module>\n    from flask import Flask\n  File \"/opt/venv/lib/python3.11/site-packages/flask/__init__.py\", line 14, in <module>\n    from jinja2 import escape\nImportError: cannot import name 'escape' from 'jinja2' (/opt/venv/lib/python3.11/site-packages/jinja2/__init__.py)\n";
        let hint = import_hint(logs, &[("Flask", "1.1.2"), ("Jinja2", "3.1.4")], None).unwrap();
        assert!(hint.starts_with("`jinja2` has no `escape` in Jinja2 3.1.4, the version the lock holds,"), "{hint}");
        assert!(hint.contains("--exclude-newer DATE"), "{hint}");
        // A module named otherwise than its package.
        let hint = import_hint(&logs.replace("jinja2", "yaml"), &[("PyYAML", "6.0")], None).unwrap();
        assert!(hint.contains("the locked package that provides `yaml`"), "{hint}");
        // A name the app's own module lacks is the app's matter.
        assert!(
            import_hint("ImportError: cannot import name 'x' from 'app.models' (/app/app/models.py)", &[], None)
                .is_none()
        );
        // Nor is one the project's own package lacks, installed in the venv.
        let own = "ImportError: cannot import name 'x' from 'my_app.models' (/opt/venv/lib/python3.11/site-packages/my_app/models.py)";
        assert!(import_hint(own, &[("my-app", "1.0")], Some("my-app")).is_none());
    }

    #[test]
    fn env_flags_take_a_value_or_the_named_variables_and_never_say_a_value() {
        let lookup = |name: &str| (name == "FROM_CI").then(|| "hidden-value".to_string());
        let flags = |f: &[&str]| f.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let env = container_env(&flags(&["A=1", "FROM_CI", "A=2", "EMPTY="]), lookup).unwrap();
        let want = [("FROM_CI", "hidden-value"), ("A", "2"), ("EMPTY", "")];
        assert_eq!(env, want.map(|(k, v)| (k.to_string(), v.to_string())), "the last A wins");
        let e = container_env(&flags(&["NOT_SET"]), lookup).unwrap_err();
        assert!(e.message.contains("NOT_SET is not set in oxbuild's environment"), "{}", e.message);
        for bad in ["1X=a", "=v", "A-B=c"] {
            let e = container_env(&flags(&[bad]), lookup).unwrap_err();
            assert!(e.message.contains("not a variable name"), "{}", e.message);
        }
        // A value typed without `=` is not repeated.
        let e = container_env(&flags(&["A=1", "DATABASE_URL:postgres://u:pw@h/db"]), lookup).unwrap_err();
        assert!(
            e.message.starts_with("--env number 2: not a variable name") && !e.message.contains("pw"),
            "{}",
            e.message
        );
    }

    #[test]
    fn an_env_value_that_moves_the_probed_port_is_warned_about() {
        let config = serde_json::json!({"config": {
            "Env": ["PATH=/usr/bin", "PORT=8000", "WORKERS=2"],
            "Healthcheck": {"Test": ["CMD", "python3", "-c", "u.urlopen(\"http://127.0.0.1:8000\", timeout=3)"]},
        }});
        let check = oxbuild_runtime::health::Check::from_config(&config).unwrap();
        let env =
            |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>();
        let warned = moved_probe_ports(&env(&[("PORT", "9090"), ("WORKERS", "4")]), &config, &check);
        assert_eq!(warned.len(), 1, "{warned:?}");
        assert!(
            warned[0].starts_with("--env PORT: the image sets PORT=8000") && !warned[0].contains("9090"),
            "{warned:?}"
        );
        // An IPv6 host's `:1` is no port.
        let v6 = serde_json::json!({"config": {
            "Env": ["WORKERS=1"],
            "Healthcheck": {"Test": ["CMD", "python3", "-c", "u.urlopen(\"http://[::1]:8000/\")"]},
        }});
        let v6_check = oxbuild_runtime::health::Check::from_config(&v6).unwrap();
        assert!(moved_probe_ports(&env(&[("WORKERS", "4")]), &v6, &v6_check).is_empty());
        // The same value, or a variable the probe does not name: nothing to say.
        assert!(moved_probe_ports(&env(&[("PORT", "8000"), ("WORKERS", "8000")]), &config, &check).is_empty());
    }
}
