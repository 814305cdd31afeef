//! Images moving without a registry: OCI layouts and archives out of a build,
//! into podman, umoci and skopeo, and back into registries with push and copy.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Workspace, build_json, run};
use oxbuild_testkit::{Container, Registry, base_archive, http_get, podman_output, unique_name};

fn tool(cmd: &mut Command) -> String {
    let out = cmd.output().expect("the tool runs");
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn both_archive_kinds_load_into_podman_and_run() {
    let ws = Workspace::new();
    let base = format!("oci-archive:{}", base_archive().display());
    for kind in ["oci-archive", "docker-archive"] {
        let name = format!("localhost/oxbuild-test/{}:v1", unique_name(kind));
        let file = ws.tmp.path().join(format!("{kind}.tar"));
        let dest = format!("{kind}:{}", file.display());
        build_json(
            ws.oxbuild().args(["build", "-q", "--base", &base, "--output", &dest, "--tag", &name]).arg(ws.app()),
        );
        let loaded = podman_output(&["load", "-q", "-i", file.to_str().unwrap()]);
        assert!(loaded.status.success(), "podman load of {kind}: {}", String::from_utf8_lossy(&loaded.stderr));
        let (container, port) = Container::serve(&name, 8000);
        let answer = http_get(port, "/health", Duration::from_secs(60));
        assert_eq!(answer.map(|a| a.0), Some(200), "{kind} image did not serve; logs:\n{}", container.logs());
    }
}

#[test]
fn an_archive_loads_into_podman_whatever_names_it_and_json_lists_every_warning() {
    let ws = Workspace::new();
    let base = format!("oci-archive:{}", base_archive().display());
    // No name at all: it loads untagged (a bare `latest` would be refused).
    let plain = ws.tmp.path().join("plain.tar");
    build_json(
        ws.oxbuild()
            .args(["build", "-q", "--base", &base, "--output"])
            .arg(format!("oci-archive:{}", plain.display()))
            .arg(ws.app()),
    );
    let loaded = podman_output(&["load", "-q", "-i", plain.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&loaded.stdout).into_owned();
    assert!(loaded.status.success(), "podman load: {}", String::from_utf8_lossy(&loaded.stderr));
    if let Some(id) = text.split("sha256:").nth(1) {
        let _ = podman_output(&["rmi", id.trim()]);
    }
    // A whole reference after the file's first colon names it.
    let name = format!("localhost/oxbuild-test/{}:v1", unique_name("named"));
    let named = ws.tmp.path().join("named.tar");
    build_json(
        ws.oxbuild()
            .args(["build", "-q", "--base", &base, "--output"])
            .arg(format!("oci-archive:{}:{name}", named.display()))
            .arg(ws.app()),
    );
    let loaded = podman_output(&["load", "-q", "-i", named.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&loaded.stdout);
    assert!(loaded.status.success() && text.contains(&name), "{text}{}", String::from_utf8_lossy(&loaded.stderr));
    let _ = podman_output(&["rmi", &name]);
    // What the command warned about on stderr is in its JSON too.
    let report = build_json(ws.oxbuild().args(["build", "-q", "--base", &base, "--tag", &name]).arg(ws.app()));
    let warnings: Vec<&str> = report["warnings"].as_array().unwrap().iter().filter_map(|w| w.as_str()).collect();
    assert!(warnings.iter().any(|w| w.starts_with("--tag names the image for --push and --output only")), "{report}");
}

#[test]
fn a_layout_is_accepted_by_skopeo_and_unpacked_by_umoci_with_owners_and_modes() {
    let registry = Registry::start();
    let ws = Workspace::new();
    // umoci reads OCI media types only: build this one without a healthcheck.
    let toml = ws.app().join("oxbuild.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(&toml, &text[..text.find("[healthcheck]").unwrap()]).unwrap();
    ws.edit_config("ports = [8000]", "ports = [8000]\ndirs = [\"/datastore\", \"/var/lib/plainweb\"]");
    std::fs::write(ws.app().join("plainweb/run.sh"), "#!/bin/sh\nexec python3 -m plainweb\n").unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(ws.app().join("plainweb/run.sh"), std::fs::Permissions::from_mode(0o775)).unwrap();

    let layout = ws.tmp.path().join("layout");
    let base = format!("oci-archive:{}", base_archive().display());
    let report = build_json(
        ws.oxbuild()
            .args(["build", "-q", "--base", &base, "--output"])
            .arg(format!("oci:{}:v1", layout.display()))
            .arg(ws.app()),
    );
    assert_eq!(report["mediaType"], "application/vnd.oci.image.manifest.v1+json");

    let target = registry.reference("team/from-layout:v1");
    tool(
        Command::new("skopeo")
            .args(["copy", "--quiet", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:v1", layout.display()))
            .arg(format!("docker://{target}")),
    );
    assert_eq!(registry.skopeo_inspect(&target, false)["Digest"], report["digest"]);

    let bundle = ws.tmp.path().join("bundle");
    tool(Command::new("umoci").args(["unpack", "--image"]).arg(format!("{}:v1", layout.display())).arg(&bundle));
    let rootfs = bundle.join("rootfs");
    use std::os::unix::fs::MetadataExt as _;
    let meta = |p: &str| std::fs::symlink_metadata(rootfs.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    let main = meta("app/plainweb/__main__.py");
    assert_eq!((main.uid(), main.gid(), main.mode() & 0o7777), (1000, 1000, 0o644));
    assert_eq!(meta("app/plainweb/run.sh").mode() & 0o7777, 0o755, "executable bits survive");
    let home = meta("home/app");
    assert_eq!((home.uid(), home.is_dir()), (1000, true));
    assert_eq!(meta("app").uid(), 1000);
    for dir in ["datastore", "var/lib/plainweb"] {
        let d = meta(dir);
        assert_eq!((d.uid(), d.gid(), d.is_dir(), d.mode() & 0o7777), (1000, 1000, true, 0o755), "{dir}");
    }
    assert_eq!(meta("var/lib").uid(), 0, "the base's own directories stay root's");
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap();
    assert!(passwd.lines().any(|l| l.starts_with("app:x:1000:1000:")), "{passwd}");
    assert!(passwd.starts_with("root:x:0:0:"), "the base's users are kept");
    assert!(rootfs.join("usr/bin/python3").exists(), "the base's files are there");
}

#[test]
fn push_and_copy_move_images_between_archives_layouts_and_registries() {
    let one = Registry::start();
    let two = Registry::start();
    let ws = Workspace::new();
    let archive = ws.tmp.path().join("image.tar");
    let base = format!("oci-archive:{}", base_archive().display());
    let built = build_json(
        ws.oxbuild()
            .args(["build", "-q", "--base", &base, "--output"])
            .arg(format!("oci-archive:{}", archive.display()))
            .arg(ws.app()),
    );
    let digest = built["digest"].as_str().unwrap();

    // Air-gapped: the archive made earlier goes to a registry.
    let first = one.reference("team/airgap:v1");
    let pushed =
        build_json(ws.oxbuild().args(["push", "-q"]).arg(format!("oci-archive:{}", archive.display())).arg(&first));
    assert_eq!(pushed["digest"], digest);
    assert_eq!(one.skopeo_inspect(&first, false)["Digest"], digest);

    // Registry to registry streams every blob; within a registry it mounts.
    let second = two.reference("mirror/app:v1");
    let copied = build_json(ws.oxbuild().args(["copy", "-q", &first, &second]));
    assert!(copied["push"]["bytes_uploaded"].as_u64().unwrap() > 1_000_000, "{copied}");
    assert_eq!(two.skopeo_inspect(&second, false)["Digest"], digest);
    let third = one.reference("other/app:v2");
    let mounted = build_json(ws.oxbuild().args(["copy", "-q", &first, &third]));
    // Every blob, the config too: the first push left them in that registry.
    assert_eq!(mounted["push"]["blobs_mounted"], 4, "{mounted}");
    assert_eq!(mounted["push"]["blobs_uploaded"], 0, "{mounted}");

    // Inspect reads any of them without pulling layers.
    let inspected = build_json(ws.oxbuild().args(["inspect", &third]));
    assert_eq!(inspected["digest"], digest);
    assert_eq!(inspected["configJson"]["config"]["User"], "1000:1000");
    let (code, human, _) = run(ws.oxbuild().args(["inspect"]).arg(format!("oci-archive:{}", archive.display())));
    assert_eq!(code, 0);
    assert!(human.contains(digest) && human.contains("user         1000:1000"), "{human}");

    // push refuses a non-registry destination.
    let (code, _, stderr) =
        run(ws.oxbuild().args(["push", "-q", &first]).arg(format!("oci:{}", ws.tmp.path().join("l").display())));
    assert_eq!(code, 3, "{stderr}");
}

#[test]
fn a_base_from_an_archive_gives_the_same_layers_as_from_a_registry() {
    let registry = Registry::start();
    let from_registry = registry.seed("python:3.11");
    let ws = Workspace::new();
    let labels = |base: &str, name: &str| {
        let layout = ws.tmp.path().join(name);
        let report = build_json(
            ws.oxbuild()
                .args(["build", "-q", "--base", base, "--output"])
                .arg(format!("oci:{}", layout.display()))
                .arg(ws.app()),
        );
        let config = layout.join("blobs/sha256").join(&report["config"].as_str().unwrap()["sha256:".len()..]);
        let config: serde_json::Value = serde_json::from_slice(&std::fs::read(config).unwrap()).unwrap();
        (report["layers"].clone(), config["config"]["Labels"].clone())
    };
    let (layers_a, labels_a) = labels(&from_registry, "a");
    let (layers_b, mut labels_b) = labels(&format!("oci-archive:{}", base_archive().display()), "b");
    assert_eq!(layers_a, layers_b, "the same layers, whichever way the base came");
    // Only a registry base has a name to record; everything else is the same.
    assert_eq!(labels_a["org.opencontainers.image.base.name"], from_registry.as_str());
    assert!(labels_b.get("org.opencontainers.image.base.name").is_none());
    labels_b["org.opencontainers.image.base.name"] = labels_a["org.opencontainers.image.base.name"].clone();
    assert_eq!(labels_a, labels_b);
    assert!(labels_a["org.opencontainers.image.base.digest"].as_str().unwrap().starts_with("sha256:"));
}

#[test]
fn a_tampered_layout_is_refused_and_nothing_is_pushed() {
    let registry = Registry::start();
    let ws = Workspace::new();
    let layout = ws.tmp.path().join("layout");
    let base = format!("oci-archive:{}", base_archive().display());
    let built = build_json(
        ws.oxbuild()
            .args(["build", "-q", "--base", &base, "--output"])
            .arg(format!("oci:{}", layout.display()))
            .arg(ws.app()),
    );
    let app_layer = built["layers"][2]["digest"].as_str().unwrap();
    let blob = layout.join("blobs/sha256").join(&app_layer["sha256:".len()..]);
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[10] ^= 0xff;
    std::fs::write(&blob, bytes).unwrap();

    let target = registry.reference("team/tampered:v1");
    let (code, _, stderr) =
        run(ws.oxbuild().args(["push", "-q"]).arg(format!("oci:{}", layout.display())).arg(&target));
    assert_eq!(code, 4, "{stderr}");
    assert!(stderr.contains(app_layer) && stderr.contains("does not match"), "{stderr}");
    let inspect = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false"])
        .arg(format!("docker://{target}"))
        .output()
        .unwrap();
    assert!(!inspect.status.success(), "no tag may exist after a refused push");
}
