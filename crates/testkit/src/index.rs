//! A package index for tests: a PEP 503 simple index over a directory of
//! wheels, on a loopback port the operating system picks. It can demand HTTP
//! basic auth, send file downloads to another host with a redirect (as
//! indexes that keep files on a CDN do), and it records what every request
//! carried, so a test can prove where credentials went.
//!
//! File links percent-encode the name (`torch-2.3.0%2Bcpu-…`), as real
//! indexes do for local versions.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine as _;

/// How an index behaves.
#[derive(Debug, Clone, Default)]
pub struct IndexOptions {
    /// Demand these credentials (HTTP basic auth) on every request.
    pub auth: Option<(String, String)>,
    /// Answer file downloads with a redirect to this base URL
    /// (`http://host:port/`), where the same `files/NAME` is served.
    pub files_at: Option<String>,
    /// Write pages as some index servers do: a `<base href>` that the links
    /// are relative to, and character references in attribute values
    /// (`?via=index&amp;n=1`).
    pub base_and_entities: bool,
    /// Serve no core metadata beside wheels (PEP 658), as older indexes do.
    pub no_metadata: bool,
    /// Answer a `Range: bytes=A-B` or `bytes=-N` request for a file with
    /// that part (206), as PyPI's file host does.
    pub ranges: bool,
}

/// One request the index answered.
#[derive(Debug, Clone)]
pub struct IndexRequest {
    /// Method and path, e.g. `GET /simple/flask/`.
    pub line: String,
    /// The `Authorization` header, if one was sent.
    pub authorization: Option<String>,
    /// The status answered.
    pub status: u16,
}

struct Shared {
    root: PathBuf,
    options: IndexOptions,
    seen: Mutex<Vec<IndexRequest>>,
}

/// A running index; stops when dropped.
pub struct PackageIndex {
    addr: String,
    shared: Arc<Shared>,
    _server: crate::server::Server,
    _root: tempfile::TempDir,
}

fn percent_encode(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(v) = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The project a wheel or sdist file belongs to, normalised (PEP 503).
fn project_of(file: &str) -> String {
    let name = file.split('-').next().unwrap_or("");
    let mut out = String::new();
    for c in name.chars() {
        match c {
            '-' | '_' | '.' if !out.ends_with('-') => out.push('-'),
            '-' | '_' | '.' => {}
            c => out.push(c.to_ascii_lowercase()),
        }
    }
    out
}

impl PackageIndex {
    /// An index over the wheels and sdists in `files`, anonymous.
    pub fn start(files: &Path) -> PackageIndex {
        PackageIndex::start_with(files, IndexOptions::default())
    }

    /// An index over the files in `files`, behaving as `options` say.
    pub fn start_with(files: &Path, options: IndexOptions) -> PackageIndex {
        let root = tempfile::tempdir().expect("a temporary directory");
        let served = root.path().join("files");
        std::fs::create_dir_all(&served).unwrap();
        let mut projects: BTreeMap<String, String> = BTreeMap::new();
        let mut names: Vec<String> = std::fs::read_dir(files)
            .unwrap_or_else(|e| panic!("{}: {e}", files.display()))
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for name in names {
            let bytes = std::fs::read(files.join(&name)).unwrap();
            std::fs::write(served.join(&name), &bytes).unwrap();
            let sha = sha256_hex(&bytes);
            let href = if options.base_and_entities {
                format!("{}?via=index&amp;n=1#sha256={sha}", percent_encode(&name))
            } else {
                format!("../../files/{}#sha256={sha}", percent_encode(&name))
            };
            // A wheel's core metadata beside it (PEP 658), and its
            // Requires-Python on the link (PEP 503), as PyPI serves them.
            let mut attrs = String::new();
            if let Some(metadata) = name.ends_with(".whl").then(|| wheel_metadata(&bytes)).flatten() {
                if let Some(python) = metadata.lines().find_map(|l| l.strip_prefix("Requires-Python:")) {
                    attrs.push_str(&format!(" data-requires-python=\"{}\"", escape(python.trim())));
                }
                if !options.no_metadata {
                    let digest = sha256_hex(metadata.as_bytes());
                    std::fs::write(served.join(format!("{name}.metadata")), metadata).unwrap();
                    attrs.push_str(&format!(
                        " data-core-metadata=\"sha256={digest}\" data-dist-info-metadata=\"sha256={digest}\""
                    ));
                }
            }
            projects.entry(project_of(&name)).or_default().push_str(&format!("<a href=\"{href}\"{attrs}>{name}</a>\n"));
        }
        for (project, links) in projects {
            let dir = root.path().join("simple").join(project);
            std::fs::create_dir_all(&dir).unwrap();
            let head = if options.base_and_entities { "<head><base href=\"/files/\"></head>" } else { "" };
            std::fs::write(
                dir.join("index.html"),
                format!("<!DOCTYPE html>\n<html>{head}<body>\n{links}</body></html>\n"),
            )
            .unwrap();
        }
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let addr = listener.local_addr().unwrap().to_string();
        let shared = Arc::new(Shared { root: root.path().to_path_buf(), options, seen: Mutex::new(Vec::new()) });
        let s = shared.clone();
        let server = crate::server::Server::start(listener, move |conn| {
            let _ = serve(conn, &s);
        });
        PackageIndex { addr, shared, _server: server, _root: root }
    }

    /// The index URL: `http://127.0.0.1:PORT/simple/`.
    pub fn url(&self) -> String {
        format!("http://{}/simple/", self.addr)
    }

    /// The server's base URL: `http://127.0.0.1:PORT/`.
    pub fn base(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// `host:port`.
    pub fn host(&self) -> &str {
        &self.addr
    }

    /// Marks every file of `project` as yanked (PEP 592) with `reason`.
    pub fn yank(&self, project: &str, reason: &str) {
        let page = self.shared.root.join("simple").join(project).join("index.html");
        let html = std::fs::read_to_string(&page).unwrap();
        std::fs::write(&page, html.replace("<a href=", &format!("<a data-yanked=\"{reason}\" href="))).unwrap();
    }

    /// Every request answered so far.
    /// Marks one file yanked (PEP 592), with `reason`.
    pub fn yank_file(&self, project: &str, filename: &str, reason: &str) {
        let page = self.shared.root.join("simple").join(project).join("index.html");
        let html = std::fs::read_to_string(&page).unwrap();
        let line =
            html.lines().find(|l| l.contains(&format!(">{filename}</a>"))).expect("the file is listed").to_string();
        let yanked = line.replacen("<a href=", &format!("<a data-yanked=\"{}\" href=", escape(reason)), 1);
        std::fs::write(&page, html.replace(&line, &yanked)).unwrap();
    }

    pub fn requests(&self) -> Vec<IndexRequest> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// How many wheel files were served (200) so far.
    pub fn wheel_downloads(&self) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.status == 200 && r.line.starts_with("GET /files/") && r.line.ends_with(".whl"))
            .count()
    }
}

/// `text` for an HTML attribute value.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The METADATA file of the wheel in `bytes`, if it has one.
fn wheel_metadata(bytes: &[u8]) -> Option<String> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).ok()?;
    let name = zip
        .file_names()
        .filter_map(Result::ok)
        .find(|n| n.ends_with(".dist-info/METADATA") && n.matches('/').count() == 1)?
        .into_owned();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut zip.by_name(&name).ok()?, &mut text).ok()?;
    Some(text)
}

/// Writes a minimal wheel into `dir` (one module, METADATA, WHEEL, RECORD)
/// for `name` `version` with `tag` (`py3-none-any`), its `Requires-Dist`
/// lines and `Requires-Python`; returns its path. For index tests whose
/// data the test controls.
pub fn make_wheel(
    dir: &Path,
    name: &str,
    version: &str,
    tag: &str,
    requires_dist: &[&str],
    requires_python: Option<&str>,
) -> PathBuf {
    use std::io::Write as _;
    std::fs::create_dir_all(dir).unwrap();
    let stem = name.replace('-', "_");
    let path = dir.join(format!("{stem}-{version}-{tag}.whl"));
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let options = zip::write::SimpleFileOptions::default();
    let info = format!("{stem}-{version}.dist-info");
    let mut metadata = format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n");
    if let Some(p) = requires_python {
        metadata.push_str(&format!("Requires-Python: {p}\n"));
    }
    for r in requires_dist {
        metadata.push_str(&format!("Requires-Dist: {r}\n"));
    }
    let files = [
        (format!("{stem}.py"), format!("VERSION = {version:?}\n")),
        (format!("{info}/METADATA"), metadata),
        (format!("{info}/WHEEL"), format!("Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: {tag}\n")),
    ];
    let mut record = String::new();
    for (file, text) in &files {
        zip.start_file(file.as_str(), options).unwrap();
        zip.write_all(text.as_bytes()).unwrap();
        let hash = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(<sha2::Sha256 as sha2::Digest>::digest(text.as_bytes()));
        record.push_str(&format!("{file},sha256={hash},{}\n", text.len()));
    }
    record.push_str(&format!("{info}/RECORD,,\n"));
    zip.start_file(format!("{info}/RECORD"), options).unwrap();
    zip.write_all(record.as_bytes()).unwrap();
    zip.finish().unwrap();
    path
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The span `start..end` a Range header value (`bytes=A-B`, `bytes=A-`,
/// `bytes=-N`) asks of a file of `len` bytes.
fn part(range: &str, len: u64) -> Option<(u64, u64)> {
    let (a, b) = range.strip_prefix("bytes=")?.split_once('-')?;
    let (start, end) = match (a.parse::<u64>().ok(), b.parse::<u64>().ok()) {
        (None, Some(n)) => (len.saturating_sub(n), len),
        (Some(a), Some(b)) => (a, (b + 1).min(len)),
        (Some(a), None) => (a, len),
        (None, None) => return None,
    };
    (start < end).then_some((start, end))
}

fn serve(conn: TcpStream, s: &Shared) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut authorization = None;
    let mut range = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" {
            break;
        }
        if let Some((k, v)) = header.split_once(':')
            && k.trim().eq_ignore_ascii_case("authorization")
        {
            authorization = Some(v.trim().to_string());
        }
        if let Some((k, v)) = header.split_once(':')
            && k.trim().eq_ignore_ascii_case("range")
        {
            range = Some(v.trim().to_string());
        }
    }
    let line = line.trim_end().rsplit_once(' ').map(|(l, _)| l.to_string()).unwrap_or_default();
    let path = line.split_whitespace().nth(1).unwrap_or("/").split('?').next().unwrap_or("/").to_string();
    let expected = s
        .options
        .auth
        .as_ref()
        .map(|(u, p)| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))));
    let (status, head, body): (u16, String, Vec<u8>) = if expected.is_some() && authorization != expected {
        (401, "WWW-Authenticate: Basic realm=\"index\"\r\n".into(), Vec::new())
    } else if let (Some(files_at), Some(name)) = (&s.options.files_at, path.strip_prefix("/files/")) {
        (302, format!("Location: {files_at}files/{name}\r\n"), Vec::new())
    } else {
        let rel = percent_decode(path.trim_start_matches('/'));
        let mut file = s.root.join(&rel);
        if rel.contains("..") {
            file = s.root.join("missing");
        } else if file.is_dir() {
            file = file.join("index.html");
        }
        match std::fs::read(&file) {
            Ok(bytes) => {
                let kind = if file.extension().is_some_and(|e| e == "html") {
                    "text/html"
                } else {
                    "application/octet-stream"
                };
                match range.filter(|_| s.options.ranges).and_then(|r| part(&r, bytes.len() as u64)) {
                    Some((start, end)) => (
                        206,
                        format!("Content-Type: {kind}\r\nContent-Range: bytes {start}-{}/{}\r\n", end - 1, bytes.len()),
                        bytes[start as usize..end as usize].to_vec(),
                    ),
                    None => (200, format!("Content-Type: {kind}\r\n"), bytes),
                }
            }
            Err(_) => (404, String::new(), Vec::new()),
        }
    };
    s.seen.lock().unwrap().push(IndexRequest { line, authorization, status });
    let reason = match status {
        200 => "OK",
        206 => "Partial Content",
        302 => "Found",
        401 => "Unauthorized",
        _ => "Not Found",
    };
    let mut out = conn;
    out.write_all(
        format!("HTTP/1.1 {status} {reason}\r\n{head}Content-Length: {}\r\nConnection: close\r\n\r\n", body.len())
            .as_bytes(),
    )?;
    out.write_all(&body)?;
    out.flush()
}
