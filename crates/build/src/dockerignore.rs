//! `.dockerignore` with Docker's semantics.
//!
//! Every pattern is relative to the app root whether or not it starts with `/`
//! (`*.pyc` matches only at the root; `**/*.pyc` matches anywhere). A pattern
//! that matches a directory matches everything below it. Patterns are read in
//! order and the last one that matches decides; `!` makes a pattern re-include.

use std::path::Path;

use globset::{GlobBuilder, GlobMatcher};

/// The parsed patterns of one `.dockerignore`.
#[derive(Debug, Default)]
pub struct DockerIgnore {
    patterns: Vec<(GlobMatcher, bool)>,
}

impl DockerIgnore {
    /// Reads `<dir>/.dockerignore`; no file means nothing is ignored.
    pub fn load(dir: &Path) -> Result<DockerIgnore, String> {
        let path = dir.join(".dockerignore");
        match std::fs::read_to_string(&path) {
            Ok(text) => DockerIgnore::parse(&text).map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DockerIgnore::default()),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Parses the text of a `.dockerignore`.
    pub fn parse(text: &str) -> Result<DockerIgnore, String> {
        let mut patterns = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (exclusion, pat) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let cleaned = clean(pat);
            if cleaned.is_empty() {
                continue;
            }
            let glob = GlobBuilder::new(&cleaned)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| format!("line {}: `{line}` is not a valid pattern: {e}", n + 1))?;
            patterns.push((glob.compile_matcher(), exclusion));
        }
        Ok(DockerIgnore { patterns })
    }

    /// True when nothing can be ignored.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// True when some pattern re-includes (`!`); then an ignored directory must
    /// still be walked, since something below it may come back.
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|(_, exclusion)| *exclusion)
    }

    /// True when `rel` (a `/`-separated path relative to the app root) is ignored.
    pub fn is_ignored(&self, rel: &str) -> bool {
        let mut ignored = false;
        for (glob, exclusion) in &self.patterns {
            // Only a pattern that could change the verdict needs to be tried.
            if *exclusion != ignored {
                continue;
            }
            let hit = glob.is_match(rel) || ancestors(rel).any(|parent| glob.is_match(parent));
            if hit {
                ignored = !exclusion;
            }
        }
        ignored
    }
}

/// The proper ancestors of a relative path, shortest first: `a/b/c` gives `a`, `a/b`.
fn ancestors(rel: &str) -> impl Iterator<Item = &str> {
    rel.match_indices('/').map(move |(i, _)| &rel[..i])
}

/// Lexically cleans a pattern (or a path) as Docker does: no leading `/`,
/// no `.` parts, `..` resolved, no trailing `/`.
pub(crate) fn clean(pattern: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in pattern.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ig(text: &str) -> DockerIgnore {
        DockerIgnore::parse(text).unwrap()
    }

    // Cases from Docker's documentation of .dockerignore.
    #[test]
    fn root_relative_patterns() {
        let d = ig("# comment\n*/temp*\n*/*/temp*\ntemp?\n");
        assert!(d.is_ignored("somedir/temporary.txt"));
        assert!(d.is_ignored("somedir/temp"));
        assert!(d.is_ignored("somedir/subdir/temporary.txt"));
        assert!(d.is_ignored("tempa"));
        assert!(d.is_ignored("tempb/inside.txt"), "a matched directory takes its contents");
        assert!(!d.is_ignored("temporary.txt"), "*/temp* needs one directory level");
        assert!(!d.is_ignored("# comment"));
    }

    #[test]
    fn double_star_matches_any_depth() {
        let d = ig("**/*.go\n");
        assert!(d.is_ignored("main.go"));
        assert!(d.is_ignored("a/b/c/main.go"));
        assert!(!d.is_ignored("main.gox"));
        let d = ig("*.pyc\n");
        assert!(d.is_ignored("x.pyc"));
        assert!(!d.is_ignored("pkg/x.pyc"), "without ** only the root is matched");
    }

    #[test]
    fn exceptions_and_order() {
        let d = ig("*.md\n!README*.md\nREADME-secret.md\n");
        assert!(d.is_ignored("CHANGES.md"));
        assert!(!d.is_ignored("README.md"));
        assert!(d.is_ignored("README-secret.md"));
        let d = ig("*.md\nREADME-secret.md\n!README*.md\n");
        assert!(!d.is_ignored("README-secret.md"));
    }

    #[test]
    fn exception_inside_an_ignored_directory() {
        let d = ig("docs\n!docs/keep.txt\n");
        assert!(d.is_ignored("docs/other.txt"));
        assert!(!d.is_ignored("docs/keep.txt"));
        assert!(d.has_exceptions());
    }

    #[test]
    fn leading_and_trailing_slashes_and_dots_are_cleaned() {
        let d = ig("/build/\n./dist\nnode_modules/../cache\n");
        assert!(d.is_ignored("build/x"));
        assert!(d.is_ignored("dist"));
        assert!(d.is_ignored("cache/y"));
        assert!(!d.is_ignored("src/build"));
    }

    #[test]
    fn bad_pattern_names_its_line() {
        let e = DockerIgnore::parse("ok\n[unclosed\n").unwrap_err();
        assert!(e.contains("line 2"), "{e}");
    }
}
