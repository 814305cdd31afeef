//! `package-lock.json` and `npm-shrinkwrap.json`, lockfile versions 2 and 3:
//! the `packages` map, keyed by where each package goes (`node_modules/a`,
//! `node_modules/a/node_modules/b`, a workspace's own directory).
//! Version 1 locks (npm 6) have no such map and are refused with what to do.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::Error;

/// One entry of the `packages` map.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    version: Option<String>,
    resolved: Option<String>,
    integrity: Option<String>,
    #[serde(default)]
    dev: bool,
    #[serde(default)]
    optional: bool,
    #[serde(default)]
    dev_optional: bool,
    #[serde(default)]
    in_bundle: bool,
    #[serde(default)]
    extraneous: bool,
    #[serde(default)]
    link: bool,
    #[serde(default)]
    has_install_script: bool,
    #[serde(default)]
    os: Vec<String>,
    #[serde(default)]
    cpu: Vec<String>,
    #[serde(default)]
    libc: Vec<String>,
    #[serde(default)]
    bin: BinField,
    #[serde(default)]
    engines: Engines,
    license: Option<serde_json::Value>,
    #[serde(default)]
    dependencies: BTreeMap<String, String>,
    #[serde(default)]
    optional_dependencies: BTreeMap<String, String>,
}

/// `bin`: npm writes a map into locks; a bare string (the package's own
/// name) is read too.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(untagged)]
enum BinField {
    #[default]
    None,
    One(String),
    Map(BTreeMap<String, String>),
}

/// `engines`: a map, or (in a few old packages) a list, which says nothing.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(untagged)]
enum Engines {
    #[default]
    None,
    Map(BTreeMap<String, serde_json::Value>),
    Other(serde::de::IgnoredAny),
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    name: Option<String>,
    lockfile_version: Option<u64>,
    packages: Option<BTreeMap<String, Entry>>,
}

/// A package the lock installs somewhere under the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// Where it goes, relative to the app: `node_modules/express`.
    pub path: String,
    /// Its name (`@scope/name`).
    pub name: String,
    /// Its version; empty for a link.
    pub version: String,
    /// Where its tarball is (a registry URL); for a link, the directory
    /// in the app it points at.
    pub resolved: Option<String>,
    /// Its Subresource Integrity string (`sha512-...`).
    pub integrity: Option<String>,
    /// Needed only for development.
    pub dev: bool,
    /// Optional: skipped, not an error, when it does not fit the target.
    pub optional: bool,
    /// A symlink to a workspace directory (`"link": true`).
    pub link: bool,
    /// It has install scripts (`preinstall`, `install`, `postinstall`, or a
    /// `binding.gyp`), which oxbuild never runs.
    pub install_script: bool,
    /// Operating systems, CPUs and libcs it supports (`!x` excludes).
    pub os: Vec<String>,
    /// See `os`.
    pub cpu: Vec<String>,
    /// See `os`.
    pub libc: Vec<String>,
    /// Its commands: name → path inside the package.
    pub bin: BTreeMap<String, String>,
    /// Its `engines.node` range.
    pub engines_node: Option<String>,
    /// Its license, as the lock records it.
    pub license: Option<String>,
    /// The names it depends on.
    pub dependencies: Vec<String>,
}

/// A read lock.
#[derive(Debug, Clone)]
pub struct Lock {
    /// The project's name.
    pub name: Option<String>,
    /// The project's own `engines.node`.
    pub engines_node: Option<String>,
    /// Every package, in path order (parents before what they contain).
    pub packages: Vec<Package>,
}

/// The package name at `path`: what follows its last `node_modules/`.
fn name_at(path: &str) -> Option<&str> {
    path.rfind("node_modules/").map(|i| &path[i + "node_modules/".len()..])
}

/// Reads the lock at `path`.
pub fn load(path: &Path) -> Result<Lock, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Lock(format!("{}: {e}", path.display())))?;
    parse(&text, &path.display().to_string())
}

/// Parses a lock's text; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<Lock, Error> {
    let bad = |m: String| Error::Lock(format!("{file}: {m}"));
    let doc: Document =
        serde_json::from_str(text).map_err(|e| bad(format!("not a valid package-lock (line {}: {e})", e.line())))?;
    let version = doc.lockfile_version.unwrap_or(0);
    let Some(entries) = doc.packages.filter(|_| version >= 2) else {
        return Err(bad(format!(
            "lockfileVersion {version} has no `packages` map (npm 6 and older write that); upgrade it with `npm install --package-lock-only` using npm 7 or later"
        )));
    };
    if version > 3 {
        return Err(bad(format!("lockfileVersion {version} is newer than the 2 and 3 oxbuild reads")));
    }
    let engines_of = |e: &Entry| match &e.engines {
        Engines::Map(m) => m.get("node").and_then(|v| v.as_str()).map(str::to_string),
        _ => None,
    };
    let engines_node = entries.get("").and_then(engines_of);
    let mut packages = Vec::new();
    for (path, e) in entries {
        // The root is the project itself, and what npm left over is not installed.
        if path.is_empty() || e.extraneous {
            continue;
        }
        let unsafe_path = path.split('/').any(|c| c == ".." || c.is_empty()) || path.starts_with('/');
        if unsafe_path {
            return Err(bad(format!("packages[\"{path}\"]: a path outside the app")));
        }
        // Bundled packages come inside their parent's tarball.
        if e.in_bundle {
            continue;
        }
        // A workspace's own directory (no `node_modules/`): its files are the app's.
        let Some(name) = name_at(&path).map(str::to_string) else { continue };
        if e.link {
            packages.push(Package {
                path,
                name,
                version: String::new(),
                resolved: e.resolved,
                integrity: None,
                dev: e.dev || e.dev_optional,
                optional: e.optional,
                link: true,
                install_script: false,
                os: Vec::new(),
                cpu: Vec::new(),
                libc: Vec::new(),
                bin: BTreeMap::new(),
                engines_node: None,
                license: None,
                dependencies: Vec::new(),
            });
            continue;
        }
        let version = e.version.clone().ok_or_else(|| bad(format!("packages[\"{path}\"] has no version")))?;
        let engines_node = engines_of(&e);
        let bin = match e.bin {
            BinField::None => BTreeMap::new(),
            BinField::One(p) => BTreeMap::from([(name.rsplit('/').next().unwrap_or(&name).to_string(), p)]),
            BinField::Map(m) => m,
        };
        let license = match &e.license {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(v) => v.get("type").and_then(|t| t.as_str()).map(str::to_string),
            None => None,
        };
        let mut dependencies: Vec<String> =
            e.dependencies.keys().chain(e.optional_dependencies.keys()).cloned().collect();
        dependencies.sort();
        dependencies.dedup();
        packages.push(Package {
            path,
            name,
            version,
            resolved: e.resolved,
            integrity: e.integrity,
            dev: e.dev || e.dev_optional,
            optional: e.optional || e.dev_optional,
            link: false,
            install_script: e.has_install_script,
            os: e.os,
            cpu: e.cpu,
            libc: e.libc,
            bin,
            engines_node,
            license,
            dependencies,
        });
    }
    Ok(Lock { name: doc.name, engines_node, packages })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCK: &str = r#"{
      "name": "demo", "lockfileVersion": 3, "requires": true,
      "packages": {
        "": {"name": "demo", "dependencies": {"a": "^1"}, "devDependencies": {"t": "1"}},
        "node_modules/a": {"version": "1.2.0", "resolved": "https://registry.npmjs.org/a/-/a-1.2.0.tgz",
          "integrity": "sha512-AAAA", "bin": {"a": "cli.js"}, "dependencies": {"b": "2"}, "license": "MIT"},
        "node_modules/a/node_modules/b": {"version": "2.0.0", "resolved": "https://registry.npmjs.org/b/-/b-2.0.0.tgz",
          "integrity": "sha512-BBBB", "engines": {"node": ">=14"}},
        "node_modules/@s/native-linux-x64": {"version": "1.0.0", "optional": true, "os": ["linux"], "cpu": ["x64"],
          "resolved": "https://registry.npmjs.org/@s/native-linux-x64/-/native-linux-x64-1.0.0.tgz", "integrity": "sha512-CCCC"},
        "node_modules/t": {"version": "1.0.0", "dev": true, "resolved": "https://registry.npmjs.org/t/-/t-1.0.0.tgz",
          "integrity": "sha512-DDDD", "engines": ["node"]},
        "node_modules/old": {"version": "0.1.0", "extraneous": true},
        "node_modules/w": {"resolved": "packages/w", "link": true},
        "packages/w": {"name": "w", "version": "0.0.1"}
      }
    }"#;

    #[test]
    fn reads_paths_flags_bins_and_links() {
        let lock = parse(LOCK, "package-lock.json").unwrap();
        let paths: Vec<&str> = lock.packages.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "node_modules/@s/native-linux-x64",
                "node_modules/a",
                "node_modules/a/node_modules/b",
                "node_modules/t",
                "node_modules/w"
            ]
        );
        let a = &lock.packages[1];
        assert_eq!((a.name.as_str(), a.version.as_str(), a.license.as_deref()), ("a", "1.2.0", Some("MIT")));
        assert_eq!(a.bin.get("a").map(String::as_str), Some("cli.js"));
        assert_eq!(a.dependencies, ["b"]);
        assert_eq!(lock.packages[2].engines_node.as_deref(), Some(">=14"));
        assert_eq!(lock.packages[0].name, "@s/native-linux-x64");
        assert!(lock.packages[0].optional && lock.packages[0].cpu == ["x64"]);
        assert!(lock.packages[3].dev && lock.packages[3].engines_node.is_none());
        assert!(lock.packages[4].link && lock.packages[4].resolved.as_deref() == Some("packages/w"));
    }

    #[test]
    fn old_and_broken_locks_are_named() {
        let v1 = r#"{"name": "x", "lockfileVersion": 1, "dependencies": {}}"#;
        let err = parse(v1, "package-lock.json").unwrap_err().to_string();
        assert!(err.contains("package-lock.json") && err.contains("npm install --package-lock-only"), "{err}");
        let err = parse("{\n\"lockfileVersion\": 3,\n", "app/package-lock.json").unwrap_err().to_string();
        assert!(err.contains("app/package-lock.json") && err.contains("line"), "{err}");
        let escape = r#"{"lockfileVersion": 3, "packages": {"node_modules/../../etc": {"version": "1"}}}"#;
        let err = parse(escape, "l.json").unwrap_err().to_string();
        assert!(err.contains("outside the app"), "{err}");
    }
}
