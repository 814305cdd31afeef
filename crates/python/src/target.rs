//! The target, read from the base image without running it: the interpreter
//! and its version, the C library and its version, the architecture.

use std::collections::BTreeMap;

use oxbuild_image::rootfs::{self, Node, Want};

use crate::Error;
use crate::tags::{Libc, Target};

/// Which paths the target detection needs from a root filesystem scan.
pub fn wants(path: &str) -> Want {
    let in_lib = path.starts_with("lib") || path.starts_with("usr/lib");
    if (in_lib && path.ends_with("/libc.so.6")) || path == DPKG_STATUS || path == APK_INSTALLED {
        Want::Content
    } else if (in_lib && path.contains("/ld-musl-")) || interpreter_version(path).is_some() {
        Want::Exists
    } else {
        Want::Skip
    }
}

/// Debian's and Ubuntu's package database.
const DPKG_STATUS: &str = "var/lib/dpkg/status";
/// Alpine's package database.
const APK_INSTALLED: &str = "lib/apk/db/installed";

/// `(minor)` of `usr/bin/python3.X` or `usr/local/bin/python3.X`.
fn interpreter_version(path: &str) -> Option<u32> {
    let name = path.strip_prefix("usr/local/bin/").or_else(|| path.strip_prefix("usr/bin/"))?;
    name.strip_prefix("python3.")?.parse().ok()
}

/// Python's name for an OCI architecture.
pub fn machine(oci_arch: &str, variant: Option<&str>) -> String {
    match (oci_arch, variant) {
        ("amd64", _) => "x86_64",
        ("arm64", _) => "aarch64",
        ("arm", Some("v7")) | ("arm", None) => "armv7l",
        ("arm", Some("v6")) => "armv6l",
        ("386", _) => "i686",
        (other, _) => other,
    }
    .to_string()
}

/// Detects the target from the base's root filesystem scan and config.
pub fn detect(scanned: &BTreeMap<String, Node>, config: &serde_json::Value) -> Result<Target, Error> {
    let env: Vec<&str> =
        config["config"]["Env"].as_array().map(|a| a.iter().filter_map(|v| v.as_str()).collect()).unwrap_or_default();
    let declared = env.iter().find_map(|e| e.strip_prefix("PYTHON_VERSION=")).map(str::to_string);

    // Interpreters present; /usr/local (a source build, as in the official
    // images) wins over the distribution's.
    let mut found: Vec<(u32, String)> =
        scanned.keys().filter_map(|p| interpreter_version(p).map(|minor| (minor, p.clone()))).collect();
    found.sort_by_key(|(minor, p)| (p.starts_with("usr/local/"), *minor));
    let wanted_minor: Option<u32> = declared.as_deref().and_then(|v| v.split('.').nth(1)).and_then(|m| m.parse().ok());
    let chosen = match wanted_minor {
        Some(m) => found.iter().rev().find(|(minor, _)| *minor == m),
        None => found.last(),
    };
    let Some((minor, path)) = chosen.cloned() else {
        return Err(Error::Target(
            "the base image has no Python 3 interpreter (looked for /usr/bin/python3.X and /usr/local/bin/python3.X); use a Python base image"
                .into(),
        ));
    };
    // The full version matters to `python_full_version` markers: the image's
    // PYTHON_VERSION (official images), else the distribution's package.
    let full_version = declared
        .filter(|v| v.starts_with(&format!("3.{minor}")))
        .or_else(|| packaged_version(scanned, minor))
        .unwrap_or_else(|| format!("3.{minor}"));

    let arch = config["architecture"].as_str().unwrap_or("amd64");
    let machine = machine(arch, config["variant"].as_str());
    let libc = if scanned.keys().any(|p| p.contains("/ld-musl-")) {
        // musl does not state its version in a readable way; every current
        // musl-based distribution ships 1.2.
        Libc::Musl(2)
    } else {
        let glibc = scanned
            .iter()
            .filter(|(p, _)| p.ends_with("/libc.so.6"))
            .filter_map(|(p, _)| rootfs::content(scanned, p))
            .filter_map(glibc_minor)
            .max();
        Libc::Glibc(glibc.ok_or_else(|| {
            Error::Target(
                "the base image has neither glibc (libc.so.6) nor musl; oxbuild cannot tell which wheels fit it".into(),
            )
        })?)
    };
    Ok(Target { major: 3, minor, interpreter: format!("/{path}"), full_version, machine, libc })
}

/// What detection needs of a file's content, for a compact cache of base
/// scans: a libc shrinks to its newest `GLIBC_2.N` string; other files stay
/// (package databases are shrunk by the SBOM's scan, which keeps every
/// package's name and version in the database's own format).
pub fn essence(path: &str, bytes: &[u8]) -> Vec<u8> {
    match glibc_minor(bytes) {
        Some(minor) if path.ends_with("/libc.so.6") => format!("GLIBC_2.{minor}").into_bytes(),
        _ => bytes.to_vec(),
    }
}

/// `(package, version)` of the Python packages in a dpkg status file (stanzas
/// of `Package:` and `Version:`) or an apk database (`P:` and `V:` lines).
fn python_packages(text: &str, apk: bool) -> Vec<(String, String)> {
    let (name_key, version_key) = if apk { ("P:", "V:") } else { ("Package: ", "Version: ") };
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let field = |key: &str| stanza.lines().find_map(|l| l.strip_prefix(key)).map(str::trim);
        if let (Some(name), Some(version)) = (field(name_key), field(version_key))
            && (name.starts_with("python3") || name.starts_with("libpython3"))
        {
            out.push((name.to_string(), version.to_string()));
        }
    }
    out
}

/// The interpreter's full version from the distribution's package of
/// `python3.<minor>` (Debian: `3.11.2-6+deb12u6`, `3.13.0~rc1-1`; Alpine:
/// `3.11.9-r0`), as PEP 440 writes it: `3.11.2`, `3.13.0rc1`.
fn packaged_version(scanned: &BTreeMap<String, Node>, minor: u32) -> Option<String> {
    let (path, apk) =
        [(DPKG_STATUS, false), (APK_INSTALLED, true)].into_iter().find(|(p, _)| scanned.contains_key(*p))?;
    let text = String::from_utf8_lossy(rootfs::content(scanned, path)?).into_owned();
    let names = [format!("python3.{minor}-minimal"), format!("python3.{minor}"), "python3".to_string()];
    python_packages(&text, apk)
        .into_iter()
        .filter(|(name, _)| names.contains(name))
        // Debian's `~rc1` sorts before the release, as PEP 440's `rc1` does.
        .map(|(_, version)| version.split('-').next().unwrap_or("").replace('~', ""))
        .find(|v| v.starts_with(&format!("3.{minor}.")) && crate::version::parse(v).is_some())
}

/// The newest `GLIBC_2.N` symbol version a libc.so.6 defines.
pub fn glibc_minor(libc: &[u8]) -> Option<u32> {
    let needle = b"GLIBC_2.";
    let mut best = None;
    let mut i = 0;
    while let Some(pos) = libc[i..].windows(needle.len()).position(|w| w == needle) {
        let start = i + pos + needle.len();
        let digits: Vec<u8> = libc[start..].iter().take_while(|b| b.is_ascii_digit()).copied().collect();
        if let Ok(n) = std::str::from_utf8(&digits).unwrap_or("").parse::<u32>() {
            best = best.max(Some(n));
        }
        i = start;
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_interpreter_libc_and_arch() {
        let mut fs = BTreeMap::new();
        fs.insert("usr/bin/python3.11".to_string(), Node::File(None));
        fs.insert("usr/bin/python3".to_string(), Node::Symlink("python3.11".into()));
        fs.insert(
            "usr/lib/x86_64-linux-gnu/libc.so.6".to_string(),
            Node::File(Some(b"..GLIBC_2.2.5\0GLIBC_2.36\0GLIBC_2.17\0GLIBC_PRIVATE".to_vec())),
        );
        let t = detect(&fs, &serde_json::json!({"architecture": "arm64", "config": {}})).unwrap();
        assert_eq!(
            (t.minor, t.interpreter.as_str(), t.machine.as_str(), t.libc),
            (11, "/usr/bin/python3.11", "aarch64", Libc::Glibc(36))
        );

        fs.insert("usr/local/bin/python3.12".to_string(), Node::File(None));
        let t = detect(&fs, &serde_json::json!({"config": {"Env": ["PYTHON_VERSION=3.12.1"]}})).unwrap();
        assert_eq!((t.interpreter.as_str(), t.full_version.as_str()), ("/usr/local/bin/python3.12", "3.12.1"));
    }

    #[test]
    fn the_full_version_comes_from_the_package_database() {
        let status = "Package: libc6\nVersion: 2.36-9\n\nPackage: python3.11-minimal\nStatus: install ok installed\nVersion: 3.11.2-6+deb12u6\n\nPackage: python3.13-minimal\nVersion: 3.13.0~rc1-1\n";
        let mut fs = BTreeMap::new();
        fs.insert("usr/bin/python3.11".to_string(), Node::File(None));
        fs.insert("lib/x86_64-linux-gnu/libc.so.6".to_string(), Node::File(Some(b"GLIBC_2.36".to_vec())));
        fs.insert(DPKG_STATUS.to_string(), Node::File(Some(status.as_bytes().to_vec())));
        let t = detect(&fs, &serde_json::json!({"config": {}})).unwrap();
        assert_eq!(t.full_version, "3.11.2");
        fs.insert("usr/bin/python3.13".to_string(), Node::File(None));
        let t = detect(&fs, &serde_json::json!({"config": {}})).unwrap();
        assert_eq!(t.full_version, "3.13.0rc1", "Debian's ~rc1 is PEP 440's rc1");

        let apk = "C:Q1abc=\nP:python3\nV:3.12.8-r1\nA:aarch64\n\nP:musl\nV:1.2.5-r0\n";
        let mut fs = BTreeMap::new();
        fs.insert("usr/bin/python3.12".to_string(), Node::File(None));
        fs.insert("lib/ld-musl-aarch64.so.1".to_string(), Node::File(None));
        fs.insert(APK_INSTALLED.to_string(), Node::File(Some(apk.as_bytes().to_vec())));
        assert_eq!(detect(&fs, &serde_json::json!({"config": {}})).unwrap().full_version, "3.12.8");
    }

    #[test]
    fn no_interpreter_is_a_clear_error() {
        let e = detect(&BTreeMap::new(), &serde_json::json!({})).unwrap_err().to_string();
        assert!(e.contains("no Python 3 interpreter"), "{e}");
    }
}
