//! `oxbuild.toml`, the project's build settings.
//!
//! Parsing is strict: an unknown key, a wrong type or a malformed duration is an
//! error that names the file, the key and its line, because a misspelt key that
//! is silently ignored ships the wrong image.
//!
//! ```
//! let cfg = oxbuild_config::Config::parse(
//!     "oxbuild.toml".as_ref(),
//!     "[image]\nbase = \"127.0.0.1:5000/python:3.11\"\nentrypoint = [\"python3\", \"-m\", \"app\"]\n",
//! ).unwrap();
//! assert_eq!(cfg.image.user, "app");
//! assert_eq!(cfg.image.workdir, "/app");
//! ```

pub mod policy;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// The file oxbuild looks for at the root of an app.
pub const FILE_NAME: &str = "oxbuild.toml";

/// A configuration problem, always naming the file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file is missing or unreadable.
    #[error("{path}: {why}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why it could not be read, and what to do.
        why: String,
    },
    /// Bad TOML, an unknown key, or a value of the wrong kind.
    #[error("{path}:{line}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line of the offending key or value.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// Values that parse but do not make sense together.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
}

/// The whole of `oxbuild.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// What `OXBUILD_*` variables changed of what the file set
    /// (`OXBUILD_IMAGE_BASE overrides [image] base of the project's
    /// config`), for a run to say: names only, never values, which may
    /// hold credentials.
    #[serde(skip)]
    pub overridden: Vec<String>,
    /// `[image]`: base, destination and runtime settings.
    #[serde(default)]
    pub image: ImageConfig,
    /// `[app]`: what goes into the app layer.
    #[serde(default)]
    pub app: AppConfig,
    /// `[healthcheck]`, when the image should carry one.
    pub healthcheck: Option<HealthcheckConfig>,
    /// `[python]`: the dependency layer.
    #[serde(default)]
    pub python: PythonConfig,
    /// `[node]`: the Node.js dependency layer.
    #[serde(default)]
    pub node: NodeConfig,
    /// `[assess]`: the test variant and the quality gates.
    #[serde(default)]
    pub assess: AssessConfig,
    /// `[runtime]`: the container runtime for assess and health.
    #[serde(default)]
    pub runtime: RuntimeConfig,
    /// `[publish]`: where images go and which tags they get.
    #[serde(default)]
    pub publish: PublishConfig,
    /// `[cache]`: the cache repository that CI runners share.
    #[serde(default)]
    pub cache: CacheConfig,
}

/// `[cache]`: the cache repository shared by runners, and its key.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CacheConfig {
    /// A registry repository caching dependency layers and base scans
    /// (`--cache-repo` and `OXBUILD_CACHE_REPO` win over it).
    pub repository: Option<String>,
    /// A file (relative to the app directory) holding the fleet's secret that
    /// signs and checks the cache repository's entries. `OXBUILD_CACHE_KEY`
    /// and `OXBUILD_CACHE_KEY_FILE` win over it. The secret itself never
    /// belongs in this file.
    pub key_file: Option<String>,
}

/// `[publish]`: the publish policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PublishConfig {
    /// Where to publish; default `[image] repository`.
    pub repository: Option<String>,
    /// Branches whose builds are tagged `latest`.
    #[serde(default = "default_latest_branches")]
    pub latest_branches: Vec<String>,
    /// Tag with the git tag's name when HEAD is exactly at a tag.
    #[serde(default = "yes")]
    pub git_tag: bool,
    /// Tag with the short commit sha.
    #[serde(default = "yes")]
    pub sha: bool,
    /// More tags, always.
    #[serde(default)]
    pub tags: Vec<String>,
}

impl Default for PublishConfig {
    fn default() -> Self {
        PublishConfig {
            repository: None,
            latest_branches: default_latest_branches(),
            git_tag: true,
            sha: true,
            tags: Vec::new(),
        }
    }
}

fn default_latest_branches() -> Vec<String> {
    vec!["main".into()]
}

/// `[assess]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AssessConfig {
    /// Test files copied into the workdir of the test variant only; default
    /// `["tests"]` when that directory exists.
    pub include: Option<Vec<String>>,
    /// The gates, run in order in the test variant.
    #[serde(default)]
    pub gates: Vec<Gate>,
    /// Give gates network access (off by default, so tests cannot depend on it).
    #[serde(default)]
    pub network: bool,
}

/// One quality gate.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Gate {
    /// Its name, shown in output and reports.
    pub name: String,
    /// The shell command, run with `sh -c` in the workdir.
    pub run: String,
}

impl AssessConfig {
    /// The test paths of the app in `dir`: `include`, else the `tests`
    /// (Python's habit) and `test` (Node's) directories that exist.
    pub fn test_paths(&self, dir: &Path) -> Vec<String> {
        match &self.include {
            Some(paths) => paths.clone(),
            None => ["tests", "test"].iter().filter(|d| dir.join(d).is_dir()).map(|d| d.to_string()).collect(),
        }
    }
}

/// `[runtime]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RuntimeConfig {
    /// `podman` or `docker`; default: the first found on PATH.
    pub program: Option<String>,
}

/// `[node]`: a Node.js app's dependencies, from its package-lock.json.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct NodeConfig {
    /// The lock, relative to the app: `package-lock.json` (or
    /// `npm-shrinkwrap.json`) at the root when not set.
    pub lock: Option<String>,
    /// The registry for unscoped packages; else the `.npmrc`'s `registry`,
    /// else `https://registry.npmjs.org/`.
    pub registry: Option<String>,
    /// Where `node_modules` goes in the image: beside the app (the workdir),
    /// as `npm ci` puts it, when not set.
    pub modules_dir: Option<String>,
    /// Put the dev dependencies in the production image too (they are
    /// always in the test variant).
    #[serde(default)]
    pub include_dev: bool,
    /// Packages whose install scripts (`hasInstallScript`) are accepted
    /// unrun: oxbuild never runs them, and without this a package that has
    /// one fails the build.
    #[serde(default)]
    pub allow_install_scripts_missing: Vec<String>,
}

impl NodeConfig {
    /// The lock to install for the app in `dir`, if any: the named one, else
    /// `npm-shrinkwrap.json` (which npm prefers), else `package-lock.json`.
    pub fn lock_path(&self, dir: &Path) -> Option<PathBuf> {
        if let Some(l) = &self.lock {
            return Some(dir.join(l));
        }
        ["npm-shrinkwrap.json", "package-lock.json"].iter().map(|f| dir.join(f)).find(|p| p.is_file())
    }
}

/// `[python]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PythonConfig {
    /// A pinned requirements file, relative to the app directory. When neither
    /// this nor `lock` is set, the first of `requirements.txt`, `pylock.toml`
    /// and `uv.lock` that exists is used.
    pub requirements: Option<String>,
    /// A `pylock.toml` (PEP 751), `uv.lock`, `poetry.lock`, `Pipfile.lock`
    /// or `pdm.lock`.
    pub lock: Option<String>,
    /// What `oxbuild lock` resolves, when it is a requirements file other
    /// than the ones it looks for (`requirements/docker.txt`).
    pub lock_input: Option<String>,
    /// Pinned requirements of the test variant: a requirements file, a
    /// pylock.toml, or a uv.lock (then its `test-groups` are installed).
    pub test_requirements: Option<String>,
    /// The dependency groups of a lock `test-requirements` to install in the
    /// test variant; `["dev"]` (`["develop"]` for Pipfile.lock) when not set.
    pub test_groups: Option<Vec<String>>,
    /// Dependency groups production installs besides the lock's production
    /// part (uv's `prod` group, say).
    #[serde(default)]
    pub groups: Vec<String>,
    /// The project's own extras (pyproject.toml's `[project.optional-dependencies]`,
    /// or Poetry's `[tool.poetry.extras]`) production installs, as `uv sync
    /// --extra`, `poetry install -E` and `pip install .[x]` do: `oxbuild
    /// lock` locks their requirements with the project's, and from a
    /// uv.lock their packages are installed.
    #[serde(default)]
    pub extras: Vec<String>,
    /// Packages whose wheel in `find-links` is installed although the lock's
    /// hashes do not name it (a wheel built here from a source-only
    /// package); the SBOM says so.
    #[serde(default)]
    pub trust_local_wheels: Vec<String>,
    /// Build and install the project itself when it is a package (its
    /// pyproject.toml has a `[build-system]`), as `poetry install` and `uv
    /// sync` do; default true.
    #[serde(default = "yes")]
    pub install_project: bool,
    /// A pinned requirements file: the exact versions of the build backends
    /// (and their requirements) that sdist and project builds install.
    pub build_constraints: Option<String>,
    /// Where the virtual environment goes in the image.
    #[serde(default = "default_venv")]
    pub venv: String,
    /// The package index (default PyPI); wins over `--index-url` in the file.
    pub index_url: Option<String>,
    /// More indexes, asked after `index-url`.
    #[serde(default)]
    pub extra_index_url: Vec<String>,
    /// Directories of wheels, relative to the app directory, asked first.
    #[serde(default)]
    pub find_links: Vec<String>,
    /// Use no index at all: only `find-links`.
    #[serde(default)]
    pub no_index: bool,
    /// Compile `.pyc` files for the dependencies and the app: `"auto"` (the
    /// default) whenever an interpreter of the target's version can run,
    /// `true` to make a missing one an error, `false` for none.
    #[serde(default)]
    pub compile_bytecode: Bytecode,
}

/// `[python] compile-bytecode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Bytecode {
    /// Compile when an interpreter can run; else warn once and ship none.
    #[default]
    Auto,
    /// Compile, or fail the build.
    Always,
    /// Ship no bytecode.
    Never,
}

impl<'de> Deserialize<'de> for Bytecode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bool(true) => Ok(Bytecode::Always),
            Raw::Bool(false) => Ok(Bytecode::Never),
            Raw::Text(t) if t == "auto" => Ok(Bytecode::Auto),
            Raw::Text(t) => Err(serde::de::Error::custom(format!("`{t}` is not one of \"auto\", true, false"))),
        }
    }
}

impl Default for PythonConfig {
    fn default() -> Self {
        PythonConfig {
            requirements: None,
            lock: None,
            lock_input: None,
            test_requirements: None,
            test_groups: None,
            groups: Vec::new(),
            extras: Vec::new(),
            trust_local_wheels: Vec::new(),
            install_project: true,
            build_constraints: None,
            venv: default_venv(),
            index_url: None,
            extra_index_url: Vec::new(),
            find_links: Vec::new(),
            no_index: false,
            compile_bytecode: Bytecode::Auto,
        }
    }
}

fn default_venv() -> String {
    "/opt/venv".into()
}

impl PythonConfig {
    /// The dependency groups the test variant installs: `test-groups`, else
    /// the format's own test group (`dev`; Pipfile.lock's `develop`). Empty
    /// unless `test-requirements` is a lock with groups (uv.lock,
    /// poetry.lock, pdm.lock, Pipfile.lock).
    pub fn test_groups(&self) -> Vec<String> {
        match (&self.test_groups, self.test_lock_group()) {
            (_, None) => Vec::new(),
            (Some(groups), Some(_)) => groups.clone(),
            (None, Some(default)) => vec![default.to_string()],
        }
    }

    /// The default test group when `test-requirements` names a lock with groups.
    fn test_lock_group(&self) -> Option<&'static str> {
        let name = Path::new(self.test_requirements.as_deref()?).file_name()?.to_str()?;
        GROUPED_LOCKS.iter().find(|(f, _)| *f == name).map(|(_, g)| *g)
    }

    /// The lock to install for the app in `dir`, if any. With none named, a
    /// lock at the root is never ignored: the one there is used, and several
    /// are an error asking which to name.
    pub fn requirements_path(&self, dir: &Path) -> Result<Option<PathBuf>, String> {
        if let Some(r) = self.requirements.as_ref().or(self.lock.as_ref()) {
            return Ok(Some(dir.join(r)));
        }
        let found: Vec<&str> = LOCK_FILES.iter().copied().filter(|f| dir.join(f).is_file()).collect();
        match found.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(dir.join(one))),
            several => Err(format!(
                "{}: several locks are at the app's root ({}); name the one to install in [python] (requirements = \"...\" or lock = \"...\")",
                dir.display(),
                several.join(", ")
            )),
        }
    }

    /// Locks at the root of `dir` other than the one `[python]` names: a
    /// poetry.lock beside the requirements.txt in use, say, either of which
    /// may be the real one. Empty when `[python]` names none. Not listed: a
    /// requirements.txt that says it was exported from the other lock (or
    /// the other way round), and the input of a pylock.toml oxbuild wrote:
    /// those agree by how they were made.
    pub fn locks_beside(&self, dir: &Path) -> Vec<String> {
        let Some(named) = self.requirements.as_ref().or(self.lock.as_ref()) else { return Vec::new() };
        let named_name = Path::new(named).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let named = dir.join(named);
        // Read only when a requirements.txt lies beside the named lock.
        let by_oxbuild = || std::fs::read_to_string(&named).is_ok_and(|t| t.contains("\ncreated-by = \"oxbuild\""));
        let exported_from = exported_from(&dir.join("requirements.txt"));
        // The named file's own source (`uv export -o requirements/prod.txt`).
        let named_from = exported_from_file(&named);
        // Those a pylock.toml that oxbuild wrote replaced, as they were then.
        let replaced = replaced_locks(&named);
        LOCK_FILES
            .iter()
            .copied()
            .filter(|f| dir.join(f).is_file() && dir.join(f) != named)
            .filter(|f| replaced.get(*f).is_none_or(|was| lock_digest(&dir.join(f)).as_ref() != Some(was)))
            .filter(|f| named_from != Some(*f))
            .filter(|f| Some(dir.join(f)) != self.test_requirements.as_ref().map(|t| dir.join(t)))
            .filter(|f| !(*f == "requirements.txt" && (exported_from == Some(named_name.as_str()) || by_oxbuild())))
            .filter(|f| !(named_name == "requirements.txt" && exported_from == Some(*f)))
            .map(str::to_string)
            .collect()
    }
}

/// The lock a requirements file says (in its header comments) it was
/// exported from: `uv export` writes uv.lock's packages, `poetry export`
/// poetry.lock's, `pdm export` pdm.lock's, `pipenv requirements` Pipfile.lock's.
fn exported_from(path: &Path) -> Option<&'static str> {
    exported_by(path).map(|(lock, _)| lock)
}

/// [`exported_from`] for a path that need not be a requirements file.
fn exported_from_file(path: &Path) -> Option<&'static str> {
    path.extension().is_some_and(|e| e == "txt").then(|| exported_from(path)).flatten()
}

/// The lock a requirements file says it was exported from, and the
/// command line that did it (its header's, for the groups it names).
pub fn exported_by(path: &Path) -> Option<(&'static str, String)> {
    let text = std::fs::read_to_string(path).ok()?;
    let header: Vec<&str> =
        text.lines().take_while(|l| l.trim().is_empty() || l.trim_start().starts_with('#')).collect();
    [
        ("uv export", "uv.lock"),
        ("poetry export", "poetry.lock"),
        ("pdm export", "pdm.lock"),
        ("pipenv requirements", "Pipfile.lock"),
    ]
    .into_iter()
    .find_map(|(tool, lock)| {
        let line = header.iter().find(|l| l.contains(tool))?;
        Some((lock, line.trim_start_matches('#').trim().to_string()))
    })
}

/// The sha256 (hex) of a lock's bytes: how a pylock.toml that `oxbuild
/// lock` wrote records the locks beside it (`[tool.oxbuild] replaces`).
pub fn lock_digest(path: &Path) -> Option<String> {
    use sha2::Digest as _;
    std::fs::read(path).ok().map(|bytes| hex::encode(sha2::Sha256::digest(bytes)))
}

/// The `[tool.oxbuild] replaces` table of a pylock.toml that `oxbuild lock`
/// wrote, as `[tool.oxbuild]` text: each lock in `locks` (name, digest),
/// which this one replaces as long as it stays as it was.
pub fn replaces_table(locks: &[(String, String)]) -> String {
    if locks.is_empty() {
        return String::new();
    }
    let mut t = String::from(
        "\n[tool.oxbuild]\n# The locks beside this one when it was written: the build reads this one, and warns of one of them only once it changes.\nreplaces = [\n",
    );
    for (name, digest) in locks {
        t.push_str(&format!("    {{ file = {}, sha256 = \"{digest}\" }},\n", toml::Value::from(name.as_str())));
    }
    t.push_str("]\n");
    t
}

/// What [`replaces_table`] recorded in the lock at `path`: digests by file
/// name; empty for any other lock.
fn replaced_locks(path: &Path) -> BTreeMap<String, String> {
    let Some(doc) = std::fs::read_to_string(path).ok().and_then(|t| t.parse::<toml::Table>().ok()) else {
        return BTreeMap::new();
    };
    if doc.get("created-by").and_then(|c| c.as_str()) != Some("oxbuild") {
        return BTreeMap::new();
    }
    let list = doc.get("tool").and_then(|t| t.get("oxbuild")).and_then(|t| t.get("replaces"));
    list.and_then(|l| l.as_array())
        .into_iter()
        .flatten()
        .filter_map(|e| Some((e.get("file")?.as_str()?.to_string(), e.get("sha256")?.as_str()?.to_string())))
        .collect()
}

/// The locks oxbuild reads, looked for at an app's root when `[python]`
/// names none.
pub const LOCK_FILES: [&str; 6] =
    ["requirements.txt", "pylock.toml", "uv.lock", "poetry.lock", "Pipfile.lock", "pdm.lock"];

/// The locks whose packages carry groups, and the group a test variant
/// installs from each when `test-groups` names none.
const GROUPED_LOCKS: [(&str, &str); 4] =
    [("uv.lock", "dev"), ("poetry.lock", "dev"), ("pdm.lock", "dev"), ("Pipfile.lock", "develop")];

/// `[image]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ImageConfig {
    /// The base image reference, by tag or `@sha256:` digest; None when the
    /// file leaves it to `--base` or `OXBUILD_IMAGE_BASE`.
    pub base: Option<String>,
    /// Where `--push` goes when `--tag` names no registry.
    pub repository: Option<String>,
    /// The working directory, where the app's files go.
    #[serde(default = "default_workdir")]
    pub workdir: String,
    /// The user the image runs as; created when the base lacks it.
    #[serde(default = "default_user")]
    pub user: String,
    /// The user's numeric id.
    pub uid: Option<u32>,
    /// The user's primary group id (defaults to the uid).
    pub gid: Option<u32>,
    /// The entrypoint; the base's when absent.
    pub entrypoint: Option<Vec<String>>,
    /// The command; cleared when an entrypoint is set without one, as Docker does.
    pub cmd: Option<Vec<String>>,
    /// Environment variables, merged over the base's.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// TCP ports the app listens on.
    #[serde(default)]
    pub ports: Vec<u16>,
    /// Empty directories the image gets, owned by the user (mode 0755): where
    /// the app writes at run time outside its workdir (`/data`, uploads).
    #[serde(default)]
    pub dirs: Vec<String>,
    /// Image labels, merged over the base's.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Stamp labels from git (commit, branch, version, OCI revision/source/…).
    #[serde(default = "yes")]
    pub git_labels: bool,
    /// Compression of the layers oxbuild writes: `gzip` (default) or `zstd`
    /// (OCI media types only, so not with a healthcheck).
    #[serde(default)]
    pub compression: Compression,
    /// The platforms to build (`["linux/amd64", "linux/arm64"]`): one image
    /// each, under an index. Empty: the one `--platform` asks for, or the
    /// machine's own.
    #[serde(default)]
    pub platforms: Vec<String>,
}

impl Default for ImageConfig {
    fn default() -> Self {
        ImageConfig {
            base: None,
            repository: None,
            workdir: default_workdir(),
            user: default_user(),
            uid: None,
            gid: None,
            entrypoint: None,
            cmd: None,
            env: BTreeMap::new(),
            ports: Vec::new(),
            dirs: Vec::new(),
            labels: BTreeMap::new(),
            git_labels: true,
            compression: Compression::Gzip,
            platforms: Vec::new(),
        }
    }
}

/// Layer compression.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// gzip, read by every runtime and registry.
    #[default]
    Gzip,
    /// zstd: smaller and faster, for OCI images.
    Zstd,
}

fn yes() -> bool {
    true
}

/// The uid a created user gets when `uid` is not set.
pub const DEFAULT_UID: u32 = 1000;

impl ImageConfig {
    /// The uid to run as: the configured one or [`DEFAULT_UID`].
    pub fn uid(&self) -> u32 {
        self.uid.unwrap_or(DEFAULT_UID)
    }

    /// The gid to run as: the configured one or the uid.
    pub fn gid(&self) -> u32 {
        self.gid.unwrap_or(self.uid())
    }
}

/// `[app]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AppConfig {
    /// The folder of the project whose contents go into the workdir
    /// (`COPY shynet .`); the project itself when absent. The project's
    /// locks, package.json and `.dockerignore` are still read at its root.
    pub root: Option<String>,
    /// Paths (relative to `root`) copied into the workdir; all of it when absent.
    pub include: Option<Vec<String>>,
}

impl AppConfig {
    /// The folder whose contents make the app layer: `dir`, or `root` in it.
    pub fn dir(&self, dir: &Path) -> PathBuf {
        match self.root_rel() {
            r if r.is_empty() => dir.to_path_buf(),
            r => dir.join(r),
        }
    }

    /// `root` as a path relative to the project with no `./` or trailing
    /// `/`; empty for the project itself.
    pub fn root_rel(&self) -> String {
        let r = self.root.as_deref().unwrap_or("").trim_start_matches("./").trim_end_matches('/');
        if r == "." { String::new() } else { r.to_string() }
    }
}

/// `[healthcheck]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HealthcheckConfig {
    /// Exec-form probe command.
    pub cmd: Option<Vec<String>>,
    /// Shell-form probe command (`CMD-SHELL`).
    pub shell: Option<String>,
    /// A URL fetched with the image's own Python; healthy on a 2xx or 3xx answer.
    pub http: Option<String>,
    /// Time between probes.
    #[serde(default = "default_interval", deserialize_with = "duration")]
    pub interval: Duration,
    /// How long one probe may take.
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// Consecutive failures before the container is unhealthy.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Grace time after start during which failures do not count.
    #[serde(default, deserialize_with = "duration")]
    pub start_period: Duration,
}

/// What a healthcheck probe runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// `["CMD", ...]`
    Exec(Vec<String>),
    /// `["CMD-SHELL", "..."]`
    Shell(String),
    /// An HTTP GET made by the image's Python interpreter.
    Http(String),
}

impl HealthcheckConfig {
    /// The one probe configured (validated by [`Config::parse`]).
    pub fn probe(&self) -> Probe {
        match (&self.cmd, &self.shell, &self.http) {
            (Some(c), _, _) => Probe::Exec(c.clone()),
            (_, Some(s), _) => Probe::Shell(s.clone()),
            (_, _, Some(u)) => Probe::Http(u.clone()),
            _ => unreachable!("validated: exactly one probe"),
        }
    }
}

/// Whether the HTTP probe can send `url` as it is (`[healthcheck] http`):
/// an http:// or https:// URL with a host, and no shell variable left in
/// it, since no shell expands `${PORT}` there. (A `$` of a query,
/// `?$top=1`, is the URL's own.) `oxbuild init` carries a Dockerfile's
/// probe URL only when this holds.
pub fn check_probe_url(url: &str) -> Result<(), String> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!("[healthcheck] http `{url}` must be an http:// or https:// URL"));
    }
    let authority = url.split("://").nth(1).and_then(|r| r.split(['/', '?']).next()).unwrap_or("");
    let shell = url.contains("${") || authority.contains('$');
    let variables =
        if shell { "; shell variables are not expanded here, write the port and path themselves" } else { "" };
    match url::Url::parse(url) {
        Ok(u) if u.host().is_some() && !shell => Ok(()),
        Ok(_) => Err(format!("[healthcheck] http `{url}` is not a URL the probe can send{variables}")),
        Err(e) => Err(format!("[healthcheck] http `{url}` is not a valid URL ({e}){variables}")),
    }
}

fn parse_error(path: &Path, text: &str, e: &toml::de::Error) -> Error {
    let (line, message) = toml_syntax(text, e);
    Error::Parse { path: path.to_path_buf(), line, message }
}

/// A TOML syntax error in `text` as a line number and a one-line message;
/// a key set twice is named (toml says only "duplicate key").
pub fn toml_syntax(text: &str, e: &toml::de::Error) -> (usize, String) {
    let span = e.span().map(|s| s.start.min(text.len())..s.end.min(text.len()));
    let line = span.as_ref().map(|s| text[..s.start].matches('\n').count() + 1).unwrap_or(1);
    let mut message = e.message().trim().replace('\n', " ");
    if message == "duplicate key"
        && let Some(key) = span.and_then(|s| text.get(s)).map(str::trim).filter(|k| !k.is_empty())
    {
        message = format!("duplicate key `{key}`: it is set twice in its table; keep one");
    }
    (line, message)
}

/// Applies `OXBUILD_<SECTION>_<KEY>` variables to a raw config table: for
/// example `OXBUILD_IMAGE_BASE` sets `[image] base` and
/// `OXBUILD_PYTHON_INDEX_URL` sets `[python] index-url`. Values are TOML
/// (`["a", "b"]`, `true`, `3`) or else plain strings. Returns true when
/// something changed. Other `OXBUILD_*` variables (credentials, the cache
/// directory) are not config keys and are left alone.
pub fn apply_env(table: &mut toml::Table, vars: impl IntoIterator<Item = (String, String)>) -> bool {
    !overrides(table, vars).is_empty()
}

/// What [`apply_env`] does, returning what it changed: for each variable
/// applied, its name, the key (`[image] base`) and whether it replaced a
/// different value the file set.
fn overrides(table: &mut toml::Table, vars: impl IntoIterator<Item = (String, String)>) -> Vec<(String, String, bool)> {
    const SECTIONS: [&str; 8] = ["image", "app", "healthcheck", "python", "node", "assess", "runtime", "publish"];
    let mut changed = Vec::new();
    for (name, raw) in vars {
        let Some(rest) = name.strip_prefix("OXBUILD_") else { continue };
        let rest = rest.to_ascii_lowercase();
        let Some(section) = SECTIONS.iter().find(|s| rest.starts_with(&format!("{s}_"))) else { continue };
        let key = rest[section.len() + 1..].replace('_', "-");
        let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or(toml::Value::String(raw.clone()));
        let entry = table.entry(section.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if let toml::Value::Table(t) = entry {
            let replaced = t.insert(key.clone(), value.clone()).is_some_and(|was| was != value);
            changed.push((name.clone(), format!("[{section}] {key}"), replaced));
        }
    }
    changed
}

/// True when a pyproject.toml text has a `[tool.oxbuild]` table.
fn has_tool_oxbuild(text: &str) -> bool {
    text.parse::<toml::Table>().ok().and_then(|t| t.get("tool")?.get("oxbuild").cloned()).is_some()
}

fn default_workdir() -> String {
    "/app".into()
}
fn default_user() -> String {
    "app".into()
}
fn default_interval() -> Duration {
    Duration::from_secs(30)
}
fn default_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_retries() -> u32 {
    3
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map_err(|e| {
        serde::de::Error::custom(format!("`{s}` is not a duration ({e}); write it like \"5s\", \"500ms\" or \"1m30s\""))
    })
}

/// The `[project]` name and version of the pyproject.toml in `dir`, when it
/// has them (a static version only; a dynamic one is not known without a build).
pub fn project_metadata(dir: &Path) -> (Option<String>, Option<String>) {
    let Ok(text) = std::fs::read_to_string(dir.join("pyproject.toml")) else { return (None, None) };
    let Ok(table) = text.parse::<toml::Table>() else { return (None, None) };
    let field = |k: &str| table.get("project").and_then(|p| p.get(k)).and_then(|v| v.as_str()).map(str::to_string);
    (field("name"), field("version"))
}

impl Config {
    /// Reads the app's configuration from `dir`: `oxbuild.toml`, or else the
    /// `[tool.oxbuild]` table of `pyproject.toml`; then applies `OXBUILD_*`
    /// environment overrides (see [`apply_env`]).
    pub fn load(dir: &Path) -> Result<Config, Error> {
        Config::load_with_env(dir, std::env::vars())
    }

    /// [`Config::load`] with the environment given.
    pub fn load_with_env(dir: &Path, vars: impl IntoIterator<Item = (String, String)>) -> Result<Config, Error> {
        let (cfg, mut table) = Config::load_file(dir)?;
        let changed = overrides(&mut table, vars);
        if changed.is_empty() {
            return Ok(cfg);
        }
        let env = PathBuf::from("OXBUILD_* environment");
        let mut updated: Config = table.try_into().map_err(|e: toml::de::Error| Error::Invalid {
            path: env.clone(),
            message: format!("an override is not valid: {}", e.message().trim().replace('\n', " ")),
        })?;
        updated.validate().map_err(|message| Error::Invalid { path: env, message })?;
        updated.overridden = changed
            .into_iter()
            .filter(|(_, _, replaced)| *replaced)
            .map(|(var, key, _)| format!("{var} overrides {key} of the project's config"))
            .collect();
        Ok(updated)
    }

    /// The config and its raw table, for overrides.
    fn load_file(dir: &Path) -> Result<(Config, toml::Table), Error> {
        let path = dir.join(FILE_NAME);
        if !dir.is_dir() {
            return Err(Error::Read {
                path: dir.to_path_buf(),
                why: "no such directory; give the app directory".into(),
            });
        }
        let pyproject = dir.join("pyproject.toml");
        let from_pyproject = std::fs::read_to_string(&pyproject).ok().filter(|t| has_tool_oxbuild(t));
        match (std::fs::read_to_string(&path), from_pyproject) {
            (Ok(_), Some(_)) => Err(Error::Read {
                path,
                why: "pyproject.toml has a [tool.oxbuild] table too; keep the settings in one place".into(),
            }),
            (Ok(text), None) => {
                let cfg = Config::parse(&path, &text)?;
                Ok((cfg, text.parse().unwrap_or_default()))
            }
            (Err(e), Some(text)) if e.kind() == std::io::ErrorKind::NotFound => {
                let cfg = Config::parse_pyproject(&pyproject, &text)?;
                let table: toml::Table = text.parse().unwrap_or_default();
                let tool = table.get("tool").and_then(|t| t.get("oxbuild")).and_then(|t| t.as_table()).cloned();
                Ok((cfg, tool.unwrap_or_default()))
            }
            (Err(e), _) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::Read {
                path,
                why: "not found; every app needs an oxbuild.toml (or [tool.oxbuild] in pyproject.toml) at its root: `oxbuild init` writes one".into(),
            }),
            (Err(e), _) => Err(Error::Read { path, why: e.to_string() }),
        }
    }

    /// Parses the `[tool.oxbuild]` table of a pyproject.toml; errors name the
    /// file and the line in it.
    pub fn parse_pyproject(path: &Path, text: &str) -> Result<Config, Error> {
        #[derive(Deserialize)]
        struct Pyproject {
            tool: Tool,
        }
        #[derive(Deserialize)]
        struct Tool {
            oxbuild: Config,
        }
        let parsed: Pyproject = toml::from_str(text).map_err(|e| parse_error(path, text, &e))?;
        parsed.tool.oxbuild.validate().map_err(|message| Error::Invalid { path: path.to_path_buf(), message })?;
        Ok(parsed.tool.oxbuild)
    }

    /// Parses and validates `text`, naming `path` in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Config, Error> {
        let cfg: Config = toml::from_str(text).map_err(|e| parse_error(path, text, &e))?;
        cfg.validate().map_err(|message| Error::Invalid { path: path.to_path_buf(), message })?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), String> {
        let img = &self.image;
        if img.base.as_deref().is_some_and(|b| b.trim().is_empty()) {
            return Err("[image] base is empty: name the base image, e.g. \"registry.example.com/python:3.11\"".into());
        }
        if img.user == "root" || img.user.is_empty() || img.uid == Some(0) {
            return Err(
                "[image] user must be a non-root user with a non-zero uid: images built by oxbuild never run as root"
                    .into(),
            );
        }
        let valid_name = img.user.len() <= 32
            && img.user.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
            && img.user.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'));
        if !valid_name {
            return Err(format!(
                "[image] user `{}` is not a valid user name (lowercase letters, digits, `_` and `-`)",
                img.user
            ));
        }
        if !img.workdir.starts_with('/') {
            return Err(format!("[image] workdir `{}` must be an absolute path", img.workdir));
        }
        if img.ports.contains(&0) {
            return Err("[image] ports: 0 is not a port".into());
        }
        for d in &img.dirs {
            let p = Path::new(d);
            if !p.is_absolute() || p.parent().is_none() || p.components().any(|c| c == std::path::Component::ParentDir)
            {
                return Err(format!(
                    "[image] dirs: `{d}` must be an absolute path below / without `..`, e.g. \"/data\""
                ));
            }
        }
        for p in &img.platforms {
            let parts: Vec<&str> = p.split('/').collect();
            if !(2..=3).contains(&parts.len()) || parts.iter().any(|x| x.is_empty()) {
                return Err(format!(
                    "[image] platforms: `{p}` is not a platform (os/arch[/variant], e.g. linux/arm64)"
                ));
            }
        }
        if let Some(root) = &self.app.root
            && (Path::new(root).is_absolute()
                || Path::new(root).components().any(|c| c == std::path::Component::ParentDir))
        {
            return Err(format!("[app] root: `{root}` must be a folder inside the app directory"));
        }
        if let Some(include) = &self.app.include {
            for p in include {
                if Path::new(p).is_absolute() || Path::new(p).components().any(|c| c == std::path::Component::ParentDir)
                {
                    return Err(format!("[app] include: `{p}` must be a path inside the app directory"));
                }
            }
        }
        if img.compression == Compression::Zstd && self.healthcheck.is_some() {
            return Err(
                "[image] compression = \"zstd\" needs OCI media types, but a [healthcheck] needs Docker's (podman and Docker ignore healthchecks on OCI images); use gzip, or drop the healthcheck".into(),
            );
        }
        let mut names = std::collections::BTreeSet::new();
        for gate in &self.assess.gates {
            if gate.name.trim().is_empty() || gate.run.trim().is_empty() {
                return Err("[assess] gates: every gate needs a `name` and a `run` command".into());
            }
            if !names.insert(gate.name.as_str()) {
                return Err(format!("[assess] gates: the name `{}` is used twice", gate.name));
            }
        }
        if let Some(include) = &self.assess.include {
            for p in include {
                if Path::new(p).is_absolute() || Path::new(p).components().any(|c| c == std::path::Component::ParentDir)
                {
                    return Err(format!("[assess] include: `{p}` must be a path inside the app directory"));
                }
            }
        }
        if let Some(program) = &self.runtime.program
            && program != "podman"
            && program != "docker"
        {
            return Err(format!("[runtime] program `{program}`: use \"podman\" or \"docker\""));
        }
        let py = &self.python;
        if py.requirements.is_some() && py.lock.is_some() {
            return Err("[python] set either `requirements` or `lock`, not both".into());
        }
        if py.test_groups.is_some() && py.test_lock_group().is_none() {
            return Err(
                "[python] test-groups picks dependency groups of a lock that has them (uv.lock, poetry.lock, pdm.lock, Pipfile.lock): set test-requirements to it too, or drop test-groups".into(),
            );
        }
        if py.test_groups.as_ref().is_some_and(|g| g.is_empty() || g.iter().any(|g| g.trim().is_empty())) {
            return Err("[python] test-groups: name at least one group, e.g. [\"dev\"]".into());
        }
        if let Some(lock) = &py.lock {
            let name = Path::new(lock).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let known = matches!(name.as_str(), "uv.lock" | "poetry.lock" | "Pipfile.lock" | "pdm.lock")
                || (name.starts_with("pylock.") && name.ends_with(".toml"));
            if !known {
                return Err(format!(
                    "[python] lock = \"{lock}\": name a pylock.toml (pylock.*.toml), uv.lock, poetry.lock, Pipfile.lock or pdm.lock; a requirements file goes in `requirements`"
                ));
            }
        }
        if !py.venv.starts_with('/') || py.venv.trim_end_matches('/').is_empty() {
            return Err(format!("[python] venv `{}` must be an absolute path other than /", py.venv));
        }
        if let Some(hc) = &self.healthcheck {
            let count = [hc.cmd.is_some(), hc.shell.is_some(), hc.http.is_some()].iter().filter(|b| **b).count();
            if count != 1 {
                return Err("[healthcheck] needs exactly one of `cmd` (exec form), `shell` or `http`".into());
            }
            if hc.cmd.as_ref().is_some_and(|c| c.is_empty()) {
                return Err("[healthcheck] cmd is empty".into());
            }
            if let Some(url) = &hc.http {
                check_probe_url(url)?;
            }
            if hc.interval.is_zero() || hc.timeout.is_zero() {
                return Err("[healthcheck] interval and timeout must be longer than zero".into());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_at_the_root_is_never_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = parse("").unwrap();
        assert_eq!(cfg.python.requirements_path(dir.path()), Ok(None));
        std::fs::write(dir.path().join("poetry.lock"), "").unwrap();
        assert_eq!(cfg.python.requirements_path(dir.path()), Ok(Some(dir.path().join("poetry.lock"))));
        std::fs::write(dir.path().join("requirements.txt"), "").unwrap();
        let e = cfg.python.requirements_path(dir.path()).unwrap_err();
        assert!(e.contains("several locks") && e.contains("requirements.txt, poetry.lock"), "{e}");
        std::fs::remove_file(dir.path().join("poetry.lock")).unwrap();
        assert_eq!(cfg.python.requirements_path(dir.path()), Ok(Some(dir.path().join("requirements.txt"))));

        std::fs::write(dir.path().join("uv.lock"), "").unwrap();
        let named = parse("[python]\nlock = \"uv.lock\"\n").unwrap();
        assert_eq!(named.python.requirements_path(dir.path()), Ok(Some(dir.path().join("uv.lock"))));
        assert_eq!(named.python.locks_beside(dir.path()), ["requirements.txt"]);
        assert!(cfg.python.locks_beside(dir.path()).is_empty(), "nothing named: nothing beside");

        // An export of the lock in use, either way round, agrees with it by
        // how it was made; an export of another lock does not.
        std::fs::write(
            dir.path().join("requirements.txt"),
            "# autogenerated by uv via:\n#    uv export --frozen\nflask==3.1.0\n",
        )
        .unwrap();
        assert!(named.python.locks_beside(dir.path()).is_empty());
        let txt = parse("[python]\nrequirements = \"requirements.txt\"\n").unwrap();
        assert!(txt.python.locks_beside(dir.path()).is_empty());
        std::fs::write(dir.path().join("poetry.lock"), "").unwrap();
        assert_eq!(txt.python.locks_beside(dir.path()), ["poetry.lock"]);
        std::fs::remove_file(dir.path().join("poetry.lock")).unwrap();
        // The input of a pylock.toml that oxbuild wrote.
        std::fs::write(dir.path().join("requirements.txt"), "flask>=3\n").unwrap();
        std::fs::write(dir.path().join("pylock.toml"), "lock-version = \"1.0\"\ncreated-by = \"oxbuild\"\n").unwrap();
        let pylock = parse("[python]\nlock = \"pylock.toml\"\n").unwrap();
        assert_eq!(pylock.python.locks_beside(dir.path()), ["uv.lock"]);
        // The locks it replaced, while they stay as they were then.
        let digest = lock_digest(&dir.path().join("uv.lock")).unwrap();
        let table = replaces_table(&[("uv.lock".into(), digest)]);
        let text = format!("lock-version = \"1.0\"\ncreated-by = \"oxbuild\"\n{table}");
        std::fs::write(dir.path().join("pylock.toml"), text).unwrap();
        assert!(pylock.python.locks_beside(dir.path()).is_empty());
        std::fs::write(dir.path().join("uv.lock"), "version = 1\n").unwrap();
        assert_eq!(pylock.python.locks_beside(dir.path()), ["uv.lock"], "changed since");
        // An export in a folder (djangoproject.com's requirements/prod.txt) names its lock too.
        std::fs::remove_file(dir.path().join("pylock.toml")).unwrap();
        std::fs::create_dir_all(dir.path().join("requirements")).unwrap();
        std::fs::write(
            dir.path().join("requirements/prod.txt"),
            "# This file was autogenerated by uv via the following command:\n#    uv export --group prod --output-file=requirements/prod.txt\ndjango==5.2\n",
        )
        .unwrap();
        let prod = parse("[python]\nrequirements = \"requirements/prod.txt\"\n").unwrap();
        assert_eq!(prod.python.locks_beside(dir.path()), ["requirements.txt"], "uv.lock is its source");
    }

    fn parse(text: &str) -> Result<Config, Error> {
        Config::parse(Path::new("app/oxbuild.toml"), text)
    }

    const MINIMAL: &str = "[image]\nbase = \"127.0.0.1:5000/python:3.11\"\n";

    #[test]
    fn defaults_are_filled_in() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!((c.image.uid(), c.image.gid()), (1000, 1000));
        assert!(c.healthcheck.is_none());
        assert!(c.app.include.is_none());
    }

    #[test]
    fn unknown_key_names_file_key_and_line() {
        let e = parse(&format!("{MINIMAL}colour = \"blue\"\n")).unwrap_err().to_string();
        assert!(e.starts_with("app/oxbuild.toml:3:"), "{e}");
        assert!(e.contains("colour"), "{e}");
        assert!(!e.contains('\n'), "one line: {e}");
        // A key set twice is named, at its second line.
        let e = parse("[python]\nlock = \"uv.lock\"\nlock = \"pylock.toml\"\n").unwrap_err().to_string();
        assert!(e.starts_with("app/oxbuild.toml:3: duplicate key `lock`"), "{e}");
    }

    #[test]
    fn malformed_duration_is_explained() {
        let e =
            parse(&format!("{MINIMAL}[healthcheck]\nhttp = \"http://127.0.0.1:8000/\"\ninterval = \"5 parsecs\"\n"))
                .unwrap_err()
                .to_string();
        assert!(e.starts_with("app/oxbuild.toml:5:"), "{e}");
        assert!(e.contains("5 parsecs") && e.contains("duration"), "{e}");
    }

    #[test]
    fn a_healthcheck_url_the_probe_cannot_send_is_refused() {
        let http = |url: &str| parse(&format!("{MINIMAL}[healthcheck]\nhttp = \"{url}\"\n")).map(drop);
        let e = http("http://127.0.0.1:${PORT:-9090}/health").unwrap_err().to_string();
        assert!(e.contains("not a valid URL (invalid port number)") && e.contains("shell variables"), "{e}");
        let e = http("http://127.0.0.1:8000/${PREFIX}health").unwrap_err().to_string();
        assert!(e.contains("not a URL the probe can send; shell variables"), "{e}");
        let e = http("http://:8000/").unwrap_err().to_string();
        assert!(e.contains("not a valid URL"), "{e}");
        http("http://127.0.0.1:8000/health?deep=1").unwrap();
        http("http://127.0.0.1:8000/odata/Items?$top=1").unwrap();
    }

    #[test]
    fn durations_and_probes_parse() {
        let c = parse(&format!(
            "{MINIMAL}[healthcheck]\ncmd = [\"true\"]\ninterval = \"5s\"\ntimeout = \"500ms\"\nstart-period = \"1m\"\nretries = 2\n"
        ))
        .unwrap();
        let hc = c.healthcheck.unwrap();
        assert_eq!(hc.interval, Duration::from_secs(5));
        assert_eq!(hc.timeout, Duration::from_millis(500));
        assert_eq!(hc.start_period, Duration::from_secs(60));
        assert_eq!(hc.probe(), Probe::Exec(vec!["true".into()]));
    }

    #[test]
    fn root_and_ambiguous_probes_are_rejected() {
        assert!(parse(&format!("{MINIMAL}user = \"root\"\n")).is_err());
        assert!(parse(&format!("{MINIMAL}uid = 0\n")).is_err());
        let e =
            parse(&format!("{MINIMAL}[healthcheck]\ncmd = [\"true\"]\nshell = \"true\"\n")).unwrap_err().to_string();
        assert!(e.contains("exactly one"), "{e}");
    }

    #[test]
    fn dirs_are_absolute_paths_below_the_root() {
        let ok = parse(&format!("{MINIMAL}dirs = [\"/data\", \"/var/lib/app\"]\n")).unwrap();
        assert_eq!(ok.image.dirs, ["/data", "/var/lib/app"]);
        for bad in ["data", "/", "/srv/../etc"] {
            let e = parse(&format!("{MINIMAL}dirs = [\"{bad}\"]\n")).unwrap_err().to_string();
            assert!(e.contains("[image] dirs") && e.contains(bad), "{e}");
        }
    }

    #[test]
    fn the_app_root_is_a_folder_inside_the_project() {
        let ok = parse("[app]\nroot = \"./shynet/\"\n").unwrap();
        assert_eq!(ok.app.root_rel(), "shynet");
        assert_eq!(ok.app.dir(Path::new("/p")), Path::new("/p/shynet"));
        assert_eq!(parse("[app]\nroot = \".\"\n").unwrap().app.dir(Path::new("/p")), Path::new("/p"));
        for bad in ["../other", "/srv"] {
            let e = parse(&format!("[app]\nroot = \"{bad}\"\n")).unwrap_err().to_string();
            assert!(e.contains("[app] root") && e.contains(bad), "{e}");
        }
    }

    #[test]
    fn test_groups_belong_to_a_uv_lock() {
        let uv = parse(&format!("{MINIMAL}[python]\ntest-requirements = \"uv.lock\"\n")).unwrap();
        assert_eq!(uv.python.test_groups(), vec!["dev"], "uv's default group");
        let named =
            parse(&format!("{MINIMAL}[python]\ntest-requirements = \"uv.lock\"\ntest-groups = [\"test\", \"lint\"]\n"));
        assert_eq!(named.unwrap().python.test_groups(), vec!["test", "lint"]);
        let plain = parse(&format!("{MINIMAL}[python]\ntest-requirements = \"requirements-test.txt\"\n")).unwrap();
        assert!(plain.python.test_groups().is_empty());
        let e = parse(&format!(
            "{MINIMAL}[python]\ntest-requirements = \"requirements-test.txt\"\ntest-groups = [\"dev\"]\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("test-groups") && e.contains("uv.lock"), "{e}");
        let e = parse(&format!("{MINIMAL}[python]\ntest-requirements = \"uv.lock\"\ntest-groups = []\n")).unwrap_err();
        assert!(e.to_string().contains("at least one group"), "{e}");
    }

    #[test]
    fn environment_overrides_keys_with_toml_or_string_values() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), format!("{MINIMAL}[python]\nno-index = false\n")).unwrap();
        let vars = vec![
            ("OXBUILD_IMAGE_BASE".to_string(), "ghcr.io/org/python:3.12".to_string()),
            ("OXBUILD_PYTHON_NO_INDEX".to_string(), "true".to_string()),
            ("OXBUILD_IMAGE_PORTS".to_string(), "[8080, 9090]".to_string()),
            ("OXBUILD_REGISTRY_USER".to_string(), "not-a-config-key".to_string()),
        ];
        let c = Config::load_with_env(dir.path(), vars).unwrap();
        assert_eq!(c.image.base.as_deref(), Some("ghcr.io/org/python:3.12"));
        assert!(c.python.no_index);
        assert_eq!(c.image.ports, vec![8080, 9090]);
        let e = Config::load_with_env(dir.path(), vec![("OXBUILD_IMAGE_COLOUR".to_string(), "x".to_string())])
            .unwrap_err()
            .to_string();
        assert!(e.contains("OXBUILD_* environment") && e.contains("colour"), "{e}");
    }

    /// A variable that changes what the file set is named (never its
    /// value); one that sets what the file leaves out, or the same value, is not.
    #[test]
    fn overrides_of_the_files_values_are_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), "[image]\nbase = \"node:18\"\nworkdir = \"/srv\"\n").unwrap();
        let vars = |v: &[(&str, &str)]| v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>();
        let cfg = Config::load_with_env(
            dir.path(),
            vars(&[
                ("OXBUILD_IMAGE_BASE", "python:3.11"),
                ("OXBUILD_IMAGE_WORKDIR", "/srv"),
                ("OXBUILD_IMAGE_USER", "web"),
            ]),
        )
        .unwrap();
        assert_eq!(cfg.image.base.as_deref(), Some("python:3.11"));
        assert_eq!(cfg.overridden, ["OXBUILD_IMAGE_BASE overrides [image] base of the project's config"]);
        assert!(Config::load_with_env(dir.path(), vars(&[])).unwrap().overridden.is_empty());
    }

    #[test]
    fn pyproject_tool_table_is_read_with_its_own_line_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let text = "[project]\nname = \"x\"\n\n[tool.ruff]\nline-length = 100\n\n[tool.oxbuild.image]\nbase = \"r.io/python:3.11\"\n".to_string();
        std::fs::write(dir.path().join("pyproject.toml"), &text).unwrap();
        assert_eq!(Config::load_with_env(dir.path(), vec![]).unwrap().image.base.as_deref(), Some("r.io/python:3.11"));
        std::fs::write(dir.path().join("pyproject.toml"), format!("{text}wrokdir = \"/x\"\n")).unwrap();
        let e = Config::load_with_env(dir.path(), vec![]).unwrap_err().to_string();
        assert!(e.contains("pyproject.toml:9:") && e.contains("wrokdir"), "{e}");
        std::fs::write(dir.path().join(FILE_NAME), MINIMAL).unwrap();
        let e = Config::load_with_env(dir.path(), vec![]).unwrap_err().to_string();
        assert!(e.contains("one place"), "{e}");
    }

    #[test]
    fn missing_file_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let e = Config::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("oxbuild.toml") && e.contains("not found"), "{e}");
    }
}
