//! Where an image is read from or written to: a registry, an OCI layout or an
//! archive. One image type flows between any two of them, so build outputs,
//! `push` of an air-gapped archive and `copy` are the same few lines.

use std::path::PathBuf;

use oxbuild_image::{BlobStore, Image, Platform, archive, layout};
use oxbuild_registry::{Client, MountSource, PushReport, Reference};

use crate::report::Failure;

/// The forms accepted wherever an image location is asked for.
pub const FORMS: &str =
    "REGISTRY/REPO[:TAG|@DIGEST] (or docker://…), oci:DIR[:NAME], oci-archive:FILE[:NAME], docker-archive:FILE[:NAME]";

/// A parsed image location.
#[derive(Debug, Clone)]
pub enum Location {
    /// An image in a registry.
    Registry(Reference),
    /// An OCI image layout directory, optionally naming one image in it.
    Layout { dir: PathBuf, name: Option<String> },
    /// An image archive (both kinds hold the same tar; see oxbuild_image::archive).
    Archive { file: PathBuf, name: Option<String>, docker: bool },
}

/// An image read from a location.
pub struct Opened {
    pub image: Image,
    /// For a registry: the reference pinned to the manifest digest.
    pub resolved: Option<Reference>,
}

/// Splits `PATH[:NAME]`; a NAME never contains `/`.
fn path_and_name(rest: &str) -> (PathBuf, Option<String>) {
    match rest.rsplit_once(':') {
        Some((path, name)) if !path.is_empty() && !name.is_empty() && !name.contains('/') => {
            (PathBuf::from(path), Some(name.to_string()))
        }
        _ => (PathBuf::from(rest), None),
    }
}

impl Location {
    /// Parses `s`; `what` names the flag or setting in errors.
    pub fn parse(s: &str, what: &str) -> Result<Location, Failure> {
        let bad = |why: String| Failure::config(format!("{what}: `{s}` {why}; use one of {FORMS}"));
        let local = |rest: &str| {
            if rest.is_empty() { Err(bad("names no path".into())) } else { Ok(path_and_name(rest)) }
        };
        if let Some(rest) = s.strip_prefix("oci:") {
            let (dir, name) = local(rest)?;
            return Ok(Location::Layout { dir, name });
        }
        if let Some(rest) = s.strip_prefix("oci-archive:") {
            let (file, name) = local(rest)?;
            return Ok(Location::Archive { file, name, docker: false });
        }
        if let Some(rest) = s.strip_prefix("docker-archive:") {
            let (file, name) = local(rest)?;
            return Ok(Location::Archive { file, name, docker: true });
        }
        let reference = s.strip_prefix("docker://").unwrap_or(s);
        Reference::parse(reference).map(Location::Registry).map_err(|e| bad(format!("is not a location ({e})")))
    }

    /// Reads the image. Registry layers stay in the registry until needed.
    pub async fn open(&self, client: &Client, platform: &Platform, store: &BlobStore) -> Result<Opened, Failure> {
        match self {
            Location::Registry(r) => {
                let opened = oxbuild_registry::open(client, r, platform)
                    .await
                    .map_err(|e| Failure::registry(format!("reading {r}: {e}{}", not_found_hint(&e))))?;
                Ok(Opened { image: opened.image, resolved: Some(opened.resolved) })
            }
            Location::Layout { dir, name } => {
                let image = layout::read_layout(dir, name.as_deref(), platform).map_err(Failure::input)?;
                Ok(Opened { image, resolved: None })
            }
            Location::Archive { file, name, .. } => {
                let (file, name, platform, store) = (file.clone(), name.clone(), platform.clone(), store.clone());
                let image = tokio::task::spawn_blocking(move || {
                    archive::read_archive(&file, name.as_deref(), &platform, &store)
                })
                .await
                .map_err(|e| Failure::internal(format!("reading an archive: {e}")))?
                .map_err(Failure::input)?;
                Ok(Opened { image, resolved: None })
            }
        }
    }

    /// Writes `image` here. `names` are extra full references to record in an
    /// archive; `mount_from` lists repositories a registry push may mount from.
    pub async fn write(
        &self,
        client: &Client,
        image: &Image,
        store: &BlobStore,
        names: &[String],
        mount_from: &[MountSource],
    ) -> Result<Option<PushReport>, Failure> {
        if let Location::Registry(target) = self {
            let tags: Vec<String> = target.tag.iter().cloned().collect();
            let report = oxbuild_registry::push(client, image, target, &tags, mount_from)
                .await
                .map_err(|e| Failure::registry(format!("pushing to {}: {e}", target.name())))?;
            return Ok(Some(report));
        }
        let image = oxbuild_registry::fetch_layers(client, image, store)
            .await
            .map_err(|e| Failure::registry(format!("fetching layers to write {self}: {e}")))?;
        match self {
            Location::Registry(_) => unreachable!("handled above"),
            Location::Layout { dir, name } => {
                let name =
                    name.clone().or_else(|| names.first().and_then(|n| n.rsplit_once(':')).map(|(_, t)| t.to_string()));
                layout::write_layout(&image, dir, name.as_deref()).map_err(Failure::output)?;
            }
            Location::Archive { file, name, .. } => {
                let mut all: Vec<String> = name.iter().cloned().collect();
                all.extend(names.iter().cloned());
                let (file, image) = (file.clone(), image.clone());
                tokio::task::spawn_blocking(move || archive::write_archive(&image, &file, &all))
                    .await
                    .map_err(|e| Failure::internal(format!("writing an archive: {e}")))?
                    .map_err(Failure::output)?;
            }
        }
        Ok(None)
    }
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
            Location::Archive { file, name, docker } => {
                with_name(f, if *docker { "docker-archive" } else { "oci-archive" }, file, name)
            }
        }
    }
}

/// A hint for a reference that does not exist.
pub fn not_found_hint(e: &oxbuild_registry::Error) -> &'static str {
    match e {
        oxbuild_registry::Error::NotFound { .. } => {
            "; check the reference (for a base: [image] base in oxbuild.toml, or --base)"
        }
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        assert!(matches!(Location::parse("127.0.0.1:5000/a:b", "x").unwrap(), Location::Registry(_)));
        assert!(matches!(Location::parse("docker://127.0.0.1:5000/a:b", "x").unwrap(), Location::Registry(_)));
        match Location::parse("oci:/tmp/lay:v1", "x").unwrap() {
            Location::Layout { dir, name } => {
                assert_eq!((dir, name.as_deref()), (PathBuf::from("/tmp/lay"), Some("v1")))
            }
            other => panic!("{other:?}"),
        }
        match Location::parse("docker-archive:out/image.tar", "x").unwrap() {
            Location::Archive { file, name, docker } => {
                assert_eq!((file, name, docker), (PathBuf::from("out/image.tar"), None, true))
            }
            other => panic!("{other:?}"),
        }
        let e = Location::parse("oci:", "--output").unwrap_err().message;
        assert!(e.contains("--output") && e.contains("oci:DIR"), "{e}");
    }
}
