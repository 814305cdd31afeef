//! A small HTTP proxy in front of a real registry, for what no real registry
//! does on demand: failing requests (connection resets, 500, 503, 429 with
//! `Retry-After`), corrupting blobs, and holding one writer's request so that
//! two concurrent writers interleave the same way every run. It also records
//! every request it sees.

use std::io::{BufRead as _, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;

/// What the proxy does to traffic.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// Pass everything through untouched (a counting proxy).
    None,
    /// Fail one request in `every`, cycling through a reset connection, 500,
    /// 502, 503 and 429 with `Retry-After: 1`.
    Flaky {
        /// 10 fails 10% of requests.
        every: u64,
    },
    /// Flip one byte in the body of every blob GET larger than 64 KiB.
    CorruptBlobs,
    /// Cut one successful GET answer with a body in `every` short: the head
    /// and half the body are sent, then the connection is closed.
    Truncate {
        /// 2 cuts every other answer.
        every: u64,
    },
    /// Stall one successful GET answer with a body in `every`: the head and
    /// half the body are sent, then nothing more (until the client gives up,
    /// or 60 s).
    Stall {
        /// 2 stalls every other answer.
        every: u64,
    },
    /// Send every answer's body in small pieces with a pause after each: a
    /// slow but working link.
    SlowBodies {
        /// Bytes per piece.
        piece: usize,
        /// The pause after each piece.
        millis: u64,
    },
    /// Hold every request this many milliseconds before passing it on: a slow
    /// registry, so that a test can act while a build is still running.
    Delay {
        /// The wait per request.
        millis: u64,
    },
    /// Answer every PATCH (a blob's bytes sent into an upload session) with
    /// 500, after reading it whole: an upload streamed while it is written
    /// fails, and the blob must reach the registry another way.
    FailPatches,
    /// A fixed interleaving of two read-modify-write clients of the paths
    /// containing `path`: the first PUT is held until a second PUT has been
    /// answered, and reads that come after that wait until the held PUT has
    /// landed. So writer A's stale write lands after writer B's, and B's
    /// check reads what A wrote. [`Proxy::wait_held`] says when A is held.
    HoldFirstPut {
        /// A part of the request path, e.g. `/manifests/sha256-`.
        path: &'static str,
    },
}

/// Where [`Fault::HoldFirstPut`] is.
#[derive(Debug, Default)]
struct Gate {
    held: bool,
    second_done: bool,
    held_done: bool,
}

/// One request the proxy saw: method, path and query, body length.
#[derive(Debug, Clone)]
pub struct Seen {
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Bytes of request body.
    pub body_len: u64,
}

struct Shared {
    upstream: String,
    fault: Fault,
    count: AtomicU64,
    /// Successful GET answers with a body, for [`Fault::Truncate`] and [`Fault::Stall`].
    answers: AtomicU64,
    /// Connections being handled now.
    active: AtomicU64,
    injected: AtomicU64,
    seen: Mutex<Vec<Seen>>,
    gate: Mutex<Gate>,
    changed: Condvar,
}

/// A running proxy; stops accepting when dropped.
pub struct Proxy {
    host: String,
    shared: Arc<Shared>,
    _server: crate::server::Server,
}

impl Proxy {
    /// Starts a proxy on a free loopback port in front of `upstream` (host:port).
    pub fn start(upstream: &str, fault: Fault) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let host = listener.local_addr().unwrap().to_string();
        let shared = Arc::new(Shared {
            upstream: upstream.to_string(),
            fault,
            count: AtomicU64::new(0),
            answers: AtomicU64::new(0),
            active: AtomicU64::new(0),
            injected: AtomicU64::new(0),
            seen: Mutex::new(Vec::new()),
            gate: Mutex::new(Gate::default()),
            changed: Condvar::new(),
        });
        let s = shared.clone();
        let server = crate::server::Server::start(listener, move |conn| {
            s.active.fetch_add(1, Ordering::SeqCst);
            let _ = handle(conn, &s);
            s.active.fetch_sub(1, Ordering::SeqCst);
        });
        Proxy { host, shared, _server: server }
    }

    /// `127.0.0.1:PORT` of the proxy.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// How many faults were injected so far.
    pub fn injected(&self) -> u64 {
        self.shared.injected.load(Ordering::Relaxed)
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// Waits (up to 60 s) until no request is being passed on, and none has
    /// arrived for a moment: what a killed client left in flight has landed.
    pub fn wait_idle(&self) {
        let deadline = std::time::Instant::now() + WAIT;
        let mut quiet_since = std::time::Instant::now();
        let mut seen = self.seen().len();
        while std::time::Instant::now() < deadline {
            let now = self.seen().len();
            if self.shared.active.load(Ordering::SeqCst) > 0 || now != seen {
                quiet_since = std::time::Instant::now();
                seen = now;
            } else if quiet_since.elapsed() > std::time::Duration::from_millis(300) {
                return;
            }
            thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// Waits (up to 60 s) until [`Fault::HoldFirstPut`] holds a PUT; false on timeout.
    pub fn wait_held(&self) -> bool {
        let gate = self.shared.gate.lock().unwrap();
        let (gate, _) = self.shared.changed.wait_timeout_while(gate, WAIT, |g| !g.held).unwrap();
        gate.held
    }
}

/// The longest a held request waits, so a test that goes wrong fails rather than hangs.
const WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Holds a request as [`Fault::HoldFirstPut`] says; returns whether it is the held PUT.
fn hold(s: &Shared, method: &str, path: &str) -> bool {
    let Fault::HoldFirstPut { path: part } = s.fault else { return false };
    if !path.contains(part) {
        return false;
    }
    let mut gate = s.gate.lock().unwrap();
    if method == "PUT" && !gate.held {
        gate.held = true;
        s.changed.notify_all();
        let _ = s.changed.wait_timeout_while(gate, WAIT, |g| !g.second_done).unwrap();
        return true;
    }
    if method == "GET" && gate.second_done && !gate.held_done {
        let _ = s.changed.wait_timeout_while(gate, WAIT, |g| !g.held_done).unwrap();
    }
    false
}

/// Records that an answer came back for a request [`hold`] looked at.
fn answered(s: &Shared, method: &str, path: &str, was_held: bool) {
    let Fault::HoldFirstPut { path: part } = s.fault else { return };
    if !path.contains(part) || method != "PUT" {
        return;
    }
    let mut gate = s.gate.lock().unwrap();
    if was_held {
        gate.held_done = true;
    } else {
        gate.second_done = true;
    }
    s.changed.notify_all();
}

fn handle(mut client: TcpStream, s: &Shared) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    // A TLS ClientHello (a client probing for HTTPS): this proxy speaks plain HTTP only.
    if reader.fill_buf()?.first() == Some(&0x16) {
        return client.shutdown(Shutdown::Both);
    }
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let end = line == "\r\n";
        head.push(line);
        if end {
            break;
        }
    }
    let request_line = head[0].trim_end().to_string();
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let header = |name: &str| {
        head.iter().skip(1).find_map(|h| {
            let (k, v) = h.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    let body = if let Some(len) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        let mut b = vec![0; len];
        reader.read_exact(&mut b)?;
        b
    } else if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        read_chunked(&mut reader)?
    } else {
        Vec::new()
    };
    s.seen.lock().unwrap().push(Seen { method: method.clone(), path: path.clone(), body_len: body.len() as u64 });

    let n = s.count.fetch_add(1, Ordering::Relaxed);
    if let Fault::Flaky { every } = s.fault
        && n % every == every - 1
    {
        s.injected.fetch_add(1, Ordering::Relaxed);
        let reply = match (n / every) % 5 {
            0 => {
                let _ = client.shutdown(Shutdown::Both);
                return Ok(());
            }
            1 => "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            2 => "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            3 => "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            _ => "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        };
        client.write_all(reply.as_bytes())?;
        return Ok(());
    }

    if matches!(s.fault, Fault::FailPatches) && method == "PATCH" {
        s.injected.fetch_add(1, Ordering::Relaxed);
        client.write_all(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
        return Ok(());
    }
    if let Fault::Delay { millis } = s.fault {
        thread::sleep(std::time::Duration::from_millis(millis));
    }
    let held = hold(s, &method, &path);
    let mut upstream = TcpStream::connect(&s.upstream)?;
    let mut out = format!("{request_line}\r\n");
    for h in head.iter().skip(1) {
        let name = h.split(':').next().unwrap_or("").trim().to_ascii_lowercase();
        if h == "\r\n" || matches!(name.as_str(), "connection" | "content-length" | "transfer-encoding") {
            continue;
        }
        out.push_str(h);
    }
    if !body.is_empty() || matches!(method.as_str(), "PUT" | "POST" | "PATCH") {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("Connection: close\r\n\r\n");
    upstream.write_all(out.as_bytes())?;
    upstream.write_all(&body)?;
    let mut response = Vec::new();
    upstream.read_to_end(&mut response)?;
    answered(s, &method, &path, held);

    if matches!(s.fault, Fault::CorruptBlobs)
        && method == "GET"
        && path.contains("/blobs/sha256:")
        && let Some(at) = find(&response, b"\r\n\r\n")
    {
        let body_len = response.len() - (at + 4);
        if body_len > 64 * 1024 {
            let i = at + 4 + body_len / 2;
            response[i] ^= 0xff;
            s.injected.fetch_add(1, Ordering::Relaxed);
        }
    }
    let Some(at) = find(&response, b"\r\n\r\n").map(|at| at + 4) else {
        return client.write_all(&response);
    };
    let body_len = response.len() - at;
    let ok = response.starts_with(b"HTTP/1.1 2") || response.starts_with(b"HTTP/1.0 2");
    let cut = |every: u64| {
        if method != "GET" || !ok || body_len < 2 {
            return false;
        }
        let nth = s.answers.fetch_add(1, Ordering::Relaxed);
        let hit = nth % every == every - 1;
        if hit {
            s.injected.fetch_add(1, Ordering::Relaxed);
        }
        hit
    };
    match s.fault {
        Fault::Truncate { every } if cut(every) => {
            client.write_all(&response[..at + body_len / 2])?;
            client.shutdown(Shutdown::Both)
        }
        Fault::Stall { every } if cut(every) => {
            client.write_all(&response[..at + body_len / 2])?;
            client.flush()?;
            // Wait for the client to give up (a read returns 0 or fails), at most WAIT.
            client.set_read_timeout(Some(WAIT))?;
            let _ = client.read(&mut [0u8; 1]);
            Ok(())
        }
        Fault::SlowBodies { piece, millis } => {
            client.write_all(&response[..at])?;
            for chunk in response[at..].chunks(piece.max(1)) {
                client.write_all(chunk)?;
                client.flush()?;
                thread::sleep(std::time::Duration::from_millis(millis));
            }
            Ok(())
        }
        _ => client.write_all(&response),
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn read_chunked(reader: &mut impl std::io::BufRead) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size_line = String::new();
        reader.read_line(&mut size_line)?;
        let size = usize::from_str_radix(size_line.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
        if size == 0 {
            let mut trailer = String::new();
            reader.read_line(&mut trailer)?;
            return Ok(body);
        }
        let mut chunk = vec![0; size + 2];
        reader.read_exact(&mut chunk)?;
        body.extend_from_slice(&chunk[..size]);
    }
}
