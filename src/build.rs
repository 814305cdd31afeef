//! `oxbuild build`, and the wiring every command shares: the services (one
//! HTTP client, one registry client, one cache) and the build request from
//! the command line. The build itself is `oxbuild_engine::assemble`.

use std::collections::BTreeMap;
use std::sync::Arc;

use oxbuild_cache::Cache;
use oxbuild_engine::{Assembled, Location, Request, Services};
use oxbuild_image::Platform;
use oxbuild_registry::{Client, ClientOptions, Keychain, Reference};
use serde_json::json;

use crate::cli::{AppArgs, BuildArgs, RegistryArgs};
use crate::report::{Failure, Reporter};

/// `--platform`, parsed.
pub fn platform(arg: Option<&str>) -> Result<Option<Platform>, Failure> {
    arg.map(|p| p.parse().map_err(|e| Failure::config(format!("--platform: {e}")))).transpose()
}

/// `SOURCE_DATE_EPOCH`, or 0 when unset.
fn source_date_epoch() -> Result<u64, Failure> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Err(_) => Ok(0),
        Ok(v) if v.trim().is_empty() => Ok(0),
        Ok(v) => v.trim().parse().map_err(|_| {
            Failure::config(format!("SOURCE_DATE_EPOCH=`{v}` is not a whole number of seconds since 1970 (e.g. the output of `git log -1 --format=%ct`)"))
        }),
    }
}

/// `16MiB`, `5MB`, `1048576`: a size in bytes; `what` names the flag or variable.
pub fn parse_size(s: &str, what: &str) -> Result<u64, Failure> {
    match s.trim().parse::<bytesize::ByteSize>() {
        Ok(b) => Ok(b.as_u64()),
        _ => Err(Failure::config(format!("{what} `{s}` is not a size: write it like 16MiB, 5GB or 1048576"))),
    }
}

/// The cache every command shares, under `OXBUILD_CACHE_DIR` (see
/// `Cache::open_default` for where it goes when that cannot be written).
/// Opened once per process, so that its note is printed once.
pub fn cache(out: &Reporter) -> Result<Cache, Failure> {
    static OPENED: std::sync::OnceLock<Cache> = std::sync::OnceLock::new();
    if let Some(cache) = OPENED.get() {
        return Ok(cache.clone());
    }
    let (cache, note) = Cache::open_default().map_err(Failure::output)?;
    if let Some(note) = note {
        out.warn(note);
    }
    Ok(OPENED.get_or_init(|| cache).clone())
}

/// The services of a command that talks to registries: the shared HTTP
/// client (TLS, proxies, retries), the registry client and the cache.
pub fn services(args: &RegistryArgs, out: Reporter) -> Result<Services, Failure> {
    let ca_pem = match &args.ca_file {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| Failure::config(format!("--ca-file {}: {e}", path.display())))?;
            oxbuild_http::ca_certificates(&pem)
                .map_err(|e| Failure::config(format!("--ca-file {}: {e}", path.display())))?;
            Some(pem)
        }
        None => None,
    };
    let mut opts = oxbuild_http::Options { ca_pem, ..Default::default() };
    if let Ok(v) = std::env::var("OXBUILD_READ_TIMEOUT") {
        opts.read_timeout = humantime::parse_duration(v.trim()).ok().filter(|d| !d.is_zero()).ok_or_else(|| {
            Failure::config(format!("OXBUILD_READ_TIMEOUT=`{v}` is not a duration: write it like 30s or 2m"))
        })?;
    }
    let http = oxbuild_http::Client::new(opts).map_err(Failure::config)?;
    let chunk_size = match args.chunk_size.as_deref() {
        Some(s) => match parse_size(s, "--chunk-size")? {
            0 => return Err(Failure::config("--chunk-size must be more than 0 bytes")),
            n => Some(n),
        },
        None => None,
    };
    let cache = cache(&out)?;
    let opts = ClientOptions {
        http: Some(http),
        chunk_size,
        insecure: args.insecure.clone(),
        keychain: Keychain::from_env(),
        progress: crate::progress::sink(out),
        blob_locations: Some(Arc::new(oxbuild_engine::CacheLocations(cache.clone()))),
    };
    let client = Client::new(opts).map_err(Failure::config)?;
    Services::new(client, cache, Arc::new(out)).map_err(Failure::from)
}

/// The build request from the command line.
pub fn request(args: &AppArgs, test_variant: bool) -> Result<Request, Failure> {
    let cache_repo = args
        .cache_repo
        .as_deref()
        .map(|r| {
            Reference::parse(r)
                .map(oxbuild_engine::cache_repo::CacheRepo::new)
                .map_err(|e| Failure::config(format!("--cache-repo: {e}")))
        })
        .transpose()?;
    Ok(Request {
        dir: args.dir.clone(),
        config: None,
        base: args.base.clone(),
        platform: platform(args.platform.as_deref().filter(|p| !p.contains(',') && *p != "all"))?,
        test_variant,
        cache_repo,
        epoch: source_date_epoch()?,
        stream_to: None,
        healthcheck_required: false,
    })
}

/// The repository a layout's or archive's signature names: the first
/// tag's, else `[image] repository`, else the app directory's name.
pub fn identity(app: &AppArgs, tags: &[Reference], repository: Option<&Reference>) -> String {
    tags.first().or(repository).map(|r| r.name()).unwrap_or_else(|| {
        let dir = app.dir.canonicalize().unwrap_or_else(|_| app.dir.clone());
        dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "app".into())
    })
}

/// One push per repository, carrying all of its tags; `[image] repository`
/// by digest when no tag names one.
pub fn by_repository(tags: &[Reference], repository: Option<&Reference>) -> BTreeMap<String, (Reference, Vec<String>)> {
    let mut by_repo: BTreeMap<String, (Reference, Vec<String>)> = BTreeMap::new();
    for t in tags {
        let entry = by_repo.entry(t.name()).or_insert_with(|| (t.clone(), Vec::new()));
        entry.1.extend(t.tag.clone());
    }
    if by_repo.is_empty()
        && let Some(repo) = repository
    {
        by_repo.insert(repo.name(), (repo.clone(), Vec::new()));
    }
    by_repo
}

/// Builds the app of `args` with `services`.
pub async fn assemble(args: &AppArgs, test_variant: bool, services: &Services) -> Result<Assembled, Failure> {
    let request = request(args, test_variant)?;
    oxbuild_engine::assemble(&request, services).await.map_err(Failure::from)
}

pub async fn run(args: BuildArgs, out: Reporter) -> Result<(), Failure> {
    let cfg = oxbuild_config::Config::load(&args.app.dir).map_err(Failure::config)?;
    let repository_cfg = cfg.image.repository.clone();
    let repository = repository_cfg
        .as_deref()
        .map(Reference::parse)
        .transpose()
        .map_err(|e| Failure::config(format!("[image] repository: {e}")))?;
    let tags: Vec<Reference> = args
        .tags
        .iter()
        .map(|t| Reference::parse_tag_or_ref(t, repository.as_ref()))
        .collect::<Result<_, _>>()
        .map_err(|e| Failure::config(format!("--tag: {e}")))?;
    let outputs: Vec<Location> =
        args.outputs.iter().map(|o| Location::parse(o, "--output")).collect::<Result<_, _>>()?;
    if let Some(Location::Registry(r)) = outputs.iter().find(|o| o.is_registry()) {
        return Err(Failure::config(format!("--output {r}: registries are pushed to with --tag REF --push")));
    }
    if args.push && tags.is_empty() && repository.is_none() {
        return Err(Failure::config(
            "--push needs somewhere to go: give --tag registry/repo:tag, or set [image] repository in oxbuild.toml",
        ));
    }
    if !tags.is_empty() && !args.push && outputs.is_empty() {
        out.warn("--tag names the image for --push and --output only; without either, nothing is pushed or written");
    }
    let asked = crate::multi::platforms(args.app.platform.as_deref(), &cfg.image.platforms)?;
    let test_variant = args.variant == crate::cli::Variant::Test;
    let mut request = request(&args.app, test_variant)?;
    request.config = Some(cfg);
    if args.push {
        // A dependency layer written here goes to the first repository
        // pushed to while it is written.
        request.stream_to = by_repository(&tags, repository.as_ref()).values().next().map(|(t, _)| t.clone());
    }
    if asked.several() {
        return crate::multi::run(&args, asked, request, &tags, &outputs, repository.as_ref(), out).await;
    }
    let started = std::time::SystemTime::now();
    let services = services(&args.app.registry, out)?;
    if args.push {
        // The push's new blobs go up into sessions opened while the image builds.
        let new_blobs = blobs_a_push_adds(test_variant, &args.attest);
        for (target, _) in by_repository(&tags, repository.as_ref()).values() {
            services.client.open_uploads(target, new_blobs);
        }
    }
    let body = async {
        if let Some(one) = asked.one() {
            request.platform = Some(one.clone());
        }
        let assembled = oxbuild_engine::assemble(&request, &services).await.map_err(Failure::from)?;
        // Only the production image gets an SBOM: the test variant holds packages it does not list.
        let ships = args.push || !outputs.is_empty() || args.attest.sbom_dir.is_some();
        let proofs = if test_variant || !ships {
            if args.attest.sign_key.is_some() {
                out.warn("--sign-key: only the production image is signed; the test variant is not");
            }
            ProofsBeingMade::Made(Ok(crate::attest::Proofs::none()))
        } else if args.attest.sbom_dir.is_some() {
            // The files are written before anything moves.
            ProofsBeingMade::Made(Ok(crate::attest::prepare(&assembled, started, &args.attest, &services, out)?))
        } else {
            // A bad signing key fails before anything moves; the documents are
            // made while the push starts asking about blobs.
            let key = crate::attest::signing_key(args.attest.sign_key.as_deref(), "--sign-key")?.map(Arc::new);
            let (assembled, attach, services) = (assembled.clone(), !args.attest.no_attach, services.clone());
            ProofsBeingMade::Making(tokio::task::spawn_blocking(move || {
                let referrers = crate::attest::documents(&assembled, started, None, attach, true, &services, out)?;
                Ok(crate::attest::Proofs::new(referrers, key))
            }))
        };
        if test_variant && (args.attest.sbom_dir.is_some()) {
            out.warn("--sbom-dir: only the production image gets an SBOM and provenance; nothing was written");
        }
        let Assembled { prod, test, base, resolved_base, mount_from, platform, dependencies, bytecode, .. } = assembled;
        let built = if test_variant { test.expect("asked for") } else { prod };
        let image = &built.image;
        let digest = image.digest();
        let names: Vec<String> = tags.iter().map(ToString::to_string).collect();

        // A layout or archive's signature names the image's first tag, else its repository, else the app.
        let identity = identity(&args.app, &tags, repository.as_ref());
        let mut written = Vec::new();
        let mut listed = Vec::new();
        let mut proofs = proofs;
        for output in &outputs {
            out.step(format!("writing {output}"));
            let referrers = proofs.get().await?.for_destination(image, &identity, &services)?;
            crate::attest::warn_if_dropped(output, &referrers, out);
            output.write(&services.target(), image, &referrers, &names, &[]).await?;
            listed.extend(referrers.iter().map(|r| crate::attest::describe(r, None)));
            written.push(output.to_string());
        }

        let mut pushed = Vec::new();
        let mut push_reports = Vec::new();
        if args.push {
            for (name, (target, repo_tags)) in by_repository(&tags, repository.as_ref()) {
                out.step(format!("pushing {name}"));
                // The SBOMs and provenance go up by digest while the image does;
                // they are listed (tagged) only once the image is complete.
                let sink = services.target();
                let (report, staged) = tokio::join!(
                    oxbuild_registry::push(&services.client, image, &target, &repo_tags, &mount_from),
                    async {
                        let referrers = proofs.get().await?.for_destination(image, &name, &services)?;
                        let staged = oxbuild_engine::location::stage(&sink, &target, &referrers).await?;
                        Ok::<_, Failure>((referrers, staged))
                    },
                );
                let report = report.map_err(|e| Failure::registry(format!("pushing to {name}: {e}")))?;
                out.step(crate::transfer::describe_push(&report));
                let (referrers, staged) = staged?;
                // Sessions opened ahead that no blob took are closed while the artifacts are listed.
                let (attached, ()) = tokio::join!(
                    crate::attest::attach_staged(&services, &target, &referrers, staged, out),
                    services.client.close_uploads(Some(&target)),
                );
                let attached = attached?;
                pushed.push(target.with_digest(digest.clone()).to_string());
                for t in &repo_tags {
                    pushed.push(target.with_tag(t).to_string());
                }
                push_reports.push(json!({"repository": name, "report": report, "referrers": attached}));
            }
        }

        let layers: Vec<_> = image
            .layers()
            .iter()
            .map(
                |l| json!({"digest": l.descriptor.digest, "size": l.descriptor.size, "mediaType": l.descriptor.media_type}),
            )
            .collect();
        let base_name = resolved_base.as_ref().map(ToString::to_string).unwrap_or_else(|| base.to_string());
        let report = json!({
            "ok": true,
            "digest": digest,
            "mediaType": image.media_type(),
            "base": base_name,
            "platform": platform.to_string(),
            "config": image.config_descriptor().digest,
            "layers": layers,
            "added": built.added,
            "pushed": pushed,
            "push": push_reports,
            "outputs": written,
            "warnings": built.warnings,
            "python": dependencies["python"],
            "node": dependencies["node"],
            "bytecode": bytecode,
            "variant": if test_variant { "test" } else { "production" },
            "referrers": listed,
        });
        if pushed.is_empty() && written.is_empty() {
            out.step("built into the local cache only: --push sends the image to a registry, --output writes an OCI layout or archive");
        }
        let mut human = vec![digest.to_string()];
        if !out.quiet {
            human.extend(pushed.iter().filter(|p| !p.contains('@')).map(|p| format!("pushed {p}")));
            human.extend(written.iter().map(|w| format!("wrote {w}")));
        }
        out.result(&report, &human);
        Ok::<(), Failure>(())
    };
    services.finishing(body).await
}

/// The blobs a rebuild's push usually adds: the app layer and the config,
/// and each artifact's payload (two SBOMs, the provenance, a signature).
fn blobs_a_push_adds(test_variant: bool, attest: &crate::cli::AttestArgs) -> usize {
    let attached = if test_variant || attest.no_attach { 0 } else { 3 };
    let signed = usize::from(!test_variant && attest.sign_key.is_some());
    2 + attached + signed
}

/// The proofs of a build (SBOMs, provenance, the signing key), made on a
/// blocking thread while the push begins.
enum ProofsBeingMade {
    Making(tokio::task::JoinHandle<Result<crate::attest::Proofs, Failure>>),
    Made(Result<crate::attest::Proofs, Failure>),
}

impl ProofsBeingMade {
    /// The proofs, once made (an error each time it is asked, when making them failed).
    async fn get(&mut self) -> Result<&crate::attest::Proofs, Failure> {
        if let ProofsBeingMade::Making(task) = self {
            let made = task.await.map_err(|e| Failure::output(format!("making the SBOMs and provenance: {e}")))?;
            *self = ProofsBeingMade::Made(made);
        }
        match self {
            ProofsBeingMade::Made(Ok(p)) => Ok(p),
            ProofsBeingMade::Made(Err(e)) => Err(e.clone()),
            ProofsBeingMade::Making(_) => unreachable!("made above"),
        }
    }
}
