//! Pinned `requirements.txt` files, as `pip-compile` or `uv pip compile` write
//! them: every requirement `name==version`, optionally with `--hash` options and
//! an environment marker, plus index options.

use std::path::{Path, PathBuf};

use crate::Error;
use crate::marker::Marker;
use crate::name::normalize;

/// One pinned requirement.
#[derive(Debug, Clone)]
pub struct Pin {
    /// The name as written.
    pub name: String,
    /// The exact version, normalised (PEP 440), or as written for `===`.
    pub version: String,
    /// Pinned with `===` (arbitrary string equality) rather than `==`.
    pub arbitrary: bool,
    /// Accepted sha256 hashes (hex); empty when the lock has none.
    pub hashes: Vec<String>,
    /// The marker, when the requirement applies to some environments only.
    pub marker: Option<Marker>,
    /// Where it was written, for messages: `file:line`.
    pub origin: String,
    /// Files the lock itself names (pylock.toml, uv.lock), tried before any index.
    pub direct: Vec<crate::source::Candidate>,
    /// Normalised names of the packages it depends on, where the lock records
    /// them (uv.lock and pylock.toml edges, `# via` comments of pip-compile).
    pub dependencies: Vec<String>,
    /// The extras the lock asks of it (`flask[async]`), normalised.
    pub extras: Vec<String>,
    /// Where it comes from when that is a source tree rather than files:
    /// built by its own backend in the same run.
    pub tree: Option<Tree>,
}

/// The requirement lines of a requirements file that need not be pinned
/// (`requirements.in`, a partly pinned `requirements.txt`): comments,
/// options, hashes and line continuations dropped.
pub fn requirement_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split(" #").next().unwrap_or("").trim())
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('-'))
        .map(|l| l.split(" --hash").next().unwrap_or(l).trim_end_matches('\\').trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// Whether a requirements file's text is a compiled lock (pip-compile's or
/// uv's output: hashes, `# via` lines, or its header), not one written by hand.
pub fn compiled(text: &str) -> bool {
    text.contains("--hash") || text.contains("# via") || text.contains("pip-compile")
}

/// The requirement lines of `text` that do not pin one version (`==`) or a
/// URL (` @ `): what makes a requirements file an input to lock rather than
/// a lock. Markers are left out of what is returned.
pub fn unpinned(text: &str) -> Vec<String> {
    requirement_lines(text)
        .iter()
        .map(|l| l.split(';').next().unwrap_or(l).trim().to_string())
        .filter(|l| !l.contains("==") && !l.contains(" @ "))
        .collect()
}

/// A package's source tree, as a lock names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tree {
    /// A directory (a workspace member, a path dependency).
    Directory(PathBuf),
    /// A git repository at an exact commit.
    Git {
        /// The repository (credentials it carries are used, never shown).
        url: String,
        /// The full commit id.
        commit: String,
        /// Where the project is inside the repository.
        subdirectory: Option<String>,
    },
}

impl Tree {
    /// uv's form: `https://host/repo.git?rev=main&subdirectory=pkg#<commit>`.
    pub fn git(text: &str) -> Option<Tree> {
        let text = text.strip_prefix("git+").unwrap_or(text);
        let mut url = url::Url::parse(text).ok()?;
        let commit = url.fragment().filter(|f| f.len() >= 40 && f.bytes().all(|b| b.is_ascii_hexdigit()))?.to_string();
        let subdirectory =
            url.query_pairs().find(|(k, _)| k == "subdirectory").map(|(_, v)| v.into_owned()).filter(|s| !s.is_empty());
        url.set_fragment(None);
        url.set_query(None);
        Some(Tree::Git { url: url.to_string(), commit, subdirectory })
    }
}

impl Tree {
    /// What the dependency layer is keyed by: the commit, or the content of
    /// the directory (which no lock pins).
    pub fn identity(&self) -> String {
        match self {
            Tree::Git { url, commit, subdirectory } => {
                format!("git {} {commit} {}", oxbuild_http::redact(url), subdirectory.as_deref().unwrap_or(""))
            }
            Tree::Directory(d) => match crate::sdist::tree_digest(d) {
                Ok(digest) => format!("directory {digest}"),
                // Built and reported when it is read again; never reused.
                Err(e) => format!("directory {} unreadable ({e}) {:?}", d.display(), std::time::SystemTime::now()),
            },
        }
    }
}

impl std::fmt::Display for Tree {
    /// As reports show it: credentials removed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tree::Directory(d) => write!(f, "the directory {}", d.display()),
            Tree::Git { url, commit, subdirectory } => {
                write!(f, "git {} at {commit}", oxbuild_http::redact(url))?;
                match subdirectory {
                    Some(s) => write!(f, " (subdirectory {s})"),
                    None => Ok(()),
                }
            }
        }
    }
}

impl Pin {
    /// The normalised name.
    pub fn key(&self) -> String {
        normalize(&self.name)
    }
}

/// Index options found in the file (`--index-url`, `--extra-index-url`,
/// `--find-links`, `--no-index`). Debug shows the URLs without their
/// credentials.
#[derive(Clone, Default)]
pub struct IndexOptions {
    /// `--index-url`
    pub index_url: Option<String>,
    /// `--extra-index-url`, in order.
    pub extra_index_urls: Vec<String>,
    /// `--find-links`, relative to the file's directory.
    pub find_links: Vec<PathBuf>,
    /// `--no-index`
    pub no_index: bool,
}

impl std::fmt::Debug for IndexOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redact = crate::source::redact;
        f.debug_struct("IndexOptions")
            .field("index_url", &self.index_url.as_deref().map(redact))
            .field("extra_index_urls", &self.extra_index_urls.iter().map(|u| redact(u)).collect::<Vec<_>>())
            .field("find_links", &self.find_links)
            .field("no_index", &self.no_index)
            .finish()
    }
}

impl IndexOptions {
    /// These options (the configuration's) with `file`'s after them, as
    /// pip takes a requirements file's options after its command line: the
    /// first `index-url` given wins; the find-links and extra indexes of
    /// both are used; `no-index` from either.
    pub fn then(&self, file: &IndexOptions) -> IndexOptions {
        IndexOptions {
            index_url: self.index_url.clone().or_else(|| file.index_url.clone()),
            extra_index_urls: self.extra_index_urls.iter().chain(&file.extra_index_urls).cloned().collect(),
            find_links: self.find_links.iter().chain(&file.find_links).cloned().collect(),
            no_index: self.no_index || file.no_index,
        }
    }
}

/// `value` with each `${NAME}` (capitals, digits and `_`, as pip reads
/// them) replaced by that environment variable; one that is not set stays
/// as written. How a requirements file names an index's token without
/// holding it.
pub(crate) fn expand_env(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').filter(|&e| {
            e > 0 && after[..e].bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        });
        match end.and_then(|e| std::env::var(&after[..e]).ok().map(|v| (e, v))) {
            Some((e, v)) => {
                out.push_str(&v);
                rest = &after[e + 1..];
            }
            None => {
                out.push_str("${");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// A parsed requirements file (with `-r` includes followed).
#[derive(Debug, Clone, Default)]
pub struct Requirements {
    /// The pins, in file order.
    pub pins: Vec<Pin>,
    /// Index options.
    pub options: IndexOptions,
    /// `# via` edges seen: (the pin's normalised name, a package that needs it).
    pub(crate) via: Vec<(String, String)>,
    /// The lock's own `requires-python` (uv.lock, pylock.toml).
    pub requires_python: Option<String>,
}

/// Which part of a lock with groups to install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// The production part: uv's project dependencies, Poetry's `main`,
    /// PDM's and Pipenv's `default`.
    pub production: bool,
    /// Named groups besides (`[python] groups`), or alone (a test variant's
    /// `test-groups`).
    pub groups: Vec<String>,
    /// The project's extras besides its dependencies (`[python] extras`):
    /// only a uv.lock says which packages each needs; other locks carry
    /// them only when they were locked with them.
    pub extras: Vec<String>,
    /// Where the project is in a uv workspace whose uv.lock is in a folder
    /// above it: its folder relative to the lock's (`backend`). The part of
    /// the lock to install is then that member's, not the workspace root's.
    /// See `lockfile::workspace_member`.
    pub workspace_member: Option<PathBuf>,
}

impl Selection {
    /// The production part only.
    pub fn production() -> Selection {
        Selection { production: true, groups: Vec::new(), extras: Vec::new(), workspace_member: None }
    }

    /// These groups only.
    pub fn groups(groups: Vec<String>) -> Selection {
        Selection { production: false, groups, extras: Vec::new(), workspace_member: None }
    }
}

impl Default for Selection {
    fn default() -> Self {
        Selection::production()
    }
}

const UNPINNED_HINT: &str = "oxbuild installs exactly what a lock says: pin every requirement with `==` (generate the file with `uv pip compile` or `pip-compile`)";

/// The exact versions a `[python] build-constraints` file pins, by
/// normalised name: what sdist and project builds install of their build
/// requirements, in a build and in a lock alike.
pub fn build_constraints(path: &Path) -> Result<std::collections::BTreeMap<String, String>, Error> {
    Ok(Requirements::load(path)?.pins.into_iter().map(|p| (p.key(), p.version)).collect())
}

impl Requirements {
    /// Reads and parses the file at `path`.
    pub fn load(path: &Path) -> Result<Requirements, Error> {
        let mut out = Requirements::default();
        out.read(path, 0)?;
        out.link_via();
        Ok(out)
    }

    fn read(&mut self, path: &Path, depth: usize) -> Result<(), Error> {
        let (file, text) = read_included(path, depth)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        self.parse_into(&text, &file, dir, depth)
    }

    /// Parses `text` (the content of `file`, whose directory is `dir`).
    pub fn parse(text: &str, file: &str, dir: &Path) -> Result<Requirements, Error> {
        let mut out = Requirements::default();
        out.parse_into(text, file, dir, 0)?;
        out.link_via();
        Ok(out)
    }

    /// Turns the `# via` comments that pip-compile and `uv pip compile` write
    /// under each pin into dependency edges of the pins that need it.
    fn link_via(&mut self) {
        for (child, parent) in std::mem::take(&mut self.via) {
            for pin in self.pins.iter_mut().filter(|p| p.key() == parent) {
                if !pin.dependencies.contains(&child) {
                    pin.dependencies.push(child.clone());
                }
            }
        }
    }

    /// Records a `# via` comment line (`# via flask`, or `#   flask` in a
    /// `# via` list) for the last pin. Returns whether a list continues.
    fn via_line(&mut self, comment: &str, listing: bool) -> bool {
        let Some(pin) = self.pins.last() else { return false };
        let child = pin.key();
        let (names, continues) = match comment.strip_prefix("via") {
            Some(rest) if rest.trim().is_empty() => return true,
            Some(rest) if rest.starts_with(char::is_whitespace) => (rest.trim(), false),
            _ if listing && comment.starts_with(char::is_alphanumeric) => (comment, true),
            _ if listing && comment.starts_with('-') => return true,
            _ => return false,
        };
        // `-r requirements.in`, `-c constraints.txt` and `(pyproject.toml)` are files, not packages.
        if let Some(name) = names.split_whitespace().next().filter(|n| n.starts_with(char::is_alphanumeric)) {
            self.via.push((child, normalize(name)));
        }
        continues
    }

    fn parse_into(&mut self, text: &str, file: &str, dir: &Path, depth: usize) -> Result<(), Error> {
        let mut listing = false;
        for (line_no, line) in logical_lines(text) {
            let err = |message: String| Error::Lock { file: file.to_string(), line: line_no, message };
            if let Some(comment) = line.trim().strip_prefix('#') {
                listing = self.via_line(comment.trim(), listing);
                continue;
            }
            listing = false;
            let raw = line.clone();
            let line = strip_comment(&line);
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            if line.starts_with('-') {
                let (opt, value) = split_option(line);
                let value = value.ok_or_else(|| err(format!("`{opt}` needs a value")));
                match opt {
                    "-r" | "--requirement" => self.read(&dir.join(value?), depth + 1)?,
                    "-c" | "--constraint" => {}
                    "-i" | "--index-url" => {
                        self.options.index_url = Some(crate::input::index_url(opt, value?).map_err(err)?)
                    }
                    "--extra-index-url" => {
                        self.options.extra_index_urls.push(crate::input::index_url(opt, value?).map_err(err)?)
                    }
                    "-f" | "--find-links" => self.options.find_links.push(dir.join(expand_env(value?))),
                    "--no-index" => self.options.no_index = true,
                    "--hash" => return Err(err("`--hash` must follow a requirement on its line".into())),
                    "-e" | "--editable" => {
                        return Err(err(
                            "editable installs cannot go into an image; list the package pinned instead".into()
                        ));
                    }
                    "--only-binary" | "--prefer-binary" | "--no-binary" | "--pre" | "--trusted-host" => {}
                    other => return Err(err(format!("unknown option `{other}`"))),
                }
                continue;
            }
            self.pins.push(parse_requirement(line, &format!("{file}:{line_no}")).map_err(err)?);
            // Older pip-compile writes `# via` after the pin on its line.
            if let Some((_, inline)) = raw.split_once(" # via ") {
                self.via_line(&format!("via {inline}"), false);
            }
        }
        Ok(())
    }
}

/// The file at `path`, as messages name it, and its text: a requirements
/// file reached through `depth` includes (`-r`, `-c`), of which more than
/// ten are taken for a cycle.
pub(crate) fn read_included(path: &Path, depth: usize) -> Result<(String, String), Error> {
    let file = path.display().to_string();
    if depth > 10 {
        return Err(Error::Lock { file, line: 0, message: "includes (`-r`, `-c`) nest too deeply (a cycle?)".into() });
    }
    let text = std::fs::read_to_string(path).map_err(|e| Error::Lock {
        file: file.clone(),
        line: 0,
        message: crate::error::unreadable(&e),
    })?;
    Ok((file, text))
}

/// Lines with `\` continuations joined, numbered by their first physical line.
pub(crate) fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let (trimmed, continues) = match raw.trim_end().strip_suffix('\\') {
            Some(t) => (t.to_string(), true),
            None => (raw.to_string(), false),
        };
        let entry = current.get_or_insert((i + 1, String::new()));
        entry.1.push(' ');
        entry.1.push_str(&trimmed);
        if !continues {
            out.push(current.take().expect("set above"));
        }
    }
    out.extend(current);
    out
}

pub(crate) fn strip_comment(line: &str) -> String {
    // A `#` starts a comment at the line start or after white space (URLs keep theirs).
    let mut prev_space = true;
    for (i, c) in line.char_indices() {
        if c == '#' && prev_space {
            return line[..i].to_string();
        }
        prev_space = c.is_whitespace();
    }
    line.to_string()
}

pub(crate) fn split_option(line: &str) -> (&str, Option<&str>) {
    if let Some((opt, value)) = line.split_once('=')
        && !opt.contains(' ')
    {
        return (opt, Some(value.trim()));
    }
    match line.split_once(char::is_whitespace) {
        Some((opt, value)) => (opt, Some(value.trim())),
        None => (line, None),
    }
}

/// Parses `name[extras]==version [; marker] [--hash=sha256:...]...`: the
/// requirement itself by `pep508_rs` (PEP 508), the hashes here.
fn parse_requirement(line: &str, origin: &str) -> Result<Pin, String> {
    let mut hashes = Vec::new();
    let mut spec = String::new();
    let mut words = line.split_whitespace().peekable();
    while let Some(w) = words.next() {
        if let Some(h) = w.strip_prefix("--hash=").or_else(|| (w == "--hash").then(|| words.next()).flatten()) {
            let hex =
                h.strip_prefix("sha256:").ok_or_else(|| format!("hash `{h}`: only sha256 hashes are supported"))?;
            if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!("hash `{h}` is not a sha256 digest (64 hex digits); the file may be cut short"));
            }
            hashes.push(hex.to_ascii_lowercase());
        } else if w.starts_with("--") {
            return Err(format!("unknown per-requirement option `{w}`"));
        } else {
            spec.push_str(w);
            spec.push(' ');
        }
    }
    let spec = spec.trim();
    let pin = |name: String, version: String, arbitrary: bool, marker: Option<Marker>| Pin {
        name,
        version,
        arbitrary,
        hashes: hashes.clone(),
        marker,
        origin: origin.to_string(),
        direct: Vec::new(),
        dependencies: Vec::new(),
        extras: Vec::new(),
        tree: None,
    };
    // `===` compares strings, not versions, so its operand is taken as
    // written; pep508_rs would normalise it (and refuses non-PEP 440 ones).
    let (req, marker_text) = match spec.split_once(';') {
        Some((r, m)) => (r.trim(), Some(m.trim())),
        None => (spec, None),
    };
    if let Some((name, version)) = req.split_once("===") {
        let name = name.split('[').next().unwrap_or("").trim();
        let version = version.trim();
        if name.is_empty() || version.is_empty() || version.contains([',', ' ']) {
            return Err(format!("`{req}` is not a pin; {UNPINNED_HINT}"));
        }
        let marker = marker_text.map(Marker::parse).transpose()?;
        return Ok(pin(name.to_string(), version.to_string(), true, marker));
    }
    let parsed = crate::name::parse_requirement(spec).map_err(|e| {
        // The URL of a direct reference is not repeated: it may carry a token.
        if spec.contains("://") { "a direct URL reference that cannot be read".to_string() } else { e }
    })?;
    let name = parsed.name.to_string();
    let extras: Vec<String> = parsed.extras.iter().map(|e| e.to_string()).collect();
    let pin =
        |name, version, arbitrary, marker| Pin { extras: extras.clone(), ..pin(name, version, arbitrary, marker) };
    let marker = Marker::from_tree(parsed.marker);
    match parsed.version_or_url {
        Some(pep508_rs::VersionOrUrl::Url(_)) => Err(format!(
            "`{name}` is a direct URL reference; oxbuild needs name==version pins (put the wheel in a find-links wheelhouse)"
        )),
        Some(pep508_rs::VersionOrUrl::VersionSpecifier(specs))
            if specs.len() == 1 && *specs[0].operator() == pep440_rs::Operator::Equal =>
        {
            Ok(pin(name, specs[0].version().to_string(), false, marker))
        }
        _ => Err(format!("`{req}` is not pinned; {UNPINNED_HINT}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_is_named_without_a_line_and_says_what_to_do() {
        let e = Requirements::load(Path::new("/nonexistent/requirements.txt")).unwrap_err().to_string();
        assert_eq!(
            e,
            "/nonexistent/requirements.txt: no such file; create it (a pinned requirements file, pylock.toml or uv.lock), or fix the path in [python]"
        );
    }

    fn parse(text: &str) -> Result<Requirements, Error> {
        Requirements::parse(text, "requirements.txt", Path::new("/app"))
    }

    #[test]
    fn pip_compile_output_parses() {
        let (a, b) = ("A".repeat(64), "b".repeat(64));
        let r = parse(&format!(
            "# generated\n--index-url https://pypi.org/simple\n--find-links wheels\n\
             markupsafe==3.0.2 \\\n    --hash=sha256:{a} \\\n    --hash=sha256:{b}\n    # via jinja2\n\
             Flask[async]==3.1.0 ; python_version >= \"3.9\"\ncolorama==0.4.6 ; sys_platform == \"win32\"\n",
        ))
        .unwrap();
        assert_eq!(r.pins.len(), 3);
        assert_eq!(r.pins[0].hashes, vec!["a".repeat(64), b]);
        assert_eq!(r.pins[0].origin, "requirements.txt:4");
        assert_eq!((r.pins[1].key().as_str(), r.pins[1].version.as_str()), ("flask", "3.1.0"));
        assert!(r.pins[2].marker.is_some());
        assert_eq!(r.options.index_url.as_deref(), Some("https://pypi.org/simple"));
        assert_eq!(r.options.find_links, vec![PathBuf::from("/app/wheels")]);
    }

    #[test]
    fn via_comments_become_dependency_edges() {
        let r = parse(
            "flask==3.1.0\n    # via -r requirements.in\njinja2==3.1.4\n    # via flask\n\
             markupsafe==3.0.2\n    # via\n    #   jinja2\n    #   -r requirements.in\n    #   werkzeug\n\
             werkzeug==3.1.3  # via flask\n",
        )
        .unwrap();
        let deps = |n: usize| r.pins[n].dependencies.clone();
        assert_eq!(deps(0), ["jinja2", "werkzeug"], "flask");
        assert_eq!(deps(1), ["markupsafe"], "jinja2");
        assert_eq!(deps(2), Vec::<String>::new(), "markupsafe");
        assert_eq!(deps(3), ["markupsafe"], "werkzeug, named after a file in the list");
    }

    #[test]
    fn requirement_lines_drop_comments_options_hashes_and_continuations() {
        let text = "# top\n--index-url https://x\nflask>=3  # web\nblinker==1.9.0 \\\n    --hash=sha256:ab\nnumpy ; python_version >= '3.10'\n";
        assert_eq!(requirement_lines(text), ["flask>=3", "blinker==1.9.0", "numpy ; python_version >= '3.10'"]);
    }

    #[test]
    fn unpinned_lines_are_named_with_a_fix() {
        let e = parse("flask==3.1.0\nrequests>=2\n").unwrap_err().to_string();
        assert!(
            e.starts_with("requirements.txt:2:") && e.contains("requests>=2") && e.contains("uv pip compile"),
            "{e}"
        );
        let e = parse("django\n").unwrap_err().to_string();
        assert!(e.contains("not pinned"), "{e}");
        let e = parse("pkg @ git+https://ghp_TOKEN@example.com/pkg.git\n").unwrap_err().to_string();
        assert!(e.contains("direct URL") && e.contains("`pkg`") && !e.contains("TOKEN"), "{e}");
    }

    #[test]
    fn pins_are_read_as_pep_508_and_pep_440_say() {
        let r = parse("Pkg_One==1.0-RC1\nepoch==1!2.0\ncpu==2.3.0+CPU\nodd===1.0-Custom ; python_version >= \"3\"\n")
            .unwrap();
        let got: Vec<(String, &str, bool)> =
            r.pins.iter().map(|p| (p.key(), p.version.as_str(), p.arbitrary)).collect();
        assert_eq!(
            got,
            vec![
                ("pkg-one".to_string(), "1.0rc1", false),
                ("epoch".to_string(), "1!2.0", false),
                ("cpu".to_string(), "2.3.0+cpu", false),
                ("odd".to_string(), "1.0-Custom", true),
            ]
        );
        assert!(r.pins[3].marker.is_some());
        for unpinned in ["pkg==1.*", "pkg==1.0,<2", "pkg~=1.0", "pkg!=1.0"] {
            let e = parse(unpinned).unwrap_err().to_string();
            assert!(e.contains("not pinned"), "{unpinned}: {e}");
        }
    }
}
