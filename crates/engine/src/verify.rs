//! `oxbuild verify`: does an image carry what proves it? Its signatures
//! (cosign's format) by the keys given, its SBOMs and provenance naming its
//! digest, and, with a policy, licenses, the base's registry and the build's
//! age. Every rule is reported, passed or not.

use std::time::{Duration, SystemTime};

use oxbuild_config::policy::Policy;
use oxbuild_image::Image;
use oxbuild_sign::PublicKey;
use serde_json::Value;

use crate::{Error, Kind, Services};

/// One rule's outcome.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    /// The rule: `signature`, `sbom-spdx`, `sbom-cyclonedx`, `provenance`,
    /// `deny-licenses`, `allowed-base-registries`, `max-age`.
    pub rule: String,
    /// Whether it holds.
    pub ok: bool,
    /// What was found.
    pub detail: String,
}

fn check(rule: &str, ok: bool, detail: impl Into<String>) -> Check {
    Check { rule: rule.to_string(), ok, detail: detail.into() }
}

/// A key to check signatures with, and how to name it.
#[derive(Debug, Clone)]
pub struct NamedKey {
    /// Where it came from (`release.pub`).
    pub name: String,
    /// The key.
    pub key: PublicKey,
}

/// The payload (fetched) of every artifact among `referrers` whose type is `media_type`.
async fn payloads(referrers: &[Image], media_type: &str, services: &Services) -> Result<Vec<(Image, Vec<u8>)>, Error> {
    let mut out = Vec::new();
    for r in referrers.iter().filter(|r| r.artifact_type() == Some(media_type)) {
        if let Some(layer) = r.layers().first() {
            out.push((r.clone(), crate::attest::payload(layer, services).await?));
        }
    }
    Ok(out)
}

/// The image to verify at `location`, and the referrers that speak for it:
/// for an index, the member for `platform` with the referrers of that
/// member and of the index (whose digest comes back too).
pub async fn open(
    location: &crate::Location,
    platform: &oxbuild_image::Platform,
    services: &Services,
) -> Result<(Image, Option<oxbuild_image::Digest>, Vec<Image>), Error> {
    use crate::location::Content;
    let target = services.target();
    match location.open_any(&target, None).await? {
        Content::Index(opened) => {
            let (_, member) = opened
                .index
                .children()
                .iter()
                .find(|(d, _)| d.platform.as_ref().is_some_and(|p| platform.matches(p)))
                .ok_or_else(|| {
                    Error::new(
                        Kind::Input,
                        format!("{location} has no image for {platform}; choose one with --platform"),
                    )
                })?;
            let mine = [member.digest(), opened.index.digest()];
            let referrers = location
                .index_referrers(&target, &opened)
                .await?
                .into_iter()
                .filter(|r| r.subject().is_some_and(|s| mine.contains(&s.digest)))
                .collect();
            Ok((member.clone(), Some(opened.index.digest()), referrers))
        }
        Content::Image(opened) => {
            let referrers = location.referrers(&target, &opened).await?;
            Ok((opened.image, None, referrers))
        }
    }
}

/// Checks `image` and its `referrers` against `keys` and `policy`. When
/// the image is a member of the index `index`, a signature or provenance
/// about the index counts for it too.
pub async fn verify(
    image: &Image,
    index: Option<&oxbuild_image::Digest>,
    referrers: &[Image],
    keys: &[NamedKey],
    policy: Option<&Policy>,
    services: &Services,
) -> Result<Vec<Check>, Error> {
    let digest = image.digest();
    let about = |d: &str| d == digest.as_str() || index.is_some_and(|i| i.as_str() == d);
    let about_hex = |h: &str| h == digest.hex() || index.is_some_and(|i| i.hex() == h);
    let mut checks = Vec::new();

    // Signatures: every one that names this digest, against each key.
    let mut naming = Vec::new();
    let mut elsewhere = 0;
    for sig in referrers.iter().filter(|r| oxbuild_sign::is_signature(r)) {
        for (layer, found) in oxbuild_sign::signatures(sig) {
            let payload = crate::attest::payload(&layer, services).await?;
            match oxbuild_sign::claims(&payload) {
                Ok(c) if about(&c.digest) => naming.push((payload, found.signature)),
                _ => elsewhere += 1,
            }
        }
    }
    let other =
        if elsewhere > 0 { format!("; {elsewhere} name another image and do not count") } else { String::new() };
    for k in keys {
        let valid = naming.iter().filter(|(p, s)| k.key.verifies(p, s)).count();
        let detail = if naming.is_empty() {
            format!("no signature names {digest}{other}; sign it with `oxbuild sign` or --sign-key")
        } else {
            format!(
                "{valid} of {} signature(s) naming this digest verify with {} ({}){other}",
                naming.len(),
                k.name,
                k.key.fingerprint()
            )
        };
        checks.push(check(&format!("signature by {}", k.name), valid > 0, detail));
    }

    // The SBOMs and the provenance: attached, and naming this digest.
    let hex = digest.hex().to_string();
    let spdx = payloads(referrers, oxbuild_sbom::SPDX_MEDIA_TYPE, services).await?;
    let spdx_doc: Option<Value> = spdx.first().and_then(|(_, b)| serde_json::from_slice(b).ok());
    checks.push(match &spdx_doc {
        None => check("sbom-spdx", false, "no SPDX SBOM is attached"),
        Some(doc) => {
            let names = doc["packages"].as_array().into_iter().flatten().any(|p| {
                p["primaryPackagePurpose"] == "CONTAINER"
                    && p["checksums"].as_array().into_iter().flatten().any(|c| c["checksumValue"] == hex.as_str())
                    && p["SPDXID"] == "SPDXRef-Image"
            });
            check(
                "sbom-spdx",
                names,
                if names {
                    "attached; it describes this digest".to_string()
                } else {
                    "attached, but it describes another image".to_string()
                },
            )
        }
    });
    let cdx = payloads(referrers, oxbuild_sbom::CYCLONEDX_MEDIA_TYPE, services).await?;
    let cdx_doc: Option<Value> = cdx.first().and_then(|(_, b)| serde_json::from_slice(b).ok());
    checks.push(match &cdx_doc {
        None => check("sbom-cyclonedx", false, "no CycloneDX SBOM is attached"),
        Some(doc) => {
            let names = doc["metadata"]["component"]["version"] == digest.as_str();
            check(
                "sbom-cyclonedx",
                names,
                if names { "attached; it describes this digest" } else { "attached, but it describes another image" },
            )
        }
    });
    let provenance = payloads(referrers, oxbuild_sbom::IN_TOTO_MEDIA_TYPE, services).await?;
    let statements: Vec<Value> = provenance.iter().filter_map(|(_, b)| serde_json::from_slice(b).ok()).collect();
    let statement = statements
        .iter()
        .filter(|s| {
            s["subject"].as_array().into_iter().flatten().any(|x| x["digest"]["sha256"].as_str().is_some_and(about_hex))
        })
        .max_by_key(|s| s["predicate"]["runDetails"]["metadata"]["finishedOn"].as_str().unwrap_or("").to_string());
    checks.push(match (statements.is_empty(), statement) {
        (true, _) => check("provenance", false, "no provenance is attached"),
        (false, None) => check("provenance", false, "attached, but it is about another image"),
        (false, Some(_)) => {
            check("provenance", true, format!("attached ({} statement(s)); it names this digest", statements.len()))
        }
    });

    let Some(policy) = policy else { return Ok(checks) };
    if !policy.deny_licenses.is_empty() {
        checks.push(match &spdx_doc {
            None => check("deny-licenses", false, "no SPDX SBOM to read licenses from"),
            Some(doc) => {
                let hits: Vec<String> = doc["packages"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| {
                        let license = p["licenseDeclared"].as_str()?;
                        let ids = license.split(|c: char| c.is_whitespace() || c == '(' || c == ')');
                        let denied: Vec<&str> = ids.filter(|id| policy.deny_licenses.iter().any(|d| d == id)).collect();
                        (!denied.is_empty()).then(|| {
                            format!(
                                "{} {} ({})",
                                p["name"].as_str().unwrap_or("?"),
                                p["versionInfo"].as_str().unwrap_or(""),
                                denied.join(", ")
                            )
                        })
                    })
                    .collect();
                if hits.is_empty() {
                    check("deny-licenses", true, format!("no package declares {}", policy.deny_licenses.join(", ")))
                } else {
                    check("deny-licenses", false, format!("denied licenses: {}", hits.join("; ")))
                }
            }
        });
    }
    if !policy.allowed_base_registries.is_empty() {
        let base = statement.and_then(|s| {
            s["predicate"]["buildDefinition"]["resolvedDependencies"]
                .as_array()?
                .iter()
                .find(|d| d["annotations"]["role"] == "base image")
                .and_then(|d| d["uri"].as_str().map(str::to_string))
        });
        checks.push(match base {
            None => check("allowed-base-registries", false, "the provenance names no base image"),
            Some(uri) => match oxbuild_registry::Reference::parse(&uri) {
                Ok(r) if policy.allowed_base_registries.iter().any(|a| a == &r.registry) => {
                    check("allowed-base-registries", true, format!("the base {uri} is from {}", r.registry))
                }
                Ok(r) => check(
                    "allowed-base-registries",
                    false,
                    format!(
                        "the base {uri} is from {}, not one of {}",
                        r.registry,
                        policy.allowed_base_registries.join(", ")
                    ),
                ),
                Err(_) => check("allowed-base-registries", false, format!("the base {uri} is not from a registry")),
            },
        });
    }
    if let Some(max) = policy.max_age {
        let finished = statement
            .and_then(|s| s["predicate"]["runDetails"]["metadata"]["finishedOn"].as_str())
            .and_then(|t| humantime::parse_rfc3339(t).ok());
        checks.push(match finished {
            None => check("max-age", false, "the provenance says nothing of when the build finished"),
            Some(t) => {
                let age = SystemTime::now().duration_since(t).unwrap_or(Duration::ZERO);
                let human = |d: Duration| humantime::format_duration(Duration::from_secs(d.as_secs())).to_string();
                check("max-age", age <= max, format!("built {} ago; the policy allows {}", human(age), human(max)))
            }
        });
    }
    Ok(checks)
}
