//! Wheel compatibility tags (PEP 425, PEP 600, PEP 656) for a target
//! interpreter and platform, best first, the way pip's resolver orders them.

use std::collections::HashMap;

/// The C library of the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Libc {
    /// glibc `2.minor`.
    Glibc(u32),
    /// musl `1.minor`.
    Musl(u32),
}

impl std::fmt::Display for Libc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Libc::Glibc(minor) => write!(f, "glibc 2.{minor}"),
            Libc::Musl(minor) => write!(f, "musl 1.{minor}"),
        }
    }
}

/// The interpreter and platform wheels must fit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Python major version (3).
    pub major: u32,
    /// Python minor version.
    pub minor: u32,
    /// The interpreter's absolute path in the image, e.g. `/usr/bin/python3.11`.
    pub interpreter: String,
    /// Full version when known (`3.11.2`), else `major.minor`.
    pub full_version: String,
    /// Machine as Python names it: `x86_64`, `aarch64`, …
    pub machine: String,
    /// The C library.
    pub libc: Libc,
}

/// One `python-abi-platform` tag.
pub type Tag = (String, String, String);

/// Legacy manylinux names and the glibc minor they stand for.
const LEGACY: [(&str, u32, &[&str]); 3] = [
    ("manylinux2014", 17, &["x86_64", "i686", "aarch64", "armv7l", "ppc64", "ppc64le", "s390x"]),
    ("manylinux2010", 12, &["x86_64", "i686"]),
    ("manylinux1", 5, &["x86_64", "i686"]),
];

impl Target {
    /// The PEP 508 marker environment of this target.
    pub fn marker_environment(&self) -> Result<crate::marker::Environment, crate::Error> {
        crate::marker::Environment::linux(self.major, self.minor, &self.full_version, &self.machine)
            .map_err(crate::Error::Target)
    }

    /// Platform tags, most specific first.
    pub fn platforms(&self) -> Vec<String> {
        let arch = &self.machine;
        let mut out = Vec::new();
        match self.libc {
            Libc::Glibc(max) => {
                // manylinux_2_N exists from 2.5 on x86; other architectures start at 2.17.
                let oldest = if matches!(arch.as_str(), "x86_64" | "i686") { 5 } else { 17 };
                for minor in (oldest..=max).rev() {
                    out.push(format!("manylinux_2_{minor}_{arch}"));
                    for (name, m, arches) in LEGACY {
                        if m == minor && arches.contains(&arch.as_str()) {
                            out.push(format!("{name}_{arch}"));
                        }
                    }
                }
            }
            Libc::Musl(max) => {
                for minor in (0..=max).rev() {
                    out.push(format!("musllinux_1_{minor}_{arch}"));
                }
            }
        }
        out.push(format!("linux_{arch}"));
        out
    }

    /// Every compatible tag, best first.
    pub fn tags(&self) -> Vec<Tag> {
        let platforms = self.platforms();
        let cp = format!("cp{}{}", self.major, self.minor);
        let mut tags: Vec<Tag> = Vec::new();
        let mut push = |p: &str, a: &str, pl: &str| tags.push((p.to_string(), a.to_string(), pl.to_string()));
        for abi in [cp.as_str(), "abi3", "none"] {
            for pl in &platforms {
                push(&cp, abi, pl);
            }
        }
        for minor in (2..self.minor).rev() {
            for pl in &platforms {
                push(&format!("cp{}{minor}", self.major), "abi3", pl);
            }
        }
        let py_versions: Vec<String> = std::iter::once(format!("py{}{}", self.major, self.minor))
            .chain(std::iter::once(format!("py{}", self.major)))
            .chain((0..self.minor).rev().map(|m| format!("py{}{m}", self.major)))
            .collect();
        for py in &py_versions {
            for pl in &platforms {
                push(py, "none", pl);
            }
        }
        push(&cp, "none", "any");
        for py in &py_versions {
            push(py, "none", "any");
        }
        tags
    }

    /// A tag → priority map (0 is best) for ranking wheels.
    pub fn ranking(&self) -> HashMap<Tag, usize> {
        self.tags().into_iter().enumerate().map(|(i, t)| (t, i)).collect()
    }
}

/// The tags a wheel's compressed tag triple (`py2.py3-none-any`) stands for.
pub fn expand(python: &str, abi: &str, platform: &str) -> Vec<Tag> {
    let mut out = Vec::new();
    for p in python.split('.') {
        for a in abi.split('.') {
            for pl in platform.split('.') {
                out.push((p.to_string(), a.to_string(), pl.to_string()));
            }
        }
    }
    out
}

/// Debian bookworm's Python 3.11 on `machine`: the target the crate's tests use.
#[cfg(test)]
pub(crate) fn debian(machine: &str) -> Target {
    Target {
        major: 3,
        minor: 11,
        interpreter: "/usr/bin/python3.11".into(),
        full_version: "3.11".into(),
        machine: machine.into(),
        libc: Libc::Glibc(36),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libc_reads_as_its_version() {
        assert_eq!(Libc::Glibc(36).to_string(), "glibc 2.36");
        assert_eq!(Libc::Musl(2).to_string(), "musl 1.2");
    }

    #[test]
    fn order_follows_pip() {
        let tags = debian("x86_64").tags();
        let pos = |p: &str, a: &str, pl: &str| tags.iter().position(|t| *t == (p.into(), a.into(), pl.into())).unwrap();
        assert_eq!(tags[0], ("cp311".into(), "cp311".into(), "manylinux_2_36_x86_64".into()));
        assert!(pos("cp311", "cp311", "manylinux_2_17_x86_64") < pos("cp311", "abi3", "manylinux_2_36_x86_64"));
        assert_eq!(pos("cp311", "cp311", "manylinux2014_x86_64"), pos("cp311", "cp311", "manylinux_2_17_x86_64") + 1);
        assert!(pos("cp38", "abi3", "manylinux_2_17_x86_64") < pos("py3", "none", "any"));
        assert!(pos("py3", "none", "linux_x86_64") < pos("py3", "none", "any"));
        assert!(!tags.iter().any(|t| t.2.contains("aarch64")));
        assert!(!tags.iter().any(|t| t.0 == "cp312"), "no wheel for a newer interpreter");
    }

    #[test]
    fn aarch64_starts_at_2_17_and_musl_has_its_own_tags() {
        let arm = debian("aarch64").platforms();
        assert_eq!(arm.iter().rev().nth(1).unwrap(), "manylinux2014_aarch64");
        assert!(!arm.iter().any(|p| p.contains("manylinux1")));
        let musl = Target { libc: Libc::Musl(2), ..debian("x86_64") }.platforms();
        assert_eq!(musl, vec!["musllinux_1_2_x86_64", "musllinux_1_1_x86_64", "musllinux_1_0_x86_64", "linux_x86_64"]);
    }

    #[test]
    fn compressed_tags_expand() {
        assert_eq!(expand("py2.py3", "none", "any").len(), 2);
        assert_eq!(expand("cp311", "cp311", "manylinux2014_x86_64.manylinux_2_17_x86_64").len(), 2);
    }
}
