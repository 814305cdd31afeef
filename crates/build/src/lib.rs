//! oxbuild's build stage: turns an app directory, its `oxbuild.toml` and a
//! pulled base image into a new image, without running anything.
//!
//! Layers added on top of the base, bottom first:
//! 1. the user layer (only when the base lacks the configured user): `/etc/passwd`,
//!    `/etc/group` and a home directory;
//! 2. the app layer: the app's files under the workdir, owned by the user,
//!    `.dockerignore` applied.
//!
//! The config is the base's, with the runtime settings of `oxbuild.toml` applied.
//! Every timestamp comes from one epoch (`SOURCE_DATE_EPOCH`), so the same
//! inputs give the same manifest digest on any machine.

pub mod context;
pub mod dockerignore;
pub mod runtime;
pub mod user;

use std::collections::BTreeMap;
use std::path::Path;

use oxbuild_config::Config;
use oxbuild_image::{BlobStore, Descriptor, Format, Image, Layer, LayerBuilder, Owner, rootfs};

pub use runtime::AddedLayer;

/// A build problem, saying what to change.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Something in the app or its config must change.
    #[error("{0}")]
    Input(String),
    /// The base image cannot be used.
    #[error("base image: {0}")]
    Base(String),
    /// Writing layers or the image failed.
    #[error(transparent)]
    Image(#[from] oxbuild_image::Error),
}

/// What a build made.
#[derive(Debug, Clone)]
pub struct Built {
    /// The new image; its new layers are in the blob store.
    pub image: Image,
    /// Descriptors of the layers this build added, bottom first.
    pub added: Vec<Descriptor>,
    /// Things skipped on the way, for the user to see.
    pub warnings: Vec<String>,
}

/// Builds the app in `dir` with `cfg` on top of `base`; new blobs go into `store`.
pub fn build(dir: &Path, cfg: &Config, base: &Image, store: &BlobStore, epoch: u64) -> Result<Built, Error> {
    let format = if cfg.healthcheck.is_some() { Format::Docker } else { Format::Oci };
    let rootfs = rootfs::scan(base.layers(), user::wants).map_err(|e| Error::Base(e.to_string()))?;
    let plan = user::plan(&cfg.image, &rootfs, epoch)?;
    let owner = plan.owner;

    let mut pending: Vec<(LayerBuilder, String)> = Vec::new();
    if let Some(layer) = plan.layer {
        pending.push((layer, format!("oxbuild: add user {} ({}:{})", cfg.image.user, owner.uid, owner.gid)));
    }
    let mut app = LayerBuilder::new(epoch, Owner::ROOT);
    let warnings = context::add_app_files(&mut app, dir, cfg.app.include.as_deref(), &cfg.image.workdir, owner)?;
    pending.push((app, format!("oxbuild: app files into {}", cfg.image.workdir)));

    let mut layers: Vec<Layer> = base.layers().to_vec();
    let mut added = Vec::new();
    let mut history = Vec::new();
    for (builder, created_by) in pending {
        let blob = builder.write_gzip(store)?;
        let descriptor = blob.descriptor(format.gzip_layer());
        added.push(descriptor.clone());
        history.push(AddedLayer { diff_id: blob.diff_id.clone(), created_by });
        layers.push(Layer::file(descriptor, blob.path));
    }

    let mut config = base.config_json()?;
    runtime::apply(&mut config, cfg, owner, &history, epoch);
    let image = Image::assemble(format, &config, layers, &BTreeMap::new()).map_err(|e| Error::Base(e.to_string()))?;
    Ok(Built { image, added, warnings })
}
