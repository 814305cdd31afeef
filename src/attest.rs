//! The SBOMs and provenance that go with an image oxbuild pushes or writes
//! (`--no-attach`, `--sbom-dir`), and `oxbuild sbom`. The documents and the
//! referrers mechanism are in `oxbuild_engine::attest` and
//! `oxbuild_registry::referrers`; this wires them to the flags.

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use oxbuild_engine::{Assembled, Location, Services};
use oxbuild_image::{Image, Platform};
use oxbuild_registry::Reference;
use serde_json::json;

use crate::build::{platform, services};
use crate::cli::{AttestArgs, SbomArgs, SignArgs, VerifyArgs, VerifyOptions};
use crate::report::{Failure, Reporter};

/// The plain files `--sbom-dir` gets.
pub const FILES: [&str; 3] = ["sbom.spdx.json", "sbom.cdx.json", "provenance.intoto.json"];

/// What goes with a pushed or written production image: its SBOMs and
/// provenance, and the key that signs it for each destination.
pub struct Proofs {
    referrers: Vec<Image>,
    key: Option<Arc<oxbuild_sign::Key>>,
}

impl Proofs {
    /// Nothing: the test variant, or a build that neither pushes nor writes.
    pub fn none() -> Proofs {
        Proofs { referrers: Vec::new(), key: None }
    }

    /// `referrers`, and `key` to sign each destination with.
    pub fn new(referrers: Vec<Image>, key: Option<Arc<oxbuild_sign::Key>>) -> Proofs {
        Proofs { referrers, key }
    }

    /// The referrers for `image` at a destination named `repository`: the
    /// documents, and a signature naming `repository` when a key was given.
    pub fn for_destination(&self, image: &Image, repository: &str, services: &Services) -> Result<Vec<Image>, Failure> {
        let mut out = self.referrers.clone();
        if let Some(key) = &self.key {
            out.push(oxbuild_engine::attest::signature(key, image, repository, &services.store)?);
        }
        Ok(out)
    }
}

/// The signing key from `flag` (a PEM file), else from `OXBUILD_SIGN_KEY`
/// (PEM content); the passphrase of an encrypted one from `OXBUILD_SIGN_PASSPHRASE`.
pub fn signing_key(flag: Option<&Path>, name: &str) -> Result<Option<oxbuild_sign::Key>, Failure> {
    let (pem, what) = match flag {
        Some(path) => (
            std::fs::read_to_string(path).map_err(|e| Failure::config(format!("{name} {}: {e}", path.display())))?,
            format!("{name} {}", path.display()),
        ),
        None => match std::env::var("OXBUILD_SIGN_KEY") {
            Ok(pem) if !pem.trim().is_empty() => (pem, "OXBUILD_SIGN_KEY".to_string()),
            _ => return Ok(None),
        },
    };
    let pass = std::env::var("OXBUILD_SIGN_PASSPHRASE").ok();
    oxbuild_sign::Key::from_pem(&pem, pass.as_deref(), &what).map(Some).map_err(Failure::config)
}

/// The proofs of the production image of `assembled`: its documents (see
/// [`documents`]) and the signing key.
pub fn prepare(
    assembled: &Assembled,
    started: SystemTime,
    args: &AttestArgs,
    services: &Services,
    out: Reporter,
) -> Result<Proofs, Failure> {
    let key = signing_key(args.sign_key.as_deref(), "--sign-key")?.map(Arc::new);
    let referrers = documents(assembled, started, args.sbom_dir.as_deref(), !args.no_attach, true, services, out)?;
    Ok(Proofs { referrers, key })
}

/// The SBOMs of the production image of `assembled` and, with
/// `provenance`, its provenance: written into `sbom_dir` when given, and
/// returned as artifacts referring to the image when `attach`.
pub fn documents(
    assembled: &Assembled,
    started: SystemTime,
    sbom_dir: Option<&Path>,
    attach: bool,
    provenance: bool,
    services: &Services,
    out: Reporter,
) -> Result<Vec<Image>, Failure> {
    let image = &assembled.prod.image;
    let docs = oxbuild_engine::attest::documents(assembled, image, started, SystemTime::now());
    let files = FILES.iter().zip([&docs.spdx, &docs.cyclonedx, &docs.provenance]).take(if provenance { 3 } else { 2 });
    if let Some(dir) = sbom_dir {
        std::fs::create_dir_all(dir).map_err(|e| Failure::output(format!("--sbom-dir {}: {e}", dir.display())))?;
        for (name, bytes) in files {
            let path = dir.join(name);
            std::fs::write(&path, bytes).map_err(|e| Failure::output(format!("writing {}: {e}", path.display())))?;
        }
        out.step(format!(
            "wrote the SBOMs{} into {}",
            if provenance { " and the provenance" } else { "" },
            dir.display()
        ));
    }
    if !attach {
        return Ok(Vec::new());
    }
    let mut artifacts = docs.artifacts(image, assembled.epoch, &services.store)?;
    if !provenance {
        artifacts.retain(|r| r.artifact_type() != Some(oxbuild_sbom::IN_TOTO_MEDIA_TYPE));
    }
    Ok(artifacts)
}

/// A short name for an artifact type, for people.
pub fn kind(artifact_type: Option<&str>) -> &str {
    match artifact_type {
        Some(oxbuild_sbom::SPDX_MEDIA_TYPE) => "SBOM (SPDX)",
        Some(oxbuild_sbom::CYCLONEDX_MEDIA_TYPE) => "SBOM (CycloneDX)",
        Some(oxbuild_sbom::IN_TOTO_MEDIA_TYPE) => "provenance",
        Some(oxbuild_sign::ARTIFACT_TYPE) => "signature",
        Some(other) => other,
        None => "artifact",
    }
}

/// Attaches `referrers` to their subject in `repo`, reporting each.
pub async fn attach(
    services: &Services,
    repo: &Reference,
    referrers: &[Image],
    out: Reporter,
) -> Result<Vec<serde_json::Value>, Failure> {
    let staged = oxbuild_engine::location::stage(&services.target(), repo, referrers).await?;
    attach_staged(services, repo, referrers, staged, out).await
}

/// [`attach`], for referrers pushed already by `oxbuild_engine::location::stage`
/// (while their image was pushed): lists them and says so.
pub async fn attach_staged(
    services: &Services,
    repo: &Reference,
    referrers: &[Image],
    staged: oxbuild_engine::location::Staged,
    out: Reporter,
) -> Result<Vec<serde_json::Value>, Failure> {
    let attached = oxbuild_engine::location::attach_staged(&services.target(), repo, referrers, staged).await?;
    let mut report = Vec::new();
    for (artifact, a) in referrers.iter().zip(&attached) {
        let how = match a.listed {
            oxbuild_registry::Listed::Api => "referrers API".to_string(),
            oxbuild_registry::Listed::FallbackTag => {
                let subject = artifact.subject().map(|s| s.digest.clone()).unwrap_or_else(|| artifact.digest());
                format!("tag {}", oxbuild_registry::fallback_tag(&subject))
            }
        };
        out.step(format!("  attached the {} ({}, listed by {how})", kind(artifact.artifact_type()), a.digest));
        report.push(describe(artifact, Some(json!({"listed": a.listed, "bytes_uploaded": a.bytes_uploaded}))));
    }
    Ok(report)
}

/// A referrer as JSON reports list it.
pub fn describe(artifact: &Image, extra: Option<serde_json::Value>) -> serde_json::Value {
    let size: u64 = artifact.layers().iter().map(|l| l.descriptor.size).sum::<u64>() + artifact.manifest().len() as u64;
    let mut v = json!({
        "artifactType": artifact.artifact_type(),
        "digest": artifact.digest(),
        "bytes": size,
        "annotations": artifact.annotations(),
    });
    if let Some(serde_json::Value::Object(m)) = extra {
        v.as_object_mut().expect("an object").extend(m);
    }
    v
}

/// Warns when `dest` cannot carry `referrers`.
pub fn warn_if_dropped(dest: &Location, referrers: &[Image], out: Reporter) {
    if !referrers.is_empty() && !dest.holds_referrers() {
        out.warn(format!(
            "{dest}: a docker-archive has no place for referrers, so its {} referrer(s) (SBOMs, provenance) are left out; use oci-archive: (podman load reads it too), or --sbom-dir",
            referrers.len()
        ));
    }
}

/// `oxbuild sbom IMAGE`: prints the attached SBOM as it was stored.
pub async fn sbom(args: SbomArgs, out: Reporter) -> Result<(), Failure> {
    let source = Location::parse(&args.image, "IMAGE")?;
    let (services, platform) = (services(&args.registry, out)?, platform(args.platform.as_deref())?);
    let opened = source.open(&services.target(), &platform.unwrap_or_else(Platform::host)).await?;
    let referrers = source.referrers(&services.target(), &opened).await?;
    let format = args.format.name();
    let Some(bytes) = oxbuild_engine::attest::sbom_of(&referrers, format, &services).await? else {
        let have: Vec<&str> = referrers.iter().map(|r| kind(r.artifact_type())).collect();
        return Err(Failure::input(format!(
            "{source} ({}) has no {format} SBOM attached{}; oxbuild attaches one whenever it pushes or writes an image (unless --no-attach)",
            opened.image.digest(),
            if have.is_empty() { String::new() } else { format!(" (it has: {})", have.join(", ")) }
        )));
    };
    // The document itself is the result, as stored: JSON already.
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&bytes).and_then(|_| stdout.write_all(b"\n")).map_err(Failure::output)?;
    Ok(())
}

/// `oxbuild sign IMAGE`: adds a signature to the image's others, in a
/// registry (its `.sig` tag and referrers) or in a layout or archive.
pub async fn sign(args: SignArgs, out: Reporter) -> Result<(), Failure> {
    let key = signing_key(args.key.as_deref(), "--key")?
        .ok_or_else(|| Failure::config("no signing key: give --key KEY.pem, or put the PEM in OXBUILD_SIGN_KEY"))?;
    let source = Location::parse(&args.image, "IMAGE")?;
    let (services, platform) = (services(&args.registry, out)?, platform(args.platform.as_deref())?);
    let opened = source.open(&services.target(), &platform.unwrap_or_else(Platform::host)).await?;
    let identity = match (&args.identity, &source) {
        (Some(i), _) => i.clone(),
        (None, Location::Registry(r)) => r.name(),
        (
            None,
            Location::Layout { dir: p, .. }
            | Location::OciArchive { file: p, .. }
            | Location::DockerArchive { file: p, .. },
        ) => p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "image".into()),
    };
    let image = &opened.image;
    let signature = oxbuild_engine::attest::signature(&key, image, &identity, &services.store)?;
    let report = match &source {
        Location::Registry(r) => attach(&services, r, std::slice::from_ref(&signature), out).await?,
        Location::DockerArchive { .. } => {
            return Err(Failure::config(format!(
                "{source}: a docker-archive has no place for signatures; sign the image in a registry, an oci: layout or an oci-archive:"
            )));
        }
        _ => {
            let mut referrers = opened.referrers.clone();
            referrers.push(signature.clone());
            source.write(&services.target(), image, &referrers, &[], &[]).await?;
            vec![describe(&signature, None)]
        }
    };
    out.result(
        &json!({"ok": true, "digest": image.digest(), "identity": identity, "key": key.public().fingerprint(), "signatures": report}),
        &[format!("signed {} as {identity} with {}", image.digest(), key.public().fingerprint())],
    );
    Ok(())
}

/// The keys and the policy of `opts`, read.
fn verification(
    opts: &VerifyOptions,
) -> Result<(Vec<oxbuild_engine::verify::NamedKey>, Option<oxbuild_config::policy::Policy>), Failure> {
    let policy =
        opts.policy.as_deref().map(oxbuild_config::policy::Policy::load).transpose().map_err(Failure::config)?;
    let mut paths: Vec<std::path::PathBuf> = opts.keys.clone();
    paths.extend(policy.iter().flat_map(|p| p.require_signature_by.iter().cloned()));
    if paths.is_empty() {
        return Err(Failure::config(
            "nothing to verify signatures with: give --key PUB.pem, or a --policy with require-signature-by",
        ));
    }
    let mut keys = Vec::new();
    for path in paths {
        let what = path.display().to_string();
        let pem = std::fs::read_to_string(&path).map_err(|e| Failure::config(format!("{what}: {e}")))?;
        let key = oxbuild_sign::PublicKey::from_pem(&pem, &what).map_err(Failure::config)?;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or(what);
        keys.push(oxbuild_engine::verify::NamedKey { name, key });
    }
    Ok((keys, policy))
}

/// Verifies the image at `source` and returns the report, the human lines
/// and, when a rule failed, the failure (exit 10).
pub async fn verify_stage(
    source: &Location,
    opts: &VerifyOptions,
    platform: Option<Platform>,
    services: &Services,
) -> Result<(serde_json::Value, Vec<String>, Option<Failure>), Failure> {
    let (keys, policy) = verification(opts)?;
    let wanted = platform.unwrap_or_else(Platform::host);
    let (image, index, referrers) = oxbuild_engine::verify::open(source, &wanted, services).await?;
    let checks =
        oxbuild_engine::verify::verify(&image, index.as_ref(), &referrers, &keys, policy.as_ref(), services).await?;
    let failed: Vec<&str> = checks.iter().filter(|c| !c.ok).map(|c| c.rule.as_str()).collect();
    let digest = image.digest();
    let json = json!({"ok": failed.is_empty(), "image": source.to_string(), "digest": digest, "index": index, "rules": checks});
    let mut human = vec![format!("{} {digest}", if failed.is_empty() { "verified" } else { "NOT verified" })];
    human.extend(checks.iter().map(|c| format!("  {}  {}: {}", if c.ok { "pass" } else { "FAIL" }, c.rule, c.detail)));
    let failure = (!failed.is_empty()).then(|| {
        Failure::verify(format!(
            "verify {source}: {} of {} rules failed: {}",
            failed.len(),
            checks.len(),
            failed.join(", ")
        ))
    });
    Ok((json, human, failure))
}

/// `oxbuild verify IMAGE`.
pub async fn verify(args: VerifyArgs, out: Reporter) -> Result<(), Failure> {
    let source = Location::parse(&args.image, "IMAGE")?;
    let (services, platform) = (services(&args.registry, out)?, platform(args.platform.as_deref())?);
    let (json, human, failure) = verify_stage(&source, &args.verify, platform, &services).await?;
    match failure {
        None => {
            out.result(&json, &human);
            Ok(())
        }
        Some(f) => {
            if out.json {
                let mut json = json;
                json["error"] = json!({"kind": f.kind, "code": f.code, "message": f.message});
                println!("{}", serde_json::to_string_pretty(&json).unwrap_or_default());
            } else {
                for line in &human {
                    println!("{line}");
                }
            }
            Err(f.reported())
        }
    }
}
