/// A registry operation that failed, saying which registry and what to do.
///
/// No variant ever carries a password or token: credentials are only ever
/// mentioned by user name.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No connection could be made.
    #[error("cannot reach registry {registry}: {detail}. Check that it is running and that the address is right")]
    Unreachable {
        /// The registry host.
        registry: String,
        /// The transport error, without any credential.
        detail: String,
    },
    /// The registry rejected the credentials, or wants some and none were given.
    #[error("{}", unauthorized(registry, user.as_deref(), origin.as_deref()))]
    Unauthorized {
        /// The registry host.
        registry: String,
        /// The user name that was tried, if any.
        user: Option<String>,
        /// Where that credential came from.
        origin: Option<String>,
    },
    /// Credentials are configured for the registry but cannot be had.
    #[error("cannot get credentials for registry {registry}: {detail}")]
    Credentials {
        /// The registry host.
        registry: String,
        /// What failed, never with a secret.
        detail: String,
    },
    /// The registry understood the credentials but refuses the operation.
    #[error("registry {registry} denied {what} (403): the account may lack push or pull rights on that repository")]
    Denied {
        /// The registry host.
        registry: String,
        /// What was attempted.
        what: String,
    },
    /// The manifest or blob does not exist.
    #[error("{what} was not found in the registry (404)")]
    NotFound {
        /// What was asked for, naming the reference.
        what: String,
    },
    /// Any other unexpected answer.
    #[error("{what}: registry answered {status}{detail}")]
    Status {
        /// What was attempted.
        what: String,
        /// The HTTP status.
        status: u16,
        /// The registry's error message, prefixed with ": ", or empty.
        detail: String,
        /// How long the registry asked to wait (`Retry-After`), if it did.
        retry_after: Option<std::time::Duration>,
    },
    /// The content is wrong: bad JSON, a digest mismatch, no matching platform.
    #[error("{0}")]
    Invalid(String),
    /// An error from the image layer (store, layout).
    #[error(transparent)]
    Image(#[from] oxbuild_image::Error),
}

fn unauthorized(registry: &str, user: Option<&str>, origin: Option<&str>) -> String {
    match user {
        Some(u) => format!(
            "registry {registry} rejected the credentials of user `{u}` (401): check them in {}",
            origin.unwrap_or("OXBUILD_REGISTRY_USER/OXBUILD_REGISTRY_PASSWORD")
        ),
        None => format!(
            "registry {registry} requires authentication (401): set OXBUILD_REGISTRY_USER and OXBUILD_REGISTRY_PASSWORD, or log in with `podman login` or `docker login`"
        ),
    }
}

impl Error {
    /// True for failures worth retrying: no connection, a dropped transfer,
    /// a 5xx, or 429 Too Many Requests.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Unreachable { .. } => true,
            Error::Status { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }

    /// The wait the registry asked for, if any.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Error::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// True for failures of authentication or authorisation.
    pub fn is_auth(&self) -> bool {
        matches!(self, Error::Unauthorized { .. } | Error::Denied { .. } | Error::Credentials { .. })
    }
}

/// Describes a transport error by its causes, e.g. "connection refused".
pub(crate) fn transport_detail(err: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(err);
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    if err.is_timeout() {
        parts.push("timed out".into());
    }
    if parts.is_empty() {
        parts.push(if err.is_connect() { "connection failed".into() } else { "request failed".into() });
    }
    // The innermost causes are the telling ones ("Connection refused (os error 111)").
    parts.into_iter().rev().take(2).collect::<Vec<_>>().join(" / ")
}
