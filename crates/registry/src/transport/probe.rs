//! http or https, and which host serves a registry's API.

use std::time::Duration;

use crate::transport::transport_detail;
use crate::{Client, is_loopback};

/// The host that serves `registry`'s API: Docker Hub's name is not its API host.
pub(crate) fn api_host(registry: &str) -> &str {
    if registry == crate::reference::DOCKER_HUB { "registry-1.docker.io" } else { registry }
}

impl Client {
    /// `https`, except for registries named insecure, and for loopback
    /// registries that do not speak TLS (probed once per run, as Docker does
    /// for localhost): a loopback registry with a certificate is still used
    /// over HTTPS.
    pub(crate) async fn scheme(&self, registry: &str) -> &'static str {
        if self.opts.insecure.iter().any(|h| h == registry) {
            return "http";
        }
        if !is_loopback(registry) {
            return "https";
        }
        let once = self.schemes.lock().unwrap().entry(registry.to_string()).or_default().clone();
        *once
            .get_or_init(|| async {
                let url = format!("https://{registry}/v2/");
                let probe = self.http.reqwest().get(url).timeout(Duration::from_secs(5)).send().await;
                // A TLS server with a certificate we do not trust is still a TLS server:
                // stay on https so the user sees the certificate error, not a confusing 400.
                match probe {
                    Ok(_) => "https",
                    Err(e) if transport_detail(&e).to_lowercase().contains("certificate") => "https",
                    Err(_) => "http",
                }
            })
            .await
    }

    /// The base URL of `r`'s repository API: `scheme://host/v2/<repo>/`.
    pub(crate) async fn repo_url(&self, r: &crate::Reference) -> String {
        format!("{}://{}/v2/{}/", self.scheme(&r.registry).await, api_host(&r.registry), r.repository)
    }
}
