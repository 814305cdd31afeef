//! The runtime config: entrypoint, env, workdir, user, ports, labels and the
//! healthcheck, written over the base config without losing its other fields.

use std::time::{Duration, UNIX_EPOCH};

use oxbuild_config::{Config, HealthcheckConfig, Probe};
use oxbuild_image::{Digest, Owner};
use serde_json::{Map, Value, json};

/// One layer oxbuild adds, for `rootfs.diff_ids` and `history`.
#[derive(Debug, Clone)]
pub struct AddedLayer {
    /// The uncompressed digest.
    pub diff_id: Digest,
    /// What made it, for `history[].created_by`.
    pub created_by: String,
}

/// RFC 3339 time of `epoch` seconds, as `created` fields want it.
pub fn timestamp(epoch: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(epoch)).to_string()
}

/// Applies `cfg` to the base config `base` (every unknown field is kept).
#[allow(clippy::too_many_arguments)]
/// A warning when the image, whose oxbuild.toml sets no `entrypoint` or
/// `cmd`, runs what its base runs and that is no app: nothing, a shell, or
/// an interpreter's prompt (`python3`, `node`). A base with a command of
/// its own (an entrypoint script) is taken to mean it.
pub fn base_command_is_no_app(config: &serde_json::Value) -> Option<String> {
    let c = &config["config"];
    let words = |key: &str| -> Vec<String> {
        c[key].as_array().into_iter().flatten().filter_map(|v| v.as_str().map(str::to_string)).collect()
    };
    let command: Vec<String> = words("Entrypoint").into_iter().chain(words("Cmd")).collect();
    let program = command.first().map(|p| p.rsplit('/').next().unwrap_or(p).to_string());
    let bare = match program.as_deref() {
        None => true,
        Some(p) => {
            command.len() == 1
                && (matches!(p, "sh" | "bash" | "dash" | "ash" | "node" | "irb" | "ruby")
                    || p.strip_prefix("python").is_some_and(|v| v.chars().all(|c| c.is_ascii_digit() || c == '.')))
        }
    };
    bare.then(|| {
        let runs = if command.is_empty() { "nothing".to_string() } else { format!("`{}`", command.join(" ")) };
        format!(
            "oxbuild.toml sets no [image] entrypoint or cmd, so the image runs its base's command, {runs}, and not the app: set [image] entrypoint to how the app starts"
        )
    })
}

pub fn apply(
    base: &mut Value,
    cfg: &Config,
    runner: ProbeRunner,
    owner: Owner,
    env_defaults: &[(String, String)],
    layers: &[AddedLayer],
    epoch: u64,
) {
    if !base.is_object() {
        *base = json!({});
    }
    let created = timestamp(epoch);
    let root = base.as_object_mut().expect("made an object above");
    root.insert("created".into(), json!(created));
    root.entry("architecture").or_insert(json!("amd64"));
    root.entry("os").or_insert(json!("linux"));

    let img = &cfg.image;
    let c = object(root, "config");
    if let Some(ep) = &img.entrypoint {
        c.insert("Entrypoint".into(), json!(ep));
        // Docker resets CMD when ENTRYPOINT is set; a base's CMD would otherwise
        // become arguments to the new entrypoint.
        c.insert("Cmd".into(), img.cmd.as_ref().map_or(Value::Null, |cmd| json!(cmd)));
    } else if let Some(cmd) = &img.cmd {
        c.insert("Cmd".into(), json!(cmd));
    }
    c.insert("WorkingDir".into(), json!(img.workdir));
    c.insert("User".into(), json!(format!("{}:{}", owner.uid, owner.gid)));

    let mut env: Vec<String> = c
        .get("Env")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
        .unwrap_or_default();
    // The layers' PATH and VIRTUAL_ENV first, so that oxbuild.toml can still
    // override them. Two layers' PATHs (a venv's bin and node_modules/.bin)
    // are joined, the later one's own directories first.
    let mut defaults: Vec<(String, String)> = Vec::new();
    for (k, v) in env_defaults {
        match defaults.iter_mut().find(|(d, _)| d == k) {
            Some((_, earlier)) if k == "PATH" => {
                let mut joined: Vec<&str> = v.split(':').filter(|p| !earlier.split(':').any(|q| q == *p)).collect();
                joined.extend(earlier.split(':'));
                *earlier = joined.join(":");
            }
            Some((_, earlier)) => *earlier = v.clone(),
            None => defaults.push((k.clone(), v.clone())),
        }
    }
    let settings = defaults.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    for (k, v) in settings.chain(img.env.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
        let entry = format!("{k}={v}");
        match env.iter_mut().find(|e| e.split('=').next() == Some(k)) {
            Some(slot) => *slot = entry,
            None => env.push(entry),
        }
    }
    c.insert("Env".into(), json!(env));

    if !img.ports.is_empty() {
        let ports = object(c, "ExposedPorts");
        for p in &img.ports {
            ports.insert(format!("{p}/tcp"), json!({}));
        }
    }
    if !img.labels.is_empty() {
        let labels = object(c, "Labels");
        for (k, v) in &img.labels {
            labels.insert(k.clone(), json!(v));
        }
    }
    if let Some(hc) = &cfg.healthcheck {
        c.insert("Healthcheck".into(), healthcheck(hc, runner));
    }

    let rootfs = object(root, "rootfs");
    rootfs.insert("type".into(), json!("layers"));
    let diff_ids = rootfs.entry("diff_ids").or_insert(json!([]));
    if !diff_ids.is_array() {
        *diff_ids = json!([]);
    }
    let diff_ids = diff_ids.as_array_mut().expect("made an array above");
    for l in layers {
        diff_ids.push(json!(l.diff_id));
    }
    let history = root.entry("history").or_insert(json!([]));
    if !history.is_array() {
        *history = json!([]);
    }
    let history = history.as_array_mut().expect("made an array above");
    for l in layers {
        history.push(json!({"created": created, "created_by": l.created_by, "comment": "oxbuild"}));
    }
}

/// Adds `layers` to an existing config (diff_ids, history) and sets `env`
/// entries that are not set yet, keeping everything else as it is.
pub fn extend(config: &mut Value, env: &[(String, String)], layers: &[AddedLayer], epoch: u64) {
    let created = timestamp(epoch);
    let Some(root) = config.as_object_mut() else { return };
    let c = object(root, "config");
    let mut current: Vec<String> = c
        .get("Env")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
        .unwrap_or_default();
    for (k, v) in env {
        if !current.iter().any(|e| e.split('=').next() == Some(k.as_str())) {
            current.push(format!("{k}={v}"));
        }
    }
    c.insert("Env".into(), json!(current));
    let rootfs = object(root, "rootfs");
    let diff_ids = rootfs.entry("diff_ids").or_insert(json!([]));
    if let Some(ids) = diff_ids.as_array_mut() {
        ids.extend(layers.iter().map(|l| json!(l.diff_id)));
    }
    let history = root.entry("history").or_insert(json!([]));
    if let Some(h) = history.as_array_mut() {
        h.extend(layers.iter().map(|l| json!({"created": created, "created_by": l.created_by, "comment": "oxbuild"})));
    }
}

fn object<'a>(parent: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let v = parent.entry(key).or_insert(json!({}));
    if !v.is_object() {
        *v = json!({});
    }
    v.as_object_mut().expect("made an object above")
}

/// What runs an `http =` probe inside the image: slim images have no curl
/// or wget, so the image's own Python, else its node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeRunner {
    /// `python3 -c` with the standard library.
    Python,
    /// `node -e` with its `http`/`https` modules.
    Node,
}

impl ProbeRunner {
    /// The image's Python when the base has one, else node when it has
    /// node, else Python (a venv layer may bring it).
    pub fn for_base(fs: &std::collections::BTreeMap<String, oxbuild_image::rootfs::Node>) -> ProbeRunner {
        let python = fs.keys().any(|p| {
            let name = p.strip_prefix("usr/local/bin/").or_else(|| p.strip_prefix("usr/bin/"));
            name.is_some_and(|n| n.starts_with("python3"))
        });
        let node = oxbuild_node::target::NODE_BINARIES.iter().any(|p| fs.contains_key(*p));
        if !python && node { ProbeRunner::Node } else { ProbeRunner::Python }
    }
}

/// The Docker `Healthcheck` object for `hc` (durations in nanoseconds).
pub fn healthcheck(hc: &HealthcheckConfig, runner: ProbeRunner) -> Value {
    let test = match (hc.probe(), runner) {
        (Probe::Exec(cmd), _) => std::iter::once("CMD".to_string()).chain(cmd).collect::<Vec<_>>(),
        (Probe::Shell(s), _) => vec!["CMD-SHELL".into(), s],
        (Probe::Http(url), ProbeRunner::Python) => {
            vec!["CMD".into(), "python3".into(), "-c".into(), http_probe(&url, hc.timeout)]
        }
        (Probe::Http(url), ProbeRunner::Node) => {
            vec!["CMD".into(), "node".into(), "-e".into(), node_http_probe(&url, hc.timeout)]
        }
    };
    json!({
        "Test": test,
        "Interval": hc.interval.as_nanos() as u64,
        "Timeout": hc.timeout.as_nanos() as u64,
        "StartPeriod": hc.start_period.as_nanos() as u64,
        "Retries": hc.retries,
    })
}

/// A probe that needs only the image's Python standard library: slim images
/// have no curl or wget. Healthy on any answer below 400, a redirect
/// included: it is not followed (as node's probe and Docker's curl ones do
/// not), since an app behind TLS termination answers plain HTTP with a
/// redirect to an `https://` it does not serve itself.
pub fn http_probe(url: &str, timeout: Duration) -> String {
    // A JSON string literal is also a valid Python string literal.
    let url = serde_json::to_string(url).expect("strings serialise");
    let secs = timeout.as_secs_f64().max(0.001);
    format!(
        "import sys, urllib.request as u, urllib.error as e\nclass Stay(u.HTTPRedirectHandler):\n    def redirect_request(self, *args):\n        return None\ntry:\n    r = u.build_opener(Stay).open({url}, timeout={secs})\n    sys.exit(0 if r.status < 400 else 1)\nexcept e.HTTPError as answer:\n    print(answer)\n    sys.exit(0 if answer.code < 400 else 1)\nexcept Exception as failed:\n    print(failed)\n    sys.exit(1)\n"
    )
}

/// The same probe for node: healthy on any answer below 400.
pub fn node_http_probe(url: &str, timeout: Duration) -> String {
    // A JSON string literal is also a valid JavaScript string literal.
    let url = serde_json::to_string(url).expect("strings serialise");
    let ms = timeout.as_millis().max(1);
    format!(
        "const u = new URL({url});\nconst r = require(u.protocol === 'https:' ? 'https' : 'http').get(u, {{ timeout: {ms} }}, (res) => process.exit(res.statusCode < 400 ? 0 : 1));\nr.on('timeout', () => {{ console.log('timed out'); r.destroy(); process.exit(1); }});\nr.on('error', (e) => {{ console.log(String(e)); process.exit(1); }});\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_left_with_its_bases_prompt_is_said_and_a_bases_own_command_is_not() {
        let with = |v: serde_json::Value| serde_json::json!({ "config": v });
        let w = base_command_is_no_app(&with(serde_json::json!({"Cmd": ["python3"]}))).unwrap();
        assert!(w.contains("`python3`") && w.contains("[image] entrypoint"), "{w}");
        assert!(base_command_is_no_app(&with(serde_json::json!({"Cmd": ["/bin/bash"]}))).is_some());
        assert!(base_command_is_no_app(&with(serde_json::json!({"Cmd": ["python3.11"]}))).is_some());
        assert!(base_command_is_no_app(&with(serde_json::json!({}))).unwrap().contains("nothing"));
        assert!(base_command_is_no_app(&with(serde_json::json!({"Entrypoint": ["/docker-entrypoint.sh"]}))).is_none());
        assert!(base_command_is_no_app(&with(serde_json::json!({"Cmd": ["python3", "-m", "http.server"]}))).is_none());
    }

    fn cfg(text: &str) -> Config {
        Config::parse("t.toml".as_ref(), text).unwrap()
    }

    #[test]
    fn applies_settings_and_keeps_unknown_fields() {
        let mut base = json!({
            "architecture": "amd64", "os": "linux", "x-vendor": {"kept": true},
            "config": {"Env": ["PATH=/usr/bin", "LANG=C"], "Cmd": ["python3"], "Labels": {"base": "yes"}},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:aa"]},
            "history": [{"created_by": "base"}]
        });
        let c = cfg(r#"
[image]
base = "x.io/b"
entrypoint = ["python3", "-m", "web"]
env = { LANG = "C.UTF-8", PYTHONUNBUFFERED = "1" }
ports = [8000]
labels = { "org.example.team" = "platform" }
[healthcheck]
http = "http://127.0.0.1:8000/health"
interval = "5s"
timeout = "2s"
"#);
        let layer = AddedLayer { diff_id: Digest::of(b"l"), created_by: "app".into() };
        apply(
            &mut base,
            &c,
            ProbeRunner::Python,
            Owner { uid: 1000, gid: 1000 },
            &[("PATH".into(), "/opt/venv/bin:/usr/bin".into())],
            &[layer],
            0,
        );
        let conf = &base["config"];
        assert_eq!(base["x-vendor"]["kept"], json!(true));
        assert_eq!(base["created"], json!("1970-01-01T00:00:00Z"));
        assert_eq!(conf["Env"], json!(["PATH=/opt/venv/bin:/usr/bin", "LANG=C.UTF-8", "PYTHONUNBUFFERED=1"]));
        assert_eq!(conf["Cmd"], Value::Null);
        assert_eq!(conf["User"], json!("1000:1000"));
        assert_eq!(conf["ExposedPorts"], json!({"8000/tcp": {}}));
        assert_eq!(conf["Labels"], json!({"base": "yes", "org.example.team": "platform"}));
        assert_eq!(conf["Healthcheck"]["Interval"], json!(5_000_000_000u64));
        assert_eq!(conf["Healthcheck"]["Test"][0], json!("CMD"));
        assert_eq!(base["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
        assert_eq!(base["history"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn two_layers_paths_are_joined_with_the_later_ones_directories_first() {
        let mut base = json!({"config": {"Env": ["PATH=/usr/bin:/bin"]}});
        let c = cfg("[image]\nbase = \"x.io/b\"\n");
        let defaults = [
            ("PATH".to_string(), "/opt/venv/bin:/usr/bin:/bin".to_string()),
            ("PATH".to_string(), "/app/node_modules/.bin:/usr/bin:/bin".to_string()),
        ];
        apply(&mut base, &c, ProbeRunner::Node, Owner { uid: 1, gid: 1 }, &defaults, &[], 0);
        assert_eq!(base["config"]["Env"], json!(["PATH=/app/node_modules/.bin:/opt/venv/bin:/usr/bin:/bin"]));
    }

    #[test]
    fn http_probe_takes_a_redirect_as_an_answer_and_a_404_as_a_failure() {
        // A one-request server per status, on a free port.
        for (status, healthy) in [(301, true), (200, true), (404, false), (500, false)] {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            let server = std::thread::spawn(move || {
                use std::io::{Read as _, Write as _};
                let (mut conn, _) = listener.accept().unwrap();
                let mut buf = [0u8; 1024];
                let _ = conn.read(&mut buf);
                let answer = format!(
                    "HTTP/1.1 {status} X\r\nLocation: https://127.0.0.1:9/\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                conn.write_all(answer.as_bytes()).unwrap();
            });
            let script = http_probe(&format!("http://127.0.0.1:{port}/health"), Duration::from_secs(5));
            let out = std::process::Command::new("python3").args(["-c", &script]).output().expect("python3 runs");
            server.join().unwrap();
            assert_eq!(out.status.success(), healthy, "{status}: {}", String::from_utf8_lossy(&out.stderr));
        }
    }

    #[test]
    fn http_probe_is_valid_python_that_fails_on_refused_connections() {
        let script = http_probe("http://127.0.0.1:9/health", Duration::from_secs(1));
        let out = std::process::Command::new("python3").args(["-c", &script]).output().expect("python3 runs");
        assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("refused"), "the probe says why it failed");
    }
}
