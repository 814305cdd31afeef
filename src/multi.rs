//! `build` for several platforms (`--platform linux/amd64,linux/arm64`, or
//! `[image] platforms`): one image per platform, built concurrently (each
//! with its own interpreter, libc and wheels; no emulation), under one
//! index. Nothing is written or pushed unless every platform built.

use std::collections::BTreeMap;

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

/// The directory `--sbom-dir` gets for one platform: `DIR/linux-arm64`.
pub fn per_platform(args: &AttestArgs, platform: &Platform) -> AttestArgs {
    AttestArgs {
        no_attach: args.no_attach,
        sbom_dir: args.sbom_dir.as_ref().map(|d| d.join(platform.to_string().replace('/', "-"))),
        sign_key: args.sign_key.clone(),
    }
}

/// Builds, writes and pushes the index of the platforms `asked`.
pub async fn run(
    args: &BuildArgs,
    asked: Asked,
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
    let request = crate::build::request(&args.app, false)?;
    let platforms = resolve(asked, &request, &services, out).await?;
    let built = assemble_all(&request, &platforms, None, &services, out).await?;
    let index = index_of(&built)?;
    let ships = args.push || !outputs.is_empty() || args.attest.sbom_dir.is_some();
    let (proofs, index_proofs) =
        if ships { prepare(&built, &index, started, &args.attest, &services, out)? } else { (Vec::new(), Vec::new()) };
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
}

fn list(platforms: &[Platform]) -> String {
    platforms.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// Builds `request` for every one of `platforms` at once, the test variant
/// too for the platform `test_on` (the one this machine runs). Every
/// platform that fails is reported, and then the whole build fails.
pub async fn assemble_all(
    request: &Request,
    platforms: &[Platform],
    test_on: Option<&Platform>,
    services: &Services,
    out: Reporter,
) -> Result<Vec<Assembled>, Failure> {
    out.step(format!("building {} platforms: {}", platforms.len(), list(platforms)));
    let builds = platforms.iter().map(|p| {
        let mut request = request.clone();
        request.platform = Some(p.clone());
        request.test_variant = test_on.is_some_and(|t| t.matches(p));
        async move { oxbuild_engine::assemble(&request, services).await }
    });
    let results = futures_util::future::join_all(builds).await;
    let mut built: Vec<Assembled> = Vec::new();
    let mut failed: Vec<(Platform, Failure)> = Vec::new();
    for (p, r) in platforms.iter().zip(results) {
        match r {
            Ok(a) => built.push(a),
            Err(e) => failed.push((p.clone(), Failure::from(e))),
        }
    }
    if failed.is_empty() {
        return Ok(built);
    }
    for (p, f) in &failed {
        out.warn(format!("{p}: {}", f.message));
    }
    let (_, first) = &failed[0];
    let names: Vec<String> = failed.iter().map(|(p, _)| p.to_string()).collect();
    Err(Failure {
        message: format!(
            "{} of {} platforms failed ({}); nothing was written or pushed. {}",
            failed.len(),
            platforms.len(),
            names.join(", "),
            failed.iter().map(|(p, f)| format!("{p}: {}", f.message)).collect::<Vec<_>>().join(" | ")
        ),
        ..Failure::build("")
    }
    .with_code(first.code, first.kind))
}

/// The index over the production images of `built`, with the annotations
/// its images carry (an OCI image's `org.opencontainers.image.*`), so that a
/// reader sees the same either way.
pub fn index_of(built: &[Assembled]) -> Result<Index, Failure> {
    let annotations: BTreeMap<String, String> = built[0].prod.image.annotations().clone();
    let children = built.iter().map(|a| (a.platform.clone(), a.prod.image.clone())).collect();
    Index::assemble(children, &annotations).map_err(Failure::build)
}

/// The member this machine can run.
pub fn native(built: &[Assembled]) -> Option<usize> {
    let host = Platform::host();
    built.iter().position(|a| host.matches(&a.platform))
}

/// What was checked of a member without running it: its interpreter and
/// that its native extensions are ELF files of its own architecture.
pub fn unrun(a: &Assembled) -> serde_json::Value {
    let python = &a.dependencies["python"];
    let expected = oxbuild_engine::check::elf_machine(&a.platform.architecture);
    let extensions = python["layer"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .map(|d| oxbuild_engine::check::extensions(&a.prod.image, &d).unwrap_or_default())
        .unwrap_or_default();
    let wrong: Vec<&str> =
        extensions.iter().filter(|(_, m)| expected.is_some_and(|e| e != *m)).map(|(n, _)| n.as_str()).collect();
    json!({
        "platform": a.platform.to_string(),
        "digest": a.prod.image.digest(),
        "run": false,
        "interpreter": python["interpreter"],
        "machine": python["machine"],
        "native_extensions": extensions.len(),
        "extensions_for_other_machines": wrong,
        "note": format!("{} was not run here; its native extensions were checked to be ELF files for {}", a.platform, a.platform.architecture),
    })
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
    let mut proofs = Vec::new();
    for a in built {
        let p = crate::attest::prepare(a, started, &per_platform(args, &a.platform), services, out)?;
        proofs.push(p.without_provenance());
    }
    if let Some(dir) = &args.sbom_dir {
        for a in built {
            let _ =
                std::fs::remove_file(dir.join(a.platform.to_string().replace('/', "-")).join("provenance.intoto.json"));
        }
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
