//! What can be checked of an image for another architecture without
//! running it: that the native extensions in its dependency layer are ELF
//! files for its own machine.

use std::io::Read as _;

use oxbuild_image::{Digest, Image};

use crate::{Error, Kind};

/// The ELF `e_machine` of an OCI architecture.
pub fn elf_machine(architecture: &str) -> Option<u16> {
    Some(match architecture {
        "amd64" => 62,
        "arm64" => 183,
        "arm" => 40,
        "386" => 3,
        "ppc64le" => 21,
        "s390x" => 22,
        "riscv64" => 243,
        _ => return None,
    })
}

/// The native extensions (`*.so`) of the layer `layer` of `image` with
/// their ELF machines, read from the layer on disk.
pub fn extensions(image: &Image, layer: &Digest) -> Result<Vec<(String, u16)>, Error> {
    let Some(found) = image.layers().iter().find(|l| &l.descriptor.digest == layer) else { return Ok(Vec::new()) };
    let path = found.path().map_err(|e| Error::new(Kind::Input, e))?;
    let file = std::fs::File::open(path).map_err(|e| Error::new(Kind::Input, format!("{}: {e}", path.display())))?;
    let reader: Box<dyn std::io::Read> = if found.descriptor.media_type.ends_with("zstd") {
        return Ok(Vec::new());
    } else {
        Box::new(flate2::read::GzDecoder::new(file))
    };
    let mut archive = tar::Archive::new(reader);
    let mut out = Vec::new();
    let bad = |e: std::io::Error| Error::new(Kind::Input, format!("reading layer {layer}: {e}"));
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let name = entry.path().map_err(bad)?.to_string_lossy().into_owned();
        if !entry.header().entry_type().is_file() || !(name.ends_with(".so") || name.contains(".so.")) {
            continue;
        }
        let mut head = [0u8; 20];
        if entry.read_exact(&mut head).is_ok() && &head[..4] == b"\x7fELF" {
            out.push((name, u16::from_le_bytes([head[18], head[19]])));
        }
    }
    Ok(out)
}
