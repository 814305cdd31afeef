//! Writing a PEP 751 `pylock.toml` from what was resolved for one or more
//! targets. A package chosen at one version on every target is written once,
//! with no marker; one that differs between targets (or is needed on some
//! only) gets an entry per version, with a marker naming its targets. The
//! text depends only on what was chosen: the same inputs give the same bytes.

use std::collections::BTreeMap;
use std::path::{Component, Path};

use super::{Chosen, location};
use crate::Target;

/// What was resolved for one target.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The target.
    pub target: Target,
    /// What was chosen for it.
    pub chosen: Vec<Chosen>,
}

/// The PEP 508 marker of a target: its platform, machine and Python.
pub fn marker_of(target: &Target) -> String {
    format!(
        "sys_platform == 'linux' and platform_machine == '{}' and python_full_version == '{}'",
        target.machine, target.full_version
    )
}

fn string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// `path` as a lock in `lock_dir` names it: relative to that folder, as
/// PEP 751 reads it, so that the lock serves any checkout of the project;
/// absolute when the two share no folder but `/` (a wheelhouse at
/// `/opt/wheels` is there on every runner, at whatever depth the project
/// is checked out).
fn relative(path: &Path, lock_dir: &Path) -> String {
    // `..` and `.` resolved by their text, as absolute() leaves them.
    fn parts(p: &Path) -> Option<Vec<Component<'_>>> {
        let mut out: Vec<Component<'_>> = Vec::new();
        for c in p.components() {
            match c {
                Component::CurDir => {}
                Component::ParentDir if matches!(out.last(), Some(Component::Normal(_))) => {
                    out.pop();
                }
                Component::ParentDir => return None,
                c => out.push(c),
            }
        }
        Some(out)
    }
    let lock_dir = if lock_dir.as_os_str().is_empty() { Path::new(".") } else { lock_dir };
    let (Ok(abs_path), Ok(abs_dir)) = (std::path::absolute(path), std::path::absolute(lock_dir)) else {
        return path.display().to_string();
    };
    let (Some(path_parts), Some(dir_parts)) = (parts(&abs_path), parts(&abs_dir)) else {
        return abs_path.display().to_string();
    };
    let shared = path_parts.iter().zip(&dir_parts).take_while(|(a, b)| a == b).count();
    let in_common = path_parts[..shared].iter().filter(|c| matches!(c, Component::Normal(_))).count();
    if in_common == 0 {
        return path_parts.iter().collect::<std::path::PathBuf>().display().to_string();
    }
    let up = dir_parts.len() - shared;
    let mut out: Vec<String> = if up == 0 { vec![".".into()] } else { vec!["..".into(); up] };
    out.extend(path_parts[shared..].iter().map(|c| c.as_os_str().to_string_lossy().into_owned()));
    out.join("/")
}

/// One file of a package, as an inline table: name, URL or path (see
/// [`relative`]), upload time, sha256.
fn file(c: &crate::source::Candidate, lock_dir: &Path) -> Result<String, String> {
    let sha = c.sha256.as_ref().ok_or_else(|| format!("{} has no sha256 (its source gives none)", c.filename))?;
    let at = match &c.location {
        crate::source::Location::File(p) => format!("path = {}", string(&relative(p, lock_dir))),
        _ => format!("url = {}", string(&location(c))),
    };
    let uploaded =
        c.upload_time.map(|t| format!(", upload-time = {}", humantime::format_rfc3339_seconds(t))).unwrap_or_default();
    Ok(format!(
        "{{ name = {}, {at}{uploaded}, hashes = {{ sha256 = {} }} }}",
        string(&c.filename),
        string(&sha.to_ascii_lowercase())
    ))
}

/// The `pylock.toml` text for `resolved` (one entry per target), with
/// `notes` (why some packages differ by platform) as comments, for a lock
/// in `lock_dir`.
pub fn write(resolved: &[Resolved], notes: &[String], lock_dir: &Path) -> Result<String, String> {
    // (name, version) → (the package as chosen, the targets that chose it).
    let mut entries: BTreeMap<(String, String), (Chosen, Vec<usize>)> = BTreeMap::new();
    for (i, r) in resolved.iter().enumerate() {
        for c in &r.chosen {
            let key = (crate::name::normalize(&c.name), c.version.to_string());
            let entry = entries.entry(key).or_insert_with(|| (c.clone(), Vec::new()));
            entry.1.push(i);
            // Files of every target: each target's wheels, and the sdist.
            for f in &c.files {
                if !entry.0.files.iter().any(|g| g.filename == f.filename) {
                    entry.0.files.push(f.clone());
                }
            }
            entry.0.dependencies.extend(c.dependencies.iter().cloned());
        }
    }
    let mut pythons: Vec<String> =
        resolved.iter().map(|r| format!("=={}.{}.*", r.target.major, r.target.minor)).collect();
    pythons.dedup();
    let mut t = String::from(
        "# Written by `oxbuild lock`: the project's dependencies resolved for its image's Python and platforms.\n",
    );
    for n in notes {
        t.push_str(&format!("# Differs by platform, with markers: {n}\n"));
    }
    t.push_str("lock-version = \"1.0\"\n");
    let environments: Vec<String> = resolved.iter().map(|r| string(&marker_of(&r.target))).collect();
    t.push_str(&format!("environments = [{}]\n", environments.join(", ")));
    if pythons.len() == 1 {
        t.push_str(&format!("requires-python = {}\n", string(&pythons[0])));
    }
    t.push_str("created-by = \"oxbuild\"\n");
    for ((_, version), (c, targets)) in &entries {
        t.push_str("\n[[packages]]\n");
        t.push_str(&format!("name = {}\nversion = {}\n", string(&c.name), string(version)));
        if targets.len() < resolved.len() {
            let markers: Vec<String> =
                targets.iter().map(|i| format!("({})", marker_of(&resolved[*i].target))).collect();
            t.push_str(&format!("marker = {}\n", string(&markers.join(" or "))));
        }
        if !c.dependencies.is_empty() {
            let deps: Vec<String> = c.dependencies.iter().map(|d| format!("{{ name = {} }}", string(d))).collect();
            t.push_str(&format!("dependencies = [{}]\n", deps.join(", ")));
        }
        let mut files = c.files.clone();
        files.sort_by(|a, b| a.filename.cmp(&b.filename));
        let wheels: Vec<String> = files
            .iter()
            .filter(|f| f.filename.ends_with(".whl"))
            .map(|f| file(f, lock_dir))
            .collect::<Result<_, _>>()?;
        if !wheels.is_empty() {
            t.push_str("wheels = [\n");
            for w in wheels {
                t.push_str(&format!("    {w},\n"));
            }
            t.push_str("]\n");
        }
        if let Some(sdist) = files.iter().find(|f| crate::sdist::is_sdist(&f.filename)) {
            t.push_str(&format!("sdist = {}\n", file(sdist, lock_dir)?));
        }
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::relative;

    #[test]
    fn a_local_file_is_named_relative_to_the_lock() {
        assert_eq!(relative(Path::new("/p/app/wheels/a.whl"), Path::new("/p/app")), "./wheels/a.whl");
        assert_eq!(relative(Path::new("/p/wheels/a.whl"), Path::new("/p/app")), "../wheels/a.whl");
        assert_eq!(relative(Path::new("./wheels/a.whl"), Path::new(".")), "./wheels/a.whl");
        assert_eq!(relative(Path::new("wheels/a.whl"), Path::new("")), "./wheels/a.whl");
        assert_eq!(relative(Path::new("app/wheels/a.whl"), Path::new("app/locks")), "../wheels/a.whl");
        // A lock above the project (`-o ../pylock.toml`): `..` resolved.
        assert_eq!(relative(Path::new("/p/app/wheels/a.whl"), Path::new("/p/app/..")), "./app/wheels/a.whl");
        // A wheelhouse outside any folder the project shares stays absolute.
        assert_eq!(relative(Path::new("/opt/wheels/a.whl"), Path::new("/builds/g/app")), "/opt/wheels/a.whl");
    }
}
