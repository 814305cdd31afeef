//! Resolving a project's requirements into a lock, for `oxbuild lock`: the
//! one place oxbuild chooses versions (a build never does).
//!
//! The search is the `pubgrub` crate's PubGrub solver. What is here is what
//! it asks of a Python index: which versions a package has for the target
//! (yanked files, upload times after `--exclude-newer`, `Requires-Python`
//! and pre-releases filtered), and what a version depends on (its core
//! metadata: the index's PEP 658 `.metadata` file where it serves one, else
//! the wheel's METADATA, else a sdist's static PKG-INFO), markers evaluated
//! for the target and extras followed as packages of their own.
//!
//! The solver is synchronous and the index is not: the solve runs on a
//! blocking thread, which waits on the async index through the runtime's
//! handle. What it fetched is kept for the next target.

mod explain;
pub mod pylock;
pub mod ranges;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::str::FromStr as _;
use std::sync::Arc;

use oxbuild_image::BlobStore;
use pep440_rs::Version;
use pubgrub::{
    DefaultStringReporter, Dependencies, DependencyConstraints, DependencyProvider, PackageResolutionStatistics,
    PubGrubError, Ranges, Reporter as _,
};

use crate::name::normalize;
use crate::source::{Candidate, Location, Sources};
use crate::{Error, Target, wheel};

/// A package as the solver sees it: the project, a distribution, or a
/// distribution with one extra (which depends on the distribution at the
/// same version, plus what the extra adds).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Package {
    /// What is being locked.
    Root,
    /// A distribution, by normalised name.
    Dist(String),
    /// A distribution's extra.
    Extra(String, String),
}

impl std::fmt::Display for Package {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Package::Root => write!(f, "the project"),
            Package::Dist(n) => write!(f, "{n}"),
            Package::Extra(n, e) => write!(f, "{n}[{e}]"),
        }
    }
}

/// What to resolve.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The project's requirements (PEP 508), with their markers.
    pub requirements: Vec<String>,
    /// Files uploaded after this are not chosen (files with no upload time are).
    pub exclude_newer: Option<std::time::SystemTime>,
    /// Versions to keep when they still fit (existing pins), by normalised name.
    pub preferences: BTreeMap<String, Version>,
    /// Pre-releases may be chosen for every package (else only where a
    /// requirement names one).
    pub prereleases: bool,
    /// Constraints (PEP 508, pip's `-c` files): the versions a package may
    /// take when something requires it; they ask for nothing themselves.
    pub constraints: Vec<String>,
}

/// A distribution chosen for a target.
#[derive(Debug, Clone)]
pub struct Chosen {
    /// Its name, as the index writes it.
    pub name: String,
    /// The version.
    pub version: Version,
    /// Its files that the lock records: wheels that fit the target, and the sdist.
    pub files: Vec<Candidate>,
    /// The extras asked of it.
    pub extras: BTreeSet<String>,
    /// Normalised names of what it depends on for the target.
    pub dependencies: BTreeSet<String>,
}

/// Why a resolution failed.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// No set of versions satisfies the requirements: the explanation, in sentences.
    #[error("no versions satisfy the requirements for {target}:\n{explanation}")]
    Unsatisfiable {
        /// Which target.
        target: String,
        /// The chain of requirements that conflict.
        explanation: String,
    },
    /// Reading the index or a file failed.
    #[error(transparent)]
    Index(#[from] Error),
}

/// What one version of a distribution offers: its files, and its metadata
/// once read.
#[derive(Debug, Clone)]
struct Release {
    files: Vec<Candidate>,
    /// Every file of it is yanked (PEP 592): chosen only for an exact pin.
    yanked: bool,
}

/// A project's index page fetched ahead, and the core metadata of its
/// newest wheel (the version the solver most often takes).
struct Prefetched {
    files: Vec<Candidate>,
    metadata: Option<(String, String)>,
}

/// What finds the builder of dynamic sdists, the target, and where built wheels are kept.
type Finder = (Arc<dyn crate::sdist::FindBuilder>, Target, Option<Arc<dyn crate::sdist::BuiltCache>>);

/// The index, as the solver asks it, with what it learnt kept between
/// targets. The solver asks one thing at a time; what it will ask next (the
/// pages of the dependencies it just learnt of, and their newest wheels'
/// metadata) is fetched ahead, concurrently.
pub struct Index<'a> {
    sources: &'a Sources,
    store: &'a BlobStore,
    handle: tokio::runtime::Handle,
    /// Every file of a project, by normalised name.
    files: RefCell<HashMap<String, Vec<Candidate>>>,
    /// Core metadata by (name, version): `Requires-Dist`, `Requires-Python`.
    metadata: RefCell<HashMap<(String, String), wheel::Requires>>,
    /// Pages being fetched ahead, by normalised name.
    ahead: RefCell<HashMap<String, tokio::task::JoinHandle<Result<Prefetched, Error>>>>,
    /// Core metadata fetched ahead, by file name.
    ahead_metadata: RefCell<HashMap<String, String>>,
    /// Finds what builds a sdist whose dependencies are dynamic, to read
    /// them (only when one is met: finding the base's interpreter reads the
    /// base), the target it builds for, and where built wheels are kept.
    finder: Option<Finder>,
    /// What the finder found, once asked.
    builder: std::cell::OnceCell<Option<crate::sdist::Builder>>,
    /// `[python] build-constraints`: exact versions of build requirements,
    /// by normalised name, for whatever builder is found.
    constraints: std::collections::BTreeMap<String, String>,
    /// Projects the requirements give by URL (`name @ https://…`): that one
    /// file is the project's only release, by normalised name.
    direct: RefCell<HashMap<String, Candidate>>,
}

impl<'a> Index<'a> {
    /// An index over `sources`, downloading into `store` when it must.
    pub fn new(sources: &'a Sources, store: &'a BlobStore, handle: tokio::runtime::Handle) -> Index<'a> {
        Index {
            sources,
            store,
            handle,
            files: Default::default(),
            metadata: Default::default(),
            ahead: Default::default(),
            ahead_metadata: Default::default(),
            finder: None,
            builder: Default::default(),
            constraints: Default::default(),
            direct: Default::default(),
        }
    }

    /// This index, building sdists whose dependencies are dynamic with what
    /// `finder` finds for `target` (else a `python3.X` on PATH), keeping the
    /// wheels in `cache` as a build would, with the build `constraints`.
    pub fn building(
        mut self,
        finder: Arc<dyn crate::sdist::FindBuilder>,
        target: Target,
        cache: Option<Arc<dyn crate::sdist::BuiltCache>>,
        constraints: std::collections::BTreeMap<String, String>,
    ) -> Index<'a> {
        self.finder = Some((finder, target, cache));
        self.constraints = constraints;
        self
    }

    /// The builder for dynamic sdists, found on first use.
    fn builder(&self) -> Result<Option<(&crate::sdist::Builder, &Target)>, Error> {
        let Some((finder, target, cache)) = &self.finder else { return Ok(None) };
        if self.builder.get().is_none() {
            let found = self.handle.block_on(finder.find(target))?.or_else(|| crate::sdist::Builder::find(target, 0));
            // Whichever interpreter it is, it builds with the constraints.
            let found = found.map(|mut b| {
                b.cache = cache.clone();
                b.constraints = self.constraints.clone();
                b
            });
            let _ = self.builder.set(found);
        }
        Ok(self.builder.get().and_then(|b| b.as_ref()).map(|b| (b, target)))
    }

    /// Starts fetching the pages of `names` (and their newest wheels'
    /// metadata) that are not known or on their way yet.
    fn prefetch(&self, names: impl IntoIterator<Item = String>) {
        for name in names {
            if self.files.borrow().contains_key(&name) || self.ahead.borrow().contains_key(&name) {
                continue;
            }
            let (sources, key) = (self.sources.clone(), name.clone());
            let task = self.handle.spawn(async move {
                let files = sources.index_candidates(&key).await?;
                let newest = files
                    .iter()
                    .filter(|c| c.metadata && c.yanked.is_none() && c.filename.ends_with(".whl"))
                    .filter_map(|c| {
                        let v =
                            wheel::WheelName::parse(&c.filename).and_then(|w| Version::from_str(&w.version).ok())?;
                        Some((v, c))
                    })
                    .max_by(|a, b| a.0.cmp(&b.0))
                    .map(|(_, c)| c.clone());
                let metadata = match newest {
                    Some(c) => sources.metadata(&c).await.ok().flatten().map(|m| (c.filename.clone(), m)),
                    None => None,
                };
                Ok(Prefetched { files, metadata })
            });
            self.ahead.borrow_mut().insert(name, task);
        }
    }

    /// Takes the files of `requirements` given by URL (a wheel or a sdist
    /// whose name carries its version, over http(s) or `file:`) into the
    /// store, so that each is its project's only release. The lock records
    /// the URL and the sha256 of what was fetched.
    fn take_direct(&self, requirements: &[String]) -> Result<(), Error> {
        for text in requirements {
            let Ok(req) = crate::name::parse_requirement(text) else { continue };
            let Some(pep508_rs::VersionOrUrl::Url(url)) = &req.version_or_url else { continue };
            let name = normalize(req.name.as_ref());
            if self.direct.borrow().contains_key(&name) {
                continue;
            }
            let url = url.to_url();
            let shown = crate::without_credentials(&url);
            let filename = url.path_segments().and_then(|mut s| s.next_back()).unwrap_or_default().to_string();
            let named = if filename.ends_with(".whl") {
                wheel::WheelName::parse(&filename).map(|w| normalize(&w.name))
            } else {
                crate::source::project_of(&filename).map(|p| normalize(&p))
            };
            let location = match url.scheme() {
                "http" | "https" => Location::Direct(url.clone()),
                "file" => Location::File(
                    url.to_file_path()
                        .map_err(|()| Error::Package(format!("`{text}`: {shown} is not a local path")))?,
                ),
                other => {
                    return Err(Error::Package(format!(
                        "`{text}`: `oxbuild lock` fetches archives over http(s) or from files, not `{other}` URLs: publish it as a wheel (a find-links wheelhouse or an index) and require it by version"
                    )));
                }
            };
            if named.as_deref() != Some(name.as_str()) || crate::source::version_of(&filename).is_none() {
                return Err(Error::Package(format!(
                    "`{text}`: {shown} is not a wheel or sdist of {name} whose file name carries its version (such as {name}-1.0-py3-none-any.whl or {name}-1.0.tar.gz)"
                )));
            }
            let mut candidate = Candidate {
                filename,
                location,
                sha256: None,
                yanked: None,
                upload_time: None,
                requires_python: None,
                metadata: false,
            };
            let stored = self.handle.block_on(self.sources.stored(&candidate, self.store, |_| Ok(())))?;
            candidate.sha256 = Some(stored.digest.hex().to_string());
            self.direct.borrow_mut().insert(name, candidate);
        }
        Ok(())
    }

    /// Every file of `name` in the find-links directories and on the indexes
    /// (or, for a project given by URL, that file alone).
    fn files(&self, name: &str) -> Result<Vec<Candidate>, Error> {
        if let Some(c) = self.direct.borrow().get(name) {
            return Ok(vec![c.clone()]);
        }
        if let Some(f) = self.files.borrow().get(name) {
            return Ok(f.clone());
        }
        let mut all = self.sources.local_candidates(name)?;
        let ahead = self.ahead.borrow_mut().remove(name);
        let listed = match ahead {
            Some(task) => {
                let fetched = self
                    .handle
                    .block_on(task)
                    .map_err(|e| Error::Index(format!("fetching the page of {name}: {e}")))??;
                if let Some((file, text)) = fetched.metadata {
                    self.ahead_metadata.borrow_mut().insert(file, text);
                }
                fetched.files
            }
            None => self.handle.block_on(self.sources.index_candidates(name))?,
        };
        all.extend(listed);
        self.files.borrow_mut().insert(name.to_string(), all.clone());
        Ok(all)
    }

    /// The core metadata of `name` `version`, from the best of `files`: the
    /// index's `.metadata` file, else a wheel's METADATA (downloaded into the
    /// store), else a sdist's PKG-INFO when its dependencies are static.
    fn requires(&self, name: &str, version: &Version, files: &[Candidate]) -> Result<wheel::Requires, Error> {
        let key = (name.to_string(), version.to_string());
        if let Some(r) = self.metadata.borrow().get(&key) {
            return Ok(r.clone());
        }
        let wheels: Vec<&Candidate> = files.iter().filter(|c| c.filename.ends_with(".whl")).collect();
        let mut found = None;
        for c in &wheels {
            let ahead = self.ahead_metadata.borrow_mut().remove(&c.filename);
            let text = match ahead {
                Some(text) => Some(text),
                None => self.handle.block_on(self.sources.metadata(c))?,
            };
            if let Some(text) = text {
                found = Some(wheel::requires_of(&wheel::header_fields(&text)));
                break;
            }
        }
        if found.is_none()
            && let Some(c) = wheels.first()
            && let Some(text) = self.ranged_metadata(c)
        {
            found = Some(wheel::requires_of(&wheel::header_fields(&text)));
        }
        if found.is_none()
            && let Some(c) = wheels.first()
        {
            let stored = self.handle.block_on(self.sources.stored(c, self.store, |_| Ok(())))?;
            found = Some(wheel::requires(&stored.path, &c.filename)?);
        }
        if found.is_none()
            && let Some(c) = files.iter().find(|c| crate::sdist::is_sdist(&c.filename))
        {
            found = Some(self.sdist_requires(name, version, c)?);
        }
        let requires = found.ok_or_else(|| Error::Package(format!("{name} {version} has no files")))?;
        self.metadata.borrow_mut().insert(key, requires.clone());
        Ok(requires)
    }

    /// The METADATA of the remote wheel `c` read through HTTP range
    /// requests (its end, where the zip directory is, then the entry), for
    /// an index that serves no `.metadata` file; kept by the wheel's sha256.
    /// None when the file is stored already, or the server serves no ranges,
    /// or the archive is odd: the whole wheel is downloaded instead.
    fn ranged_metadata(&self, c: &Candidate) -> Option<String> {
        if let Some(text) = self.sources.cached_metadata(c) {
            return Some(text);
        }
        let stored = c.sha256.as_ref().and_then(|h| format!("sha256:{}", h.to_ascii_lowercase()).parse().ok());
        if stored.is_some_and(|d: oxbuild_image::Digest| self.store.contains(&d)) {
            return None;
        }
        let tail = format!("bytes=-{}", crate::ranged::CHUNK);
        let (_, bytes, len) = self.handle.block_on(self.sources.range(c, &tail)).ok()??;
        let fetch = |start: u64, end: u64| {
            let part = self.handle.block_on(self.sources.range(c, &format!("bytes={start}-{}", end - 1)));
            match part {
                Ok(Some((at, bytes, _))) if at == start => Ok(bytes),
                Ok(_) => Err(std::io::Error::other("the server stopped serving ranges")),
                Err(e) => Err(std::io::Error::other(e.to_string())),
            }
        };
        let text = wheel::metadata_text(crate::ranged::Ranged::new(len, bytes, fetch), &c.filename).ok()?;
        self.sources.keep_metadata(c, &text);
        Some(text)
    }

    /// A sdist's dependencies from its PKG-INFO, when they are static
    /// (metadata 2.2 or later, `Requires-Dist` not listed as `Dynamic`).
    fn sdist_requires(&self, name: &str, version: &Version, c: &Candidate) -> Result<wheel::Requires, Error> {
        let path = self.handle.block_on(self.sources.stored(c, self.store, |_| Ok(())))?.path;
        let dir = tempfile::tempdir().map_err(|e| Error::Package(e.to_string()))?;
        crate::sdist::unpack(&path, &c.filename, dir.path())
            .map_err(|e| Error::Package(format!("{}: {e}", c.filename)))?;
        let pkg_info = std::fs::read_dir(dir.path())
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|e| e.path().join("PKG-INFO"))
            .find(|p| p.is_file());
        let text = pkg_info.and_then(|p| std::fs::read_to_string(p).ok()).unwrap_or_default();
        let fields = wheel::header_fields(&text);
        let field = |k: &str| fields.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        let metadata_version = field("metadata-version").and_then(|v| Version::from_str(v).ok());
        let dynamic = fields.iter().any(|(k, v)| k == "dynamic" && v.eq_ignore_ascii_case("requires-dist"));
        if metadata_version.is_some_and(|v| v >= Version::new([2, 2])) && !dynamic {
            return Ok(wheel::requires_of(&fields));
        }
        // Dynamic: the backend says what it depends on by building it.
        let Some((builder, target)) = self.builder()? else {
            return Err(Error::Package(format!(
                "{name} {version} is published only as a sdist whose dependencies are not static (its PKG-INFO is metadata {}{}), and no interpreter here can build it to read them (the base's own cannot run on this runner, and no python3.X of its version is on PATH): put one on PATH, or publish a wheel for it",
                field("metadata-version").unwrap_or("missing"),
                if dynamic { ", with Requires-Dist dynamic" } else { "" }
            )));
        };
        let pin = crate::requirements::Pin {
            name: name.to_string(),
            version: version.to_string(),
            arbitrary: false,
            hashes: c.sha256.iter().map(|s| s.to_ascii_lowercase()).collect(),
            marker: None,
            origin: "built to read its dependencies".into(),
            direct: Vec::new(),
            dependencies: Vec::new(),
            extras: Vec::new(),
            tree: None,
        };
        let built = self.handle.block_on(crate::sdist::build(&pin, c, builder, self.sources, target, self.store))?;
        wheel::requires(&built.path, &built.filename)
    }
}

/// A package's releases for a target, newest first.
type Releases = Arc<Vec<(Version, Release)>>;

/// One target's solve: the index, the target, and the request.
struct Provider<'i, 'a> {
    index: &'i Index<'a>,
    target: &'i Target,
    env: crate::marker::Environment,
    ranking: HashMap<crate::tags::Tag, usize>,
    request: &'i Request,
    /// Names for which any specifier names a pre-release.
    prerelease_named: BTreeSet<String>,
    /// Each package's releases for the target, once listed: the solver asks
    /// for them when it prioritises, chooses and expands a package.
    releases: RefCell<HashMap<String, Releases>>,
    /// The position of each direct requirement in the input.
    order: HashMap<String, usize>,
    /// Versions of each package that have files but none the target can
    /// use, with why: for the explanation when a resolution fails.
    left_out: RefCell<HashMap<String, BTreeMap<Version, BTreeSet<LeftOut>>>>,
    /// The request's constraints that apply to the target, by normalised
    /// name, each with the lines that make it.
    constrained: Constrained,
    /// Sdist builds that failed, by normalised name, in the order tried.
    failed_builds: RefCell<HashMap<String, Vec<FailedBuild>>>,
    /// Packages a version of which could not be used once chosen (a build
    /// that failed, broken metadata): the explanation says why already.
    unavailable: RefCell<BTreeSet<String>>,
}

/// A sdist build that failed.
struct FailedBuild {
    /// The first line of why.
    first_line: String,
    /// Why's last line (the build's hint), less the version.
    cause: String,
    version: String,
}

/// Constraints by normalised name: the versions allowed, and the lines that say so.
type Constrained = HashMap<String, (Ranges<Version>, Vec<String>)>;

/// Why a version with files on the index cannot be chosen for the target.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum LeftOut {
    /// Its files were uploaded after `--exclude-newer`.
    TooNew,
    /// Its `Requires-Python` excludes the target's Python.
    Python(String),
    /// Its wheels are for other Pythons or platforms, and it has no sdist.
    Platform,
    /// A pre-release, not asked for.
    Prerelease,
    /// Outside a constraint (the constraint lines).
    Constraint(String),
    /// Only a sdist, not built because newer ones of the same project
    /// failed to build (the first line of why).
    Unbuilt(String),
}

/// Sdists of one project that fail to build the same way before its older
/// sdists are left unbuilt: they fail that way too nearly always (no C
/// compiler, a system library missing), and each try costs seconds to
/// minutes.
const FAILED_BUILDS_BEFORE_GIVING_UP: usize = 3;

impl Provider<'_, '_> {
    /// Counts a sdist of `name` at `version` that failed to build; at
    /// [`FAILED_BUILDS_BEFORE_GIVING_UP`], the older versions that have only
    /// sdists are taken out of its releases, unbuilt.
    fn failed_build(&self, name: &str, version: &Version, why: &str) {
        // Why, less the version: two versions that fail the same way say
        // the same (the build's hint, its last line).
        let cause = why.lines().last().unwrap_or(why).replace(&version.to_string(), "");
        let (first_line, same) = {
            let mut failed = self.failed_builds.borrow_mut();
            let reasons = failed.entry(name.to_string()).or_default();
            let first_line = why.lines().next().unwrap_or(why).to_string();
            reasons.push(FailedBuild { first_line, cause, version: version.to_string() });
            let last = &reasons[reasons.len().saturating_sub(FAILED_BUILDS_BEFORE_GIVING_UP)..];
            let same = reasons.len() >= FAILED_BUILDS_BEFORE_GIVING_UP && last.iter().all(|f| f.cause == last[0].cause);
            (reasons[0].first_line.clone(), same)
        };
        if !same {
            return;
        }
        let Some(releases) = self.releases.borrow().get(name).cloned() else { return };
        let only_sdists = |r: &Release| !r.files.iter().any(|f| f.filename.ends_with(".whl"));
        // A version whose dependencies are known (built before) stays.
        let known = |v: &Version| self.index.metadata.borrow().contains_key(&(name.to_string(), v.to_string()));
        let (kept, dropped): (Vec<_>, Vec<_>) =
            releases.iter().cloned().partition(|(v, r)| v >= version || !only_sdists(r) || known(v));
        if dropped.is_empty() {
            return;
        }
        let mut left_out = self.left_out.borrow_mut();
        let entry = left_out.entry(name.to_string()).or_default();
        for (v, _) in dropped {
            entry.entry(v).or_default().insert(LeftOut::Unbuilt(first_line.clone()));
        }
        self.releases.borrow_mut().insert(name.to_string(), Arc::new(kept));
    }

    /// Sentences on the versions a failed resolution found no usable
    /// version among (the tree's "no versions" leaves), for those that
    /// have files the target cannot use: which, and why.
    fn why_left_out(&self, tree: &explain::Tree) -> Vec<String> {
        // A package met at several leaves: every version any of them sought.
        let mut wanted: BTreeMap<&str, Ranges<Version>> = BTreeMap::new();
        for leaf in explain::leaves(tree) {
            if let pubgrub::External::NoVersions(Package::Dist(name), range) = leaf {
                let all = wanted.remove(name.as_str()).map_or_else(|| range.clone(), |seen| seen.union(range));
                wanted.insert(name, all);
            }
        }
        let left_out = self.left_out.borrow();
        let mut lines = Vec::new();
        for (name, range) in wanted {
            let listed = self.releases.borrow().get(name).cloned();
            let left = left_out.get(name).is_some_and(|v| v.keys().any(|v| range.contains(v)));
            let any_left = left_out.get(name).is_some_and(|v| !v.is_empty());
            let said = self.unavailable.borrow().contains(name);
            match listed {
                _ if said => {}
                // Nothing left out, so nothing was ever listed: a name no
                // index knows (a typo, a private package on another index).
                Some(listed) if listed.is_empty() && !any_left => lines.push(format!(
                    "{name}: no index searched has a project of that name with files; check its spelling, or name the index that has it (--index-url, [python] index-url or find-links)"
                )),
                Some(listed) if !left && !listed.iter().any(|(v, _)| range.contains(v)) => {
                    let newest: Vec<String> = listed.iter().take(3).map(|(v, _)| v.to_string()).collect();
                    lines.push(format!(
                        "{name}{}: no such release; {} {}",
                        explain::specifiers(&range),
                        if newest.len() == 1 { "the one that fits the target is" } else { "the newest that fit the target are" },
                        newest.join(", ")
                    ));
                }
                _ => {}
            }
            let Some(versions) = left_out.get(name) else { continue };
            // By reason, newest versions first.
            let mut by_why: BTreeMap<&LeftOut, Vec<&Version>> = BTreeMap::new();
            for (v, whys) in versions.iter().rev().filter(|(v, _)| range.contains(v)) {
                for why in whys {
                    by_why.entry(why).or_default().push(v);
                }
            }
            for (why, versions) in by_why {
                let shown: Vec<String> = versions.iter().take(3).map(ToString::to_string).collect();
                let more = versions.len().saturating_sub(3);
                let which = match more {
                    0 => format!("{name} {}", shown.join(", ")),
                    n => format!("{name} {} (and {n} older)", shown.join(", ")),
                };
                lines.push(match why {
                    LeftOut::TooNew => {
                        format!("{which}: uploaded after the --exclude-newer date, so left out")
                    }
                    LeftOut::Python(spec) => format!(
                        "{which}: for another Python (Requires-Python {spec}), and the target has Python {}",
                        self.target.full_version
                    ),
                    LeftOut::Platform => format!(
                        "{which}: wheels only for other Pythons or platforms than {} {}, and no sdist",
                        self.target.machine, self.target.libc
                    ),
                    LeftOut::Prerelease => format!(
                        "{which}: a pre-release, left out unless a requirement names one or --prerelease is given"
                    ),
                    LeftOut::Constraint(lines) => format!("{which}: outside the constraint {lines}"),
                    LeftOut::Unbuilt(why) => format!(
                        "{which}: only sdists, left unbuilt because {FAILED_BUILDS_BEFORE_GIVING_UP} that were tried failed to build the same way ({why}); a version with a wheel for the target, or a build constraint that makes it build, would do"
                    ),
                });
            }
        }
        lines
    }

    /// The releases of `name` that may be chosen for the target, newest first.
    fn releases(&self, name: &str) -> Result<Releases, Error> {
        if let Some(r) = self.releases.borrow().get(name) {
            return Ok(r.clone());
        }
        let listed = Arc::new(self.list_releases(name)?);
        self.releases.borrow_mut().insert(name.to_string(), listed.clone());
        Ok(listed)
    }

    /// Lists the releases of `name` (see [`Provider::releases`]).
    fn list_releases(&self, name: &str) -> Result<Vec<(Version, Release)>, Error> {
        let python = Version::from_str(&self.target.full_version)
            .unwrap_or_else(|_| Version::new([u64::from(self.target.major), u64::from(self.target.minor)]));
        let mut by_version: BTreeMap<Version, Vec<Candidate>> = BTreeMap::new();
        let mut dropped: BTreeMap<Version, BTreeSet<LeftOut>> = BTreeMap::new();
        // Whether the project ever made a final release, whatever its files fit.
        let mut any_final = false;
        for c in self.index.files(name)? {
            let (version, fits) = if let Some(w) = wheel::WheelName::parse(&c.filename) {
                // A wheel for another Python or platform is no use to this target.
                let fits = w.tags.iter().any(|t| self.ranking.contains_key(t));
                (w.version, fits)
            } else if crate::sdist::is_sdist(&c.filename) {
                let Some(v) = crate::source::version_of(&c.filename) else { continue };
                (v, true)
            } else {
                continue;
            };
            let Ok(version) = Version::from_str(&version) else { continue };
            any_final |= !version.any_prerelease();
            let requires_python = c
                .requires_python
                .as_deref()
                .filter(|r| pep440_rs::VersionSpecifiers::from_str(r).is_ok_and(|spec| !spec.contains(&python)));
            let why = if c.upload_time.zip(self.request.exclude_newer).is_some_and(|(t, limit)| t > limit) {
                Some(LeftOut::TooNew)
            } else if let Some(r) = requires_python {
                Some(LeftOut::Python(r.trim().to_string()))
            } else if !fits {
                Some(LeftOut::Platform)
            } else if let Some((range, lines)) = self.constrained.get(name)
                && !range.contains(&version)
            {
                Some(LeftOut::Constraint(lines.join(", ")))
            } else {
                None
            };
            match why {
                None => by_version.entry(version).or_default().push(c),
                Some(why) => {
                    dropped.entry(version).or_default().insert(why);
                }
            }
        }
        // Pre-releases when asked for, when a requirement names one, or when
        // they are all the project has (pip's and uv's rule: a package that
        // never made a final release is still installable).
        let only_pre = !any_final;
        let allow_pre = self.request.prereleases || self.prerelease_named.contains(name) || only_pre;
        dropped.retain(|v, _| !by_version.contains_key(v));
        for v in by_version.keys().filter(|v| !allow_pre && v.any_prerelease()) {
            dropped.entry(v.clone()).or_default().insert(LeftOut::Prerelease);
        }
        self.left_out.borrow_mut().insert(name.to_string(), dropped);
        let mut out: Vec<(Version, Release)> = by_version
            .into_iter()
            .filter(|(v, _)| allow_pre || !v.any_prerelease())
            .map(|(v, files)| {
                // Yanked files count only when the version has no other.
                let yanked = files.iter().all(|f| f.yanked.is_some());
                let files = if yanked { files } else { files.into_iter().filter(|f| f.yanked.is_none()).collect() };
                (v, Release { files, yanked })
            })
            .collect();
        out.reverse();
        Ok(out)
    }

    /// The requirements `text` as the solver's constraints, markers
    /// evaluated for the target with `extras` active.
    fn constraints(&self, texts: &[String], extras: &[String]) -> Result<BTreeMap<Package, Ranges<Version>>, Error> {
        let mut out: BTreeMap<Package, Ranges<Version>> = BTreeMap::new();
        for text in texts {
            let req = crate::name::parse_requirement(text).map_err(|e| Error::Package(format!("`{text}`: {e}")))?;
            let extras: Vec<pep508_rs::ExtraName> =
                extras.iter().filter_map(|e| pep508_rs::ExtraName::from_str(e).ok()).collect();
            if !req.evaluate_markers(self.env.pep508(), &extras) {
                continue;
            }
            let name = normalize(req.name.as_ref());
            let range = match &req.version_or_url {
                Some(pep508_rs::VersionOrUrl::VersionSpecifier(s)) => ranges::of(s),
                // The project's own URL requirements were taken in first.
                Some(pep508_rs::VersionOrUrl::Url(_)) if self.index.direct.borrow().contains_key(&name) => {
                    Ranges::full()
                }
                Some(pep508_rs::VersionOrUrl::Url(url)) => {
                    return Err(Error::Package(format!(
                        "`{text}` asks for {} by URL ({}); only the project's own requirements may name URLs",
                        req.name,
                        crate::without_credentials(url)
                    )));
                }
                None => Ranges::full(),
            };
            let entry = out.entry(Package::Dist(name.clone())).or_insert_with(Ranges::full);
            *entry = entry.intersection(&range);
            for extra in &req.extras {
                let entry =
                    out.entry(Package::Extra(name.clone(), normalize(extra.as_ref()))).or_insert_with(Ranges::full);
                *entry = entry.intersection(&range);
            }
        }
        Ok(out)
    }
}

/// Whether `range` is `v` alone (with its local versions): an `==` pin.
fn exactly(range: &Ranges<Version>, v: &Version) -> bool {
    use std::ops::Bound;
    match range.bounding_range() {
        Some((Bound::Included(low), Bound::Included(high))) => low == v && high == v,
        Some((Bound::Included(low), Bound::Excluded(high))) => low == v && *high == ranges::after_locals(v),
        _ => false,
    }
}

/// The distribution a solver package is, if any.
fn name_of(p: &Package) -> Option<String> {
    match p {
        Package::Root => None,
        Package::Dist(n) | Package::Extra(n, _) => Some(n.clone()),
    }
}

/// Constraints as the solver takes them.
fn available(deps: BTreeMap<Package, Ranges<Version>>) -> Dependencies<Package, Ranges<Version>, String> {
    Dependencies::Available(deps.into_iter().collect::<DependencyConstraints<_, _>>())
}

impl Provider<'_, '_> {
    /// The requirements of `texts` that apply with `extra` active and not without it.
    fn extra_only(&self, texts: &[String], extra: &str) -> Vec<String> {
        let Ok(extra) = pep508_rs::ExtraName::from_str(extra) else { return Vec::new() };
        texts
            .iter()
            .filter(|t| {
                crate::name::parse_requirement(t).is_ok_and(|r| {
                    r.evaluate_markers(self.env.pep508(), std::slice::from_ref(&extra))
                        && !r.evaluate_markers(self.env.pep508(), &[])
                })
            })
            .cloned()
            .collect()
    }
}

impl DependencyProvider for Provider<'_, '_> {
    type P = Package;
    type V = Version;
    type VS = Ranges<Version>;
    type Priority = (u32, std::cmp::Reverse<usize>, std::cmp::Reverse<usize>);
    type M = String;
    type Err = Error;

    fn prioritize(
        &self,
        package: &Package,
        range: &Ranges<Version>,
        stats: &PackageResolutionStatistics,
    ) -> Self::Priority {
        // Packages that caused conflicts first; then the project's own
        // requirements in the order it lists them (the ones it names first
        // get their newest versions first, as pip and uv decide); then those
        // with the fewest choices.
        let position = match package {
            Package::Root => 0,
            Package::Dist(n) | Package::Extra(n, _) => self.order.get(n).copied().unwrap_or(usize::MAX),
        };
        let choices = match package {
            Package::Root => 0,
            Package::Dist(n) | Package::Extra(n, _) => {
                self.releases(n).map(|r| r.iter().filter(|(v, _)| range.contains(v)).count()).unwrap_or(0)
            }
        };
        (stats.conflict_count(), std::cmp::Reverse(position), std::cmp::Reverse(choices))
    }

    fn choose_version(&self, package: &Package, range: &Ranges<Version>) -> Result<Option<Version>, Error> {
        let name = match package {
            Package::Root => return Ok(Some(Version::new([0]))),
            Package::Dist(n) | Package::Extra(n, _) => n,
        };
        let releases = self.releases(name)?;
        // An existing pin is kept while it still fits.
        if let Some(v) = self.request.preferences.get(name)
            && range.contains(v)
            && releases.iter().any(|(r, _)| r == v)
        {
            return Ok(Some(v.clone()));
        }
        let fitting = releases.iter().filter(|(v, _)| range.contains(v));
        if let Some((v, _)) = fitting.clone().find(|(_, r)| !r.yanked) {
            return Ok(Some(v.clone()));
        }
        // PEP 592: a yanked version only for a pin of exactly that version.
        Ok(fitting.map(|(v, _)| v).find(|v| exactly(range, v)).cloned())
    }

    fn get_dependencies(
        &self,
        package: &Package,
        version: &Version,
    ) -> Result<Dependencies<Package, Ranges<Version>, String>, Error> {
        let deps = self.dependencies_of(package, version)?;
        if let (Dependencies::Unavailable(_), Package::Dist(name) | Package::Extra(name, _)) = (&deps, package) {
            self.unavailable.borrow_mut().insert(name.clone());
        }
        Ok(deps)
    }
}

impl Provider<'_, '_> {
    /// What [`DependencyProvider::get_dependencies`] answers.
    fn dependencies_of(
        &self,
        package: &Package,
        version: &Version,
    ) -> Result<Dependencies<Package, Ranges<Version>, String>, Error> {
        match package {
            Package::Root => {
                let deps = self.constraints(&self.request.requirements, &[])?;
                self.index.prefetch(deps.keys().filter_map(name_of));
                Ok(available(deps))
            }
            Package::Dist(name) | Package::Extra(name, _) => {
                let releases = self.releases(name)?;
                let Some((_, release)) = releases.iter().find(|(v, _)| v == version) else {
                    return Ok(Dependencies::Unavailable(format!("{name} {version} has no usable file")));
                };
                // A version whose dependencies cannot be read (a sdist that
                // does not build, a broken wheel) is one the solver cannot
                // use, as a version with no files: it goes on to others, and
                // names the reason if none is left. An index that fails is
                // another matter, and stops it.
                let requires = match self.index.requires(name, version, &release.files) {
                    Ok(r) => r,
                    Err(Error::Package(why)) => {
                        // The build's output once per project: later failures
                        // of the same project are named by their first line.
                        // Named by version: the report need not list them in the order tried.
                        let shown =
                            self.failed_builds.borrow().get(name).and_then(|f| f.first()).map(|f| f.version.clone());
                        let only_sdists = !release.files.iter().any(|f| f.filename.ends_with(".whl"));
                        if only_sdists {
                            self.failed_build(name, version, &why);
                        }
                        let why = match shown.filter(|_| only_sdists) {
                            Some(first) => format!(
                                "{} (its output is shown once, for {name} {first})",
                                why.lines().next().unwrap_or(&why).trim_end_matches(':')
                            ),
                            None => why,
                        };
                        return Ok(Dependencies::Unavailable(why));
                    }
                    Err(e) => return Err(e),
                };
                if let Some(python) = &requires.python
                    && let Ok(spec) = pep440_rs::VersionSpecifiers::from_str(python)
                    && let Ok(target) = Version::from_str(&self.target.full_version)
                    && !spec.contains(&target)
                {
                    return Ok(Dependencies::Unavailable(format!(
                        "it needs Python {python}, and the target has {}",
                        self.target.full_version
                    )));
                }
                let deps = match package {
                    Package::Extra(_, extra) => {
                        // The extra is the distribution itself at this
                        // version, plus what only the extra adds.
                        let only = self.extra_only(&requires.dist, extra);
                        let mut deps = self.constraints(&only, std::slice::from_ref(extra))?;
                        deps.insert(Package::Dist(name.clone()), Ranges::singleton(version.clone()));
                        deps
                    }
                    _ => self.constraints(&requires.dist, &[])?,
                };
                self.index.prefetch(deps.keys().filter_map(name_of));
                Ok(available(deps))
            }
        }
    }
}

/// The constraints among `lines` that apply in `env`, by normalised name:
/// the versions they allow, and the lines.
fn constrained(lines: &[String], env: &crate::marker::Environment) -> Result<Constrained, Error> {
    let mut out: Constrained = HashMap::new();
    for line in lines {
        let req = crate::name::parse_requirement(line)
            .map_err(|e| Error::Package(format!("the constraint `{line}`: {e}")))?;
        if !req.evaluate_markers(env.pep508(), &[]) {
            continue;
        }
        let range = match &req.version_or_url {
            Some(pep508_rs::VersionOrUrl::VersionSpecifier(s)) => ranges::of(s),
            Some(pep508_rs::VersionOrUrl::Url(_)) => {
                return Err(Error::Package(format!(
                    "the constraint on {0} names a URL; a constraint limits versions: write `{0}==VERSION`, or require the URL itself",
                    req.name
                )));
            }
            None => continue,
        };
        let entry = out.entry(normalize(req.name.as_ref())).or_insert_with(|| (Ranges::full(), Vec::new()));
        entry.0 = entry.0.intersection(&range);
        entry.1.push(format!("`{}`", line.trim()));
    }
    Ok(out)
}

/// Resolves `request` for `target` with `index`: the chosen distributions,
/// in name order, or why none can be.
pub fn resolve(index: &Index<'_>, target: &Target, request: &Request) -> Result<Vec<Chosen>, ResolveError> {
    let env = target.marker_environment()?;
    index.take_direct(&request.requirements)?;
    let prerelease_named = request
        .requirements
        .iter()
        .filter_map(|r| crate::name::parse_requirement(r).ok())
        .filter(|r| matches!(&r.version_or_url, Some(pep508_rs::VersionOrUrl::VersionSpecifier(s)) if s.iter().any(|s| s.version().any_prerelease())))
        .map(|r| normalize(r.name.as_ref()))
        .collect();
    let constrained = constrained(&request.constraints, &env)?;
    let provider = Provider {
        constrained,
        failed_builds: Default::default(),
        index,
        target,
        env,
        ranking: target.ranking(),
        request,
        prerelease_named,
        releases: Default::default(),
        left_out: Default::default(),
        unavailable: Default::default(),
        order: request.requirements.iter().filter_map(|r| crate::name::parse_requirement(r).ok()).enumerate().fold(
            HashMap::new(),
            |mut order, (i, r)| {
                order.entry(normalize(r.name.as_ref())).or_insert(i);
                order
            },
        ),
    };
    let solution = match pubgrub::resolve(&provider, Package::Root, Version::new([0])) {
        Ok(s) => s,
        Err(PubGrubError::NoSolution(mut tree)) => {
            let left_out = provider.why_left_out(&tree);
            tree.collapse_no_versions();
            let mut explanation = DefaultStringReporter::report_with_formatter(&tree, &explain::Explain);
            for line in left_out {
                explanation.push_str(&format!("\n  - {line}"));
            }
            for detail in explain::details(&tree) {
                explanation.push_str(&format!("\n{detail}"));
            }
            return Err(ResolveError::Unsatisfiable {
                target: format!("Python {} on {} ({})", target.full_version, target.machine, target.libc),
                explanation,
            });
        }
        Err(PubGrubError::ErrorRetrievingDependencies { source, .. })
        | Err(PubGrubError::ErrorChoosingVersion { source, .. })
        | Err(PubGrubError::ErrorInShouldCancel(source)) => return Err(ResolveError::Index(source)),
    };
    let mut chosen: BTreeMap<String, Chosen> = BTreeMap::new();
    for (package, version) in solution.iter() {
        let Package::Dist(name) = package else { continue };
        let releases = provider.releases(name)?;
        let files = releases.iter().find(|(v, _)| v == version).map(|(_, r)| r.files.clone()).unwrap_or_default();
        let requires = index.requires(name, version, &files)?;
        chosen.insert(
            name.clone(),
            Chosen {
                // PEP 751 writes names normalised.
                name: name.clone(),
                version: version.clone(),
                files,
                extras: BTreeSet::new(),
                dependencies: requires
                    .dist
                    .iter()
                    .filter_map(|r| crate::name::parse_requirement(r).ok())
                    .filter(|r| r.evaluate_markers(provider.env.pep508(), &[]))
                    .map(|r| normalize(r.name.as_ref()))
                    .collect(),
            },
        );
    }
    for (package, _) in solution.iter() {
        if let Package::Extra(name, extra) = package
            && let Some(c) = chosen.get_mut(name)
        {
            c.extras.insert(extra.clone());
            // What the extra adds is a dependency of the distribution in the lock.
            let version = c.version.clone();
            let files = c.files.clone();
            let requires = index.requires(name, &version, &files)?;
            let extra_name = pep508_rs::ExtraName::from_str(extra).ok();
            for r in requires.dist.iter().filter_map(|r| crate::name::parse_requirement(r).ok()) {
                if r.evaluate_markers(provider.env.pep508(), extra_name.as_slice()) {
                    c.dependencies.insert(normalize(r.name.as_ref()));
                }
            }
        }
    }
    Ok(chosen.into_values().collect())
}

/// The location of a file, for the lock: its URL, or its path.
pub fn location(c: &Candidate) -> String {
    match &c.location {
        Location::Url(u, _) | Location::Direct(u) => crate::without_credentials(u),
        Location::File(p) => p.display().to_string(),
    }
}

/// A lock for several targets: what each resolved to, and the packages
/// whose versions still differ between them.
#[derive(Debug, Clone)]
pub struct Locked {
    /// Per target, in the order given.
    pub resolved: Vec<pylock::Resolved>,
    /// `name: version on machine, ...` for each package that differs.
    pub differences: Vec<String>,
}

impl Locked {
    /// Gives the chosen files of find-links directories their sha256,
    /// which the lock records, each file read once (`known` is shared
    /// with other locks of the same run): after resolving, so that the
    /// rounds of a resolution read no wheel.
    pub fn hash_local_files(&mut self, known: &mut HashMap<std::path::PathBuf, String>) -> Result<(), Error> {
        for file in self.resolved.iter_mut().flat_map(|r| r.chosen.iter_mut()).flat_map(|c| c.files.iter_mut()) {
            file.hash_local_file(known)?;
        }
        Ok(())
    }
}

/// Resolves `request` for every target, giving a package the same version
/// on every target unless that is impossible: a package chosen at different
/// versions is preferred at the lowest of them everywhere (the one the most
/// constrained target could take), and the targets are resolved again,
/// until nothing changes. What still differs is reported.
pub fn lock(index: &Index<'_>, targets: &[Target], request: &Request) -> Result<Locked, ResolveError> {
    let mut request = request.clone();
    let mut results: Vec<Vec<Chosen>> = Vec::new();
    for _ in 0..4 {
        results = targets.iter().map(|t| resolve(index, t, &request)).collect::<Result<_, _>>()?;
        let mut by_name: BTreeMap<String, BTreeSet<Version>> = BTreeMap::new();
        for chosen in &results {
            for c in chosen {
                by_name.entry(normalize(&c.name)).or_default().insert(c.version.clone());
            }
        }
        let mut changed = false;
        for (name, versions) in by_name {
            if versions.len() > 1
                && let Some(lowest) = versions.first()
                && request.preferences.get(&name) != Some(lowest)
            {
                request.preferences.insert(name, lowest.clone());
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let mut differences = Vec::new();
    let mut by_name: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (t, chosen) in targets.iter().zip(&results) {
        for c in chosen {
            by_name.entry(c.name.clone()).or_default().push(format!("{} on {}", c.version, t.machine));
        }
    }
    for (name, on) in by_name {
        let versions: BTreeSet<&str> = on.iter().filter_map(|o| o.split(" on ").next()).collect();
        if versions.len() > 1 {
            differences.push(format!("{name}: {} (no version of it fits every platform)", on.join(", ")));
        }
    }
    let resolved =
        targets.iter().cloned().zip(results).map(|(target, chosen)| pylock::Resolved { target, chosen }).collect();
    Ok(Locked { resolved, differences })
}
