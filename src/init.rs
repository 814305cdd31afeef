//! `oxbuild init`: plans an oxbuild.toml from what the project already says
//! (see `oxbuild_init`) and writes it.

use crate::cli::InitArgs;

/// `oxbuild lock` for the project `init` just configured.
async fn lock(args: &InitArgs, out: Reporter) -> Result<oxbuild_engine::lock::LockReport, Failure> {
    let services = crate::build::services(&args.registry, out)?;
    let req = oxbuild_engine::lock::LockRequest {
        build: oxbuild_engine::Request::new(&args.dir),
        platforms: Vec::new(),
        output: None,
        exclude_newer: None,
        upgrade: false,
        upgrade_packages: Vec::new(),
        prereleases: false,
        test: true,
    };
    oxbuild_engine::lock::lock(&req, &services).await.map_err(Failure::from)
}
use crate::report::{Failure, Reporter};

pub async fn run(args: InitArgs, out: Reporter) -> Result<(), Failure> {
    let path = args.dir.join(oxbuild_config::FILE_NAME);
    if path.exists() && !args.force {
        return Err(Failure::config(format!("{} exists; use --force to replace it", path.display())));
    }
    let options = oxbuild_init::Options {
        base: args.base.clone().filter(|b| !b.is_empty()),
        dockerfile: args.dockerfile.clone(),
        target: args.target.clone(),
    };
    let mut plan = oxbuild_init::plan(&args.dir, &options).map_err(Failure::config)?;
    let write = |plan: &oxbuild_init::Plan| {
        std::fs::write(&path, plan.render()).map_err(|e| Failure::output(format!("writing {}: {e}", path.display())))
    };
    // Requirements that are not a lock are locked now, for the base's own
    // Python, when the base is known.
    let needs = oxbuild_init::needs_lock(&args.dir, &plan);
    let mut locked = serde_json::Value::Null;
    match (&needs, &plan.base) {
        (Some(why), Some(_)) if !args.no_lock => {
            let before = plan.python.clone();
            // The requirements file is named, so that this lock and later
            // ones resolve it, not a requirements.in or [project] beside it.
            plan.lock_input = match &before {
                Some(("requirements", file)) => Some(file.clone()),
                _ => None,
            };
            plan.python = Some(("lock", "pylock.toml".into()));
            write(&plan)?;
            out.step(format!("{why}: running `oxbuild lock`"));
            match lock(&args, out).await {
                Ok(report) => {
                    // (The date was said as the resolution started.)
                    out.step(format!("locked {} packages into pylock.toml", report.packages));
                    if let Some(test) = &report.test {
                        out.step(format!(
                            "locked the test requirements ({}) into {}",
                            test.inputs,
                            test.written.display()
                        ));
                        let text = std::fs::read_to_string(&test.written).unwrap_or_default();
                        let name = test.written.file_name().map(|n| n.to_string_lossy().into_owned());
                        plan.test_lock = name.map(|n| (n, text.contains("name = \"pytest\"")));
                    }
                    locked = serde_json::json!(report);
                }
                Err(f) => {
                    plan.python = before;
                    plan.lock_input = None;
                    plan.notes.push(oxbuild_init::Note::new(
                        format!("{why}, and `oxbuild lock` failed"),
                        format!("{}; fix that and run `oxbuild lock`", f.message),
                    ));
                    out.warn(format!("could not lock: {}; run `oxbuild lock` once it is fixed", f.message));
                }
            }
        }
        (Some(why), base) => plan.notes.push(oxbuild_init::Note::new(
            why.clone(),
            if base.is_some() {
                "run `oxbuild lock` to lock it for the base's Python"
            } else {
                "run `oxbuild lock` once [image] base is set, to lock it for the base's Python"
            },
        )),
        (None, _) => {}
    }
    write(&plan)?;
    out.step(match plan.sources.is_empty() {
        true => "found no Dockerfile, Procfile or framework here to read".to_string(),
        false => format!("read {}", plan.sources.join(", then ")),
    });
    // (The failed lock was a warning already; the file keeps it as a note.)
    for n in plan.notes.iter().filter(|n| !n.what.ends_with("and `oxbuild lock` failed")) {
        if n.what == "how the app starts" {
            out.warn(format!(
                "{}: {}, and left a commented entrypoint in it to fill in",
                path.display(),
                oxbuild_init::NO_COMMAND
            ));
            continue;
        }
        out.step(format!("not carried over: {}: {}", n.what, n.why));
    }
    let mut summary = plan.summary();
    summary["locked"] = locked;
    summary["ok"] = serde_json::json!(true);
    summary["written"] = serde_json::json!(path);
    out.result(&summary, &[format!("wrote {}", path.display())]);
    Ok(())
}
