//! The engine's errors, by kind: a caller maps kinds to exit codes.

/// What kind of failure, for exit codes and JSON reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// oxbuild.toml, a lock file's content, a reference, a flag.
    Config,
    /// The app's files or the base image cannot be used.
    Build,
    /// A layout, archive or manifest read is unusable.
    Input,
    /// A registry or package index failed.
    Registry,
    /// Writing a layout, an archive or the cache failed.
    Output,
    /// A container runtime failed.
    Runtime,
    /// A bug: a task panicked.
    Internal,
}

/// A failure of the engine: its kind and one message saying what to do.
#[derive(Debug, Clone)]
pub struct Error {
    /// The kind.
    pub kind: Kind,
    /// What went wrong and what to do, never with a secret.
    pub message: String,
}

impl Error {
    /// A failure of `kind`.
    pub fn new(kind: Kind, message: impl std::fmt::Display) -> Error {
        Error { kind, message: message.to_string() }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<oxbuild_location::Error> for Error {
    fn from(e: oxbuild_location::Error) -> Error {
        let kind = match &e {
            oxbuild_location::Error::Config(_) => Kind::Config,
            oxbuild_location::Error::Registry(_) => Kind::Registry,
            oxbuild_location::Error::Input(_) => Kind::Input,
            oxbuild_location::Error::Output(_) => Kind::Output,
        };
        Error::new(kind, e)
    }
}

impl From<oxbuild_python::Error> for Error {
    /// Lock problems are configuration, unreachable indexes are registry
    /// failures, the rest build errors.
    fn from(e: oxbuild_python::Error) -> Error {
        let kind = match e {
            oxbuild_python::Error::Lock { .. } => Kind::Config,
            oxbuild_python::Error::Index(_) => Kind::Registry,
            _ => Kind::Build,
        };
        Error::new(kind, e)
    }
}

impl From<oxbuild_build::Error> for Error {
    fn from(e: oxbuild_build::Error) -> Error {
        Error::new(Kind::Build, e)
    }
}

impl From<oxbuild_cache::Error> for Error {
    fn from(e: oxbuild_cache::Error) -> Error {
        Error::new(Kind::Output, e)
    }
}

impl From<oxbuild_config::Error> for Error {
    fn from(e: oxbuild_config::Error) -> Error {
        Error::new(Kind::Config, e)
    }
}

impl From<oxbuild_runtime::Error> for Error {
    fn from(e: oxbuild_runtime::Error) -> Error {
        Error::new(Kind::Runtime, e)
    }
}

/// A blocking task that did not finish: a bug, not the user's doing.
pub(crate) fn task(e: tokio::task::JoinError) -> Error {
    Error::new(Kind::Internal, format!("a build task failed: {e}"))
}
