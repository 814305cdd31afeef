//! Media types of manifests, configs and layers, in their OCI and Docker schema 2 spellings.

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI gzip layer.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI uncompressed layer.
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI zstd layer.
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// Docker schema 2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker gzip layer.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker foreign (non-distributable) gzip layer.
pub const DOCKER_LAYER_FOREIGN: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

/// The empty descriptor's media type: the config of an artifact manifest.
pub const EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// The empty descriptor's content.
pub const EMPTY_JSON: &[u8] = b"{}";

/// Every manifest and index type oxbuild reads, for an HTTP `Accept` header.
pub const ACCEPT_MANIFESTS: [&str; 4] = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST];

/// Which family of media types an image is written with.
///
/// Podman (and Docker) honour a `Healthcheck` only on Docker schema 2 images, so
/// oxbuild writes [`Format::Docker`] whenever a healthcheck is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `application/vnd.oci.*`
    Oci,
    /// `application/vnd.docker.*` (schema 2)
    Docker,
}

impl Format {
    /// The manifest media type of this format.
    pub fn manifest(self) -> &'static str {
        match self {
            Format::Oci => OCI_MANIFEST,
            Format::Docker => DOCKER_MANIFEST,
        }
    }

    /// The config media type of this format.
    pub fn config(self) -> &'static str {
        match self {
            Format::Oci => OCI_CONFIG,
            Format::Docker => DOCKER_CONFIG,
        }
    }

    /// The gzip layer media type of this format.
    pub fn gzip_layer(self) -> &'static str {
        match self {
            Format::Oci => OCI_LAYER_GZIP,
            Format::Docker => DOCKER_LAYER_GZIP,
        }
    }

    /// The same layer's media type in this format, or `None` when this format
    /// cannot say it (a zstd layer has no Docker schema 2 spelling).
    pub fn layer(self, media_type: &str) -> Option<&'static str> {
        let gzip = matches!(media_type, OCI_LAYER_GZIP | DOCKER_LAYER_GZIP);
        match (self, gzip, media_type) {
            (_, true, _) => Some(self.gzip_layer()),
            (Format::Oci, _, OCI_LAYER_TAR) => Some(OCI_LAYER_TAR),
            (Format::Oci, _, OCI_LAYER_ZSTD) => Some(OCI_LAYER_ZSTD),
            _ => None,
        }
    }
}

/// True for a manifest list or OCI index.
pub fn is_index(media_type: &str) -> bool {
    matches!(media_type, OCI_INDEX | DOCKER_MANIFEST_LIST)
}

/// True for a single-image manifest.
pub fn is_manifest(media_type: &str) -> bool {
    matches!(media_type, OCI_MANIFEST | DOCKER_MANIFEST)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_layers_translate_both_ways_and_zstd_has_no_docker_form() {
        assert_eq!(Format::Docker.layer(OCI_LAYER_GZIP), Some(DOCKER_LAYER_GZIP));
        assert_eq!(Format::Oci.layer(DOCKER_LAYER_GZIP), Some(OCI_LAYER_GZIP));
        assert_eq!(Format::Docker.layer(OCI_LAYER_ZSTD), None);
        assert_eq!(Format::Oci.layer(OCI_LAYER_ZSTD), Some(OCI_LAYER_ZSTD));
    }
}
