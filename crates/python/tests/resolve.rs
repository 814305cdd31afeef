//! The resolver against a local index served by the test kit, whose data the
//! tests control: wheels made here, served as PEP 503 pages with PEP 658
//! metadata (or without, as older indexes do), yanks and Requires-Python.

use std::path::Path;

use oxbuild_python::resolve::{self, Chosen, Index, Request, ResolveError, pylock};
use oxbuild_python::source::Sources;
use oxbuild_python::{Libc, Target};
use oxbuild_testkit::{IndexOptions, PackageIndex, make_wheel};

fn target(machine: &str) -> Target {
    Target {
        major: 3,
        minor: 11,
        interpreter: "/usr/bin/python3.11".into(),
        full_version: "3.11.2".into(),
        machine: machine.into(),
        libc: Libc::Glibc(36),
    }
}

/// A wheel to make: name, version, requires-dist, requires-python, tag.
type Spec<'a> = (&'a str, &'a str, &'a [&'a str], Option<&'a str>, &'a str);

/// Wheels in a fresh directory.
fn wheels(specs: &[Spec<'_>]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, version, requires, python, tag) in specs {
        make_wheel(dir.path(), name, version, tag, requires, *python);
    }
    dir
}

const ANY: &str = "py3-none-any";

/// Runs `solve` on a blocking thread with an [`Index`] over the test
/// index, as `oxbuild lock` runs the solver.
fn with_index<T: Send + 'static>(index: &PackageIndex, solve: impl FnOnce(&Index<'_>) -> T + Send + 'static) -> T {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let http = oxbuild_http::Client::new(Default::default()).unwrap();
    let sources = Sources::new(Vec::new(), Some(&index.url()), &[], false, http).unwrap();
    let store_dir = tempfile::tempdir().unwrap();
    let store = oxbuild_image::BlobStore::open(store_dir.path()).unwrap();
    let handle = runtime.handle().clone();
    std::thread::spawn(move || solve(&Index::new(&sources, &store, handle))).join().unwrap()
}

fn request(requirements: &[&str]) -> Request {
    Request { requirements: requirements.iter().map(|r| r.to_string()).collect(), ..Default::default() }
}

/// Resolves `requirements` for `targets` against `index`.
fn lock(index: &PackageIndex, requirements: &[&str], targets: &[Target]) -> Result<Vec<Vec<Chosen>>, ResolveError> {
    let (request, targets) = (request(requirements), targets.to_vec());
    with_index(index, move |index| {
        targets.iter().map(|t| resolve::resolve(index, t, &request)).collect::<Result<Vec<_>, _>>()
    })
}

fn versions(chosen: &[Chosen]) -> Vec<String> {
    chosen.iter().map(|c| format!("{}=={}", c.name, c.version)).collect()
}

#[test]
fn a_diamond_meets_in_the_middle() {
    let files = wheels(&[
        ("a", "1.0", &["c>=1"], None, ANY),
        ("b", "1.0", &["c<3"], None, ANY),
        ("c", "1.0", &[], None, ANY),
        ("c", "2.0", &[], None, ANY),
        ("c", "3.0", &[], None, ANY),
    ]);
    let index = PackageIndex::start(files.path());
    let out = lock(&index, &["a", "b"], &[target("x86_64")]).unwrap();
    assert_eq!(versions(&out[0]), ["a==1.0", "b==1.0", "c==2.0"]);
}

#[test]
fn a_conflict_backtracks_to_an_older_version() {
    // x 2.0 needs z==1 and y needs z==2: only x 1.0 fits.
    let files = wheels(&[
        ("x", "1.0", &[], None, ANY),
        ("x", "2.0", &["z==1"], None, ANY),
        ("y", "1.0", &["z==2"], None, ANY),
        ("z", "1", &[], None, ANY),
        ("z", "2", &[], None, ANY),
    ]);
    let index = PackageIndex::start(files.path());
    let out = lock(&index, &["x", "y"], &[target("x86_64")]).unwrap();
    assert_eq!(versions(&out[0]), ["x==1.0", "y==1.0", "z==2"]);
}

#[test]
fn an_unsatisfiable_set_names_the_conflict() {
    let files = wheels(&[
        ("p", "1.0", &["r>=2"], None, ANY),
        ("q", "1.0", &["r<2"], None, ANY),
        ("r", "1.0", &[], None, ANY),
        ("r", "2.0", &[], None, ANY),
    ]);
    let index = PackageIndex::start(files.path());
    let e = lock(&index, &["p", "q"], &[target("x86_64")]).unwrap_err().to_string();
    for needle in ["no versions satisfy", "p", "q", "r"] {
        assert!(e.contains(needle), "`{needle}`: {e}");
    }
    assert!(e.contains("Because") || e.contains("because"), "an explanation in sentences: {e}");
}

/// A name no index has, and a version that does not exist, are said so.
#[test]
fn a_misspelt_name_and_a_missing_version_are_named() {
    let files = wheels(&[
        ("flask", "1.0", &[], None, ANY),
        ("flask", "2.0", &[], None, ANY),
        ("future", "1.0", &[], Some(">=3.99"), ANY),
    ]);
    let index = PackageIndex::start(files.path());
    // A project whose every file is for another Python is no unknown name.
    let e = lock(&index, &["future>=5"], &[target("x86_64")]).unwrap_err().to_string();
    assert!(e.contains("future>=5") && !e.contains("no index searched"), "{e}");
    let e = lock(&index, &["flaskk"], &[target("x86_64")]).unwrap_err().to_string();
    assert!(e.contains("flaskk: no index searched has a project of that name") && e.contains("spelling"), "{e}");
    let e = lock(&index, &["flask==9.9"], &[target("x86_64")]).unwrap_err().to_string();
    assert!(e.contains("flask==9.9: no such release; the newest that fit the target are 2.0, 1.0"), "{e}");
}

#[test]
fn extras_yanks_and_requires_python() {
    let files = wheels(&[
        ("e", "1.0", &["speedy; extra == \"fast\"", "plain"], None, ANY),
        ("speedy", "1.0", &[], None, ANY),
        ("plain", "1.0", &[], None, ANY),
        ("old", "1.0", &[], None, ANY),
        ("old", "2.0", &[], None, ANY),
        ("modern", "1.0", &[], Some(">=3.8"), ANY),
        ("modern", "2.0", &[], Some(">=3.12"), ANY),
    ]);
    let index = PackageIndex::start(files.path());
    index.yank_file("old", "old-2.0-py3-none-any.whl", "broken");
    let out = lock(&index, &["e[fast]", "old", "modern"], &[target("x86_64")]).unwrap();
    assert_eq!(versions(&out[0]), ["e==1.0", "modern==1.0", "old==1.0", "plain==1.0", "speedy==1.0"]);
    let e = out[0].iter().find(|c| c.name == "e").unwrap();
    assert!(e.extras.contains("fast") && e.dependencies.contains("speedy"), "{e:?}");
    // PEP 592: a yanked version is chosen for an exact pin of it, and only then.
    let out = lock(&index, &["old==2.0"], &[target("x86_64")]).unwrap();
    assert_eq!(versions(&out[0]), ["old==2.0"]);
    let e = lock(&index, &["old>=2"], &[target("x86_64")]).unwrap_err().to_string();
    assert!(e.contains("old"), "{e}");
}

#[test]
fn metadata_comes_from_the_wheel_when_the_index_serves_none() {
    let files = wheels(&[("a", "1.0", &["b"], None, ANY), ("b", "1.0", &[], None, ANY)]);
    let index = PackageIndex::start_with(files.path(), IndexOptions { no_metadata: true, ..Default::default() });
    let out = lock(&index, &["a"], &[target("x86_64")]).unwrap();
    assert_eq!(versions(&out[0]), ["a==1.0", "b==1.0"]);
    let with = PackageIndex::start(files.path());
    lock(&with, &["a"], &[target("x86_64")]).unwrap();
    assert_eq!(with.wheel_downloads(), 0, "PEP 658 metadata: no wheel was downloaded");
    // One range request answered with the whole wheel (not read), after
    // which the host is not asked for ranges again; then both wheels.
    assert_eq!(index.wheel_downloads(), 3, "{:#?}", index.requests());
}

/// Locks `requirements` for `targets` together.
fn lock_together(index: &PackageIndex, requirements: &[&str], targets: &[Target]) -> resolve::Locked {
    let (request, targets) = (request(requirements), targets.to_vec());
    with_index(index, move |index| resolve::lock(index, &targets, &request).unwrap())
}

/// One lock for two platforms: a package gets one version on both when one
/// fits both (`shared` 2.0 has no arm64 wheel, so both take 1.0), and
/// markers only where none can (`armonly` is needed on arm64 only; `native`
/// has no common version); the lock reads back with the build's own reader.
#[test]
fn one_lock_for_two_platforms_shares_versions_where_it_can() {
    let arm = "cp311-cp311-manylinux_2_17_aarch64";
    let x86 = "cp311-cp311-manylinux_2_17_x86_64";
    let files = wheels(&[
        ("shared", "1.0", &[], None, arm),
        ("shared", "1.0", &[], None, x86),
        ("shared", "2.0", &[], None, x86),
        ("native", "1.0", &[], None, arm),
        ("native", "2.0", &[], None, x86),
        ("helper", "1.0", &["armonly; platform_machine == 'aarch64'"], None, ANY),
        ("armonly", "1.0", &[], None, ANY),
    ]);
    let index = PackageIndex::start(files.path());
    let targets = [target("x86_64"), target("aarch64")];
    let locked = lock_together(&index, &["shared", "native", "helper"], &targets);
    assert_eq!(versions(&locked.resolved[0].chosen), ["helper==1.0", "native==2.0", "shared==1.0"]);
    assert_eq!(versions(&locked.resolved[1].chosen), ["armonly==1.0", "helper==1.0", "native==1.0", "shared==1.0"]);
    assert_eq!(locked.differences, ["native: 2.0 on x86_64, 1.0 on aarch64 (no version of it fits every platform)"]);
    let text = pylock::write(&locked.resolved, &locked.differences, Path::new(".")).unwrap();
    assert!(text.contains("name = \"shared\"\nversion = \"1.0\"\nwheels"), "one entry, no marker:\n{text}");
    assert!(text.contains("# Differs by platform, with markers: native: 2.0 on x86_64, 1.0 on aarch64"), "{text}");
}

/// A native package whose newest version has no arm64 wheel, and a
/// dependency for arm64 only: two platforms, one lock, markers where they
/// differ; the lock reads back with the build's own reader.
#[test]
fn two_platforms_share_versions_where_they_can_and_the_lock_reads_back() {
    let arm = "cp311-cp311-manylinux_2_17_aarch64";
    let x86 = "cp311-cp311-manylinux_2_17_x86_64";
    let files = wheels(&[
        ("native", "1.0", &[], None, arm),
        ("native", "1.0", &[], None, x86),
        ("native", "2.0", &[], None, x86),
        ("app-helper", "1.0", &["armonly; platform_machine == 'aarch64'"], None, ANY),
        ("armonly", "1.0", &[], None, ANY),
    ]);
    let index = PackageIndex::start(files.path());
    let targets = [target("x86_64"), target("aarch64")];
    let out = lock(&index, &["native", "app-helper"], &targets).unwrap();
    assert_eq!(versions(&out[0]), ["app-helper==1.0", "native==2.0"]);
    assert_eq!(versions(&out[1]), ["app-helper==1.0", "armonly==1.0", "native==1.0"]);
    let resolved: Vec<pylock::Resolved> =
        targets.iter().cloned().zip(out).map(|(target, chosen)| pylock::Resolved { target, chosen }).collect();
    let text = pylock::write(&resolved, &[], Path::new(".")).unwrap();
    assert_eq!(
        pylock::write(&resolved, &[], Path::new(".")).unwrap(),
        text,
        "the same resolution writes the same bytes"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pylock.toml");
    std::fs::write(&path, &text).unwrap();
    for (t, expected) in targets
        .iter()
        .zip([["app-helper==1.0", "native==2.0"].as_slice(), &["app-helper==1.0", "armonly==1.0", "native==1.0"]])
    {
        let reqs = oxbuild_python::lockfile::load(&path, t, &Default::default()).unwrap();
        let mut pins: Vec<String> = oxbuild_python::applicable(&reqs, t)
            .unwrap()
            .iter()
            .map(|p| format!("{}=={}", p.name, p.version))
            .collect();
        pins.sort();
        assert_eq!(pins, expected, "{}:\n{text}", t.machine);
    }
    assert!(text.contains("platform_machine == 'aarch64'"), "{text}");
    let _ = Path::new(".");
}

/// A version whose dependencies cannot be read (here a sdist with dynamic
/// metadata and nothing to build it) is passed over for an older one, as
/// when the solver backtracks into a package's old releases; with no other,
/// the reason is named.
#[test]
fn a_version_whose_dependencies_cannot_be_read_is_passed_over() {
    let files = wheels(&[("pkg", "1.0", &[], None, ANY)]);
    let made = std::process::Command::new("python3")
        .args([
            "-c",
            "import io, sys, tarfile\nwith tarfile.open(sys.argv[1], 'w:gz') as t:\n    data = b'Metadata-Version: 2.1\\nName: pkg\\nVersion: 2.0\\n'\n    info = tarfile.TarInfo('pkg-2.0/PKG-INFO')\n    info.size = len(data)\n    t.addfile(info, io.BytesIO(data))\n",
        ])
        .arg(files.path().join("pkg-2.0.tar.gz"))
        .status()
        .unwrap();
    assert!(made.success());
    let index = PackageIndex::start(files.path());
    let out = lock(&index, &["pkg"], &[target("x86_64")]).unwrap();
    assert_eq!(versions(&out[0]), ["pkg==1.0"]);
    let e = lock(&index, &["pkg>=2"], &[target("x86_64")]).unwrap_err().to_string();
    assert!(e.contains("pkg") && e.contains("dependencies are not static"), "{e}");
}

/// A requirement by URL (`name @ URL`, over http or from a file) takes that
/// file as its project's only release, newer ones on the index aside, and
/// resolves its dependencies from the index; the lock records the URL and
/// the sha256 of what was fetched, and reads back with the build's reader.
#[test]
fn requirements_by_url_take_that_file() {
    let files = wheels(&[
        ("web", "1.0", &["dep>=1"], None, ANY),
        ("web", "2.0", &["dep>=1"], None, ANY),
        ("dep", "1.0", &[], None, ANY),
        ("dep", "1.5", &[], None, ANY),
    ]);
    let local = wheels(&[("tool", "0.3", &["dep<1.5"], None, ANY)]);
    let index = PackageIndex::start(files.path());
    let web = format!("web @ {}files/web-1.0-py3-none-any.whl", index.base());
    let tool_path = local.path().join("tool-0.3-py3-none-any.whl");
    let tool = format!("tool @ file://{}", tool_path.display());
    let targets = [target("x86_64")];
    let locked = lock_together(&index, &[&web, &tool], &targets);
    assert_eq!(versions(&locked.resolved[0].chosen), ["dep==1.0", "tool==0.3", "web==1.0"]);
    let text = pylock::write(&locked.resolved, &[], Path::new(".")).unwrap();
    let sha = oxbuild_image::Digest::of(&std::fs::read(&tool_path).unwrap()).hex().to_string();
    assert!(text.contains(&format!("hashes = {{ sha256 = \"{sha}\" }}")), "{text}");
    assert!(text.contains(&format!("url = \"{}files/web-1.0-py3-none-any.whl\"", index.base())), "{text}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pylock.toml");
    std::fs::write(&path, &text).unwrap();
    let reqs = oxbuild_python::lockfile::load(&path, &targets[0], &Default::default()).unwrap();
    assert_eq!(reqs.pins.len(), 3);

    // A URL that does not name a versioned archive of the project is refused, by name.
    let err = with_index(&index, move |index| {
        resolve::resolve(index, &target("x86_64"), &request(&["web @ https://example.invalid/archive/main.zip"]))
            .unwrap_err()
            .to_string()
    });
    assert!(
        err.contains("web @ https://example.invalid/archive/main.zip") && err.contains("carries its version"),
        "{err}"
    );
    let err = with_index(&index, move |index| {
        resolve::resolve(index, &target("x86_64"), &request(&["web @ git+https://example.invalid/web.git"]))
            .unwrap_err()
            .to_string()
    });
    assert!(err.contains("not `git+https` URLs"), "{err}");
}

/// An index without PEP 658 metadata whose file host serves byte ranges:
/// each wheel's METADATA is read from its end and one entry, and no wheel
/// is downloaded.
#[test]
fn metadata_comes_from_range_requests_into_the_wheel() {
    // A wheel bigger than one range request, so its directory and METADATA
    // are fetched apart from its middle.
    let files = wheels(&[("a", "1.0", &["b"], None, ANY), ("b", "1.0", &[], None, ANY)]);
    let big = files.path().join("a-1.0-py3-none-any.whl");
    let padded = tempfile::tempdir().unwrap();
    pad_wheel(&big, &padded.path().join("a-1.0-py3-none-any.whl"));
    std::fs::copy(padded.path().join("a-1.0-py3-none-any.whl"), &big).unwrap();
    let index =
        PackageIndex::start_with(files.path(), IndexOptions { no_metadata: true, ranges: true, ..Default::default() });
    let out = lock(&index, &["a"], &[target("x86_64")]).unwrap();
    assert_eq!(versions(&out[0]), ["a==1.0", "b==1.0"]);
    assert_eq!(index.wheel_downloads(), 0, "{:#?}", index.requests());
    let ranged = index.requests().iter().filter(|r| r.status == 206).count();
    assert!((2..=5).contains(&ranged), "two or three range requests per wheel: {:#?}", index.requests());
}

/// Rewrites the wheel at `from` into `to` with a 300 KiB incompressible
/// file before its METADATA, as a wheel with real content has.
fn pad_wheel(from: &Path, to: &Path) {
    use std::io::{Read as _, Write as _};
    let mut input = zip::ZipArchive::new(std::fs::File::open(from).unwrap()).unwrap();
    let mut out = zip::ZipWriter::new(std::fs::File::create(to).unwrap());
    let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    out.start_file("a/blob.bin", stored).unwrap();
    let mut x: u32 = 1;
    let noise: Vec<u8> = (0..300 << 10)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    out.write_all(&noise).unwrap();
    for i in 0..input.len() {
        let mut f = input.by_index(i).unwrap();
        let name = f.name().unwrap().to_string();
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes).unwrap();
        out.start_file(name, zip::write::SimpleFileOptions::default()).unwrap();
        out.write_all(&bytes).unwrap();
    }
    out.finish().unwrap();
}

#[test]
fn constraints_limit_what_is_required_and_ask_for_nothing_themselves() {
    let files = wheels(&[
        ("app", "1.0", &["lib>=1"], None, ANY),
        ("lib", "1.0", &[], None, ANY),
        ("lib", "2.0", &[], None, ANY),
        ("lib", "3.0", &[], None, ANY),
        ("unused", "1.0", &[], None, ANY),
    ]);
    let index = PackageIndex::start(files.path());
    let constrained = |constraints: &[&str]| {
        let mut request = request(&["app"]);
        request.constraints = constraints.iter().map(|c| c.to_string()).collect();
        with_index(&index, move |index| resolve::resolve(index, &target("x86_64"), &request))
    };
    // A constraint on a dependency holds it back; one on a package nobody
    // requires adds nothing; one whose marker is false does not apply.
    let out = constrained(&["lib<3", "unused==1.0", "lib<2 ; sys_platform == 'win32'"]).unwrap();
    assert_eq!(versions(&out), ["app==1.0", "lib==2.0"]);
    // With no version left, the explanation names the constraint.
    let e = constrained(&["lib>=4"]).unwrap_err().to_string();
    assert!(e.contains("outside the constraint `lib>=4`"), "{e}");
}

/// Sdists of one project that keep failing to build are not all tried:
/// after a few, its older sdist-only versions are left unbuilt (a wheel
/// still counts), and an explanation says so.
#[test]
fn after_a_few_sdists_fail_to_build_the_older_ones_are_left_unbuilt() {
    let files = wheels(&[("pkg", "1.0", &[], None, ANY)]);
    for v in 2..=7 {
        let made = std::process::Command::new("python3")
            .args([
                "-c",
                "import io, sys, tarfile\nv = sys.argv[2]\nwith tarfile.open(sys.argv[1], 'w:gz') as t:\n    data = ('Metadata-Version: 2.1\\nName: pkg\\nVersion: %s\\n' % v).encode()\n    info = tarfile.TarInfo('pkg-%s/PKG-INFO' % v)\n    info.size = len(data)\n    t.addfile(info, io.BytesIO(data))\n",
            ])
            .arg(files.path().join(format!("pkg-{v}.0.tar.gz")))
            .arg(format!("{v}.0"))
            .status()
            .unwrap();
        assert!(made.success());
    }
    let index = PackageIndex::start(files.path());
    let sdists_fetched = |index: &PackageIndex| {
        index.requests().iter().filter(|r| r.line.starts_with("GET") && r.line.contains(".tar.gz")).count()
    };
    let out = lock(&index, &["pkg"], &[target("x86_64")]).unwrap();
    assert_eq!(versions(&out[0]), ["pkg==1.0"], "the wheel is still taken");
    assert_eq!(sdists_fetched(&index), 3, "7.0, 6.0 and 5.0 were tried; 4.0 to 2.0 were not");
    let e = lock(&index, &["pkg>=2"], &[target("x86_64")]).unwrap_err().to_string();
    assert!(e.contains("left unbuilt because 3 that were tried failed to build the same way"), "{e}");
    // The reason in full once, for the first version tried (7.0); the
    // others by their first line, naming it: the report need not list
    // them in the order tried.
    assert_eq!(e.matches("(its output is shown once, for pkg 7.0)").count(), 2, "{e}");
}

/// Pre-releases are left out, unless asked for, named, or all a project
/// has (sqlalchemy2-stubs never made a final release): then its newest is
/// taken, and other projects still get final releases.
#[test]
fn a_project_with_only_pre_releases_is_installable_without_asking() {
    let files = wheels(&[
        ("app", "1.0", &["stubs", "lib"], None, ANY),
        ("stubs", "0.0.2a1", &[], None, ANY),
        ("stubs", "0.0.2a3", &[], None, ANY),
        ("lib", "1.0", &[], None, ANY),
        ("lib", "2.0a1", &[], None, ANY),
    ]);
    let index = PackageIndex::start(files.path());
    let out = lock(&index, &["app"], &[target("x86_64")]).unwrap();
    assert_eq!(versions(&out[0]), ["app==1.0", "lib==1.0", "stubs==0.0.2a3"]);
    // A project with a final release that does not fit the target is not
    // one without: its pre-release still needs asking for.
    let files =
        wheels(&[("tool", "1.0", &[], None, "cp312-cp312-manylinux_2_17_x86_64"), ("tool", "2.0b1", &[], None, ANY)]);
    let index = PackageIndex::start(files.path());
    assert!(lock(&index, &["tool"], &[target("x86_64")]).is_err());
}
