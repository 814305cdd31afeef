//! Where an image is read from or written to, behind one [`Location`]: a
//! registry, an OCI layout, an oci-archive or a docker-archive. Any source
//! pairs with any sink, so build outputs, `push` of an air-gapped archive and
//! `copy` are the same few lines (the shape of go-containerregistry's
//! `remote`/`layout`/`tarball` and ko's publishers).
//!
//! One short file per backend: `registry.rs`, `layout.rs` and `archive.rs`
//! (oci-archive and docker-archive share it: oxbuild writes one tar that is
//! both, and reads either). A new sink (a daemon, a referrers-aware registry, an
//! index) is a new variant and a new file; the callers do not change.
//!
//! ```no_run
//! # async fn demo() -> Result<(), oxbuild_location::Error> {
//! use oxbuild_location::{Location, Target};
//! let client = oxbuild_registry::Client::new(Default::default()).unwrap();
//! let store = oxbuild_image::BlobStore::open("/tmp/blobs").unwrap();
//! let target = Target { client: &client, store: &store };
//! let from = Location::parse("oci-archive:app.tar", "SOURCE")?;
//! let image = from.open(&target, &oxbuild_image::Platform::host()).await?;
//! Location::parse("127.0.0.1:5000/team/app:v1", "DEST")?.write(&target, &image.image, &image.referrers, &[], &[]).await?;
//! # Ok(()) }
//! ```

mod archive;
mod layout;
mod registry;

pub use registry::{Attached, Staged, attach, attach_staged, stage};

use std::path::PathBuf;

use oxbuild_image::{BlobStore, Image, Index, Platform};
use oxbuild_registry::{Client, MountSource, PushReport, Reference};

/// The forms accepted wherever an image location is asked for.
pub const FORMS: &str =
    "REGISTRY/REPO[:TAG|@DIGEST] (or docker://…), oci:DIR[:NAME], oci-archive:FILE[:NAME], docker-archive:FILE[:NAME]";

/// Why reading or writing an image failed, by kind, so that callers can map
/// kinds to exit codes.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The location itself is malformed.
    #[error("{0}")]
    Config(String),
    /// The registry failed.
    #[error("{0}")]
    Registry(String),
    /// The content read is unusable (a broken layout or archive).
    #[error("{0}")]
    Input(String),
    /// Writing a layout or archive failed.
    #[error("{0}")]
    Output(String),
}

/// A parsed image location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// An image in a registry.
    Registry(Reference),
    /// An OCI image layout directory, optionally naming one image in it.
    Layout { dir: PathBuf, name: Option<String> },
    /// A tar of an OCI layout.
    OciArchive { file: PathBuf, name: Option<String> },
    /// A tar for `docker load` / `podman load`.
    DockerArchive { file: PathBuf, name: Option<String> },
}

/// What reading and writing need: the registry client and the blob store.
#[derive(Clone, Copy)]
pub struct Target<'a> {
    /// For registry locations, and for layers still in a registry.
    pub client: &'a Client,
    /// Where blobs are read into and written from.
    pub store: &'a BlobStore,
}

/// An image read from a location.
#[derive(Debug, Clone)]
pub struct Opened {
    /// The image; a registry's layers stay there until needed.
    pub image: Image,
    /// For a registry: the reference pinned to the manifest digest.
    pub resolved: Option<Reference>,
    /// The referrers a layout or archive holds for the image (a registry's
    /// are asked for with [`Location::referrers`]).
    pub referrers: Vec<Image>,
}

/// An index read from a location, with every image it lists.
#[derive(Debug, Clone)]
pub struct OpenedIndex {
    /// The index; a registry's layers stay there until needed.
    pub index: Index,
    /// For a registry: the reference pinned to the index's digest.
    pub resolved: Option<Reference>,
    /// The referrers a layout or archive holds for the index and its images
    /// (a registry's are asked for with [`Location::index_referrers`]).
    pub referrers: Vec<Image>,
}

/// What a location holds: one image, or a whole index.
#[derive(Debug, Clone)]
pub enum Content {
    /// One image.
    Image(Box<Opened>),
    /// An index and all of its images.
    Index(OpenedIndex),
}

impl From<oxbuild_image::layout::Found> for Content {
    /// What a layout or archive held, as read (nothing of it is in a registry).
    fn from(found: oxbuild_image::layout::Found) -> Content {
        match found {
            oxbuild_image::layout::Found::Index(index, referrers) => {
                Content::Index(OpenedIndex { index, resolved: None, referrers })
            }
            oxbuild_image::layout::Found::Image(image, referrers) => {
                Content::Image(Box::new(Opened { image: *image, resolved: None, referrers }))
            }
        }
    }
}

/// What a write did.
#[derive(Debug, Clone, Default)]
pub struct Written {
    /// For a registry: what the image's push moved.
    pub push: Option<PushReport>,
    /// The referrers written, by their manifest descriptors (with artifact types).
    pub referrers: Vec<oxbuild_image::Descriptor>,
    /// For a registry: each referrer as attached there.
    pub attached: Vec<Attached>,
}

impl Opened {
    /// The repository a push to the same registry can mount this image's layers from.
    pub fn mount_sources(&self) -> Vec<MountSource> {
        self.resolved.iter().map(|r| MountSource::of(r, &self.image)).collect()
    }
}

/// Splits `PATH[:NAME]`; a NAME never contains `/`.
fn path_and_name(rest: &str) -> (PathBuf, Option<String>) {
    // The first colon ends the path, as skopeo reads these: the name may be
    // a whole reference (`out.tar:registry.example/team/app:v1`).
    match rest.split_once(':') {
        Some((path, name)) if !path.is_empty() && !name.is_empty() => (PathBuf::from(path), Some(name.to_string())),
        _ => (PathBuf::from(rest), None),
    }
}

impl Location {
    /// Parses `s`; `what` names the flag or setting in errors.
    pub fn parse(s: &str, what: &str) -> Result<Location, Error> {
        let bad = |why: String| Error::Config(format!("{what}: `{s}` {why}; use one of {FORMS}"));
        let local = |rest: &str| {
            if rest.is_empty() { Err(bad("names no path".into())) } else { Ok(path_and_name(rest)) }
        };
        if let Some(rest) = s.strip_prefix("oci:") {
            let (dir, name) = local(rest)?;
            return Ok(Location::Layout { dir, name });
        }
        if let Some(rest) = s.strip_prefix("oci-archive:") {
            let (file, name) = local(rest)?;
            return Ok(Location::OciArchive { file, name });
        }
        if let Some(rest) = s.strip_prefix("docker-archive:") {
            let (file, name) = local(rest)?;
            return Ok(Location::DockerArchive { file, name });
        }
        let reference = s.strip_prefix("docker://").unwrap_or(s);
        Reference::parse(reference).map(Location::Registry).map_err(|e| bad(format!("is not a location ({e})")))
    }

    /// True for a registry location.
    pub fn is_registry(&self) -> bool {
        matches!(self, Location::Registry(_))
    }

    /// Reads the image for `platform`.
    pub async fn open(&self, target: &Target<'_>, platform: &Platform) -> Result<Opened, Error> {
        match self {
            Location::Registry(r) => registry::open(target, r, platform).await,
            Location::Layout { dir, name } => layout::open(dir, name.as_deref(), platform),
            Location::OciArchive { file, name } | Location::DockerArchive { file, name } => {
                archive::open(target, file, name.as_deref(), platform).await
            }
        }
    }

    /// Reads what is here: with `platform`, that platform's image (as
    /// [`Location::open`]); without, a whole index when the location holds
    /// one, else its one image.
    pub async fn open_any(&self, target: &Target<'_>, platform: Option<&Platform>) -> Result<Content, Error> {
        if let Some(p) = platform {
            return self.open(target, p).await.map(|o| Content::Image(Box::new(o)));
        }
        match self {
            Location::Registry(r) => match oxbuild_registry::open_index(target.client, r)
                .await
                .map_err(|e| Error::Registry(format!("reading {r}: {e}")))?
            {
                Some((index, resolved)) => {
                    Ok(Content::Index(OpenedIndex { index, resolved: Some(resolved), referrers: Vec::new() }))
                }
                None => self.open(target, &Platform::host()).await.map(|o| Content::Image(Box::new(o))),
            },
            Location::Layout { dir, name } => layout::read(dir, name.as_deref(), None),
            Location::OciArchive { file, name } | Location::DockerArchive { file, name } => {
                archive::read(target, file, name.as_deref(), None).await
            }
        }
    }

    /// The referrers of an index opened here and of its images: a
    /// registry is asked for each; a layout's or archive's were read with it.
    pub async fn index_referrers(&self, target: &Target<'_>, opened: &OpenedIndex) -> Result<Vec<Image>, Error> {
        let (Location::Registry(_), Some(resolved)) = (self, &opened.resolved) else {
            return Ok(opened.referrers.clone());
        };
        let mut out = Vec::new();
        let digests =
            std::iter::once(opened.index.digest()).chain(opened.index.children().iter().map(|(d, _)| d.digest.clone()));
        for d in digests {
            out.extend(
                oxbuild_registry::open_referrers(target.client, resolved, &d)
                    .await
                    .map_err(|e| Error::Registry(format!("reading the referrers of {resolved}: {e}")))?,
            );
        }
        Ok(out)
    }

    /// Writes `index` and all its images here, with `referrers` (of the
    /// index or its images) beside them: the index under `r`'s tag in a
    /// registry, named in a layout or archive. A docker-archive holds one
    /// image, so writing an index there is an error.
    pub async fn write_index(
        &self,
        target: &Target<'_>,
        index: &Index,
        referrers: &[Image],
        names: &[String],
        mount_from: &[MountSource],
    ) -> Result<Written, Error> {
        let descriptors = referrers.iter().map(Image::referrer_descriptor).collect();
        if let Location::Registry(r) = self {
            let tags: Vec<String> = r.tag.iter().cloned().collect();
            let push = oxbuild_registry::push_index(target.client, index, r, &tags, mount_from)
                .await
                .map_err(|e| Error::Registry(format!("pushing to {}: {e}", r.name())))?;
            let attached = registry::attach(target, r, referrers).await?;
            return Ok(Written { push: Some(push), referrers: descriptors, attached });
        }
        if let Location::DockerArchive { .. } = self {
            return Err(Error::Config(format!(
                "{self}: a docker-archive holds one image, and this is an index of {} platforms; write an oci-archive: (or oci:) instead, or pick one with --platform",
                index.children().len()
            )));
        }
        let index = oxbuild_registry::fetch_index(target.client, index, target.store)
            .await
            .map_err(|e| Error::Registry(format!("fetching layers to write {self}: {e}")))?;
        let local = self.fetched(target, referrers).await?;
        match self {
            Location::Layout { dir, name } => {
                layout::write_index(&index, &local, dir, named(name, names, &local).as_deref(), names)?
            }
            Location::OciArchive { file, name } => {
                let name = named(name, names, &local);
                archive::write_index(index, local, file, name.as_deref(), names).await?
            }
            Location::Registry(_) | Location::DockerArchive { .. } => unreachable!("handled above"),
        }
        Ok(Written { push: None, referrers: descriptors, attached: Vec::new() })
    }

    /// The referrers of an image opened here: a registry is asked (its
    /// referrers API, else the fallback tag); a layout's or archive's were
    /// read with the image.
    pub async fn referrers(&self, target: &Target<'_>, opened: &Opened) -> Result<Vec<Image>, Error> {
        match (self, &opened.resolved) {
            (Location::Registry(_), Some(resolved)) => {
                oxbuild_registry::open_referrers(target.client, resolved, &opened.image.digest())
                    .await
                    .map_err(|e| Error::Registry(format!("reading the referrers of {resolved}: {e}")))
            }
            _ => Ok(opened.referrers.clone()),
        }
    }

    /// Writes `image` here, with `referrers` (artifacts whose subject is the
    /// image) beside it. `names` are full references to record in a layout
    /// or archive; `mount_from` lists repositories a registry push may mount
    /// from. A registry write reports what it moved. A docker-archive has no
    /// place for referrers: the caller says so (see [`Location::holds_referrers`]).
    pub async fn write(
        &self,
        target: &Target<'_>,
        image: &Image,
        referrers: &[Image],
        names: &[String],
        mount_from: &[MountSource],
    ) -> Result<Written, Error> {
        let referrers = if self.holds_referrers() { oxbuild_sign::with_subject(referrers, image) } else { Vec::new() };
        let descriptors = referrers.iter().map(Image::referrer_descriptor).collect();
        if let Location::Registry(r) = self {
            let push = registry::write(target, r, image, mount_from).await?;
            let attached = registry::attach(target, r, &referrers).await?;
            return Ok(Written { push: Some(push), referrers: descriptors, attached });
        }
        let image = self.fetched(target, std::slice::from_ref(image)).await?.remove(0);
        let local = self.fetched(target, &referrers).await?;
        match self {
            Location::Registry(_) => unreachable!("written above"),
            Location::Layout { dir, name } => {
                layout::write(&image, &local, dir, named(name, names, &local).as_deref(), names)?
            }
            Location::OciArchive { file, name } | Location::DockerArchive { file, name } => {
                let name = named(name, names, &local);
                archive::write(image, local, file, name.as_deref(), names).await?
            }
        }
        Ok(Written { push: None, referrers: descriptors, attached: Vec::new() })
    }

    /// `images` with every layer on disk (layouts and archives hold every
    /// blob): what is still in a registry is fetched.
    async fn fetched(&self, target: &Target<'_>, images: &[Image]) -> Result<Vec<Image>, Error> {
        let mut local = Vec::with_capacity(images.len());
        for image in images {
            local.push(
                oxbuild_registry::fetch_layers(target.client, image, target.store)
                    .await
                    .map_err(|e| Error::Registry(format!("fetching layers to write {self}: {e}")))?,
            );
        }
        Ok(local)
    }

    /// Whether this kind of location can hold referrers (every kind but a
    /// docker-archive, which `docker load` reads).
    pub fn holds_referrers(&self) -> bool {
        !matches!(self, Location::DockerArchive { .. })
    }
}

/// The name an image or index gets in a layout or archive: `name`, else
/// (beside referrers, so that tools like skopeo can pick it,
/// `oci:DIR:latest`) `latest` when neither it nor a tag names it.
fn named(name: &Option<String>, names: &[String], referrers: &[Image]) -> Option<String> {
    if name.is_none() && names.is_empty() && !referrers.is_empty() { Some("latest".to_string()) } else { name.clone() }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let with_name = |f: &mut std::fmt::Formatter<'_>, kind: &str, p: &PathBuf, n: &Option<String>| {
            write!(f, "{kind}:{}", p.display())?;
            if let Some(n) = n {
                write!(f, ":{n}")?;
            }
            Ok(())
        };
        match self {
            Location::Registry(r) => write!(f, "{r}"),
            Location::Layout { dir, name } => with_name(f, "oci", dir, name),
            Location::OciArchive { file, name } => with_name(f, "oci-archive", file, name),
            Location::DockerArchive { file, name } => with_name(f, "docker-archive", file, name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        assert!(Location::parse("127.0.0.1:5000/a:b", "x").unwrap().is_registry());
        assert!(Location::parse("docker://127.0.0.1:5000/a:b", "x").unwrap().is_registry());
        assert_eq!(
            Location::parse("oci:/tmp/lay:v1", "x").unwrap(),
            Location::Layout { dir: "/tmp/lay".into(), name: Some("v1".into()) }
        );
        assert_eq!(
            Location::parse("docker-archive:out/image.tar", "x").unwrap(),
            Location::DockerArchive { file: "out/image.tar".into(), name: None }
        );
        assert_eq!(
            Location::parse("oci-archive:a.tar:app", "x").unwrap().to_string(),
            "oci-archive:a.tar:app".to_string()
        );
        assert_eq!(
            Location::parse("oci-archive:out/a.tar:localhost/team/app:v1", "x").unwrap(),
            Location::OciArchive { file: "out/a.tar".into(), name: Some("localhost/team/app:v1".into()) }
        );
        let e = Location::parse("oci:", "--output").unwrap_err().to_string();
        assert!(e.contains("--output") && e.contains("oci:DIR"), "{e}");
    }
}
