//! `oxbuild init`: plans an oxbuild.toml from what the project already says
//! (see `oxbuild_init`) and writes it.

use crate::cli::InitArgs;
use crate::report::{Failure, Reporter};

pub fn run(args: InitArgs, out: Reporter) -> Result<(), Failure> {
    let path = args.dir.join(oxbuild_config::FILE_NAME);
    if path.exists() && !args.force {
        return Err(Failure::config(format!("{} exists; use --force to replace it", path.display())));
    }
    let options = oxbuild_init::Options { base: args.base.clone().filter(|b| !b.is_empty()) };
    let plan = oxbuild_init::plan(&args.dir, &options).map_err(Failure::config)?;
    std::fs::write(&path, plan.render()).map_err(|e| Failure::output(format!("writing {}: {e}", path.display())))?;
    out.step(format!("read {}", plan.sources.join(", then ")));
    for n in &plan.notes {
        out.step(format!("not carried over: {}: {}", n.what, n.why));
    }
    let mut summary = plan.summary();
    summary["ok"] = serde_json::json!(true);
    summary["written"] = serde_json::json!(path);
    out.result(&summary, &[format!("wrote {}", path.display())]);
    Ok(())
}
