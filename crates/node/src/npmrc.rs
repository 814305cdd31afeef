//! `.npmrc`: the registry for unscoped packages, one per `@scope`, and the
//! credentials for each registry (`//host/path/:_authToken`, `:_auth`).
//! `${VAR}` references are expanded from the environment, as npm does, so a
//! committed `.npmrc` can name a CI secret without holding it.
//!
//! Credentials are only ever sent as an `Authorization` header to a URL
//! under the prefix they were given for; they are never printed: `Debug`
//! shows the prefixes only.

use std::collections::BTreeMap;

use crate::Error;

/// npm's public registry.
pub const DEFAULT_REGISTRY: &str = "https://registry.npmjs.org/";

/// What the `.npmrc` files say about registries.
#[derive(Clone, Default)]
pub struct Npmrc {
    /// `registry`.
    pub registry: Option<String>,
    /// `@scope:registry`, by scope (`@acme`).
    pub scopes: BTreeMap<String, String>,
    /// `//host/path/:_authToken` (Bearer) and `:_auth` (Basic), by the
    /// prefix (`host/path/`) they belong to.
    credentials: Vec<(String, Credential)>,
}

#[derive(Clone)]
enum Credential {
    Bearer(String),
    Basic(String),
}

impl std::fmt::Debug for Npmrc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Npmrc")
            .field("registry", &self.registry)
            .field("scopes", &self.scopes)
            .field("credentials for", &self.credentials.iter().map(|(p, _)| p).collect::<Vec<_>>())
            .finish()
    }
}

/// `text` with `${VAR}` replaced from `env`; an unset variable is an error
/// naming it (and `file`), never an empty token sent.
fn expand(text: &str, file: &str, line: usize, env: &dyn Fn(&str) -> Option<String>) -> Result<String, Error> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end =
            after.find('}').ok_or_else(|| Error::Config(format!("{file}:{line}: `${{` without a closing `}}`")))?;
        let name = &after[..end];
        let value = env(name).ok_or_else(|| {
            Error::Config(format!("{file}:{line}: ${{{name}}} is not set in the environment: export it (CI secrets usually are) or remove the line"))
        })?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `url` ending in `/`.
fn slashed(url: &str) -> String {
    if url.ends_with('/') { url.to_string() } else { format!("{url}/") }
}

impl Npmrc {
    /// Reads `text` (an `.npmrc` named `file`) over what is known already:
    /// later files win, as npm's project file wins over the user's.
    pub fn read(&mut self, text: &str, file: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<(), Error> {
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else { continue };
            let (key, value) = (key.trim(), value.trim().trim_matches('"'));
            let value = expand(value, file, i + 1, env)?;
            if key == "registry" {
                self.registry = Some(slashed(&value));
            } else if let Some(scope) = key.strip_suffix(":registry").filter(|s| s.starts_with('@')) {
                self.scopes.insert(scope.to_string(), slashed(&value));
            } else if let Some(rest) = key.strip_prefix("//") {
                if let Some(prefix) = rest.strip_suffix(":_authToken") {
                    self.credentials.push((prefix.to_string(), Credential::Bearer(value)));
                } else if let Some(prefix) = rest.strip_suffix(":_auth") {
                    self.credentials.push((prefix.to_string(), Credential::Basic(value)));
                }
            }
        }
        Ok(())
    }

    /// The registry a package named `name` comes from.
    pub fn registry_for(&self, name: &str) -> String {
        let scoped = name.split_once('/').filter(|(s, _)| s.starts_with('@')).and_then(|(s, _)| self.scopes.get(s));
        scoped.cloned().or_else(|| self.registry.clone()).unwrap_or_else(|| DEFAULT_REGISTRY.to_string())
    }

    /// The `Authorization` header value for `url`: the credential with the
    /// longest prefix that `url` (without its scheme) starts with.
    pub fn authorization(&self, url: &url::Url) -> Option<String> {
        let bare = format!("{}{}", url.host_str()?, url.port().map(|p| format!(":{p}")).unwrap_or_default());
        let target = format!("{bare}{}", url.path());
        self.credentials
            .iter()
            .filter(|(prefix, _)| target.starts_with(prefix.as_str()) || slashed(&target) == slashed(prefix))
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(_, c)| match c {
                Credential::Bearer(t) => format!("Bearer {t}"),
                Credential::Basic(b) => format!("Basic {b}"),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "NPM_TOKEN").then(|| "s3cret".to_string())
    }

    #[test]
    fn registries_scopes_and_expanded_tokens() {
        let mut rc = Npmrc::default();
        rc.read(
            "registry=https://mirror.example/npm\n@acme:registry=https://npm.acme.example/\n//npm.acme.example/:_authToken=${NPM_TOKEN}\n# comment\n",
            ".npmrc",
            &env,
        )
        .unwrap();
        assert_eq!(rc.registry_for("express"), "https://mirror.example/npm/");
        assert_eq!(rc.registry_for("@acme/lib"), "https://npm.acme.example/");
        assert_eq!(rc.registry_for("@other/lib"), "https://mirror.example/npm/");
        let at = |u: &str| rc.authorization(&url::Url::parse(u).unwrap());
        assert_eq!(at("https://npm.acme.example/@acme/lib/-/lib-1.0.0.tgz").as_deref(), Some("Bearer s3cret"));
        assert_eq!(at("https://mirror.example/npm/express/-/express-4.0.0.tgz"), None);
        assert!(!format!("{rc:?}").contains("s3cret"), "Debug never shows a token");
    }

    #[test]
    fn an_unset_variable_is_named_not_sent_empty() {
        let mut rc = Npmrc::default();
        let err = rc.read("//r.example/:_authToken=${CI_NPM_TOKEN}\n", "app/.npmrc", &env).unwrap_err().to_string();
        assert!(err.contains("app/.npmrc:1") && err.contains("CI_NPM_TOKEN"), "{err}");
    }
}
