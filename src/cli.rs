//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// oxbuild: daemonless, reproducible OCI images for Python apps.
///
/// Builds an image from a base image in a registry plus the app's files and its
/// oxbuild.toml, without a Docker daemon, root, or running any container, and
/// pushes it straight to a registry over the OCI distribution API.
#[derive(Debug, Parser)]
#[command(name = "oxbuild", version, propagate_version = true, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Print nothing but the result (and errors).
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Print a machine-readable JSON report on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The exit codes, shown under `--help`.
pub const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  unexpected internal error
  2  bad command-line usage
  3  configuration error (oxbuild.toml, references, flags)
  4  build error (app files, base image content)
  5  registry error (unreachable, authentication, not found)
  6  output error (writing an OCI layout)

Environment:
  OXBUILD_REGISTRY_USER, OXBUILD_REGISTRY_PASSWORD  credentials for registries that ask
  OXBUILD_CACHE_DIR   where pulled and built blobs are cached (default ~/.cache/oxbuild)
  SOURCE_DATE_EPOCH   timestamp of every file and of the image (default 0)";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build the image of the app in DIR, then push it and/or write it out.
    Build(BuildArgs),
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The app directory, holding oxbuild.toml.
    #[arg(default_value = ".")]
    pub dir: PathBuf,

    /// Name the image: a full reference (registry/repo:tag) or a bare tag that
    /// applies to [image] repository. Repeatable.
    #[arg(short, long = "tag", value_name = "REF")]
    pub tags: Vec<String>,

    /// Push the image to the registry of each --tag (or by digest to
    /// [image] repository when no --tag is given).
    #[arg(long)]
    pub push: bool,

    /// Also write the image out; `oci:DIR` writes an OCI image layout. Repeatable.
    #[arg(short, long = "output", value_name = "DEST")]
    pub outputs: Vec<String>,

    /// The platform to take from a multi-platform base (os/arch[/variant]).
    /// Default: the machine's own, e.g. linux/amd64.
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Option<String>,

    /// Use this base image instead of [image] base.
    #[arg(long, value_name = "REF")]
    pub base: Option<String>,

    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// How registries are reached; shared by every command that talks to one.
#[derive(Debug, Args)]
pub struct RegistryArgs {
    /// Reach this registry (host[:port]) over plain HTTP. Loopback registries
    /// always are. Repeatable.
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub insecure: Vec<String>,

    /// Trust the CA certificates in this PEM file, besides the system's roots.
    #[arg(long = "ca-file", value_name = "PEM", env = "OXBUILD_CA_FILE")]
    pub ca_file: Option<PathBuf>,
}
