//! Registry failures as [`Error`], from status codes and transport errors.

use reqwest::{Response, StatusCode};

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
            Error::Unreachable { detail, .. } => !oxbuild_http::unknown_host(detail),
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

/// Describes a transport error by its causes, e.g. "connection refused",
/// with any credential in a URL (a proxy's) removed.
pub(crate) fn transport_detail(err: &reqwest::Error) -> String {
    oxbuild_http::describe(err)
}

impl oxbuild_http::Transient for Error {
    fn is_transient(&self) -> bool {
        Error::is_transient(self)
    }
    fn retry_after(&self) -> Option<std::time::Duration> {
        Error::retry_after(self)
    }
}

/// `resp` when its status is a success, else the error it stands for.
pub(crate) async fn check_status(resp: Response, registry: &str, what: &str) -> Result<Response, Error> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    match status {
        StatusCode::NOT_FOUND => Err(Error::NotFound { what: what.to_string() }),
        StatusCode::FORBIDDEN => Err(Error::Denied { registry: registry.to_string(), what: what.to_string() }),
        _ => {
            let retry_after = oxbuild_http::retry_after(resp.headers());
            let body = resp.text().await.unwrap_or_default();
            Err(Error::Status {
                what: what.to_string(),
                status: status.as_u16(),
                detail: registry_message(&body),
                retry_after,
            })
        }
    }
}

/// The `errors[].message` of a distribution error body, or a short excerpt.
fn registry_message(body: &str) -> String {
    let parsed: Option<Vec<String>> = serde_json::from_str::<serde_json::Value>(body).ok().and_then(|v| {
        v["errors"].as_array().map(|errs| {
            errs.iter()
                .map(|e| {
                    format!("{} {}", e["code"].as_str().unwrap_or(""), e["message"].as_str().unwrap_or(""))
                        .trim()
                        .to_string()
                })
                .collect()
        })
    });
    match parsed {
        Some(msgs) if !msgs.is_empty() => format!(": {}", msgs.join("; ")),
        _ if body.trim().is_empty() => String::new(),
        _ => format!(": {}", body.trim().chars().take(200).collect::<String>()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_errors_are_summarised() {
        let body = r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#;
        assert_eq!(registry_message(body), ": MANIFEST_UNKNOWN manifest unknown");
        assert_eq!(registry_message(""), "");
    }
}
