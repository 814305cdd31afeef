//! The base's operating-system packages, read from its package database
//! without running anything: Debian's `/var/lib/dpkg/status` and Alpine's
//! `/lib/apk/db/installed`, with `/etc/os-release` naming the distribution.
//!
//! A base scan keeps these files shrunk by [`essence`] to the fields an SBOM
//! needs, in each database's own format, so that shrinking twice changes
//! nothing and the Python target reads the same text.

use std::collections::BTreeMap;

use oxbuild_image::rootfs::{self, Node, Want};

/// Debian's and Ubuntu's package database.
pub const DPKG_STATUS: &str = "var/lib/dpkg/status";
/// Alpine's package database.
pub const APK_INSTALLED: &str = "lib/apk/db/installed";
/// The distribution's identity (`/etc/os-release`, or where it usually links).
const OS_RELEASE: [&str; 2] = ["etc/os-release", "usr/lib/os-release"];

/// dpkg fields kept: enough for a purl and a supplier.
const DPKG_FIELDS: [&str; 6] = ["Package", "Status", "Version", "Architecture", "Source", "Maintainer"];
/// apk fields kept: name, version, architecture, license, origin, maintainer.
const APK_FIELDS: [&str; 6] = ["P", "V", "A", "L", "o", "m"];

/// The paths a base scan reads for the SBOM.
pub fn wants(path: &str) -> Want {
    if path == DPKG_STATUS || path == APK_INSTALLED || OS_RELEASE.contains(&path) { Want::Content } else { Want::Skip }
}

/// What the SBOM needs of a package database: the installed packages with
/// the fields above, in the database's own format. Other files are kept.
pub fn essence(path: &str, bytes: &[u8]) -> Option<Vec<u8>> {
    let text = String::from_utf8_lossy(bytes);
    let kept: String = match path {
        DPKG_STATUS => stanzas(&text).filter(|s| dpkg_installed(s)).map(|s| keep(s, &DPKG_FIELDS, ": ")).collect(),
        APK_INSTALLED => stanzas(&text).map(|s| keep(s, &APK_FIELDS, ":")).collect(),
        _ => return None,
    };
    Some(kept.into_bytes())
}

fn stanzas(text: &str) -> impl Iterator<Item = &str> {
    text.split("\n\n").filter(|s| !s.trim().is_empty())
}

/// A dpkg stanza of an installed package (a stanza without `Status` is
/// already shrunk, or from a minimal database: kept).
fn dpkg_installed(stanza: &str) -> bool {
    match field(stanza, "Status", ": ") {
        Some(status) => status.ends_with(" installed"),
        None => true,
    }
}

fn keep(stanza: &str, fields: &[&str], sep: &str) -> String {
    let mut out = String::new();
    for line in stanza.lines() {
        if let Some((key, _)) = line.split_once(sep)
            && fields.contains(&key)
        {
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
    out.push('\n');
    out
}

fn field<'a>(stanza: &'a str, key: &str, sep: &str) -> Option<&'a str> {
    stanza.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(sep)).map(str::trim)
}

/// The distribution, from os-release.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Distro {
    /// `ID`: `debian`, `alpine`, `ubuntu`.
    pub id: String,
    /// `VERSION_ID`: `12`, `3.20.3`; empty for a rolling release.
    pub version_id: String,
    /// `PRETTY_NAME`, for people.
    pub pretty_name: String,
}

impl Distro {
    /// `debian-12`, as purls write the `distro` qualifier.
    pub fn qualifier(&self) -> String {
        if self.version_id.is_empty() { self.id.clone() } else { format!("{}-{}", self.id, self.version_id) }
    }
}

/// Which database a package came from, which decides its purl type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Manager {
    /// dpkg: `pkg:deb/...`
    Deb,
    /// apk: `pkg:apk/...`
    Apk,
}

/// One installed OS package.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OsPackage {
    /// Its database.
    pub manager: Manager,
    /// Name.
    pub name: String,
    /// Version, as the database writes it (`3.11.2-6+deb12u6`).
    pub version: String,
    /// Architecture (`amd64`, `all`, `x86_64`).
    pub arch: Option<String>,
    /// The source package, when it differs from the name.
    pub source: Option<String>,
    /// The license the database records (apk does; dpkg does not).
    pub license: Option<String>,
    /// Maintainer, as the database writes it.
    pub maintainer: Option<String>,
}

/// The base's operating system as far as its files tell.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Os {
    /// The distribution, when os-release names one.
    pub distro: Option<Distro>,
    /// Installed packages, sorted by name; empty when no database was found.
    pub packages: Vec<OsPackage>,
    /// The database read (`var/lib/dpkg/status`); None when the base has none
    /// oxbuild knows, and the SBOM says the OS packages are unknown.
    pub database: Option<String>,
}

/// Reads the OS and its packages from a base scan.
pub fn read(scan: &BTreeMap<String, Node>) -> Os {
    let content = |p: &str| rootfs::content(scan, p).map(|b| String::from_utf8_lossy(b).into_owned());
    let distro = OS_RELEASE.iter().find_map(|p| content(p)).and_then(|text| os_release(&text));
    let mut os = Os { distro, ..Os::default() };
    if let Some(text) = content(DPKG_STATUS) {
        os.database = Some(format!("/{DPKG_STATUS}"));
        for s in stanzas(&text).filter(|s| dpkg_installed(s)) {
            let f = |k| field(s, k, ": ").map(str::to_string);
            let (Some(name), Some(version)) = (f("Package"), f("Version")) else { continue };
            // `Source: name (version)` when the source version differs.
            let source = f("Source").map(|s| s.split_whitespace().next().unwrap_or("").to_string());
            os.packages.push(OsPackage {
                manager: Manager::Deb,
                source: source.filter(|s| s != &name && !s.is_empty()),
                name,
                version,
                arch: f("Architecture"),
                license: None,
                maintainer: f("Maintainer"),
            });
        }
    } else if let Some(text) = content(APK_INSTALLED) {
        os.database = Some(format!("/{APK_INSTALLED}"));
        for s in stanzas(&text) {
            let f = |k| field(s, k, ":").map(str::to_string);
            let (Some(name), Some(version)) = (f("P"), f("V")) else { continue };
            os.packages.push(OsPackage {
                manager: Manager::Apk,
                source: f("o").filter(|o| o != &name),
                name,
                version,
                arch: f("A"),
                license: f("L"),
                maintainer: f("m"),
            });
        }
    }
    os.packages.sort_by(|a, b| (&a.name, &a.version, &a.arch).cmp(&(&b.name, &b.version, &b.arch)));
    os.packages.dedup();
    os
}

/// `ID`, `VERSION_ID` and `PRETTY_NAME` of an os-release file (shell-style
/// assignments, values optionally quoted).
fn os_release(text: &str) -> Option<Distro> {
    let mut values = BTreeMap::new();
    for line in text.lines() {
        if let Some((k, v)) = line.trim().split_once('=') {
            let v = v.trim().trim_matches(|c| c == '"' || c == '\'');
            values.insert(k.trim().to_string(), v.to_string());
        }
    }
    let id = values.get("ID")?.to_ascii_lowercase();
    Some(Distro {
        version_id: values.get("VERSION_ID").cloned().unwrap_or_default(),
        pretty_name: values.get("PRETTY_NAME").cloned().unwrap_or_else(|| id.clone()),
        id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Package: python3.11\nStatus: install ok installed\nPriority: optional\nArchitecture: amd64\nSource: python3.11 (3.11.2-6+deb12u6)\nVersion: 3.11.2-6+deb12u6\nDescription: Interactive\n high-level language\n\nPackage: gone\nStatus: deinstall ok config-files\nVersion: 1.0\n\nPackage: libc6\nStatus: install ok installed\nArchitecture: amd64\nSource: glibc\nVersion: 2.36-9+deb12u10\nMaintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>\n";

    fn scan(files: &[(&str, &str)]) -> BTreeMap<String, Node> {
        files
            .iter()
            .map(|(p, c)| (p.to_string(), Node::File(Some(essence(p, c.as_bytes()).unwrap_or(c.as_bytes().to_vec())))))
            .collect()
    }

    #[test]
    fn dpkg_packages_installed_only_with_source_and_arch() {
        let os = read(&scan(&[
            (DPKG_STATUS, STATUS),
            ("etc/os-release", "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n"),
        ]));
        assert_eq!(os.distro.as_ref().unwrap().qualifier(), "debian-12");
        let names: Vec<&str> = os.packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["libc6", "python3.11"], "the deinstalled package is not listed");
        let libc = &os.packages[0];
        assert_eq!((libc.version.as_str(), libc.source.as_deref()), ("2.36-9+deb12u10", Some("glibc")));
        assert_eq!(os.packages[1].source, None, "a source named like the package is not repeated");
        assert_eq!(os.packages[1].arch.as_deref(), Some("amd64"));
    }

    #[test]
    fn essence_is_stable_and_keeps_what_the_python_target_reads() {
        let once = essence(DPKG_STATUS, STATUS.as_bytes()).unwrap();
        assert_eq!(essence(DPKG_STATUS, &once).unwrap(), once, "shrinking twice changes nothing");
        let text = String::from_utf8(once).unwrap();
        assert!(text.contains("Package: python3.11\n") && text.contains("Version: 3.11.2-6+deb12u6\n"), "{text}");
        assert!(!text.contains("Description") && !text.contains("gone"), "{text}");
    }

    #[test]
    fn apk_packages_carry_their_license() {
        let apk = "C:Q1abc=\nP:musl\nV:1.2.5-r0\nA:x86_64\nL:MIT\no:musl\nT:the libc\n\nP:python3\nV:3.12.8-r1\nA:x86_64\nL:PSF-2.0\n";
        let os = read(&scan(&[(APK_INSTALLED, apk), ("etc/os-release", "ID=alpine\nVERSION_ID=3.21.0\n")]));
        assert_eq!(os.database.as_deref(), Some("/lib/apk/db/installed"));
        assert_eq!(os.packages.len(), 2);
        assert_eq!(os.packages[0].license.as_deref(), Some("MIT"));
        assert_eq!(os.packages[1].manager, Manager::Apk);
    }

    #[test]
    fn no_database_is_said() {
        let os = read(&scan(&[("etc/passwd", "root:x:0:0::/root:/bin/sh\n")]));
        assert!(os.database.is_none() && os.packages.is_empty() && os.distro.is_none());
    }
}
