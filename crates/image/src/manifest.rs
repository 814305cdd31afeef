//! Descriptors, and read-only views of manifests and indexes.
//!
//! oxbuild never re-serialises a manifest it received: these views are parsed
//! from the raw bytes to *read* fields, while the bytes themselves are what get
//! hashed, stored and sent. Manifests oxbuild writes are produced by
//! [`crate::canonical_json`] so that the same input always gives the same bytes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Digest;

/// A reference to a blob: its media type, digest and size (OCI descriptor).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    /// The media type of the referenced content.
    #[serde(rename = "mediaType")]
    pub media_type: String,
    /// The digest of the referenced content.
    pub digest: Digest,
    /// The size in bytes of the referenced content.
    pub size: u64,
    /// The platform, on an index entry.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub platform: Option<Platform>,
    /// The artifact type, on a referrers index entry.
    #[serde(rename = "artifactType", skip_serializing_if = "Option::is_none", default)]
    pub artifact_type: Option<String>,
    /// Annotations.
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    /// A descriptor with no platform or annotations.
    pub fn new(media_type: impl Into<String>, digest: Digest, size: u64) -> Self {
        Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            platform: None,
            artifact_type: None,
            annotations: BTreeMap::new(),
        }
    }

    /// The descriptor of `bytes` with `media_type`.
    pub fn of(media_type: impl Into<String>, bytes: &[u8]) -> Self {
        Descriptor::new(media_type, Digest::of(bytes), bytes.len() as u64)
    }
}

/// An OS/architecture/variant triple, as in an index or `--platform`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// e.g. `linux`
    pub os: String,
    /// e.g. `amd64`, `arm64`
    pub architecture: String,
    /// e.g. `v8` for arm64
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub variant: Option<String>,
}

impl Platform {
    /// The platform this oxbuild binary runs on, in OCI spelling.
    pub fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Platform { os: "linux".into(), architecture: architecture.into(), variant: None }
    }

    /// True when `other` (an index entry) can serve a request for `self`.
    /// A request without a variant matches any variant.
    pub fn matches(&self, other: &Platform) -> bool {
        self.os == other.os
            && self.architecture == other.architecture
            && (self.variant.is_none() || self.variant == other.variant)
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Why a `--platform` string is not one.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a platform: expected os/arch or os/arch/variant, e.g. linux/amd64 or linux/arm64/v8")]
pub struct PlatformParseError(String);

impl std::str::FromStr for Platform {
    type Err = PlatformParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('/').collect();
        let bad = || PlatformParseError(s.to_string());
        if parts.iter().any(|p| p.is_empty()) {
            return Err(bad());
        }
        match parts.as_slice() {
            [os, arch] => Ok(Platform { os: os.to_string(), architecture: arch.to_string(), variant: None }),
            [os, arch, v] => {
                Ok(Platform { os: os.to_string(), architecture: arch.to_string(), variant: Some(v.to_string()) })
            }
            _ => Err(bad()),
        }
    }
}

/// The fields oxbuild reads from an image manifest.
#[derive(Debug, Clone, Deserialize)]
pub struct ManifestView {
    /// Present on every manifest oxbuild accepts; used to tell OCI from Docker.
    #[serde(rename = "mediaType", default)]
    pub media_type: Option<String>,
    /// The config blob.
    pub config: Descriptor,
    /// Layers, bottom first.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// Manifest annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// What an artifact manifest holds (an SBOM, a provenance statement).
    #[serde(rename = "artifactType", default)]
    pub artifact_type: Option<String>,
    /// The manifest this one refers to (OCI 1.1 referrers).
    #[serde(default)]
    pub subject: Option<Descriptor>,
}

/// The fields oxbuild reads from an index or manifest list.
#[derive(Debug, Clone, Deserialize)]
pub struct IndexView {
    /// The images of the index.
    pub manifests: Vec<Descriptor>,
}

impl IndexView {
    /// The first entry for `platform`, or an error listing what the index has.
    pub fn select(&self, platform: &Platform) -> Result<&Descriptor, Vec<Platform>> {
        let found = self.manifests.iter().find(|d| d.platform.as_ref().is_some_and(|p| platform.matches(p)));
        found.ok_or_else(|| self.manifests.iter().filter_map(|d| d.platform.clone()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_parses_and_prints() {
        let p: Platform = "linux/arm64/v8".parse().unwrap();
        assert_eq!(p.variant.as_deref(), Some("v8"));
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert!("linux".parse::<Platform>().is_err());
        assert!("linux//v8".parse::<Platform>().is_err());
    }

    #[test]
    fn index_selection_lists_what_exists_when_missing() {
        let idx: IndexView = serde_json::from_str(
            r#"{"manifests":[
              {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":1,"platform":{"os":"linux","architecture":"amd64"}},
              {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","size":1,"platform":{"os":"linux","architecture":"arm64","variant":"v8"}}]}"#,
        )
        .unwrap();
        let arm = idx.select(&"linux/arm64".parse().unwrap()).unwrap();
        assert!(arm.digest.hex().starts_with('1'));
        let missing = idx.select(&"linux/s390x".parse().unwrap()).unwrap_err();
        assert_eq!(missing.len(), 2);
    }
}
