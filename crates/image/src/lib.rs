//! The image model of oxbuild: digests, descriptors, reproducible layers, raw
//! manifests and configs, a content-addressed blob store and OCI layouts.
//!
//! One [`Image`] type stands for an image wherever it came from (a registry, a
//! layout) and wherever it goes. Its manifest and config are kept as the raw
//! bytes that get hashed and sent; new ones are produced as canonical JSON
//! (sorted keys, no insignificant white space), so the same input always gives
//! the same digest.
//!
//! ```
//! use oxbuild_image::{LayerBuilder, Owner};
//! use oxbuild_image::BlobStore;
//! let dir = tempfile::tempdir().unwrap();
//! let store = BlobStore::open(dir.path()).unwrap();
//! let mut layer = LayerBuilder::new(0, Owner::ROOT);
//! layer.bytes("app/main.py", b"print('hi')\n".to_vec(), Owner { uid: 1000, gid: 1000 }, 0o644);
//! let blob = layer.write_gzip(&store).unwrap();
//! assert_ne!(blob.digest, blob.diff_id);
//! ```

pub mod archive;
mod digest;
mod error;
pub mod gzip;
mod image;
mod index;
pub mod layer;
pub mod layout;
mod manifest;
pub mod media;
pub mod rootfs;
pub mod store;

pub use digest::{Digest, DigestParseError, Hasher, HashingWriter};
pub use error::{Error, causes};
pub use image::{BlobLocation, Image, Layer};
pub use index::Index;
pub use layer::{Deferred, EntrySource, LayerBlob, LayerBuilder, LayerCompression, Owner};
pub use manifest::{Descriptor, IndexView, ManifestView, Platform, PlatformParseError};
pub use media::Format;
pub use store::BlobStore;

/// Serialises `value` as canonical JSON: object keys sorted, compact.
///
/// `serde_json::Map` is a `BTreeMap` as long as serde_json's `preserve_order`
/// feature is off; the test below fails if any dependency turns it on.
pub fn canonical_json(value: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("a JSON value always serialises")
}

#[cfg(test)]
mod tests {
    #[test]
    fn canonical_json_sorts_keys_at_every_depth() {
        let v: serde_json::Value = serde_json::from_str(r#"{"b":1,"a":{"z":true,"c":[{"y":1,"x":2}]}}"#).unwrap();
        assert_eq!(super::canonical_json(&v), br#"{"a":{"c":[{"x":2,"y":1}],"z":true},"b":1}"#);
    }
}
