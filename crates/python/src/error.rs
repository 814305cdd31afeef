/// A Python dependency problem, naming the file, line, package or wheel, and
/// what to do about it. Never carries an index credential.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The lock or requirements file is wrong (line 0: the file as a whole).
    #[error("{file}{}: {message}", if *line > 0 { format!(":{line}") } else { String::new() })]
    Lock {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// What is wrong and what to do.
        message: String,
    },
    /// No usable wheel, a hash mismatch, a bad wheel.
    #[error("{0}")]
    Package(String),
    /// The base image lacks what is needed (no interpreter, unknown libc).
    #[error("{0}")]
    Target(String),
    /// A package index could not be used.
    #[error("{0}")]
    Index(String),
    /// Writing files or layers failed.
    #[error(transparent)]
    Image(#[from] oxbuild_image::Error),
}

/// Where a TOML file's syntax error is (its 1-based line) and what it is,
/// on one line.
pub(crate) fn toml_syntax(text: &str, e: &toml::de::Error) -> (usize, String) {
    oxbuild_config::toml_syntax(text, e)
}

/// The message for a lock or requirements file that cannot be read.
pub(crate) fn unreadable(e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::NotFound {
        "no such file; create it (a pinned requirements file, pylock.toml or uv.lock), or fix the path in [python]"
            .into()
    } else {
        format!("cannot be read: {e}")
    }
}
