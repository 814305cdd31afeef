//! The token service of a registry configured with `auth: token`: the flow
//! Docker Hub, GHCR, Quay and Harbor use. The registry answers 401 with a
//! `Bearer realm=…,service=…,scope=…` challenge; the client asks this service
//! for a token (with its basic credentials), and the registry itself checks the
//! signed token (RS256, certificate in the `x5c` header, trusted through its
//! `rootcertbundle`) and the access it grants.
//!
//! Only the issuing side lives in the test: the registry verifying the
//! tokens and enforcing their scopes is the real docker-registry.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use base64::Engine as _;

/// The `service` the registry names in its challenge and tokens are for.
pub const SERVICE: &str = "oxbuild-test-registry";
/// The `iss` of every token, as the registry's config expects.
pub const ISSUER: &str = "oxbuild-testkit";

/// One request the token service answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// The user of the basic credentials, if any were sent.
    pub user: Option<String>,
    /// True when the client sent a refresh token (Docker's `identitytoken`)
    /// in an OAuth2 POST instead of basic credentials.
    pub refresh: bool,
    /// The `scope` parameters, as sent.
    pub scopes: Vec<String>,
    /// Whether a token granting them was issued.
    pub granted: bool,
}

/// A token service on a loopback port, stopped when dropped.
pub struct TokenServer {
    host: String,
    port: u16,
    certificate: PathBuf,
    requests: Arc<Mutex<Vec<TokenRequest>>>,
    stop: Arc<AtomicBool>,
}

impl TokenServer {
    /// Starts a service that grants what `user`/`password` ask for, with a
    /// signing key and certificate made in `dir`.
    pub fn start(dir: &Path, user: &str, password: &str) -> TokenServer {
        TokenServer::start_with_refresh(dir, user, password, None)
    }

    /// Like [`TokenServer::start_with_refresh`], listening on `ip` (a
    /// loopback address other than the registry's makes a token service on
    /// another host).
    pub fn start_on(ip: &str, dir: &Path, user: &str, password: &str, refresh: Option<&str>) -> TokenServer {
        TokenServer::serve(ip, dir, user, password, refresh)
    }

    /// Like [`TokenServer::start`], and also grants what is asked with the
    /// OAuth2 refresh token `refresh` (what `docker login` stores as an
    /// `identitytoken`).
    pub fn start_with_refresh(dir: &Path, user: &str, password: &str, refresh: Option<&str>) -> TokenServer {
        TokenServer::serve("127.0.0.1", dir, user, password, refresh)
    }

    fn serve(ip: &str, dir: &Path, user: &str, password: &str, refresh: Option<&str>) -> TokenServer {
        let key = dir.join("token.key");
        let certificate = dir.join("token.crt");
        let out = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=oxbuild-testkit-token"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&certificate)
            .output()
            .expect("openssl runs");
        assert!(out.status.success(), "openssl req: {}", String::from_utf8_lossy(&out.stderr));
        let der = Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&certificate)
            .output()
            .expect("openssl runs");
        assert!(der.status.success(), "openssl x509: {}", String::from_utf8_lossy(&der.stderr));
        let x5c = base64::engine::general_purpose::STANDARD.encode(&der.stdout);

        let listener = TcpListener::bind(format!("{ip}:0")).expect("a loopback port");
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let issuer = Issuer {
            key,
            x5c,
            user: user.to_string(),
            password: password.to_string(),
            refresh: refresh.map(str::to_string),
        };
        let (seen, stopping) = (requests.clone(), stop.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(conn) = conn {
                    let _ = issuer.answer(conn, &seen);
                }
            }
        });
        TokenServer { host: ip.to_string(), port, certificate, requests, stop }
    }

    /// The realm URL the registry sends clients to.
    pub fn realm(&self) -> String {
        format!("http://{}:{}/token", self.host, self.port)
    }

    /// The certificate the registry trusts tokens signed under.
    pub fn certificate(&self) -> &Path {
        &self.certificate
    }

    /// Every request answered so far.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

struct Issuer {
    key: PathBuf,
    x5c: String,
    user: String,
    password: String,
    refresh: Option<String>,
}

impl Issuer {
    fn answer(&self, conn: TcpStream, seen: &Mutex<Vec<TokenRequest>>) -> std::io::Result<()> {
        let mut reader = BufReader::new(conn.try_clone()?);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let method = line.split_whitespace().next().unwrap_or("").to_string();
        let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let mut authorization = None;
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("authorization") {
                    authorization = Some(value.trim().to_string());
                } else if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        // GET carries the parameters in the query; the OAuth2 POST in a form body.
        let mut form = target.split_once('?').map(|(_, q)| q.to_string()).unwrap_or_default();
        if method == "POST" {
            let mut body = vec![0u8; length];
            std::io::Read::read_exact(&mut reader, &mut body)?;
            form = String::from_utf8_lossy(&body).into_owned();
        }
        let params: Vec<(String, String)> =
            form.split('&').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (decode(k), decode(v))).collect();
        let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let scopes: Vec<String> = params.iter().filter(|(k, _)| k == "scope").map(|(_, v)| v.clone()).collect();
        let credentials = authorization
            .as_deref()
            .and_then(|a| a.strip_prefix("Basic "))
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .and_then(|b| String::from_utf8(b).ok());
        let (mut user, password) = match credentials.as_deref().and_then(|c| c.split_once(':')) {
            Some((u, p)) => (Some(u.to_string()), Some(p.to_string())),
            None => (None, None),
        };
        let refresh = method == "POST" && param("grant_type").as_deref() == Some("refresh_token");
        let granted = if refresh {
            let ok = self.refresh.is_some() && param("refresh_token") == self.refresh;
            if ok {
                user = Some(self.user.clone());
            }
            ok
        } else {
            user.as_deref() == Some(&self.user) && password.as_deref() == Some(&self.password)
        };
        seen.lock().unwrap().push(TokenRequest { user: user.clone(), refresh, scopes: scopes.clone(), granted });
        let mut out = conn;
        if !granted {
            let body = r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#;
            return write!(
                out,
                "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
        let token = self.sign(user.as_deref().unwrap_or(""), &scopes);
        let body = serde_json::json!({"token": token, "access_token": token, "expires_in": 300}).to_string();
        write!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    }

    /// A JWT granting `scopes` (`repository:NAME:ACTIONS`) to `user`.
    fn sign(&self, user: &str, scopes: &[String]) -> String {
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let access: Vec<serde_json::Value> = scopes
            .iter()
            .flat_map(|s| s.split(' '))
            .filter_map(|s| {
                let (kind, rest) = s.split_once(':')?;
                let (name, actions) = rest.rsplit_once(':')?;
                Some(serde_json::json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
            })
            .collect();
        let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "x5c": [self.x5c]});
        let claims = serde_json::json!({
            "iss": ISSUER, "sub": user, "aud": SERVICE, "exp": now + 300, "nbf": now - 10, "iat": now - 10,
            "jti": crate::unique_name("token"), "access": access,
        });
        let input = format!("{}.{}", url.encode(header.to_string()), url.encode(claims.to_string()));
        let mut child = Command::new("openssl")
            .args(["dgst", "-sha256", "-sign"])
            .arg(&self.key)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("openssl runs");
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "openssl dgst failed");
        format!("{input}.{}", url.encode(out.stdout))
    }
}

/// Percent-decoding of one query component (`+` is a space).
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => out.push(b),
                    None => out.extend_from_slice(&bytes[i..i + 3]),
                }
                i += 3;
                continue;
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
