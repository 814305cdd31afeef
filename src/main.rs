//! The `oxbuild` command: parses arguments and wires the library crates
//! together. Everything that builds, pulls or pushes lives in `crates/`.

mod build;
mod cli;
mod deps;
mod init;
mod location;
mod pipeline;
mod progress;
mod report;
mod stages;
mod transfer;

use clap::Parser as _;

fn main() {
    let cli = cli::Cli::parse();
    let reporter = report::Reporter { quiet: cli.quiet, verbose: cli.verbose, json: cli.json };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => std::process::exit(
            reporter.fail(&report::Failure::internal(format!("cannot start the async runtime: {e}"))),
        ),
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
            cli::Command::Init(args) => init::run(args, reporter),
        }
    });
    if let Err(failure) = result {
        std::process::exit(reporter.fail(&failure));
    }
}
