//! Signatures in cosign's classic key-based format: made with keys from
//! openssl, checked field by field and verified by Python's `cryptography`
//! (not by oxbuild's code), accumulated when two signers race, carried by
//! copy and push, and judged by `oxbuild verify` with and without a policy.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Workspace, base, build_json, offline_pyweb, run};
use oxbuild_image::BlobStore;
use oxbuild_registry::{Client, ClientOptions, Reference};
use oxbuild_testkit::{Fault, Proxy, Registry};
use serde_json::Value;

/// Key pairs made by openssl: `<name>.pem` (PKCS#8), `<name>.enc.pem`
/// (encrypted with `passphrase`) and `<name>.pub`.
fn keys(dir: &Path, name: &str, passphrase: &str) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl runs");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let (pem, enc, public) = (format!("{name}.pem"), format!("{name}.enc.pem"), format!("{name}.pub"));
    openssl(&["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", &pem]);
    openssl(&[
        "pkcs8",
        "-topk8",
        "-v2",
        "aes-256-cbc",
        "-in",
        &pem,
        "-passout",
        &format!("pass:{passphrase}"),
        "-out",
        &enc,
    ]);
    openssl(&["pkey", "-in", &pem, "-pubout", "-out", &public]);
}

/// Checks the `.sig` manifest of `digest` in `repo` over plain HTTP with
/// Python: media types, the annotation, the payload naming the digest, and
/// each ECDSA signature against `public`. Returns how many verified.
fn python_verifies(host: &str, repo: &str, digest: &str, public: &Path) -> usize {
    let script = r#"
import base64, hashlib, json, sys, urllib.request
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
host, repo, digest, pub = sys.argv[1:5]
def get(path, accept=None):
    req = urllib.request.Request(f"http://{host}/v2/{repo}/{path}")
    if accept:
        req.add_header("Accept", accept)
    return urllib.request.urlopen(req).read()
m = json.loads(get("manifests/" + digest.replace(":", "-") + ".sig", "application/vnd.oci.image.manifest.v1+json"))
key = serialization.load_pem_public_key(open(pub, "rb").read())
ok = 0
for layer in m["layers"]:
    assert layer["mediaType"] == "application/vnd.dev.cosign.simplesigning.v1+json", layer
    payload = get("blobs/" + layer["digest"])
    assert "sha256:" + hashlib.sha256(payload).hexdigest() == layer["digest"]
    claims = json.loads(payload)
    assert claims["critical"]["image"]["docker-manifest-digest"] == digest, claims
    assert claims["critical"]["type"] == "cosign container image signature", claims
    sig = base64.b64decode(layer["annotations"]["dev.cosignproject.cosign/signature"])
    try:
        key.verify(sig, payload, ec.ECDSA(hashes.SHA256()))
        ok += 1
    except Exception:
        pass
print(ok)
"#;
    let python = oxbuild_testkit::validators().join("bin/python");
    let (code, out, err) = run(Command::new(python).args(["-c", script, host, repo, digest]).arg(public));
    assert_eq!(code, 0, "the independent check failed:\n{err}");
    out.trim().parse().unwrap()
}

fn verify(ws: &Workspace, image: &str, extra: &[&str]) -> (i32, Value, String) {
    let (code, stdout, stderr) = run(ws.oxbuild().args(["verify", "--json", image]).args(extra));
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}\n{stderr}"));
    (code, report, stderr)
}

fn rule<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule"].as_str().unwrap().starts_with(name))
        .unwrap_or_else(|| panic!("no rule {name}: {report}"))
}

fn path(p: PathBuf) -> String {
    p.display().to_string()
}

#[test]
fn signed_images_verify_here_and_after_crossing_an_air_gap_and_others_do_not() {
    let registry = Registry::start();
    let elsewhere = Registry::start();
    let ws = offline_pyweb();
    let k = ws.tmp.path();
    keys(k, "release", "corr3ct-horse");
    keys(k, "stranger", "x");
    let target = format!("{}/team/pyweb:v1", registry.host());
    let pem = std::fs::read_to_string(k.join("release.enc.pem")).unwrap();
    // The key from the environment, encrypted, with its passphrase.
    let (code, stdout, stderr) = run(ws
        .oxbuild()
        .env("OXBUILD_SIGN_KEY", &pem)
        .env("OXBUILD_SIGN_PASSPHRASE", "corr3ct-horse")
        .args(["build", "--json", "--base", &base(), "--push", "--tag", &target])
        .arg(ws.app()));
    assert_eq!(code, 0, "{stderr}");
    for secret in ["corr3ct-horse", "PRIVATE KEY", pem.lines().nth(1).unwrap()] {
        assert!(!stdout.contains(secret) && !stderr.contains(secret), "`{secret}` leaked");
    }
    let built: Value = serde_json::from_str(&stdout).unwrap();
    let digest = built["digest"].as_str().unwrap();

    assert_eq!(python_verifies(registry.host(), "team/pyweb", digest, &k.join("release.pub")), 1);
    let (code, report, _) = verify(&ws, &target, &["--key", &path(k.join("release.pub"))]);
    assert_eq!(code, 0, "{report}");
    assert!(report["rules"].as_array().unwrap().iter().all(|r| r["ok"] == true), "{report}");
    let (code, report, stderr) = verify(&ws, &target, &["--key", &path(k.join("stranger.pub"))]);
    assert_eq!(code, 10, "the wrong key: {stderr}");
    assert_eq!(rule(&report, "signature")["ok"], false, "{report}");
    assert_eq!(report["error"]["code"], 10);

    // Another image (unsigned): fails; with the first image's signature put in its place: still fails.
    let other = Workspace::of("pyweb");
    other.edit("pyweb/app.py", "", "# another image\n");
    let b_target = format!("{}/team/pyweb:other", registry.host());
    let b = build_json(
        other
            .oxbuild()
            .args(["build", "-q", "--no-attach", "--base", &base(), "--push", "--tag", &b_target])
            .arg(other.app()),
    );
    let b_digest: oxbuild_image::Digest = b["digest"].as_str().unwrap().parse().unwrap();
    let (code, report, _) = verify(&ws, &b_target, &["--key", &path(k.join("release.pub"))]);
    assert_eq!(code, 10);
    assert!(rule(&report, "signature")["detail"].as_str().unwrap().contains("no signature names"), "{report}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = Client::new(ClientOptions::default()).unwrap();
        let repo = Reference::parse(&format!("{}/team/pyweb", registry.host())).unwrap();
        let a_sig = repo.with_tag(&format!("{}.sig", digest.replace(':', "-")));
        let (bytes, media_type, _) = client.get_manifest(&a_sig).await.unwrap();
        client.put_manifest(&repo, &oxbuild_sign::sig_tag(&b_digest), &bytes, &media_type).await.unwrap();
    });
    let (code, report, _) = verify(&ws, &b_target, &["--key", &path(k.join("release.pub"))]);
    assert_eq!(code, 10);
    let detail = rule(&report, "signature")["detail"].as_str().unwrap();
    assert!(detail.contains("name another image"), "A's signature does not count for B: {report}");

    // copy to an oci-archive, push to another registry: it verifies there, and cosign's tag is there too.
    let moved = format!("{}/air/pyweb:v1", elsewhere.host());
    common::carry_through_archive(&ws, &target, &moved);
    let (code, report, _) = verify(&ws, &moved, &["--key", &path(k.join("release.pub"))]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(python_verifies(elsewhere.host(), "air/pyweb", digest, &k.join("release.pub")), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_signatures_added_at_once_are_both_kept() {
    let registry = Registry::start();
    // Signer A's write of the .sig tag is held until B's has landed; B's check then sees A's.
    let proxy = std::sync::Arc::new(Proxy::start(registry.host(), Fault::HoldFirstPut { path: ".sig" }));
    let dir = tempfile::tempdir().unwrap();
    keys(dir.path(), "a", "p");
    keys(dir.path(), "b", "p");
    let store = BlobStore::open(dir.path().join("store")).unwrap();
    let config =
        serde_json::json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}});
    let image =
        oxbuild_image::Image::assemble(oxbuild_image::Format::Oci, &config, Vec::new(), &Default::default()).unwrap();
    let repo = Reference::parse(&format!("{}/team/app", proxy.host())).unwrap();
    let client = Client::new(ClientOptions::default()).unwrap();
    oxbuild_registry::push(&client, &image, &repo, &["v1".into()], &[]).await.unwrap();
    let sign = |name: &str| {
        let pem = std::fs::read_to_string(dir.path().join(format!("{name}.pem"))).unwrap();
        let key = oxbuild_sign::Key::from_pem(&pem, None, name).unwrap();
        oxbuild_engine::attest::signature(&key, &image, &repo.name(), &store).unwrap()
    };
    let (sig_a, sig_b) = (sign("a"), sign("b"));
    let (c, r, s) = (client.clone(), repo.clone(), store.clone());
    let first = tokio::spawn(async move {
        oxbuild_location::attach(&oxbuild_location::Target { client: &c, store: &s }, &r, &[sig_a]).await
    });
    let p = proxy.clone();
    assert!(tokio::task::spawn_blocking(move || p.wait_held()).await.unwrap(), "signer A's PUT is held");
    let target = oxbuild_location::Target { client: &client, store: &store };
    oxbuild_location::attach(&target, &repo, &[sig_b]).await.expect("signer B signs");
    first.await.unwrap().expect("signer A signs");

    let direct = Reference::parse(&format!("{}/team/app", registry.host())).unwrap();
    let sig = direct.with_tag(&oxbuild_sign::sig_tag(&image.digest()));
    let pulled = oxbuild_registry::open(&client, &sig, &oxbuild_image::Platform::host()).await.unwrap();
    assert_eq!(oxbuild_sign::signatures(&pulled.image).len(), 2, "both signatures are layers of the .sig manifest");
    for name in ["a", "b"] {
        let n = python_verifies(
            registry.host(),
            "team/app",
            image.digest().as_str(),
            &dir.path().join(format!("{name}.pub")),
        );
        assert_eq!(n, 1, "{name}'s signature verifies");
    }
    let referrers = oxbuild_registry::open_referrers(&client, &direct, &image.digest()).await.unwrap();
    let sigs: Vec<_> = referrers.iter().filter(|r| oxbuild_sign::is_signature(r)).collect();
    assert_eq!(
        sigs.len(),
        1,
        "the referrers list the merged .sig manifest once: {:?}",
        referrers.iter().map(|r| r.digest()).collect::<Vec<_>>()
    );
    assert_eq!(sigs[0].digest(), pulled.image.digest());
}

/// A key in cosign's encrypted format (`cosign generate-key-pair`), written
/// by Python from its documented shape: scrypt, then NaCl's secretbox over
/// the PKCS#8 DER. Returns (key PEM, public PEM).
fn cosign_key(password: &str) -> (String, String) {
    let script = r#"
import base64, hashlib, json, os, sys
import nacl.secret
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
key = ec.generate_private_key(ec.SECP256R1())
der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
salt, nonce = os.urandom(32), os.urandom(24)
box_key = hashlib.scrypt(sys.argv[1].encode(), salt=salt, n=32768, r=8, p=1, dklen=32, maxmem=128 * 1024 * 1024)
ciphertext = nacl.secret.SecretBox(box_key).encrypt(der, nonce).ciphertext
b64 = lambda b: base64.b64encode(b).decode()
doc = {"kdf": {"name": "scrypt", "params": {"N": 32768, "r": 8, "p": 1}, "salt": b64(salt)},
       "cipher": {"name": "nacl/secretbox", "nonce": b64(nonce)}, "ciphertext": b64(ciphertext)}
body = base64.b64encode(json.dumps(doc).encode()).decode()
lines = [body[i:i + 64] for i in range(0, len(body), 64)]
print("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n" + "\n".join(lines) + "\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----")
print(key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode())
"#;
    let python = oxbuild_testkit::validators().join("bin/python");
    let (code, out, err) = run(Command::new(python).args(["-c", script, password]));
    assert_eq!(code, 0, "{err}");
    let split = out.find("-----BEGIN PUBLIC KEY-----").unwrap();
    (out[..split].to_string(), out[split..].to_string())
}

#[test]
fn a_cosign_encrypted_key_signs_and_a_wrong_password_is_said() {
    let ws = offline_pyweb();
    let (key, public) = cosign_key("cosign-pw");
    std::fs::write(ws.tmp.path().join("cosign.key"), &key).unwrap();
    std::fs::write(ws.tmp.path().join("cosign.pub"), &public).unwrap();
    let archive = format!("oci-archive:{}", ws.tmp.path().join("app.tar").display());
    build_json(ws.oxbuild().args(["build", "-q", "--base", &base(), "--output", &archive]).arg(ws.app()));
    let sign = |password: &str| {
        run(ws
            .oxbuild()
            .env("OXBUILD_SIGN_PASSPHRASE", password)
            .args(["sign", &archive, "--key"])
            .arg(ws.tmp.path().join("cosign.key")))
    };
    let (code, _, stderr) = sign("wrong");
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("cosign.key") && stderr.contains("wrong password"), "{stderr}");
    let (code, _, stderr) = sign("cosign-pw");
    assert_eq!(code, 0, "{stderr}");
    let (code, report, _) = verify(&ws, &archive, &["--key", &path(ws.tmp.path().join("cosign.pub"))]);
    assert_eq!(code, 0, "{report}");
}

#[test]
fn policies_deny_licenses_foreign_bases_and_missing_signatures() {
    let registry = Registry::start();
    let ws = offline_pyweb();
    let k = ws.tmp.path();
    keys(k, "release", "p");
    keys(k, "auditor", "p");
    let base_ref = registry.seed("python:3.11");
    let target = format!("{}/team/pyweb:v1", registry.host());
    build_json(
        ws.oxbuild()
            .args(["build", "-q", "--base", &base_ref, "--push", "--tag", &target, "--sign-key"])
            .arg(k.join("release.pem"))
            .arg(ws.app()),
    );
    let policy = k.join("policy.toml");
    let write = |text: &str| std::fs::write(&policy, text).unwrap();
    let with_policy = |extra: &[&str]| {
        let mut args = vec!["--policy".to_string(), path(policy.clone())];
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        verify(&ws, &target, &args)
    };

    // A policy the image meets.
    write(&format!(
        "require-signature-by = [\"release.pub\"]\ndeny-licenses = [\"AGPL-3.0-only\"]\nallowed-base-registries = [\"{}\"]\nmax-age = \"1h\"\n",
        registry.host()
    ));
    let (code, report, stderr) = with_policy(&[]);
    assert_eq!(code, 0, "{stderr}\n{report}");
    for r in ["deny-licenses", "allowed-base-registries", "max-age", "signature by release.pub"] {
        assert_eq!(rule(&report, r)["ok"], true, "{r}: {report}");
    }

    // gunicorn declares MIT.
    write("require-signature-by = [\"release.pub\"]\ndeny-licenses = [\"MIT\"]\n");
    let (code, report, _) = with_policy(&[]);
    assert_eq!(code, 10);
    let denied = rule(&report, "deny-licenses");
    assert!(denied["ok"] == false && denied["detail"].as_str().unwrap().contains("gunicorn"), "{report}");

    write("require-signature-by = [\"release.pub\"]\nallowed-base-registries = [\"registry.example.com\"]\n");
    let (code, report, _) = with_policy(&[]);
    assert_eq!(code, 10);
    let foreign = rule(&report, "allowed-base-registries");
    assert!(foreign["ok"] == false && foreign["detail"].as_str().unwrap().contains(registry.host()), "{report}");

    // The auditor never signed.
    write("require-signature-by = [\"release.pub\", \"auditor.pub\"]\n");
    let (code, report, _) = with_policy(&[]);
    assert_eq!(code, 10);
    assert_eq!(rule(&report, "signature by release.pub")["ok"], true);
    assert_eq!(rule(&report, "signature by auditor.pub")["ok"], false, "{report}");

    // A policy with a typo is a configuration error naming the file and line.
    write("deny-licences = [\"MIT\"]\n");
    let (code, _, stderr) =
        run(ws.oxbuild().args(["verify", &target, "--key"]).arg(k.join("release.pub")).arg("--policy").arg(&policy));
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("policy.toml:1") && stderr.contains("deny-licences"), "{stderr}");
}

#[test]
fn the_pipeline_signs_what_it_publishes_and_verifies_what_was_pushed() {
    let registry = Registry::start();
    let ws = offline_pyweb();
    let k = ws.tmp.path();
    keys(k, "release", "p");
    keys(k, "other", "p");
    let pipeline = |verify_key: &str| {
        run(ws
            .oxbuild()
            .env("OXBUILD_PUBLISH_REPOSITORY", registry.reference("team/pyweb"))
            .args(["pipeline", "--json", "--skip-assess", "--skip-health", "--base", &base(), "--sign-key"])
            .arg(k.join("release.pem"))
            .arg("--verify-key")
            .arg(k.join(verify_key))
            .arg(ws.app()))
    };
    let (code, stdout, stderr) = pipeline("release.pub");
    assert_eq!(code, 0, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let verify = report["stages"].as_array().unwrap().iter().find(|s| s["stage"] == "verify").unwrap();
    assert_eq!(verify["status"], "passed", "{report}");
    let (code, stdout, _) = pipeline("other.pub");
    assert_eq!(code, 10);
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["failed_stage"], "verify", "{report}");
}
