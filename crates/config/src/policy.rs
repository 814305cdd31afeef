//! A verification policy (`oxbuild verify --policy FILE`): a small TOML
//! file, checked key by key like oxbuild.toml.
//!
//! ```toml
//! require-signature-by = ["keys/release.pub"]   # public keys, relative to this file; each must have signed
//! deny-licenses = ["AGPL-3.0-only", "GPL-3.0-only"]  # SPDX ids no package's license may use
//! allowed-base-registries = ["registry.example.com"]  # the base must come from one of these
//! max-age = "30d"                                # the build must have finished within this long
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::{Error, parse_error};

/// See the module docs.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Policy {
    /// Public keys (PEM files, relative to the policy file) that must each
    /// have a valid signature on the image.
    #[serde(default)]
    pub require_signature_by: Vec<PathBuf>,
    /// SPDX license identifiers no installed package may declare.
    #[serde(default)]
    pub deny_licenses: Vec<String>,
    /// Registries (`host` or `host:port`) the base image must come from.
    #[serde(default)]
    pub allowed_base_registries: Vec<String>,
    /// How long ago the build may have finished (`30d`, `12h`).
    #[serde(default, with = "duration")]
    pub max_age: Option<Duration>,
}

mod duration {
    use serde::Deserialize as _;
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<std::time::Duration>, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s)
            .map(Some)
            .map_err(|e| serde::de::Error::custom(format!("`{s}` is not a duration like 30d or 12h ({e})")))
    }
}

impl Policy {
    /// Reads the policy at `path`; keys are resolved against its directory.
    pub fn load(path: &Path) -> Result<Policy, Error> {
        let text =
            std::fs::read_to_string(path).map_err(|e| Error::Read { path: path.to_path_buf(), why: e.to_string() })?;
        let mut policy: Policy = toml::from_str(&text).map_err(|e| parse_error(path, &text, &e))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        for key in &mut policy.require_signature_by {
            *key = dir.join(&*key);
        }
        Ok(policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_parses_and_bad_keys_are_named_with_their_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.toml");
        std::fs::write(
            &path,
            "require-signature-by = [\"k.pub\"]\ndeny-licenses = [\"AGPL-3.0-only\"]\nmax-age = \"30d\"\n",
        )
        .unwrap();
        let p = Policy::load(&path).unwrap();
        assert_eq!(p.require_signature_by, vec![dir.path().join("k.pub")]);
        assert_eq!(p.max_age, Some(Duration::from_secs(30 * 86400)));
        std::fs::write(&path, "deny-licenses = []\nmax-age = \"soon\"\n").unwrap();
        let e = Policy::load(&path).unwrap_err().to_string();
        assert!(e.contains("policy.toml:2") && e.contains("soon"), "{e}");
        std::fs::write(&path, "deny-license = []\n").unwrap();
        let e = Policy::load(&path).unwrap_err().to_string();
        assert!(e.contains("policy.toml:1") && e.contains("deny-license"), "{e}");
    }
}
