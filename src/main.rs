//! The `oxbuild` command: parses arguments and wires the library crates
//! together. Everything that builds, pulls or pushes lives in `crates/`.

mod attest;
mod build;
mod cache;
mod cli;
mod init;
mod lock;
mod multi;
mod pipeline;
mod progress;
mod report;
mod stages;
mod transfer;

use clap::Parser as _;

fn main() {
    report::stamp();
    let cli = cli::Cli::parse();
    let reporter = report::Reporter { quiet: cli.quiet, verbose: cli.verbose, json: cli.json };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => std::process::exit(
            reporter.fail(&report::Failure::internal(format!("cannot start the async runtime: {e}"))),
        ),
    };
    // Every command but init and cache holds the cache's shared lock while it
    // runs, so that `oxbuild cache prune` waits instead of deleting what it uses.
    let uses_cache = !matches!(cli.command, cli::Command::Init(_) | cli::Command::Cache(_));
    let held = match uses_cache.then(|| build::cache(&reporter)).transpose() {
        Ok(cache) => cache.map(|c| (c.lock_shared().map_err(report::Failure::output), c)),
        Err(f) => std::process::exit(reporter.fail(&f)),
    };
    let cache = match held {
        Some((Ok(lock), cache)) => Some((lock, cache)),
        Some((Err(f), _)) => std::process::exit(reporter.fail(&f)),
        None => None,
    };
    let result = runtime.block_on(async {
        match cli.command {
            cli::Command::Build(args) => build::run(args, reporter).await,
            cli::Command::Inspect(args) => transfer::inspect(args, reporter).await,
            cli::Command::Push(args) => transfer::copy(args, reporter, true).await,
            cli::Command::Copy(args) => transfer::copy(args, reporter, false).await,
            cli::Command::Assess(args) => stages::assess(args, reporter).await,
            cli::Command::Health(args) => stages::health(args, reporter).await,
            cli::Command::Publish(args) => pipeline::publish(args, reporter).await,
            cli::Command::Pipeline(args) => pipeline::pipeline(args, reporter).await,
            cli::Command::Sbom(args) => attest::sbom(args, reporter).await,
            cli::Command::Sign(args) => attest::sign(args, reporter).await,
            cli::Command::Verify(args) => attest::verify(args, reporter).await,
            cli::Command::Init(args) => init::run(args, reporter).await,
            cli::Command::Lock(args) => lock::run(args, reporter).await,
            cli::Command::Cache(args) => cache::run(args, reporter),
        }
    });
    if let Some((lock, cache)) = cache {
        drop(lock);
        cache::enforce_limit(&cache, reporter);
    }
    if let Err(failure) = result {
        std::process::exit(reporter.fail(&failure));
    }
}
