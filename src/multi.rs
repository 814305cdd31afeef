//! `build` for several platforms (`--platform linux/amd64,linux/arm64`, or
//! `[image] platforms`): one image per platform, built concurrently (each
//! with its own interpreter, libc and wheels; no emulation), under one
//! index. Nothing is written or pushed unless every platform built.

use oxbuild_engine::{Assembled, Location, Request, Services};
use oxbuild_image::{Index, Platform};
use oxbuild_registry::Reference;
use serde_json::json;

use crate::attest::Proofs;
use crate::cli::{AttestArgs, BuildArgs};
use crate::report::{Failure, Reporter};

/// The platforms asked for: the `--platform` list, else `[image] platforms`;
/// `all` is every platform of the base that has a Python (see [`resolve`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Asked {
    /// These platforms.
    List(Vec<Platform>),
    /// Every usable platform of the base.
    All,
}

impl Asked {
    /// True when more than one image (or possibly so, for `all`) is built.
    pub fn several(&self) -> bool {
        match self {
            Asked::List(l) => l.len() > 1,
            Asked::All => true,
        }
    }

    /// The one platform asked for, if exactly one.
    pub fn one(&self) -> Option<&Platform> {
        match self {
            Asked::List(l) if l.len() == 1 => l.first(),
            _ => None,
        }
    }
}

/// Reads `--platform` (or `[image] platforms`).
pub fn platforms(flag: Option<&str>, configured: &[String]) -> Result<Asked, Failure> {
    let (list, what): (Vec<&str>, &str) = match flag {
        Some(f) => (f.split(',').map(str::trim).filter(|s| !s.is_empty()).collect(), "--platform"),
        None => (configured.iter().map(String::as_str).collect(), "[image] platforms"),
    };
    if list == ["all"] {
        return Ok(Asked::All);
    }
    let mut out: Vec<Platform> = Vec::new();
    for p in list {
        let parsed: Platform = p.parse().map_err(|e| Failure::config(format!("{what}: {e}")))?;
        if !out.contains(&parsed) {
            out.push(parsed);
        }
    }
    Ok(Asked::List(out))
}

/// The platforms to build: the list, or for `all` every platform of the
/// base whose Python oxbuild can find, saying which others it skips and why.
pub async fn resolve(
    asked: Asked,
    request: &Request,
    services: &Services,
    out: Reporter,
) -> Result<Vec<Platform>, Failure> {
    if let Asked::List(l) = asked {
        return Ok(l);
    }
    let found = oxbuild_engine::base_platforms(request, services).await?;
    let mut usable = Vec::new();
    for (p, ok) in found {
        match ok {
            Ok(()) => usable.push(p),
            Err(why) => out.warn(format!("--platform all: skipping {p}: {why}")),
        }
    }
    if usable.is_empty() {
        return Err(Failure::build("--platform all: no platform of the base has a Python oxbuild can build for"));
    }
    Ok(usable)
}

/// Builds, writes and pushes the index of the platforms `asked`.
pub async fn run(
    args: &BuildArgs,
    asked: Asked,
    request: Request,
    tags: &[Reference],
    outputs: &[Location],
    repository: Option<&Reference>,
    out: Reporter,
) -> Result<(), Failure> {
    if args.variant == crate::cli::Variant::Test {
        return Err(Failure::config(
            "--variant test is built for one platform (the one assess runs on): give a single --platform",
        ));
    }
    if let Some(o) = outputs.iter().find(|o| matches!(o, Location::DockerArchive { .. })) {
        return Err(Failure::config(format!(
            "--output {o}: a docker-archive holds one image, and several platforms were asked for; write oci-archive: or oci: instead"
        )));
    }
    let started = std::time::SystemTime::now();
    let services = crate::build::services(&args.app.registry, out)?;
    let body = async {
        let platforms = resolve(asked, &request, &services, out).await?;
        let built = assemble_all(&request, &platforms, None, &services, out).await?;
        let index = index_of(&built)?;
        let ships = args.push || !outputs.is_empty() || args.attest.sbom_dir.is_some();
        let (proofs, index_proofs) = if ships {
            prepare(&built, &index, started, &args.attest, &services, out)?
        } else {
            (Vec::new(), Vec::new())
        };
        let names: Vec<String> = tags.iter().map(ToString::to_string).collect();
        let mut written = Vec::new();
        if !outputs.is_empty() {
            // Each image's proofs go beside the index, as a push attaches them.
            let identity = crate::build::identity(&args.app, tags, repository);
            let mut referrers = index_proofs.clone();
            for ((_, image), p) in index.children().iter().zip(&proofs) {
                referrers.extend(p.for_destination(image, &identity, &services)?);
            }
            for output in outputs {
                out.step(format!("writing {output}"));
                output.write_index(&services.target(), &index, &referrers, &names, &[]).await?;
                written.push(output.to_string());
            }
        }

        let mut pushed = Vec::new();
        let mut push_reports = Vec::new();
        if args.push {
            let mount_from: Vec<_> = built.iter().flat_map(|a| a.mount_from.iter().cloned()).collect();
            for (name, (target, repo_tags)) in crate::build::by_repository(tags, repository) {
                out.step(format!("pushing {name} ({} platforms)", index.children().len()));
                let report = oxbuild_registry::push_index(&services.client, &index, &target, &repo_tags, &mount_from)
                    .await
                    .map_err(|e| Failure::registry(format!("pushing to {name}: {e}")))?;
                out.step(crate::transfer::describe_push(&report));
                let mut attached = crate::attest::attach(&services, &target, &index_proofs, out).await?;
                for ((_, image), p) in index.children().iter().zip(&proofs) {
                    let referrers = p.for_destination(image, &name, &services)?;
                    attached.extend(crate::attest::attach(&services, &target, &referrers, out).await?);
                }
                pushed.push(target.with_digest(index.digest()).to_string());
                pushed.extend(repo_tags.iter().map(|t| target.with_tag(t).to_string()));
                push_reports.push(json!({"repository": name, "report": report, "referrers": attached}));
            }
        }

        let manifests: Vec<_> = built
            .iter()
            .map(|a| {
                let image = &a.prod.image;
                json!({
                    "platform": a.platform.to_string(),
                    "digest": image.digest(),
                    "base": a.resolved_base.as_ref().map(ToString::to_string).unwrap_or_else(|| a.base.to_string()),
                    "layers": image.layers().iter().map(|l| json!({"digest": l.descriptor.digest, "size": l.descriptor.size, "mediaType": l.descriptor.media_type})).collect::<Vec<_>>(),
                    "python": a.dependencies["python"],
                    "node": a.dependencies["node"],
                    "bytecode": a.bytecode,
                    "warnings": a.prod.warnings,
                })
            })
            .collect();
        let report = json!({
            "ok": true,
            "digest": index.digest(),
            "mediaType": index.media_type(),
            "platforms": platforms.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "manifests": manifests,
            "pushed": pushed,
            "push": push_reports,
            "outputs": written,
            "variant": "production",
        });
        let mut human = vec![index.digest().to_string()];
        if !out.quiet {
            human.extend(built.iter().map(|a| format!("  {}  {}", a.platform, a.prod.image.digest())));
            human.extend(pushed.iter().filter(|p| !p.contains('@')).map(|p| format!("pushed {p}")));
            human.extend(written.iter().map(|w| format!("wrote {w}")));
        }
        out.result(&report, &human);
        Ok(())
    };
    services.finishing(body).await
}

fn list(platforms: &[Platform]) -> String {
    platforms.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// Builds `request` for every one of `platforms` at once (see
/// `oxbuild_engine::platforms`), warning about each platform that failed.
pub async fn assemble_all(
    request: &Request,
    platforms: &[Platform],
    test_on: Option<&Platform>,
    services: &Services,
    out: Reporter,
) -> Result<Vec<Assembled>, Failure> {
    out.step(format!("building {} platforms: {}", platforms.len(), list(platforms)));
    oxbuild_engine::platforms::assemble_all(request, platforms, test_on, services).await.map_err(|failed| {
        for (p, e) in &failed.failures {
            out.warn(format!("{p}: {}", e.message));
        }
        Failure::from(failed.into_error())
    })
}

/// The index over the production images of `built`.
pub fn index_of(built: &[Assembled]) -> Result<Index, Failure> {
    Ok(oxbuild_engine::platforms::index_of(built)?)
}

/// The proofs of an index: each image's SBOMs (and signature), and one
/// provenance for the whole index, naming every platform and base. With
/// `--sbom-dir`, each platform's SBOMs go into `DIR/<os>-<arch>/` and the
/// provenance into `DIR/provenance.intoto.json`.
pub fn prepare(
    built: &[Assembled],
    index: &Index,
    started: std::time::SystemTime,
    args: &AttestArgs,
    services: &oxbuild_engine::Services,
    out: Reporter,
) -> Result<(Vec<Proofs>, Vec<oxbuild_image::Image>), Failure> {
    let key = crate::attest::signing_key(args.sign_key.as_deref(), "--sign-key")?.map(std::sync::Arc::new);
    let mut proofs = Vec::new();
    for a in built {
        let dir = args.sbom_dir.as_ref().map(|d| d.join(a.platform.to_string().replace('/', "-")));
        let referrers = crate::attest::documents(a, started, dir.as_deref(), !args.no_attach, false, services, out)?;
        proofs.push(Proofs::new(referrers, key.clone()));
    }
    let subject = (oxbuild_engine::attest::subject_name(&built[0]), index.digest());
    let statement = oxbuild_engine::attest::provenance(built, subject, started, std::time::SystemTime::now());
    if let Some(dir) = &args.sbom_dir {
        let path = dir.join("provenance.intoto.json");
        std::fs::write(&path, &statement).map_err(|e| Failure::output(format!("writing {}: {e}", path.display())))?;
    }
    if args.no_attach {
        return Ok((proofs, Vec::new()));
    }
    let artifact = oxbuild_engine::attest::artifact(
        oxbuild_sbom::IN_TOTO_MEDIA_TYPE,
        &statement,
        &index.descriptor(),
        built[0].epoch,
        &services.store,
    )?;
    Ok((proofs, vec![artifact]))
}
