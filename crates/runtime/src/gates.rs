//! Quality gates: each a shell command run in its own container of the test
//! image, as the image's user, in its workdir, with the network off unless
//! asked. Every gate runs even when an earlier one fails.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::sync::mpsc;

use crate::{Containers, Error, Runtime, xml_escape};

/// One gate to run.
#[derive(Debug, Clone)]
pub struct Gate {
    /// Its name.
    pub name: String,
    /// The shell command.
    pub run: String,
}

/// How gates run.
#[derive(Debug, Clone)]
pub struct GateOptions {
    /// The test image, as the runtime names it.
    pub image: String,
    /// `uid:gid` or a user name; the image's user.
    pub user: Option<String>,
    /// The working directory.
    pub workdir: Option<String>,
    /// Allow network access.
    pub network: bool,
}

/// The outcome of one gate.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GateResult {
    /// The gate's name.
    pub name: String,
    /// Its exit code (-1 when it was killed).
    pub exit_code: i32,
    /// Wall time.
    pub seconds: f64,
    /// The last lines of its output, for reports.
    pub tail: Vec<String>,
}

impl GateResult {
    /// True when the gate passed.
    pub fn passed(&self) -> bool {
        self.exit_code == 0
    }
}

const TAIL: usize = 200;

/// Runs `gate`, passing each output line to `on_line` as it comes.
pub async fn run(
    runtime: &Runtime,
    containers: &Containers,
    gate: &Gate,
    opts: &GateOptions,
    mut on_line: impl FnMut(&str),
) -> Result<GateResult, Error> {
    let name = containers.name(&gate.name);
    let mut args: Vec<String> = vec!["run".into(), "--rm".into(), "--name".into(), name];
    // The test image inherits the production healthcheck, which means nothing for a gate
    // (and podman would try to schedule it with systemd).
    args.push("--no-healthcheck".into());
    if !opts.network {
        args.extend(["--network".into(), "none".into()]);
    }
    if let Some(u) = &opts.user {
        args.extend(["--user".into(), u.clone()]);
    }
    if let Some(w) = &opts.workdir {
        args.extend(["--workdir".into(), w.clone()]);
    }
    // Kept until the gate ends; the runtime reads it as the container starts.
    let (env_args, _env_file) = runtime.env_file()?;
    args.extend(env_args);
    args.extend(["--entrypoint".into(), "/bin/sh".into(), opts.image.clone(), "-c".into(), gate.run.clone()]);

    let started = Instant::now();
    let mut child =
        runtime.command().args(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().map_err(|e| {
            Error::Failed { program: runtime.program().to_string(), what: "run".into(), detail: e.to_string() }
        })?;
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let pump = |stream: Option<Box<dyn tokio::io::AsyncRead + Unpin + Send>>, tx: mpsc::UnboundedSender<String>| async move {
        if let Some(s) = stream {
            let mut lines = BufReader::new(s).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        }
    };
    let out = child.stdout.take().map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>);
    let err = child.stderr.take().map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>);
    tokio::spawn(pump(out, tx.clone()));
    tokio::spawn(pump(err, tx));
    let mut tail: Vec<String> = Vec::new();
    while let Some(line) = rx.recv().await {
        on_line(&line);
        tail.push(line);
        if tail.len() > TAIL {
            tail.remove(0);
        }
    }
    let status = child.wait().await.map_err(|e| Error::Failed {
        program: runtime.program().to_string(),
        what: "run".into(),
        detail: e.to_string(),
    })?;
    Ok(GateResult {
        name: gate.name.clone(),
        exit_code: status.code().unwrap_or(-1),
        seconds: started.elapsed().as_secs_f64(),
        tail,
    })
}

/// A JUnit XML report of `results`.
pub fn junit(results: &[GateResult]) -> String {
    let failures = results.iter().filter(|r| !r.passed()).count();
    let total: f64 = results.iter().map(|r| r.seconds).sum();
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n<testsuite name=\"oxbuild assess\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" time=\"{total:.3}\">\n",
        results.len()
    );
    for r in results {
        let output = xml_escape(&r.tail.join("\n"));
        xml.push_str(&format!(
            "  <testcase classname=\"oxbuild.assess\" name=\"{}\" time=\"{:.3}\">\n",
            xml_escape(&r.name),
            r.seconds
        ));
        if !r.passed() {
            xml.push_str(&format!("    <failure message=\"exit code {}\">{output}</failure>\n", r.exit_code));
        }
        xml.push_str(&format!("    <system-out>{output}</system-out>\n  </testcase>\n"));
    }
    xml.push_str("</testsuite>\n</testsuites>\n");
    xml
}

/// A duration as people read it: `850ms`, `12.3s`, `2m05s`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 1.0 {
        format!("{}ms", d.as_millis())
    } else if s < 60.0 {
        format!("{s:.1}s")
    } else {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junit_marks_failures_and_escapes_output() {
        let results = vec![
            GateResult { name: "black".into(), exit_code: 0, seconds: 1.0, tail: vec!["ok".into()] },
            GateResult { name: "pytest".into(), exit_code: 1, seconds: 2.0, tail: vec!["assert 1 < 2 & \"x\"".into()] },
        ];
        let xml = junit(&results);
        assert!(xml.contains("tests=\"2\" failures=\"1\""), "{xml}");
        assert!(
            xml.contains("<failure message=\"exit code 1\">assert 1 &lt; 2 &amp; &quot;x&quot;</failure>"),
            "{xml}"
        );
        assert_eq!(xml.matches("<failure").count(), 1);
    }
}
