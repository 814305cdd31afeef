//! The cache repository: a registry repository that stateless CI runners
//! share (`--cache-repo`), so that a fresh runner reuses dependency layers and
//! base scans instead of downloading wheels and bases.
//!
//! Its format, versioned by [`FORMAT`] in every tag and config so that
//! runners of different oxbuild versions never misread each other:
//! - `deps-v<F>-<key>`: a one-layer image holding a dependency layer; its
//!   config's `oxbuild` object names the kind, the format, the key, the wheels
//!   and the yanked-file warnings. Found with one manifest and one config
//!   request; the layer stays in the registry (mounted or streamed when pushed).
//! - `scan-v<F>-<key>`: a config-only image whose `oxbuild.scan` is a base scan,
//!   keyed by the base's layer digests.
//! - `kit-v<F>-<hash>`: a one-layer image holding the files a base's Python
//!   needs to compile bytecode, so that a fresh runner compiles without
//!   downloading the base.
//! - `app-v<F>-<key>`: a one-layer image holding an app layer (the app's
//!   files and their bytecode), keyed by everything that decides its bytes
//!   (see `oxbuild_build::app_key`); its config's `oxbuild` object says how
//!   many sources were compiled and repeats what writing it warned about.
//! - `wheel-v<F>-<key>`: a one-layer image whose layer holds a wheel that
//!   oxbuild built from a sdist (as `wheel/<file name>`), keyed by
//!   the sdist, the interpreter and the build requirements, so that only the
//!   first runner of a fleet builds it.
//!
//! The repository is a trust boundary: whoever can push to it could change
//! what every later build produces (a scan's `/etc/passwd` goes into the
//! image). With `OXBUILD_CACHE_KEY` (or a file named by
//! `OXBUILD_CACHE_KEY_FILE`) every entry carries an HMAC-SHA256, under that
//! key, of its `oxbuild` object (which names the cache key, itself derived
//! from the inputs: the lock and target, or the base's layers) and of its
//! layers; an entry whose MAC does not match is reported and rebuilt from the
//! source. Without a key, entries are used unauthenticated, with a warning.

use oxbuild_image::{Format, Image, Layer, Platform};
use oxbuild_registry::Reference;
use serde_json::json;

use crate::Services;
use crate::base::Scan;

/// The cache repository's format.
pub const FORMAT: u32 = 2;

/// The kind of a dependency layer's config.
const DEPS: &str = "dependency-layer";
/// The kind of a base scan's config.
const SCAN: &str = "base-scan";
/// The kind of an interpreter kit's config.
const KIT: &str = "interpreter-kit";
/// The kind of a built wheel's config.
const BUILT: &str = "built-wheel";
/// The kind of an app layer's config.
const APP: &str = "app-layer";

/// The tag of a base interpreter's kit (see `crate::interpreter`).
pub fn kit_tag(key: &str) -> String {
    format!("kit-v{FORMAT}-{}", oxbuild_image::Digest::of(key.as_bytes()).hex())
}

/// A kit found in the cache repository: its layer in the store, and the
/// probe of its interpreter kept beside it, if any.
pub type FoundKit = (Layer, Option<serde_json::Value>);

/// The kit with cache key `key`, if the repository has it: its layer (still
/// in the registry, fetched by the caller, verified as it arrives) and what
/// its interpreter said of itself.
pub async fn kit(key: &str, repo: &CacheRepo, services: &Services) -> Option<FoundKit> {
    let tagged = repo.reference.with_tag(&kit_tag(key));
    let (image, config) = open(repo, &tagged, KIT, services).await?;
    if config["oxbuild"]["key"].as_str() != Some(key) {
        return None;
    }
    let layer = image.layers().first()?.clone();
    services.events.step(&format!("  interpreter kit found in {tagged}"));
    let probe = Some(config["oxbuild"]["probe"].clone()).filter(|p| !p.is_null());
    Some((layer, probe))
}

/// Stores a kit made here, with what its interpreter said of itself; a
/// failure only warns.
pub async fn store_kit(
    key: &str,
    layer: Layer,
    diff_id: &oxbuild_image::Digest,
    probe: serde_json::Value,
    repo: &CacheRepo,
    services: &Services,
) {
    let meta = json!({"kind": KIT, "format": FORMAT, "key": key, "probe": probe});
    if let Err(e) = push(vec![layer], vec![diff_id.to_string()], meta, repo, &kit_tag(key), services).await {
        services.events.warn(&format!("could not store the interpreter kit in {}: {e}", repo.reference.name()));
    }
}

/// The tag of a wheel built from a sdist.
pub fn built_tag(key: &str) -> String {
    format!("wheel-v{FORMAT}-{}", &key[..key.len().min(64)])
}

/// Where the wheel sits in its cache image's one layer. A wheel travels in
/// an ordinary gzip layer, which every registry accepts; some refuse layers
/// of media types they do not know.
fn wheel_path(filename: &str) -> String {
    format!("wheel/{filename}")
}

/// The wheel built under `key`, put into the store: its file name and
/// digest, if the repository has it.
pub async fn built(key: &str, repo: &CacheRepo, services: &Services) -> Option<oxbuild_python::sdist::Kept> {
    let tagged = repo.reference.with_tag(&built_tag(key));
    let (image, config) = open(repo, &tagged, BUILT, services).await?;
    let meta = &config["oxbuild"];
    if meta["key"].as_str() != Some(key) {
        return None;
    }
    let filename = meta["wheel"].as_str()?.to_string();
    let layer = image.layers().first()?.clone();
    let local = oxbuild_registry::fetch_layer(&services.client, layer, &services.store).await.ok()?;
    let (path, store, wanted) = (local.path().ok()?.to_path_buf(), services.store.clone(), wheel_path(&filename));
    let digest = tokio::task::spawn_blocking(move || -> Option<oxbuild_image::Digest> {
        let file = std::fs::File::open(path).ok()?;
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
        for entry in archive.entries().ok()? {
            let mut entry = entry.ok()?;
            if entry.path().ok()?.to_str() == Some(wanted.as_str()) {
                let mut writer = store.writer().ok()?;
                std::io::copy(&mut entry, &mut writer).ok()?;
                return writer.commit_computed().ok().map(|(d, _)| d);
            }
        }
        None
    })
    .await
    .ok()??;
    services.events.step(&format!("  {filename} (built from its sdist) found in {tagged}"));
    let asked = serde_json::from_value(meta["asked"].clone()).unwrap_or_default();
    Some(oxbuild_python::sdist::Kept { wheel: filename, digest, asked })
}

/// Stores a wheel built here from a sdist; a failure only warns.
pub async fn store_built(key: &str, kept: &oxbuild_python::sdist::Kept, repo: &CacheRepo, services: &Services) {
    let filename = kept.wheel.as_str();
    let (path, store, inside) = (services.store.path(&kept.digest), services.store.clone(), wheel_path(filename));
    let blob = tokio::task::spawn_blocking(move || {
        let mut layer = oxbuild_image::LayerBuilder::new(0, oxbuild_image::Owner::ROOT);
        layer.file(&inside, &path, oxbuild_image::Owner::ROOT, 0o644);
        layer.write(&store, oxbuild_image::LayerCompression::Gzip)
    })
    .await;
    let pushed = match blob {
        Ok(Ok(blob)) => match blob.descriptor_in(Format::Oci) {
            Ok(descriptor) => {
                let layer = Layer::file(descriptor, blob.path.clone());
                let meta = json!({"kind": BUILT, "format": FORMAT, "key": key, "wheel": filename, "asked": kept.asked});
                push(vec![layer], vec![blob.diff_id.to_string()], meta, repo, &built_tag(key), services).await
            }
            Err(e) => Err(e.to_string()),
        },
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = pushed {
        services.events.warn(&format!("could not store {filename} in {}: {e}", repo.reference.name()));
    }
}

/// The tag of a dependency layer.
pub fn deps_tag(key: &str) -> String {
    format!("deps-v{FORMAT}-{}", &key[..key.len().min(64)])
}

/// The tag of a base scan.
pub fn scan_tag(base: &Image) -> String {
    format!("scan-v{FORMAT}-{}", oxbuild_build::scan_key(base).hex())
}

/// A dependency layer found in the cache repository.
#[derive(Debug, Clone)]
pub struct CachedDeps {
    /// The layer, left in the registry.
    pub layer: Layer,
    /// Its uncompressed digest.
    pub diff_id: oxbuild_image::Digest,
    /// The wheels (or packages) in it.
    pub wheels: Vec<String>,
    /// Warnings kept with it.
    pub yanked: Vec<String>,
    /// Sources compiled to bytecode in it.
    pub compiled: usize,
    /// The packages in it, for the SBOM.
    pub packages: Vec<oxbuild_sbom::Package>,
    /// The programs it puts on PATH; None in an entry from before they were kept.
    pub programs: Option<Vec<String>>,
}

/// What the config of a dependency layer's cache image says about it.
#[derive(Debug, Clone)]
pub struct DepsMeta {
    /// The wheels (or packages) in it.
    pub wheels: Vec<String>,
    /// Warnings to repeat whenever it is reused.
    pub yanked: Vec<String>,
    /// Sources compiled to bytecode in it.
    pub compiled: usize,
    /// The packages in it, for the SBOM.
    pub packages: Vec<oxbuild_sbom::Package>,
    /// The programs it puts on PATH (see `oxbuild_build::ExtraLayer::programs`), when known.
    pub programs: Option<Vec<String>>,
}

/// A cache repository, and the fleet's key that signs and checks its entries.
#[derive(Clone)]
pub struct CacheRepo {
    /// The registry repository.
    pub reference: Reference,
    /// The MAC key; None uses entries unauthenticated (with a warning).
    key: Option<Vec<u8>>,
}

impl std::fmt::Debug for CacheRepo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheRepo")
            .field("reference", &self.reference.to_string())
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl CacheRepo {
    /// The repository `reference`, its key still to be found by [`CacheRepo::keyed`].
    pub fn new(reference: Reference) -> CacheRepo {
        CacheRepo { reference, key: None }
    }

    /// The repository with this key, which wins over the environment and the config.
    pub fn with_key(reference: Reference, key: Vec<u8>) -> CacheRepo {
        CacheRepo { reference, key: Some(key) }
    }

    /// Whether entries are signed and checked.
    pub fn has_key(&self) -> bool {
        self.key.is_some()
    }

    /// The repository a build of `dir` uses: `explicit` (`--cache-repo`), else
    /// `[cache] repository`; with its key from `OXBUILD_CACHE_KEY`, else the
    /// file `OXBUILD_CACHE_KEY_FILE` names, else `[cache] key-file`. A key file
    /// that is named but unreadable or empty is an error, never a silent
    /// fallback to unauthenticated entries.
    pub fn resolve(
        explicit: Option<&CacheRepo>,
        cfg: &oxbuild_config::Config,
        dir: &std::path::Path,
    ) -> Result<Option<CacheRepo>, crate::Error> {
        let mut repo = match (explicit, &cfg.cache.repository) {
            (Some(r), _) => r.clone(),
            (None, Some(r)) => CacheRepo::new(
                Reference::parse(r)
                    .map_err(|e| crate::Error::new(crate::Kind::Config, format!("[cache] repository `{r}`: {e}")))?,
            ),
            (None, None) => return Ok(None),
        };
        if repo.key.is_none() {
            repo.key = key_from(
                std::env::var("OXBUILD_CACHE_KEY").ok(),
                std::env::var_os("OXBUILD_CACHE_KEY_FILE").map(|f| ("OXBUILD_CACHE_KEY_FILE", f.into())),
                cfg.cache.key_file.as_ref().map(|f| ("[cache] key-file", dir.join(f))),
            )?;
            if let Some(f) = &cfg.cache.key_file
                && std::env::var_os("OXBUILD_CACHE_KEY").is_none()
                && std::env::var_os("OXBUILD_CACHE_KEY_FILE").is_none()
                && let (Ok(file), Ok(app)) = (dir.join(f).canonicalize(), dir.canonicalize())
                && file.starts_with(&app)
            {
                return Err(crate::Error::new(
                    crate::Kind::Config,
                    format!(
                        "{}: the cache key file ([cache] key-file) is inside the app directory, so the secret would be copied into the image; keep it outside, e.g. /run/secrets/oxbuild-cache-key",
                        file.display()
                    ),
                ));
            }
        }
        Ok(Some(repo))
    }
}

/// The key: the value itself, else the first key file named (its content, trimmed).
fn key_from(
    value: Option<String>,
    env_file: Option<(&str, std::path::PathBuf)>,
    cfg_file: Option<(&str, std::path::PathBuf)>,
) -> Result<Option<Vec<u8>>, crate::Error> {
    if let Some(v) = value.filter(|v| !v.is_empty()) {
        return Ok(Some(v.into_bytes()));
    }
    let Some((what, path)) = env_file.or(cfg_file) else { return Ok(None) };
    let bad = |why: String| {
        crate::Error::new(
            crate::Kind::Config,
            format!("{}: the cache key file ({what}) {why}; give a file holding the fleet's secret", path.display()),
        )
    };
    let bytes = std::fs::read(&path).map_err(|e| bad(format!("cannot be read ({e})")))?;
    let key = bytes.trim_ascii().to_vec();
    if key.is_empty() {
        return Err(bad("is empty".into()));
    }
    Ok(Some(key))
}

/// HMAC-SHA256 (hex) of an entry: its `oxbuild` object without the MAC, and
/// its layers' digests and diff ids.
fn mac(key: &[u8], meta: &serde_json::Value, layers: &[String], diff_ids: &serde_json::Value) -> String {
    use hmac::{KeyInit as _, Mac as _};
    let mut meta = meta.clone();
    if let Some(m) = meta.as_object_mut() {
        m.remove("mac");
    }
    let bound = oxbuild_image::canonical_json(&json!({"meta": meta, "layers": layers, "diff_ids": diff_ids}));
    let mut h = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    h.update(&bound);
    hex::encode(h.finalize().into_bytes())
}

/// Whether an entry read from the repository may be used: its MAC matches
/// under the configured key, or (without a key) always, with a warning once.
fn authentic(
    repo: &CacheRepo,
    tagged: &Reference,
    image: &Image,
    config: &serde_json::Value,
    services: &Services,
) -> bool {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let Some(key) = &repo.key else {
        if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
            services.events.warn(&format!(
                "entries of the cache repository {} are used unauthenticated: anyone who can push there can change what this build produces; set OXBUILD_CACHE_KEY on every runner to sign and check them",
                tagged.name()
            ));
        }
        return true;
    };
    let layers: Vec<String> = image.layers().iter().map(|l| l.descriptor.digest.to_string()).collect();
    let expected = mac(key, &config["oxbuild"], &layers, &config["rootfs"]["diff_ids"]);
    if config["oxbuild"]["mac"].as_str() == Some(expected.as_str()) {
        return true;
    }
    services.events.warn(&format!(
        "{tagged}: its MAC does not match (tampered with, or made without this OXBUILD_CACHE_KEY); not used, building it from the source"
    ));
    false
}

/// The config of a cache image, if it is of this format and `kind`, and authentic.
async fn open(
    repo: &CacheRepo,
    tagged: &Reference,
    kind: &str,
    services: &Services,
) -> Option<(Image, serde_json::Value)> {
    let opened = match oxbuild_registry::open(&services.client, tagged, &Platform::host()).await {
        Ok(o) => o,
        Err(oxbuild_registry::Error::NotFound { .. }) => return None,
        Err(e) => {
            services.events.warn(&format!("cache repository {}: {e}; building it here", tagged.name()));
            return None;
        }
    };
    let config = opened.image.config_json().ok()?;
    let meta = &config["oxbuild"];
    let ours = meta["format"].as_u64() == Some(u64::from(FORMAT)) && meta["kind"].as_str() == Some(kind);
    (ours && authentic(repo, tagged, &opened.image, &config, services)).then_some((opened.image, config))
}

/// The dependency layer with cache key `key`, if the repository has it. None
/// (with a note) when it is not there or cannot be had: the build goes on.
pub async fn deps(key: &str, repo: &CacheRepo, services: &Services) -> Option<CachedDeps> {
    let tagged = repo.reference.with_tag(&deps_tag(key));
    let (image, config) = open(repo, &tagged, DEPS, services).await?;
    let meta = &config["oxbuild"];
    if meta["key"].as_str() != Some(key) {
        return None;
    }
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array().map(|a| a.iter().filter_map(|w| w.as_str().map(String::from)).collect()).unwrap_or_default()
    };
    let layer = image.layers().first()?.clone();
    let diff_id = config["rootfs"]["diff_ids"][0].as_str()?.parse().ok()?;
    // Written by an oxbuild without SBOMs: rebuilt, so the SBOM can be exact.
    let packages = serde_json::from_value(meta.get("packages")?.clone()).ok()?;
    services.events.step(&format!("  dependency layer found in {tagged}"));
    Some(CachedDeps {
        layer,
        diff_id,
        wheels: strings(&meta["wheels"]),
        yanked: strings(&meta["yanked"]),
        compiled: meta["compiled"].as_u64().unwrap_or(0) as usize,
        packages,
        programs: meta.get("programs").filter(|p| p.is_array()).map(strings),
    })
}

/// Stores a dependency layer made here. A failure only warns: the build has what it needs.
pub async fn store_deps(
    key: &str,
    layer: Layer,
    diff_id: &oxbuild_image::Digest,
    deps: &DepsMeta,
    repo: &CacheRepo,
    services: &Services,
) {
    let meta = json!({
        "kind": DEPS,
        "format": FORMAT,
        "key": key,
        "wheels": deps.wheels,
        "yanked": deps.yanked,
        "compiled": deps.compiled,
        "packages": deps.packages,
        "programs": deps.programs,
    });
    let tag = deps_tag(key);
    match push(vec![layer], vec![diff_id.to_string()], meta, repo, &tag, services).await {
        Ok(()) => services.events.step(&format!("  stored the dependency layer as {}", repo.reference.with_tag(&tag))),
        Err(e) => {
            services.events.warn(&format!("could not store the dependency layer in {}: {e}", repo.reference.name()))
        }
    }
}

/// The tag of an app layer.
pub fn app_tag(key: &str) -> String {
    format!("app-v{FORMAT}-{}", &key[..key.len().min(64)])
}

/// An app layer found in the cache repository.
#[derive(Debug, Clone)]
pub struct CachedApp {
    /// The layer, left in the registry.
    pub layer: Layer,
    /// Its uncompressed digest.
    pub diff_id: oxbuild_image::Digest,
    /// Sources compiled to bytecode in it.
    pub compiled: usize,
    /// What writing it warned about.
    pub warnings: Vec<String>,
    /// Where it was found, for the report.
    pub from: String,
}

/// The app layer with key `key`, if the repository has it.
pub async fn app(key: &str, repo: &CacheRepo, services: &Services) -> Option<CachedApp> {
    let tagged = repo.reference.with_tag(&app_tag(key));
    let (image, config) = open(repo, &tagged, APP, services).await?;
    let meta = &config["oxbuild"];
    if meta["key"].as_str() != Some(key) {
        return None;
    }
    let warnings = meta["warnings"]
        .as_array()
        .map(|a| a.iter().filter_map(|w| w.as_str().map(String::from)).collect())
        .unwrap_or_default();
    Some(CachedApp {
        layer: image.layers().first()?.clone(),
        diff_id: config["rootfs"]["diff_ids"][0].as_str()?.parse().ok()?,
        compiled: meta["compiled"].as_u64()? as usize,
        warnings,
        from: format!("cache repository ({tagged})"),
    })
}

/// Stores an app layer made here; a failure only warns.
pub async fn store_app(
    key: &str,
    layer: Layer,
    diff_id: &oxbuild_image::Digest,
    compiled: usize,
    warnings: &[String],
    repo: &CacheRepo,
    services: &Services,
) {
    let meta = json!({"kind": APP, "format": FORMAT, "key": key, "compiled": compiled, "warnings": warnings});
    if let Err(e) = push(vec![layer], vec![diff_id.to_string()], meta, repo, &app_tag(key), services).await {
        services.events.warn(&format!("could not store the app layer in {}: {e}", repo.reference.name()));
    }
}

/// The scan of `base`, if the repository has it.
pub async fn scan(base: &Image, repo: &CacheRepo, services: &Services) -> Option<Scan> {
    let tagged = repo.reference.with_tag(&scan_tag(base));
    let (_, config) = open(repo, &tagged, SCAN, services).await?;
    // The MAC covers the key, and the key is the base's layers: a scan of
    // another base under this tag is refused.
    if config["oxbuild"]["key"].as_str() != Some(oxbuild_build::scan_key(base).hex()) {
        return None;
    }
    let scan = serde_json::from_value(config["oxbuild"]["scan"].clone()).ok()?;
    services.events.step(&format!("  base scan found in {tagged}"));
    Some(scan)
}

/// Stores a scan of `base`; a failure only warns.
pub async fn store_scan(base: &Image, scan: &Scan, repo: &CacheRepo, services: &Services) {
    let meta = json!({"kind": SCAN, "format": FORMAT, "key": oxbuild_build::scan_key(base).hex(), "scan": scan});
    if let Err(e) = push(Vec::new(), Vec::new(), meta, repo, &scan_tag(base), services).await {
        services.events.warn(&format!("could not store the base scan in {}: {e}", repo.reference.name()));
    }
}

/// Pushes a cache image: `layers` and a config carrying `meta`.
async fn push(
    layers: Vec<Layer>,
    diff_ids: Vec<String>,
    meta: serde_json::Value,
    repo: &CacheRepo,
    tag: &str,
    services: &Services,
) -> Result<(), String> {
    let mut meta = meta;
    if let Some(key) = &repo.key {
        let digests: Vec<String> = layers.iter().map(|l| l.descriptor.digest.to_string()).collect();
        meta["mac"] = json!(mac(key, &meta, &digests, &json!(diff_ids)));
    }
    let config = json!({
        "architecture": Platform::host().architecture,
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "oxbuild": meta,
    });
    let image = Image::assemble(Format::Oci, &config, layers, &Default::default()).map_err(|e| e.to_string())?;
    oxbuild_registry::push(&services.client, &image, &repo.reference, &[tag.to_string()], &[])
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_key_never_shows_in_debug() {
        let repo = CacheRepo::with_key(Reference::parse("registry.example/cache").unwrap(), b"fleet-S3cret".to_vec());
        let shown = format!("{repo:?}");
        assert!(!shown.contains("fleet-S3cret") && shown.contains("<redacted>"), "{shown}");
        assert!(repo.has_key());
    }

    #[test]
    fn a_named_key_file_that_is_missing_or_empty_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.key");
        let e = key_from(None, None, Some(("[cache] key-file", missing.clone()))).unwrap_err().to_string();
        assert!(e.contains("missing.key") && e.contains("cannot be read"), "{e}");
        let empty = dir.path().join("empty.key");
        std::fs::write(&empty, "\n").unwrap();
        let e = key_from(None, Some(("OXBUILD_CACHE_KEY_FILE", empty)), None).unwrap_err().to_string();
        assert!(e.contains("OXBUILD_CACHE_KEY_FILE") && e.contains("is empty"), "{e}");
        assert_eq!(key_from(Some("k".into()), Some(("x", missing)), None).unwrap(), Some(b"k".to_vec()));
    }
}
