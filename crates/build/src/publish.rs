//! The publish policy: which tags an image gets, from git and `[publish]`.
//! Defaults: `latest` only from the main branch, the git tag's name when HEAD
//! is exactly at a tag, and the short commit sha always.

use std::path::Path;
use std::process::Command;

use oxbuild_config::PublishConfig;

/// Where the checkout stands, as far as tagging is concerned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checkout {
    /// The branch, if any (CI variables fill in for a detached HEAD).
    pub branch: Option<String>,
    /// Git tags pointing exactly at HEAD.
    pub tags: Vec<String>,
    /// The short commit sha.
    pub short_sha: Option<String>,
}

impl Checkout {
    /// Reads the checkout of `dir`; empty outside a git repository.
    pub fn read(dir: &Path) -> Checkout {
        let git = |args: &[&str]| -> Option<String> {
            let out = Command::new("git").arg("-C").arg(dir).args(args).output().ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
                .filter(|s| !s.is_empty())
        };
        let Some(short_sha) = git(&["rev-parse", "--short", "HEAD"]) else { return Checkout::default() };
        let branch = crate::vcs::GitInfo::read(dir).and_then(|g| g.branch);
        let tags =
            git(&["tag", "--points-at", "HEAD"]).map(|t| t.lines().map(String::from).collect()).unwrap_or_default();
        Checkout { branch, tags, short_sha: Some(short_sha) }
    }
}

/// The tags to publish, and why some were not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Tags, in order, without duplicates.
    pub tags: Vec<String>,
    /// Human notes: what was left out and why.
    pub notes: Vec<String>,
}

/// Applies `policy` to `checkout`.
pub fn plan(policy: &PublishConfig, checkout: &Checkout) -> Plan {
    let mut plan = Plan::default();
    let add = |t: &str, plan: &mut Plan| {
        if !plan.tags.iter().any(|x| x == t) {
            plan.tags.push(t.to_string());
        }
    };
    match &checkout.branch {
        Some(b) if policy.latest_branches.iter().any(|l| l == b) => add("latest", &mut plan),
        Some(b) => plan.notes.push(format!(
            "no `latest`: branch `{b}` is not one of [publish] latest-branches ({})",
            policy.latest_branches.join(", ")
        )),
        None if !policy.latest_branches.is_empty() => {
            plan.notes.push("no `latest`: the checkout is on no branch (detached HEAD, or not a git repository)".into())
        }
        None => {}
    }
    if policy.git_tag {
        for t in &checkout.tags {
            // A git tag that is not a valid image tag is reported, not pushed.
            if valid_tag(t) {
                add(t, &mut plan);
            } else {
                plan.notes.push(format!("git tag `{t}` is not a valid image tag; not pushed"));
            }
        }
    }
    if policy.sha {
        match &checkout.short_sha {
            Some(sha) => add(sha, &mut plan),
            None => plan.notes.push("no commit tag: not a git repository".into()),
        }
    }
    for t in &policy.tags {
        add(t, &mut plan);
    }
    plan
}

fn valid_tag(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && t.chars().next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && t.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkout(branch: Option<&str>, tags: &[&str]) -> Checkout {
        Checkout {
            branch: branch.map(String::from),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            short_sha: Some("abc1234".into()),
        }
    }

    #[test]
    fn defaults() {
        let p = PublishConfig::default();
        assert_eq!(plan(&p, &checkout(Some("main"), &[])).tags, vec!["latest", "abc1234"]);
        let feature = plan(&p, &checkout(Some("feature/x"), &[]));
        assert_eq!(feature.tags, vec!["abc1234"]);
        assert!(feature.notes[0].contains("feature/x"), "{:?}", feature.notes);
        assert_eq!(plan(&p, &checkout(None, &["v1.2.3"])).tags, vec!["v1.2.3", "abc1234"]);
        assert!(plan(&p, &checkout(None, &["release/1"])).notes.iter().any(|n| n.contains("release/1")));
    }
}
