//! Supply-chain documents for an image oxbuild built: an exact SBOM (SPDX 2.3
//! and CycloneDX 1.6 JSON) and SLSA v1 build provenance (an in-toto
//! statement). Exact, because oxbuild installed every package itself from a
//! hashed lock: nothing here is guessed from files on disk.
//!
//! The input is an [`Inventory`]: the image, the app, the base (with its OS
//! packages, read by [`os`] from the base's layers) and the language
//! packages each dependency provider installed. The documents are
//! deterministic: the same inventory gives the same bytes, with timestamps
//! from `SOURCE_DATE_EPOCH` and identifiers derived from the image digest.

pub mod cyclonedx;
pub mod license;
pub mod os;
pub mod provenance;
pub mod spdx_json;

use oxbuild_image::Digest;
use packageurl::PackageUrl;

pub use license::License;
pub use os::{Distro, Os, OsPackage};

/// The artifact type (and media type) of an SPDX JSON document.
pub const SPDX_MEDIA_TYPE: &str = "application/spdx+json";
/// The artifact type (and media type) of a CycloneDX JSON document.
pub const CYCLONEDX_MEDIA_TYPE: &str = "application/vnd.cyclonedx+json";
/// The artifact type (and media type) of an in-toto statement.
pub const IN_TOTO_MEDIA_TYPE: &str = "application/vnd.in-toto+json";

/// One package a dependency provider installed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Package {
    /// The purl type: `pypi` (later `npm`, `gem`).
    pub ecosystem: String,
    /// The name as the lock writes it.
    pub name: String,
    /// The exact version.
    pub version: String,
    /// The file installed (a wheel's file name).
    pub file: Option<String>,
    /// That file's sha256 (hex).
    pub sha256: Option<String>,
    /// The license its metadata declares, as declared.
    pub license: Option<String>,
    /// The index it came from, credentials removed; `find-links` for a local wheelhouse.
    pub source: Option<String>,
    /// The file's URL, credentials removed, when it was downloaded.
    pub url: Option<String>,
    /// The layer that holds it.
    pub layer: Option<Digest>,
    /// Names (normalised) of the packages it depends on, as the lock records them.
    #[serde(default)]
    pub dependencies: Vec<String>,
}

impl Package {
    /// The name the dependency lists use: PEP 503 normalised for `pypi`;
    /// npm names are exact already.
    pub fn key(&self) -> String {
        if self.ecosystem == "pypi" { normalize(&self.name) } else { self.name.clone() }
    }

    /// Its package URL: `pkg:pypi/markupsafe@3.0.2`, `pkg:npm/%40types/node@20.1.0`
    /// (an npm scope is the purl's namespace).
    pub fn purl(&self) -> String {
        match self.name.split_once('/') {
            Some((scope, name)) if self.ecosystem == "npm" && scope.starts_with('@') => {
                purl(&self.ecosystem, Some(scope), name, &self.version, &[])
            }
            _ => purl(&self.ecosystem, None, &self.key(), &self.version, &[]),
        }
    }
}

/// PEP 503 normalisation, which purl's `pypi` type also asks for.
pub fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        let c = if matches!(c, '_' | '.') { '-' } else { c.to_ascii_lowercase() };
        if !(c == '-' && out.ends_with('-')) {
            out.push(c);
        }
    }
    out
}

/// A purl, or a plain `pkg:type/name@version` when a part is not one the
/// purl library accepts (it refuses nothing oxbuild writes today).
fn purl(ty: &str, namespace: Option<&str>, name: &str, version: &str, qualifiers: &[(&str, String)]) -> String {
    let made = (|| {
        let mut p = PackageUrl::new(ty, name).ok()?;
        p.with_version(version).ok()?;
        if let Some(ns) = namespace {
            p.with_namespace(ns).ok()?;
        }
        for (k, v) in qualifiers {
            p.add_qualifier(*k, v.clone()).ok()?;
        }
        Some(p.to_string())
    })();
    made.unwrap_or_else(|| format!("pkg:{ty}/{name}@{version}"))
}

impl OsPackage {
    /// `pkg:deb/debian/python3.11@3.11.2-6%2Bdeb12u6?arch=amd64&distro=debian-12`.
    pub fn purl(&self, distro: Option<&Distro>) -> String {
        let (ty, vendor) = match self.manager {
            os::Manager::Deb => ("deb", "debian"),
            os::Manager::Apk => ("apk", "alpine"),
        };
        let namespace = distro.map_or(vendor, |d| d.id.as_str());
        let mut q: Vec<(&str, String)> = Vec::new();
        if let Some(a) = &self.arch {
            q.push(("arch", a.clone()));
        }
        if let Some(d) = distro {
            q.push(("distro", d.qualifier()));
        }
        if let Some(s) = &self.source {
            q.push(("upstream", s.clone()));
        }
        purl(ty, Some(namespace), &self.name, &self.version, &q)
    }
}

/// The image an SBOM describes.
#[derive(Debug, Clone)]
pub struct Subject {
    /// Its name (`[image] repository`, else the app's name): never a tag, so
    /// that two reproducible builds give the same document.
    pub name: String,
    /// Its manifest digest.
    pub digest: Digest,
    /// Its platform (`linux/amd64`).
    pub platform: String,
}

impl Subject {
    /// `pkg:oci/app@sha256%3A…?arch=amd64`.
    pub fn purl(&self) -> String {
        image_purl(&self.name, &self.digest, Some(&self.platform))
    }
}

fn image_purl(reference: &str, digest: &Digest, platform: Option<&str>) -> String {
    let without_tag = match reference.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo,
        _ => reference,
    };
    let without_tag = without_tag.split('@').next().unwrap_or(without_tag);
    let name = without_tag.rsplit('/').next().unwrap_or(without_tag).to_ascii_lowercase();
    let mut q: Vec<(&str, String)> = Vec::new();
    if let Some(arch) = platform.and_then(|p| p.split('/').nth(1)) {
        q.push(("arch", arch.to_string()));
    }
    if without_tag.contains('/') {
        q.push(("repository_url", without_tag.to_string()));
    }
    purl("oci", None, &name, digest.as_str(), &q)
}

/// The app built into the image.
#[derive(Debug, Clone, Default)]
pub struct App {
    /// Its name.
    pub name: String,
    /// Its version (pyproject's, else `git describe`), when known.
    pub version: Option<String>,
    /// The git commit it was built from.
    pub commit: Option<String>,
    /// The git remote, credentials removed.
    pub source: Option<String>,
}

/// The base image.
#[derive(Debug, Clone)]
pub struct BaseImage {
    /// How it was named (`registry/repo:tag`, `oci-archive:base.tar`).
    pub reference: String,
    /// Its manifest digest.
    pub digest: Digest,
    /// Its OS packages.
    pub os: Os,
}

impl BaseImage {
    /// `pkg:oci/python@sha256%3A…`; a base read from a file is named by the
    /// file (`oci-archive:python.tar` → `python`).
    pub fn purl(&self) -> String {
        let local = ["oci:", "oci-archive:", "docker-archive:"].iter().find_map(|p| self.reference.strip_prefix(p));
        match local {
            Some(path) => {
                let file = path.rsplit('/').next().unwrap_or(path);
                let mut name = file;
                while let Some(shorter) = [".tar", ".oci", ".gz", ".tgz"].iter().find_map(|x| name.strip_suffix(x)) {
                    name = shorter;
                }
                image_purl(if name.is_empty() { "base" } else { name }, &self.digest, None)
            }
            None => image_purl(&self.reference, &self.digest, None),
        }
    }
}

/// Everything an SBOM lists.
#[derive(Debug, Clone)]
pub struct Inventory {
    /// The image.
    pub image: Subject,
    /// The app in it.
    pub app: App,
    /// Its base.
    pub base: BaseImage,
    /// Packages the dependency providers installed.
    pub packages: Vec<Package>,
    /// `SOURCE_DATE_EPOCH`: the documents' creation time.
    pub created: u64,
    /// oxbuild's version.
    pub tool_version: String,
}

impl Inventory {
    /// The packages sorted (ecosystem, name, version), so documents do not
    /// depend on install order.
    fn sorted_packages(&self) -> Vec<&Package> {
        let mut p: Vec<&Package> = self.packages.iter().collect();
        p.sort_by(|a, b| (&a.ecosystem, a.key(), &a.version).cmp(&(&b.ecosystem, b.key(), &b.version)));
        p
    }

    /// What the SBOM says when the base's OS packages cannot be listed.
    fn unknown_os(&self) -> Option<String> {
        self.base.os.database.is_none().then(|| {
            "the base's distribution is unknown: it has no dpkg or apk package database, so its OS packages are not listed"
                .to_string()
        })
    }
}

/// For each of `packages` (whose document ids are `ids`, in the same
/// order), the ids of the listed packages it depends on, sorted, each once.
fn dependency_ids<'a>(packages: &[&Package], ids: &'a [String]) -> Vec<Vec<&'a String>> {
    let by_key: std::collections::BTreeMap<String, &String> =
        packages.iter().zip(ids).map(|(p, id)| (format!("{}/{}", p.ecosystem, p.key()), id)).collect();
    packages
        .iter()
        .map(|p| {
            let mut deps: Vec<&String> = p
                .dependencies
                .iter()
                .filter_map(|d| {
                    let key = if p.ecosystem == "pypi" { normalize(d) } else { d.clone() };
                    by_key.get(&format!("{}/{}", p.ecosystem, key)).copied()
                })
                .collect();
            deps.sort();
            deps.dedup();
            deps
        })
        .collect()
}

/// RFC 3339 UTC seconds (`2026-12-01T00:00:00Z`), as both formats want.
pub fn timestamp(epoch: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(epoch)).to_string()
}

/// A name-based UUID: the same image always gets the same one.
fn uuid_for(kind: &str, digest: &Digest) -> uuid::Uuid {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, format!("oxbuild:{kind}:{digest}").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(c: &str) -> Digest {
        Digest::of(c.as_bytes())
    }

    fn inventory() -> Inventory {
        let deb = |name: &str, version: &str| OsPackage {
            manager: os::Manager::Deb,
            name: name.into(),
            version: version.into(),
            arch: Some("amd64".into()),
            source: None,
            license: None,
            maintainer: None,
        };
        let py = |name: &str, version: &str, license: &str, deps: &[&str]| Package {
            ecosystem: "pypi".into(),
            name: name.into(),
            version: version.into(),
            file: Some(format!("{name}-{version}-py3-none-any.whl")),
            sha256: Some(digest(name).hex().to_string()),
            license: Some(license.into()),
            source: Some("https://pypi.org/simple/".into()),
            url: None,
            layer: Some(digest("layer")),
            dependencies: deps.iter().map(|d| d.to_string()).collect(),
        };
        Inventory {
            image: Subject { name: "team/app".into(), digest: digest("image"), platform: "linux/amd64".into() },
            app: App { name: "app".into(), version: Some("1.0".into()), commit: Some("abc".into()), source: None },
            base: BaseImage {
                reference: "oci-archive:python-3.11.oci.tar".into(),
                digest: digest("base"),
                os: Os {
                    distro: Some(Distro {
                        id: "debian".into(),
                        version_id: "12".into(),
                        pretty_name: "Debian 12".into(),
                    }),
                    packages: vec![deb("python3.11", "3.11.2-6+deb12u6"), deb("libc6", "2.36-9")],
                    database: Some("/var/lib/dpkg/status".into()),
                },
            },
            // Install order is not document order.
            packages: vec![py("Flask", "3.1.0", "BSD-3-Clause", &["jinja2"]), py("Jinja2", "3.1.4", "Apache 2.0", &[])],
            created: 1_700_000_000,
            tool_version: "0.1.0".into(),
        }
    }

    #[test]
    fn purls_are_encoded_and_qualified() {
        let inv = inventory();
        let p = inv.base.os.packages[0].purl(inv.base.os.distro.as_ref());
        assert_eq!(p, "pkg:deb/debian/python3.11@3.11.2-6%2Bdeb12u6?arch=amd64&distro=debian-12");
        assert_eq!(inv.packages[1].purl(), "pkg:pypi/jinja2@3.1.4");
        assert!(inv.base.purl().starts_with("pkg:oci/python-3.11@sha256"), "{}", inv.base.purl());
        assert!(inv.image.purl().contains("repository_url=team%2Fapp"), "{}", inv.image.purl());
    }

    #[test]
    fn documents_are_deterministic_and_list_everything() {
        let mut inv = inventory();
        let spdx = spdx_json::document(&inv);
        let cdx = cyclonedx::document(&inv);
        inv.packages.reverse();
        assert_eq!(spdx_json::document(&inv), spdx, "install order does not matter");
        assert_eq!(cyclonedx::document(&inv), cdx);
        let s: serde_json::Value = serde_json::from_slice(&spdx).unwrap();
        assert_eq!(s["creationInfo"]["created"], "2023-11-14T22:13:20Z");
        let names: Vec<&str> = s["packages"].as_array().unwrap().iter().filter_map(|p| p["name"].as_str()).collect();
        for n in ["python3.11", "libc6", "Flask", "Jinja2", "team/app", "app"] {
            assert!(names.contains(&n), "{n} in {names:?}");
        }
        let refs = s["hasExtractedLicensingInfos"].as_array().unwrap();
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0]["extractedText"], "Apache 2.0");
        let depends: Vec<_> = s["relationships"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["relationshipType"] == "DEPENDS_ON")
            .map(|r| (r["spdxElementId"].as_str().unwrap(), r["relatedSpdxElement"].as_str().unwrap()))
            .collect();
        assert_eq!(depends, [("SPDXRef-pypi-flask-3.1.0", "SPDXRef-pypi-jinja2-3.1.4")]);
        let c: serde_json::Value = serde_json::from_slice(&cdx).unwrap();
        assert!(c["serialNumber"].as_str().unwrap().starts_with("urn:uuid:"));
        let jinja = c["components"].as_array().unwrap().iter().find(|c| c["name"] == "Jinja2").unwrap();
        assert_eq!(jinja["licenses"][0]["license"]["name"], "Apache 2.0");
        assert_eq!(jinja["hashes"][0]["content"], digest("Jinja2").hex());
    }

    #[test]
    fn an_unknown_distribution_is_said() {
        let mut inv = inventory();
        inv.base.os = Os::default();
        let s: serde_json::Value = serde_json::from_slice(&spdx_json::document(&inv)).unwrap();
        assert!(s["comment"].as_str().unwrap().contains("distribution is unknown"));
        let c: serde_json::Value = serde_json::from_slice(&cyclonedx::document(&inv)).unwrap();
        let base = &c["components"][0];
        assert!(base["properties"][0]["value"].as_str().unwrap().contains("unknown"), "{base}");
    }
}
