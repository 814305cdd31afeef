//! Build provenance: an in-toto statement (v1) with the SLSA provenance v1
//! predicate. The start and finish times are its only fields that vary
//! between two builds of the same inputs; nothing whose digest must be
//! reproducible (the image, the SBOMs) contains them.

use std::time::SystemTime;

use oxbuild_image::Digest;
use serde_json::{Value, json};

/// What oxbuild's build type means; documented in docs/supply-chain.md.
pub const BUILD_TYPE: &str = "https://oxbuild.dev/provenance/image-build/v1";
/// The builder's id.
pub const BUILDER: &str = "https://oxbuild.dev/builder/oxbuild";

/// A file the build read, by path (relative to the app) and digest.
#[derive(Debug, Clone)]
pub struct Input {
    /// `oxbuild.toml`, `uv.lock`.
    pub path: String,
    /// Its sha256.
    pub digest: Digest,
}

/// What the provenance records.
#[derive(Debug, Clone)]
pub struct Provenance {
    /// The image (or index) it is about: name and manifest digest.
    pub subject: (String, Digest),
    /// The config file read.
    pub config: Option<Input>,
    /// The lock files read.
    pub locks: Vec<Input>,
    /// The platforms built.
    pub platforms: Vec<String>,
    /// `production` (or `test`).
    pub variant: String,
    /// `SOURCE_DATE_EPOCH`.
    pub epoch: u64,
    /// The base of each platform: how it was named and its manifest digest.
    pub bases: Vec<(String, Digest)>,
    /// The git remote (credentials removed) and commit.
    pub git: Option<(Option<String>, String)>,
    /// Package indexes used, credentials removed.
    pub indexes: Vec<String>,
    /// oxbuild's version.
    pub tool_version: String,
    /// When the build started and finished.
    pub started: SystemTime,
    /// See `started`.
    pub finished: SystemTime,
}

fn sha256(d: &Digest) -> Value {
    json!({"sha256": d.hex()})
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

impl Provenance {
    /// The statement as canonical JSON bytes.
    pub fn statement(&self) -> Vec<u8> {
        let input = |i: &Input| json!({"path": i.path, "digest": sha256(&i.digest)});
        let mut external = json!({
            "platforms": self.platforms,
            "variant": self.variant,
            "locks": self.locks.iter().map(input).collect::<Vec<_>>(),
        });
        if let Some(c) = &self.config {
            external["config"] = input(c);
        }
        let mut resolved: Vec<Value> = self
            .bases
            .iter()
            .map(|(uri, d)| json!({"uri": uri, "digest": sha256(d), "annotations": {"role": "base image"}}))
            .collect();
        if let Some((source, commit)) = &self.git {
            let uri = match source {
                Some(s) => format!("git+{s}@{commit}"),
                None => format!("git+commit:{commit}"),
            };
            resolved.push(json!({"uri": uri, "digest": {"gitCommit": commit}, "annotations": {"role": "source"}}));
        }
        for index in &self.indexes {
            resolved.push(json!({"uri": index, "annotations": {"role": "package index"}}));
        }
        let statement = json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": self.subject.0, "digest": sha256(&self.subject.1)}],
            "predicateType": "https://slsa.dev/provenance/v1",
            "predicate": {
                "buildDefinition": {
                    "buildType": BUILD_TYPE,
                    "externalParameters": external,
                    "internalParameters": {"sourceDateEpoch": self.epoch},
                    "resolvedDependencies": resolved,
                },
                "runDetails": {
                    "builder": {"id": BUILDER, "version": {"oxbuild": self.tool_version}},
                    "metadata": {"startedOn": rfc3339(self.started), "finishedOn": rfc3339(self.finished)},
                },
            },
        });
        oxbuild_image::canonical_json(&statement)
    }
}
