//! The one HTTP client every part of oxbuild shares: registries, package
//! indexes and token services alike (as uv's `uv-client` is for uv).
//!
//! It owns what all of them need and none should set up on its own:
//! - TLS with rustls, the system roots (read at the first handshake, see
//!   `tls`), and extra CA certificates (`--ca-file`);
//! - proxies from `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY`
//!   (read by reqwest, as curl reads them), or given explicitly;
//! - connect and read timeouts, so that a stalled transfer is dropped and retried;
//! - [`RetryPolicy`] with [`retrying`]: bounded backoff with jitter, or the
//!   server's own `Retry-After` (seconds or an HTTP date);
//! - error text with credentials removed ([`describe`], [`redact`]): a proxy
//!   URL with `user:password@` never reaches a message.
//!
//! ```no_run
//! # async fn demo() -> Result<(), oxbuild_http::Error> {
//! let http = oxbuild_http::Client::new(oxbuild_http::Options::default())?;
//! let resp = http.reqwest().get("https://pypi.org/simple/flask/").send().await;
//! # Ok(()) }
//! ```

mod proxy;
mod retry;
mod tls;

use std::time::Duration;

pub use proxy::ProxySettings;
pub use retry::{RetryPolicy, Transient, retry_after, retrying};

/// How the shared client is set up.
#[derive(Debug, Clone)]
pub struct Options {
    /// Extra CA certificates (PEM) trusted besides the system's roots.
    pub ca_pem: Option<Vec<u8>>,
    /// Where requests go through a proxy.
    pub proxy: ProxySettings,
    /// How transient failures are retried.
    pub retry: RetryPolicy,
    /// How long a connection may take to open.
    pub connect_timeout: Duration,
    /// How long a transfer may stall before it is dropped (and retried).
    pub read_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            ca_pem: None,
            proxy: ProxySettings::Environment,
            retry: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(120),
        }
    }
}

/// The client could not be set up.
#[derive(Debug)]
pub struct Error(String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// The shared client. Cheap to clone: clones share connections.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    retry: RetryPolicy,
}

fn install_crypto() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Fails only when another provider is already installed, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl Client {
    /// A client with `opts`.
    pub fn new(opts: Options) -> Result<Client, Error> {
        install_crypto();
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("oxbuild/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(opts.connect_timeout)
            .read_timeout(opts.read_timeout);
        let extra_roots = match &opts.ca_pem {
            Some(pem) => ca_certificates(pem)?,
            None => Vec::new(),
        };
        let tls = tls::client_config(extra_roots).map_err(|e| Error(format!("cannot set up TLS: {e}")))?;
        builder = builder.tls_backend_preconfigured(tls);
        builder = opts.proxy.apply(builder)?;
        let http = builder.build().map_err(|e| Error(format!("cannot set up the HTTP client: {}", describe(&e))))?;
        Ok(Client { http, retry: opts.retry })
    }

    /// The underlying reqwest client, for building requests.
    pub fn reqwest(&self) -> &reqwest::Client {
        &self.http
    }

    /// How this client retries.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// Runs `op` with this client's retry policy (see [`retrying`]).
    pub async fn retrying<T, E, F, Fut>(&self, op: F) -> Result<T, E>
    where
        E: Transient,
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        retrying(&self.retry, op).await
    }
}

/// The certificates of a CA file (PEM), or why it holds none.
pub fn ca_certificates(pem: &[u8]) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, Error> {
    use rustls::pki_types::pem::PemObject;
    let certs = rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error(format!("not PEM certificates: {e}")))?;
    // A file with no certificate in it would otherwise trust nothing more
    // and fail later with a confusing TLS error.
    if certs.is_empty() {
        return Err(Error("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into()));
    }
    Ok(certs)
}

/// Describes a transport error by its innermost causes ("Connection refused
/// (os error 111)"), with any credentials in URLs removed.
pub fn describe(err: &reqwest::Error) -> String {
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
    // The innermost causes are the telling ones.
    redact(&parts.into_iter().rev().take(2).collect::<Vec<_>>().join(" / "))
}

/// True when a transport error's description (see [`describe`]) says the
/// host name does not exist, as the system's resolver answers for a
/// misspelt host or a runner with no route to its DNS: no retry makes it
/// resolve, so it fails at once. A resolver that could not answer for now
/// (`Temporary failure in name resolution`) is still retried.
pub fn unknown_host(detail: &str) -> bool {
    [
        "Name or service not known",
        "No address associated with hostname",
        "nodename nor servname provided",
        "Name does not resolve",
    ]
    .iter()
    .any(|m| detail.contains(m))
}

/// `text` with the `user:password@` of every URL in it replaced by `***@`.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        // The authority ends at the first '/', whitespace or quote; userinfo is what precedes its last '@'.
        let end = tail.find(|c: char| c == '/' || c.is_whitespace() || c == '"' || c == '\'').unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(i) => {
                out.push_str("***@");
                out.push_str(&authority[i + 1..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_redacted_everywhere_in_a_message() {
        assert_eq!(
            redact("proxy http://bob:s3cret@proxy.corp:3128 refused; see https://x.example/a@b"),
            "proxy http://***@proxy.corp:3128 refused; see https://x.example/a@b"
        );
        assert_eq!(redact("no url here"), "no url here");
        assert_eq!(redact("https://token@host/simple/"), "https://***@host/simple/");
    }

    #[test]
    fn a_bad_ca_file_is_a_clear_error() {
        let e = Client::new(Options { ca_pem: Some(b"not pem".to_vec()), ..Options::default() }).unwrap_err();
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
    }
}
