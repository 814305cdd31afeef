//! An OCI image layout directory as a source and a sink.

use std::path::Path;

use oxbuild_image::{Image, Platform, layout};

use crate::{Error, Opened};

/// Reads the image `name` (or the only one) for `platform`.
pub(crate) fn open(dir: &Path, name: Option<&str>, platform: &Platform) -> Result<Opened, Error> {
    let (image, referrers) = layout::read_layout(dir, name, platform).map_err(|e| Error::Input(e.to_string()))?;
    Ok(Opened { image, resolved: None, referrers })
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
    let tag = names.first().and_then(|n| n.rsplit_once(':')).map(|(_, t)| t).filter(|t| !t.contains('/'));
    layout::write_layout(image, dir, name.or(tag)).map_err(|e| Error::Output(e.to_string()))?;
    for r in referrers {
        layout::write_layout(r, dir, None).map_err(|e| Error::Output(e.to_string()))?;
    }
    Ok(())
}
