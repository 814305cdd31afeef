//! Several platforms at once: every platform's image assembled
//! concurrently (each from its own member of the base, with its own wheels,
//! interpreter and libc; nothing emulated), the index over them, and what
//! can be said of a member this machine cannot run.

use std::collections::BTreeMap;

use oxbuild_image::{Index, Platform};
use serde_json::json;

use crate::{Assembled, Error, Request, Services, assemble, check};

/// Every platform that failed, each with its error.
#[derive(Debug)]
pub struct Failed {
    /// How many platforms were asked for.
    pub asked: usize,
    /// The failures, in the order the platforms were asked for.
    pub failures: Vec<(Platform, Error)>,
}

impl Failed {
    /// One error naming every failing platform; its kind is the first one's.
    pub fn into_error(self) -> Error {
        let names: Vec<String> = self.failures.iter().map(|(p, _)| p.to_string()).collect();
        let details: Vec<String> = self.failures.iter().map(|(p, e)| format!("{p}: {}", e.message)).collect();
        Error::new(
            self.failures[0].1.kind,
            format!(
                "{} of {} platforms failed ({}); nothing was written or pushed. {}",
                self.failures.len(),
                self.asked,
                names.join(", "),
                details.join(" | ")
            ),
        )
    }
}

/// Builds `request` for every one of `platforms` at once, the test variant
/// too for the platform `test_on` (the one this machine runs). When any
/// platform fails, every failure is returned and nothing else.
pub async fn assemble_all(
    request: &Request,
    platforms: &[Platform],
    test_on: Option<&Platform>,
    services: &Services,
) -> Result<Vec<Assembled>, Failed> {
    // Bytecode does not depend on the CPU: what one platform compiles, the
    // others take.
    let shared = Services { bytecode: Some(Default::default()), ..services.clone() };
    let services = if platforms.len() > 1 { &shared } else { services };
    let builds = platforms.iter().map(|p| {
        let mut request = request.clone();
        request.platform = Some(p.clone());
        request.test_variant = test_on.is_some_and(|t| t.matches(p));
        async move { assemble(&request, services).await }
    });
    let results = futures_util::future::join_all(builds).await;
    let mut built = Vec::new();
    let mut failures = Vec::new();
    for (p, r) in platforms.iter().zip(results) {
        match r {
            Ok(a) => built.push(a),
            Err(e) => failures.push((p.clone(), e)),
        }
    }
    if failures.is_empty() { Ok(built) } else { Err(Failed { asked: platforms.len(), failures }) }
}

/// The index over the production images of `built`, with the annotations
/// its images carry (an OCI image's `org.opencontainers.image.*`), so that a
/// reader sees the same either way.
pub fn index_of(built: &[Assembled]) -> Result<Index, Error> {
    let annotations: BTreeMap<String, String> = built[0].prod.image.annotations().clone();
    let children = built.iter().map(|a| (a.platform.clone(), a.prod.image.clone())).collect();
    Index::assemble(children, &annotations).map_err(|e| Error::new(crate::Kind::Build, e))
}

/// The member this machine can run.
pub fn native(built: &[Assembled]) -> Option<usize> {
    let host = Platform::host();
    built.iter().position(|a| host.matches(&a.platform))
}

/// What was checked of a member without running it: its interpreter, and
/// that the native extensions of its dependency layer are ELF files for its
/// own machine.
pub fn unrun(a: &Assembled) -> serde_json::Value {
    let python = &a.dependencies["python"];
    let expected = check::elf_machine(&a.platform.architecture);
    let extensions = python["layer"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .map(|d| check::extensions(&a.prod.image, &d).unwrap_or_default())
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
