//! Node.js for oxbuild: a `node_modules` layer made from a project's
//! `package-lock.json` (or `npm-shrinkwrap.json`), for the Node, CPU and C
//! library of the base image, with no npm and no container.
//!
//! [`plan`] chooses what to install (production or with dev dependencies;
//! optional packages for another platform skipped; install scripts and
//! `engines.node` checked) and keys the layer; [`install::write`] fetches,
//! verifies and unpacks it.

pub mod install;
pub mod lockfile;
pub mod npmrc;
pub mod target;

use std::path::Path;

pub use install::{Installed, LayerSettings, Written};
pub use lockfile::{Lock, Package};
pub use npmrc::Npmrc;
pub use target::Target;

/// Bumped when the layer's contents change for the same inputs.
pub const LAYER_FORMAT: &str = "node-modules-v1";

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The lock cannot be read or names something oxbuild cannot install.
    #[error("{0}")]
    Lock(String),
    /// An `.npmrc` or `[node]` setting.
    #[error("{0}")]
    Config(String),
    /// The base image.
    #[error("{0}")]
    Target(String),
    /// A package does not fit (install scripts, engines, platform).
    #[error("{0}")]
    Package(String),
    /// A tarball could not be fetched.
    #[error("{0}")]
    Fetch(String),
    /// A tarball does not match the lock's integrity.
    #[error("{0}")]
    Integrity(String),
    /// The store or a layer.
    #[error(transparent)]
    Image(#[from] oxbuild_image::Error),
}

/// What to install, and the settings the layer's content depends on.
#[derive(Debug, Clone)]
pub struct Options {
    /// Dev dependencies too (the test variant, or `[node] include-dev`).
    pub include_dev: bool,
    /// Packages whose install scripts are accepted unrun.
    pub allow_install_scripts: Vec<String>,
}

/// What will be installed, and why the rest is not.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The packages, in path order.
    pub packages: Vec<Package>,
    /// Optional packages left out because they do not fit the target:
    /// `name@version: why`.
    pub skipped: Vec<String>,
    /// Packages whose install scripts were accepted unrun.
    pub scripts_accepted: Vec<String>,
    /// Packages whose `engines.node` the target's Node does not satisfy.
    pub engine_warnings: Vec<String>,
}

/// Chooses what `lock` installs on `target`; fails, naming every package,
/// when one needs an install script that was not accepted, or when a
/// required package does not fit the platform or the project's own
/// `engines.node` is not met.
pub fn plan(lock: &Lock, target: &Target, options: &Options, lock_file: &str) -> Result<Plan, Error> {
    if let (Some(range), Some(version)) = (&lock.engines_node, &target.version)
        && target.satisfies(range) == Some(false)
    {
        return Err(Error::Target(format!(
            "the project needs Node {range} (package.json engines.node), and the base has Node {version} (from {}): use a base image with a Node that fits",
            target.version_from
        )));
    }
    let mut plan =
        Plan { packages: Vec::new(), skipped: Vec::new(), scripts_accepted: Vec::new(), engine_warnings: Vec::new() };
    let mut misfits = Vec::new();
    let mut scripts = Vec::new();
    let mut script_names: Vec<String> = Vec::new();
    // A package left out leaves out what is nested under it.
    let mut left_out: Vec<String> = Vec::new();
    for p in &lock.packages {
        if left_out.iter().any(|o| p.path.starts_with(&format!("{o}/"))) {
            continue;
        }
        if p.dev && !options.include_dev {
            continue;
        }
        let what = format!("{}@{}", p.name, p.version);
        if let Some(why) = target.misfit(&p.os, &p.cpu, &p.libc) {
            if p.optional {
                plan.skipped.push(format!("{what}: {why}"));
            } else {
                misfits.push(format!("{what} ({}): {why}", p.path));
            }
            left_out.push(p.path.clone());
            continue;
        }
        if p.install_script {
            if options.allow_install_scripts.contains(&p.name) {
                plan.scripts_accepted.push(what.clone());
            } else {
                scripts.push(format!("{what} ({})", p.path));
                if !script_names.contains(&p.name) {
                    script_names.push(p.name.clone());
                }
            }
        }
        if let Some(range) = &p.engines_node
            && target.satisfies(range) == Some(false)
        {
            plan.engine_warnings.push(format!("{what} wants Node {range}"));
        }
        plan.packages.push(p.clone());
    }
    if !misfits.is_empty() {
        return Err(Error::Package(format!(
            "{lock_file}: {} required package(s) do not fit {}/{} ({}):\n  - {}\nlock on a machine of the target's platform, or mark them optional",
            misfits.len(),
            target.os,
            target.cpu,
            target.libc.as_str(),
            misfits.join("\n  - ")
        )));
    }
    if !scripts.is_empty() {
        let quoted: Vec<String> = script_names.iter().map(|n| format!("\"{n}\"")).collect();
        return Err(Error::Package(format!(
            "{lock_file}: {} package(s) need install scripts, which oxbuild never runs:\n  - {}\nprefer versions that ship prebuilt binaries, or accept them as they are (without what their scripts would build) with [node] allow-install-scripts-missing = [{}]",
            scripts.len(),
            scripts.join("\n  - "),
            quoted.join(", ")
        )));
    }
    Ok(plan)
}

/// The layer's cache key: everything its bytes depend on.
pub fn layer_key(plan: &Plan, target: &Target, modules_dir: &str, epoch: u64, compression: &str) -> String {
    use sha2::Digest as _;
    let mut text = format!(
        "format={LAYER_FORMAT}\nmodules={modules_dir}\nepoch={epoch}\ncompression={compression}\ncpu={}\nlibc={}\n",
        target.cpu,
        target.libc.as_str()
    );
    for p in &plan.packages {
        text.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{:?}\n",
            p.path,
            p.name,
            p.version,
            p.integrity.as_deref().unwrap_or(""),
            p.resolved.as_deref().unwrap_or(""),
            p.bin
        ));
    }
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

/// The `.npmrc` settings for a project in `dir`: the user's file
/// (`NPM_CONFIG_USERCONFIG`, else `~/.npmrc`), then the project's, each
/// with `${VAR}` expanded from the environment; `[node] registry` last.
pub fn npmrc_for(dir: &Path, registry: Option<&str>) -> Result<Npmrc, Error> {
    let env = |name: &str| std::env::var(name).ok();
    let mut rc = Npmrc::default();
    let user = std::env::var_os("NPM_CONFIG_USERCONFIG")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".npmrc")));
    for file in user.into_iter().chain(std::iter::once(dir.join(".npmrc"))) {
        if let Ok(text) = std::fs::read_to_string(&file) {
            rc.read(&text, &file.display().to_string(), &env)?;
        }
    }
    if let Some(r) = registry {
        rc.registry = Some(if r.ends_with('/') { r.to_string() } else { format!("{r}/") });
    }
    Ok(rc)
}

/// `script` as a command, when it is a plain `node ...` one (no shell
/// syntax to interpret; `cross-env` and `VAR=value` before it are left to
/// [`script_env`]).
pub fn plain_node(script: &str) -> Option<Vec<String>> {
    plain_program(script, |w| w == "node").filter(|argv| argv.len() > 1)
}

/// `script`'s words from its program on, when it is one plain command (no
/// shell syntax) whose program `is_program` accepts, after nothing but
/// `cross-env` and `VAR=value` assignments.
fn plain_program(script: &str, is_program: impl Fn(&str) -> bool) -> Option<Vec<String>> {
    let plain = !script.contains(['&', '|', ';', '$', '>', '<', '`', '(', '"', '\'']);
    let words: Vec<&str> = script.split_whitespace().collect();
    let start = words.iter().position(|w| !w.contains('=') && *w != "cross-env")?;
    let before_ok = words[..start].iter().enumerate().all(|(i, w)| (i == 0 && *w == "cross-env") || w.contains('='));
    (plain && before_ok && is_program(words[start])).then(|| words[start..].iter().map(|w| w.to_string()).collect())
}

/// The programs that the lock beside `package.json` in `dir` puts in
/// `node_modules/.bin` from production packages (`next`, `nuxt`): in the
/// image, that folder is on PATH, so a start script may run them as they are.
pub fn production_bins(dir: &Path) -> Vec<String> {
    // npm's order: a shrinkwrap wins over the lock.
    let lock = ["npm-shrinkwrap.json", "package-lock.json"].iter().find_map(|f| std::fs::read(dir.join(f)).ok());
    let Some(lock) = lock.and_then(|l| serde_json::from_slice::<serde_json::Value>(&l).ok()) else { return Vec::new() };
    let mut bins = Vec::new();
    for (key, package) in lock["packages"].as_object().into_iter().flatten() {
        // Top-level packages only: nested ones link no bin of the app's.
        let Some(name) = key.strip_prefix("node_modules/").filter(|n| !n.contains("/node_modules/")) else { continue };
        if package["dev"].as_bool() == Some(true) || package["devOptional"].as_bool() == Some(true) {
            continue;
        }
        match &package["bin"] {
            serde_json::Value::Object(m) => bins.extend(m.keys().cloned()),
            serde_json::Value::String(_) => bins.push(name.rsplit('/').next().unwrap_or(name).to_string()),
            _ => {}
        }
    }
    bins
}

/// The script `name` of `package.json`, followed through scripts that only
/// run another (`"start": "npm run start-server"`, `yarn serve`, `pnpm run
/// X`): the text of the last, at most a few steps on. None when there is
/// no such script.
pub fn script<'a>(package_json: &'a serde_json::Value, name: &str) -> Option<&'a str> {
    let mut text = package_json["scripts"][name].as_str()?;
    for _ in 0..5 {
        let words: Vec<&str> = text.split_whitespace().collect();
        let next = match words.as_slice() {
            ["npm", "start"] | ["yarn" | "pnpm", "start"] => "start",
            ["npm" | "yarn" | "pnpm", "run" | "run-script", next] => next,
            ["yarn" | "pnpm", next] => next,
            _ => break,
        };
        match package_json["scripts"][next].as_str() {
            Some(t) => text = t,
            None => break,
        }
    }
    Some(text)
}

/// The scripts that start an app, in the order they are tried.
const START_SCRIPTS: [&str; 4] = ["start", "start:prod", "start:production", "serve"];

/// Whether `package.json` says how to start a server: a start script or a
/// `main`. One that says neither holds a front end's sources or the
/// developer's tools, which `oxbuild init` and the build leave out beside a
/// Python app.
pub fn serves(package_json: &serde_json::Value) -> bool {
    START_SCRIPTS.iter().any(|s| !package_json["scripts"][*s].is_null()) || !package_json["main"].is_null()
}

/// The command `package.json` starts the app in `dir` with: the first of
/// its `start`, `start:prod`, `start:production` and `serve` scripts that
/// is a plain `node ...` command (`cross-env` and leading `VAR=value`
/// assignments aside, which [`script_env`] gives), else the first that is
/// a plain command of a production package's program ([`production_bins`]:
/// `next start`), else what `npm start`
/// does without a script (`node server.js` when there is one), else `node
/// <main>` when that file is there. None when nothing says.
pub fn entrypoint(package_json: &serde_json::Value, dir: &Path) -> Option<Vec<String>> {
    if let Some((_, argv)) = start_script(package_json, dir) {
        return Some(argv);
    }
    if dir.join("server.js").is_file() && package_json["scripts"]["start"].is_null() {
        return Some(vec!["node".into(), "server.js".into()]);
    }
    let main = package_json["main"].as_str()?;
    let path = dir.join(main);
    let found = path.is_file() || path.with_extension("js").is_file() || path.join("index.js").is_file();
    found.then(|| vec!["node".into(), main.to_string()])
}

/// The start script [`entrypoint`] runs (its text, and its command): the
/// first that is a plain `node ...` command, else the first that is one
/// plain command of a production package's program (`next start`).
fn start_script<'a>(package_json: &'a serde_json::Value, dir: &Path) -> Option<(&'a str, Vec<String>)> {
    let node = START_SCRIPTS.iter().find_map(|s| script(package_json, s).and_then(|t| Some((t, plain_node(t)?))));
    node.or_else(|| {
        let bins = production_bins(dir);
        let runs_bin = |t: &str| plain_program(t, |w| bins.iter().any(|b| b == w));
        START_SCRIPTS.iter().find_map(|s| script(package_json, s).and_then(|t| Some((t, runs_bin(t)?))))
    })
}

/// The environment the start script that [`entrypoint`] runs (of the
/// project in `dir`) sets before its program (`cross-env
/// NODE_ENV=production node .`, `PORT=8080 node server.js`).
pub fn script_env(package_json: &serde_json::Value, dir: &Path) -> Vec<(String, String)> {
    let Some((script, argv)) = start_script(package_json, dir) else { return Vec::new() };
    let words: Vec<&str> = script.split_whitespace().collect();
    words[..words.len().saturating_sub(argv.len())]
        .iter()
        .filter_map(|w| {
            w.split_once('=').filter(|(k, _)| !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        })
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// What a package manager's `start` or `run NAME` in `argv` (`npm start`,
/// `npm run start:prod`, `yarn start`, `pnpm run serve`) runs, when that
/// script is a plain `node ...` command: an image needs no npm to run it.
/// Some(Err(script)) when the script is not such a command.
pub fn resolve_script(package_json: &serde_json::Value, argv: &[String]) -> Option<Result<Vec<String>, String>> {
    let tool = argv.first()?.rsplit('/').next()?;
    if !["npm", "yarn", "pnpm"].contains(&tool) {
        return None;
    }
    let rest: Vec<&str> = argv[1..].iter().map(String::as_str).filter(|a| !a.starts_with('-')).collect();
    let name = match rest.as_slice() {
        ["start", ..] => "start",
        ["run" | "run-script", name, ..] => name,
        [name, ..] if tool != "npm" => name,
        _ => return None,
    };
    let text = script(package_json, name)?;
    Some(plain_node(text).ok_or_else(|| text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target {
            version: Some("18.19.0".into()),
            version_from: "test".into(),
            os: "linux".into(),
            cpu: "x64".into(),
            libc: target::Libc::Glibc,
            has_node: true,
        }
    }

    const LOCK: &str = r#"{"lockfileVersion": 3, "packages": {
      "": {"engines": {"node": ">=16"}},
      "node_modules/app-dep": {"version": "1.0.0", "integrity": "sha512-AA==", "engines": {"node": ">=20"}},
      "node_modules/native-darwin": {"version": "1.0.0", "optional": true, "os": ["darwin"], "integrity": "sha512-AA=="},
      "node_modules/native-darwin/node_modules/inner": {"version": "1.0.0", "integrity": "sha512-AA=="},
      "node_modules/native-linux-x64-gnu": {"version": "1.0.0", "optional": true, "os": ["linux"], "cpu": ["x64"], "libc": ["glibc"], "integrity": "sha512-AA=="},
      "node_modules/test-only": {"version": "2.0.0", "dev": true, "integrity": "sha512-AA=="},
      "node_modules/gyp-thing": {"version": "3.0.0", "hasInstallScript": true, "integrity": "sha512-AA=="},
      "node_modules/@scope/core": {"version": "11.0.1", "hasInstallScript": true, "integrity": "sha512-AA=="}
    }}"#;

    #[test]
    fn plans_production_and_test_and_names_what_needs_scripts() {
        let lock = lockfile::parse(LOCK, "package-lock.json").unwrap();
        let opts = |dev, allow: &[&str]| Options {
            include_dev: dev,
            allow_install_scripts: allow.iter().map(|s| s.to_string()).collect(),
        };
        let err = plan(&lock, &target(), &opts(false, &[]), "package-lock.json").unwrap_err().to_string();
        assert!(err.contains("gyp-thing@3.0.0 (node_modules/gyp-thing)"), "{err}");
        assert!(err.contains("allow-install-scripts-missing = [\"@scope/core\", \"gyp-thing\"]"), "{err}");
        let prod = plan(&lock, &target(), &opts(false, &["gyp-thing", "@scope/core"]), "package-lock.json").unwrap();
        let names: Vec<&str> = prod.packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["@scope/core", "app-dep", "gyp-thing", "native-linux-x64-gnu"]);
        assert_eq!(prod.skipped, ["native-darwin@1.0.0: os darwin (the target is linux)"]);
        assert_eq!(prod.engine_warnings, ["app-dep@1.0.0 wants Node >=20"]);
        let test = plan(&lock, &target(), &opts(true, &["gyp-thing", "@scope/core"]), "package-lock.json").unwrap();
        assert!(test.packages.iter().any(|p| p.name == "test-only"));
        let key = |p: &Plan| layer_key(p, &target(), "/app", 0, "gzip");
        assert_ne!(key(&prod), key(&test));
    }

    #[test]
    fn the_projects_own_engines_must_be_met() {
        let lock =
            lockfile::parse(r#"{"lockfileVersion": 3, "packages": {"": {"engines": {"node": ">=20"}}}}"#, "l").unwrap();
        let opts = Options { include_dev: false, allow_install_scripts: Vec::new() };
        let err = plan(&lock, &target(), &opts, "l").unwrap_err().to_string();
        assert!(err.contains("needs Node >=20") && err.contains("has Node 18.19.0"), "{err}");
    }

    /// A start script running a production package's program is run as it
    /// is (node_modules/.bin is on the image's PATH); a dev tool's is not.
    #[test]
    fn a_start_script_running_a_production_program_is_the_entrypoint() {
        let dir = tempfile::tempdir().unwrap();
        let lock = serde_json::json!({"lockfileVersion": 3, "packages": {
            "": {"name": "site"},
            "node_modules/next": {"version": "15.0.0", "bin": {"next": "dist/bin/next"}},
            "node_modules/serve": {"version": "14.0.0", "bin": "build/main.js"},
            "node_modules/nodemon": {"version": "3.0.0", "dev": true, "bin": {"nodemon": "bin/nodemon.js"}},
            "node_modules/a/node_modules/inner": {"version": "1.0.0", "bin": {"inner": "x.js"}},
        }});
        std::fs::write(dir.path().join("package-lock.json"), lock.to_string()).unwrap();
        assert_eq!(production_bins(dir.path()), ["next", "serve"]);
        let ep = |v: serde_json::Value| entrypoint(&v, dir.path());
        assert_eq!(
            ep(serde_json::json!({"scripts": {"start": "NODE_ENV=production next start -p 3000"}})),
            Some(["next", "start", "-p", "3000"].map(String::from).to_vec())
        );
        let pkg = serde_json::json!({"scripts": {"start": "NODE_ENV=production next start -p 3000"}});
        assert_eq!(script_env(&pkg, dir.path()), [("NODE_ENV".into(), "production".into())]);
        assert_eq!(ep(serde_json::json!({"scripts": {"start": "nodemon a.js"}})), None, "a dev tool");
        assert_eq!(ep(serde_json::json!({"scripts": {"start": "next build && next start"}})), None, "not one command");
        assert_eq!(
            ep(serde_json::json!({"scripts": {"start": "next start", "start:prod": "node server.js"}})),
            Some(["node", "server.js"].map(String::from).to_vec()),
            "a node script first"
        );
    }

    #[test]
    fn the_entrypoint_comes_from_start_or_main() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("index.js"), "").unwrap();
        let ep = |v: serde_json::Value| entrypoint(&v, dir.path());
        assert_eq!(
            ep(serde_json::json!({"scripts": {"start": "node server.js --port 3000"}})),
            Some(vec!["node".into(), "server.js".into(), "--port".into(), "3000".into()])
        );
        assert_eq!(
            ep(serde_json::json!({"scripts": {"start": "NODE_ENV=x node a.js && y"}, "main": "index.js"})),
            Some(vec!["node".into(), "index.js".into()])
        );
        assert_eq!(ep(serde_json::json!({"scripts": {"start": "nodemon a.js"}})), None);
        assert_eq!(ep(serde_json::json!({"main": "missing.js"})), None, "a main that is not there");
        let pkg = serde_json::json!({"scripts": {"start": "cross-env NODE_ENV=production PORT=8080 node ./index"}});
        assert_eq!(ep(pkg.clone()), Some(vec!["node".into(), "./index".into()]));
        assert_eq!(
            script_env(&pkg, dir.path()),
            [("NODE_ENV".into(), "production".into()), ("PORT".into(), "8080".into())]
        );
        assert_eq!(
            ep(serde_json::json!({"scripts": {"start": "nest start", "start:prod": "node dist/main"}})),
            Some(vec!["node".into(), "dist/main".into()])
        );
        // A start script that runs another (uptime-kuma's), followed; a
        // loop of them is not.
        let pkg =
            serde_json::json!({"scripts": {"start": "npm run start-server", "start-server": "node server/server.js"}});
        assert_eq!(ep(pkg), Some(vec!["node".into(), "server/server.js".into()]));
        let pkg = serde_json::json!({"scripts": {"start": "yarn serve", "serve": "yarn run start"}});
        assert_eq!(ep(pkg), None, "the loop ends, with no command");
        assert_eq!(
            resolve_script(
                &serde_json::json!({"scripts": {"dev": "pnpm run web", "web": "node web.js"}}),
                &["pnpm".into(), "dev".into()]
            ),
            Some(Ok(vec!["node".into(), "web.js".into()]))
        );
    }

    #[test]
    fn package_manager_commands_resolve_to_their_scripts() {
        let pkg = serde_json::json!({"scripts": {"start": "node server.js", "start:dev": "nodemon server.js"}});
        let words = |s: &str| s.split_whitespace().map(str::to_string).collect::<Vec<_>>();
        assert_eq!(resolve_script(&pkg, &words("npm start")), Some(Ok(words("node server.js"))));
        assert_eq!(resolve_script(&pkg, &words("yarn start")), Some(Ok(words("node server.js"))));
        assert_eq!(resolve_script(&pkg, &words("npm run start:dev")), Some(Err("nodemon server.js".into())));
        assert_eq!(resolve_script(&pkg, &words("node server.js")), None);
        assert_eq!(resolve_script(&pkg, &words("npm run missing")), None);
    }
}
