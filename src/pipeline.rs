//! `oxbuild pipeline` (build, assess, health, publish; stops at the first
//! failure) and `oxbuild publish` (build, then push with the publish policy).

use std::time::{Instant, SystemTime};

use oxbuild_build::publish::{self, Checkout};
use oxbuild_registry::Reference;
use serde_json::json;

use oxbuild_engine::{Assembled, Location, Services};

use crate::build::services;
use crate::cli::{AttestArgs, PipelineArgs, PublishArgs, VerifyOptions};
use crate::report::{Failure, Reporter};
use crate::stages::{StageResult, assess_stage, health_stage};

/// Pushes the production image of `built` (or, for several platforms, the
/// index over them) with the tags of the publish policy, and attaches each
/// image's SBOMs, provenance and signature (unless `--no-attach`).
async fn publish_stage(
    built: &[Assembled],
    services: &Services,
    attest: &AttestArgs,
    started: SystemTime,
    out: Reporter,
) -> Result<StageResult, Failure> {
    let assembled = &built[0];
    let repository = publish_repository(assembled)?;
    let plan = publish::plan(&assembled.cfg.publish, &Checkout::read(&assembled.dir));
    for note in &plan.notes {
        out.step(note);
    }
    let mount_from: Vec<_> = built.iter().flat_map(|a| a.mount_from.iter().cloned()).collect();
    let mut proofs = Vec::new();
    let mut index_proofs = Vec::new();
    let (digest, report) = if built.len() > 1 {
        let index = crate::multi::index_of(built)?;
        (proofs, index_proofs) = crate::multi::prepare(built, &index, started, attest, services, out)?;
        out.step(format!(
            "publishing index {} ({} platforms) to {} as {}",
            index.digest(),
            built.len(),
            repository.name(),
            describe_tags(&plan.tags)
        ));
        let report = oxbuild_registry::push_index(&services.client, &index, &repository, &plan.tags, &mount_from)
            .await
            .map_err(|e| Failure::registry(format!("publishing to {}: {e}", repository.name())))?;
        (index.digest(), report)
    } else {
        let image = &assembled.prod.image;
        proofs.push(crate::attest::prepare(assembled, started, attest, services, out)?);
        out.step(format!("publishing {} to {} as {}", image.digest(), repository.name(), describe_tags(&plan.tags)));
        let report = oxbuild_registry::push(&services.client, image, &repository, &plan.tags, &mount_from)
            .await
            .map_err(|e| Failure::registry(format!("publishing to {}: {e}", repository.name())))?;
        (image.digest(), report)
    };
    let mut attached = crate::attest::attach(services, &repository, &index_proofs, out).await?;
    for (a, p) in built.iter().zip(&proofs) {
        let referrers = p.for_destination(&a.prod.image, &repository.name(), services)?;
        attached.extend(crate::attest::attach(services, &repository, &referrers, out).await?);
    }
    let pinned = repository.with_digest(digest.clone()).to_string();
    let mut human = vec![pinned.clone()];
    human.extend(plan.tags.iter().map(|t| format!("pushed {}", repository.with_tag(t))));
    let json = json!({
        "ok": true,
        "stage": "publish",
        "digest": digest,
        "reference": pinned,
        "tags": plan.tags,
        "notes": plan.notes,
        "push": report,
        "referrers": attached,
    });
    Ok(StageResult { json, human, failure: None })
}

/// `[publish] repository`, else `[image] repository`.
fn publish_repository(assembled: &Assembled) -> Result<Reference, Failure> {
    let cfg = &assembled.cfg;
    let repo_text = cfg.publish.repository.as_ref().or(cfg.image.repository.as_ref()).ok_or_else(|| {
        Failure::config("nowhere to publish: set [publish] repository (or [image] repository) in oxbuild.toml")
    })?;
    Reference::parse(repo_text).map_err(|e| Failure::config(format!("[publish] repository: {e}")))
}

/// Builds the app of `app` for its platforms: one, or (with several) each
/// of them, the test variant only for the member this machine runs.
async fn assemble_platforms(
    app: &crate::cli::AppArgs,
    test_variant: bool,
    services: &Services,
    out: Reporter,
) -> Result<Vec<Assembled>, Failure> {
    let cfg = oxbuild_config::Config::load(&app.dir).map_err(Failure::config)?;
    let asked = crate::multi::platforms(app.platform.as_deref(), &cfg.image.platforms)?;
    let mut request = crate::build::request(app, test_variant)?;
    request.config = Some(cfg);
    if asked.several() {
        let platforms = crate::multi::resolve(asked, &request, services, out).await?;
        let host = oxbuild_image::Platform::host();
        return crate::multi::assemble_all(&request, &platforms, test_variant.then_some(&host), services, out).await;
    }
    if let Some(one) = asked.one() {
        request.platform = Some(one.clone());
    }
    Ok(vec![oxbuild_engine::assemble(&request, services).await.map_err(Failure::from)?])
}

/// Verifies what the publish stage pushed: the repository at the pushed
/// digest (for an index, the member this machine would pull).
async fn verify_published(
    built: &[Assembled],
    args: &PipelineArgs,
    services: &Services,
) -> Result<StageResult, Failure> {
    let repository = publish_repository(&built[0])?;
    let digest = if built.len() > 1 { crate::multi::index_of(built)?.digest() } else { built[0].prod.image.digest() };
    let pushed = Location::Registry(repository.with_digest(digest));
    let opts = VerifyOptions { keys: args.verify_keys.clone(), policy: args.verify_policy.clone() };
    let (json, human, failure) = crate::attest::verify_stage(&pushed, &opts, None, services).await?;
    let mut json = json;
    json["stage"] = json!("verify");
    Ok(StageResult { json, human, failure })
}

fn describe_tags(tags: &[String]) -> String {
    if tags.is_empty() { "its digest only".into() } else { tags.join(", ") }
}

pub async fn publish(args: PublishArgs, out: Reporter) -> Result<(), Failure> {
    let started = SystemTime::now();
    let services = services(&args.stage.app.registry, out)?;
    services
        .finishing(async {
            let built = assemble_platforms(&args.stage.app, false, &services, out).await?;
            let result = publish_stage(&built, &services, &args.attest, started, out).await?;
            out.result(&result.json, &result.human);
            Ok(())
        })
        .await
}

pub async fn pipeline(args: PipelineArgs, out: Reporter) -> Result<(), Failure> {
    let mut stages: Vec<serde_json::Value> = Vec::new();
    let mut human: Vec<String> = Vec::new();
    let report = |stages: &[serde_json::Value], failed: Option<&Failure>| {
        json!({
            "ok": failed.is_none(),
            "failed_stage": failed.map(|f| f.kind),
            "error": failed.map(|f| json!({"kind": f.kind, "code": f.code, "message": f.message})),
            "stages": stages,
        })
    };
    // A failure ends the pipeline: its JSON report still lists every stage so far.
    let fail = |stages: &[serde_json::Value], f: Failure| -> Failure {
        if out.json {
            println!("{}", serde_json::to_string_pretty(&report(stages, Some(&f))).unwrap_or_default());
        }
        f.reported()
    };

    let started = Instant::now();
    let started_at = SystemTime::now();
    let run_assess = !args.skip_assess;
    crate::stages::stage_env(&args.stage)?;
    let services = services(&args.stage.app.registry, out)?;
    let body = async {
        let built = match assemble_platforms(&args.stage.app, run_assess, &services, out).await {
            Ok(b) => b,
            Err(f) => {
                stages.push(json!({"stage": "build", "status": "failed", "seconds": started.elapsed().as_secs_f64()}));
                return Err(fail(&stages, f));
            }
        };
        // With several platforms, assess and health run on the member this
        // machine runs; the others are checked without running.
        let native = if built.len() > 1 { oxbuild_engine::platforms::native(&built) } else { Some(0) };
        let assembled = &built[native.unwrap_or(0)];
        let image = &assembled.prod.image;
        let size: u64 = image.layers().iter().map(|l| l.descriptor.size).sum();
        let mut build_stage = json!({
            "stage": "build",
            "status": "passed",
            "seconds": started.elapsed().as_secs_f64(),
            "digest": image.digest(),
            "size": size,
            "layers": image.layers().iter().map(|l| json!({"digest": l.descriptor.digest, "size": l.descriptor.size})).collect::<Vec<_>>(),
            "test_digest": assembled.test.as_ref().map(|t| t.image.digest()),
            "python": assembled.dependencies["python"],
            "node": assembled.dependencies["node"],
        });
        let mut not_run = Vec::new();
        if built.len() > 1 {
            let index = crate::multi::index_of(&built).map_err(|f| fail(&stages, f))?;
            build_stage["digest"] = json!(index.digest());
            build_stage["manifests"] = json!(
                built
                    .iter()
                    .map(|a| json!({"platform": a.platform.to_string(), "digest": a.prod.image.digest()}))
                    .collect::<Vec<_>>()
            );
            not_run = built
                .iter()
                .enumerate()
                .filter(|(i, _)| Some(*i) != native)
                .map(|(_, a)| oxbuild_engine::platforms::unrun(a))
                .collect();
            build_stage["checked_without_running"] = json!(not_run);
        }
        human.push(format!("build    passed  {}", build_stage["digest"].as_str().unwrap_or("")));
        stages.push(build_stage);
        let no_member = native.is_none().then_some("no member of the index runs on this machine");

        type Stage<'a> = (&'static str, Option<&'static str>);
        let verifies = !args.verify_keys.is_empty() || args.verify_policy.is_some();
        let plan: [Stage; 4] = [
            (
                "assess",
                if args.skip_assess {
                    Some("--skip-assess")
                } else if let Some(why) = no_member {
                    Some(why)
                } else if assembled.cfg.assess.gates.is_empty() {
                    Some("no [assess] gates")
                } else {
                    None
                },
            ),
            (
                "health",
                if args.skip_health {
                    Some("--skip-health")
                } else if let Some(why) = no_member {
                    Some(why)
                } else if assembled.cfg.healthcheck.is_none() {
                    Some("no [healthcheck]")
                } else {
                    None
                },
            ),
            ("publish", if args.no_publish { Some("--no-publish") } else { None }),
            (
                "verify",
                if args.no_publish {
                    Some("--no-publish")
                } else if !verifies {
                    Some("no --verify-key or --verify-policy")
                } else {
                    None
                },
            ),
        ];
        for (name, skip) in plan {
            if let Some(why) = skip {
                out.step(format!("{name}: skipped ({why})"));
                stages.push(json!({"stage": name, "status": "skipped", "reason": why}));
                human.push(format!("{name:8} skipped ({why})"));
                continue;
            }
            out.step(format!("== {name}"));
            let t = Instant::now();
            let result = match name {
                "assess" => assess_stage(assembled, &services, &args.stage, args.junit.as_deref(), out).await,
                "health" => health_stage(assembled, &services, &args.stage, args.timeout.as_deref(), out).await,
                "publish" => publish_stage(&built, &services, &args.attest, started_at, out).await,
                _ => verify_published(&built, &args, &services).await,
            };
            // Say which member ran, and which were only checked.
            let result = result.map(|mut r| {
                if built.len() > 1 && matches!(name, "assess" | "health") {
                    r.json["ran_on"] = json!(assembled.platform.to_string());
                    r.json["not_run"] = json!(not_run);
                }
                r
            });
            let seconds = t.elapsed().as_secs_f64();
            match result {
                Ok(StageResult { json: detail, failure: None, human: lines }) => {
                    stages.push(json!({"stage": name, "status": "passed", "seconds": seconds, "detail": detail}));
                    human.push(format!("{name:8} passed  {}", lines.first().cloned().unwrap_or_default()));
                }
                Ok(StageResult { json: detail, failure: Some(f), human: lines }) => {
                    stages.push(json!({"stage": name, "status": "failed", "seconds": seconds, "detail": detail}));
                    if !out.json {
                        for line in lines {
                            println!("{line}");
                        }
                    }
                    return Err(fail(&stages, f));
                }
                Err(f) => {
                    stages.push(json!({"stage": name, "status": "failed", "seconds": seconds}));
                    return Err(fail(&stages, f));
                }
            }
        }
        out.result(&report(&stages, None), &human);
        Ok(())
    };
    services.finishing(body).await
}
