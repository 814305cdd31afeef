//! `oxbuild lock`: resolves the project's requirements for its base image
//! (see `oxbuild_engine::lock`) and prints what it chose and why.

use crate::build::{request, services};
use crate::cli::LockArgs;
use crate::report::{Failure, Reporter};

/// An RFC 3339 time, or a date alone (`2024-05-01`): the whole of that day
/// in UTC, so files uploaded before the next midnight count (as uv reads it).
fn date(text: &str) -> Result<std::time::SystemTime, Failure> {
    let t = text.trim();
    let bad = || {
        Failure::config(format!(
            "--exclude-newer `{text}` is not a date: write it like 2024-05-01 or 2024-05-01T12:00:00Z"
        ))
    };
    if t.len() == 10 {
        let midnight = humantime::parse_rfc3339_weak(&format!("{t}T00:00:00")).map_err(|_| bad())?;
        return Ok(midnight + std::time::Duration::from_secs(86_400));
    }
    humantime::parse_rfc3339_weak(t.trim_end_matches('Z')).map_err(|_| bad())
}

pub async fn run(args: LockArgs, out: Reporter) -> Result<(), Failure> {
    let exclude_newer = args.exclude_newer.as_deref().map(date).transpose()?;
    let platforms = match crate::multi::platforms(args.app.platform.as_deref(), &[])? {
        crate::multi::Asked::List(list) => list,
        crate::multi::Asked::All => {
            return Err(Failure::config("--platform all is for build: name the platforms to lock for".to_string()));
        }
    };
    let mut build = request(&args.app, false)?;
    build.platform = None;
    let services = services(&args.app.registry, out)?;
    let req = oxbuild_engine::lock::LockRequest {
        build,
        platforms,
        output: args.output.clone(),
        exclude_newer,
        upgrade: args.upgrade,
        upgrade_packages: args.upgrade_package.clone(),
        prereleases: args.prerelease,
        test: !args.no_test,
    };
    let report = oxbuild_engine::lock::lock(&req, &services).await.map_err(Failure::from)?;
    if report.undated_files > 0 {
        out.step(format!(
            "{} chosen files have no upload time (find-links, or an index without PEP 700 data): they are eligible whatever the date",
            report.undated_files
        ));
    }
    for d in &report.differences {
        out.warn(format!("differs by platform: {d}"));
    }
    if let Some(test) = &report.test {
        out.step(format!(
            "locked {} packages for the test variant ({} on production's versions) into {}",
            test.packages,
            test.inputs,
            test.written.display()
        ));
    }
    out.step(report.config.clone());
    let json = serde_json::to_value(&report).map_err(|e| Failure::internal(e.to_string()))?;
    out.result(
        &json,
        &[
            format!("locked {} packages into {}", report.packages, report.written.display()),
            format!("files uploaded before {}", report.exclude_newer),
            format!("{} HTTP requests to the indexes", report.requests),
        ],
    );
    Ok(())
}
