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
        let http = self.http.reqwest();
        let req = match self.credential(registry)?.map(|f| f.credential) {
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
