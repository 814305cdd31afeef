//! oxbuild's client for the OCI distribution API.
//!
//! It speaks to registries directly over HTTP (through `oxbuild_http`, the
//! client every part of oxbuild shares), because a build engine
//! needs things a generic client does not give: manifests kept as raw bytes,
//! a HEAD before every upload, cross-repository mounts that fall back to an
//! upload when refused, streaming blobs in and out of a verified on-disk store,
//! and errors that name the registry but never a secret.
//!
//! Where things are: `transport/` sends one request (scheme probe, auth
//! challenge, token, error mapping); `manifests.rs`, `blobs.rs` and
//! `upload.rs` are the distribution API calls; `remote.rs` pulls and pushes
//! whole images with them.
//!
//! ```no_run
//! # async fn demo() -> Result<(), oxbuild_registry::Error> {
//! use oxbuild_registry::{Client, ClientOptions, Reference, pull};
//! let client = Client::new(ClientOptions::default())?;
//! let store = oxbuild_image::BlobStore::open("/tmp/blobs")?;
//! let base = Reference::parse("127.0.0.1:5000/python:3.11").unwrap();
//! let pulled = pull(&client, &base, &oxbuild_image::Platform::host(), &store).await?;
//! println!("{}", pulled.resolved);
//! # Ok(()) }
//! ```

mod auth;
mod blobs;
mod client;
mod manifests;
pub mod progress;
mod reference;
pub mod referrers;
mod remote;
mod transport;

/// Entry points for the fuzz targets (`fuzz/`) and their corpus replay
/// tests: each feeds untrusted bytes to a parser that is private here.
#[doc(hidden)]
pub mod fuzz {
    /// A registry's `WWW-Authenticate` header.
    pub fn www_authenticate(data: &[u8]) {
        let _ = crate::transport::challenge::parse(&String::from_utf8_lossy(data));
    }
}
mod stream;
mod upload;

pub use auth::{Credential, Found, Keychain};
pub use client::{BlobBody, BlobLocations, Client, ClientOptions};
pub use progress::{Event, Progress};
pub use reference::{DOCKER_HUB, Reference, ReferenceError, is_loopback};
pub use referrers::{Listed, accumulate, attach, fallback_tag, open_referrers, referrers};
pub use referrers::{Staged as StagedReferrers, list as list_referrers, stage as stage_referrers};
pub use remote::{
    MountSource, Pulled, PushReport, fetch_index, fetch_layer, fetch_layer_tapped, fetch_layers, open, open_cached,
    open_index, pull, push, push_index, resolve,
};
pub use stream::{BlobSink, StreamingBlob};
pub use transport::error::Error;
