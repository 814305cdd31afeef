//! Labels from git, as image-driven CI pipelines stamp them: `commit`,
//! `branch`, `version` (from `git describe`), and the OCI
//! `org.opencontainers.image.{revision,source,version,created}` labels.
//! Read with the `git` command; an app outside a repository gets none.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// What git says about the app's checkout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitInfo {
    /// The full commit id of HEAD.
    pub commit: String,
    /// The branch; from CI variables when HEAD is detached.
    pub branch: Option<String>,
    /// `git describe --tags --always --dirty`.
    pub version: String,
    /// The `origin` remote, credentials removed.
    pub source: Option<String>,
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git").arg("-C").arg(dir).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string()).filter(|s| !s.is_empty())
}

/// Whether `dir` can be in a git checkout: a `.git` in it or above it, or
/// `GIT_DIR` set. Outside one, no git process is started at all.
fn maybe_in_git(dir: &Path) -> bool {
    std::env::var_os("GIT_DIR").is_some()
        || dir.canonicalize().map(|d| d.ancestors().any(|a| a.join(".git").exists())).unwrap_or(true)
}

impl GitInfo {
    /// Reads the checkout `dir` is in, if any. The branch, `describe` and the
    /// remote are asked of three git processes at once, since every build
    /// reads them.
    pub fn read(dir: &Path) -> Option<GitInfo> {
        if !maybe_in_git(dir) {
            return None;
        }
        let commit = git(dir, &["rev-parse", "HEAD"])?;
        let (branch, described, remote) = std::thread::scope(|s| {
            let branch = s.spawn(|| git(dir, &["symbolic-ref", "--short", "-q", "HEAD"]));
            let described = s.spawn(|| git(dir, &["describe", "--tags", "--always", "--dirty"]));
            let remote = s.spawn(|| git(dir, &["remote", "get-url", "origin"]));
            (branch.join().ok().flatten(), described.join().ok().flatten(), remote.join().ok().flatten())
        });
        let branch = branch.or_else(|| {
            ["GITHUB_HEAD_REF", "GITHUB_REF_NAME", "CI_COMMIT_REF_NAME", "BRANCH_NAME"]
                .iter()
                .find_map(|v| std::env::var(v).ok().filter(|b| !b.is_empty()))
        });
        let version = described.unwrap_or_else(|| commit[..12].to_string());
        let source = remote.map(|u| strip_credentials(&u));
        Some(GitInfo { commit, branch, version, source })
    }

    /// The labels to stamp; `created` is the image's creation time.
    pub fn labels(&self, created: &str) -> BTreeMap<String, String> {
        let mut l = BTreeMap::new();
        l.insert("commit".to_string(), self.commit.clone());
        if let Some(b) = &self.branch {
            l.insert("branch".to_string(), b.clone());
        }
        l.insert("version".to_string(), self.version.clone());
        l.insert("org.opencontainers.image.revision".to_string(), self.commit.clone());
        l.insert("org.opencontainers.image.version".to_string(), self.version.clone());
        l.insert("org.opencontainers.image.created".to_string(), created.to_string());
        if let Some(s) = &self.source {
            l.insert("org.opencontainers.image.source".to_string(), s.clone());
        }
        l
    }
}

/// `https://user:token@host/x` → `https://host/x`; scp-style remotes are kept.
pub fn strip_credentials(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) =
                rest.split_once('/').map(|(a, p)| (a, format!("/{p}"))).unwrap_or((rest, String::new()));
            let host = authority.rsplit_once('@').map(|(_, h)| h).unwrap_or(authority);
            format!("{scheme}://{host}{path}")
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_reach_a_label() {
        assert_eq!(
            strip_credentials("https://ci:glpat-XYZ@gitlab.example.com/team/app.git"),
            "https://gitlab.example.com/team/app.git"
        );
        assert_eq!(strip_credentials("git@github.com:team/app.git"), "git@github.com:team/app.git");
    }

    #[test]
    fn reads_a_real_repository() {
        let dir = tempfile::tempdir().unwrap();
        let g = |args: &[&str]| {
            let ok = Command::new("git").arg("-C").arg(dir.path()).args(args).output().unwrap().status.success();
            assert!(ok, "git {args:?}");
        };
        g(&["init", "-q", "-b", "main"]);
        std::fs::write(dir.path().join("f"), "x").unwrap();
        g(&["add", "f"]);
        g(&["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one"]);
        g(&["tag", "v1.2.3"]);
        g(&["remote", "add", "origin", "https://bot:secret@git.example.com/team/app.git"]);
        let info = GitInfo::read(dir.path()).unwrap();
        assert_eq!(info.branch.as_deref(), Some("main"));
        assert_eq!(info.version, "v1.2.3");
        assert_eq!(info.commit.len(), 40);
        let labels = info.labels("1970-01-01T00:00:00Z");
        assert_eq!(labels["org.opencontainers.image.source"], "https://git.example.com/team/app.git");
        assert!(!format!("{labels:?}").contains("secret"));
        assert!(GitInfo::read(tempfile::tempdir().unwrap().path()).is_none());
    }
}
