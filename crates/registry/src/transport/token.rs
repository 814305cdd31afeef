//! Bearer tokens: fetched from the realm a registry names, once per
//! (registry, scopes), and shared by every request that needs them.

use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};

use crate::transport::transport_detail;
use crate::{Client, Credential, Error};

/// A token's cache key: the registry, and the scopes joined by spaces.
pub(crate) type TokenKey = (String, String);

impl Client {
    /// A token for `scopes` on `registry`: cached, or fetched from `realm`.
    /// Requests that start together (parallel blob uploads) wait for one fetch
    /// instead of each asking, and a slow token service holds up no other registry.
    pub(crate) async fn token(
        &self,
        registry: &str,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
    ) -> Result<String, Error> {
        let key = (registry.to_string(), scopes.join(" "));
        if let Some(t) = self.tokens.lock().unwrap().get(&key) {
            return Ok(t.clone());
        }
        let flight = self.token_fetch.lock().unwrap().entry(key.clone()).or_default().clone();
        let _fetching = flight.lock().await;
        if let Some(t) = self.tokens.lock().unwrap().get(&key) {
            return Ok(t.clone());
        }
        let token = self.fetch_token(registry, realm, service, scopes).await?;
        self.tokens.lock().unwrap().insert(key, token.clone());
        Ok(token)
    }

    /// Drops the token `sent` (an `Authorization` value) if it is still the
    /// cached one: the registry refused it, so it may have expired.
    pub(crate) fn forget_token(&self, registry: &str, scopes: &[String], sent: &str) {
        let key = (registry.to_string(), scopes.join(" "));
        let mut tokens = self.tokens.lock().unwrap();
        if tokens.get(&key).is_some_and(|t| sent.strip_prefix("Bearer ") == Some(t.as_str())) {
            tokens.remove(&key);
        }
    }

    async fn fetch_token(
        &self,
        registry: &str,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
    ) -> Result<String, Error> {
        let mut url = url::Url::parse(realm).map_err(|_| {
            Error::Invalid(format!("registry {registry} sent an auth realm that is not a URL: {realm}"))
        })?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            for s in scopes {
                q.append_pair("scope", s);
            }
        }
        let realm_host = url.host_str().unwrap_or("").to_string();
        let realm_authority = match url.port() {
            Some(p) => format!("{realm_host}:{p}"),
            None => realm_host.clone(),
        };
        // A realm must be HTTPS, except on loopback and for hosts named insecure.
        if url.scheme() != "https"
            && !crate::is_loopback(&realm_authority)
            && !self.opts.insecure.iter().any(|h| *h == realm_authority || *h == realm_host)
        {
            return Err(Error::Invalid(format!(
                "registry {registry} names its token service {realm_authority} over plain HTTP; oxbuild talks to token services over HTTPS only (loopback and --insecure-registry hosts excepted)"
            )));
        }
        // Credentials go to the realm only when it is the registry's own
        // host, Docker Hub's own auth service, or a host the user trusts.
        let credential = self.credential(registry)?.map(|f| f.credential);
        let withheld = credential.is_some() && !realm_trusted(registry, &realm_host);
        if withheld {
            self.emit(crate::Event::Notice(format!(
                "credentials for {registry} withheld from its token service {realm_host}: it is not the registry's own host; list it in OXBUILD_TOKEN_REALMS to send them"
            )));
        }
        let credential = credential.filter(|_| !withheld);
        let http = self.http.reqwest();
        let req = match credential {
            // Docker's identity token is an OAuth2 refresh token.
            Some(Credential::IdentityToken(token)) => {
                let mut form = vec![
                    ("grant_type".to_string(), "refresh_token".to_string()),
                    ("refresh_token".to_string(), token),
                    ("client_id".to_string(), "oxbuild".to_string()),
                ];
                form.extend(url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())));
                let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
                let mut bare = url.clone();
                bare.set_query(None);
                http.post(bare).header(CONTENT_TYPE, "application/x-www-form-urlencoded").body(body)
            }
            Some(c) => http.get(url).header(AUTHORIZATION, c.basic_header().unwrap_or_default()),
            None => http.get(url),
        };
        let resp = req.send().await.map_err(|e| Error::Unreachable {
            registry: registry.to_string(),
            detail: format!("token service: {}", transport_detail(&e)),
        })?;
        match resp.status() {
            s if s.is_success() => {}
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN if withheld => {
                return Err(Error::Credentials {
                    registry: registry.to_string(),
                    detail: format!(
                        "its token service {realm_host} wants credentials, and oxbuild sends them only to the registry's own host or Docker Hub's auth service; if {realm_host} is trusted, list it in OXBUILD_TOKEN_REALMS (comma-separated)"
                    ),
                });
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => return Err(self.unauthorized(registry)),
            s => {
                return Err(Error::Status {
                    what: format!("getting a token for {registry}"),
                    status: s.as_u16(),
                    detail: String::new(),
                    retry_after: oxbuild_http::retry_after(resp.headers()),
                });
            }
        }
        #[derive(serde::Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let body = resp.bytes().await.unwrap_or_default();
        let t: Token = serde_json::from_slice(&body)
            .map_err(|_| Error::Invalid(format!("the token service of {registry} sent an unreadable answer")))?;
        t.token
            .or(t.access_token)
            .ok_or_else(|| Error::Invalid(format!("the token service of {registry} sent no token")))
    }
}

/// Whether credentials for `registry` may go to a token service on
/// `realm_host`: the registry's own host (any port), Docker Hub's pair
/// (`registry-1.docker.io` and `auth.docker.io`), or a host listed in
/// `OXBUILD_TOKEN_REALMS`.
pub(crate) fn realm_trusted(registry: &str, realm_host: &str) -> bool {
    let registry_host =
        registry.rsplit_once(':').filter(|(_, p)| p.chars().all(|c| c.is_ascii_digit())).map_or(registry, |(h, _)| h);
    if registry_host.eq_ignore_ascii_case(realm_host) {
        return true;
    }
    let hub = ["docker.io", "index.docker.io", "registry-1.docker.io"];
    if hub.contains(&registry_host) && realm_host == "auth.docker.io" {
        return true;
    }
    std::env::var("OXBUILD_TOKEN_REALMS")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .any(|h| !h.is_empty() && h.eq_ignore_ascii_case(realm_host))
}

#[cfg(test)]
mod tests {
    use super::realm_trusted;

    /// A token service over plain HTTP off loopback is refused before any
    /// request is made, credentials or not.
    #[tokio::test]
    async fn a_plain_http_realm_off_loopback_is_refused() {
        let client = crate::Client::new(crate::ClientOptions::default()).unwrap();
        let e = client
            .fetch_token("registry.example.com", "http://auth.example.com/token", None, &[])
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("auth.example.com") && e.contains("HTTPS only"), "{e}");
    }

    #[test]
    fn credentials_go_only_to_the_registrys_own_realm_or_a_known_pair() {
        assert!(realm_trusted("registry.example.com", "registry.example.com"));
        assert!(realm_trusted("127.0.0.1:5000", "127.0.0.1"), "any port of the registry's host");
        assert!(realm_trusted("registry-1.docker.io", "auth.docker.io"));
        assert!(
            !realm_trusted("registry.example.com", "auth.docker.io"),
            "a private registry's password never goes to Docker Hub"
        );
        assert!(!realm_trusted("registry.example.com", "evil.example.net"));
        assert!(!realm_trusted("127.0.0.1:5000", "127.0.0.2"));
    }
}
