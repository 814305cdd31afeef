//! The app's files: walked from the app directory, filtered by `[app] include`
//! and `.dockerignore`, and added to a layer under the workdir.

use std::fs;
use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
use std::path::{Component, Path, PathBuf};

use oxbuild_image::{LayerBuilder, Owner};

use crate::Error;
use crate::dockerignore::DockerIgnore;

/// Names never copied: version-control metadata differs between two clones
/// of the same commit and would break reproducibility; a checkout's
/// `__pycache__` holds bytecode of whatever Python ran there (oxbuild
/// compiles the image's own); a checkout's `node_modules` was installed for
/// the developer's machine (the dependency layer installs the lock's, for
/// the image's); an `.npmrc` may hold registry tokens, which never go into
/// an image.
const ALWAYS_SKIPPED: &[&str] = &[".git", ".hg", ".svn", "__pycache__", "node_modules", ".npmrc"];

/// What went into the layer besides the files themselves.
#[derive(Debug, Default)]
pub struct Added {
    /// Skipped sockets and fifos, for the caller to show.
    pub warnings: Vec<String>,
    /// The Python sources added: their path in the image and on disk.
    pub python: Vec<(String, PathBuf)>,
}

/// Adds the app's files under `workdir`, owned by `owner`.
pub fn add_app_files(
    layer: &mut LayerBuilder,
    root: &Path,
    include: Option<&[String]>,
    exclude: &[String],
    workdir: &str,
    owner: Owner,
) -> Result<Added, Error> {
    add_app_files_in(layer, (root, ""), include, exclude, workdir, owner)
}

/// [`add_app_files`] of the folder `within` of the project `root` (`[app]
/// root`): its contents go into `workdir`, `include` and `exclude` are
/// relative to it, and the project's `.dockerignore` applies to them as
/// to `within/…`, as Docker would read it with the project as context.
pub fn add_app_files_in(
    layer: &mut LayerBuilder,
    (project, within): (&Path, &str),
    include: Option<&[String]>,
    exclude: &[String],
    workdir: &str,
    owner: Owner,
) -> Result<Added, Error> {
    let ignore = DockerIgnore::load(project).map_err(Error::Input)?;
    let app_root = project.join(within);
    let root = if within.is_empty() { project } else { app_root.as_path() };
    let exclude: Vec<String> = exclude.iter().map(|e| clean_rel(e)).filter(|e| !e.is_empty()).collect();
    let mut walk = Walk {
        root,
        within: if within.is_empty() { String::new() } else { format!("{within}/") },
        workdir: workdir.trim_end_matches('/'),
        owner,
        ignore,
        exclude,
        layer,
        added: Added::default(),
        parents_added: String::new(),
    };
    walk.layer.dir(walk.workdir, owner, 0o755);
    match include {
        None => walk.visit_dir_children(root, "")?,
        Some(paths) => {
            check_include(root, paths)?;
            for p in paths {
                let rel = clean_rel(p);
                let path = root.join(&rel);
                if rel.is_empty() {
                    walk.visit_dir_children(root, "")?;
                } else {
                    walk.visit(&path, &rel)?;
                }
            }
        }
    }
    Ok(walk.added)
}

/// Checks that every `[app] include` path exists inside `root` (and does
/// not lead out of it through a symlink): the build checks this before it
/// fetches anything, so a wrong path fails at once.
pub fn check_include(root: &Path, include: &[String]) -> Result<(), Error> {
    for p in include {
        let rel = clean_rel(p);
        let path = root.join(&rel);
        if let Err(e) = fs::symlink_metadata(&path) {
            // ELOOP: a symlink on the way points back at itself.
            let why = match e.raw_os_error() {
                _ if e.kind() == std::io::ErrorKind::NotFound => "which does not exist".to_string(),
                Some(40) => format!("which cannot be reached: a symlink on the way loops ({e})"),
                _ => format!("which cannot be read ({e})"),
            };
            return Err(Error::Input(format!("[app] include names `{p}`, {why} in {}", root.display())));
        }
        // A directory symlink in the middle of the path could lead anywhere on the host.
        let inside = match (root.canonicalize(), path.parent().map(Path::canonicalize)) {
            (Ok(r), Some(Ok(parent))) => parent.starts_with(&r),
            _ => false,
        };
        if !rel.is_empty() && !inside {
            return Err(Error::Input(format!(
                "[app] include `{p}` goes through a symlink that leads outside {}; name the real path instead",
                root.display()
            )));
        }
    }
    Ok(())
}

fn clean_rel(p: &str) -> String {
    Path::new(p)
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("/")
}

struct Walk<'a> {
    root: &'a Path,
    /// Where `root` is in the project, with a trailing `/`, for
    /// `.dockerignore`; empty when it is the project.
    within: String,
    workdir: &'a str,
    owner: Owner,
    ignore: DockerIgnore,
    /// Paths (relative to the root) left out, with everything below them: the test files.
    exclude: Vec<String>,
    layer: &'a mut LayerBuilder,
    added: Added,
    /// The directory whose parents [`Walk::add_parents`] added last: the
    /// walk is sorted, so a directory's files share it.
    parents_added: String,
}

impl Walk<'_> {
    /// The directories between the workdir and `rel`, owned as the app's
    /// own: an include of `docs/x.yaml`, or a `.dockerignore` that leaves
    /// out a directory but lets some of its files in, adds no entry for
    /// the directory itself, and the layer would otherwise make it root's.
    /// Once per directory, not once per file in it.
    fn add_parents(&mut self, rel: &str) {
        let Some((parent, _)) = rel.rsplit_once('/') else { return };
        if parent == self.parents_added {
            return;
        }
        for (at, _) in rel.match_indices('/') {
            self.layer.dir(&format!("{}/{}", self.workdir, &rel[..at]), self.owner, 0o755);
        }
        self.parents_added = parent.to_string();
    }

    fn visit_dir_children(&mut self, dir: &Path, rel: &str) -> Result<(), Error> {
        let read = fs::read_dir(dir).map_err(|e| Error::Input(format!("reading {}: {e}", dir.display())))?;
        let mut children: Vec<PathBuf> = Vec::new();
        for entry in read {
            let entry = entry.map_err(|e| Error::Input(format!("reading {}: {e}", dir.display())))?;
            children.push(entry.path());
        }
        children.sort();
        for child in children {
            let name = child.file_name().expect("a directory entry has a name");
            let Some(name) = name.to_str() else {
                return Err(Error::Input(format!("{} has a name that is not UTF-8; rename it", child.display())));
            };
            // The build's own settings are no part of the app (unless
            // `[app] include` names them): a change to `[image] env` should
            // not make a new app layer.
            let config = rel.is_empty() && self.within.is_empty() && name == oxbuild_config::FILE_NAME;
            if ALWAYS_SKIPPED.contains(&name) || config {
                continue;
            }
            let child_rel = if rel.is_empty() { name.to_string() } else { format!("{rel}/{name}") };
            self.visit(&child, &child_rel)?;
        }
        Ok(())
    }

    fn visit(&mut self, path: &Path, rel: &str) -> Result<(), Error> {
        let meta = fs::symlink_metadata(path).map_err(|e| Error::Input(format!("reading {}: {e}", path.display())))?;
        if self.exclude.iter().any(|e| rel == e || rel.starts_with(&format!("{e}/"))) {
            return Ok(());
        }
        let ignored = self.ignore.is_ignored(&format!("{}{rel}", self.within));
        let ft = meta.file_type();
        let dest = format!("{}/{rel}", self.workdir);
        if ft.is_dir() {
            if ignored && !self.ignore.has_exceptions() {
                return Ok(());
            }
            if !ignored {
                self.add_parents(rel);
                self.layer.dir(&dest, self.owner, 0o755);
            }
            return self.visit_dir_children(path, rel);
        }
        if ignored {
            return Ok(());
        }
        self.add_parents(rel);
        if ft.is_file() {
            // Only the executable bit is meaningful across checkouts; umask-dependent
            // group/other write bits would make two clones differ.
            let mode = if meta.permissions().mode() & 0o111 != 0 { 0o755 } else { 0o644 };
            self.layer.file(&dest, path, self.owner, mode);
            if is_env_file(rel) {
                self.added.warnings.push(format!(
                    "{rel} goes into the image, where anyone who can pull it can read it; a .env file often holds secrets: add it to .dockerignore and give the values at run time"
                ));
            }
            if rel.ends_with(".py") {
                self.added.python.push((dest.clone(), path.to_path_buf()));
            }
        } else if ft.is_symlink() {
            let target = fs::read_link(path).map_err(|e| Error::Input(format!("reading {}: {e}", path.display())))?;
            let target_str = target
                .to_str()
                .ok_or_else(|| Error::Input(format!("symlink {} has a target that is not UTF-8", path.display())))?;
            if !stays_inside(rel, &target) {
                return Err(Error::Input(format!(
                    "symlink {} points outside the app directory (-> {target_str}); replace it with the file it points to, or exclude it in .dockerignore",
                    self.root.join(rel).display()
                )));
            }
            self.layer.symlink(&dest, target_str, self.owner);
        } else if ft.is_socket() || ft.is_fifo() || ft.is_block_device() || ft.is_char_device() {
            self.added
                .warnings
                .push(format!("skipped {}: sockets, fifos and devices cannot go into an image", path.display()));
        }
        Ok(())
    }
}

/// A dotenv file (`.env`, `.env.production`), not a template of one
/// (`.env.example`, `.env.sample`, `.env.template`, `.env.dist`, and so
/// `.env.local.example`: a template's word anywhere after `.env`).
fn is_env_file(rel: &str) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    match name.strip_prefix(".env") {
        Some("") => true,
        Some(rest) => {
            let suffix = rest.strip_prefix('.').unwrap_or("");
            let template = |word: &str| ["example", "sample", "template", "dist", "defaults"].contains(&word);
            !suffix.is_empty() && !suffix.split('.').any(template)
        }
        None => false,
    }
}

/// True when the symlink at `rel` with `target` resolves (lexically) inside the root.
fn stays_inside(rel: &str, target: &Path) -> bool {
    if target.is_absolute() {
        return false;
    }
    let mut depth: i64 = rel.matches('/').count() as i64; // the link's parent directory depth
    for c in target.components() {
        match c {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            _ => {}
        }
        if depth < 0 {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlink_escape_detection() {
        assert!(stays_inside("a/link", Path::new("../b")));
        assert!(stays_inside("link", Path::new("sub/file")));
        assert!(!stays_inside("link", Path::new("../outside")));
        assert!(!stays_inside("a/link", Path::new("../../x")));
        assert!(!stays_inside("link", Path::new("/etc/passwd")));
    }

    #[test]
    fn dotenv_files_are_told_apart_from_their_templates() {
        for secret in [".env", "config/.env", ".env.production", ".env.local"] {
            assert!(is_env_file(secret), "{secret}");
        }
        for other in [
            ".env.example",
            "a/.env.sample",
            ".env.template",
            ".env.dist",
            ".envrc",
            "env.py",
            ".env.",
            ".env.local.example",
        ] {
            assert!(!is_env_file(other), "{other}");
        }
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(".env"), "SECRET_KEY=x").unwrap();
        fs::write(dir.path().join(".env.example"), "SECRET_KEY=").unwrap();
        let mut layer = LayerBuilder::new(0, Owner::ROOT);
        let added = add_app_files(&mut layer, dir.path(), None, &[], "/app", Owner::ROOT).unwrap();
        assert_eq!(added.warnings.len(), 1, "{:?}", added.warnings);
        assert!(added.warnings[0].starts_with(".env goes into the image") && !added.warnings[0].contains("SECRET_KEY"));
    }

    /// `[app] root`: a folder's contents go into the workdir, and the
    /// project's `.dockerignore` still applies to them by their path in it.
    #[test]
    fn a_folder_of_the_project_can_be_the_app() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("shynet/core")).unwrap();
        fs::write(root.join("shynet/manage.py"), "").unwrap();
        fs::write(root.join("shynet/core/views.py"), "").unwrap();
        fs::write(root.join("shynet/local.cfg"), "").unwrap();
        fs::write(root.join("README.md"), "").unwrap();
        fs::write(root.join(".dockerignore"), "shynet/local.cfg\nmanage.py\n").unwrap();
        let names = |include: Option<&[String]>| {
            let mut layer = LayerBuilder::new(0, Owner::ROOT);
            add_app_files_in(&mut layer, (root, "shynet"), include, &[], "/usr/src/shynet", Owner::ROOT).unwrap();
            let tar = layer.write_tar(Vec::new()).unwrap();
            let mut archive = tar::Archive::new(tar.as_slice());
            let entries = archive.entries().unwrap().map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned());
            entries.filter(|n| !n.ends_with('/')).collect::<Vec<_>>()
        };
        // `manage.py` in .dockerignore means the project's root one, not shynet's.
        assert_eq!(names(None), ["usr/src/shynet/core/views.py", "usr/src/shynet/manage.py"]);
        assert_eq!(names(Some(&["core".to_string()])), ["usr/src/shynet/core/views.py"]);
    }

    #[test]
    fn walks_with_ignore_include_and_modes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("pkg/sub")).unwrap();
        fs::create_dir_all(root.join("empty")).unwrap();
        fs::create_dir_all(root.join(".git")).unwrap();
        fs::write(root.join(".git/HEAD"), "x").unwrap();
        fs::write(root.join("pkg/app.py"), "print(1)").unwrap();
        fs::write(root.join("pkg/run.sh"), "#!/bin/sh").unwrap();
        fs::set_permissions(root.join("pkg/run.sh"), fs::Permissions::from_mode(0o775)).unwrap();
        fs::write(root.join("pkg/sub/x.pyc"), "junk").unwrap();
        fs::write(root.join(".dockerignore"), "**/*.pyc\n").unwrap();
        std::os::unix::fs::symlink("app.py", root.join("pkg/alias.py")).unwrap();
        fs::write(root.join("oxbuild.toml"), "[image]\n").unwrap();
        fs::write(root.join("pkg/oxbuild.toml"), "data = 1\n").unwrap();

        let mut layer = LayerBuilder::new(0, Owner::ROOT);
        add_app_files(&mut layer, root, None, &[], "/app", Owner { uid: 1000, gid: 1000 }).unwrap();
        let tar = layer.write_tar(Vec::new()).unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let got: Vec<(String, u32, u64)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    e.header().mode().unwrap(),
                    e.header().uid().unwrap(),
                )
            })
            .collect();
        let names: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
        assert!(names.contains(&"app/empty/"), "empty dirs kept: {names:?}");
        assert!(names.contains(&"app/pkg/alias.py"));
        assert!(!names.iter().any(|n| n.ends_with(".pyc")), "{names:?}");
        assert!(!names.iter().any(|n| n.contains(".git/")), "{names:?}");
        assert!(!names.contains(&"app/oxbuild.toml"), "the build's settings stay out: {names:?}");
        assert!(names.contains(&"app/pkg/oxbuild.toml"), "a file of that name elsewhere is the app's");
        let run = got.iter().find(|g| g.0 == "app/pkg/run.sh").unwrap();
        assert_eq!((run.1, run.2), (0o755, 1000));
        let py = got.iter().find(|g| g.0 == "app/pkg/app.py").unwrap();
        assert_eq!(py.1, 0o644);

        // A file included alone, or let in past an ignored directory: the
        // directories above it are the app's too, not root's.
        fs::create_dir_all(root.join("docs/deep")).unwrap();
        fs::write(root.join("docs/deep/x.yaml"), "a: 1").unwrap();
        fs::create_dir_all(root.join("searx")).unwrap();
        fs::write(root.join("searx/webapp.py"), "app = 1").unwrap();
        let owners = |layer: &LayerBuilder| -> Vec<(String, u64)> {
            let tar = layer.write_tar(Vec::new()).unwrap();
            let mut archive = tar::Archive::new(tar.as_slice());
            let entries = archive.entries().unwrap().map(|e| e.unwrap());
            entries.map(|e| (e.path().unwrap().to_string_lossy().into_owned(), e.header().uid().unwrap())).collect()
        };
        let app = Owner { uid: 1000, gid: 1000 };
        let mut included = LayerBuilder::new(0, Owner::ROOT);
        add_app_files(&mut included, root, Some(&["docs/deep/x.yaml".to_string()]), &[], "/app", app).unwrap();
        let got = owners(&included);
        for dir in ["app/", "app/docs/", "app/docs/deep/"] {
            assert!(got.contains(&(dir.to_string(), 1000)), "{dir}: {got:?}");
        }
        fs::write(root.join(".dockerignore"), "*\n!searx/**\n").unwrap();
        let mut excepted = LayerBuilder::new(0, Owner::ROOT);
        add_app_files(&mut excepted, root, None, &[], "/app", app).unwrap();
        let got = owners(&excepted);
        assert!(got.contains(&("app/searx/".to_string(), 1000)), "{got:?}");
        assert!(got.contains(&("app/searx/webapp.py".to_string(), 1000)), "{got:?}");
        assert!(!got.iter().any(|(p, _)| p.starts_with("app/docs")), "{got:?}");
        fs::write(root.join(".dockerignore"), "**/*.pyc\n").unwrap();

        let mut only = LayerBuilder::new(0, Owner::ROOT);
        let e = add_app_files(&mut only, root, Some(&["nope".to_string()]), &[], "/app", Owner::ROOT).unwrap_err();
        assert!(e.to_string().contains("`nope`"), "{e}");
    }

    #[test]
    fn fifos_and_sockets_are_skipped_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("app.py"), "x").unwrap();
        let ok = std::process::Command::new("mkfifo").arg(dir.path().join("pipe")).status().unwrap().success();
        assert!(ok, "mkfifo");
        let _socket = std::os::unix::net::UnixListener::bind(dir.path().join("sock")).unwrap();
        let mut layer = LayerBuilder::new(0, Owner::ROOT);
        let added = add_app_files(&mut layer, dir.path(), None, &[], "/app", Owner::ROOT).unwrap();
        assert_eq!(added.python, vec![("/app/app.py".to_string(), dir.path().join("app.py"))]);
        let warnings = added.warnings;
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings.iter().any(|w| w.contains("pipe")) && warnings.iter().any(|w| w.contains("sock")));
        assert_eq!(layer.len(), 2, "the workdir and app.py only");
    }

    #[test]
    fn include_through_a_symlinked_directory_is_refused() {
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret"), "token").unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).unwrap();
        let mut layer = LayerBuilder::new(0, Owner::ROOT);
        let e = add_app_files(&mut layer, dir.path(), Some(&["link/secret".to_string()]), &[], "/app", Owner::ROOT)
            .unwrap_err()
            .to_string();
        assert!(e.contains("link/secret") && e.contains("outside"), "{e}");
    }

    #[test]
    fn escaping_symlink_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("pw")).unwrap();
        let mut layer = LayerBuilder::new(0, Owner::ROOT);
        let e = add_app_files(&mut layer, dir.path(), None, &[], "/app", Owner::ROOT).unwrap_err().to_string();
        assert!(e.contains("pw") && e.contains("outside"), "{e}");
    }
}
