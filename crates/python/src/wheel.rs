//! Wheels (PEP 427): file names, and installing one into a virtual
//! environment's tree the way an installer must (PEP 376 RECORD, INSTALLER,
//! `.data` directories, console scripts with the target interpreter).

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use base64::Engine as _;
use sha2::{Digest as _, Sha256};

use crate::Error;
use crate::name::normalize;
use crate::tags::{Tag, expand};

/// A parsed wheel file name: `{name}-{version}(-{build})?-{python}-{abi}-{platform}.whl`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WheelName {
    /// Distribution name as written (underscored).
    pub name: String,
    /// Version.
    pub version: String,
    /// Every tag the file name stands for.
    pub tags: Vec<Tag>,
    /// The whole file name.
    pub filename: String,
}

impl WheelName {
    /// Parses a wheel file name; None for anything else (sdists included).
    pub fn parse(filename: &str) -> Option<WheelName> {
        let stem = filename.strip_suffix(".whl")?;
        let parts: Vec<&str> = stem.split('-').collect();
        let (name, version, rest) = match parts.len() {
            5 => (parts[0], parts[1], &parts[2..]),
            6 => (parts[0], parts[1], &parts[3..]),
            _ => return None,
        };
        Some(WheelName {
            name: name.to_string(),
            version: version.to_string(),
            tags: expand(rest[0], rest[1], rest[2]),
            filename: filename.to_string(),
        })
    }

    /// The normalised distribution name.
    pub fn key(&self) -> String {
        normalize(&self.name)
    }
}

/// Where a virtual environment lives and what it runs.
#[derive(Debug, Clone)]
pub struct VenvLayout {
    /// The venv prefix in the image, e.g. `/opt/venv`.
    pub prefix: String,
    /// `python3.11`: the directory name under `lib/`.
    pub python_dir: String,
}

impl VenvLayout {
    /// `lib/python3.X/site-packages`, relative to the prefix.
    pub fn site_packages(&self) -> String {
        format!("lib/{}/site-packages", self.python_dir)
    }
}

/// A file to go into the layer: path relative to the prefix, staged on disk.
#[derive(Debug, Clone)]
pub struct Staged {
    /// Relative to the venv prefix.
    pub rel: String,
    /// The staged bytes.
    pub source: PathBuf,
    /// Executable?
    pub executable: bool,
}

fn b64_hash(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(bytes))
}

/// A path inside the wheel, checked never to leave the install tree.
/// Backslashes count as separators too: a name like `..\\..\\x` is refused, not
/// taken as one odd file name that later code might split.
fn safe_rel(wheel: &str, name: &str) -> Result<PathBuf, Error> {
    let unified = name.replace('\\', "/");
    let p = Path::new(&unified);
    if p.is_absolute() || p.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir)) {
        return Err(Error::Package(format!(
            "wheel {wheel} has an entry `{name}` that would land outside the environment; refusing to install it"
        )));
    }
    Ok(p.to_path_buf())
}

/// Installs the wheel at `path` into `stage` (a directory standing for the
/// venv prefix), returning what it wrote. Checks each file against the
/// wheel's RECORD.
pub fn install(path: &Path, filename: &str, venv: &VenvLayout, stage: &Path) -> Result<Vec<Staged>, Error> {
    let bad = |why: String| Error::Package(format!("wheel {filename}: {why}"));
    let file = fs::File::open(path).map_err(|e| bad(e.to_string()))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| bad(format!("not a valid zip file ({e})")))?;
    let parsed = WheelName::parse(filename).ok_or_else(|| bad("not a wheel file name".into()))?;

    let names: Vec<String> = zip.file_names().filter_map(|n| n.ok().map(|n| n.into_owned())).collect();
    let dist_info = names
        .iter()
        .filter_map(|n| n.split_once('/').map(|(d, _)| d))
        .find(|d| d.ends_with(".dist-info") && normalize(d.split('-').next().unwrap_or("")) == parsed.key())
        .ok_or_else(|| bad("has no .dist-info directory".into()))?
        .to_string();
    let data_dir = format!("{}.data", dist_info.trim_end_matches(".dist-info"));

    let read = |zip: &mut zip::ZipArchive<fs::File>, name: &str| -> Result<Vec<u8>, Error> {
        let mut entry = zip.by_name(name).map_err(|e| bad(format!("{name}: {e}")))?;
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).map_err(|e| bad(format!("{name}: {e}")))?;
        Ok(bytes)
    };
    let wheel_meta = String::from_utf8_lossy(&read(&mut zip, &format!("{dist_info}/WHEEL"))?).into_owned();
    let major = wheel_meta
        .lines()
        .find_map(|l| l.strip_prefix("Wheel-Version:"))
        .map(|v| v.trim().split('.').next().unwrap_or("").to_string());
    if major.as_deref() != Some("1") {
        return Err(bad(format!("unsupported Wheel-Version {}", major.unwrap_or_default())));
    }
    let record_text = String::from_utf8_lossy(&read(&mut zip, &format!("{dist_info}/RECORD"))?).into_owned();
    let expected: BTreeMap<String, String> = record_text
        .lines()
        .filter_map(|l| {
            let mut f = l.rsplitn(3, ',');
            let (_size, hash, path) = (f.next()?, f.next()?, f.next()?);
            hash.strip_prefix("sha256=").map(|h| (path.trim_matches('"').to_string(), h.to_string()))
        })
        .collect();

    let site = venv.site_packages();
    let shebang = format!("#!{}/bin/python", venv.prefix.trim_end_matches('/'));
    let mut staged = Vec::new();
    let mut record: Vec<(String, String, u64)> = Vec::new();
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| bad(e.to_string()))?;
        let name = entry.name().map_err(|e| bad(format!("an entry name is not readable ({e})")))?.into_owned();
        if entry.is_dir() {
            continue;
        }
        let rel = safe_rel(filename, &name)?;
        let name = rel.to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).map_err(|e| bad(format!("{name}: {e}")))?;
        if let Some(want) = expected.get(&name)
            && *want != b64_hash(&bytes)
        {
            return Err(bad(format!("{name} does not match the hash in its RECORD; the wheel is corrupt")));
        }
        let unix_exec = entry.unix_mode().is_some_and(|m| m & 0o111 != 0);
        let rel_str = rel.to_string_lossy().replace('\\', "/");
        if rel_str == format!("{dist_info}/RECORD") || rel_str == format!("{dist_info}/INSTALLER") {
            continue;
        }
        let (dest, executable, bytes) = match rel_str.strip_prefix(&format!("{data_dir}/")) {
            Some(rest) => {
                let (scheme, inner) = rest.split_once('/').unwrap_or((rest, ""));
                match scheme {
                    "purelib" | "platlib" => (format!("{site}/{inner}"), unix_exec, bytes),
                    "scripts" => {
                        let bytes = rewrite_shebang(bytes, &shebang);
                        (format!("bin/{inner}"), true, bytes)
                    }
                    "headers" => (format!("include/site/{}/{}/{inner}", venv.python_dir, parsed.name), false, bytes),
                    "data" => (inner.to_string(), unix_exec, bytes),
                    other => return Err(bad(format!("unknown .data scheme `{other}`"))),
                }
            }
            None => (format!("{site}/{rel_str}"), unix_exec, bytes),
        };
        record.push((dest.clone(), b64_hash(&bytes), bytes.len() as u64));
        staged.push(write_staged(stage, &dest, &bytes, executable)?);
    }

    // Console and GUI scripts from entry_points.txt.
    if let Ok(ep) = read(&mut zip, &format!("{dist_info}/entry_points.txt")) {
        for (script, target) in entry_points(&String::from_utf8_lossy(&ep)) {
            let plain = !script.is_empty()
                && !script.starts_with('.')
                && script.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !plain {
                return Err(bad(format!(
                    "entry point name `{script}` is not a plain file name; refusing to install it"
                )));
            }
            let (module, attr) =
                target.split_once(':').ok_or_else(|| bad(format!("entry point `{script} = {target}` has no `:`")))?;
            let attr = attr.split('[').next().unwrap_or(attr).trim();
            let head = attr.split('.').next().unwrap_or(attr);
            let body = format!(
                "{shebang}\n# Written by oxbuild for the entry point {script} = {module}:{attr}\nimport sys\nfrom {module} import {head}\n\nif __name__ == \"__main__\":\n    sys.exit({attr}())\n",
                module = module.trim()
            );
            let dest = format!("bin/{script}");
            record.push((dest.clone(), b64_hash(body.as_bytes()), body.len() as u64));
            staged.push(write_staged(stage, &dest, body.as_bytes(), true)?);
        }
    }

    let installer = b"oxbuild\n";
    let installer_rel = format!("{site}/{dist_info}/INSTALLER");
    record.push((installer_rel.clone(), b64_hash(installer), installer.len() as u64));
    staged.push(write_staged(stage, &installer_rel, installer, false)?);

    // RECORD paths are relative to site-packages.
    let depth = site.split('/').count();
    let mut text = String::new();
    for (dest, hash, size) in &record {
        let rel = match dest.strip_prefix(&format!("{site}/")) {
            Some(inside) => inside.to_string(),
            None => format!("{}{dest}", "../".repeat(depth)),
        };
        text.push_str(&format!("{},sha256={hash},{size}\n", csv(&rel)));
    }
    text.push_str(&format!("{dist_info}/RECORD,,\n"));
    staged.push(write_staged(stage, &format!("{site}/{dist_info}/RECORD"), text.as_bytes(), false)?);
    Ok(staged)
}

fn csv(field: &str) -> String {
    if field.contains([',', '"']) { format!("\"{}\"", field.replace('"', "\"\"")) } else { field.to_string() }
}

fn rewrite_shebang(bytes: Vec<u8>, shebang: &str) -> Vec<u8> {
    if bytes.starts_with(b"#!python") {
        let end = bytes.iter().position(|&b| b == b'\n').unwrap_or(bytes.len());
        let mut out = shebang.as_bytes().to_vec();
        out.extend_from_slice(&bytes[end..]);
        out
    } else {
        bytes
    }
}

fn write_staged(stage: &Path, rel: &str, bytes: &[u8], executable: bool) -> Result<Staged, Error> {
    // Every destination is checked again here, whatever computed it.
    let safe = !rel.contains('\\')
        && Path::new(rel).components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if !safe {
        return Err(Error::Package(format!("refusing to write `{rel}`: it would land outside the environment")));
    }
    let path = stage.join(rel);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)
            .map_err(|e| oxbuild_image::Error::io(format!("creating {}", parent.display()), e))?;
    }
    let mut f =
        fs::File::create(&path).map_err(|e| oxbuild_image::Error::io(format!("writing {}", path.display()), e))?;
    f.write_all(bytes).map_err(|e| oxbuild_image::Error::io(format!("writing {}", path.display()), e))?;
    Ok(Staged { rel: rel.to_string(), source: path, executable })
}

/// `name = module:attr` pairs of the `[console_scripts]` and `[gui_scripts]` sections.
fn entry_points(text: &str) -> Vec<(String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            section = line.trim_matches(['[', ']']).trim().to_string();
        } else if (section == "console_scripts" || section == "gui_scripts")
            && let Some((k, v)) = line.split_once('=')
        {
            out.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        let w =
            WheelName::parse("markupsafe-3.0.4-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl").unwrap();
        assert_eq!((w.key().as_str(), w.version.as_str(), w.tags.len()), ("markupsafe", "3.0.4", 2));
        let w = WheelName::parse("pkg-1.0-1build-py3-none-any.whl").unwrap();
        assert_eq!(w.tags, vec![("py3".to_string(), "none".to_string(), "any".to_string())]);
        assert!(WheelName::parse("pkg-1.0.tar.gz").is_none());
    }

    #[test]
    fn entry_point_sections() {
        let eps = entry_points(
            "[console_scripts]\ngunicorn = gunicorn.app.wsgiapp:run\n\n[paste.server_runner]\nmain = x:y\n",
        );
        assert_eq!(eps, vec![("gunicorn".to_string(), "gunicorn.app.wsgiapp:run".to_string())]);
    }

    /// Builds a wheel in memory with the given entries.
    pub(crate) fn make_wheel(dir: &Path, filename: &str, files: &[(&str, &[u8])]) -> PathBuf {
        let path = dir.join(filename);
        let mut zip = zip::ZipWriter::new(fs::File::create(&path).unwrap());
        let opts = zip::write::SimpleFileOptions::default().unix_permissions(0o644);
        let mut record = String::new();
        let stem = filename.split('-').take(2).collect::<Vec<_>>().join("-");
        for (name, data) in files {
            zip.start_file(*name, opts).unwrap();
            zip.write_all(data).unwrap();
            record.push_str(&format!("{name},sha256={},{}\n", b64_hash(data), data.len()));
        }
        zip.start_file(format!("{stem}.dist-info/WHEEL"), opts).unwrap();
        zip.write_all(b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\n").unwrap();
        zip.start_file(format!("{stem}.dist-info/RECORD"), opts).unwrap();
        zip.write_all(record.as_bytes()).unwrap();
        zip.finish().unwrap();
        path
    }

    fn venv() -> VenvLayout {
        VenvLayout { prefix: "/opt/venv".into(), python_dir: "python3.11".into() }
    }

    #[test]
    fn installs_purelib_scripts_entry_points_and_record() {
        let dir = tempfile::tempdir().unwrap();
        let whl = make_wheel(
            dir.path(),
            "demo_pkg-1.0-py3-none-any.whl",
            &[
                ("demo_pkg/__init__.py", b"def main():\n    return 0\n"),
                ("demo_pkg-1.0.data/scripts/demo-tool", b"#!python\nprint('hi')\n"),
                ("demo_pkg-1.0.dist-info/entry_points.txt", b"[console_scripts]\ndemo = demo_pkg:main\n"),
            ],
        );
        let stage = dir.path().join("stage");
        let staged = install(&whl, "demo_pkg-1.0-py3-none-any.whl", &venv(), &stage).unwrap();
        let rels: Vec<&str> = staged.iter().map(|s| s.rel.as_str()).collect();
        assert!(rels.contains(&"lib/python3.11/site-packages/demo_pkg/__init__.py"), "{rels:?}");
        let tool = fs::read_to_string(stage.join("bin/demo-tool")).unwrap();
        assert!(tool.starts_with("#!/opt/venv/bin/python\n"), "{tool}");
        let demo = fs::read_to_string(stage.join("bin/demo")).unwrap();
        assert!(demo.contains("from demo_pkg import main") && demo.contains("sys.exit(main())"), "{demo}");
        assert!(staged.iter().find(|s| s.rel == "bin/demo").unwrap().executable);
        let record =
            fs::read_to_string(stage.join("lib/python3.11/site-packages/demo_pkg-1.0.dist-info/RECORD")).unwrap();
        assert!(record.contains("../../../bin/demo,sha256="), "{record}");
        assert!(record.contains("demo_pkg-1.0.dist-info/INSTALLER,sha256="), "{record}");
        assert_eq!(
            fs::read_to_string(stage.join("lib/python3.11/site-packages/demo_pkg-1.0.dist-info/INSTALLER")).unwrap(),
            "oxbuild\n"
        );
    }

    #[test]
    fn backslash_traversal_and_odd_script_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let whl = make_wheel(dir.path(), "bs-1.0-py3-none-any.whl", &[("..\\..\\..\\escaped", b"x")]);
        let e = install(&whl, "bs-1.0-py3-none-any.whl", &venv(), &dir.path().join("s")).unwrap_err().to_string();
        assert!(e.contains("outside the environment"), "{e}");
        let whl = make_wheel(
            dir.path(),
            "ep-1.0-py3-none-any.whl",
            &[
                ("ep/__init__.py", b""),
                ("ep-1.0.dist-info/entry_points.txt", b"[console_scripts]\n../../../x = ep:main\n"),
            ],
        );
        let e = install(&whl, "ep-1.0-py3-none-any.whl", &venv(), &dir.path().join("s2")).unwrap_err().to_string();
        assert!(e.contains("not a plain file name"), "{e}");
        assert!(!dir.path().join("escaped").exists() && !dir.path().join("x").exists());
    }

    #[test]
    fn escaping_entries_and_corrupt_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let whl = make_wheel(dir.path(), "evil-1.0-py3-none-any.whl", &[("../../etc/cron.d/evil", b"x")]);
        let e = install(&whl, "evil-1.0-py3-none-any.whl", &venv(), &dir.path().join("s")).unwrap_err().to_string();
        assert!(e.contains("outside the environment") && e.contains("../../etc/cron.d/evil"), "{e}");
        assert!(!dir.path().join("etc").exists());
    }
}
