//! The `node_modules` layer: every selected package's tarball fetched from
//! its registry (or the blob store), checked against the lock's integrity,
//! and unpacked to the exact path the lock gives it, with the `.bin` links
//! npm would make. No npm runs and no install script runs.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use futures_util::StreamExt as _;
use oxbuild_image::{BlobStore, Digest, LayerBlob, LayerBuilder, LayerCompression, Owner};
use sha2::Digest as _;

use crate::lockfile::Package;
use crate::npmrc::Npmrc;
use crate::{Error, Plan};

/// Tarballs fetched at once.
const CONCURRENT: usize = 8;

/// A package installed into the layer, for the report and the SBOM.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Installed {
    /// `@scope/name`.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Where it went, relative to the modules directory.
    pub path: String,
    /// The tarball's sha256 (hex).
    pub sha256: String,
    /// The tarball's file name.
    pub file: String,
    /// Where it was fetched from (no credentials).
    pub url: String,
    /// The registry it came from.
    pub registry: String,
    /// Its license, as the lock records it.
    pub license: Option<String>,
    /// What it depends on.
    pub dependencies: Vec<String>,
}

/// The finished layer.
#[derive(Debug, Clone)]
pub struct Written {
    /// The blob.
    pub blob: LayerBlob,
    /// What is in it.
    pub installed: Vec<Installed>,
    /// Tarballs that came over the network this time.
    pub downloaded: usize,
    /// What will not work as installed: an accepted install script that
    /// would have built a native addon.
    pub warnings: Vec<String>,
    /// The `.bin` links it made (absolute paths): the commands that the
    /// top `node_modules/.bin`, on the image's PATH, offers.
    pub programs: Vec<String>,
}

/// An integrity string's strongest hash that oxbuild checks.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Integrity {
    algorithm: &'static str,
    expected: Vec<u8>,
}

impl Integrity {
    /// The strongest of the hashes in an SRI string (`sha512-… sha1-…`).
    fn parse(sri: &str) -> Option<Integrity> {
        let mut best: Option<(usize, Integrity)> = None;
        for part in sri.split_whitespace() {
            let Some((alg, b64)) = part.split_once('-') else { continue };
            let rank = ["sha1", "sha256", "sha384", "sha512"].iter().position(|a| *a == alg);
            let b64 = b64.split('?').next().unwrap_or(b64);
            let (Some(rank), Ok(expected)) = (rank, base64::engine::general_purpose::STANDARD.decode(b64)) else {
                continue;
            };
            let algorithm = ["sha1", "sha256", "sha384", "sha512"][rank];
            if best.as_ref().is_none_or(|(r, _)| rank > *r) {
                best = Some((rank, Integrity { algorithm, expected }));
            }
        }
        best.map(|(_, i)| i)
    }

    fn hasher(&self) -> Hasher {
        match self.algorithm {
            "sha1" => Hasher::Sha1(sha1::Sha1::default()),
            "sha256" => Hasher::Sha256(sha2::Sha256::new()),
            "sha384" => Hasher::Sha384(sha2::Sha384::new()),
            _ => Hasher::Sha512(sha2::Sha512::new()),
        }
    }

    /// The name of the cache entry mapping this integrity to a stored blob.
    fn key(&self) -> String {
        format!("{}-{}", self.algorithm, hex::encode(&self.expected))
    }
}

enum Hasher {
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
}

impl Hasher {
    fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha1(h) => sha1::Digest::update(h, bytes),
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha384(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }
    fn finish(self) -> Vec<u8> {
        match self {
            Hasher::Sha1(h) => sha1::Digest::finalize(h).to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Sha384(h) => h.finalize().to_vec(),
            Hasher::Sha512(h) => h.finalize().to_vec(),
        }
    }
}

/// One try of a download that did not succeed.
enum Attempt {
    Again(String, Option<std::time::Duration>),
    Final(Error),
}

impl oxbuild_http::Transient for Attempt {
    /// A host that does not exist is not tried again.
    fn is_transient(&self) -> bool {
        matches!(self, Attempt::Again(why, _) if !oxbuild_http::unknown_host(why))
    }
    fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Attempt::Again(_, wait) => *wait,
            Attempt::Final(_) => None,
        }
    }
}

/// `url` as shown: no user info, no query (tokens sometimes ride there).
fn shown(url: &url::Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.to_string()
}

/// Where a package's tarball is: the lock's `resolved`, moved to the
/// configured registry when it names npm's public one and another is
/// configured (npm's `replace-registry-host`), else made from the name.
pub fn tarball_url(p: &Package, npmrc: &Npmrc) -> Result<(url::Url, String), Error> {
    let registry = npmrc.registry_for(&p.name);
    let what = format!("{}@{} ({})", p.name, p.version, p.path);
    let unscoped = p.name.rsplit('/').next().unwrap_or(&p.name);
    let url = match &p.resolved {
        Some(r) if r.starts_with("https://registry.npmjs.org/") && registry != crate::npmrc::DEFAULT_REGISTRY => {
            format!("{registry}{}", &r["https://registry.npmjs.org/".len()..])
        }
        Some(r) if r.starts_with("http://") || r.starts_with("https://") => r.clone(),
        Some(r) => {
            return Err(Error::Lock(format!(
                "{what} is resolved to `{r}`, which is not a registry tarball (git, file and directory sources are not installed): publish it to a registry and lock that version"
            )));
        }
        None => format!("{registry}{}/-/{unscoped}-{}.tgz", p.name, p.version),
    };
    let url = url::Url::parse(&url).map_err(|e| Error::Lock(format!("{what}: its tarball URL: {e}")))?;
    Ok((url, registry))
}

/// The stored tarball for `integrity`, when one was fetched before.
fn remembered(cache: Option<&Path>, integrity: &Integrity, store: &BlobStore) -> Option<Digest> {
    let path = cache?.join(integrity.key());
    let digest: Digest = std::fs::read_to_string(path).ok()?.trim().parse().ok()?;
    store.contains(&digest).then_some(digest)
}

fn remember(cache: Option<&Path>, integrity: &Integrity, digest: &Digest) {
    let Some(dir) = cache else { return };
    let _ = std::fs::create_dir_all(dir);
    if let Ok(mut tmp) = tempfile::NamedTempFile::new_in(dir)
        && tmp.write_all(digest.as_str().as_bytes()).is_ok()
    {
        let _ = tmp.persist(dir.join(integrity.key()));
    }
}

/// The tarball of `p` in the store, checked against its integrity; and
/// whether it was downloaded.
async fn fetch(
    p: &Package,
    http: &oxbuild_http::Client,
    npmrc: &Npmrc,
    store: &BlobStore,
    cache: Option<&Path>,
) -> Result<(Digest, bool), Error> {
    let what = format!("{}@{} ({})", p.name, p.version, p.path);
    let sri = p.integrity.as_deref().ok_or_else(|| {
        Error::Lock(format!(
            "{what} has no `integrity` in the lock, so its tarball cannot be checked: run `npm install` to write it"
        ))
    })?;
    let integrity = Integrity::parse(sri)
        .ok_or_else(|| Error::Lock(format!("{what}: its integrity `{sri}` names no sha1, sha256, sha384 or sha512")))?;
    if let Some(d) = remembered(cache, &integrity, store) {
        return Ok((d, false));
    }
    let (url, _) = tarball_url(p, npmrc)?;
    let auth = npmrc.authorization(&url);
    let attempt = || async {
        let mut req = http.reqwest().get(url.clone());
        if let Some(a) = &auth {
            req = req.header(reqwest::header::AUTHORIZATION, a);
        }
        let resp = req.send().await.map_err(|e| Attempt::Again(oxbuild_http::describe(&e), None))?;
        let status = resp.status();
        if status.is_server_error() || status == 429 {
            return Err(Attempt::Again(format!("{status}"), oxbuild_http::retry_after(resp.headers())));
        }
        if !status.is_success() {
            let hint = match status.as_u16() {
                401 | 403 => ": the registry refused the request; check the token for it in .npmrc",
                404 => ": the registry has no such tarball",
                _ => "",
            };
            return Err(Attempt::Final(Error::Fetch(format!("{what}: {} answered {status}{hint}", shown(&url)))));
        }
        let mut out = store.writer().map_err(|e| Attempt::Final(e.into()))?;
        let mut hasher = integrity.hasher();
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| Attempt::Again(oxbuild_http::describe(&e), None))?;
            hasher.update(&chunk);
            out.write_all(&chunk)
                .map_err(|e| Attempt::Final(Error::Fetch(format!("{what}: writing into the cache: {e}"))))?;
        }
        Ok((out, hasher.finish()))
    };
    let (out, got) = http.retrying(attempt).await.map_err(|a| match a {
        Attempt::Final(e) => e,
        Attempt::Again(why, _) => Error::Fetch(format!("{what}: downloading {}: {why}", shown(&url))),
    })?;
    if got != integrity.expected {
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        return Err(Error::Integrity(format!(
            "{what}: the tarball from {} does not match the lock's integrity: the lock says {}-{}, the file is {}-{}; nothing was installed. If the lock was edited by hand, run `npm install` to restore it",
            shown(&url),
            integrity.algorithm,
            b64(&integrity.expected),
            integrity.algorithm,
            b64(&got)
        )));
    }
    let (digest, _) = out.commit_computed()?;
    remember(cache, &integrity, &digest);
    Ok((digest, true))
}

/// A path inside a package tarball, without its first component (npm's
/// tarballs put everything under `package/`, a few under another name),
/// when it is safe to unpack.
fn inside(path: &Path) -> Option<String> {
    let mut parts = path.components().skip(1);
    let mut out = Vec::new();
    for c in parts.by_ref() {
        match c {
            std::path::Component::Normal(s) => out.push(s.to_str()?.to_string()),
            std::path::Component::CurDir => {}
            _ => return None,
        }
    }
    (!out.is_empty()).then(|| out.join("/"))
}

/// `a/./b/../c` as `a/c`; None when it leaves its root.
fn normal(path: &str) -> Option<String> {
    let mut out: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            other => out.push(other),
        }
    }
    Some(out.join("/"))
}

/// Unpacks the tarball at `tgz` into `stage`, returning the files as
/// (path inside the package, staged file, executable).
fn unpack(tgz: &Path, stage: &Path, what: &str) -> Result<Vec<(String, PathBuf, bool)>, Error> {
    let bad = |e: String| Error::Package(format!("{what}: its tarball: {e}"));
    let file = std::fs::File::open(tgz).map_err(|e| bad(e.to_string()))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut files: BTreeMap<String, (PathBuf, bool)> = BTreeMap::new();
    for (i, entry) in archive.entries().map_err(|e| bad(e.to_string()))?.enumerate() {
        let mut entry = entry.map_err(|e| bad(e.to_string()))?;
        // npm installs regular files only; links and devices in a tarball are dropped.
        if !matches!(entry.header().entry_type(), tar::EntryType::Regular | tar::EntryType::Continuous) {
            continue;
        }
        let path = entry.path().map_err(|e| bad(e.to_string()))?.into_owned();
        let Some(rel) = inside(&path) else { continue };
        let exec = entry.header().mode().map(|m| m & 0o111 != 0).unwrap_or(false);
        let staged = stage.join(format!("{i}"));
        let mut out = std::fs::File::create(&staged).map_err(|e| bad(e.to_string()))?;
        let mut buf = vec![0; 64 << 10];
        loop {
            let n = entry.read(&mut buf).map_err(|e| bad(e.to_string()))?;
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n]).map_err(|e| bad(e.to_string()))?;
        }
        // A path given twice: the last one wins, as when npm unpacks it.
        files.insert(rel, (staged, exec));
    }
    Ok(files.into_iter().map(|(rel, (staged, exec))| (rel, staged, exec)).collect())
}

/// How the layer is written.
#[derive(Debug, Clone)]
pub struct LayerSettings {
    /// Where `node_modules` goes: an absolute path in the image (`/app`).
    pub modules_dir: String,
    /// The mtime of every entry.
    pub epoch: u64,
    /// How the blob is compressed.
    pub compression: LayerCompression,
    /// Where tarballs already in the store are remembered by integrity.
    pub cache: Option<PathBuf>,
}

/// Fetches, checks and unpacks every package of `plan` into a layer.
pub async fn write(
    plan: &Plan,
    settings: &LayerSettings,
    http: &oxbuild_http::Client,
    npmrc: &Npmrc,
    store: &BlobStore,
) -> Result<Written, Error> {
    let cache = settings.cache.as_deref();
    // Boxed futures, made first and run 8 at a time: the stream's type then
    // holds no closure over borrowed packages, which a Send future needs.
    type Job<'a> = futures_util::future::BoxFuture<'a, Result<(usize, Digest, bool), Error>>;
    let mut jobs: Vec<Job<'_>> = Vec::new();
    for (i, p) in plan.packages.iter().enumerate().filter(|(_, p)| !p.link) {
        jobs.push(Box::pin(async move { fetch(p, http, npmrc, store, cache).await.map(|(d, new)| (i, d, new)) }));
    }
    let fetched: Vec<Result<(usize, Digest, bool), Error>> =
        futures_util::stream::iter(jobs).buffer_unordered(CONCURRENT).collect().await;
    let mut digests: BTreeMap<usize, (Digest, bool)> = BTreeMap::new();
    let mut failed = Vec::new();
    for f in fetched {
        match f {
            Ok((i, d, new)) => {
                digests.insert(i, (d, new));
            }
            Err(e) => failed.push(e),
        }
    }
    match failed.len() {
        0 => {}
        1 => return Err(failed.remove(0)),
        n => {
            // A refused token fails every package alike: a few say it.
            let shown: Vec<String> = failed.iter().take(5).map(|e| e.to_string()).collect();
            let more = if n > 5 { format!("\n  ... and {} more", n - 5) } else { String::new() };
            return Err(Error::Fetch(format!(
                "{n} packages could not be fetched:\n  - {}{more}",
                shown.join("\n  - ")
            )));
        }
    }
    let mut fetched: BTreeMap<usize, Fetched> = BTreeMap::new();
    for (i, (digest, downloaded)) in digests {
        let (url, registry) = tarball_url(&plan.packages[i], npmrc)?;
        fetched.insert(i, Fetched { digest, downloaded, url: shown(&url), registry });
    }
    let packages = plan.packages.clone();
    let (store, modules) = (store.clone(), settings.modules_dir.trim_matches('/').to_string());
    let (epoch, compression) = (settings.epoch, settings.compression);
    tokio::task::spawn_blocking(move || assemble(&packages, &fetched, &modules, &store, epoch, compression))
        .await
        .map_err(|e| Error::Package(format!("writing the node_modules layer: {e}")))?
}

/// A package's tarball in the store, and where it came from.
struct Fetched {
    digest: Digest,
    downloaded: bool,
    url: String,
    registry: String,
}

/// Whether `p` depends on a package made for one platform (`os` or `cpu`
/// in the lock) that is `installed` for this one: where prebuilt binaries
/// come from (msgpackr-extract's @msgpackr-extract/msgpackr-extract-linux-x64),
/// so that its own install script has nothing left to build.
fn platform_package(p: &Package, packages: &[Package], installed: impl Fn(usize) -> bool) -> bool {
    packages
        .iter()
        .enumerate()
        .any(|(j, q)| installed(j) && (!q.os.is_empty() || !q.cpu.is_empty()) && p.dependencies.contains(&q.name))
}

fn assemble(
    packages: &[Package],
    fetched: &BTreeMap<usize, Fetched>,
    modules: &str,
    store: &BlobStore,
    epoch: u64,
    compression: LayerCompression,
) -> Result<Written, Error> {
    let stage = tempfile::Builder::new()
        .prefix("oxbuild-node-")
        .tempdir()
        .map_err(|e| Error::Package(format!("a temporary directory: {e}")))?;
    let at = |rel: &str| if modules.is_empty() { rel.to_string() } else { format!("{modules}/{rel}") };
    let mut layer = LayerBuilder::new(epoch, Owner::ROOT);
    let mut installed = Vec::new();
    let mut downloaded = 0;
    let mut warnings = Vec::new();
    let mut programs = Vec::new();
    for (i, p) in packages.iter().enumerate() {
        if p.link {
            // A workspace package: a link to its directory in the app.
            let target = p.resolved.as_deref().and_then(normal).unwrap_or_default();
            let depth = p.path.matches('/').count();
            layer.symlink(&at(&p.path), &format!("{}{target}", "../".repeat(depth)), Owner::ROOT);
            continue;
        }
        let Some(Fetched { digest, downloaded: new, url, registry }) = fetched.get(&i) else { continue };
        downloaded += usize::from(*new);
        let what = format!("{}@{} ({})", p.name, p.version, p.path);
        let dir = stage.path().join(format!("p{i}"));
        std::fs::create_dir_all(&dir).map_err(|e| Error::Package(format!("{what}: {e}")))?;
        let files = unpack(&store.path(digest), &dir, &what)?;
        // A node-gyp addon whose install script would have compiled it, and
        // no prebuilt .node file: require() will fail at run time.
        let builds_addon = files.iter().any(|(rel, _, _)| rel == "binding.gyp");
        let prebuilt = files.iter().any(|(rel, _, _)| rel.ends_with(".node"))
            || platform_package(p, packages, |j| fetched.contains_key(&j));
        if p.install_script && builds_addon && !prebuilt {
            warnings.push(format!(
                "{what}: its install script builds a native addon (binding.gyp) and the package ships no prebuilt .node file, so require('{}') will fail in the image: use a version or an alternative with prebuilt binaries, or a pure-JavaScript one",
                p.name
            ));
        }
        let bins: Vec<String> = p.bin.values().filter_map(|b| normal(b)).collect();
        for (rel, staged, exec) in &files {
            // npm makes every file readable and its commands executable.
            let mode = if *exec || bins.contains(rel) { 0o755 } else { 0o644 };
            layer.file(&at(&format!("{}/{rel}", p.path)), staged, Owner::ROOT, mode);
        }
        // `.bin` links beside the package, in the node_modules that holds it.
        let parent = &p.path[..p.path.rfind("node_modules/").map(|i| i + "node_modules".len()).unwrap_or(0)];
        let pkg_in_parent = &p.path[parent.len() + 1..];
        for (name, target) in &p.bin {
            let (Some(target), false) = (normal(target), name.contains('/') || name.starts_with('.')) else {
                continue;
            };
            if files.iter().any(|(rel, _, _)| *rel == target) {
                let link = at(&format!("{parent}/.bin/{name}"));
                layer.symlink(&link, &format!("../{pkg_in_parent}/{target}"), Owner::ROOT);
                programs.push(format!("/{}", link.trim_start_matches('/')));
            }
        }
        installed.push(Installed {
            name: p.name.clone(),
            version: p.version.clone(),
            path: p.path.clone(),
            sha256: digest.hex().to_string(),
            file: url.rsplit('/').next().unwrap_or_default().to_string(),
            registry: registry.clone(),
            url: url.clone(),
            license: p.license.clone(),
            dependencies: p.dependencies.clone(),
        });
    }
    let blob = layer.write(store, compression)?;
    programs.sort();
    programs.dedup();
    Ok(Written { blob, installed, downloaded, warnings, programs })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integrity_takes_the_strongest_hash() {
        let i = Integrity::parse("sha1-AAAA sha512-q83vEQ== bogus").unwrap();
        assert_eq!((i.algorithm, i.expected.as_slice()), ("sha512", [0xab, 0xcd, 0xef, 0x11].as_slice()));
        assert_eq!(Integrity::parse("md5-AAAA"), None);
        assert_eq!(i.key(), "sha512-abcdef11");
    }

    /// msgpackr-extract builds an addon only where no package of its
    /// platform's binaries fits; the one for this platform is installed.
    #[test]
    fn a_platform_package_of_prebuilt_binaries_serves_for_the_addon() {
        let lock = r#"{"lockfileVersion": 3, "packages": {
            "": {"dependencies": {"msgpackr-extract": "3.0.3"}},
            "node_modules/msgpackr-extract": {"version": "3.0.3", "hasInstallScript": true,
                "optionalDependencies": {"@msgpackr-extract/msgpackr-extract-linux-x64": "3.0.3", "@msgpackr-extract/msgpackr-extract-darwin-arm64": "3.0.3"}},
            "node_modules/@msgpackr-extract/msgpackr-extract-linux-x64": {"version": "3.0.3", "optional": true, "os": ["linux"], "cpu": ["x64"]},
            "node_modules/@msgpackr-extract/msgpackr-extract-darwin-arm64": {"version": "3.0.3", "optional": true, "os": ["darwin"], "cpu": ["arm64"]},
            "node_modules/bcrypt": {"version": "5.1.1", "hasInstallScript": true, "dependencies": {"node-addon-api": "5.0.0"}},
            "node_modules/node-addon-api": {"version": "5.0.0"}
        }}"#;
        let packages = crate::lockfile::parse(lock, "package-lock.json").unwrap().packages;
        let of = |name: &str| packages.iter().find(|p| p.name == name).unwrap();
        let linux = |j: usize| !packages[j].name.ends_with("darwin-arm64");
        assert!(platform_package(of("msgpackr-extract"), &packages, linux));
        let only_darwin = |j: usize| !packages[j].name.ends_with("linux-x64");
        let none = |j: usize| only_darwin(j) && !packages[j].name.ends_with("darwin-arm64");
        assert!(!platform_package(of("msgpackr-extract"), &packages, none), "none for this platform");
        assert!(!platform_package(of("bcrypt"), &packages, |_| true), "a plain dependency is no binary");
    }

    #[test]
    fn paths_inside_tarballs_are_kept_inside() {
        assert_eq!(inside(Path::new("package/lib/index.js")).as_deref(), Some("lib/index.js"));
        assert_eq!(inside(Path::new("node/./a.js")).as_deref(), Some("a.js"));
        assert_eq!(inside(Path::new("package/../../etc/passwd")), None);
        assert_eq!(inside(Path::new("package")), None);
        assert_eq!(normal("./bin/../cli.js").as_deref(), Some("cli.js"));
        assert_eq!(normal("../x"), None);
    }
}
