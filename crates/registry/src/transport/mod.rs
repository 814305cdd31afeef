//! How a request reaches a registry, one concern per file, as in
//! go-containerregistry's `transport` package:
//!
//! - [`probe`]: http or https, and the API host of a registry name;
//! - [`challenge`]: reading `WWW-Authenticate`;
//! - [`token`]: bearer tokens, fetched once per scope set and cached;
//! - [`error`]: status codes and transport failures as [`crate::Error`];
//! - this file: [`Client::send`], one authenticated round trip.
//!
//! Retries come from the shared client (`oxbuild_http`), which every other
//! part of oxbuild uses too.

pub(crate) mod challenge;
pub(crate) mod error;
pub(crate) mod probe;
pub(crate) mod token;

use reqwest::header::{AUTHORIZATION, HeaderValue, WWW_AUTHENTICATE};
use reqwest::{RequestBuilder, Response, StatusCode};

use crate::{Client, Error};
use challenge::Challenge;
pub(crate) use error::{check_status, transport_detail};

impl Client {
    /// Sends a request built by `make`, answering one auth challenge if the
    /// registry poses it. `make` is called again for the retry, so bodies are
    /// rebuilt rather than buffered.
    pub(crate) async fn send(
        &self,
        registry: &str,
        scopes: &[String],
        what: &str,
        mut make: impl FnMut(&reqwest::Client) -> Result<RequestBuilder, Error>,
    ) -> Result<Response, Error> {
        let mut auth = self.auth_header(registry, scopes).await?;
        let api_host = probe::api_host(registry).to_string();
        let http = self.http.reqwest();
        for round in 0..2 {
            let mut request = make(http)?
                .build()
                .map_err(|e| Error::Invalid(format!("{what}: cannot build the request: {}", transport_detail(&e))))?;
            // Credentials go only to the registry itself, never to another host an
            // upload Location or redirect names.
            if let Some(h) = &auth
                && same_authority(request.url(), &api_host)
                && let Ok(value) = HeaderValue::from_str(h)
            {
                request.headers_mut().insert(AUTHORIZATION, value);
            }
            let resp = http
                .execute(request)
                .await
                .map_err(|e| Error::Unreachable { registry: registry.to_string(), detail: transport_detail(&e) })?;
            if resp.status() != StatusCode::UNAUTHORIZED {
                return check_status(resp, registry, what).await;
            }
            if round == 1 {
                break;
            }
            let challenge = resp
                .headers()
                .get_all(WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(challenge::parse);
            let Some(challenge) = challenge else { break };
            if matches!(challenge, Challenge::Basic) && self.credential(registry)?.is_none() {
                break;
            }
            // The token this request carried may have expired: drop it so a
            // fresh one is fetched (unless another request already replaced it).
            if let Some(sent) = &auth {
                self.forget_token(registry, scopes, sent);
            }
            self.challenges.lock().unwrap().insert(registry.to_string(), challenge);
            auth = self.auth_header(registry, scopes).await?;
        }
        Err(self.unauthorized(registry))
    }

    /// The `Authorization` value for a request to `registry` needing `scopes`,
    /// once the registry has said which scheme it wants.
    async fn auth_header(&self, registry: &str, scopes: &[String]) -> Result<Option<String>, Error> {
        let challenge = self.challenges.lock().unwrap().get(registry).cloned();
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(self.credential(registry)?.and_then(|f| f.credential.basic_header())),
            Some(Challenge::Bearer { realm, service }) => {
                let token = self.token(registry, &realm, service.as_deref(), scopes).await?;
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }
}

/// True when `url` points at `host` (`name` or `name:port`, IPv6 in brackets).
pub(crate) fn same_authority(url: &url::Url, host: &str) -> bool {
    let Some(h) = url.host() else { return false };
    let name = h.to_string();
    match host.rsplit_once(':').filter(|(n, p)| !n.ends_with(':') && p.parse::<u16>().is_ok() && !p.contains(']')) {
        Some((n, p)) => n == name && url.port_or_known_default().map(|x| x.to_string()).as_deref() == Some(p),
        None => host == name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_only_go_to_the_registry_host() {
        let u = |s: &str| url::Url::parse(s).unwrap();
        assert!(same_authority(&u("http://127.0.0.1:5000/v2/x"), "127.0.0.1:5000"));
        assert!(!same_authority(&u("http://127.0.0.1:5001/v2/x"), "127.0.0.1:5000"));
        assert!(!same_authority(&u("https://storage.example.net/upload?x"), "registry.example.com"));
        assert!(same_authority(&u("https://registry.example.com/v2/"), "registry.example.com"));
        assert!(same_authority(&u("https://registry.example.com/v2/"), "registry.example.com:443"));
        assert!(same_authority(&u("http://[::1]:5000/v2/"), "[::1]:5000"));
    }
}
