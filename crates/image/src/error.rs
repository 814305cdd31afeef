use std::io;

/// What went wrong in the image layer: always says what was being done.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A filesystem operation failed.
    #[error("{what}: {}", causes(source))]
    Io {
        /// What was being done, naming the path.
        what: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Content is not what it should be (bad JSON, a digest mismatch, ...).
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// An I/O error while doing `what`.
    pub fn io(what: impl Into<String>, source: io::Error) -> Error {
        Error::Io { what: what.into(), source }
    }
}

/// `err` with each of its causes that its own text does not already say:
/// `failed to unpack `x`: No space left on device (os error 28)`. Wrappers
/// such as tar's keep the telling cause only as a source.
pub fn causes(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        source = s.source();
    }
    text
}
