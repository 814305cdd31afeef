/// A Python dependency problem, naming the file, line, package or wheel, and
/// what to do about it. Never carries an index credential.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The lock or requirements file is wrong.
    #[error("{file}:{line}: {message}")]
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
