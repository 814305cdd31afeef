//! oxbuild's build stage: turns an app directory, its `oxbuild.toml` and a
//! pulled base image into a new image, without running anything.
//!
//! Layers added on top of the base, bottom first:
//! 1. the user layer (only when the base lacks the configured user): `/etc/passwd`,
//!    `/etc/group` and a home directory;
//! 2. extra layers made before the build: the Python dependency layer;
//! 3. the app layer: the app's files under the workdir, owned by the user,
//!    `.dockerignore` applied, and the `[image] dirs`, empty and the user's.
//!
//! The config is the base's, with the runtime settings of `oxbuild.toml` applied.
//! Every timestamp comes from one epoch (`SOURCE_DATE_EPOCH`), so the same
//! inputs give the same manifest digest on any machine.

pub mod context;
pub mod dockerignore;
pub mod programs;
pub mod publish;
pub mod runtime;
pub mod user;
pub mod vcs;

use std::collections::BTreeMap;
use std::path::Path;

use oxbuild_config::Config;
use oxbuild_image::rootfs::{self, Node, Want};
use oxbuild_image::{BlobStore, Descriptor, Format, Image, Layer, LayerBlob, LayerBuilder, LayerCompression, Owner};
use oxbuild_python::bytecode::Compiler;

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

impl From<oxbuild_python::Error> for Error {
    fn from(e: oxbuild_python::Error) -> Error {
        Error::Input(e.to_string())
    }
}

/// An error when the app layer puts something where the base has a
/// top-level symlink (`/lib` → `usr/lib`, `/bin` → `usr/bin` in every
/// merged-/usr base): the layer would replace the link, and with it
/// everything the base keeps there, so the image could not start. An app
/// copied to the workdir `/` with its own `lib/` or `bin/` does this.
fn replaces_base_link(app: &LayerBuilder, base_fs: &BTreeMap<String, Node>, workdir: &str) -> Result<(), Error> {
    let replaced: Vec<String> = base_fs
        .iter()
        .filter(|(path, _)| !path.contains('/') && app.touches(path))
        .filter_map(|(path, node)| match node {
            Node::Symlink(target) => Some(format!("/{path} (→ {target})")),
            _ => None,
        })
        .collect();
    if replaced.is_empty() {
        return Ok(());
    }
    Err(Error::Input(format!(
        "the app layer (workdir {workdir}) puts files at {}, where the base has a symlink: the image would lose what the base keeps there and could not start; set [image] workdir to a folder of the app's own (/app, say), or leave those folders out with [app] include",
        replaced.join(", ")
    )))
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
    /// Who the image runs as.
    pub owner: Owner,
    /// App sources compiled to bytecode in this image's app (or test) layer
    /// (by an earlier build when the layer was reused).
    pub compiled: usize,
    /// Where the app (or test) layer was found when it was not written
    /// here: see [`AppLayers`].
    pub reused: Option<String>,
}

/// App layers that earlier builds wrote, kept by a key of everything that
/// decides their bytes (see [`app_key`]): a build that finds its layer
/// neither compiles nor compresses it. The engine keeps them in the local
/// cache and the cache repository.
pub trait AppLayers: Send + Sync + std::fmt::Debug {
    /// The layer kept under `key`, if any.
    fn find(&self, key: &str) -> Option<Reused>;
    /// Keeps `blob`, written under `key`, with what writing it said.
    fn keep(&self, key: &str, blob: &LayerBlob, compiled: usize, warnings: &[String]);
}

/// An app layer found by [`AppLayers::find`].
#[derive(Debug, Clone)]
pub struct Reused {
    /// The layer: on disk, or still in a registry.
    pub layer: Layer,
    /// Its uncompressed digest.
    pub diff_id: oxbuild_image::Digest,
    /// Sources its writer compiled to bytecode.
    pub compiled: usize,
    /// What writing it warned about, said again.
    pub warnings: Vec<String>,
    /// Where it was found, for the report.
    pub from: String,
}

/// A layer made before the build (the Python dependency layer), placed between
/// the user layer and the app layer, with the environment it needs.
#[derive(Debug, Clone)]
pub struct ExtraLayer {
    /// The layer: its blob on disk, or still in a registry (a cache
    /// repository), from where a push mounts or streams it.
    pub layer: Layer,
    /// Its uncompressed digest, for `rootfs.diff_ids`.
    pub diff_id: oxbuild_image::Digest,
    /// For the config's history.
    pub created_by: String,
    /// Environment defaults it brings (`PATH`, `VIRTUAL_ENV`); oxbuild.toml's env wins.
    pub env: Vec<(String, String)>,
    /// The programs it puts in a directory of the image's PATH (absolute
    /// paths); None when not known (a record of an older build), which
    /// leaves [`programs::missing`] without a verdict.
    pub programs: Option<Vec<String>>,
}

/// Bumped when what a base scan keeps changes, so older cached scans are not used.
const SCAN_FORMAT: &str = "rootfs-scan-v6";

/// The cache key of a base scan: the scan format and the base's layer digests.
pub fn scan_key(base: &Image) -> oxbuild_image::Digest {
    let mut text = SCAN_FORMAT.to_string();
    for l in base.layers() {
        text.push('\n');
        text.push_str(l.descriptor.digest.as_str());
    }
    oxbuild_image::Digest::of(text.as_bytes())
}

/// The paths of a base the build reads: accounts, the Python interpreter,
/// libc, the package database and os-release for the SBOM, what its PATH
/// directories hold, and its top-level entries (see [`replaces_base_link`]).
pub fn base_wants(path: &str) -> Want {
    [
        if path.is_empty() || path.contains('/') { Want::Skip } else { Want::Exists },
        user::wants(path),
        oxbuild_python::target::wants(path),
        oxbuild_node::target::wants(path),
        oxbuild_sbom::os::wants(path),
        programs::wants(path),
    ]
    .into_iter()
    .max_by_key(|w| match w {
        Want::Skip => 0,
        Want::Exists => 1,
        Want::Content => 2,
    })
    .unwrap_or(Want::Skip)
}

/// Reads what the build needs from the base's root filesystem (accounts,
/// Python interpreter, libc), in one pass over its layers, which must be on
/// disk. Callers cache the result by [`scan_key`] (the engine does).
pub fn scan_base(base: &Image) -> Result<BTreeMap<String, Node>, Error> {
    let found = rootfs::scan(base.layers(), base_wants).map_err(|e| Error::Base(e.to_string()))?;
    Ok(finish_scan(found))
}

/// Keeps only what the build uses of the files a base scan read (see
/// [`base_wants`]).
pub fn finish_scan(mut found: BTreeMap<String, Node>) -> BTreeMap<String, Node> {
    for (path, node) in found.iter_mut() {
        if let Node::File(Some(bytes)) = node {
            *bytes = match oxbuild_sbom::os::essence(path, bytes) {
                Some(kept) => kept,
                None => oxbuild_python::target::essence(path, bytes),
            };
        }
    }
    found
}

/// The base image as the build sees it.
#[derive(Debug, Clone, Copy)]
pub struct Base<'a> {
    /// The image; its layers may still be in a registry (only the scan reads them).
    pub image: &'a Image,
    /// Its name in a registry (`registry/repo:tag`), recorded as a label.
    pub name: &'a Option<String>,
    /// Its root filesystem scan ([`scan_base`]).
    pub fs: &'a BTreeMap<String, Node>,
    /// How the app layer is written.
    pub app: AppWriting<'a>,
}

/// How an app (or test) layer is written.
#[derive(Debug, Clone, Copy, Default)]
pub struct AppWriting<'a> {
    /// The interpreter that compiles its bytecode; none without.
    pub bytecode: Option<&'a Compiler>,
    /// App layers of earlier builds; none to write every layer.
    pub reuse: Option<&'a dyn AppLayers>,
}

/// The key of an app layer: its entries ([`LayerBuilder::identity`]),
/// the compression and, with a compiler, the bytecode's format and the
/// interpreter's exact version, which decide the `.pyc` files it gains.
/// None when the layer holds entries whose bytes are not known yet.
pub fn app_key(
    layer: &LayerBuilder,
    bytecode: Option<&Compiler>,
    compression: LayerCompression,
) -> Result<Option<String>, Error> {
    let Some(identity) = layer.identity()? else { return Ok(None) };
    let compiled = match bytecode {
        Some(c) => format!("{} {} {}", oxbuild_python::bytecode::FORMAT, c.cache_tag, c.version),
        None => "none".into(),
    };
    let text = format!("app-layer-v1\n{identity}\ncompression={}\nbytecode={compiled}\n", compression.key());
    Ok(Some(oxbuild_image::Digest::of(text.as_bytes()).hex().to_string()))
}

/// What [`write_app`] made: the layer, the warnings, how many sources were
/// compiled, and where it was found when it was not written.
type AppPiece = (Piece, Vec<String>, usize, Option<String>);

/// Adds the app's files (see [`context::add_app_files`]) to `layer` and
/// writes it into `store`, with, given a compiler, their bytecode (compiled
/// while the layer is written); or, when `reuse` has a layer of the same
/// key, takes that one instead.
#[allow(clippy::too_many_arguments)]
fn write_app(
    layer: &mut LayerBuilder,
    (dir, within): (&Path, &str),
    include: Option<&[String]>,
    exclude: &[String],
    workdir: &str,
    owner: Owner,
    writing: AppWriting<'_>,
    epoch: u64,
    store: &BlobStore,
    compression: LayerCompression,
) -> Result<AppPiece, Error> {
    let AppWriting { bytecode, reuse } = writing;
    let added = context::add_app_files_in(layer, (dir, within), include, exclude, workdir, owner)?;
    let mut warnings = added.warnings;
    // Sources to compile are read once, here: the layer holds the very bytes
    // their bytecode was compiled from (and the key hashes), even if a file
    // is rewritten meanwhile. A `.pyc` records only its source's size and
    // time, so a same-size edit between two reads would ship stale bytecode.
    let sources: Vec<Vec<u8>> = match bytecode {
        Some(_) => added
            .python
            .iter()
            .map(|(path, file)| {
                layer.snapshot(path)?.ok_or_else(|| {
                    Error::from(oxbuild_image::Error::Invalid(format!(
                        "{} is no file of the app layer",
                        file.display()
                    )))
                })
            })
            .collect::<Result<_, Error>>()?,
        None => Vec::new(),
    };
    let key = match reuse {
        Some(_) => app_key(layer, bytecode, compression)?,
        None => None,
    };
    if let (Some(reuse), Some(key)) = (reuse, &key)
        && let Some(found) = reuse.find(key)
    {
        warnings.extend(found.warnings);
        return Ok((Piece::Layer(found.layer, found.diff_id), warnings, found.compiled, Some(found.from)));
    }
    let write = |layer: &LayerBuilder| layer.write(store, compression).map_err(Error::from);
    let (blob, compiled, skipped) = match bytecode {
        None => (write(layer)?, 0, Vec::new()),
        Some(compiler) => {
            let paths: Vec<String> =
                added.python.iter().map(|(path, _)| format!("/{}", path.trim_start_matches('/'))).collect();
            let read = |i: usize| Ok(sources[i].clone());
            let (blob, outcome) =
                oxbuild_python::bytecode::write_with(layer, &paths, read, compiler, epoch, owner, write)?;
            // The app's own code that the image's Python cannot parse fails
            // where it is imported (syntax of a newer Python, often).
            let python = compiler.version.split_whitespace().next().unwrap_or("");
            let skipped = outcome.skipped.into_iter().map(|s| match s.contains("SyntaxError") {
                true => format!(
                    "{s}; the image's Python {python} cannot import it: if the app needs a newer Python, build on a base that has it ([image] base)"
                ),
                false => s,
            });
            (blob, outcome.compiled, skipped.collect())
        }
    };
    if let (Some(reuse), Some(key)) = (reuse, &key) {
        reuse.keep(key, &blob, compiled, &skipped);
    }
    warnings.extend(skipped);
    Ok((Piece::Blob(blob), warnings, compiled, None))
}

/// Builds the app in `dir` with `cfg` on top of `base`, with `extra` layers
/// under the app; new blobs go into `store`.
pub fn build(
    dir: &Path,
    cfg: &Config,
    base: &Base<'_>,
    extra: &[ExtraLayer],
    store: &BlobStore,
    epoch: u64,
) -> Result<Built, Error> {
    let (base_name, base_fs, writing, base) = (&base.name, base.fs, base.app, base.image);
    let format = if cfg.healthcheck.is_some() { Format::Docker } else { Format::Oci };
    let plan = user::plan(&cfg.image, base_fs, epoch)?;
    let owner = plan.owner;

    let compression = compression(cfg);
    let mut blobs: Vec<(Piece, String)> = Vec::new();
    if let Some(layer) = plan.layer {
        let created_by = format!("oxbuild: add user {} ({}:{})", cfg.image.user, owner.uid, owner.gid);
        blobs.push((Piece::Blob(layer.write(store, compression)?), created_by));
    }
    blobs.extend(extra.iter().map(|e| (Piece::Layer(e.layer.clone(), e.diff_id.clone()), e.created_by.clone())));
    let mut app = LayerBuilder::new(epoch, Owner::ROOT);
    // The directories the app writes to outside its workdir, its own.
    for d in &cfg.image.dirs {
        app.dir(d.trim_start_matches('/'), owner, 0o755);
    }
    // Test files belong to the test variant only.
    let (app_dir, within) = (cfg.app.dir(dir), cfg.app.root_rel());
    let tests = cfg.assess.test_paths(&app_dir);
    let (piece, mut warnings, compiled, reused) = write_app(
        &mut app,
        (dir, &within),
        cfg.app.include.as_deref(),
        &tests,
        &cfg.image.workdir,
        owner,
        writing,
        epoch,
        store,
        compression,
    )?;
    replaces_base_link(&app, base_fs, &cfg.image.workdir)?;
    blobs.push((piece, format!("oxbuild: app files into {}", cfg.image.workdir)));

    let mut layers: Vec<Layer> = base.layers().to_vec();
    let (added, history) = stack(&mut layers, blobs, format)?;

    let env: Vec<(String, String)> = extra.iter().flat_map(|e| e.env.iter().cloned()).collect();
    let mut config = base.config_json()?;
    runtime::apply(&mut config, cfg, runtime::ProbeRunner::for_base(base_fs), owner, &env, &history, epoch);
    warnings.extend(programs::missing(&config, base_fs, extra));
    if cfg.image.entrypoint.is_none() && cfg.image.cmd.is_none() {
        warnings.extend(runtime::base_command_is_no_app(&config));
    }
    warnings.extend(programs::app_programs(&config, &app_dir, &cfg.image.workdir, &app, base_fs, extra));

    // Provenance: the base, and the git checkout. oxbuild.toml's labels win.
    let mut stamped: BTreeMap<String, String> = BTreeMap::new();
    if let Some(name) = &base_name {
        stamped.insert("org.opencontainers.image.base.name".into(), name.clone());
    }
    stamped.insert("org.opencontainers.image.base.digest".into(), base.digest().to_string());
    if cfg.image.git_labels
        && let Some(git) = vcs::GitInfo::read(dir)
    {
        stamped.extend(git.labels(&runtime::timestamp(epoch)));
    }
    stamped.retain(|k, _| !cfg.image.labels.contains_key(k));
    for (k, v) in &stamped {
        config["config"]["Labels"][k.as_str()] = serde_json::json!(v);
    }
    // OCI manifests carry the namespaced ones as annotations too.
    let annotations: BTreeMap<String, String> =
        stamped.into_iter().filter(|(k, _)| k.starts_with("org.opencontainers.image.")).collect();
    let image = Image::assemble(format, &config, layers, &annotations).map_err(|e| Error::Base(e.to_string()))?;
    Ok(Built { image, added, warnings, owner, compiled, reused })
}

/// The test variant of `prod`: every production layer unchanged, then `extra`
/// (the test requirements' layer) and a layer with the test files
/// (`[assess] include`) in the workdir, owned by the image's user.
pub fn test_variant(
    prod: &Built,
    dir: &Path,
    cfg: &Config,
    extra: &[ExtraLayer],
    store: &BlobStore,
    epoch: u64,
    writing: AppWriting<'_>,
) -> Result<Built, Error> {
    let mut blobs: Vec<(Piece, String)> =
        extra.iter().map(|e| (Piece::Layer(e.layer.clone(), e.diff_id.clone()), e.created_by.clone())).collect();
    let tests = cfg.assess.test_paths(&cfg.app.dir(dir));
    let (mut warnings, mut compiled, mut reused) = (Vec::new(), 0, None);
    if !tests.is_empty() {
        let mut layer = LayerBuilder::new(epoch, Owner::ROOT);
        let piece;
        (piece, warnings, compiled, reused) = write_app(
            &mut layer,
            (dir, &cfg.app.root_rel()),
            Some(&tests),
            &[],
            &cfg.image.workdir,
            prod.owner,
            writing,
            epoch,
            store,
            compression(cfg),
        )?;
        blobs.push((piece, format!("oxbuild: test files ({}) into {}", tests.join(", "), cfg.image.workdir)));
    }
    let format = prod.image.format();
    let mut layers = prod.image.layers().to_vec();
    let (added, history) = stack(&mut layers, blobs, format)?;
    let mut config = prod.image.config_json()?;
    let env: Vec<(String, String)> = extra.iter().flat_map(|e| e.env.iter().cloned()).collect();
    runtime::extend(&mut config, &env, &history, epoch);
    config["config"]["Labels"]["dev.oxbuild.variant"] = serde_json::json!("test");
    let image = Image::assemble(format, &config, layers, &prod_annotations(&prod.image))
        .map_err(|e| Error::Base(e.to_string()))?;
    Ok(Built { image, added, warnings, owner: prod.owner, compiled, reused })
}

/// Puts `blobs` on top of `layers` in `format`; returns their descriptors and
/// the history entries the config needs.
fn stack(
    layers: &mut Vec<Layer>,
    pieces: Vec<(Piece, String)>,
    format: Format,
) -> Result<(Vec<Descriptor>, Vec<AddedLayer>), Error> {
    let mut added = Vec::new();
    let mut history = Vec::new();
    for (piece, created_by) in pieces {
        let (layer, diff_id) = match piece {
            Piece::Blob(blob) => (Layer::file(blob.descriptor_in(format)?, blob.path), blob.diff_id),
            Piece::Layer(mut layer, diff_id) => {
                let mt = format.layer(&layer.descriptor.media_type).ok_or_else(|| {
                    Error::Base(format!("layer {} cannot go into this image's format", layer.descriptor.digest))
                })?;
                layer.descriptor.media_type = mt.to_string();
                (layer, diff_id)
            }
        };
        added.push(layer.descriptor.clone());
        history.push(AddedLayer { diff_id, created_by });
        layers.push(layer);
    }
    Ok((added, history))
}

/// A layer to stack: written here, or made before (on disk or in a registry).
enum Piece {
    Blob(LayerBlob),
    Layer(Layer, oxbuild_image::Digest),
}

/// The compression of the layers oxbuild writes for `cfg`.
pub fn compression(cfg: &Config) -> LayerCompression {
    match cfg.image.compression {
        oxbuild_config::Compression::Gzip => LayerCompression::Gzip,
        oxbuild_config::Compression::Zstd => LayerCompression::Zstd,
    }
}

/// The manifest annotations of `image` (kept on its test variant).
fn prod_annotations(image: &Image) -> BTreeMap<String, String> {
    serde_json::from_slice::<oxbuild_image::ManifestView>(image.manifest()).map(|m| m.annotations).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxbuild_image::media;

    #[test]
    fn base_scans_keep_only_what_detection_needs() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path().join("store")).unwrap();
        let mut libc = b"GLIBC_2.17\0GLIBC_2.36\0".to_vec();
        libc.extend(std::iter::repeat_n(0u8, 200_000));
        let mut b = LayerBuilder::new(0, Owner::ROOT);
        b.bytes("etc/passwd", b"root:x:0:0::/root:/bin/sh\n".to_vec(), Owner::ROOT, 0o644)
            .bytes("usr/lib/x86_64-linux-gnu/libc.so.6", libc, Owner::ROOT, 0o755)
            .bytes("usr/bin/python3.11", b"ELF".to_vec(), Owner::ROOT, 0o755);
        let blob = b.write_gzip(&store).unwrap();
        let layer = Layer::file(blob.descriptor(media::OCI_LAYER_GZIP), blob.path.clone());
        let config = serde_json::json!({"rootfs": {"type": "layers", "diff_ids": [blob.diff_id]}});
        let image = Image::assemble(Format::Oci, &config, vec![layer], &BTreeMap::new()).unwrap();

        let first = scan_base(&image).unwrap();
        assert_eq!(rootfs::content(&first, "usr/lib/x86_64-linux-gnu/libc.so.6"), Some(b"GLIBC_2.36".as_slice()));
        std::fs::remove_file(&blob.path).unwrap();
        assert!(scan_base(&image).is_err(), "a missing layer is noticed");
    }
}
