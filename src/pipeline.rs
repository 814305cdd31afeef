//! `oxbuild pipeline` (build, assess, health, publish; stops at the first
//! failure) and `oxbuild publish` (build, then push with the publish policy).

use std::time::{Instant, SystemTime};

use oxbuild_build::publish::{self, Checkout};
use oxbuild_registry::Reference;
use serde_json::json;

use oxbuild_engine::{Assembled, Location, Services};

use crate::build::{assemble, services};
use crate::cli::{AttestArgs, PipelineArgs, PublishArgs, VerifyOptions};
use crate::report::{Failure, Reporter};
use crate::stages::{StageResult, assess_stage, health_stage};

/// Pushes the production image of `assembled` with the tags of the publish
/// policy, and attaches its SBOMs and provenance (unless `--no-attach`).
async fn publish_stage(
    assembled: &Assembled,
    services: &Services,
    attest: &AttestArgs,
    started: SystemTime,
    out: Reporter,
) -> Result<StageResult, Failure> {
    let cfg = &assembled.cfg;
    let repo_text = cfg.publish.repository.as_ref().or(cfg.image.repository.as_ref()).ok_or_else(|| {
        Failure::config("nowhere to publish: set [publish] repository (or [image] repository) in oxbuild.toml")
    })?;
    let repository = Reference::parse(repo_text).map_err(|e| Failure::config(format!("[publish] repository: {e}")))?;
    let plan = publish::plan(&cfg.publish, &Checkout::read(&assembled.dir));
    for note in &plan.notes {
        out.step(note);
    }
    let image = &assembled.prod.image;
    let proofs = crate::attest::prepare(assembled, started, attest, services, out)?;
    out.step(format!("publishing {} to {} as {}", image.digest(), repository.name(), describe_tags(&plan.tags)));
    let report = oxbuild_registry::push(&services.client, image, &repository, &plan.tags, &assembled.mount_from)
        .await
        .map_err(|e| Failure::registry(format!("publishing to {}: {e}", repository.name())))?;
    let referrers = proofs.for_destination(image, &repository.name(), services)?;
    let attached = crate::attest::attach(services, &repository, &referrers, out).await?;
    let pinned = repository.with_digest(image.digest()).to_string();
    let mut human = vec![pinned.clone()];
    human.extend(plan.tags.iter().map(|t| format!("pushed {}", repository.with_tag(t))));
    let json = json!({
        "ok": true,
        "stage": "publish",
        "digest": image.digest(),
        "reference": pinned,
        "tags": plan.tags,
        "notes": plan.notes,
        "push": report,
        "referrers": attached,
    });
    Ok(StageResult { json, human, failure: None })
}

/// Verifies what the publish stage pushed: the repository at the image's digest.
async fn verify_published(
    assembled: &Assembled,
    args: &PipelineArgs,
    services: &Services,
) -> Result<StageResult, Failure> {
    let cfg = &assembled.cfg;
    let repo_text = cfg.publish.repository.as_ref().or(cfg.image.repository.as_ref()).ok_or_else(|| {
        Failure::config("nothing was published to verify: set [publish] repository (or [image] repository)")
    })?;
    let repository = Reference::parse(repo_text).map_err(|e| Failure::config(format!("[publish] repository: {e}")))?;
    let pushed = Location::Registry(repository.with_digest(assembled.prod.image.digest()));
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
    let assembled = assemble(&args.stage.app, false, &services).await?;
    let result = publish_stage(&assembled, &services, &args.attest, started, out).await?;
    out.result(&result.json, &result.human);
    Ok(())
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
    let services = services(&args.stage.app.registry, out)?;
    let assembled = match assemble(&args.stage.app, run_assess, &services).await {
        Ok(a) => a,
        Err(f) => {
            stages.push(json!({"stage": "build", "status": "failed", "seconds": started.elapsed().as_secs_f64()}));
            return Err(fail(&stages, f));
        }
    };
    let image = &assembled.prod.image;
    let size: u64 = image.layers().iter().map(|l| l.descriptor.size).sum();
    stages.push(json!({
        "stage": "build",
        "status": "passed",
        "seconds": started.elapsed().as_secs_f64(),
        "digest": image.digest(),
        "size": size,
        "layers": image.layers().iter().map(|l| json!({"digest": l.descriptor.digest, "size": l.descriptor.size})).collect::<Vec<_>>(),
        "test_digest": assembled.test.as_ref().map(|t| t.image.digest()),
        "python": assembled.dependencies["python"],
    }));
    human.push(format!("build    passed  {}", image.digest()));

    type Stage<'a> = (&'static str, Option<&'static str>);
    let verifies = !args.verify_keys.is_empty() || args.verify_policy.is_some();
    let plan: [Stage; 4] = [
        (
            "assess",
            if args.skip_assess {
                Some("--skip-assess")
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
            "assess" => {
                assess_stage(&assembled, &services, args.stage.runtime.as_deref(), args.junit.as_deref(), out).await
            }
            "health" => {
                health_stage(&assembled, &services, args.stage.runtime.as_deref(), args.timeout.as_deref(), out).await
            }
            "publish" => publish_stage(&assembled, &services, &args.attest, started_at, out).await,
            _ => verify_published(&assembled, &args, &services).await,
        };
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
}
