//! An OCI image layout directory as a source and a sink.

use std::path::Path;

use oxbuild_image::{Image, Index, Platform, layout};

use crate::{Content, Error, Opened};

/// Reads the image `name` (or the only one) for `platform`, or without
/// one, its index whole (or its one image).
pub(crate) fn read(dir: &Path, name: Option<&str>, platform: Option<&Platform>) -> Result<Content, Error> {
    let found = layout::read_layout_any(dir, name, platform).map_err(|e| Error::Input(e.to_string()))?;
    Ok(Content::from(found))
}

/// Reads the image `name` (or the only one) for `platform`.
pub(crate) fn open(dir: &Path, name: Option<&str>, platform: &Platform) -> Result<Opened, Error> {
    match read(dir, name, Some(platform))? {
        Content::Image(opened) => Ok(*opened),
        Content::Index(_) => unreachable!("a platform was asked for"),
    }
}

/// Writes `image` (every layer on disk) into the layout, named `name`, else
/// by the tag of the first of `names`, and its `referrers` unnamed beside it.
pub(crate) fn write(
    image: &Image,
    referrers: &[Image],
    dir: &Path,
    name: Option<&str>,
    names: &[String],
) -> Result<(), Error> {
    layout::write_layout(image, dir, name.or(tag(names))).map_err(|e| Error::Output(e.to_string()))?;
    write_referrers(referrers, dir)
}

/// Writes `index` and its images into the layout, named as [`write`] names
/// an image, with `referrers` unnamed beside it.
pub(crate) fn write_index(
    index: &Index,
    referrers: &[Image],
    dir: &Path,
    name: Option<&str>,
    names: &[String],
) -> Result<(), Error> {
    layout::write_layout_index(index, dir, name.or(tag(names))).map_err(|e| Error::Output(e.to_string()))?;
    write_referrers(referrers, dir)
}

/// The tag of the first of `names` (`registry/repo:tag`), if it has one.
fn tag(names: &[String]) -> Option<&str> {
    names.first().and_then(|n| n.rsplit_once(':')).map(|(_, t)| t).filter(|t| !t.contains('/'))
}

fn write_referrers(referrers: &[Image], dir: &Path) -> Result<(), Error> {
    for r in referrers {
        layout::write_layout(r, dir, None).map_err(|e| Error::Output(e.to_string()))?;
    }
    Ok(())
}
