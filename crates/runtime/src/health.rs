//! The health stage: start the image detached with its ports published on
//! loopback, then run its healthcheck test in the container, every second
//! (or the image's interval, when shorter) with the image's own timeout,
//! failures counted as the image's interval, retries and start period say,
//! until it is healthy, unhealthy, exits, or an overall deadline passes.

use std::collections::VecDeque;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::{Containers, Error, Runtime};

/// How often [`run`] probes until the container first answers healthy (or
/// the image's interval, when shorter): a container that is ready is seen
/// within a second, where the image's interval (30 s by default) is how
/// often a runtime checks one that is up.
pub const WAITING_PACE: Duration = Duration::from_secs(1);

/// The image's `Healthcheck`, as in its config.
#[derive(Debug, Clone)]
pub struct Check {
    /// `["CMD", …]` or `["CMD-SHELL", "…"]`.
    pub test: Vec<String>,
    /// Between probes.
    pub interval: Duration,
    /// Per probe.
    pub timeout: Duration,
    /// Consecutive failures that make it unhealthy.
    pub retries: u32,
    /// Failures in this time after start do not count.
    pub start_period: Duration,
}

impl Check {
    /// Reads `config.Healthcheck` of an image config (Docker's defaults for
    /// missing values); None when the image has none.
    pub fn from_config(config: &serde_json::Value) -> Option<Check> {
        let hc = &config["config"]["Healthcheck"];
        let test: Vec<String> = hc["Test"].as_array()?.iter().filter_map(|v| v.as_str().map(String::from)).collect();
        if test.is_empty() || test[0] == "NONE" {
            return None;
        }
        let ns = |k: &str, default: u64| Duration::from_nanos(hc[k].as_u64().filter(|v| *v > 0).unwrap_or(default));
        Some(Check {
            test,
            interval: ns("Interval", 30_000_000_000),
            timeout: ns("Timeout", 30_000_000_000),
            retries: hc["Retries"].as_u64().filter(|r| *r > 0).unwrap_or(3) as u32,
            start_period: Duration::from_nanos(hc["StartPeriod"].as_u64().unwrap_or(0)),
        })
    }

    fn command(&self) -> Vec<String> {
        match self.test.first().map(String::as_str) {
            Some("CMD-SHELL") => vec!["/bin/sh".into(), "-c".into(), self.test[1..].join(" ")],
            Some("CMD") => self.test[1..].to_vec(),
            _ => self.test.clone(),
        }
    }
}

/// One probe's result.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Probe {
    /// Seconds since the container started.
    pub at: f64,
    /// Exit code, or None when it timed out.
    pub exit_code: Option<i32>,
    /// What it printed (trimmed, at most 2 KiB).
    pub output: String,
}

/// How the stage ended.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// The healthcheck passed.
    Healthy {
        /// Seconds from start to the passing probe.
        seconds: f64,
    },
    /// `retries` consecutive failures after the start period.
    Unhealthy,
    /// The container stopped by itself.
    Exited {
        /// Its exit code.
        exit_code: i32,
    },
    /// The overall deadline passed first.
    Deadline {
        /// The deadline, in seconds.
        seconds: f64,
    },
    /// The probe passed inside the container, but its port does not answer
    /// from outside it: the app listens on the container's loopback only,
    /// where no other container, node or host can reach it.
    Unreachable {
        /// The port the probe knocks on, in the container.
        port: u16,
        /// Seconds from start to the passing probe.
        seconds: f64,
    },
}

/// The stage's full report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// How it ended.
    pub outcome: Outcome,
    /// The last probes, oldest first.
    pub probes: Vec<Probe>,
    /// The container's logs (on failure only).
    pub logs: String,
    /// Published ports: container port → loopback host port.
    pub ports: Vec<(u16, u16)>,
}

/// Starts `image` and waits for its healthcheck. `ports` are published on
/// 127.0.0.1 at free host ports. `on_probe` sees each probe as it happens.
pub async fn run(
    runtime: &Runtime,
    containers: &Containers,
    image: &str,
    check: &Check,
    ports: &[u16],
    deadline: Duration,
    mut on_probe: impl FnMut(&Probe),
) -> Result<Report, Error> {
    // The runtime picks each host port itself, by probing for a free one and
    // then binding it; another process can take the port in between, so a
    // start that fails with "address already in use" is tried again.
    let mut attempt = 0;
    // The probe's own port is published too, to be tried from outside.
    let knocks = probe_port(check).filter(|_| local_engine());
    let mut published_too: Vec<u16> = ports.to_vec();
    published_too.extend(knocks.filter(|p| !ports.contains(p)));
    let name = loop {
        let name = containers.name("health");
        let mut args: Vec<String> = vec!["run".into(), "-d".into(), "--name".into(), name.clone()];
        if runtime.program() == "podman" {
            // Podman's own timer needs systemd; oxbuild polls instead.
            args.push("--health-interval=disable".into());
        }
        for p in &published_too {
            args.extend(["-p".into(), format!("127.0.0.1::{p}")]);
        }
        // Read by the runtime as it creates the container, then removed.
        let (env_args, _env_file) = runtime.env_file()?;
        args.extend(env_args);
        args.push(image.to_string());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        match runtime.output("run", &refs).await {
            Ok(_) => break name,
            Err(e) if attempt < 3 && e.to_string().contains("address already in use") => attempt += 1,
            Err(e) => return Err(e),
        }
    };
    let started = Instant::now();
    let published = published_ports(runtime, &name, &published_too).await;

    let mut probes: VecDeque<Probe> = VecDeque::new();
    let mut failures = 0;
    // A failure counts towards `retries` at most once per interval, so the
    // time to "unhealthy" is the image's own however often this probes.
    let mut counted: Option<Instant> = None;
    let mut wait = Duration::from_millis(300).min(check.interval);
    let outcome = loop {
        if let Some(code) = exited(runtime, &name).await {
            break Outcome::Exited { exit_code: code };
        }
        if started.elapsed() >= deadline {
            break Outcome::Deadline { seconds: deadline.as_secs_f64() };
        }
        tokio::time::sleep(wait.min(deadline.saturating_sub(started.elapsed()))).await;
        wait = WAITING_PACE.min(check.interval);
        if let Some(code) = exited(runtime, &name).await {
            break Outcome::Exited { exit_code: code };
        }
        let probe = probe(runtime, &name, check, started).await;
        let ok = probe.exit_code == Some(0);
        // A container that exited while it was probed fails the probe with
        // the runtime's own complaint ("can only create exec sessions on
        // running containers"): its exit is what to report, not that.
        if !ok && let Some(code) = exited(runtime, &name).await {
            break Outcome::Exited { exit_code: code };
        }
        on_probe(&probe);
        probes.push_back(probe);
        if probes.len() > 5 {
            probes.pop_front();
        }
        if ok {
            let seconds = started.elapsed().as_secs_f64();
            if let Some(port) = knocks
                && let Some((_, host)) = published.iter().find(|(c, _)| *c == port)
                && !answers(*host).await
            {
                break Outcome::Unreachable { port, seconds };
            }
            break Outcome::Healthy { seconds };
        }
        if started.elapsed() >= check.start_period && counted.is_none_or(|t| t.elapsed() >= check.interval) {
            counted = Some(Instant::now());
            failures += 1;
            if failures >= check.retries {
                break Outcome::Unhealthy;
            }
        }
    };
    let logs = if matches!(outcome, Outcome::Healthy { .. }) { String::new() } else { logs(runtime, &name).await };
    let ports = published.into_iter().filter(|(c, _)| ports.contains(c)).collect();
    Ok(Report { outcome, probes: probes.into(), logs, ports })
}

/// The port in the container that an HTTP probe knocks on: that of the
/// first `http://` URL its command names on the container's own loopback.
pub fn probe_port(check: &Check) -> Option<u16> {
    let url = check.test.iter().flat_map(|w| w.split(['\'', '"', ' '])).find_map(|w| w.split_once("http://"))?.1;
    let authority = url.split(['/', '?', '#']).next()?;
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && !p.contains(']') => (h, p.parse().ok()?),
        _ => (authority, 80),
    };
    matches!(host, "127.0.0.1" | "localhost" | "[::1]").then_some(port)
}

/// Whether the runtime's containers run on this machine, so that their
/// ports published on 127.0.0.1 are this machine's: not with a remote
/// engine (`DOCKER_HOST` or podman's `CONTAINER_HOST` other than a unix
/// socket).
fn local_engine() -> bool {
    ["DOCKER_HOST", "CONTAINER_HOST"]
        .iter()
        .all(|v| std::env::var(v).map_or(true, |h| h.is_empty() || h.starts_with("unix://")))
}

/// Whether a server answers at 127.0.0.1:`host_port`, which the runtime
/// forwards into the container: the connection is accepted and not closed
/// at once. A server listening on the container's loopback only is not
/// reached through the forward: the connection is refused, or (rootless
/// networking, whose proxy accepts first) closed with nothing said. A
/// server that waits for a request, or greets, is there. (A plain TCP
/// check, not an HTTP client: nothing is sent.)
async fn answers(host_port: u16) -> bool {
    use tokio::io::AsyncReadExt;
    let connect = tokio::net::TcpStream::connect(("127.0.0.1", host_port));
    let Ok(Ok(mut stream)) = tokio::time::timeout(Duration::from_secs(2), connect).await else { return false };
    let mut byte = [0u8; 1];
    match tokio::time::timeout(Duration::from_millis(500), stream.read(&mut byte)).await {
        // Closed at once, or reset.
        Ok(Ok(0)) | Ok(Err(_)) => false,
        // It greeted, or it waits for a request.
        Ok(Ok(_)) | Err(_) => true,
    }
}

async fn probe(runtime: &Runtime, name: &str, check: &Check, started: Instant) -> Probe {
    let at = started.elapsed().as_secs_f64();
    let mut cmd = runtime.command();
    cmd.arg("exec").arg(name).args(check.command()).stdout(Stdio::piped()).stderr(Stdio::piped());
    match tokio::time::timeout(check.timeout, cmd.output()).await {
        Ok(Ok(out)) => {
            let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&out.stderr));
            let text = text.trim();
            let cut = text.char_indices().nth(2048).map(|(i, _)| i).unwrap_or(text.len());
            Probe { at, exit_code: Some(out.status.code().unwrap_or(-1)), output: text[..cut].to_string() }
        }
        Ok(Err(e)) => Probe { at, exit_code: Some(-1), output: format!("could not run the probe: {e}") },
        Err(_) => {
            Probe { at, exit_code: None, output: format!("timed out after {}", crate::gates::human(check.timeout)) }
        }
    }
}

/// The exit code when the container is no longer running.
async fn exited(runtime: &Runtime, name: &str) -> Option<i32> {
    let out =
        runtime.output("inspect", &["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", name]).await.ok()?;
    let mut parts = out.split_whitespace();
    let status = parts.next()?;
    let code = parts.next()?.parse().ok()?;
    matches!(status, "exited" | "stopped" | "dead").then_some(code)
}

async fn logs(runtime: &Runtime, name: &str) -> String {
    // Right after a container exits, its log may not be flushed yet: ask again
    // for a moment rather than show nothing.
    let mut text = String::new();
    for _ in 0..10 {
        // Not `--tail`: podman 4.3 sometimes answers it with nothing for a
        // container that just exited. The last 200 lines are cut here instead.
        text = match runtime.command().args(["logs", name]).output().await {
            Ok(out) => format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
            Err(e) => return format!("(no logs: {e})"),
        };
        let lines: Vec<&str> = text.lines().collect();
        text = lines[lines.len().saturating_sub(200)..].join("\n");
        if !text.trim().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    text
}

async fn published_ports(runtime: &Runtime, name: &str, ports: &[u16]) -> Vec<(u16, u16)> {
    let mut out = Vec::new();
    for p in ports {
        if let Ok(text) = runtime.output("port", &["port", name, &format!("{p}/tcp")]).await
            && let Some(host) =
                text.lines().next().and_then(|l| l.rsplit(':').next()).and_then(|h| h.trim().parse().ok())
        {
            out.push((*p, host));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probes_port_is_read_from_its_command() {
        let check = |test: &[&str]| Check {
            test: test.iter().map(|s| s.to_string()).collect(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            start_period: Duration::ZERO,
            retries: 3,
        };
        let python = "try:\n    r = u.build_opener(Stay).open(\"http://127.0.0.1:8001/health\", timeout=2.0)\n";
        assert_eq!(probe_port(&check(&["CMD", "python3", "-c", python])), Some(8001));
        assert_eq!(probe_port(&check(&["CMD-SHELL", "curl -f http://localhost/ || exit 1"])), Some(80));
        assert_eq!(probe_port(&check(&["CMD-SHELL", "wget -qO- 'http://[::1]:9000/ping'"])), Some(9000));
        // Another host, or no URL: nothing to try from outside.
        assert_eq!(probe_port(&check(&["CMD-SHELL", "curl -f http://db:5432/"])), None);
        assert_eq!(probe_port(&check(&["CMD", "pg_isready"])), None);
    }

    #[test]
    fn healthcheck_config_is_read_with_docker_defaults() {
        let c = Check::from_config(&serde_json::json!({"config": {"Healthcheck": {"Test": ["CMD-SHELL", "curl -f x"], "Interval": 2_000_000_000u64}}})).unwrap();
        assert_eq!(c.interval, Duration::from_secs(2));
        assert_eq!(c.timeout, Duration::from_secs(30));
        assert_eq!(c.retries, 3);
        assert_eq!(c.command(), vec!["/bin/sh", "-c", "curl -f x"]);
        assert!(Check::from_config(&serde_json::json!({"config": {"Healthcheck": {"Test": ["NONE"]}}})).is_none());
        assert!(Check::from_config(&serde_json::json!({"config": {}})).is_none());
    }
}
