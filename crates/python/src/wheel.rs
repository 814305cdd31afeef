//! Wheels (PEP 427): file names, and installing one into a virtual
//! environment's tree the way an installer must (PEP 376 RECORD, INSTALLER,
//! `.data` directories, console scripts with the target interpreter).

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use sha2::{Digest as _, Sha256};

use oxbuild_image::EntrySource;

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
    /// The build tag as PEP 427 sorts it: leading digits as a number, then
    /// the rest; None when there is none (which sorts lowest).
    pub build: Option<(u64, String)>,
    /// The whole file name.
    pub filename: String,
}

impl WheelName {
    /// Parses a wheel file name; None for anything else (sdists included).
    pub fn parse(filename: &str) -> Option<WheelName> {
        let stem = filename.strip_suffix(".whl")?;
        let parts: Vec<&str> = stem.split('-').collect();
        let (name, version, build, rest) = match parts.len() {
            5 => (parts[0], parts[1], None, &parts[2..]),
            6 => (parts[0], parts[1], Some(parts[2]), &parts[3..]),
            _ => return None,
        };
        let build = build.map(|b| {
            let digits = b.len() - b.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            (b[..digits].parse().unwrap_or(0), b[digits..].to_string())
        });
        Some(WheelName {
            name: name.to_string(),
            version: version.to_string(),
            build,
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

/// A file to go into the layer, with its path relative to the prefix.
#[derive(Debug, Clone)]
pub struct Staged {
    /// Relative to the venv prefix.
    pub rel: String,
    /// What it holds.
    pub content: Content,
    /// Executable?
    pub executable: bool,
}

/// What an installed file holds.
#[derive(Debug, Clone)]
pub enum Content {
    /// Bytes the installer made or changed: scripts, RECORD, INSTALLER.
    Bytes(Vec<u8>),
    /// A file of the wheel as it is, inflated straight into the layer when
    /// the layer is written and checked against the wheel's RECORD then.
    Entry(Arc<WheelEntry>),
}

/// One file inside a wheel, located by offset, so that installing it costs
/// one pass over its compressed bytes and no copy on disk.
#[derive(Debug)]
pub struct WheelEntry {
    /// Opened when the entry is read, so a lock of a thousand wheels does not
    /// hold a thousand files open.
    wheel: Arc<Path>,
    filename: Arc<str>,
    name: String,
    start: u64,
    compressed: u64,
    size: u64,
    deflated: bool,
    /// The RECORD hash (urlsafe base64 of the SHA-256, unpadded).
    sha256: String,
}

/// A wheel file that does not match its RECORD, found while its bytes were
/// streamed into the layer.
#[derive(Debug)]
pub struct Corrupt(pub String);

impl std::fmt::Display for Corrupt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Corrupt {}

impl EntrySource for WheelEntry {
    fn len(&self) -> u64 {
        self.size
    }

    fn open(&self) -> io::Result<Box<dyn Read + '_>> {
        let file = fs::File::open(&self.wheel)?;
        let raw =
            io::BufReader::with_capacity(256 * 1024, At { file, pos: self.start, end: self.start + self.compressed });
        let inner: Box<dyn Read> =
            if self.deflated { Box::new(flate2::bufread::DeflateDecoder::new(raw)) } else { Box::new(raw) };
        Ok(Box::new(Checked { inner, entry: self, hasher: Sha256::new(), seen: 0 }))
    }
}

/// Reads `file` from `pos` to `end`.
struct At {
    file: fs::File,
    pos: u64,
    end: u64,
}

impl Read for At {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use std::os::unix::fs::FileExt as _;
        // Positioned reads: nothing else moves this file's offset, but the
        // entry's own bounds are all that is ever read.
        let want = buf.len().min((self.end - self.pos) as usize);
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Hashes an entry's bytes as they pass and fails the read that completes it
/// (or ends it early) unless they are the size and hash the RECORD says.
struct Checked<'a> {
    inner: Box<dyn Read + 'a>,
    entry: &'a WheelEntry,
    hasher: Sha256,
    seen: u64,
}

impl Read for Checked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let e = self.entry;
        let want = buf.len().min((e.size - self.seen) as usize);
        let corrupt = |why: &str| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                Corrupt(format!("wheel {}: {} {why}; the wheel is corrupt", e.filename, e.name)),
            )
        };
        let n = match want {
            0 => 0,
            _ => match self.inner.read(&mut buf[..want]) {
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::InvalidData || err.kind() == io::ErrorKind::InvalidInput => {
                    return Err(corrupt(&format!("cannot be inflated ({err})")));
                }
                Err(err) => return Err(err),
            },
        };
        self.hasher.update(&buf[..n]);
        self.seen += n as u64;
        if n == 0 && self.seen < e.size && want > 0 {
            return Err(corrupt("is shorter than the wheel's directory says"));
        }
        if self.seen == e.size && want > 0 {
            let got = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.hasher.clone().finalize());
            if got != e.sha256 {
                return Err(corrupt("does not match the hash in its RECORD"));
            }
        }
        Ok(n)
    }
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

/// What a wheel's core metadata (`*.dist-info/METADATA`) says of its license.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Metadata {
    /// `License-Expression` (PEP 639).
    pub license_expression: Option<String>,
    /// `License`: free text, possibly several lines.
    pub license: Option<String>,
    /// `Classifier`s under `License ::`.
    pub classifiers: Vec<String>,
}

/// Reads the license fields of the wheel at `path`'s METADATA.
pub fn metadata(path: &Path, filename: &str) -> Result<Metadata, Error> {
    let fields = metadata_fields(path, filename)?;
    let one =
        |key: &str| fields.iter().find(|(k, _)| k == key).map(|(_, v)| v.trim().to_string()).filter(|v| !v.is_empty());
    Ok(Metadata {
        license_expression: one("license-expression"),
        license: one("license"),
        classifiers: fields
            .iter()
            .filter(|(k, v)| k == "classifier" && v.starts_with("License ::"))
            .map(|(_, v)| v.clone())
            .collect(),
    })
}

/// What a wheel's METADATA says it needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requires {
    /// `Requires-Dist`: PEP 508 requirements, markers and all.
    pub dist: Vec<String>,
    /// `Requires-Python`: a PEP 440 specifier set.
    pub python: Option<String>,
}

/// Reads what the wheel at `path` needs: its `Requires-Dist` and `Requires-Python`.
pub fn requires(path: &Path, filename: &str) -> Result<Requires, Error> {
    Ok(requires_of(&metadata_fields(path, filename)?))
}

/// The header fields of the wheel's METADATA (an email-style header block;
/// continuation lines start with white space), keys in lower case. A wheel
/// without METADATA has none.
fn metadata_fields(path: &Path, filename: &str) -> Result<Vec<(String, String)>, Error> {
    let file = fs::File::open(path).map_err(|e| Error::Package(format!("wheel {filename}: {e}")))?;
    Ok(header_fields(&metadata_text(file, filename)?))
}

/// The text of the METADATA in the wheel `filename` that `reader` reads
/// (a file, or ranges of it over HTTP); empty when it has none.
pub fn metadata_text<R: Read + std::io::Seek>(reader: R, filename: &str) -> Result<String, Error> {
    let bad = |why: String| Error::Package(format!("wheel {filename}: {why}"));
    let mut zip = zip::ZipArchive::new(reader).map_err(|e| bad(format!("not a valid zip file ({e})")))?;
    let parsed = WheelName::parse(filename).ok_or_else(|| bad("not a wheel file name".into()))?;
    let name = zip
        .file_names()
        .filter_map(|n| n.ok())
        .find(|n| {
            n.split_once('/').is_some_and(|(d, rest)| {
                rest == "METADATA"
                    && d.ends_with(".dist-info")
                    && normalize(d.split('-').next().unwrap_or("")) == parsed.key()
            })
        })
        .map(|n| n.into_owned());
    // PEP 427 requires METADATA; a wheel without it declares nothing.
    let Some(name) = name else { return Ok(String::new()) };
    let mut text = String::new();
    zip.by_name(&name)
        .map_err(|e| bad(format!("{name}: {e}")))?
        .take(16 << 20)
        .read_to_string(&mut text)
        .map_err(|e| bad(format!("{name}: {e}")))?;
    Ok(text)
}

/// The header fields of core metadata (METADATA, PKG-INFO, an index's
/// `.metadata` file): an email-style header block whose continuation lines
/// start with white space; keys in lower case.
pub fn header_fields(text: &str) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = fields.last_mut() {
                // setuptools indents continued lines by 8 spaces and a `|`.
                let cont = line.trim_start();
                value.push('\n');
                value.push_str(cont.strip_prefix('|').unwrap_or(cont).trim_end());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            fields.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    fields
}

/// What core metadata says a distribution needs.
pub fn requires_of(fields: &[(String, String)]) -> Requires {
    Requires {
        dist: fields.iter().filter(|(k, _)| k == "requires-dist").map(|(_, v)| v.trim().to_string()).collect(),
        python: fields
            .iter()
            .find(|(k, _)| k == "requires-python")
            .map(|(_, v)| v.trim().to_string())
            .filter(|v| !v.is_empty()),
    }
}

/// Installs the wheel at `path` into a venv laid out as `venv`, returning
/// the files to put in the layer. Files the installer changes or makes are
/// returned as bytes; the rest stay in the wheel and are inflated straight
/// into the layer when it is written, where each is checked against the
/// wheel's RECORD (a mismatch fails the layer with [`Corrupt`]).
pub fn install(path: &Path, filename: &str, venv: &VenvLayout) -> Result<Vec<Staged>, Error> {
    let bad = |why: String| Error::Package(format!("wheel {filename}: {why}"));
    let file = fs::File::open(path).map_err(|e| bad(e.to_string()))?;
    let shared: Arc<Path> = Arc::from(path);
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
    // Every file must be listed in RECORD (PEP 427), except RECORD and its
    // signatures; one that is not was added after the wheel was made.
    let listed: std::collections::BTreeSet<String> =
        record_text.lines().filter_map(|l| l.rsplitn(3, ',').nth(2).map(|p| p.trim_matches('"').to_string())).collect();
    let unrecorded_ok =
        [format!("{dist_info}/RECORD"), format!("{dist_info}/RECORD.jws"), format!("{dist_info}/RECORD.p7s")];

    let site = venv.site_packages();
    let shebang = format!("#!{}/bin/python", venv.prefix.trim_end_matches('/'));
    let wheel_name: Arc<str> = filename.into();
    let mut staged = Vec::new();
    let mut record: Vec<(String, String, u64)> = Vec::new();
    for i in 0..zip.len() {
        // The directory entry only: no bytes are read here.
        let (name, unix_exec, mut located) = {
            let entry = zip.by_index_raw(i).map_err(|e| bad(e.to_string()))?;
            let name = entry.name().map_err(|e| bad(format!("an entry name is not readable ({e})")))?.into_owned();
            if entry.is_dir() {
                continue;
            }
            let deflated = match entry.compression() {
                zip::CompressionMethod::Deflated => Some(true),
                zip::CompressionMethod::Stored => Some(false),
                _ => None,
            };
            let located = match (deflated, entry.data_start(), entry.encrypted()) {
                (Some(deflated), Some(start), false) if entry.size() > 0 => Some(WheelEntry {
                    wheel: shared.clone(),
                    filename: wheel_name.clone(),
                    name: String::new(),
                    start,
                    compressed: entry.compressed_size(),
                    size: entry.size(),
                    deflated,
                    sha256: String::new(),
                }),
                _ => None,
            };
            (name, entry.unix_mode().is_some_and(|m| m & 0o111 != 0), located)
        };
        let rel = safe_rel(filename, &name)?;
        let rel_str = rel.to_string_lossy().replace('\\', "/");
        if rel_str == format!("{dist_info}/RECORD") || rel_str == format!("{dist_info}/INSTALLER") {
            continue;
        }
        let name = rel.to_string_lossy().into_owned();
        let (dest, executable, rewrite) = match rel_str.strip_prefix(&format!("{data_dir}/")) {
            Some(rest) => {
                let (scheme, inner) = rest.split_once('/').unwrap_or((rest, ""));
                match scheme {
                    "purelib" | "platlib" => (format!("{site}/{inner}"), unix_exec, false),
                    "scripts" => (format!("bin/{inner}"), true, true),
                    "headers" => (format!("include/site/{}/{}/{inner}", venv.python_dir, parsed.name), false, false),
                    "data" => (inner.to_string(), unix_exec, false),
                    other => return Err(bad(format!("unknown .data scheme `{other}`"))),
                }
            }
            None => (format!("{site}/{rel_str}"), unix_exec, false),
        };
        let want = expected.get(&name);
        if want.is_none() && !listed.contains(&name) && !unrecorded_ok.contains(&name) {
            return Err(bad(format!(
                "{name} is not listed in its RECORD, so nothing vouches for it; the wheel is corrupt or was changed after it was built"
            )));
        }
        // Unchanged files with a RECORD hash stay in the wheel; anything the
        // installer rewrites, or that it must hash itself, is read now.
        if let (Some(entry), Some(want), false) = (located.as_mut(), want, rewrite) {
            entry.name = name;
            entry.sha256 = want.clone();
            record.push((dest.clone(), want.clone(), entry.size));
            staged.push(stage(&dest, Content::Entry(Arc::new(located.take().expect("matched"))), executable)?);
            continue;
        }
        let mut bytes = Vec::new();
        zip.by_index(i).and_then(|mut e| Ok(e.read_to_end(&mut bytes)?)).map_err(|e| bad(format!("{name}: {e}")))?;
        if let Some(want) = want
            && *want != b64_hash(&bytes)
        {
            return Err(bad(format!("{name} does not match the hash in its RECORD; the wheel is corrupt")));
        }
        let bytes = if rewrite { rewrite_shebang(bytes, &shebang) } else { bytes };
        record.push((dest.clone(), b64_hash(&bytes), bytes.len() as u64));
        staged.push(stage(&dest, Content::Bytes(bytes), executable)?);
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
            staged.push(stage(&dest, Content::Bytes(body.into_bytes()), true)?);
        }
    }

    let installer = b"oxbuild\n";
    let installer_rel = format!("{site}/{dist_info}/INSTALLER");
    record.push((installer_rel.clone(), b64_hash(installer), installer.len() as u64));
    staged.push(stage(&installer_rel, Content::Bytes(installer.to_vec()), false)?);

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
    staged.push(stage(&format!("{site}/{dist_info}/RECORD"), Content::Bytes(text.into_bytes()), false)?);
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

fn stage(rel: &str, content: Content, executable: bool) -> Result<Staged, Error> {
    // Every destination is checked again here, whatever computed it.
    let safe = !rel.contains('\\')
        && Path::new(rel).components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if !safe {
        return Err(Error::Package(format!("refusing to write `{rel}`: it would land outside the environment")));
    }
    Ok(Staged { rel: rel.to_string(), content, executable })
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
    use std::io::Write;

    use super::*;

    #[test]
    fn build_tags_sort_as_pep_427_says() {
        let build = |f: &str| WheelName::parse(f).unwrap().build;
        assert_eq!(build("a-1.0-py3-none-any.whl"), None);
        assert_eq!(build("a-1.0-10b-py3-none-any.whl"), Some((10, "b".to_string())));
        assert!(build("a-1.0-10-py3-none-any.whl") > build("a-1.0-9-py3-none-any.whl"), "numerically, not as text");
        assert!(build("a-1.0-1-py3-none-any.whl") > build("a-1.0-py3-none-any.whl"));
    }

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
        let wheel = b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\n";
        zip.start_file(format!("{stem}.dist-info/WHEEL"), opts).unwrap();
        zip.write_all(wheel).unwrap();
        record.push_str(&format!("{stem}.dist-info/WHEEL,sha256={},{}\n", b64_hash(wheel), wheel.len()));
        record.push_str(&format!("{stem}.dist-info/RECORD,,\n"));
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
        let staged = install(&whl, "demo_pkg-1.0-py3-none-any.whl", &venv()).unwrap();
        let rels: Vec<&str> = staged.iter().map(|s| s.rel.as_str()).collect();
        assert!(rels.contains(&"lib/python3.11/site-packages/demo_pkg/__init__.py"), "{rels:?}");
        assert_eq!(text(&staged, "lib/python3.11/site-packages/demo_pkg/__init__.py"), "def main():\n    return 0\n");
        let tool = text(&staged, "bin/demo-tool");
        assert!(tool.starts_with("#!/opt/venv/bin/python\n"), "{tool}");
        let demo = text(&staged, "bin/demo");
        assert!(demo.contains("from demo_pkg import main") && demo.contains("sys.exit(main())"), "{demo}");
        assert!(staged.iter().find(|s| s.rel == "bin/demo").unwrap().executable);
        let record = text(&staged, "lib/python3.11/site-packages/demo_pkg-1.0.dist-info/RECORD");
        assert!(record.contains("../../../bin/demo,sha256="), "{record}");
        assert!(record.contains("demo_pkg-1.0.dist-info/INSTALLER,sha256="), "{record}");
        let init_hash = b64_hash(b"def main():\n    return 0\n");
        assert!(record.contains(&format!("demo_pkg/__init__.py,sha256={init_hash},25\n")), "{record}");
        assert_eq!(text(&staged, "lib/python3.11/site-packages/demo_pkg-1.0.dist-info/INSTALLER"), "oxbuild\n");
    }

    /// The content of an installed file, read the way the layer writer reads it.
    fn text(staged: &[Staged], rel: &str) -> String {
        let found = staged.iter().find(|s| s.rel == rel).unwrap_or_else(|| panic!("{rel} was not installed"));
        match &found.content {
            Content::Bytes(b) => String::from_utf8(b.clone()).unwrap(),
            Content::Entry(e) => {
                let mut out = String::new();
                e.open().unwrap().read_to_string(&mut out).unwrap();
                out
            }
        }
    }

    /// A file the RECORD does not list was added after the wheel was built:
    /// refused, naming it, rather than installed unchecked.
    #[test]
    fn a_file_missing_from_record_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sly-1.0-py3-none-any.whl");
        let mut zip = zip::ZipWriter::new(fs::File::create(&path).unwrap());
        let opts = zip::write::SimpleFileOptions::default();
        for (name, data) in [
            ("sly/__init__.py", &b"x = 1\n"[..]),
            ("sly/extra.pth", b"import os\n"),
            ("sly-1.0.dist-info/WHEEL", b"Wheel-Version: 1.0\n"),
        ] {
            zip.start_file(name, opts).unwrap();
            zip.write_all(data).unwrap();
        }
        zip.start_file("sly-1.0.dist-info/RECORD", opts).unwrap();
        let record = format!(
            "sly/__init__.py,sha256={},6\nsly-1.0.dist-info/WHEEL,sha256={},19\nsly-1.0.dist-info/RECORD,,\n",
            b64_hash(b"x = 1\n"),
            b64_hash(b"Wheel-Version: 1.0\n")
        );
        zip.write_all(record.as_bytes()).unwrap();
        zip.finish().unwrap();
        let e = install(&path, "sly-1.0-py3-none-any.whl", &venv()).unwrap_err().to_string();
        assert!(e.contains("sly/extra.pth") && e.contains("not listed in its RECORD"), "{e}");
    }

    /// A file whose bytes differ from its RECORD hash is left in the wheel at
    /// install time and caught as it is streamed, whether stored or deflated.
    #[test]
    fn files_that_do_not_match_their_record_are_caught_when_read() {
        let dir = tempfile::tempdir().unwrap();
        for method in [zip::CompressionMethod::Stored, zip::CompressionMethod::Deflated] {
            let path = dir.path().join("bad-1.0-py3-none-any.whl");
            let mut zip = zip::ZipWriter::new(fs::File::create(&path).unwrap());
            let opts = zip::write::SimpleFileOptions::default().compression_method(method);
            zip.start_file("bad/__init__.py", opts).unwrap();
            zip.write_all(&b"print('tampered')\n".repeat(50)).unwrap();
            zip.start_file("bad-1.0.dist-info/WHEEL", opts).unwrap();
            zip.write_all(b"Wheel-Version: 1.0\n").unwrap();
            zip.start_file("bad-1.0.dist-info/RECORD", opts).unwrap();
            let honest = b64_hash(&b"print('original')\n".repeat(50));
            let wheel = b64_hash(b"Wheel-Version: 1.0\n");
            let record = format!("bad/__init__.py,sha256={honest},900\nbad-1.0.dist-info/WHEEL,sha256={wheel},19\n");
            zip.write_all(record.as_bytes()).unwrap();
            zip.finish().unwrap();
            let staged = install(&path, "bad-1.0-py3-none-any.whl", &venv()).unwrap();
            let entry = staged.iter().find(|s| s.rel.ends_with("bad/__init__.py")).unwrap();
            let Content::Entry(e) = &entry.content else { panic!("{method:?}: expected a streamed entry") };
            let err = e.open().unwrap().read_to_end(&mut Vec::new()).unwrap_err();
            let corrupt = err.get_ref().and_then(|i| i.downcast_ref::<Corrupt>()).expect("a Corrupt error");
            assert!(corrupt.0.contains("bad/__init__.py does not match the hash in its RECORD"), "{corrupt}");
        }
    }

    /// Damaged deflate data is the wheel's fault too, not an I/O error.
    #[test]
    fn a_damaged_deflate_stream_is_reported_as_a_corrupt_wheel() {
        let dir = tempfile::tempdir().unwrap();
        let content: Vec<u8> = (0..20_000u32).flat_map(|i| i.wrapping_mul(2_654_435_761).to_le_bytes()).collect();
        let whl = make_wheel(dir.path(), "dmg-1.0-py3-none-any.whl", &[("dmg/data.bin", &content)]);
        let start = {
            let mut zip = zip::ZipArchive::new(fs::File::open(&whl).unwrap()).unwrap();
            zip.by_name("dmg/data.bin").map(|e| e.data_start().unwrap()).unwrap()
        };
        let mut bytes = fs::read(&whl).unwrap();
        for b in &mut bytes[start as usize + 10..start as usize + 400] {
            *b = 0xff;
        }
        fs::write(&whl, bytes).unwrap();
        let staged = install(&whl, "dmg-1.0-py3-none-any.whl", &venv()).unwrap();
        let entry = staged.iter().find(|s| s.rel.ends_with("dmg/data.bin")).unwrap();
        let Content::Entry(e) = &entry.content else { panic!("expected a streamed entry") };
        let err = e.open().unwrap().read_to_end(&mut Vec::new()).unwrap_err();
        let corrupt = err.get_ref().and_then(|i| i.downcast_ref::<Corrupt>());
        assert!(corrupt.is_some_and(|c| c.0.contains("dmg/data.bin")), "{err:?}");
    }

    #[test]
    fn backslash_traversal_and_odd_script_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let whl = make_wheel(dir.path(), "bs-1.0-py3-none-any.whl", &[("..\\..\\..\\escaped", b"x")]);
        let e = install(&whl, "bs-1.0-py3-none-any.whl", &venv()).unwrap_err().to_string();
        assert!(e.contains("outside the environment"), "{e}");
        let whl = make_wheel(
            dir.path(),
            "ep-1.0-py3-none-any.whl",
            &[
                ("ep/__init__.py", b""),
                ("ep-1.0.dist-info/entry_points.txt", b"[console_scripts]\n../../../x = ep:main\n"),
            ],
        );
        let e = install(&whl, "ep-1.0-py3-none-any.whl", &venv()).unwrap_err().to_string();
        assert!(e.contains("not a plain file name"), "{e}");
        assert!(!dir.path().join("escaped").exists() && !dir.path().join("x").exists());
    }

    #[test]
    fn absolute_paths_symlink_entries_and_truncated_zips_are_handled() {
        let dir = tempfile::tempdir().unwrap();
        let whl = make_wheel(dir.path(), "abs-1.0-py3-none-any.whl", &[("/etc/cron.d/evil", b"x")]);
        let e = install(&whl, "abs-1.0-py3-none-any.whl", &venv()).unwrap_err().to_string();
        assert!(e.contains("/etc/cron.d/evil"), "{e}");

        // A symlink entry is installed as the plain file zip stores (its
        // target as text), never as a link out of the environment.
        let path = dir.path().join("ln-1.0-py3-none-any.whl");
        let mut zip = zip::ZipWriter::new(fs::File::create(&path).unwrap());
        let opts = zip::write::SimpleFileOptions::default().unix_permissions(0o644);
        zip.add_symlink("ln/link", "/etc/passwd", opts).unwrap();
        let wheel = b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\n";
        zip.start_file("ln-1.0.dist-info/WHEEL", opts).unwrap();
        zip.write_all(wheel).unwrap();
        let record = format!(
            "ln/link,sha256={},11\nln-1.0.dist-info/WHEEL,sha256={},{}\nln-1.0.dist-info/RECORD,,\n",
            b64_hash(b"/etc/passwd"),
            b64_hash(wheel),
            wheel.len()
        );
        zip.start_file("ln-1.0.dist-info/RECORD", opts).unwrap();
        zip.write_all(record.as_bytes()).unwrap();
        zip.finish().unwrap();
        let staged = install(&path, "ln-1.0-py3-none-any.whl", &venv()).unwrap();
        // (Content has no link variant: a staged file is always bytes.)
        let link = staged.iter().find(|s| s.rel.ends_with("ln/link")).expect("installed");
        let len = match &link.content {
            Content::Bytes(b) => b.len() as u64,
            Content::Entry(e) => e.size,
        };
        assert_eq!(len, "/etc/passwd".len() as u64, "the target as text");

        // A wheel cut short is not a zip: named, nothing installed.
        let good = make_wheel(dir.path(), "cut-1.0-py3-none-any.whl", &[("cut/__init__.py", b"x = 1\n")]);
        let bytes = fs::read(&good).unwrap();
        fs::write(&good, &bytes[..bytes.len() / 2]).unwrap();
        let e = install(&good, "cut-1.0-py3-none-any.whl", &venv()).unwrap_err().to_string();
        assert!(e.contains("cut-1.0-py3-none-any.whl") && e.contains("not a valid zip"), "{e}");
    }

    #[test]
    fn escaping_entries_and_corrupt_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let whl = make_wheel(dir.path(), "evil-1.0-py3-none-any.whl", &[("../../etc/cron.d/evil", b"x")]);
        let e = install(&whl, "evil-1.0-py3-none-any.whl", &venv()).unwrap_err().to_string();
        assert!(e.contains("outside the environment") && e.contains("../../etc/cron.d/evil"), "{e}");
        assert!(!dir.path().join("etc").exists());
    }
}
