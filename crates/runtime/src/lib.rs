//! oxbuild's container runtime driver: the only place a container runtime is
//! used. It drives `podman` or `docker` through their command lines, so it
//! needs no daemon socket and works rootless.
//!
//! - [`Runtime`]: finds the runtime, loads an image archive into it.
//! - [`gates`]: runs quality gates in the test image, streaming their output.
//! - [`health`]: starts the image and polls its healthcheck itself, on the
//!   image's own interval, timeout, retries and start period: CI runners have
//!   neither systemd timers nor a daemon's scheduler.
//! - [`Containers`]: every container oxbuild starts has a unique name and is
//!   removed on success, failure, Ctrl-C or SIGTERM.

pub mod gates;
pub mod health;

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use tokio::process::Command;

/// A runtime problem: the program is missing or failed at something.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Neither podman nor docker was found, or the chosen one is missing.
    #[error("{0}")]
    NotFound(String),
    /// The runtime failed a command.
    #[error("{program} {what} failed: {detail}")]
    Failed {
        /// podman or docker.
        program: String,
        /// Which command.
        what: String,
        /// Its stderr, trimmed.
        detail: String,
    },
}

/// A container runtime on this machine.
#[derive(Clone)]
pub struct Runtime {
    program: String,
    /// Variables for the containers it starts ([`Runtime::with_env`]).
    env: Vec<(String, String)>,
}

/// Names the variables, never their values (they may be secrets).
impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.env.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("Runtime").field("program", &self.program).field("env", &names).finish()
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file())).unwrap_or(false)
}

impl Runtime {
    /// `preferred` when given (it must exist), else podman, else docker.
    pub fn detect(preferred: Option<&str>) -> Result<Runtime, Error> {
        if let Some(p) = preferred {
            return if on_path(p) {
                Ok(Runtime { program: p.to_string(), env: Vec::new() })
            } else {
                Err(Error::NotFound(format!(
                    "container runtime `{p}` is not on PATH; install it or choose another with --runtime"
                )))
            };
        }
        ["podman", "docker"]
            .iter()
            .find(|p| on_path(p))
            .map(|p| Runtime { program: p.to_string(), env: Vec::new() })
            .ok_or_else(|| {
                Error::NotFound("no container runtime found: assess and health need podman or docker on PATH".into())
            })
    }

    /// `podman` or `docker`.
    pub fn program(&self) -> &str {
        &self.program
    }

    /// The same runtime, starting its containers with `env` (name, value)
    /// set. They reach a `run` through an env file only its user can read
    /// ([`Runtime::env_file`]), never the command line (a process list
    /// shows that) nor the runtime's own environment (where HOME or
    /// DOCKER_HOST would change the runtime itself).
    pub fn with_env(mut self, env: Vec<(String, String)>) -> Runtime {
        self.env = env;
        self
    }

    /// The `--env-file FILE` arguments of a `run`, with the file (mode
    /// 0600, removed when dropped: keep it until the container has
    /// started); none without variables. A value with a newline cannot be
    /// written there, and is an error that names the variable only.
    pub fn env_file(&self) -> Result<(Vec<String>, Option<tempfile::NamedTempFile>), Error> {
        use std::io::Write as _;
        if self.env.is_empty() {
            return Ok((Vec::new(), None));
        }
        let failed = |detail: String| Error::Failed { program: self.program.clone(), what: "run".into(), detail };
        let mut file = tempfile::Builder::new()
            .prefix("oxbuild-env-")
            .tempfile()
            .map_err(|e| failed(format!("writing the --env file: {e}")))?;
        for (name, value) in &self.env {
            if value.contains(['\n', '\r']) {
                return Err(failed(format!("--env {name}: a value of several lines cannot be passed to a container")));
            }
            writeln!(file, "{name}={value}").map_err(|e| failed(format!("writing the --env file: {e}")))?;
        }
        file.flush().map_err(|e| failed(format!("writing the --env file: {e}")))?;
        let path = file.path().display().to_string();
        Ok((vec!["--env-file".into(), path], Some(file)))
    }

    /// A command for the runtime.
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.program);
        c.stdin(Stdio::null()).kill_on_drop(true);
        c
    }

    /// Runs the runtime with `args` and returns stdout, or an error with stderr.
    pub async fn output(&self, what: &str, args: &[&str]) -> Result<String, Error> {
        let out = self.command().args(args).output().await.map_err(|e| Error::Failed {
            program: self.program.clone(),
            what: what.to_string(),
            detail: e.to_string(),
        })?;
        if !out.status.success() {
            return Err(Error::Failed {
                program: self.program.clone(),
                what: what.to_string(),
                detail: String::from_utf8_lossy(&out.stderr).trim().lines().last().unwrap_or("").to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// True when the runtime has `image`.
    pub async fn has_image(&self, image: &str) -> bool {
        self.command()
            .args(["image", "inspect", image])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .is_ok_and(|s| s.success())
    }

    /// Loads a docker-archive holding `image` (its name), unless the runtime has it.
    pub async fn load(&self, archive: &Path, image: &str) -> Result<(), Error> {
        if self.has_image(image).await {
            return Ok(());
        }
        let path = archive.to_string_lossy();
        self.output("load", &["load", "-q", "-i", &path]).await?;
        Ok(())
    }
}

/// The containers a run started, removed by [`Containers::remove_all`] (also
/// from a signal handler) and when the last handle is dropped.
#[derive(Debug, Clone)]
pub struct Containers {
    runtime: Runtime,
    names: Arc<Mutex<Vec<String>>>,
    prefix: String,
}

impl Containers {
    /// A set for `runtime` whose names start with `oxbuild-<pid>-<random>`.
    pub fn new(runtime: &Runtime) -> Containers {
        let prefix = format!("oxbuild-{}-{:08x}", std::process::id(), fastrand::u32(..));
        Containers { runtime: runtime.clone(), names: Arc::default(), prefix }
    }

    /// A new unique container name for `purpose`, registered for cleanup.
    pub fn name(&self, purpose: &str) -> String {
        let clean: String =
            purpose.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).collect();
        let mut names = self.names.lock().unwrap();
        let name = format!("{}-{}-{clean}", self.prefix, names.len());
        names.push(name.clone());
        name
    }

    /// Removes every container of this run (running or not).
    pub async fn remove_all(&self) {
        let names: Vec<String> = std::mem::take(&mut *self.names.lock().unwrap());
        if names.is_empty() {
            return;
        }
        let mut args = vec!["rm", "-f", "-i", "-t", "0"];
        if self.runtime.program == "docker" {
            args = vec!["rm", "-f"];
        }
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        args.extend(refs);
        let _ = self.runtime.command().args(&args).stdout(Stdio::null()).stderr(Stdio::null()).status().await;
    }

    /// The removal as a blocking command, for when no async runtime is left.
    pub fn remove_all_blocking(&self) {
        let names: Vec<String> = std::mem::take(&mut *self.names.lock().unwrap());
        if names.is_empty() {
            return;
        }
        let _ = std::process::Command::new(&self.runtime.program)
            .args(["rm", "-f"])
            .args(&names)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// XML-escapes text for reports.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') => {}
            c => out.push(c),
        }
    }
    out
}
