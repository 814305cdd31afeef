//! An HTTP forward proxy of the kind CI runners sit behind, for testing
//! `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` support against a real registry
//! without installing a real proxy package. It tunnels `CONNECT` for HTTPS,
//! forwards absolute-form requests for plain HTTP, can demand proxy basic
//! auth, and records every request so a test can tell what went through it.

use base64::Engine as _;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// Longer request or response heads are refused rather than buffered.
const MAX_HEAD: usize = 64 * 1024;

/// How long a closing connection waits for the client to hang up first.
const LINGER: Duration = Duration::from_secs(2);

/// One request the proxy was asked to forward.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxySeen {
    /// `CONNECT`, `GET`, `PUT`, ...
    pub method: String,
    /// `host:port` for `CONNECT`, the absolute URL otherwise.
    pub target: String,
}

#[derive(Default)]
struct Log {
    seen: Vec<ProxySeen>,
    hosts: Vec<String>,
}

struct Shared {
    credentials: Option<(String, String)>,
    log: Mutex<Log>,
}

/// A running forward proxy on a loopback port; stops accepting when dropped.
pub struct ForwardProxy {
    addr: String,
    shared: Arc<Shared>,
    _server: crate::server::Server,
}

impl ForwardProxy {
    /// Starts a proxy that forwards for anyone.
    pub fn start() -> ForwardProxy {
        ForwardProxy::spawn(None)
    }

    /// Starts a proxy that answers 407 unless a request carries
    /// `Proxy-Authorization: Basic` for `user`/`password`.
    pub fn start_with_auth(user: &str, password: &str) -> ForwardProxy {
        ForwardProxy::spawn(Some((user.to_string(), password.to_string())))
    }

    fn spawn(credentials: Option<(String, String)>) -> ForwardProxy {
        let shared = Arc::new(Shared { credentials, log: Mutex::new(Log::default()) });
        let s = shared.clone();
        let server = crate::server::Server::start(listen_on_loopback(), move |conn| {
            let _ = handle(conn, &s);
        });
        ForwardProxy { addr: server.addr().to_string(), shared, _server: server }
    }

    /// `http://127.0.0.2:PORT` (its own loopback address), for `HTTP_PROXY`/`HTTPS_PROXY`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://user:password@127.0.0.2:PORT`; panics unless started with auth.
    pub fn url_with_credentials(&self) -> String {
        let (user, password) =
            self.shared.credentials.as_ref().expect("only a proxy started with auth has credentials");
        format!("http://{}:{}@{}", escape_userinfo(user), escape_userinfo(password), self.addr)
    }

    /// Every request seen so far, those refused with 407 included.
    pub fn seen(&self) -> Vec<ProxySeen> {
        self.shared.log.lock().unwrap().seen.clone()
    }

    /// The distinct `host:port` values clients asked to reach, in first-seen order.
    pub fn hosts(&self) -> Vec<String> {
        self.shared.log.lock().unwrap().hosts.clone()
    }
}

/// Where forward proxies (and this file's test origins) listen: Linux answers
/// on all of 127.0.0.0/8, and nothing else in the test suite uses this address.
const OWN_LOOPBACK: std::net::Ipv4Addr = std::net::Ipv4Addr::new(127, 0, 0, 2);

/// A listener on a free port of [`OWN_LOOPBACK`] (127.0.0.1 where that address
/// is missing, as on macOS). The rest of the test suite, running alongside,
/// sends to ports on 127.0.0.1 that it no longer holds: clients retry a
/// registry or proxy that has stopped, and podman's forwarding for a container
/// published on `127.0.0.1:PORT` diverts new connections to that port while
/// the container starts or stops. A listener given such a port would take that
/// traffic for its own.
fn listen_on_loopback() -> TcpListener {
    TcpListener::bind((OWN_LOOPBACK, 0)).or_else(|_| TcpListener::bind("127.0.0.1:0")).expect("a loopback port")
}

impl Shared {
    fn record(&self, method: &str, target: &str, host: Option<&str>) {
        let mut log = self.log.lock().unwrap();
        log.seen.push(ProxySeen { method: method.to_string(), target: target.to_string() });
        if let Some(host) = host
            && !log.hosts.iter().any(|h| h == host)
        {
            log.hosts.push(host.to_string());
        }
    }

    fn authorized(&self, head: &[String]) -> bool {
        let Some((user, password)) = &self.credentials else { return true };
        let Some((scheme, token)) = header(head, "proxy-authorization").and_then(|v| v.split_once(' ')) else {
            return false;
        };
        scheme.eq_ignore_ascii_case("basic")
            && base64::engine::general_purpose::STANDARD
                .decode(token.trim())
                .is_ok_and(|decoded| decoded == format!("{user}:{password}").as_bytes())
    }
}

fn handle(client: TcpStream, shared: &Shared) -> io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    // A client given `https://` for the proxy itself opens with a TLS
    // ClientHello; this proxy speaks plain HTTP only, as most CI proxies do.
    if reader.fill_buf()?.first() == Some(&0x16) {
        return client.shutdown(Shutdown::Both);
    }
    let Some(head) = read_head(&mut reader)? else { return Ok(()) };
    let mut words = head[0].split_whitespace();
    let (Some(method), Some(target), Some(version)) = (words.next(), words.next(), words.next()) else {
        return reject(client, reader, "400 Bad Request", "");
    };
    let absolute = (method != "CONNECT").then(|| split_absolute(target)).flatten();
    let destination = if method == "CONNECT" { Some(target.to_string()) } else { absolute.clone().map(|a| a.0) };
    shared.record(method, target, destination.as_deref());
    if !shared.authorized(&head) {
        return reject(
            client,
            reader,
            "407 Proxy Authentication Required",
            "Proxy-Authenticate: Basic realm=\"test\"\r\n",
        );
    }
    // Only CONNECT and absolute `http://` URLs are proxy requests; an
    // origin-form request means the client took the proxy for the server.
    let Some(destination) = destination else { return reject(client, reader, "400 Bad Request", "") };
    let Ok(upstream) = TcpStream::connect(&destination) else {
        return reject(client, reader, "502 Bad Gateway", "");
    };
    match absolute {
        None => tunnel(client, reader, upstream),
        Some((host, path)) => {
            let request_line = format!("{method} {path} {version}");
            forward(client, reader, upstream, &request_line, &head, &host)
        }
    }
}

/// Answers `status` and closes the connection without forwarding anything.
fn reject(mut client: TcpStream, reader: BufReader<TcpStream>, status: &str, extra: &str) -> io::Result<()> {
    write!(client, "HTTP/1.1 {status}\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n")?;
    client.shutdown(Shutdown::Write)?;
    linger(&client, reader);
    Ok(())
}

/// Reads what the client still sends until it hangs up: closing a socket with
/// unread bytes resets the connection, which can destroy the answer before
/// the client has read it.
fn linger(client: &TcpStream, mut reader: BufReader<TcpStream>) {
    let _ = client.set_read_timeout(Some(LINGER));
    let _ = io::copy(&mut reader, &mut io::sink());
}

fn tunnel(mut client: TcpStream, reader: BufReader<TcpStream>, upstream: TcpStream) -> io::Result<()> {
    client.write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")?;
    let to_upstream = upstream.try_clone()?;
    // The reader, not the bare socket: it may already hold the client's first bytes.
    let outbound = thread::spawn(move || pipe(reader, to_upstream));
    pipe(upstream, client);
    let _ = outbound.join();
    Ok(())
}

/// Copies until `src` ends, then half-closes `dst` so its peer sees the end too.
fn pipe(mut src: impl Read, mut dst: TcpStream) {
    match io::copy(&mut src, &mut dst) {
        Ok(_) => {
            let _ = dst.shutdown(Shutdown::Write);
        }
        // Also end the other direction, which would otherwise wait on a dead peer.
        Err(_) => {
            let _ = dst.shutdown(Shutdown::Both);
        }
    }
}

/// One request over a fresh upstream connection, then the client connection
/// closes: clients reconnect, and no response framing needs understanding.
fn forward(
    client: TcpStream,
    mut reader: BufReader<TcpStream>,
    upstream: TcpStream,
    request_line: &str,
    head: &[String],
    host: &str,
) -> io::Result<()> {
    let mut out = format!("{request_line}\r\n");
    let mut has_host = false;
    for line in &head[1..] {
        let name = line.split(':').next().unwrap_or("").trim();
        if is_hop_by_hop(name) {
            continue;
        }
        has_host |= name.eq_ignore_ascii_case("host");
        out.push_str(line);
        out.push_str("\r\n");
    }
    if !has_host {
        out.push_str(&format!("Host: {host}\r\n"));
    }
    out.push_str("Connection: close\r\n\r\n");
    let body = Body::of(head);
    let mut to_upstream = upstream.try_clone()?;
    to_upstream.write_all(out.as_bytes())?;
    // The body goes up while the answer comes down: a server may answer
    // before it has read a large upload.
    let sender = thread::spawn(move || {
        // A body that cannot be passed on in full ends upstream too: else
        // upstream waits for the rest of it, and this proxy for its answer.
        if body.copy(&mut reader, &mut to_upstream).is_err() {
            let _ = to_upstream.shutdown(Shutdown::Write);
        }
        reader
    });
    let result = relay_response(BufReader::new(upstream.try_clone()?), &client);
    let _ = client.shutdown(Shutdown::Write);
    // The answer is complete: a body upstream did not wait for goes nowhere.
    let _ = upstream.shutdown(Shutdown::Both);
    let _ = client.set_read_timeout(Some(LINGER));
    if let Ok(reader) = sender.join() {
        linger(&client, reader);
    }
    result
}

/// Sends upstream's answer to the client, saying the connection then closes.
fn relay_response(mut upstream: BufReader<TcpStream>, mut client: &TcpStream) -> io::Result<()> {
    loop {
        let Some(head) = read_head(&mut upstream)? else {
            client.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
            return Ok(());
        };
        let status: u16 = head[0].split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        // Interim answers such as 100 Continue pass as they are; the final one follows.
        let interim = (100..200).contains(&status) && status != 101;
        let mut out = format!("{}\r\n", head[0]);
        for line in &head[1..] {
            if !interim && is_hop_by_hop(line.split(':').next().unwrap_or("").trim()) {
                continue;
            }
            out.push_str(line);
            out.push_str("\r\n");
        }
        if !interim {
            out.push_str("Connection: close\r\n");
        }
        out.push_str("\r\n");
        client.write_all(out.as_bytes())?;
        if !interim {
            io::copy(&mut upstream, &mut client)?;
            return Ok(());
        }
    }
}

/// Headers that describe one hop: the proxy sets its own.
fn is_hop_by_hop(name: &str) -> bool {
    ["connection", "keep-alive", "proxy-connection", "proxy-authorization"].iter().any(|h| h.eq_ignore_ascii_case(name))
}

/// How a request body is delimited.
enum Body {
    Empty,
    Length(u64),
    Chunked,
}

impl Body {
    fn of(head: &[String]) -> Body {
        // Transfer-Encoding wins over Content-Length (RFC 9112, 6.3).
        if header(head, "transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
            Body::Chunked
        } else if let Some(len) = header(head, "content-length").and_then(|v| v.parse().ok()) {
            Body::Length(len)
        } else {
            Body::Empty
        }
    }

    /// Passes the body through byte for byte, stopping where it ends so that
    /// nothing after it is taken for body.
    fn copy(&self, reader: &mut impl BufRead, upstream: &mut impl Write) -> io::Result<()> {
        match *self {
            Body::Empty => Ok(()),
            Body::Length(len) => copy_exact(reader, upstream, len),
            Body::Chunked => loop {
                let size_line = read_line(reader)?;
                upstream.write_all(&size_line)?;
                let size = String::from_utf8_lossy(&size_line);
                let size = size.trim().split(';').next().unwrap_or("").trim();
                let size = u64::from_str_radix(size, 16)
                    .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "a bad chunk size"))?;
                if size == 0 {
                    // Trailer fields, then the empty line that ends the body.
                    loop {
                        let line = read_line(reader)?;
                        upstream.write_all(&line)?;
                        if line == b"\r\n" || line == b"\n" {
                            return Ok(());
                        }
                    }
                }
                copy_exact(reader, upstream, size + 2)?;
            },
        }
    }
}

fn copy_exact(reader: &mut impl BufRead, upstream: &mut impl Write, len: u64) -> io::Result<()> {
    if io::copy(&mut reader.take(len), upstream)? < len {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

/// One line with its line ending; an error at end of stream.
fn read_line(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    if reader.take(MAX_HEAD as u64).read_until(b'\n', &mut line)? == 0 || !line.ends_with(b"\n") {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(line)
}

/// The start line and header lines of a message, without line endings; None
/// when the stream ends before a message starts.
fn read_head(reader: &mut impl BufRead) -> io::Result<Option<Vec<String>>> {
    let mut lines: Vec<String> = Vec::new();
    let mut total = 0;
    loop {
        let mut line = Vec::new();
        let n = reader.take((MAX_HEAD - total) as u64 + 1).read_until(b'\n', &mut line)?;
        total += n;
        if n == 0 && lines.is_empty() {
            return Ok(None);
        }
        if total > MAX_HEAD || !line.ends_with(b"\n") {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "an incomplete or oversized head"));
        }
        let line = String::from_utf8_lossy(&line).trim_end_matches(['\r', '\n']).to_string();
        if line.is_empty() {
            // Clients may send a stray CRLF after a previous body (RFC 9112, 2.2).
            if lines.is_empty() {
                continue;
            }
            return Ok(Some(lines));
        }
        lines.push(line);
    }
}

/// The first value of header `name` in `head`.
fn header<'a>(head: &'a [String], name: &str) -> Option<&'a str> {
    head[1..].iter().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// `http://host[:port]/path?query` as (`host:port`, `/path?query`), the port
/// defaulting to 80; None for anything but an absolute `http` URL.
fn split_absolute(url: &str) -> Option<(String, String)> {
    let rest = url.get(..7).filter(|scheme| scheme.eq_ignore_ascii_case("http://")).map(|_| &url[7..])?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = rest[..end].rsplit('@').next().unwrap_or("");
    if authority.is_empty() {
        return None;
    }
    let path = rest[end..].split('#').next().unwrap_or("");
    let path = if path.starts_with('/') { path.to_string() } else { format!("/{path}") };
    // The text after an IPv6 literal's `]`, or the whole authority without one.
    let has_port = authority.rsplit(']').next().is_some_and(|tail| tail.contains(':'));
    let host = if has_port { authority.to_string() } else { format!("{authority}:80") };
    Some((host, path))
}

/// Percent-encodes all but RFC 3986's unreserved characters, so that a `:` or
/// `@` in a password cannot end the userinfo early.
fn escape_userinfo(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
    const WAIT: Duration = Duration::from_secs(10);

    /// An HTTP server answering every request with [`OK`], one request per
    /// connection; each raw request it read comes out of the receiver.
    fn origin() -> (String, mpsc::Receiver<String>) {
        let listener = listen_on_loopback();
        let addr = listener.local_addr().unwrap().to_string();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let tx = tx.clone();
                thread::spawn(move || {
                    let request = read_request(&mut conn);
                    let _ = tx.send(request);
                    let _ = conn.write_all(OK.as_bytes());
                });
            }
        });
        (addr, rx)
    }

    /// A whole request, framed independently of the proxy's own parsing.
    fn read_request(conn: &mut TcpStream) -> String {
        conn.set_read_timeout(Some(WAIT)).unwrap();
        let mut buf = Vec::new();
        let mut byte = [0];
        let complete = |buf: &[u8]| {
            let text = String::from_utf8_lossy(buf).to_string();
            let Some((head, body)) = text.split_once("\r\n\r\n") else { return false };
            let head = head.to_ascii_lowercase();
            if head.contains("transfer-encoding: chunked") {
                // The last chunk, then trailer fields up to an empty line.
                return (body.starts_with("0\r\n") || body.contains("\r\n0\r\n")) && body.ends_with("\r\n\r\n");
            }
            let len = head.lines().find_map(|l| l.strip_prefix("content-length: ")).map_or(0, |n| n.parse().unwrap());
            body.len() >= len
        };
        while !complete(&buf) && conn.read(&mut byte).unwrap() == 1 {
            buf.push(byte[0]);
        }
        String::from_utf8(buf).unwrap()
    }

    /// Sends `request` to the proxy and reads until the proxy closes.
    fn exchange(proxy: &ForwardProxy, request: &str) -> String {
        let mut conn = TcpStream::connect(&proxy.addr).unwrap();
        conn.set_read_timeout(Some(WAIT)).unwrap();
        conn.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).unwrap();
        answer
    }

    #[test]
    fn forwards_an_absolute_form_get_in_origin_form() {
        let (origin, requests) = origin();
        let proxy = ForwardProxy::start();
        let answer = exchange(
            &proxy,
            &format!("GET http://{origin}/v2/?n=1 HTTP/1.1\r\nHost: {origin}\r\nProxy-Connection: keep-alive\r\n\r\n"),
        );
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.ends_with("\r\n\r\nok"), "{answer}");
        let request = requests.recv_timeout(WAIT).unwrap();
        assert_eq!(request, format!("GET /v2/?n=1 HTTP/1.1\r\nHost: {origin}\r\nConnection: close\r\n\r\n"));
        assert_eq!(
            proxy.seen(),
            vec![ProxySeen { method: "GET".to_string(), target: format!("http://{origin}/v2/?n=1") }]
        );
        assert_eq!(proxy.hosts(), vec![origin]);
    }

    #[test]
    fn forwards_request_bodies_as_they_are() {
        let (origin, requests) = origin();
        let proxy = ForwardProxy::start();
        for (framing, body) in
            [("Content-Length: 5", "hello"), ("Transfer-Encoding: chunked", "4;x=y\r\nwiki\r\n0\r\nT: 1\r\n\r\n")]
        {
            let answer = exchange(
                &proxy,
                &format!("PUT http://{origin}/up HTTP/1.1\r\nHost: {origin}\r\n{framing}\r\n\r\n{body}"),
            );
            assert!(answer.ends_with("\r\n\r\nok"), "{answer}");
            let request = requests.recv_timeout(WAIT).unwrap();
            assert!(request.starts_with("PUT /up HTTP/1.1\r\n"), "{request}");
            assert!(request.ends_with(&format!("{framing}\r\nConnection: close\r\n\r\n{body}")), "{request}");
        }
        assert_eq!(proxy.hosts(), vec![origin]);
    }

    #[test]
    fn a_body_cut_short_ends_upstream_too() {
        let (origin, requests) = origin();
        let proxy = ForwardProxy::start();
        let mut conn = TcpStream::connect(&proxy.addr).unwrap();
        conn.set_read_timeout(Some(WAIT)).unwrap();
        write!(conn, "PUT http://{origin}/up HTTP/1.1\r\nHost: {origin}\r\nContent-Length: 10\r\n\r\nhello").unwrap();
        conn.shutdown(Shutdown::Write).unwrap();
        // The origin sees the request end, rather than wait for the rest of the body.
        let request = requests.recv_timeout(WAIT).unwrap();
        assert!(request.ends_with("Content-Length: 10\r\nConnection: close\r\n\r\nhello"), "{request}");
        let mut answer = String::new();
        conn.read_to_string(&mut answer).unwrap();
        assert!(answer.ends_with("\r\n\r\nok"), "{answer}");
    }

    #[test]
    fn tunnels_connect_both_ways() {
        let (origin, requests) = origin();
        let proxy = ForwardProxy::start();
        let mut conn = TcpStream::connect(&proxy.addr).unwrap();
        conn.set_read_timeout(Some(WAIT)).unwrap();
        write!(conn, "CONNECT {origin} HTTP/1.1\r\nHost: {origin}\r\n\r\n").unwrap();
        let mut established = Vec::new();
        let mut byte = [0];
        while !established.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap() == 1 {
            established.push(byte[0]);
        }
        assert_eq!(String::from_utf8_lossy(&established), "HTTP/1.1 200 Connection Established\r\n\r\n");
        let inner = "GET /inside HTTP/1.1\r\nHost: registry\r\n\r\n";
        conn.write_all(inner.as_bytes()).unwrap();
        // The origin closing after its answer has to reach the client as the end of the tunnel.
        let mut answer = String::new();
        conn.read_to_string(&mut answer).unwrap();
        assert_eq!(answer, OK);
        assert_eq!(requests.recv_timeout(WAIT).unwrap(), inner);
        assert_eq!(proxy.seen(), vec![ProxySeen { method: "CONNECT".to_string(), target: origin.clone() }]);
        assert_eq!(proxy.hosts(), vec![origin]);
    }

    #[test]
    fn demands_proxy_credentials() {
        let (origin, requests) = origin();
        let proxy = ForwardProxy::start_with_auth("ci", "s3cret:@");
        assert_eq!(proxy.url_with_credentials(), format!("http://ci:s3cret%3A%40@{}", proxy.addr));
        let get = |auth: &str| format!("GET http://{origin}/ HTTP/1.1\r\nHost: {origin}\r\n{auth}\r\n");
        for refused in [
            get(""),
            // base64("ci:wrong")
            get("Proxy-Authorization: Basic Y2k6d3Jvbmc=\r\n"),
            format!("CONNECT {origin} HTTP/1.1\r\nHost: {origin}\r\n\r\n"),
        ] {
            let answer = exchange(&proxy, &refused);
            assert!(answer.starts_with("HTTP/1.1 407 Proxy Authentication Required\r\n"), "{answer}");
            assert!(answer.contains("\r\nProxy-Authenticate: Basic realm=\"test\"\r\n"), "{answer}");
        }
        // base64("ci:s3cret:@")
        let answer = exchange(&proxy, &get("Proxy-Authorization: Basic Y2k6czNjcmV0OkA=\r\n"));
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n") && answer.ends_with("\r\n\r\nok"), "{answer}");
        let request = requests.recv_timeout(WAIT).unwrap();
        assert!(!request.to_ascii_lowercase().contains("proxy-authorization"), "{request}");
        assert!(requests.try_recv().is_err(), "a refused request reached the origin");
        assert_eq!(proxy.seen().len(), 4);
    }
}
