//! A real npm registry for tests: verdaccio (installed by `scripts/test-env`
//! from npm), on a loopback port, proxying npm's public registry, with every
//! package readable only with a token. It answers what a company's private
//! registry answers: 401 without a token, packuments and tarballs with one.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running verdaccio; stopped when dropped.
pub struct NpmRegistry {
    port: u16,
    token: String,
    child: Child,
    dir: tempfile::TempDir,
}

/// One HTTP/1.1 request on a fresh connection: (status, body).
fn request(port: u16, method: &str, path: &str, headers: &str, body: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let status = out.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((status, body))
}

impl NpmRegistry {
    /// Starts verdaccio with a fresh storage and a user whose token
    /// [`NpmRegistry::token`] gives. Panics with its log when it cannot start.
    pub fn start() -> NpmRegistry {
        let bin = crate::test_env("OXBUILD_TEST_VERDACCIO");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config = dir.path().join("config.yaml");
        std::fs::write(
            &config,
            "storage: ./storage\nauth:\n  htpasswd:\n    file: ./htpasswd\n    max_users: 10\nuplinks:\n  npmjs:\n    url: https://registry.npmjs.org/\n    timeout: 60s\npackages:\n  '**':\n    access: $authenticated\n    publish: $authenticated\n    proxy: npmjs\nlog: { type: stdout, format: json, level: warn }\n",
        )
        .unwrap();
        // verdaccio prints the port it was given, not the one it got: a free
        // port is picked here, and another if it is taken in the meantime.
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let log = std::fs::File::create(dir.path().join("verdaccio.log")).unwrap();
            let mut child = Command::new("node")
                .arg(&bin)
                .args(["--config"])
                .arg(&config)
                .args(["--listen", &format!("127.0.0.1:{port}")])
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("node runs verdaccio");
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut up = false;
            while Instant::now() < deadline && child.try_wait().ok().flatten().is_none() {
                if matches!(request(port, "GET", "/-/ping", "", ""), Ok((200, _))) {
                    up = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if up {
                let mut registry = NpmRegistry { port, token: String::new(), child, dir };
                registry.token = registry.add_user("oxbuild-ci", "a-long-test-password");
                return registry;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!(
            "verdaccio did not start: {}",
            std::fs::read_to_string(dir.path().join("verdaccio.log")).unwrap_or_default()
        );
    }

    /// Creates a user and returns its token.
    fn add_user(&self, name: &str, password: &str) -> String {
        let body = format!("{{\"name\":\"{name}\",\"password\":\"{password}\"}}");
        let (status, answer) = request(
            self.port,
            "PUT",
            &format!("/-/user/org.couchdb.user:{name}"),
            "Content-Type: application/json\r\n",
            &body,
        )
        .expect("verdaccio answers");
        assert_eq!(status, 201, "creating a verdaccio user: {answer}");
        let v: serde_json::Value = serde_json::from_str(&answer).expect("verdaccio answers JSON");
        v["token"].as_str().expect("verdaccio gives a token").to_string()
    }

    /// `http://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// The `host:port` npm's `.npmrc` keys credentials by.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The user's token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Where verdaccio keeps what it has served (packuments and tarballs).
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }
}

impl Drop for NpmRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
