//! A requirements file as the input of `oxbuild lock` (`requirements.in`, a
//! partly pinned `requirements.txt`): its requirements with those of its
//! `-r` includes, and what its options ask of the resolution: `-c`
//! constraints, the indexes (`--index-url`, `--extra-index-url`,
//! `--find-links`, `--no-index`) and `--pre`. pip and uv read these options
//! from the file, so a lock that dropped them would resolve from another
//! index than the project names: a private package looked for on PyPI.

use std::path::Path;

use crate::Error;
use crate::requirements::{IndexOptions, expand_env, logical_lines, split_option, strip_comment};

/// What a lock input file asks for.
#[derive(Debug, Clone, Default)]
pub struct Input {
    /// The requirements (PEP 508), in file order, includes in place.
    pub requirements: Vec<String>,
    /// The requirement lines of its `-c` files: the versions a package may
    /// take when something requires it, not packages asked for.
    pub constraints: Vec<String>,
    /// Its index options; `--find-links` relative to the file that names it.
    pub options: IndexOptions,
    /// `--pre`: pre-releases may be chosen.
    pub prereleases: bool,
    /// Lines that were read and deliberately not used, with why.
    pub notes: Vec<String>,
    /// Every file read: the input and what it includes, in the order read.
    pub files: Vec<std::path::PathBuf>,
}

/// Which list a file's requirement lines go to.
#[derive(Clone, Copy, PartialEq)]
enum Into {
    Requirements,
    Constraints,
}

/// Reads the lock input at `path` with everything it includes.
pub fn read(path: &Path) -> Result<Input, Error> {
    let mut out = Input::default();
    read_into(path, Into::Requirements, 0, &mut out)?;
    Ok(out)
}

fn read_into(path: &Path, into: Into, depth: usize, out: &mut Input) -> Result<(), Error> {
    let (file, text) = crate::requirements::read_included(path, depth)?;
    out.files.push(path.to_path_buf());
    let dir = path.parent().unwrap_or(Path::new("."));
    for (line_no, line) in logical_lines(&text) {
        let err = |message: String| Error::Lock { file: file.clone(), line: line_no, message };
        let line = strip_comment(&line);
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if !line.starts_with('-') {
            // Hashes belong to a pin; an input's requirement is the rest.
            let requirement = line.split(" --hash").next().unwrap_or(line);
            let requirement = requirement.split_whitespace().collect::<Vec<_>>().join(" ");
            match into {
                Into::Requirements => out.requirements.push(requirement),
                Into::Constraints => out.constraints.push(requirement),
            }
            continue;
        }
        let (opt, value) = split_option(line);
        // pip's short forms also come glued: `-rbase.txt`, `-ihttps://…`.
        let (opt, value) = match opt {
            _ if opt.len() > 2
                && ["-r", "-c", "-i", "-f", "-e"].iter().any(|o| opt.starts_with(o))
                && !opt.starts_with("--") =>
            {
                (&opt[..2], Some(opt[2..].trim()))
            }
            _ => (opt, value),
        };
        let needs = || value.filter(|v| !v.is_empty()).ok_or_else(|| err(format!("`{opt}` needs a value")));
        let included = |name: &str| dir.join(name);
        // pip also reads includes over HTTP; oxbuild does not, and the URL
        // may carry a token, so it is shown without one.
        if matches!(opt, "-r" | "--requirement" | "-c" | "--constraint") && value.is_some_and(|v| v.contains("://")) {
            return Err(err(format!(
                "`{opt}` names a URL ({}); oxbuild reads included files from the project: download it into the project and name that file",
                crate::source::redact(value.unwrap_or_default())
            )));
        }
        match opt {
            "-r" | "--requirement" => {
                let name = needs()?;
                read_into(&included(name), into, depth + 1, out).map_err(|e| with_includer(e, &file, line_no, "-r"))?;
            }
            "-c" | "--constraint" => {
                let name = needs()?;
                read_into(&included(name), Into::Constraints, depth + 1, out)
                    .map_err(|e| with_includer(e, &file, line_no, "-c"))?;
            }
            "-i" | "--index-url" => out.options.index_url = Some(index_url(opt, needs()?).map_err(err)?),
            "--extra-index-url" => out.options.extra_index_urls.push(index_url(opt, needs()?).map_err(err)?),
            "-f" | "--find-links" => {
                let value = expand_env(needs()?);
                if value.contains("://") && !value.starts_with("file://") {
                    return Err(err(format!(
                        "`{opt}` names a web page ({}); oxbuild reads find-links from a directory: download the files into one, or name the index with --extra-index-url",
                        crate::source::redact(&value)
                    )));
                }
                let local = value.strip_prefix("file://").unwrap_or(&value);
                out.options.find_links.push(dir.join(local));
            }
            "--no-index" => out.options.no_index = true,
            "--pre" => out.prereleases = true,
            "-e" | "--editable" => {
                let target = needs()?;
                if target.contains("://") || target.starts_with("git+") {
                    return Err(err(format!(
                        "`{opt} {}`: an editable install from version control cannot be locked for an image; require the package by name from an index (or build its wheel into a find-links directory)",
                        crate::source::redact(target)
                    )));
                }
                // The project itself (`-e .`, `-e .[dev]`) is the build's to
                // install; another local project would be missing from the lock.
                let own = target == "." || target == "./" || target.starts_with(".[") || target.starts_with("./[");
                if !own {
                    return Err(err(format!(
                        "`{opt} {target}` is another local project, which a lock cannot hold: build its wheel into a find-links directory and require it by name"
                    )));
                }
                let extras = if target.contains('[') { " (its extras' packages too: list them)" } else { "" };
                out.notes.push(format!(
                    "{file}:{line_no}: `{opt} {target}` left out of the lock: the project itself is installed by the build when it is a package ([python] install-project), not locked{extras}"
                ));
            }
            // Choices of how pip installs, not of what it resolves.
            "--trusted-host" | "--prefer-binary" | "--only-binary" | "--no-binary" | "--require-hashes"
            | "--use-feature" => {}
            other => {
                return Err(err(format!(
                    "unknown option `{}`; a lock input takes requirements and -r, -c, -i/--index-url, --extra-index-url, -f/--find-links, --no-index and --pre",
                    crate::source::redact(other)
                )));
            }
        }
    }
    Ok(())
}

/// An index URL option's value with `${NAME}` expanded. A variable in the
/// URL's path (a token there, as some hosted indexes take it) is refused:
/// the index's file URLs carry it too, and the lock and the SBOM record
/// those, where one in the user or password is sent as a login and never
/// written.
pub(crate) fn index_url(opt: &str, raw: &str) -> Result<String, String> {
    let authority_end = raw.find("://").map(|i| i + 3).and_then(|start| raw[start..].find('/').map(|j| start + j));
    if let Some(path) = authority_end.map(|at| &raw[at..])
        && let Some(name) = path.split("${").nth(1).and_then(|r| r.split('}').next())
    {
        return Err(format!(
            "`{opt}` puts ${{{name}}} in the URL's path, and the lock would record its value in every file URL: give the token as the URL's user or password instead (https://token:${{{name}}}@host/…), which oxbuild sends as a login and never writes down"
        ));
    }
    Ok(expand_env(raw))
}

/// `e`, an error in a file that `file` includes at `line`, saying so.
fn with_includer(e: Error, file: &str, line: usize, how: &str) -> Error {
    match e {
        Error::Lock { file: inner, line: inner_line, message } => Error::Lock {
            file: inner,
            line: inner_line,
            message: format!("{message} (included by `{how}` at {file}:{line})"),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn options_includes_and_constraints_are_read() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "base.in", "flask>=3  # the web framework\n--extra-index-url https://extra.example/simple\n");
        write(d.path(), "constraints.txt", "werkzeug<3.2\n-r more-constraints.txt\n");
        write(d.path(), "more-constraints.txt", "click!=8.1.0\n");
        let p = write(
            d.path(),
            "requirements.in",
            "--index-url https://pkgs.example/simple\n-r base.in\n-cconstraints.txt\n\
             gunicorn \\\n  >=22\n-f wheels\n--pre\n--trusted-host pkgs.example\n-e .\n",
        );
        let input = read(&p).unwrap();
        assert_eq!(input.requirements, ["flask>=3", "gunicorn >=22"]);
        assert_eq!(input.constraints, ["werkzeug<3.2", "click!=8.1.0"]);
        assert_eq!(input.options.index_url.as_deref(), Some("https://pkgs.example/simple"));
        assert_eq!(input.options.extra_index_urls, ["https://extra.example/simple"]);
        assert_eq!(input.options.find_links, [d.path().join("wheels")]);
        assert!(input.prereleases);
        let read: Vec<&str> = input.files.iter().filter_map(|f| f.file_name()?.to_str()).collect();
        assert_eq!(read, ["requirements.in", "base.in", "constraints.txt", "more-constraints.txt"]);
        assert_eq!(input.notes.len(), 1, "{:?}", input.notes);
        assert!(input.notes[0].contains("`-e .`") && input.notes[0].contains("install-project"), "{:?}", input.notes);
    }

    #[test]
    fn a_wrong_line_is_named_by_file_and_line_and_never_shows_a_password() {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), "requirements.in", "flask\n--frobnicate\n");
        let e = read(&p).unwrap_err().to_string();
        assert!(e.contains("requirements.in:2") && e.contains("unknown option `--frobnicate`"), "{e}");

        let p = write(d.path(), "requirements.in", "-e git+https://bob:s3cret@git.example/x.git#egg=x\n");
        let e = read(&p).unwrap_err().to_string();
        assert!(e.contains("requirements.in:1") && e.contains("version control"), "{e}");
        assert!(!e.contains("s3cret"), "{e}");

        let p = write(d.path(), "requirements.in", "-f https://bob:s3cret@files.example/links.html\n");
        let e = read(&p).unwrap_err().to_string();
        assert!(e.contains("web page") && !e.contains("s3cret"), "{e}");

        let p = write(d.path(), "requirements.in", "-r https://bob:s3cret@files.example/base.txt\n");
        let e = read(&p).unwrap_err().to_string();
        assert!(e.contains("names a URL") && !e.contains("s3cret"), "{e}");
        let p = write(d.path(), "requirements.in", "-ihttps://bob:s3cret@pkgs.example/simple\nflask\n");
        let input = read(&p).unwrap();
        assert_eq!(input.options.index_url.as_deref(), Some("https://bob:s3cret@pkgs.example/simple"));
        let p = write(d.path(), "requirements.in", "-e ../common\n");
        let e = read(&p).unwrap_err().to_string();
        assert!(e.contains("another local project"), "{e}");

        // A token in the path would reach the lock's file URLs.
        let p = write(d.path(), "requirements.in", "-i https://pypi.fury.io/${FURY_TOKEN}/acct/\nflask\n");
        let e = read(&p).unwrap_err().to_string();
        assert!(e.contains("puts ${FURY_TOKEN} in the URL's path") && e.contains("requirements.in:1"), "{e}");
        let p = write(d.path(), "requirements.in", "-i https://user:${FURY_TOKEN}@pypi.fury.io/acct/\nflask\n");
        assert!(read(&p).is_ok(), "in the password it is a login");

        let p = write(d.path(), "requirements.in", "-r missing.txt\n");
        let e = read(&p).unwrap_err().to_string();
        assert!(e.contains("missing.txt") && e.contains("included by `-r` at") && e.contains(":1)"), "{e}");
    }

    #[test]
    fn an_include_cycle_is_an_error_not_a_hang() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "a.in", "-r b.in\n");
        let b = write(d.path(), "b.in", "-r a.in\n");
        let e = read(&b).unwrap_err().to_string();
        assert!(e.contains("nest too deeply"), "{e}");
    }
}

/// `dir`'s pyproject.toml, parsed: `None` when it has none. One that does
/// not parse is an error naming the file and the place, rather than a
/// project read as if it had no pyproject.toml.
pub fn pyproject(dir: &Path) -> Result<Option<toml::Table>, String> {
    let path = dir.join("pyproject.toml");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    text.parse::<toml::Table>().map(Some).map_err(|e| {
        let (line, message) = crate::error::toml_syntax(&text, &e);
        format!("{}:{line}: not valid TOML: {message}", path.display())
    })
}

/// A PEP 621 project's own requirements (pyproject.toml's `[project]
/// dependencies`), when it lists any.
pub fn project_dependencies(doc: &toml::Table) -> Option<Vec<String>> {
    let deps = doc.get("project")?.get("dependencies")?.as_array()?;
    let deps: Vec<String> = deps.iter().filter_map(|d| d.as_str().map(String::from)).collect();
    (!deps.is_empty()).then_some(deps)
}

/// The project's name as pyproject.toml gives it: `[project] name`, else
/// Poetry's `[tool.poetry] name`.
pub fn project_name(doc: &toml::Table) -> Option<&str> {
    let named = doc.get("project").and_then(|p| p.get("name"));
    named.or_else(|| doc.get("tool")?.get("poetry")?.get("name"))?.as_str()
}

/// The requirements of the project's `extras` (pyproject.toml's
/// `[project.optional-dependencies]`), an extra that names the project
/// itself (`app[web]`) read as that extra's. An extra the project lacks is
/// an error naming those it has.
pub fn project_extras(doc: &toml::Table, extras: &[String]) -> Result<Vec<String>, String> {
    let project = doc.get("project");
    let own = project_name(doc).map(crate::name::normalize);
    let table = project.and_then(|p| p.get("optional-dependencies")).and_then(|o| o.as_table());
    let mut out = Vec::new();
    let mut queue: Vec<String> = extras.to_vec();
    let mut seen = std::collections::BTreeSet::new();
    while let Some(extra) = queue.pop() {
        if !seen.insert(crate::name::normalize(&extra)) {
            continue;
        }
        let listed = table
            .and_then(|t| t.iter().find(|(k, _)| crate::name::normalize(k) == crate::name::normalize(&extra)))
            .and_then(|(_, v)| v.as_array())
            .ok_or_else(|| {
                format!(
                    "[python] extras names `{extra}`, which pyproject.toml's [project.optional-dependencies] lacks (it has: {})",
                    crate::name::listed(table.into_iter().flat_map(|t| t.keys()))
                )
            })?;
        for r in listed.iter().filter_map(|r| r.as_str()) {
            match crate::name::parse_requirement(r) {
                Ok(req) if own.as_deref() == Some(crate::name::normalize(req.name.as_ref()).as_str()) => {
                    queue.extend(req.extras.iter().map(|e| e.to_string()));
                }
                _ => out.push(r.to_string()),
            }
        }
    }
    Ok(out)
}

/// The production requirements of a Poetry project (pyproject.toml's
/// `[tool.poetry.dependencies]`, for a project that has no PEP 621
/// `[project] dependencies`) as PEP 508 requirements, with notes on what
/// was left out: Poetry's `^` and `~` constraints are written as the ranges
/// they mean, a bare version as `==`, `python` (the project's own Python)
/// and optional packages are left out but for those of the selected
/// `extras` (`[tool.poetry.extras]`), and a git, path or URL dependency is
/// an error, as a lock from indexes cannot hold it.
pub fn poetry_dependencies(doc: &toml::Table, extras: &[String]) -> Result<Option<Input>, String> {
    let Some(deps) =
        doc.get("tool").and_then(|t| t.get("poetry")).and_then(|p| p.get("dependencies")).and_then(|d| d.as_table())
    else {
        return Ok(None);
    };
    let mut out = Vec::new();
    let mut notes = Vec::new();
    // The optional packages the selected extras name.
    let poetry_extras =
        doc.get("tool").and_then(|t| t.get("poetry")).and_then(|p| p.get("extras")).and_then(|e| e.as_table());
    let mut wanted: Vec<String> = Vec::new();
    for extra in extras {
        let listed = poetry_extras.and_then(|t| t.get(extra)).and_then(|l| l.as_array()).ok_or_else(|| {
            format!(
                "[python] extras names `{extra}`, which pyproject.toml's [tool.poetry.extras] lacks (it has: {})",
                crate::name::listed(poetry_extras.into_iter().flat_map(|t| t.keys()))
            )
        })?;
        wanted.extend(listed.iter().filter_map(|n| n.as_str().map(crate::name::normalize)));
    }
    // Its package sources are its indexes: a primary (or default) one
    // instead of PyPI, the others after it, as Poetry asks them.
    let mut options = IndexOptions::default();
    let sources =
        doc.get("tool").and_then(|t| t.get("poetry")).and_then(|p| p.get("source")).and_then(|s| s.as_array());
    for source in sources.into_iter().flatten() {
        let Some(url) = source.get("url").and_then(|u| u.as_str()) else { continue };
        let priority = source.get("priority").and_then(|p| p.as_str()).unwrap_or("");
        let primary = matches!(priority, "primary" | "default")
            || source.get("default").and_then(|d| d.as_bool()) == Some(true)
            || (priority.is_empty() && source.get("secondary").and_then(|d| d.as_bool()) != Some(true));
        if primary && options.index_url.is_none() {
            options.index_url = Some(expand_env(url));
        } else {
            options.extra_index_urls.push(expand_env(url));
        }
    }
    for (name, spec) in deps {
        if name.eq_ignore_ascii_case("python") {
            continue;
        }
        let (constraint, extras, python, markers) = match spec {
            toml::Value::String(c) => (c.clone(), Vec::new(), None, None),
            toml::Value::Table(t) => {
                for source in ["git", "path", "url", "file"] {
                    if t.contains_key(source) {
                        return Err(format!(
                            "[tool.poetry.dependencies] {name} comes from a {source}; oxbuild lock resolves from indexes: publish it as a wheel (a find-links directory or an index) and require it by version"
                        ));
                    }
                }
                if t.get("optional").and_then(|o| o.as_bool()) == Some(true)
                    && !wanted.contains(&crate::name::normalize(name))
                {
                    notes.push(format!("{name} is optional (an extra's), so not locked"));
                    continue;
                }
                let extras = t
                    .get("extras")
                    .and_then(|e| e.as_array())
                    .map(|e| e.iter().filter_map(|x| x.as_str().map(String::from)).collect())
                    .unwrap_or_default();
                let version = t.get("version").and_then(|v| v.as_str()).unwrap_or("*").to_string();
                let python = t.get("python").and_then(|p| p.as_str()).map(String::from);
                let markers = t.get("markers").and_then(|m| m.as_str()).map(String::from);
                if let Some(source) = t.get("source").and_then(|s| s.as_str()) {
                    notes.push(format!(
                        "{name} is tied to the Poetry source `{source}`; oxbuild lock asks every source the project names, so a name that PyPI also has is best kept off PyPI ([python] index-url)"
                    ));
                }
                (version, extras, python, markers)
            }
            toml::Value::Array(_) => {
                return Err(format!(
                    "[tool.poetry.dependencies] {name} has several constraints (one per Python or platform); write the requirement into [project] dependencies or requirements.in with markers, and lock that"
                ));
            }
            _ => return Err(format!("[tool.poetry.dependencies] {name}: not a version constraint or a table")),
        };
        let range = poetry_range(&constraint).ok_or_else(|| {
            format!("[tool.poetry.dependencies] {name} = \"{constraint}\" is no version constraint oxbuild reads")
        })?;
        let mut requirement = name.clone();
        if !extras.is_empty() {
            requirement.push_str(&format!("[{}]", extras.join(",")));
        }
        requirement.push_str(&range);
        let mut marker: Vec<String> = Vec::new();
        if let Some(python) = python.as_deref() {
            let range = poetry_range(python).ok_or_else(|| {
                format!("[tool.poetry.dependencies] {name}: python = \"{python}\" is no constraint oxbuild reads")
            })?;
            marker.extend(range.split(',').filter(|c| !c.is_empty()).map(|c| {
                // `python_version` is major.minor: a patch needs the full one.
                let variable = if c.matches('.').count() >= 2 { "python_full_version" } else { "python_version" };
                format!("{variable} {}", quoted_version(c))
            }));
        }
        marker.extend(markers.map(|m| format!("({m})")));
        if !marker.is_empty() {
            requirement.push_str(&format!(" ; {}", marker.join(" and ")));
        }
        out.push(requirement);
    }
    Ok(Some(Input { requirements: out, notes, options, ..Default::default() }))
}

/// `>=3.8` as `>= '3.8'`, for a marker.
fn quoted_version(constraint: &str) -> String {
    let op_end = constraint.find(|c: char| c.is_ascii_digit()).unwrap_or(0);
    format!("{} '{}'", constraint[..op_end].trim(), constraint[op_end..].trim())
}

/// A Poetry constraint as a PEP 440 specifier (empty for any version):
/// `^1.2.3` is `>=1.2.3,<2.0.0`, `^0.2` is `>=0.2,<0.3`, `~1.2` is
/// `>=1.2,<1.3`, `1.2.3` is `==1.2.3`, `*` is anything; PEP 440 operators
/// stay as they are, `||` alternatives are not read.
/// A Poetry project's own Python (`[tool.poetry.dependencies] python`,
/// `^3.12`) as a PEP 440 specifier (`>=3.12,<4`).
pub fn poetry_python(doc: &toml::Table) -> Option<String> {
    let python = doc.get("tool")?.get("poetry")?.get("dependencies")?.get("python")?.as_str()?;
    poetry_range(python).map(|r| r.trim_start_matches(',').to_string()).filter(|r| !r.is_empty())
}

fn poetry_range(constraint: &str) -> Option<String> {
    // Poetry joins with a comma or a space (`>=1.0 <2.0`); an operator and
    // its version may stand apart (`>= 1.0`).
    let mut joined: Vec<String> = Vec::new();
    for piece in constraint.split([',', ' ']).map(str::trim).filter(|p| !p.is_empty()) {
        match joined.last_mut() {
            Some(last) if piece.starts_with(|c: char| c.is_ascii_digit()) && !last_is_complete(last) => {
                *last = format!("{last}{piece}");
            }
            _ => joined.push(piece.to_string()),
        }
    }
    let parts: Vec<String> = joined
        .iter()
        .map(|c| c.trim())
        .filter(|c| !c.is_empty())
        .map(|c| {
            if c == "*" {
                return Some(String::new());
            }
            let release = |v: &str| -> Option<Vec<u64>> { v.split('.').map(|n| n.parse().ok()).collect() };
            if let Some(v) = c.strip_prefix('^') {
                let nums = release(v.trim())?;
                // The first non-zero part is the one that may not grow.
                let at = nums.iter().position(|n| *n != 0).unwrap_or(nums.len().saturating_sub(1));
                let mut upper: Vec<u64> = nums[..=at].to_vec();
                upper[at] = upper[at].checked_add(1)?;
                return Some(format!(">={},<{}", v.trim(), dotted(&upper)));
            }
            if let Some(v) = c.strip_prefix("~=") {
                return Some(format!("~={}", v.trim()));
            }
            if let Some(v) = c.strip_prefix('~') {
                let nums = release(v.trim())?;
                let mut upper: Vec<u64> = if nums.len() >= 2 { nums[..2].to_vec() } else { nums[..1].to_vec() };
                let last = upper.len() - 1;
                upper[last] = upper[last].checked_add(1)?;
                return Some(format!(">={},<{}", v.trim(), dotted(&upper)));
            }
            if c.starts_with(|ch: char| ch.is_ascii_digit()) {
                return Some(format!("=={c}"));
            }
            (!c.contains("||")).then(|| c.replace(' ', ""))
        })
        .collect::<Option<Vec<String>>>()?;
    Some(parts.into_iter().filter(|p| !p.is_empty()).collect::<Vec<_>>().join(","))
}

/// Whether a constraint piece has its version (`>=1.0`), not an operator alone (`>=`).
fn last_is_complete(piece: &str) -> bool {
    piece.ends_with(|c: char| c.is_ascii_alphanumeric() || c == '*')
}

fn dotted(nums: &[u64]) -> String {
    nums.iter().map(u64::to_string).collect::<Vec<_>>().join(".")
}

#[cfg(test)]
mod poetry_tests {
    use super::*;

    #[test]
    fn poetrys_constraints_become_pep_440_ranges() {
        for (poetry, pep440) in [
            ("^1.2.3", ">=1.2.3,<2"),
            ("^0.2.3", ">=0.2.3,<0.3"),
            ("^0.0.3", ">=0.0.3,<0.0.4"),
            ("^1", ">=1,<2"),
            ("~1.2.3", ">=1.2.3,<1.3"),
            ("~1.2", ">=1.2,<1.3"),
            ("~1", ">=1,<2"),
            ("1.2.3", "==1.2.3"),
            ("*", ""),
            (">=1.0, <2.0", ">=1.0,<2.0"),
            (">=1.0 <2.0", ">=1.0,<2.0"),
            (">= 1.0", ">=1.0"),
            ("~=1.4", "~=1.4"),
        ] {
            assert_eq!(poetry_range(poetry).as_deref(), Some(pep440), "{poetry}");
        }
        assert_eq!(poetry_range("^1.0 || ^2.0"), None);
        assert_eq!(poetry_range("^18446744073709551615"), None, "no overflow");
    }

    #[test]
    fn a_poetry_projects_dependencies_are_read_as_requirements() {
        let doc: toml::Table = r#"
[tool.poetry.dependencies]
python = "^3.9"
fastapi = "^0.73.0"
uvicorn = { version = "^0.17", extras = ["standard"] }
asyncpg = { version = "^0.25", python = ">=3.8.1", markers = "sys_platform == 'linux' or sys_platform == 'darwin'" }
sentry = { version = "*", optional = true }
"#
        .parse()
        .unwrap();
        let Input { requirements, notes, .. } = poetry_dependencies(&doc, &[]).unwrap().unwrap();
        assert_eq!(
            requirements,
            [
                "asyncpg>=0.25,<0.26 ; python_full_version >= '3.8.1' and (sys_platform == 'linux' or sys_platform == 'darwin')",
                "fastapi>=0.73.0,<0.74",
                "uvicorn[standard]>=0.17,<0.18"
            ]
        );
        assert_eq!(notes, ["sentry is optional (an extra's), so not locked"]);
        // Its sources are its indexes.
        let sourced: toml::Table = "[[tool.poetry.source]]\nname = \"corp\"\nurl = \"https://pkgs.corp.example/simple/\"\npriority = \"primary\"\n\n[[tool.poetry.source]]\nname = \"mirror\"\nurl = \"https://mirror.example/simple/\"\npriority = \"supplemental\"\n\n[tool.poetry.dependencies]\nlib = { version = \"^1\", source = \"corp\" }\n"
            .parse()
            .unwrap();
        let input = poetry_dependencies(&sourced, &[]).unwrap().unwrap();
        assert_eq!(input.options.index_url.as_deref(), Some("https://pkgs.corp.example/simple/"));
        assert_eq!(input.options.extra_index_urls, ["https://mirror.example/simple/"]);
        assert!(input.notes[0].contains("tied to the Poetry source `corp`"), "{:?}", input.notes);
        let bad_python: toml::Table =
            "[tool.poetry.dependencies]\nlib = { version = \"^1\", python = \"~2.7 || ^3.6\" }\n".parse().unwrap();
        assert!(poetry_dependencies(&bad_python, &[]).unwrap_err().contains("python = \"~2.7 || ^3.6\""));
        let git: toml::Table =
            "[tool.poetry.dependencies]\nlib = { git = \"https://x.example/lib.git\" }\n".parse().unwrap();
        assert!(poetry_dependencies(&git, &[]).unwrap_err().contains("comes from a git"));
        assert!(poetry_dependencies(&toml::Table::new(), &[]).unwrap().is_none());
    }

    #[test]
    fn the_projects_extras_are_read_with_their_own_references_followed() {
        let doc: toml::Table = "[project]\nname = \"My_App\"\ndependencies = [\"flask\"]\n[project.optional-dependencies]\nmainapp = [\"gunicorn\", \"my-app[speed]\"]\nspeed = [\"gevent>=24\"]\n"
            .parse()
            .unwrap();
        assert_eq!(project_extras(&doc, &["mainapp".into()]).unwrap(), ["gunicorn", "gevent>=24"]);
        let e = project_extras(&doc, &["web".into()]).unwrap_err();
        assert!(e.contains("`web`") && e.contains("it has: mainapp, speed"), "{e}");
        // Poetry: the optional packages an extra names join the production ones.
        let poetry: toml::Table = "[tool.poetry.dependencies]\npython = \"^3.11\"\nflask = \"^3.0\"\ngunicorn = { version = \"^22.0\", optional = true }\npsycopg = { version = \"^3.1\", optional = true }\n[tool.poetry.extras]\nserver = [\"gunicorn\"]\n"
            .parse()
            .unwrap();
        let names =
            |extras: &[String]| -> Vec<String> { poetry_dependencies(&poetry, extras).unwrap().unwrap().requirements };
        assert_eq!(names(&[]), ["flask>=3.0,<4"]);
        assert_eq!(names(&["server".into()]), ["flask>=3.0,<4", "gunicorn>=22.0,<23"]);
        assert!(poetry_dependencies(&poetry, &["db".into()]).unwrap_err().contains("[tool.poetry.extras] lacks"));
    }
}
