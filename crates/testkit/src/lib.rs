//! Real parts for oxbuild's tests, never mocks of them:
//!
//! - [`Registry`]: a private Debian `docker-registry` process on a free loopback
//!   port, optionally behind htpasswd basic auth or the bearer-token flow of
//!   the public registries (with a [`TokenServer`] issuing the tokens it
//!   checks), torn down when dropped;
//! - [`base_archive`]: the Python base image (built once by `scripts/test-env`
//!   with mmdebstrap) as an OCI archive, which [`Registry::seed`] copies in with
//!   skopeo, so the base never depends on oxbuild itself;
//! - [`podman`] and [`Container`]: podman configured for these machines
//!   (`CONTAINERS_CONF`), with containers that are removed when dropped;
//! - [`Proxy`]: an in-test HTTP proxy in front of a registry, only for what a
//!   real registry does not do on demand (resets, 5xx, 429, corrupt blobs);
//! - [`PackageIndex`]: a PEP 503 index over a directory of wheels, with basic
//!   auth and redirects to a file host when a test asks, recording every request;
//! - [`ForwardProxy`]: an HTTP forward proxy (CONNECT and absolute-form, with
//!   optional basic auth) for `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` tests.
//!
//! ```no_run
//! let registry = oxbuild_testkit::Registry::start();
//! let base = registry.seed("python:3.11");
//! assert!(base.starts_with("127.0.0.1:"));
//! ```

mod forward_proxy;
mod index;
mod npm_registry;
mod proxy;
mod server;
mod token;

pub use forward_proxy::{ForwardProxy, ProxySeen};
pub use index::{IndexOptions, IndexRequest, PackageIndex, make_wheel};
pub use npm_registry::NpmRegistry;
pub use proxy::{Fault, Proxy, Seen};
pub use token::{TokenRequest, TokenServer};

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("the repository root exists")
}

/// The containers.conf podman needs on these machines.
pub fn containers_conf() -> PathBuf {
    std::env::var_os("CONTAINERS_CONF")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("testdata/podman/containers.conf"))
}

/// A value `scripts/test-env` exports: from the environment when the test
/// runner was started by scripts/test, else by running scripts/test-env once.
fn test_env(var: &str) -> PathBuf {
    static EXPORTS: OnceLock<Vec<(String, String)>> = OnceLock::new();
    if let Some(v) = std::env::var_os(var) {
        return PathBuf::from(v);
    }
    let exports = EXPORTS.get_or_init(|| {
        let out = Command::new(repo_root().join("scripts/test-env"))
            .stderr(Stdio::inherit())
            .output()
            .expect("scripts/test-env runs");
        assert!(out.status.success(), "scripts/test-env failed");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("export ")?.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
            .collect()
    });
    let value = exports.iter().find(|(k, _)| k == var).unwrap_or_else(|| panic!("scripts/test-env exports no {var}"));
    PathBuf::from(&value.1)
}

/// The cached Python base image (Debian bookworm, amd64) as an OCI archive.
pub fn base_archive() -> PathBuf {
    test_env("OXBUILD_TEST_BASE")
}

/// A Node.js base (Debian 12's nodejs, no Python), as an OCI archive.
pub fn node_base_archive() -> PathBuf {
    test_env("OXBUILD_TEST_NODE_BASE")
}

/// An arm64 Node.js base (Debian's nodejs, no dpkg database), as an OCI archive.
pub fn node_arm64_base_archive() -> PathBuf {
    test_env("OXBUILD_TEST_NODE_BASE_ARM64")
}

/// Both Node bases (amd64 and arm64) under one OCI index, as an OCI archive.
pub fn node_multi_base_archive() -> PathBuf {
    test_env("OXBUILD_TEST_NODE_BASE_MULTI")
}

/// An arm64 root filesystem with glibc and Python 3.11, as an OCI archive.
pub fn arm64_base_archive() -> PathBuf {
    test_env("OXBUILD_TEST_BASE_ARM64")
}

/// The amd64 and arm64 bases under one OCI index, as an OCI archive.
pub fn multi_base_archive() -> PathBuf {
    test_env("OXBUILD_TEST_BASE_MULTI")
}

/// A directory of real PyPI wheels for testdata/pyweb, x86_64 and aarch64.
pub fn wheelhouse() -> PathBuf {
    test_env("OXBUILD_TEST_WHEELHOUSE")
}

/// Wheels for the init test apps (testdata/init), x86_64.
pub fn init_wheelhouse() -> PathBuf {
    test_env("OXBUILD_TEST_INIT_WHEELHOUSE")
}

/// Build backends as PyPI's pure-Python wheels (flit-core, setuptools,
/// poetry-core), for the tests that build sdists and projects.
pub fn build_wheelhouse() -> PathBuf {
    test_env("OXBUILD_TEST_BUILD_WHEELHOUSE")
}

/// A directory of real PyPI wheels for testdata/flaskapp (x86_64).
pub fn flask_wheelhouse() -> PathBuf {
    test_env("OXBUILD_TEST_FLASK_WHEELHOUSE")
}

/// A venv with the SBOM validators: `bin/pyspdxtools` and cyclonedx-python-lib.
pub fn validators() -> PathBuf {
    test_env("OXBUILD_TEST_VALIDATORS")
}

/// A name no other test or parallel run uses.
pub fn unique_name(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{prefix}-{}-{}-{nanos}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// A private docker-registry process; stopped and deleted when dropped.
pub struct Registry {
    child: Child,
    dir: tempfile::TempDir,
    host: String,
    auth: Option<(String, String)>,
    tls: bool,
    token: Option<TokenServer>,
}

/// How a test registry authenticates.
enum Auth {
    Anonymous,
    Basic(String, String),
    Token(String, String, Option<String>),
    /// A token service on another host (127.0.0.2) than the registry's.
    ForeignToken(String, String),
}

impl Registry {
    /// Starts an anonymous registry over plain HTTP.
    pub fn start() -> Registry {
        Registry::spawn(Auth::Anonymous, false)
    }

    /// Starts a registry that demands basic auth for `user`/`password`.
    pub fn start_with_auth(user: &str, password: &str) -> Registry {
        Registry::spawn(Auth::Basic(user.to_string(), password.to_string()), false)
    }

    /// Starts a registry that demands bearer tokens, issued by a
    /// [`TokenServer`] to `user`/`password` ([`Registry::token_requests`]).
    pub fn start_with_token(user: &str, password: &str) -> Registry {
        Registry::spawn(Auth::Token(user.to_string(), password.to_string(), None), false)
    }

    /// Like [`Registry::start_with_token`], with the token service on
    /// another host (127.0.0.2) than the registry (127.0.0.1), as a
    /// registry that sends clients to a third party's realm does.
    pub fn start_with_foreign_token(user: &str, password: &str) -> Registry {
        Registry::spawn(Auth::ForeignToken(user.to_string(), password.to_string()), false)
    }

    /// Like [`Registry::start_with_token`], and the token service also takes
    /// the OAuth2 refresh token `identity_token` (Docker's `identitytoken`).
    pub fn start_with_identity_token(user: &str, password: &str, identity_token: &str) -> Registry {
        Registry::spawn(Auth::Token(user.to_string(), password.to_string(), Some(identity_token.to_string())), false)
    }

    /// Starts a registry that serves HTTPS only, with a certificate for
    /// 127.0.0.1 signed by a CA made for it ([`Registry::ca_file`]).
    pub fn start_tls() -> Registry {
        Registry::spawn(Auth::Anonymous, true)
    }

    /// What the token service of a [`Registry::start_with_token`] registry was asked.
    pub fn token_requests(&self) -> Vec<TokenRequest> {
        self.token.as_ref().expect("only a token registry has a token service").requests()
    }

    /// The PEM file of the CA that signed a TLS registry's certificate.
    pub fn ca_file(&self) -> PathBuf {
        assert!(self.tls, "only a TLS registry has a CA");
        self.dir.path().join("trust/ca.crt")
    }

    /// skopeo/podman arguments to reach this registry (TLS trust, credentials).
    fn tool_args(&self, direction: &str) -> Vec<String> {
        let mut args = Vec::new();
        if self.tls {
            args.push(format!("--{direction}cert-dir={}", self.dir.path().join("trust").display()));
        } else {
            args.push(format!("--{direction}tls-verify=false"));
        }
        if let Some((u, p)) = &self.auth {
            args.push(format!("--{direction}creds={u}:{p}"));
        }
        args
    }

    fn spawn(mode: Auth, tls: bool) -> Registry {
        let dir = tempfile::tempdir().expect("a temp dir");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:0\n",
            dir.path().join("data").display()
        );
        let mut token = None;
        let auth = match mode {
            Auth::Anonymous => None,
            Auth::Basic(user, password) => Some((user, password)),
            Auth::Token(..) | Auth::ForeignToken(..) => {
                let (user, password, refresh, ip) = match mode {
                    Auth::Token(u, p, r) => (u, p, r, "127.0.0.1"),
                    Auth::ForeignToken(u, p) => (u, p, None, "127.0.0.2"),
                    _ => unreachable!("matched above"),
                };
                let server = TokenServer::start_on(ip, dir.path(), &user, &password, refresh.as_deref());
                config.push_str(&format!(
                    "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                    server.realm(),
                    token::SERVICE,
                    token::ISSUER,
                    server.certificate().display()
                ));
                token = Some(server);
                Some((user, password))
            }
        };
        if let Some((user, password)) = auth.as_ref().filter(|_| token.is_none()) {
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .output()
                .expect("htpasswd (apache2-utils) runs");
            assert!(out.status.success(), "htpasswd failed");
            std::fs::write(dir.path().join("htpasswd"), &out.stdout).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: oxbuild-test\n    path: {}\n",
                dir.path().join("htpasswd").display()
            ));
        }
        if tls {
            let certs = dir.path().join("certs");
            make_certificates(&certs);
            // Tools read every *.key in a cert dir as a client key: give them the CA alone.
            std::fs::create_dir_all(dir.path().join("trust")).unwrap();
            std::fs::copy(certs.join("ca.crt"), dir.path().join("trust/ca.crt")).unwrap();
            config = config.replace(
                "  addr: 127.0.0.1:0\n",
                &format!(
                    "  addr: 127.0.0.1:0\n  tls:\n    certificate: {}\n    key: {}\n",
                    certs.join("leaf.pem").display(),
                    certs.join("leaf.key").display()
                ),
            );
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("docker-registry runs (scripts/test-env installs it)");
        let mut registry = Registry { child, dir, host: String::new(), auth, tls, token };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = registry.log();
            if let Some(i) = text.find("listening on ") {
                let rest = &text[i + "listening on ".len()..];
                let addr: String = rest.chars().take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':').collect();
                registry.host = addr;
                break;
            }
            if let Ok(Some(status)) = registry.child.try_wait() {
                panic!("docker-registry exited with {status}: {text}");
            }
            assert!(Instant::now() < deadline, "docker-registry did not start: {text}");
            std::thread::sleep(Duration::from_millis(50));
        }
        registry
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// A reference in this registry: `127.0.0.1:PORT/<path>`.
    pub fn reference(&self, path: &str) -> String {
        format!("{}/{path}", self.host)
    }

    /// Where the registry keeps what it stores (its filesystem driver's root).
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Everything the registry logged so far (its access log included).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// The requests the registry answered so far, in the order they
    /// completed, each with the time it started (its completion time less
    /// its duration, both as the registry logged them). Ordering requests by
    /// when they started, not by when their log lines were written, keeps a
    /// slow answer from looking like a late question.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.log().lines().filter_map(LoggedRequest::parse).collect()
    }

    /// Copies the Python base image in as `path` (e.g. `python:3.11`) with
    /// skopeo, and returns its full reference.
    pub fn seed(&self, path: &str) -> String {
        self.seed_archive(&base_archive(), path)
    }

    /// Copies the image in the OCI archive `archive` to `path` with skopeo and
    /// returns its full reference.
    pub fn seed_archive(&self, archive: &Path, path: &str) -> String {
        let reference = self.reference(path);
        let mut cmd = Command::new("skopeo");
        cmd.args(["copy", "--quiet"]).args(self.tool_args("dest-"));
        cmd.arg(format!("oci-archive:{}", archive.display()));
        cmd.arg(format!("docker://{reference}"));
        let out = cmd.output().expect("skopeo runs");
        assert!(out.status.success(), "seeding {reference} failed: {}", String::from_utf8_lossy(&out.stderr));
        reference
    }

    /// Copies the multi-platform base (both platforms) to `path` with
    /// `skopeo copy --all` and returns its full reference.
    pub fn seed_multi(&self, path: &str) -> String {
        let reference = self.reference(path);
        let out = Command::new("skopeo")
            .args(["copy", "--all", "--quiet"])
            .args(self.tool_args("dest-"))
            .arg(format!("oci-archive:{}", multi_base_archive().display()))
            .arg(format!("docker://{reference}"))
            .output()
            .expect("skopeo runs");
        assert!(out.status.success(), "seeding {reference} failed: {}", String::from_utf8_lossy(&out.stderr));
        reference
    }

    /// Pulls `reference` with skopeo into an OCI layout at `dir`, which checks
    /// every blob against its digest; panics with skopeo's error otherwise.
    pub fn pull_and_verify(&self, reference: &str, dir: &Path) {
        let out = Command::new("skopeo")
            .args(["copy", "--quiet"])
            .args(self.tool_args("src-"))
            .arg(format!("docker://{reference}"))
            .arg(format!("oci:{}", dir.display()))
            .output()
            .expect("skopeo runs");
        assert!(out.status.success(), "pull-and-verify of {reference}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Asserts that every tag of repository `path` resolves to complete
    /// content: each manifest (and every child of an index) is there, and
    /// every blob it names is there with its digest and size. Returns the
    /// tags checked. Reads the registry directly, without oxbuild's client.
    pub fn assert_complete(&self, path: &str) -> Vec<String> {
        let (status, body) = self.raw_get(&format!("/v2/{path}/tags/list"), "application/json");
        if status == 404 {
            return Vec::new();
        }
        assert_eq!(status, 200, "listing the tags of {path}");
        let listed: serde_json::Value = serde_json::from_slice(&body).expect("a tag list");
        let tags: Vec<String> =
            listed["tags"].as_array().into_iter().flatten().filter_map(|t| t.as_str().map(String::from)).collect();
        for tag in &tags {
            self.assert_manifest_complete(path, tag, &format!("{path}:{tag}"));
        }
        tags
    }

    fn assert_manifest_complete(&self, path: &str, reference: &str, what: &str) {
        const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";
        let (status, body) = self.raw_get(&format!("/v2/{path}/manifests/{reference}"), ACCEPT);
        assert_eq!(status, 200, "{what}: manifest {reference} is missing");
        if reference.starts_with("sha256:") {
            assert_eq!(
                format!("sha256:{}", hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&body))),
                reference,
                "{what}"
            );
        }
        let manifest: serde_json::Value = serde_json::from_slice(&body).expect("a manifest");
        for child in manifest["manifests"].as_array().into_iter().flatten() {
            self.assert_manifest_complete(path, child["digest"].as_str().unwrap(), what);
        }
        let blobs = manifest["layers"].as_array().into_iter().flatten().chain(manifest.get("config"));
        for blob in blobs {
            let digest = blob["digest"].as_str().expect("a digest");
            let (status, bytes) = self.raw_get(&format!("/v2/{path}/blobs/{digest}"), "*/*");
            assert_eq!(status, 200, "{what}: blob {digest} is missing");
            assert_eq!(
                format!("sha256:{}", hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes))),
                digest,
                "{what}: blob"
            );
            assert_eq!(Some(bytes.len() as u64), blob["size"].as_u64(), "{what}: size of blob {digest}");
        }
    }

    /// A plain GET of `path` on the registry: (status, body), following one redirect.
    fn raw_get(&self, path: &str, accept: &str) -> (u16, Vec<u8>) {
        let mut s = TcpStream::connect(&self.host).expect("the registry answers");
        write!(s, "GET {path} HTTP/1.0\r\nHost: {}\r\nAccept: {accept}\r\n\r\n", self.host).unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        let at = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("an HTTP answer");
        let head = String::from_utf8_lossy(&raw[..at]).to_string();
        let status: u16 = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("a status");
        if (300..400).contains(&status) {
            let location = head
                .lines()
                .find_map(|l| {
                    l.split_once(':')
                        .filter(|(k, _)| k.eq_ignore_ascii_case("location"))
                        .map(|(_, v)| v.trim().to_string())
                })
                .expect("a Location");
            let local = location.split_once(&self.host).map(|(_, p)| p.to_string()).unwrap_or(location);
            return self.raw_get(&local, accept);
        }
        (status, raw[at + 4..].to_vec())
    }

    /// The tags of repository `path`, listed by skopeo; empty when it has none.
    pub fn skopeo_list_tags(&self, path: &str) -> Vec<String> {
        let out = Command::new("skopeo")
            .arg("list-tags")
            .args(self.tool_args(""))
            .arg(format!("docker://{}", self.reference(path)))
            .output()
            .expect("skopeo runs");
        if !out.status.success() {
            return Vec::new();
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("skopeo prints JSON");
        v["Tags"].as_array().into_iter().flatten().filter_map(|t| t.as_str().map(String::from)).collect()
    }

    /// `skopeo inspect` of `reference` as JSON (raw manifest with `raw`).
    pub fn skopeo_inspect(&self, reference: &str, raw: bool) -> serde_json::Value {
        let mut cmd = Command::new("skopeo");
        cmd.arg("inspect").args(self.tool_args(""));
        if raw {
            cmd.arg("--raw");
        }
        let out = cmd.arg(format!("docker://{reference}")).output().expect("skopeo runs");
        assert!(out.status.success(), "skopeo inspect {reference}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("skopeo prints JSON")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Makes a CA and a leaf certificate for 127.0.0.1 in `dir` with openssl:
/// `ca.crt` (the CA), `leaf.pem` and `leaf.key`. The leaf is not a CA itself,
/// as rustls insists.
fn make_certificates(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl runs");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let mut ca =
        vec!["req", "-x509", "-days", "2", "-subj", "/CN=oxbuild test CA", "-keyout", "ca.key", "-out", "ca.crt"];
    ca.extend(ec);
    ca.extend(["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
    openssl(&ca);
    let mut csr = vec!["req", "-subj", "/CN=127.0.0.1", "-keyout", "leaf.key", "-out", "leaf.csr"];
    csr.extend(ec);
    openssl(&csr);
    std::fs::write(
        dir.join("leaf.ext"),
        "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "leaf.ext",
        "-out",
        "leaf.pem",
    ]);
}

/// A podman command configured for these machines.
pub fn podman() -> Command {
    let mut cmd = Command::new("podman");
    cmd.env("CONTAINERS_CONF", containers_conf());
    cmd
}

/// Runs podman with `args`, returning its output whatever the exit status.
pub fn podman_output(args: &[&str]) -> Output {
    podman().args(args).output().expect("podman runs")
}

/// One request from the registry's own log ([`Registry::requests`]).
#[derive(Debug, Clone)]
pub struct LoggedRequest {
    pub method: String,
    /// The path and query, as sent.
    pub uri: String,
    pub status: u16,
    /// When the registry began on it: seconds since the Unix epoch.
    pub started: f64,
}

impl LoggedRequest {
    /// Reads a `level=... msg="response completed..."` line of the
    /// registry's logrus output: `key=value` pairs, a value quoted when it
    /// holds spaces or symbols.
    fn parse(line: &str) -> Option<LoggedRequest> {
        if !line.contains("msg=\"response completed") {
            return None;
        }
        let mut fields = std::collections::HashMap::new();
        let mut rest = line.trim();
        while let Some(eq) = rest.find('=') {
            let key = rest[..eq].trim();
            let after = &rest[eq + 1..];
            let (value, next) = match after.strip_prefix('"') {
                Some(quoted) => {
                    let end = quoted.find('"').unwrap_or(quoted.len());
                    (&quoted[..end], quoted.get(end + 1..).unwrap_or(""))
                }
                None => {
                    let end = after.find(' ').unwrap_or(after.len());
                    (&after[..end], &after[end..])
                }
            };
            fields.insert(key.to_string(), value.to_string());
            rest = next.trim_start();
        }
        let finished = unix_seconds(fields.get("time")?)?;
        let took = go_duration(fields.get("http.response.duration")?)?;
        Some(LoggedRequest {
            method: fields.get("http.request.method")?.clone(),
            uri: fields.get("http.request.uri")?.clone(),
            status: fields.get("http.response.status")?.parse().ok()?,
            started: finished - took,
        })
    }
}

/// `2026-12-03T14:54:54.607908Z` as seconds since the Unix epoch.
fn unix_seconds(time: &str) -> Option<f64> {
    let (date, clock) = time.trim_end_matches('Z').split_once('T')?;
    let mut ymd = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (ymd.next()??, ymd.next()??, ymd.next()??);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let mut hms = clock.split(':');
    let (h, min, s) =
        (hms.next()?.parse::<f64>().ok()?, hms.next()?.parse::<f64>().ok()?, hms.next()?.parse::<f64>().ok()?);
    Some(days as f64 * 86_400.0 + h * 3600.0 + min * 60.0 + s)
}

/// A Go duration (`6.37ms`, `1.24s`, `850µs`, `1m2.5s`) in seconds.
fn go_duration(text: &str) -> Option<f64> {
    let mut total = 0.0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().ok()?;
        let unit_end = rest[digits..].find(|c: char| c.is_ascii_digit()).map_or(rest.len(), |i| digits + i);
        let scale = match &rest[digits..unit_end] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "µs" | "us" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += number * scale;
        rest = &rest[unit_end..];
    }
    Some(total)
}

/// A container started by a test; removed (with its image, if asked) when dropped.
pub struct Container {
    /// The container's unique name.
    pub name: String,
    remove_image: Option<String>,
}

impl Container {
    /// Pulls `image` from a plain-HTTP registry and starts it detached with
    /// `extra` podman arguments (e.g. `-p`). Panics with podman's output on failure.
    pub fn run(image: &str, extra: &[&str]) -> Container {
        let name = unique_name("oxbuild-test");
        let mut args = vec!["run", "-d", "--tls-verify=false", "--name", &name];
        args.extend_from_slice(extra);
        args.push(image);
        let out = podman_output(&args);
        let container = Container { name: name.clone(), remove_image: Some(image.to_string()) };
        assert!(out.status.success(), "podman run {image}: {}", String::from_utf8_lossy(&out.stderr));
        container
    }

    /// Like [`Container::run`], publishing `port` of the container on a
    /// loopback port that podman chooses, and returns that port (read back
    /// with `podman port`): nothing probes for a free port that another test
    /// could take first. A start that loses podman's own race for the port is
    /// tried again.
    pub fn serve(image: &str, port: u16) -> (Container, u16) {
        let publish = format!("127.0.0.1::{port}");
        for attempt in 0.. {
            let name = unique_name("oxbuild-test");
            let out = podman_output(&["run", "-d", "--tls-verify=false", "--name", &name, "-p", &publish, image]);
            let container = Container { name, remove_image: Some(image.to_string()) };
            if !out.status.success() {
                let stderr = String::from_utf8_lossy(&out.stderr);
                if attempt < 3 && stderr.contains("address already in use") {
                    continue;
                }
                panic!("podman run {image}: {stderr}");
            }
            let out = podman_output(&["port", &container.name, &format!("{port}/tcp")]);
            let text = String::from_utf8_lossy(&out.stdout);
            let host: u16 = text
                .lines()
                .next()
                .and_then(|l| l.rsplit(':').next())
                .and_then(|p| p.trim().parse().ok())
                .unwrap_or_else(|| {
                    panic!("podman port {}: {text}{}", container.name, String::from_utf8_lossy(&out.stderr))
                });
            return (container, host);
        }
        unreachable!("the loop returns or panics")
    }

    /// `podman exec` in the container.
    pub fn exec(&self, cmd: &[&str]) -> Output {
        let mut args = vec!["exec", self.name.as_str()];
        args.extend_from_slice(cmd);
        podman_output(&args)
    }

    /// `podman healthcheck run`: true when it reports healthy.
    pub fn healthcheck(&self) -> bool {
        podman_output(&["healthcheck", "run", &self.name]).status.success()
    }

    /// The container's logs.
    pub fn logs(&self) -> String {
        let out = podman_output(&["logs", &self.name]);
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman_output(&["rm", "-f", "-t", "0", &self.name]);
        if let Some(image) = &self.remove_image {
            let _ = podman_output(&["rmi", "-f", image]);
        }
    }
}

/// GETs `http://127.0.0.1:port/path` with plain std networking and returns
/// (status, body), retrying until `timeout` while the server is not up yet.
pub fn http_get(port: u16, path: &str, timeout: Duration) -> Option<(u16, String)> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(answer) = try_get(port, path) {
            return Some(answer);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    None
}

fn try_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registry_log_line_reads_as_a_request_that_started_before_it_finished() {
        let line = r#"time="2026-12-03T14:54:55.851103656Z" level=info msg="response completed" go.version=go1.19.8 http.request.host="127.0.0.1:37239" http.request.method=PATCH http.request.uri="/v2/python/blobs/uploads/e3?_state=Qs%3D" http.request.useragent=skopeo/1.9.3 http.response.duration=1.240465847s http.response.status=202 http.response.written=0"#;
        let request = LoggedRequest::parse(line).unwrap();
        assert_eq!(request.method, "PATCH");
        assert_eq!(request.uri, "/v2/python/blobs/uploads/e3?_state=Qs%3D");
        assert_eq!(request.status, 202);
        // 2026-12-03T00:00:00Z is 1_796_256_000.
        let expected = 1_796_256_000.0 + 14.0 * 3600.0 + 54.0 * 60.0 + 55.851103656 - 1.240465847;
        assert!((request.started - expected).abs() < 1e-6, "{}", request.started);
        assert!(LoggedRequest::parse("127.0.0.1 - - [03/Dec/2026] \"GET /v2/ HTTP/1.1\" 200 2").is_none());
        assert!(LoggedRequest::parse(r#"time="x" level=info msg="listening on 127.0.0.1:1""#).is_none());
    }

    #[test]
    fn go_durations_of_every_unit() {
        let close = |text: &str, seconds: f64| (go_duration(text).unwrap() - seconds).abs() < 1e-12;
        assert!(close("6.5ms", 0.0065));
        assert!(close("1m2.5s", 62.5));
        assert!(close("850µs", 0.00085));
        assert!(close("3ns", 3e-9));
        assert!(close("1h", 3600.0));
        assert_eq!(go_duration("5 parsecs"), None);
    }
}
