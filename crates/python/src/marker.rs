//! PEP 508 environment markers (`python_version < "3.12" and sys_platform == "linux"`),
//! parsed and evaluated by `pep508_rs` for the target image rather than the
//! machine oxbuild runs on. Version comparisons follow PEP 440, so a
//! pre-release interpreter (`3.13.0rc1`) does not satisfy `python_full_version >= "3.13"`.
//!
//! One known simplification of `pep508_rs`, shared with uv, whose marker
//! algebra it is: `python_version` markers are rewritten as
//! `python_full_version` ranges and pre-releases of Python itself are left
//! out of them, so on a release-candidate interpreter (`3.13.0rc1`) both
//! `python_version >= "3.13"` and `python_full_version >= "3.13.0rc1"` are
//! false, where PEP 508 would make them true. Release candidates are rare as
//! image bases and uv resolves the same way, so this is kept rather than
//! evaluating markers by hand again.

use std::str::FromStr as _;

use pep508_rs::{MarkerEnvironment, MarkerEnvironmentBuilder, MarkerTree};

/// Marker variables of the target environment.
#[derive(Debug, Clone)]
pub struct Environment {
    env: MarkerEnvironment,
}

impl Environment {
    /// The environment of CPython `major.minor` (full version `full`, e.g.
    /// `3.11.2` or `3.13.0rc1`) on Linux/`machine`.
    pub fn linux(major: u32, minor: u32, full: &str, machine: &str) -> Result<Environment, String> {
        let python_version = format!("{major}.{minor}");
        let env = MarkerEnvironment::try_from(MarkerEnvironmentBuilder {
            implementation_name: "cpython",
            implementation_version: full,
            os_name: "posix",
            platform_machine: machine,
            platform_python_implementation: "CPython",
            platform_release: "",
            platform_system: "Linux",
            platform_version: "",
            python_full_version: full,
            python_version: &python_version,
            sys_platform: "linux",
        })
        .map_err(|e| format!("the interpreter's version `{full}` is not a PEP 440 version: {e}"))?;
        Ok(Environment { env })
    }

    /// pep508_rs's form of it, for evaluating whole requirements.
    pub(crate) fn pep508(&self) -> &MarkerEnvironment {
        &self.env
    }
}

/// A parsed marker, ready to evaluate.
#[derive(Debug, Clone)]
pub struct Marker {
    tree: MarkerTree,
    text: String,
}

impl Marker {
    /// Parses a marker expression (the part after `;`).
    pub fn parse(text: &str) -> Result<Marker, String> {
        // pep508_rs panics inside multi-byte characters (see
        // `crate::name::parse_requirement`): markers are ASCII in practice.
        if !text.is_ascii() {
            return Err(format!("marker `{text}` is not ASCII text"));
        }
        let tree = MarkerTree::from_str(text).map_err(|e| format!("marker `{text}`: {}", e.message))?;
        Ok(Marker { tree, text: text.to_string() })
    }

    /// A marker already parsed as part of a requirement.
    pub(crate) fn from_tree(tree: MarkerTree) -> Option<Marker> {
        let text = tree.try_to_string()?;
        Some(Marker { tree, text })
    }

    /// The marker's source text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// True when the marker holds in `env`, with no extra requested.
    pub fn evaluate(&self, env: &Environment) -> bool {
        self.tree.evaluate(&env.env, &[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval_in(m: &str, full: &str) -> bool {
        let (major, minor) = (full[..1].parse().unwrap(), full[2..].split('.').next().unwrap().parse().unwrap());
        Marker::parse(m).unwrap().evaluate(&Environment::linux(major, minor, full, "aarch64").unwrap())
    }

    fn eval(m: &str) -> bool {
        eval_in(m, "3.11.2")
    }

    #[test]
    fn evaluates_for_the_target() {
        assert!(eval(r#"python_version >= "3.8" and sys_platform == "linux""#));
        assert!(!eval(r#"python_version < "3.10""#), "3.11 is not below 3.10 (numeric, not lexical)");
        assert!(eval(r#"platform_machine == "aarch64""#));
        assert!(!eval(r#"sys_platform == "win32" or (os_name == "nt" and python_version > "3")"#));
        assert!(eval(r#"'linux' in sys_platform"#));
        assert!(eval(r#"platform_machine not in "x86_64 i686""#));
        assert!(eval(r#""3.9" < python_version"#));
        assert!(!eval(r#"extra == "test""#));
    }

    #[test]
    fn a_pre_release_interpreter_is_older_than_its_release() {
        assert!(!eval_in(r#"python_full_version >= "3.13""#, "3.13.0rc1"));
        assert!(eval_in(r#"python_full_version < "3.13""#, "3.13.0rc1"));
        assert!(eval_in(r#"python_full_version >= "3.12.7""#, "3.13.0rc1"));
        assert!(eval_in(r#"python_full_version >= "3.11.2rc1""#, "3.11.2"));
        assert!(eval_in(r#"python_full_version == "3.12.*""#, "3.12.4"));
    }

    #[test]
    fn bad_markers_are_explained() {
        for bad in [r#"python_version <"#, r#"pyver == "3""#, r#"(python_version == "3""#] {
            let e = Marker::parse(bad).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }
}
