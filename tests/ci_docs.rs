//! The Kubernetes Job and the Tekton Task of docs/ci.md, checked with no API
//! server: the Job's pod spec runs under `podman kube play` (as a Pod: podman
//! has no Jobs) with oxbuild's released image against a test registry, and
//! the Task passes docs/schemas/tekton-task-v1.json with every parameter,
//! workspace and result it refers to declared.

mod common;

use std::path::Path;

use common::{Workspace, run};
use oxbuild_testkit::{Registry, podman_output, repo_root};

/// The ```yaml blocks of docs/ci.md.
fn yaml_blocks() -> Vec<String> {
    let text = std::fs::read_to_string(repo_root().join("docs/ci.md")).unwrap();
    text.split("```yaml\n").skip(1).filter_map(|b| b.split("\n```").next()).map(String::from).collect()
}

fn block(kind: &str) -> String {
    yaml_blocks()
        .into_iter()
        .find(|b| b.contains(&format!("\nkind: {kind}\n")))
        .unwrap_or_else(|| panic!("no {kind} in docs/ci.md"))
}

/// Runs `script` with the validators' Python (PyYAML, jsonschema), `args` as argv.
fn python(script: &str, args: &[&str]) -> (i32, String, String) {
    let python = oxbuild_testkit::validators().join("bin/python");
    run(std::process::Command::new(python).arg("-c").arg(script).args(args))
}

/// The Job as a Pod for `podman kube play`: its template's spec, on the
/// host's network (the test registry is on loopback), with the images and
/// registry of the test and the volumes as host directories.
const JOB_TO_POD: &str = r#"
import json, sys, yaml
job, image, registry, source, auth, out = sys.argv[1:7]
job = yaml.safe_load(open(job))
assert job["kind"] == "Job" and job["apiVersion"] == "batch/v1", job
spec = job["spec"]["template"]["spec"]
def swap(v):
    if isinstance(v, str):
        return v.replace("registry.example.com/tools/oxbuild:0.1.0", image).replace("registry.example.com/", registry + "/")
    if isinstance(v, list):
        return [swap(x) for x in v]
    if isinstance(v, dict):
        return {k: swap(x) for k, x in v.items()}
    return v
spec = swap(spec)
spec["hostNetwork"] = True
paths = {"source": source, "registry-auth": auth}
spec["volumes"] = [
    {"name": v["name"], "hostPath": {"path": paths[v["name"]], "type": "Directory"}} if v["name"] in paths else v
    for v in spec["volumes"]
]
pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "oxbuild-ci-docs"}, "spec": spec}
open(out, "w").write(yaml.safe_dump(pod))
"#;

#[test]
fn the_kubernetes_jobs_pod_builds_and_pushes_with_the_cache_repository() {
    let registry = Registry::start();
    let image = common::release_image(&registry);
    let base = registry.seed("python:3.11");
    let ws = Workspace::new();
    ws.edit_config("base = \"127.0.0.1:5000/python:3.11\"", &format!("base = \"{base}\""));
    let auth = ws.tmp.path().join("auth");
    std::fs::create_dir_all(&auth).unwrap();
    std::fs::write(auth.join(".dockerconfigjson"), "{\"auths\": {}}").unwrap();
    let job = ws.tmp.path().join("job.yaml");
    std::fs::write(&job, block("Job")).unwrap();
    let pod = ws.tmp.path().join("pod.yaml");
    let (code, _, stderr) = python(
        JOB_TO_POD,
        &[
            job.to_str().unwrap(),
            &image,
            registry.host(),
            ws.app().to_str().unwrap(),
            auth.to_str().unwrap(),
            pod.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let pod_path = pod.to_str().unwrap();
    let _ = podman_output(&["kube", "down", pod_path]);
    let out = podman_output(&["kube", "play", "--tls-verify=false", pod_path]);
    assert!(out.status.success(), "podman kube play: {}", String::from_utf8_lossy(&out.stderr));
    let waited = podman_output(&["wait", "oxbuild-ci-docs-build"]);
    let logs = podman_output(&["logs", "oxbuild-ci-docs-build"]);
    let logs = format!("{}{}", String::from_utf8_lossy(&logs.stdout), String::from_utf8_lossy(&logs.stderr));
    let user = podman_output(&["inspect", "--format", "{{.Config.User}}", "oxbuild-ci-docs-build"]);
    let _ = podman_output(&["kube", "down", pod_path]);
    assert_eq!(
        String::from_utf8_lossy(&waited.stdout).trim(),
        "0",
        "the Job's container failed ({}):\n{logs}",
        String::from_utf8_lossy(&waited.stderr)
    );
    assert!(String::from_utf8_lossy(&user.stdout).contains("40123"), "{}", String::from_utf8_lossy(&user.stdout));
    let tags = registry.skopeo_list_tags("team/app");
    assert!(tags.contains(&"v1".to_string()), "{tags:?}\n{logs}");
    let cached = registry.skopeo_list_tags("team/cache");
    assert!(cached.iter().any(|t| t.starts_with("scan-v")), "the cache repository was used: {cached:?}");
}

/// Checks a Task: the schema, and that what it refers to is declared.
const CHECK_TASK: &str = r#"
import json, re, sys, yaml, jsonschema
schema = json.load(open(sys.argv[1]))
text = open(sys.argv[2]).read()
task = yaml.safe_load(text)
errors = [e.message + " at " + "/".join(map(str, e.absolute_path)) for e in jsonschema.Draft202012Validator(schema).iter_errors(task)]
spec = task.get("spec", {})
declared = {
    "params": {p["name"] for p in spec.get("params", [])},
    "workspaces": {w["name"] for w in spec.get("workspaces", [])},
    "results": {r["name"] for r in spec.get("results", [])},
}
for kind, name in re.findall(r"\$\((params|workspaces|results)\.([-a-zA-Z0-9_]+)", text):
    if name not in declared[kind]:
        errors.append(f"$({kind}.{name}) is not declared")
print("\n".join(errors))
sys.exit(1 if errors else 0)
"#;

fn check_task(text: &str, dir: &Path) -> (i32, String) {
    let file = dir.join("task.yaml");
    std::fs::write(&file, text).unwrap();
    let schema = repo_root().join("docs/schemas/tekton-task-v1.json");
    let (code, stdout, stderr) = python(CHECK_TASK, &[schema.to_str().unwrap(), file.to_str().unwrap()]);
    (code, format!("{stdout}{stderr}"))
}

#[test]
fn the_tekton_task_passes_its_schema_and_declares_what_it_uses() {
    let dir = tempfile::tempdir().unwrap();
    let task = block("Task");
    let (code, out) = check_task(&task, dir.path());
    assert_eq!(code, 0, "{out}");
    // The check can fail: a misspelt field, and a parameter never declared.
    let (code, out) = check_task(&task.replace("workingDir:", "workingdir:"), dir.path());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("workingdir"), "{out}");
    let (code, out) = check_task(&task.replace("$(params.image)", "$(params.imgae)"), dir.path());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("$(params.imgae) is not declared"), "{out}");
}
