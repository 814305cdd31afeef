//! The target, read from the base image without running it: Node's version,
//! the CPU and the C library, as npm's `os`, `cpu` and `libc` fields name
//! them.
//!
//! The version comes from `NODE_VERSION` in the base's environment (the
//! official images set it), else the package database's `nodejs` (Debian,
//! Alpine, NodeSource), else the `libnode.so.N` soname, whose N is the
//! module ABI and so names the major version. Debian's `/usr/bin/node` is a
//! small stub linked to libnode and holds no version string to read.

use std::collections::BTreeMap;

use oxbuild_image::rootfs::{Node, Want};

use crate::Error;

/// Which paths the target needs from a base scan (beside the package
/// database and libc, which the Python target and the SBOM read already).
pub fn wants(path: &str) -> Want {
    let in_lib = path.starts_with("lib") || path.starts_with("usr/lib") || path.starts_with("usr/local/lib");
    if NODE_BINARIES.contains(&path) || (in_lib && path.contains("/libnode.so.")) { Want::Exists } else { Want::Skip }
}

/// Where images put `node`.
pub const NODE_BINARIES: [&str; 3] = ["usr/bin/node", "usr/local/bin/node", "usr/bin/nodejs"];

/// The C library, as npm's `libc` field names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Libc {
    /// GNU libc.
    Glibc,
    /// musl (Alpine).
    Musl,
}

impl Libc {
    /// `glibc` or `musl`.
    pub fn as_str(self) -> &'static str {
        match self {
            Libc::Glibc => "glibc",
            Libc::Musl => "musl",
        }
    }
}

/// What packages are installed for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Target {
    /// Node's version: exact (`18.19.0`), or only its major (`18`) when
    /// only the libnode soname tells.
    pub version: Option<String>,
    /// Where the version was read.
    pub version_from: String,
    /// `linux`.
    pub os: String,
    /// npm's CPU name: `x64`, `arm64`, `arm`, `ia32`, `ppc64`, `s390x`.
    pub cpu: String,
    /// The C library.
    pub libc: Libc,
    /// The image has `node` where images put it.
    pub has_node: bool,
}

/// npm's name for an OCI architecture.
pub fn cpu(oci_arch: &str) -> String {
    match oci_arch {
        "amd64" => "x64",
        "386" => "ia32",
        "ppc64le" => "ppc64",
        other => other,
    }
    .to_string()
}

/// Node's major version for a module ABI (`NODE_MODULE_VERSION`).
fn major_of_abi(abi: u32) -> Option<u32> {
    Some(match abi {
        72 => 12,
        83 => 14,
        88 => 15,
        93 => 16,
        102 => 17,
        108 => 18,
        111 => 19,
        115 => 20,
        120 => 21,
        127 => 22,
        131 => 23,
        137 => 24,
        141 => 25,
        _ => return None,
    })
}

/// `18.19.0` of a package version (`18.19.0+dfsg-6~deb12u2`, `20.15.1-r0`,
/// `20.20.2-1nodesource1`).
fn upstream_version(packaged: &str) -> Option<String> {
    let v: String = packaged.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
    (v.split('.').count() == 3 && v.split('.').all(|p| !p.is_empty())).then_some(v)
}

/// Detects the target from the base's scan, its config and its platform.
pub fn detect(scan: &BTreeMap<String, Node>, config: &serde_json::Value, architecture: &str) -> Result<Target, Error> {
    let env: Vec<&str> =
        config["config"]["Env"].as_array().map(|a| a.iter().filter_map(|v| v.as_str()).collect()).unwrap_or_default();
    let declared = env.iter().find_map(|e| e.strip_prefix("NODE_VERSION=")).map(|v| v.trim_start_matches('v'));
    let os = oxbuild_sbom::os::read(scan);
    let packaged = os.packages.iter().find(|p| p.name == "nodejs").and_then(|p| upstream_version(&p.version));
    let abi = scan
        .keys()
        .filter_map(|p| p.rsplit_once("/libnode.so.").and_then(|(_, n)| n.split('.').next()?.parse::<u32>().ok()))
        .filter_map(major_of_abi)
        .max();
    let (version, version_from) = if let Some(v) = declared.and_then(upstream_version) {
        (Some(v), "NODE_VERSION in the base's environment".to_string())
    } else if let Some(v) = packaged {
        (Some(v), format!("the nodejs package in {}", os.database.unwrap_or_default()))
    } else if let Some(major) = abi {
        (Some(major.to_string()), "the libnode soname (major version only)".to_string())
    } else {
        (None, "nothing in the base says".to_string())
    };
    let libc = if scan.keys().any(|p| p.contains("/ld-musl-")) {
        Libc::Musl
    } else if scan.keys().any(|p| p.ends_with("/libc.so.6")) {
        Libc::Glibc
    } else {
        return Err(Error::Target(
            "the base image has neither glibc (libc.so.6) nor musl; oxbuild cannot tell which native packages fit it"
                .into(),
        ));
    };
    let has_node = NODE_BINARIES.iter().any(|b| scan.contains_key(*b)) || abi.is_some();
    Ok(Target { version, version_from, os: "linux".into(), cpu: cpu(architecture), libc, has_node })
}

/// Whether a package's `os`/`cpu`/`libc` list allows `value`: `!x` entries
/// exclude, and a list with positive entries must name it.
pub fn allows(list: &[String], value: &str) -> bool {
    if list.iter().any(|e| e.strip_prefix('!') == Some(value)) {
        return false;
    }
    let positive: Vec<&String> = list.iter().filter(|e| !e.starts_with('!')).collect();
    positive.is_empty() || positive.iter().any(|e| e.as_str() == value || e.as_str() == "any")
}

impl Target {
    /// Why a package with these fields does not fit, if it does not.
    pub fn misfit(&self, os: &[String], cpu: &[String], libc: &[String]) -> Option<String> {
        if !allows(os, &self.os) {
            return Some(format!("os {} (the target is {})", os.join(", "), self.os));
        }
        if !allows(cpu, &self.cpu) {
            return Some(format!("cpu {} (the target is {})", cpu.join(", "), self.cpu));
        }
        if !allows(libc, self.libc.as_str()) {
            return Some(format!("libc {} (the target is {})", libc.join(", "), self.libc.as_str()));
        }
        None
    }

    /// Whether Node's version satisfies an `engines.node` range; None when
    /// that cannot be told (no version known, or a range npm's semver cannot
    /// read). A major-only version satisfies a range that some release of
    /// that major satisfies.
    pub fn satisfies(&self, range: &str) -> Option<bool> {
        let version = self.version.as_ref()?;
        let range: nodejs_semver::Range = range.parse().ok()?;
        if version.contains('.') {
            let v: nodejs_semver::Version = version.parse().ok()?;
            return Some(range.satisfies(&v));
        }
        let major: u64 = version.parse().ok()?;
        // Any x.y.z of that major: its first and a late release stand in.
        let some = [format!("{major}.0.0"), format!("{major}.99.99")];
        Some(some.iter().filter_map(|v| v.parse::<nodejs_semver::Version>().ok()).any(|v| range.satisfies(&v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(files: &[(&str, Option<&str>)]) -> BTreeMap<String, Node> {
        files.iter().map(|(p, c)| (p.to_string(), Node::File(c.map(|c| c.as_bytes().to_vec())))).collect()
    }

    #[test]
    fn the_version_comes_from_env_then_packages_then_libnode() {
        let status =
            "Package: nodejs\nStatus: install ok installed\nVersion: 18.19.0+dfsg-6~deb12u2\nArchitecture: amd64\n";
        let base = [
            ("usr/lib/x86_64-linux-gnu/libc.so.6", None),
            ("usr/lib/x86_64-linux-gnu/libnode.so.108", None),
            ("usr/bin/node", None),
        ];
        let mut files = base.to_vec();
        let t = detect(&scan(&files), &serde_json::json!({}), "amd64").unwrap();
        assert_eq!((t.version.as_deref(), t.cpu.as_str(), t.libc), (Some("18"), "x64", Libc::Glibc));
        files.push(("var/lib/dpkg/status", Some(status)));
        let t = detect(&scan(&files), &serde_json::json!({}), "arm64").unwrap();
        assert_eq!((t.version.as_deref(), t.cpu.as_str()), (Some("18.19.0"), "arm64"));
        let config = serde_json::json!({"config": {"Env": ["NODE_VERSION=20.11.1", "PATH=/usr/bin"]}});
        let t = detect(&scan(&files), &config, "amd64").unwrap();
        assert_eq!(t.version.as_deref(), Some("20.11.1"));
        assert!(t.version_from.contains("NODE_VERSION"));
        let musl = detect(&scan(&[("lib/ld-musl-x86_64.so.1", None)]), &config, "amd64").unwrap();
        assert_eq!((musl.libc, musl.has_node), (Libc::Musl, false));
    }

    #[test]
    fn platform_lists_and_engines() {
        let t = Target {
            version: Some("18.19.0".into()),
            version_from: String::new(),
            os: "linux".into(),
            cpu: "arm64".into(),
            libc: Libc::Glibc,
            has_node: true,
        };
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(t.misfit(&s(&["linux"]), &s(&["arm64"]), &s(&["glibc"])), None);
        assert!(t.misfit(&s(&["darwin"]), &[], &[]).unwrap().contains("os darwin"));
        assert!(t.misfit(&[], &s(&["x64"]), &[]).unwrap().contains("cpu x64"));
        assert!(t.misfit(&[], &s(&["!arm64"]), &[]).is_some());
        assert!(t.misfit(&[], &[], &s(&["musl"])).unwrap().contains("libc musl"));
        assert_eq!(t.satisfies(">=18"), Some(true));
        assert_eq!(t.satisfies("^14 || ^16"), Some(false));
        assert_eq!(t.satisfies(">=18.20.0"), Some(false));
        let major = Target { version: Some("18".into()), ..t };
        assert_eq!(major.satisfies(">=18.17"), Some(true));
        assert_eq!(major.satisfies(">=20"), Some(false));
    }
}
