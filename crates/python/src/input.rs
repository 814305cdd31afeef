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
    let file = path.display().to_string();
    if depth > 10 {
        return Err(Error::Lock { file, line: 0, message: "`-r`/`-c` includes nest too deeply (a cycle?)".into() });
    }
    let text = std::fs::read_to_string(path).map_err(|e| Error::Lock {
        file: file.clone(),
        line: 0,
        message: crate::error::unreadable(&e),
    })?;
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
        // pip's short forms also come glued: `-rbase.txt`, `-cconstraints.txt`.
        let (opt, value) = match opt {
            _ if opt.len() > 2 && (opt.starts_with("-r") || opt.starts_with("-c")) && !opt.starts_with("--") => {
                (&opt[..2], Some(opt[2..].trim()))
            }
            _ => (opt, value),
        };
        let needs = || value.filter(|v| !v.is_empty()).ok_or_else(|| err(format!("`{opt}` needs a value")));
        let included = |name: &str| dir.join(name);
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
            "-i" | "--index-url" => out.options.index_url = Some(expand_env(needs()?)),
            "--extra-index-url" => out.options.extra_index_urls.push(expand_env(needs()?)),
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
                out.notes.push(format!(
                    "{file}:{line_no}: `{opt} {target}` left out of the lock: a local project is installed by the build itself when it is a package ([python] install-project), not locked"
                ));
            }
            // Choices of how pip installs, not of what it resolves.
            "--trusted-host" | "--prefer-binary" | "--only-binary" | "--no-binary" | "--require-hashes"
            | "--use-feature" => {}
            other => {
                return Err(err(format!(
                    "unknown option `{other}`; a lock input takes requirements and -r, -c, -i/--index-url, --extra-index-url, -f/--find-links, --no-index and --pre"
                )));
            }
        }
    }
    Ok(())
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
