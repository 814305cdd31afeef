//! How a project runs by its framework's conventions, found by reading its
//! text, never by importing it: Django (`manage.py` and a `wsgi.py`),
//! FastAPI and Starlette (an app object), Flask (an app object or a
//! `create_app` factory), a package's `__main__.py`, and `[project.scripts]`.

use std::path::{Path, PathBuf};

/// A way to run the project that its conventions give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Convention {
    /// What was found, for the comment: `Django (manage.py, mysite/wsgi.py)`.
    pub what: String,
    /// The command.
    pub argv: Vec<String>,
    /// The server the command needs in the lock, if any (`gunicorn`, `uvicorn`).
    pub server: Option<&'static str>,
}

/// The port a convention's server listens on.
pub const PORT: u16 = 8000;

/// Streamlit's own port.
const STREAMLIT_PORT: u16 = 8501;

/// Directories never searched: environments, caches, tests, build output.
const SKIP: [&str; 12] = [
    ".git",
    ".venv",
    "venv",
    "env",
    "node_modules",
    "__pycache__",
    "build",
    "dist",
    "site-packages",
    "tests",
    "test",
    "docs",
];

/// The Python files of the project, shallowest first, at most four levels down.
pub(crate) fn python_files(dir: &Path) -> Vec<PathBuf> {
    source_files(dir, &["py"])
}

/// The project's files with one of `extensions`, shallowest first, at most
/// four levels down, environments and build output left out.
pub(crate) fn source_files(dir: &Path, extensions: &[&str]) -> Vec<PathBuf> {
    fn walk(dir: &Path, depth: usize, extensions: &[&str], out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
        entries.sort_by_key(|e| e.file_name());
        let mut dirs = Vec::new();
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() && depth < 4 && !name.starts_with('.') && !SKIP.contains(&name.as_str()) {
                dirs.push(e.path());
            } else if ft.is_file()
                && name.rsplit_once('.').is_some_and(|(_, ext)| extensions.contains(&ext))
                && e.metadata().is_ok_and(|m| m.len() < 1 << 20)
            {
                out.push(e.path());
            }
        }
        for d in dirs {
            walk(&d, depth + 1, extensions, out);
        }
    }
    let mut out = Vec::new();
    walk(dir, 0, extensions, &mut out);
    out.sort_by_key(|p| (p.components().count(), p.clone()));
    out
}

/// The importable module of `file` and the directory it is imported from
/// (relative to `root`; empty for the root itself): packages are followed up
/// while they have an `__init__.py`.
fn module_of(root: &Path, file: &Path) -> Option<(String, String)> {
    let rel = file.strip_prefix(root).ok()?;
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let last = parts.pop()?.strip_suffix(".py")?.to_string();
    let mut module = vec![last];
    while let Some(dir) = parts.last() {
        let path: PathBuf = parts.iter().collect();
        if !root.join(&path).join("__init__.py").is_file() || dir.contains(['-', '.', ' ']) {
            break;
        }
        module.insert(0, parts.pop()?);
    }
    if module.len() > 1 && module.last().is_some_and(|m| m == "__init__") {
        module.pop();
    }
    Some((module.join("."), parts.join("/")))
}

/// `NAME = Factory(` at the start of a line, for the given factory names:
/// the variable's name.
fn assigned(text: &str, factories: &[&str]) -> Option<String> {
    text.lines().find_map(|line| {
        if line.starts_with([' ', '\t']) {
            return None;
        }
        let (lhs, rhs) = line.split_once('=')?;
        let name = lhs.split(':').next()?.trim();
        let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        let rhs = rhs.trim_start();
        (valid && factories.iter().any(|f| rhs.starts_with(&format!("{f}(")) || rhs.contains(&format!(".{f}("))))
            .then(|| name.to_string())
    })
}

/// The command that serves `target` (`module:app`) with `server`,
/// imported from `chdir` (relative to the workdir; empty for the workdir).
fn serve(server: &'static str, target: String, chdir: String) -> Vec<String> {
    let mut argv: Vec<String> = match server {
        "uvicorn" => vec!["uvicorn".into(), "--host".into(), "0.0.0.0".into(), "--port".into(), PORT.to_string()],
        _ => vec![server.into(), "--bind".into(), format!("0.0.0.0:{PORT}")],
    };
    if !chdir.is_empty() {
        argv.extend([if server == "uvicorn" { "--app-dir" } else { "--chdir" }.to_string(), chdir]);
    }
    argv.push(target);
    argv
}

/// A Django site among `files`: its manage.py (at the root, or one folder
/// down as netbox has it) and the wsgi.py that holds its `application`.
fn django_site(dir: &Path, files: &[PathBuf]) -> Option<(PathBuf, PathBuf)> {
    let manage = files.iter().find(|p| {
        p.file_name().is_some_and(|n| n == "manage.py")
            && p.parent().is_some_and(|d| d == dir || d.parent() == Some(dir))
    })?;
    let site = manage.parent()?;
    let wsgi = files.iter().find(|p| {
        p.starts_with(site)
            && p.file_name().is_some_and(|n| n == "wsgi.py")
            && std::fs::read_to_string(p).is_ok_and(|t| t.contains("application"))
    })?;
    Some((manage.clone(), wsgi.clone()))
}

/// For a Django site whose wsgi.py leaves `DJANGO_SETTINGS_MODULE` unset
/// (gunicorn, which runs it, does not read manage.py): the module
/// manage.py defaults it to, if any, and the settings modules the site has
/// (`babybuddy.settings.base`, ...), for a note. None when wsgi.py sets
/// it, or for no Django site.
pub fn django_settings_unset(dir: &Path) -> Option<(Option<String>, Vec<String>)> {
    let files = python_files(dir);
    let (manage, wsgi) = django_site(dir, &files)?;
    if std::fs::read_to_string(&wsgi).is_ok_and(|t| t.contains("DJANGO_SETTINGS_MODULE")) {
        return None;
    }
    let default = std::fs::read_to_string(&manage).ok().and_then(|t| settings_default(&t));
    let package = wsgi.parent()?;
    let mut modules: Vec<String> = files
        .iter()
        .filter(|p| p.parent() == Some(&package.join("settings")) && p.file_name().is_some_and(|n| n != "__init__.py"))
        .chain(files.iter().filter(|p| *p == &package.join("settings.py")))
        .filter_map(|p| module_of(dir, p).map(|(m, _)| m))
        .collect();
    modules.sort();
    Some((default, modules))
}

/// The module a manage.py sets `DJANGO_SETTINGS_MODULE` to
/// (`os.environ.setdefault("DJANGO_SETTINGS_MODULE", "site.settings")`,
/// or an assignment): the first string after the name on its line.
fn settings_default(text: &str) -> Option<String> {
    text.lines().filter(|line| !line.trim_start().starts_with('#')).find_map(|line| {
        let after = line.split_once("DJANGO_SETTINGS_MODULE")?.1;
        let after = after.trim_start_matches(['"', '\'']);
        let start = after.find(['"', '\''])?;
        let quote = after[start..].chars().next()?;
        let rest = &after[start + 1..];
        let module = &rest[..rest.find(quote)?];
        (!module.is_empty() && module.chars().all(|c| c.is_alphanumeric() || c == '.' || c == '_'))
            .then(|| module.to_string())
    })
}

/// The project's way to run, by convention; None when none applies.
pub fn detect(dir: &Path) -> Option<Convention> {
    let files = python_files(dir);
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();

    // Django: manage.py (at the root, or one folder down as netbox has it)
    // and the project's wsgi.py (the settings package) beside it.
    if let Some((_, wsgi)) = django_site(dir, &files)
        && let Some((module, chdir)) = module_of(dir, &wsgi)
    {
        let argv = serve("gunicorn", format!("{module}:application"), chdir);
        let shown = wsgi.strip_prefix(dir).unwrap_or(&wsgi).display();
        return Some(Convention { what: format!("Django (manage.py, {shown})"), argv, server: Some("gunicorn") });
    }
    // FastAPI or Starlette: an ASGI app object, served by uvicorn.
    for f in &files {
        let text = read(f);
        if !(text.contains("FastAPI") || text.contains("Starlette")) {
            continue;
        }
        if let Some(var) = assigned(&text, &["FastAPI", "Starlette"])
            && let Some((module, chdir)) = module_of(dir, f)
        {
            let argv = serve("uvicorn", format!("{module}:{var}"), chdir);
            let shown = f.strip_prefix(dir).unwrap_or(f).display();
            return Some(Convention { what: format!("an ASGI app in {shown}"), argv, server: Some("uvicorn") });
        }
    }
    // Flask: a create_app factory, or else an app object. The factory
    // first: a module may make the object at the top and register its
    // routes only in the factory.
    for f in &files {
        let text = read(f);
        if !text.contains("Flask") {
            continue;
        }
        // A factory gunicorn can call with no arguments: each parameter has a default.
        let callable = |l: &str| {
            let params = l.strip_prefix("def create_app(").and_then(|r| r.split_once(')')).map(|(p, _)| p);
            params.is_some_and(|p| {
                p.split(',').map(str::trim).all(|p| p.is_empty() || p.contains('=') || p.starts_with('*'))
            })
        };
        let factory = text.lines().any(callable).then(|| "create_app()".to_string());
        let target = factory.or_else(|| assigned(&text, &["Flask"]));
        if let Some(target) = target
            && let Some((module, chdir)) = module_of(dir, f)
        {
            let argv = serve("gunicorn", format!("{module}:{target}"), chdir);
            let shown = f.strip_prefix(dir).unwrap_or(f).display();
            return Some(Convention { what: format!("a Flask app in {shown}"), argv, server: Some("gunicorn") });
        }
    }
    // Streamlit (after the web frameworks: a backend's demo UI is no app
    // of its own): a script that imports it, run by `streamlit run` on its own
    // port (`streamlit_app.py` first, its usual name).
    let imports_streamlit =
        |text: &str| text.lines().any(|l| l.starts_with("import streamlit") || l.starts_with("from streamlit import"));
    let mut scripts: Vec<&PathBuf> = files.iter().filter(|f| imports_streamlit(&read(f))).collect();
    scripts.sort_by_key(|f| f.file_name().is_none_or(|n| n != "streamlit_app.py"));
    if let Some(script) = scripts.first() {
        let rel = script.strip_prefix(dir).unwrap_or(script).display().to_string();
        let argv =
            ["streamlit", "run", &rel, "--server.port", &STREAMLIT_PORT.to_string(), "--server.address", "0.0.0.0"]
                .map(String::from)
                .to_vec();
        return Some(Convention { what: format!("a Streamlit app in {rel}"), argv, server: Some("streamlit") });
    }

    // A package that runs with -m.
    if let Some(main) = files.iter().find(|p| p.file_name().is_some_and(|n| n == "__main__.py"))
        && let Some((module, _)) = module_of(dir, main)
        && let Some(package) = module.strip_suffix(".__main__")
    {
        return Some(Convention {
            what: format!("{}", main.strip_prefix(dir).unwrap_or(main).display()),
            argv: vec!["python3".into(), "-m".into(), package.to_string()],
            server: None,
        });
    }
    // A console script of the project (installed with the project).
    if let Ok(text) = std::fs::read_to_string(dir.join("pyproject.toml"))
        && let Ok(doc) = text.parse::<toml::Table>()
        && let Some(name) = doc
            .get("project")
            .and_then(|p| p.get("scripts"))
            .and_then(|s| s.as_table())
            .and_then(|s| s.keys().next().cloned())
    {
        return Some(Convention { what: format!("[project.scripts] {name}"), argv: vec![name], server: None });
    }
    node(dir)
}

/// The port a Node.js app listens on when it says so plainly:
/// `PORT || 3000`, `PORT ?? 3000` or `.listen(3000`.
pub fn node_port(dir: &Path) -> Option<u16> {
    for f in source_files(dir, &["js", "mjs", "cjs", "ts"]) {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        for marker in ["PORT || ", "PORT ?? ", ".listen("] {
            for (i, _) in text.match_indices(marker) {
                let digits: String = text[i + marker.len()..].chars().take_while(char::is_ascii_digit).collect();
                if let Ok(port) = digits.parse::<u16>()
                    && port > 0
                {
                    return Some(port);
                }
            }
        }
    }
    None
}

/// A Node.js app: package.json with a lock, started as its `start` script
/// says when that is a plain `node ...` command, else `node <main>`.
fn node(dir: &Path) -> Option<Convention> {
    let text = std::fs::read_to_string(dir.join("package.json")).ok()?;
    let package: serde_json::Value = serde_json::from_str(&text).ok()?;
    let argv = oxbuild_node::entrypoint(&package, dir)?;
    let what = if oxbuild_node::script(&package, "start")
        .is_some_and(|s| s.split_whitespace().eq(argv.iter().map(String::as_str)))
    {
        "package.json's start script"
    } else {
        "package.json's main"
    };
    Some(Convention { what: what.to_string(), argv, server: None })
}

/// A health route the project's code names (`/health`, `/healthz`, ...), if
/// any, and whether it is declared on a router or blueprint (`router.get`,
/// `bp.route`), which may be mounted under a prefix (`/api`): the path is
/// then a guess.
pub fn health_route(dir: &Path) -> Option<(String, bool)> {
    const ROUTES: [&str; 6] = ["/healthz", "/health", "/healthcheck", "/ping", "/status", "/ready"];
    for f in source_files(dir, &["py", "js", "mjs", "cjs", "ts"]) {
        let Ok(text) = std::fs::read_to_string(&f) else { continue };
        // The route as the first argument of what declares it: a decorator
        // (`@app.get("/health")`), a Django URL pattern (`path("health/"`,
        // served at "/health/"), Express's `app.get('/health'`. Not a URL
        // the code merely builds (`SITE_ROOT + "/ping/"`). The callee
        // before it says whether it is the app's own.
        let declared = |s: &str| {
            ["\"", "'"].iter().find_map(|q| {
                let at = text.find(&format!("({q}{s}{q}"))?;
                let callee = text[..at].rsplit(|c: char| c.is_whitespace() || c == '@').next().unwrap_or("");
                let object = callee.rsplit_once('.').map(|(o, _)| o.rsplit('.').next().unwrap_or(o));
                Some(object.is_some_and(|o| !["app", "application", "server", "api"].contains(&o)))
            })
        };
        for route in ROUTES {
            if let Some(routed) = declared(route) {
                return Some((route.to_string(), routed));
            }
            let bare = &route[1..];
            if let Some(routed) = declared(&format!("{bare}/")).or_else(|| declared(&format!("{route}/"))) {
                return Some((format!("{route}/"), routed));
            }
        }
    }
    None
}

/// The path to probe when the code declares no health route: `/` when a
/// route declares it; else the interactive docs of a FastAPI app (served at
/// `/docs` unless `docs_url` moves them), since an API whose routes all sit
/// under a prefix answers `/` with 404; else `/`.
pub fn fallback_route(dir: &Path) -> String {
    let mut fastapi_docs = false;
    for f in source_files(dir, &["py", "js", "mjs", "cjs", "ts"]) {
        let Ok(text) = std::fs::read_to_string(&f) else { continue };
        let declares_root = ["get", "route", "api_route", "path", "Route"].iter().any(|m| {
            text.contains(&format!(".{m}(\"/\""))
                || text.contains(&format!(".{m}('/'"))
                || text.contains(&format!("{m}(\"/\""))
        });
        if declares_root {
            return "/".into();
        }
        fastapi_docs |= text.contains("FastAPI(") && !text.contains("docs_url");
    }
    if fastapi_docs { "/docs".into() } else { "/".into() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::write;

    #[test]
    fn a_django_site_one_folder_down_wins_over_a_packages_main() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            &[
                ("netbox/manage.py", "import os\n"),
                ("netbox/netbox/__init__.py", ""),
                ("netbox/netbox/__main__.py", "from .cli import main\nmain()\n"),
                ("netbox/netbox/wsgi.py", "application = get_wsgi_application()\n"),
            ],
        );
        let c = detect(dir.path()).unwrap();
        assert_eq!(c.argv, ["gunicorn", "--bind", "0.0.0.0:8000", "--chdir", "netbox", "netbox.wsgi:application"]);
    }

    #[test]
    fn a_streamlit_script_is_run_by_streamlit_on_its_port_and_probed_at_its_health() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            &[
                ("helpers.py", "def f():\n    return 1\n"),
                ("streamlit_app.py", "from collections import namedtuple\nimport streamlit as st\nst.write('hi')\n"),
            ],
        );
        let c = detect(dir.path()).unwrap();
        assert_eq!(
            c.argv,
            ["streamlit", "run", "streamlit_app.py", "--server.port", "8501", "--server.address", "0.0.0.0"]
        );
        assert_eq!(c.server, Some("streamlit"));
        // A web app beside a Streamlit demo is the app.
        write(
            dir.path(),
            &[("api/main.py", "from fastapi import FastAPI\napp = FastAPI()\n"), ("api/__init__.py", "")],
        );
        assert_eq!(detect(dir.path()).unwrap().argv[0], "uvicorn");
    }

    #[test]
    fn without_a_health_route_a_fastapi_app_is_probed_at_its_docs() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            &[
                (
                    "app/main.py",
                    "from fastapi import FastAPI\napp = FastAPI(title=\"x\")\napp.include_router(api, prefix=\"/api\")\n",
                ),
                ("app/api.py", "@router.get(\"/articles\")\ndef list_articles():\n    pass\n"),
            ],
        );
        assert_eq!(health_route(dir.path()), None);
        assert_eq!(fallback_route(dir.path()), "/docs");
        // A root route, or docs moved elsewhere: the root.
        write(dir.path(), &[("app/api.py", "@app.get(\"/\")\ndef home():\n    pass\n")]);
        assert_eq!(fallback_route(dir.path()), "/");
        write(
            dir.path(),
            &[("app/api.py", ""), ("app/main.py", "from fastapi import FastAPI\napp = FastAPI(docs_url=None)\n")],
        );
        assert_eq!(fallback_route(dir.path()), "/");
    }

    /// babybuddy: the deployment sets DJANGO_SETTINGS_MODULE; init names
    /// the settings modules to choose from.
    #[test]
    fn django_settings_left_to_the_deployment_are_found() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            &[
                ("manage.py", "from django.core.management import execute_from_command_line\n"),
                ("babybuddy/__init__.py", ""),
                ("babybuddy/wsgi.py", "application = get_wsgi_application()\n"),
                ("babybuddy/settings/__init__.py", ""),
                ("babybuddy/settings/base.py", ""),
                ("babybuddy/settings/production.py", ""),
            ],
        );
        let modules = vec!["babybuddy.settings.base".to_string(), "babybuddy.settings.production".to_string()];
        assert_eq!(django_settings_unset(dir.path()), Some((None, modules.clone())));
        // A manage.py that sets a default (pinry's is its development
        // settings): gunicorn runs wsgi.py, which still sets none.
        write(
            dir.path(),
            &[("manage.py", "os.environ.setdefault(\"DJANGO_SETTINGS_MODULE\", \"babybuddy.settings.base\")\n")],
        );
        assert_eq!(django_settings_unset(dir.path()), Some((Some("babybuddy.settings.base".to_string()), modules)));
        assert_eq!(settings_default("os.environ['DJANGO_SETTINGS_MODULE'] = 'a.settings'"), Some("a.settings".into()));
        assert_eq!(settings_default("# DJANGO_SETTINGS_MODULE is read from 'settings.py'"), None);
        // A wsgi.py that sets it, as startproject writes it: nothing to say.
        write(
            dir.path(),
            &[("babybuddy/wsgi.py", "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'babybuddy.settings.base')\n")],
        );
        assert_eq!(django_settings_unset(dir.path()), None);
    }

    #[test]
    fn django_runs_its_wsgi_application_with_gunicorn() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            &[
                ("manage.py", "import os\n"),
                ("mysite/__init__.py", ""),
                ("mysite/wsgi.py", "application = get_wsgi_application()\n"),
                ("mysite/urls.py", "urlpatterns = [path(\"healthz/\", views.ok)]\n"),
            ],
        );
        let c = detect(dir.path()).unwrap();
        assert_eq!(c.argv, ["gunicorn", "--bind", "0.0.0.0:8000", "mysite.wsgi:application"]);
        assert_eq!(health_route(dir.path()), Some(("/healthz/".to_string(), false)));
        // A URL the code builds is no route.
        write(
            dir.path(),
            &[("mysite/urls.py", "urlpatterns = []\n"), ("mysite/settings.py", "PING = ROOT + \"/ping/\"\n")],
        );
        assert_eq!(health_route(dir.path()), None);
    }

    #[test]
    fn fastapi_under_backend_runs_with_uvicorn_from_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            &[
                ("backend/app/__init__.py", ""),
                (
                    "backend/app/main.py",
                    "from fastapi import FastAPI\n\napp = FastAPI(title=\"x\")\n\n@app.get(\"/health\")\ndef ok():\n    return {}\n",
                ),
            ],
        );
        let c = detect(dir.path()).unwrap();
        assert_eq!(c.argv, ["uvicorn", "--host", "0.0.0.0", "--port", "8000", "--app-dir", "backend", "app.main:app"]);
        assert_eq!(c.server, Some("uvicorn"));
        assert_eq!(health_route(dir.path()), Some(("/health".to_string(), false)));
        // On a router (kutt's Express routes, mounted under /api): a guess.
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &[("server/routes.js", "router.get(\"/health\", (req, res) => res.send(\"OK\"));\n")]);
        assert_eq!(health_route(dir.path()), Some(("/health".to_string(), true)));
    }

    #[test]
    fn flask_factories_main_modules_and_scripts() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            &[("web/__init__.py", "from flask import Flask\n\ndef create_app():\n    return Flask(__name__)\n")],
        );
        assert_eq!(detect(dir.path()).unwrap().argv, ["gunicorn", "--bind", "0.0.0.0:8000", "web:create_app()"]);
        // An object made at the top, its routes registered in the factory: the factory.
        let both = tempfile::tempdir().unwrap();
        write(
            both.path(),
            &[(
                "web/__init__.py",
                "from flask import Flask\napp = Flask(__name__)\n\ndef create_app():\n    app.register_blueprint(bp)\n    return app\n",
            )],
        );
        assert_eq!(detect(both.path()).unwrap().argv, ["gunicorn", "--bind", "0.0.0.0:8000", "web:create_app()"]);
        // One that needs an argument cannot be called so: the object.
        write(
            both.path(),
            &[(
                "web/__init__.py",
                "from flask import Flask\napp = Flask(__name__)\n\ndef create_app(config_name):\n    return app\n",
            )],
        );
        assert_eq!(detect(both.path()).unwrap().argv, ["gunicorn", "--bind", "0.0.0.0:8000", "web:app"]);
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &[("tool/__init__.py", ""), ("tool/__main__.py", "print(1)\n")]);
        assert_eq!(detect(dir.path()).unwrap().argv, ["python3", "-m", "tool"]);
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &[("pyproject.toml", "[project]\nname = \"x\"\n[project.scripts]\nserve = \"x:main\"\n")]);
        assert_eq!(detect(dir.path()).unwrap().argv, ["serve"]);
        assert_eq!(detect(tempfile::tempdir().unwrap().path()), None);
    }
}
