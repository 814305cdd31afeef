//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// oxbuild: daemonless, reproducible OCI images for Python and Node.js apps.
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
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Say more: every blob (also those already cached or present), every layer built.
    #[arg(short, long, global = true)]
    pub verbose: bool,

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
  4  build or input error (app files, base image, layout or archive content)
  5  registry error (unreachable, authentication, not found)
  6  output error (writing a layout, an archive or the cache)
  7  assess failed (a gate failed)
  8  health failed (unhealthy, exited, or past the deadline)
  9  container runtime error (podman/docker missing or failing)
 10  verification failed (a signature, an attachment or a policy rule)

Environment:
  OXBUILD_REGISTRY_USER, OXBUILD_REGISTRY_PASSWORD  credentials for the hosts in OXBUILD_REGISTRY
  OXBUILD_REGISTRY    the registries (host[:port], comma-separated) those credentials are for
  OXBUILD_TOKEN_REALMS  token-service hosts on other hosts than their registry that may get credentials
  OXBUILD_CACHE_DIR   the cache: blobs, base scans, dependency layers (default ~/.cache/oxbuild)
  OXBUILD_CACHE_MAX_SIZE  the cache is pruned to this size after each command (default 10GiB)
  OXBUILD_CACHE_KEY   the fleet's secret that signs and checks --cache-repo entries (or OXBUILD_CACHE_KEY_FILE, or [cache] key-file)
  OXBUILD_SIGN_KEY    a signing key's PEM content (instead of --sign-key / --key FILE)
  OXBUILD_SIGN_PASSPHRASE  the passphrase of an encrypted signing key
  OXBUILD_READ_TIMEOUT  how long a transfer may stall before it is dropped and tried again (default 2m)
  HTTPS_PROXY, HTTP_PROXY, NO_PROXY  proxies for registries and package indexes
  SOURCE_DATE_EPOCH   timestamp of every file and of the image (default 0)";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build the image of the app in DIR, then push it and/or write it out.
    Build(BuildArgs),
    /// Show an image's manifest, config and layers without pulling its layers.
    Inspect(InspectArgs),
    /// Push an image (e.g. an OCI layout or archive made earlier) to a registry.
    Push(CopyArgs),
    /// Copy an image between any two locations: registries, layouts, archives.
    Copy(CopyArgs),
    /// Build the test variant and run the quality gates of [assess] in it.
    Assess(AssessArgs),
    /// Build the image, start it, and wait until its healthcheck says healthy.
    Health(HealthArgs),
    /// Build, then push the image with the tags of the publish policy.
    Publish(PublishArgs),
    /// Build, assess, health, publish: the one command a CI job runs.
    Pipeline(PipelineArgs),
    /// Print the SBOM attached to an image (SPDX or CycloneDX JSON).
    Sbom(SbomArgs),
    /// Sign an image with an ECDSA P-256 key, in cosign's format.
    Sign(SignArgs),
    /// Check an image's signatures, SBOMs and provenance, and a policy.
    Verify(VerifyArgs),
    /// Write an oxbuild.toml for the project in DIR from its Dockerfile, Procfile or framework.
    Init(InitArgs),
    /// Resolve the project's requirements for its base image's Python and
    /// platforms, and write a pylock.toml that `build` installs.
    Lock(LockArgs),
    /// Show or prune oxbuild's cache (blobs, base scans, dependency layers).
    Cache(CacheArgs),
}

#[derive(Debug, Args)]
pub struct CacheArgs {
    #[command(subcommand)]
    pub command: CacheCommand,
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Where the cache is, and how much each bucket holds.
    Info,
    /// Remove cache entries: all of them, or those not used for --older-than,
    /// then the least recently used until the cache fits --max-size. Waits for
    /// running builds to finish first, so none loses what it is using.
    Prune {
        /// Keep the cache at most this big (e.g. 5GiB; 0 empties it).
        #[arg(long, value_name = "SIZE")]
        max_size: Option<String>,
        /// Remove entries not used for this long (e.g. 30d, 12h).
        #[arg(long, value_name = "DURATION")]
        older_than: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    #[command(flatten)]
    pub stage: StageArgs,

    #[command(flatten)]
    pub attest: AttestArgs,
}

/// The SBOMs and provenance that go with a pushed or written image.
#[derive(Debug, Clone, Args)]
pub struct AttestArgs {
    /// Do not attach the SBOMs (SPDX, CycloneDX) and the build provenance to
    /// the image. By default every push and every --output carries them as
    /// OCI referrers of the image.
    #[arg(long)]
    pub no_attach: bool,

    /// Also write the SBOMs and the provenance here as plain files:
    /// sbom.spdx.json, sbom.cdx.json, provenance.intoto.json.
    #[arg(long, value_name = "DIR")]
    pub sbom_dir: Option<PathBuf>,

    /// Sign the pushed or written image with this ECDSA P-256 key (PKCS#8
    /// PEM, possibly encrypted: the passphrase comes from
    /// OXBUILD_SIGN_PASSPHRASE). OXBUILD_SIGN_KEY may hold the PEM instead.
    #[arg(long, value_name = "KEY")]
    pub sign_key: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(after_help = LOCATIONS)]
pub struct SignArgs {
    /// The image to sign: a registry reference, oci:DIR[:NAME] or oci-archive:FILE[:NAME].
    #[arg(value_name = "IMAGE")]
    pub image: String,

    /// The ECDSA P-256 private key (PKCS#8 PEM, possibly encrypted, with the
    /// passphrase in OXBUILD_SIGN_PASSPHRASE). Default: the PEM in OXBUILD_SIGN_KEY.
    #[arg(long, value_name = "KEY")]
    pub key: Option<PathBuf>,

    /// The repository the signature names (`critical.identity.docker-reference`).
    /// Default: the image's repository, or for a layout or archive its file name.
    #[arg(long, value_name = "REPO")]
    pub identity: Option<String>,

    /// The platform to take from a multi-platform image (os/arch[/variant]).
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Option<String>,

    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Args)]
#[command(after_help = LOCATIONS)]
pub struct VerifyArgs {
    /// The image to check: a registry reference, oci:DIR[:NAME] or oci-archive:FILE[:NAME].
    #[arg(value_name = "IMAGE")]
    pub image: String,

    #[command(flatten)]
    pub verify: VerifyOptions,

    /// The platform to take from a multi-platform image (os/arch[/variant]).
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Option<String>,

    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// What `verify` (and pipeline's verify stage) checks against.
#[derive(Debug, Args)]
pub struct VerifyOptions {
    /// A public key (PEM) that must have signed the image. Repeatable.
    #[arg(long = "key", value_name = "PUB")]
    pub keys: Vec<PathBuf>,

    /// A policy file (TOML): require-signature-by, deny-licenses,
    /// allowed-base-registries, max-age. See docs/supply-chain.md.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(after_help = LOCATIONS)]
pub struct SbomArgs {
    /// The image whose SBOM to print: a registry reference, oci:DIR, oci-archive:FILE.
    #[arg(value_name = "IMAGE")]
    pub image: String,

    /// Which SBOM: spdx (SPDX 2.3 JSON) or cyclonedx (CycloneDX 1.6 JSON).
    #[arg(long, value_enum, default_value_t = SbomFormat::Spdx)]
    pub format: SbomFormat,

    /// The platform to take from a multi-platform image (os/arch[/variant]).
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Option<String>,

    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// The SBOM formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SbomFormat {
    /// SPDX 2.3 JSON.
    Spdx,
    /// CycloneDX 1.6 JSON.
    Cyclonedx,
}

impl SbomFormat {
    /// As `oxbuild_engine::attest::FORMATS` names it.
    pub fn name(self) -> &'static str {
        match self {
            SbomFormat::Spdx => "spdx",
            SbomFormat::Cyclonedx => "cyclonedx",
        }
    }
}

#[derive(Debug, Args)]
pub struct PipelineArgs {
    #[command(flatten)]
    pub stage: StageArgs,

    /// Do not run the quality gates.
    #[arg(long)]
    pub skip_assess: bool,

    /// Do not start the image and wait for its healthcheck.
    #[arg(long)]
    pub skip_health: bool,

    /// Build and verify, but push nothing.
    #[arg(long)]
    pub no_publish: bool,

    /// Write the gates' JUnit XML report here.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,

    /// The health stage's deadline (e.g. 90s, 2m).
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,

    #[command(flatten)]
    pub attest: AttestArgs,

    /// After publishing, verify what was pushed: signatures by these public
    /// keys (--verify-key, repeatable) and the policy (--verify-policy).
    #[arg(long = "verify-key", value_name = "PUB")]
    pub verify_keys: Vec<PathBuf>,

    /// A policy file the pushed image must pass (see `oxbuild verify`).
    #[arg(long, value_name = "FILE")]
    pub verify_policy: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct LockArgs {
    #[command(flatten)]
    pub app: AppArgs,

    /// Where to write the lock [default: pylock.toml in DIR].
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Ignore files uploaded after this date (2024-05-01: the whole day, UTC; or 2024-05-01T12:00:00Z), so
    /// that the same command gives the same lock later. Default: the last commit of
    /// the input file when git tracks it unmodified, else now.
    #[arg(long, value_name = "DATE")]
    pub exclude_newer: Option<String>,

    /// Take the newest versions that fit, not the ones an existing lock has.
    #[arg(long)]
    pub upgrade: bool,

    /// Take the newest version of this package (repeatable).
    #[arg(long, value_name = "NAME")]
    pub upgrade_package: Vec<String>,

    /// Allow pre-releases for every package (else only where a requirement names one).
    #[arg(long)]
    pub prerelease: bool,

    /// Lock the production requirements only. By default the test requirements
    /// (requirements-test.in or -dev.in, pyproject's test/tests/dev groups and
    /// extras, or an unpinned [python] test-requirements file) are locked too,
    /// on production's versions, into pylock.test.toml beside the lock.
    #[arg(long)]
    pub no_test: bool,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The project directory.
    #[arg(default_value = ".")]
    pub dir: PathBuf,

    /// The base image to write into the config (else OXBUILD_IMAGE_BASE, else the Dockerfile's FROM).
    #[arg(long, value_name = "REF", env = "OXBUILD_IMAGE_BASE")]
    pub base: Option<String>,

    /// Replace an existing oxbuild.toml.
    #[arg(long)]
    pub force: bool,

    /// The Dockerfile to read, relative to DIR (default: Dockerfile.prod or
    /// Dockerfile.production when there is one, else Dockerfile or
    /// Containerfile at the root, else the only one in a folder).
    #[arg(long, value_name = "FILE")]
    pub dockerfile: Option<String>,

    /// The Dockerfile's stage that is the image, as `docker build --target`
    /// names it (default: the last stage).
    #[arg(long, value_name = "STAGE")]
    pub target: Option<String>,

    /// Do not run `oxbuild lock` when the project's requirements are not a lock.
    #[arg(long)]
    pub no_lock: bool,

    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// What every command that builds the app takes: where it is and what it builds on.
#[derive(Debug, Args)]
pub struct AppArgs {
    /// The app directory, holding oxbuild.toml.
    #[arg(default_value = ".")]
    pub dir: PathBuf,

    /// Use this base image instead of [image] base: a registry reference,
    /// oci:DIR[:NAME], oci-archive:FILE or docker-archive:FILE.
    #[arg(long, value_name = "REF")]
    pub base: Option<String>,

    /// The platform to build, taken from a multi-platform base
    /// (os/arch[/variant]); default: [image] platforms, else the machine's
    /// own. `build` takes a list (linux/amd64,linux/arm64): one image per
    /// platform under one index.
    #[arg(long, value_name = "OS/ARCH[,...]")]
    pub platform: Option<String>,

    /// A registry repository where dependency layers and base scans are
    /// cached, so that fresh CI runners reuse them instead of downloading.
    #[arg(long, value_name = "REPO", env = "OXBUILD_CACHE_REPO")]
    pub cache_repo: Option<String>,

    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// What the stages that build and then run an image share.
#[derive(Debug, Args)]
pub struct StageArgs {
    #[command(flatten)]
    pub app: AppArgs,

    /// The container runtime: podman or docker (default: [runtime] program,
    /// else the first on PATH).
    #[arg(long, value_name = "PROGRAM")]
    pub runtime: Option<String>,

    /// Set a variable in the containers this starts (the health check's,
    /// the gates'), never in the image: NAME=VALUE, or NAME alone to pass
    /// oxbuild's own value (for a secret such as DATABASE_URL from CI).
    /// Repeatable. Values reach the runtime in an env file only oxbuild's
    /// user can read, removed once the container has started: never on a
    /// command line or in oxbuild's output.
    #[arg(long = "env", short = 'e', value_name = "NAME[=VALUE]")]
    pub env: Vec<String>,
}

#[derive(Debug, Args)]
pub struct AssessArgs {
    #[command(flatten)]
    pub stage: StageArgs,

    /// Also write a JUnit XML report of the gates here.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct HealthArgs {
    #[command(flatten)]
    pub stage: StageArgs,

    /// Give up after this long (e.g. 90s, 2m). Default: the healthcheck's start
    /// period plus (retries + 2) intervals plus one timeout, at least 60s.
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
}

/// Locations, for --help.
const LOCATIONS: &str = "Locations:
  REGISTRY/REPO[:TAG|@DIGEST]  an image in a registry (docker:// prefix optional)
  oci:DIR[:NAME]               an OCI image layout directory
  oci-archive:FILE[:NAME]      a tar of an OCI layout
  docker-archive:FILE[:NAME]   a tar for docker load / podman load
oxbuild writes one archive that is both: podman load and docker load accept either kind.";

#[derive(Debug, Args)]
#[command(after_help = LOCATIONS)]
pub struct InspectArgs {
    /// The image to show.
    #[arg(value_name = "SOURCE")]
    pub source: String,

    /// The platform to show from a multi-platform image (os/arch[/variant]).
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Option<String>,

    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Args)]
#[command(after_help = LOCATIONS)]
pub struct CopyArgs {
    /// Where the image is.
    #[arg(value_name = "SOURCE")]
    pub source: String,

    /// Where it goes. A registry DEST is pushed by its tag, or by digest without one.
    #[arg(value_name = "DEST")]
    pub dest: String,

    /// The platform to take from a multi-platform SOURCE (os/arch[/variant]).
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Option<String>,

    /// Leave the image's referrers (SBOMs, provenance, signatures) behind;
    /// by default they come along, so an archive carries them across an air gap.
    #[arg(long)]
    pub no_referrers: bool,

    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Args)]
#[command(after_help = LOCATIONS)]
pub struct BuildArgs {
    #[command(flatten)]
    pub app: AppArgs,

    /// Name the image: a full reference (registry/repo:tag) or a bare tag that
    /// applies to [image] repository. Repeatable.
    #[arg(short, long = "tag", value_name = "REF")]
    pub tags: Vec<String>,

    /// Push the image to the registry of each --tag (or by digest to
    /// [image] repository when no --tag is given).
    #[arg(long)]
    pub push: bool,

    /// Also write the image to oci:DIR[:NAME], oci-archive:FILE or
    /// docker-archive:FILE. Repeatable; combines with --push.
    #[arg(short, long = "output", value_name = "DEST")]
    pub outputs: Vec<String>,

    /// Which image: `production`, or `test` (production plus test
    /// requirements and test files, for `assess`). Only the production
    /// image gets an SBOM and provenance.
    #[arg(long, value_enum, default_value_t = Variant::Production)]
    pub variant: Variant,

    #[command(flatten)]
    pub attest: AttestArgs,
}

/// The image variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Variant {
    /// What ships: no test tools, no test files.
    Production,
    /// Production plus test requirements and test files.
    Test,
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

    /// Upload blobs in chunks of this size (e.g. 16MiB) instead of one request
    /// each; for registries or proxies that limit request sizes.
    #[arg(long, value_name = "SIZE", env = "OXBUILD_CHUNK_SIZE")]
    pub chunk_size: Option<String>,
}
