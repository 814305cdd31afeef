//! Progress events of pulls and pushes, for whoever displays them.

use std::sync::Arc;

use oxbuild_image::Digest;

/// What happened to a blob.
#[derive(Debug, Clone)]
pub enum Event {
    /// Something the user should know that is not a failure (credentials
    /// withheld from a host, say); never carries a secret.
    Notice(String),
    /// A transfer of `size` bytes begins.
    Start {
        /// The blob.
        digest: Digest,
        /// Its size.
        size: u64,
        /// `download` or `upload`.
        direction: &'static str,
    },
    /// `bytes` more bytes moved.
    Advance {
        /// The blob.
        digest: Digest,
        /// Bytes since the last event.
        bytes: u64,
    },
    /// The blob is done.
    Finish {
        /// The blob.
        digest: Digest,
        /// Its size.
        size: u64,
        /// `downloaded`, `cached`, `uploaded`, `mounted` or `present`.
        outcome: &'static str,
    },
}

/// A receiver of progress events; cheap to clone.
#[derive(Clone)]
pub struct Progress(Arc<dyn Fn(&Event) + Send + Sync>);

impl Progress {
    /// Events go to `f`.
    pub fn new(f: impl Fn(&Event) + Send + Sync + 'static) -> Progress {
        Progress(Arc::new(f))
    }

    /// Reports `event`.
    pub fn emit(&self, event: Event) {
        (self.0)(&event)
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress(..)")
    }
}
