//! Where requests go through a proxy.

use crate::{Error, redact};

/// Proxy settings for the shared client.
#[derive(Debug, Clone, Default)]
pub enum ProxySettings {
    /// `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY` (or their
    /// lower-case forms), read the way curl reads them. The default.
    #[default]
    Environment,
    /// No proxy at all, whatever the environment says.
    Direct,
    /// These proxies, for library users that configure them themselves.
    Explicit {
        /// For `http://` URLs.
        http: Option<String>,
        /// For `https://` URLs (tunnelled with CONNECT).
        https: Option<String>,
        /// Hosts, domains and networks reached directly, comma-separated as in `NO_PROXY`.
        no_proxy: Option<String>,
    },
}

impl ProxySettings {
    /// Applies the settings to a client being built.
    pub(crate) fn apply(&self, builder: reqwest::ClientBuilder) -> Result<reqwest::ClientBuilder, Error> {
        match self {
            // reqwest reads the environment itself unless told not to.
            ProxySettings::Environment => {
                // Malformed proxy variables would otherwise be ignored silently
                // and the build would go direct, which a corporate network refuses
                // with a confusing timeout: say which variable is wrong instead.
                for var in ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"] {
                    if let Ok(value) = std::env::var(var)
                        && !value.trim().is_empty()
                    {
                        let with_scheme = if value.contains("://") { value.clone() } else { format!("http://{value}") };
                        if url::Url::parse(&with_scheme).map(|u| u.host().is_none()).unwrap_or(true) {
                            return Err(Error(format!(
                                "{var}=`{}` is not a proxy URL: write it like http://proxy.example.com:3128",
                                redact(&value)
                            )));
                        }
                    }
                }
                Ok(builder)
            }
            ProxySettings::Direct => Ok(builder.no_proxy()),
            ProxySettings::Explicit { http, https, no_proxy } => {
                let no = no_proxy.as_deref().and_then(reqwest::NoProxy::from_string);
                let mut builder = builder.no_proxy();
                let mut add = |url: &str, https: bool| -> Result<(), Error> {
                    let proxy = if https { reqwest::Proxy::https(url) } else { reqwest::Proxy::http(url) }
                        .map_err(|_| Error(format!("`{}` is not a proxy URL", redact(url))))?;
                    builder = std::mem::take(&mut builder).proxy(proxy.no_proxy(no.clone()));
                    Ok(())
                };
                if let Some(u) = http {
                    add(u, false)?;
                }
                if let Some(u) = https {
                    add(u, true)?;
                }
                Ok(builder)
            }
        }
    }
}
