//! Where registry credentials come from, per registry, looked up only when a
//! registry asks for them:
//!
//! 1. `OXBUILD_REGISTRY_USER` / `OXBUILD_REGISTRY_PASSWORD` (any registry that asks);
//! 2. podman's `auth.json` (`REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`,
//!    `~/.config/containers/auth.json`);
//! 3. Docker's `config.json` (`$DOCKER_CONFIG/config.json`, `~/.docker/config.json`),
//!    with `auths`, `credsStore`, `credHelpers` and identity tokens.
//!
//! Secrets never reach `Debug`, `Display` or an error message.

use std::path::PathBuf;

use base64::Engine as _;
use docker_credential::{CredentialRetrievalError, DockerCredential};

use crate::Error;

/// A secret for one registry.
#[derive(Clone)]
pub enum Credential {
    /// User name and password (or access token used as a password).
    Basic {
        /// The user name; safe to show.
        username: String,
        /// The secret.
        password: String,
    },
    /// An OAuth2 refresh token (Docker's `identitytoken`).
    IdentityToken(String),
}

impl Credential {
    /// User name and password.
    pub fn basic(username: impl Into<String>, password: impl Into<String>) -> Credential {
        Credential::Basic { username: username.into(), password: password.into() }
    }

    /// What may be shown about this credential: the user name.
    pub fn who(&self) -> String {
        match self {
            Credential::Basic { username, .. } => username.clone(),
            Credential::IdentityToken(_) => "<identity token>".to_string(),
        }
    }

    /// The `Authorization: Basic` value, for basic credentials.
    pub(crate) fn basic_header(&self) -> Option<String> {
        match self {
            Credential::Basic { username, password } => {
                let raw = format!("{username}:{password}");
                Some(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw)))
            }
            Credential::IdentityToken(_) => None,
        }
    }
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credential({}, <redacted>)", self.who())
    }
}

/// Finds the credential for a registry; see the module docs for the order.
#[derive(Debug, Clone, Default)]
pub struct Keychain {
    fixed: Option<Credential>,
    /// The registries `fixed` is for; every registry when None.
    fixed_for: Option<Vec<String>>,
    no_files: bool,
}

/// A credential and where it was found, for error messages.
#[derive(Debug, Clone)]
pub struct Found {
    /// The secret.
    pub credential: Credential,
    /// Where it came from, e.g. `OXBUILD_REGISTRY_USER/OXBUILD_REGISTRY_PASSWORD`.
    pub source: String,
}

impl Keychain {
    /// `OXBUILD_REGISTRY_USER`/`OXBUILD_REGISTRY_PASSWORD` when set, for the
    /// registries listed in `OXBUILD_REGISTRY` (comma-separated) only, then
    /// the config files. Credentials from the environment with no registry
    /// named for them go nowhere: a registry that asks gets an error saying
    /// to set `OXBUILD_REGISTRY`.
    pub fn from_env() -> Keychain {
        let fixed = std::env::var("OXBUILD_REGISTRY_USER")
            .ok()
            .filter(|u| !u.is_empty())
            .map(|user| Credential::basic(user, std::env::var("OXBUILD_REGISTRY_PASSWORD").unwrap_or_default()));
        let fixed_for = Some(
            std::env::var("OXBUILD_REGISTRY")
                .unwrap_or_default()
                .split(',')
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
                .collect(),
        );
        Keychain { fixed, fixed_for, no_files: false }
    }

    /// Only `credential`, for every registry; no config file is read.
    pub fn fixed(credential: Credential) -> Keychain {
        Keychain { fixed: Some(credential), fixed_for: None, no_files: true }
    }

    /// No credentials at all.
    pub fn anonymous() -> Keychain {
        Keychain { fixed: None, fixed_for: None, no_files: true }
    }

    /// The credential for `registry` (host[:port]), if any is configured.
    pub fn lookup(&self, registry: &str) -> Result<Option<Found>, Error> {
        let applies = self.fixed_for.as_ref().is_none_or(|hosts| hosts.iter().any(|h| h == registry));
        if let (Some(c), Some(hosts)) = (&self.fixed, &self.fixed_for)
            && hosts.is_empty()
            && self.no_files_for(registry)
        {
            return Err(Error::Credentials {
                registry: registry.to_string(),
                detail: format!(
                    "OXBUILD_REGISTRY_USER (`{}`) is set, but OXBUILD_REGISTRY names no registry for it, so it is sent nowhere: set OXBUILD_REGISTRY={registry} (comma-separated for several)",
                    c.who()
                ),
            });
        }
        if let Some(c) = self.fixed.as_ref().filter(|_| applies) {
            return Ok(Some(Found {
                credential: c.clone(),
                source: "OXBUILD_REGISTRY_USER/OXBUILD_REGISTRY_PASSWORD".into(),
            }));
        }
        if self.no_files {
            return Ok(None);
        }
        let server = if registry == crate::DOCKER_HUB { "https://index.docker.io/v1/" } else { registry };
        for (path, source) in auth_files() {
            let Ok(file) = std::fs::File::open(&path) else { continue };
            match docker_credential::get_credential_from_reader(std::io::BufReader::new(file), server) {
                Ok(c) => {
                    let credential = match c {
                        DockerCredential::UsernamePassword(u, p) => Credential::basic(u, p),
                        DockerCredential::IdentityToken(t) => Credential::IdentityToken(t),
                    };
                    return Ok(Some(Found { credential, source: format!("{source} {}", path.display()) }));
                }
                Err(CredentialRetrievalError::NoCredentialConfigured) => continue,
                Err(e) => {
                    return Err(Error::Credentials { registry: registry.to_string(), detail: describe(&e, &path) });
                }
            }
        }
        Ok(None)
    }

    /// True when no auth file has credentials for `registry` (so the
    /// environment's unscoped ones would have been the only candidate).
    fn no_files_for(&self, registry: &str) -> bool {
        if self.no_files {
            return true;
        }
        let server = if registry == crate::DOCKER_HUB { "https://index.docker.io/v1/" } else { registry };
        !auth_files().into_iter().any(|(path, _)| {
            std::fs::File::open(&path).is_ok_and(|f| {
                docker_credential::get_credential_from_reader(std::io::BufReader::new(f), server).is_ok()
            })
        })
    }
}

/// Candidate auth files, podman's first, each with a name for messages.
fn auth_files() -> Vec<(PathBuf, &'static str)> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    let mut files = Vec::new();
    if let Some(p) = env("REGISTRY_AUTH_FILE") {
        files.push((p, "REGISTRY_AUTH_FILE"));
    } else {
        if let Some(run) = env("XDG_RUNTIME_DIR") {
            files.push((run.join("containers/auth.json"), "podman auth file"));
        }
        if let Some(home) = env("HOME") {
            files.push((home.join(".config/containers/auth.json"), "podman auth file"));
        }
    }
    match env("DOCKER_CONFIG") {
        Some(dir) => files.push((dir.join("config.json"), "docker config")),
        None => {
            if let Some(home) = env("HOME") {
                files.push((home.join(".docker/config.json"), "docker config"));
            }
        }
    }
    files
}

/// Says what failed without repeating a helper's output, which may hold secrets.
fn describe(e: &CredentialRetrievalError, path: &std::path::Path) -> String {
    match e {
        CredentialRetrievalError::HelperCommunicationError => format!(
            "the credential helper named in {} could not be run; install it (docker-credential-<name> on PATH) or remove it from that file",
            path.display()
        ),
        CredentialRetrievalError::HelperFailure { helper, .. } => {
            format!("credential helper `{helper}` (from {}) failed; run `{helper} list` to check it", path.display())
        }
        CredentialRetrievalError::MalformedHelperResponse => {
            format!("the credential helper named in {} gave an unreadable answer", path.display())
        }
        CredentialRetrievalError::CredentialDecodingError | CredentialRetrievalError::CredentialMismatchError => {
            format!("the `auth` entry in {} is not valid base64 of user:password", path.display())
        }
        _ => format!("{} could not be read as an auth file", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_secrets() {
        let c = Credential::basic("ci", "hunter2");
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!format!("{:?}", Credential::IdentityToken("tok123".into())).contains("tok123"));
        assert!(!format!("{:?}", Keychain::fixed(c)).contains("hunter2"));
    }

    /// Credentials from an auth file go to their own host only: not to
    /// another host, nor to the same host on another port. (nextest runs
    /// each test in its own process, so the environment is this test's.)
    #[test]
    fn auth_file_credentials_go_to_their_own_host_only() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("auth.json");
        std::fs::write(&file, r#"{"auths": {"registry.example:5000": {"auth": "Y2k6czNjcmV0"}}}"#).unwrap();
        // SAFETY: this test's process has no other threads reading the environment.
        unsafe {
            std::env::set_var("REGISTRY_AUTH_FILE", &file);
            std::env::set_var("DOCKER_CONFIG", dir.path().join("none"));
            std::env::remove_var("OXBUILD_REGISTRY_USER");
        }
        let keys = Keychain::from_env();
        let found = keys.lookup("registry.example:5000").unwrap().expect("its own host");
        assert_eq!(found.credential.who(), "ci");
        for other in ["registry.example", "registry.example:5001", "auth.example", "docker.io"] {
            assert!(keys.lookup(other).unwrap().is_none(), "{other} gets nothing");
        }
    }
}
