//! What the user sees: progress on stderr, the result on stdout, errors with an
//! exit code per kind of failure.

use std::io::Write as _;

/// A failure, with the exit code of its kind.
#[derive(Debug, Clone)]
pub struct Failure {
    /// See [`crate::cli::EXIT_CODES`].
    pub code: i32,
    /// The kind, as in the JSON report.
    pub kind: &'static str,
    /// One line saying what went wrong and what to do.
    pub message: String,
    /// The JSON report was printed by the stage.
    pub json_done: bool,
}

impl Failure {
    pub fn config(message: impl std::fmt::Display) -> Failure {
        Failure { code: 3, kind: "config", message: message.to_string(), json_done: false }
    }
    pub fn build(message: impl std::fmt::Display) -> Failure {
        Failure { code: 4, kind: "build", message: message.to_string(), json_done: false }
    }
    pub fn input(message: impl std::fmt::Display) -> Failure {
        Failure { code: 4, kind: "input", message: message.to_string(), json_done: false }
    }
    pub fn registry(message: impl std::fmt::Display) -> Failure {
        Failure { code: 5, kind: "registry", message: message.to_string(), json_done: false }
    }
    pub fn output(message: impl std::fmt::Display) -> Failure {
        Failure { code: 6, kind: "output", message: message.to_string(), json_done: false }
    }
    pub fn assess(message: impl std::fmt::Display) -> Failure {
        Failure { code: 7, kind: "assess", message: message.to_string(), json_done: false }
    }
    pub fn health(message: impl std::fmt::Display) -> Failure {
        Failure { code: 8, kind: "health", message: message.to_string(), json_done: false }
    }
    pub fn runtime(message: impl std::fmt::Display) -> Failure {
        let mut message = message.to_string();
        // podman's default ulimits above the runner's hard limit (rootless
        // CI runners, build pods): its own error says nothing of the fix.
        if message.contains("error setting rlimit") {
            message.push_str("; podman could not apply its default ulimits, which exceed this runner's hard limits: set lower ones with `default_ulimits` in a containers.conf that CONTAINERS_CONF names (testdata/podman/containers.conf is one)");
        }
        Failure { code: 9, kind: "runtime", message, json_done: false }
    }
    pub fn verify(message: impl std::fmt::Display) -> Failure {
        Failure { code: 10, kind: "verify", message: message.to_string(), json_done: false }
    }
    /// Marks the failure's JSON report as printed already (stages print a
    /// fuller one themselves).
    pub fn reported(mut self) -> Failure {
        self.json_done = true;
        self
    }
    pub fn internal(message: impl std::fmt::Display) -> Failure {
        Failure { code: 1, kind: "internal", message: message.to_string(), json_done: false }
    }
}

impl From<oxbuild_engine::Error> for Failure {
    fn from(e: oxbuild_engine::Error) -> Failure {
        use oxbuild_engine::Kind;
        match e.kind {
            Kind::Config => Failure::config(e.message),
            Kind::Build => Failure::build(e.message),
            Kind::Input => Failure::input(e.message),
            Kind::Registry => Failure::registry(e.message),
            Kind::Output => Failure::output(e.message),
            Kind::Runtime => Failure::runtime(e.message),
            Kind::Internal => Failure::internal(e.message),
        }
    }
}

impl From<oxbuild_engine::location::Error> for Failure {
    fn from(e: oxbuild_engine::location::Error) -> Failure {
        oxbuild_engine::Error::from(e).into()
    }
}

/// Where progress goes.
#[derive(Debug, Clone, Copy)]
pub struct Reporter {
    pub quiet: bool,
    pub verbose: bool,
    pub json: bool,
}

/// Every warning printed so far, for the JSON result.
static WARNED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// When `OXBUILD_TIMINGS` is set, every progress line starts with the
/// milliseconds since the command started: a profiling aid (the README's
/// "Other environment").
pub fn stamp() -> String {
    static START: std::sync::OnceLock<Option<std::time::Instant>> = std::sync::OnceLock::new();
    match START.get_or_init(|| std::env::var_os("OXBUILD_TIMINGS").map(|_| std::time::Instant::now())) {
        Some(t) => format!("[{:7.1} ms] ", t.elapsed().as_secs_f64() * 1000.0),
        None => String::new(),
    }
}

impl Reporter {
    /// A progress line on stderr, unless quiet. JSON mode keeps stderr for
    /// progress too, so stdout holds only the report.
    pub fn step(&self, msg: impl std::fmt::Display) {
        if !self.quiet {
            eprintln!("{}  {msg}", stamp());
        }
    }

    /// A detail line, shown with -v only.
    pub fn detail(&self, msg: impl std::fmt::Display) {
        if self.verbose && !self.quiet {
            eprintln!("{}    {msg}", stamp());
        }
    }

    /// A warning, shown even when quiet.
    pub fn warn(&self, msg: impl std::fmt::Display) {
        let msg = msg.to_string();
        eprintln!("{}warning: {msg}", stamp());
        WARNED.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(msg);
    }

    /// Prints the final result: JSON on stdout, or the human lines. The JSON
    /// object's `warnings` holds every warning the command printed.
    pub fn result(&self, json: &serde_json::Value, human: &[String]) {
        let mut out = std::io::stdout().lock();
        if self.json {
            let mut json = json.clone();
            let warned = WARNED.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
            if let Some(object) = json.as_object_mut()
                && !warned.is_empty()
            {
                let list = object.entry("warnings").or_insert_with(|| serde_json::json!([]));
                if let Some(list) = list.as_array_mut() {
                    for w in warned {
                        if !list.iter().any(|v| v.as_str() == Some(w.as_str())) {
                            list.push(serde_json::Value::String(w));
                        }
                    }
                }
            }
            let _ = writeln!(out, "{}", serde_json::to_string_pretty(&json).unwrap_or_default());
        } else {
            for line in human {
                let _ = writeln!(out, "{line}");
            }
        }
    }

    /// Reports `f` and returns its exit code.
    pub fn fail(&self, f: &Failure) -> i32 {
        eprintln!("error: {}", f.message);
        if self.json && !f.json_done {
            let report =
                serde_json::json!({"ok": false, "error": {"kind": f.kind, "code": f.code, "message": f.message}});
            self.result(&report, &[]);
        }
        f.code
    }
}

impl oxbuild_engine::Events for Reporter {
    fn step(&self, message: &str) {
        Reporter::step(self, message);
    }
    fn detail(&self, message: &str) {
        Reporter::detail(self, message);
    }
    fn warn(&self, message: &str) {
        Reporter::warn(self, message);
    }
}

#[cfg(test)]
mod tests {
    use super::Failure;

    #[test]
    fn podman_failing_on_its_ulimits_says_how_to_lower_them() {
        let f = Failure::runtime("podman run: Error: crun: error setting rlimit type 7: Operation not permitted");
        assert_eq!(f.code, 9);
        assert!(f.message.contains("default_ulimits") && f.message.contains("CONTAINERS_CONF"), "{}", f.message);
        assert!(!Failure::runtime("podman: no such image").message.contains("ulimits"));
    }
}
