//! Image references: `[registry/]repository[:tag][@digest]`.

use std::fmt;
use std::str::FromStr;

use oxbuild_image::Digest;

/// The registry an unqualified name such as `python:3.11` refers to.
pub const DOCKER_HUB: &str = "docker.io";

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host, with port when given (`127.0.0.1:5000`, `ghcr.io`).
    pub registry: String,
    /// Repository path within the registry (`team/app`).
    pub repository: String,
    /// Tag, when given.
    pub tag: Option<String>,
    /// Digest, when given; it wins over the tag when fetching.
    pub digest: Option<Digest>,
}

/// Why a string is not an image reference.
#[derive(Debug, thiserror::Error)]
#[error("`{input}` is not a valid image reference: {why}")]
pub struct ReferenceError {
    input: String,
    why: String,
}

impl Reference {
    /// The same repository with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference { tag: Some(tag.to_string()), digest: None, ..self.clone() }
    }

    /// The same repository pinned to `digest`.
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference { digest: Some(digest), ..self.clone() }
    }

    /// What to put after `/manifests/`: the digest when there is one, else the tag, else `latest`.
    pub fn manifest_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }

    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// Parses `s`; a bare tag such as `v1` is not a reference (see [`Reference::parse_tag_or_ref`]).
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        s.parse()
    }

    /// Parses a `--tag` value: a full reference, or only a tag (`v1`, `:v1`) that
    /// applies to `default_repo`.
    pub fn parse_tag_or_ref(s: &str, default_repo: Option<&Reference>) -> Result<Reference, ReferenceError> {
        let bare = s.strip_prefix(':').unwrap_or(s);
        if !bare.contains('/') && !bare.contains(':') && !bare.contains('@') {
            return match default_repo {
                Some(repo) => {
                    check_tag(s, bare)?;
                    Ok(repo.with_tag(bare))
                }
                None => Err(ReferenceError {
                    input: s.into(),
                    why: "a bare tag needs `[image] repository` in oxbuild.toml, or give a full reference such as registry.example.com/team/app:v1".into(),
                }),
            };
        }
        s.parse()
    }
}

fn check_tag(input: &str, tag: &str) -> Result<(), ReferenceError> {
    let valid = !tag.is_empty()
        && tag.len() <= 128
        && tag.chars().next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && tag.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if valid {
        Ok(())
    } else {
        Err(ReferenceError {
            input: input.into(),
            why: format!(
                "tag `{tag}` may use only letters, digits, `_`, `.` and `-` (at most 128, not starting with `.` or `-`)"
            ),
        })
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |why: &str| ReferenceError { input: input.into(), why: why.into() };
        if input.is_empty() {
            return Err(err("it is empty"));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((r, d)) => (r, Some(d.parse::<Digest>().map_err(|e| err(&e.to_string()))?)),
            None => (input, None),
        };
        let (registry, path) = match rest.split_once('/') {
            Some((first, path))
                if first.contains('.') || first.contains(':') || first == "localhost" || first.starts_with('[') =>
            {
                (first.to_string(), path)
            }
            _ => (DOCKER_HUB.to_string(), rest),
        };
        let (repository, tag) = match path.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo.to_string(), Some(tag.to_string())),
            _ => (path.to_string(), None),
        };
        if let Some(t) = &tag {
            check_tag(input, t)?;
        }
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        let valid_repo = !repository.is_empty()
            && repository.split('/').all(|c| {
                !c.is_empty()
                    && c.chars()
                        .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || matches!(ch, '.' | '_' | '-'))
                    && c.chars().next().is_some_and(|ch| ch.is_ascii_alphanumeric())
            });
        if !valid_repo {
            return Err(err(&format!(
                "repository `{repository}` must be lowercase letters, digits and `._-`, in `/`-separated parts"
            )));
        }
        Ok(Reference { registry, repository, tag, digest })
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// True when `registry` (host or host:port) is on the loopback interface, where
/// plain HTTP is used without asking.
pub fn is_loopback(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        registry.rsplit_once(':').map(|(h, _)| h).unwrap_or(registry)
    };
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_shapes() {
        let r = Reference::parse("127.0.0.1:5000/team/app:v1").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("127.0.0.1:5000", "team/app", Some("v1"))
        );
        let r = Reference::parse("python:3.11").unwrap();
        assert_eq!((r.registry.as_str(), r.repository.as_str()), (DOCKER_HUB, "library/python"));
        let d = Digest::of(b"x");
        let r = Reference::parse(&format!("localhost/app@{d}")).unwrap();
        assert_eq!(r.digest, Some(d.clone()));
        assert_eq!(r.manifest_reference(), d.to_string());
        assert_eq!(r.to_string(), format!("localhost/app@{d}"));
    }

    #[test]
    fn rejects_bad_references_with_a_reason() {
        let e = Reference::parse("127.0.0.1:5000/Team/App").unwrap_err().to_string();
        assert!(e.contains("lowercase"), "{e}");
        assert!(Reference::parse("host.io/app@sha256:nothex").is_err());
        assert!(Reference::parse("host.io/app:bad tag").is_err());
    }

    #[test]
    fn bare_tags_apply_to_the_default_repository() {
        let repo = Reference::parse("127.0.0.1:5000/team/app").unwrap();
        assert_eq!(Reference::parse_tag_or_ref("v2", Some(&repo)).unwrap().to_string(), "127.0.0.1:5000/team/app:v2");
        assert!(Reference::parse_tag_or_ref("v2", None).is_err());
        assert_eq!(Reference::parse_tag_or_ref("other.io/x:y", Some(&repo)).unwrap().registry, "other.io");
    }

    #[test]
    fn loopback_detection() {
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("127.3.2.1"));
        assert!(is_loopback("localhost:80"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("registry.example.com:5000"));
        assert!(!is_loopback("10.0.0.1:5000"));
    }
}
