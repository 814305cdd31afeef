//! How blob transfers are shown: a byte bar on a terminal, plain lines
//! otherwise (CI logs), nothing with `-q`. `-v` also lists blobs that needed
//! no transfer (already cached, already in the registry).

use std::io::IsTerminal as _;
use std::sync::{Arc, Mutex};

use indicatif::{ProgressBar, ProgressStyle};
use oxbuild_registry::{Event, Progress};

use crate::report::Reporter;

/// `86.3 MB`, `912 KB`, `120 B`.
pub fn size(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.0} KB", b / 1e3)
    } else {
        format!("{bytes} B")
    }
}

fn line(outcome: &str, digest: &oxbuild_image::Digest, bytes: u64) -> String {
    format!("  {outcome:10} {}  {}", &digest.as_str()[..19], size(bytes))
}

#[derive(Default)]
struct Bar {
    bar: Option<ProgressBar>,
    active: usize,
}

/// The progress display for `out`; when quiet, only notices (warnings).
pub fn sink(out: Reporter) -> Option<Progress> {
    if out.quiet {
        return Some(Progress::new(move |e| {
            if let Event::Notice(text) = e {
                out.warn(text);
            }
        }));
    }
    let verbose = out.verbose;
    if !std::io::stderr().is_terminal() {
        return Some(Progress::new(move |e| {
            if let Event::Notice(text) = e {
                out.warn(text);
            }
            if let Event::Finish { digest, size, outcome } = e {
                let moved = matches!(*outcome, "downloaded" | "uploaded" | "mounted");
                if moved || verbose {
                    eprintln!("{}{}", crate::report::stamp(), line(outcome, digest, *size));
                }
            }
        }));
    }
    let state = Arc::new(Mutex::new(Bar::default()));
    Some(Progress::new(move |e| {
        let mut s = state.lock().unwrap();
        match e {
            Event::Notice(text) => match &s.bar {
                Some(b) => b.println(format!("warning: {text}")),
                None => out.warn(text),
            },
            Event::Start { size, direction, .. } => {
                let bar = s.bar.get_or_insert_with(|| {
                    let b = ProgressBar::new(0);
                    b.set_style(
                        ProgressStyle::with_template("  {msg:10} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
                            .expect("a valid template")
                            .progress_chars("=> "),
                    );
                    b
                });
                bar.inc_length(*size);
                bar.set_message(format!("{direction}ing"));
                s.active += 1;
            }
            Event::Advance { bytes, .. } => {
                if let Some(b) = &s.bar {
                    b.inc(*bytes);
                }
            }
            Event::Finish { digest, size, outcome } => {
                let moved = matches!(*outcome, "downloaded" | "uploaded");
                let text = line(outcome, digest, *size);
                match &s.bar {
                    Some(b) if moved || verbose || *outcome == "mounted" => b.println(text),
                    None if verbose || *outcome == "mounted" => eprintln!("{}{text}", crate::report::stamp()),
                    _ => {}
                }
                if moved {
                    s.active = s.active.saturating_sub(1);
                    if s.active == 0
                        && let Some(b) = s.bar.take()
                    {
                        b.finish_and_clear();
                    }
                }
            }
        }
    }))
}
