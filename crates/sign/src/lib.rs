//! Image signatures in cosign's classic key-based format, so that
//! `cosign verify --key KEY --insecure-ignore-tlog IMAGE` accepts what
//! oxbuild signs, and oxbuild verifies what cosign signs:
//!
//! - the payload is a "simple signing" JSON document naming the image's
//!   manifest digest (`critical.image.docker-manifest-digest`) and its
//!   repository (`critical.identity.docker-reference`);
//! - the signature is ECDSA P-256 over SHA-256 of the payload, ASN.1 DER,
//!   base64, in the payload layer's `dev.cosignproject.cosign/signature`
//!   annotation; the layer's media type is
//!   `application/vnd.dev.cosign.simplesigning.v1+json`;
//! - every signature of an image is a layer of one manifest, tagged
//!   `sha256-<hex>.sig` (see [`signature_image`]); oxbuild also gives that
//!   manifest a `subject`, so it is listed among the image's referrers.
//!
//! Keys are ECDSA P-256 in PKCS#8 PEM, plain or encrypted (PBES2, as
//! `openssl pkcs8 -topk8 -v2 aes-256-cbc` writes them), or cosign's own
//! encrypted key (`cosign generate-key-pair`, see [`cosign`]). A key is never
//! printed: [`Key`]'s `Debug` shows only the public key's fingerprint.

pub mod cosign;

use base64::Engine as _;
use oxbuild_image::{Descriptor, Digest, Image, Layer, canonical_json, media};
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{DerSignature, SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePrivateKey as _, DecodePublicKey as _, EncodePublicKey as _};
use serde_json::json;

/// The payload layer's media type.
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation holding the base64 signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The artifact type oxbuild gives the `.sig` manifest, as cosign's OCI 1.1 mode names signatures.
pub const ARTIFACT_TYPE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
/// The payload's `critical.type`.
const PAYLOAD_TYPE: &str = "cosign container image signature";

/// Why a key or a signature is unusable. Never carries key material.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The key cannot be read or decrypted.
    #[error("{0}")]
    Key(String),
    /// A signature manifest or payload is malformed.
    #[error("{0}")]
    Format(String),
}

/// The tag cosign looks signatures up under: `sha256-<hex>.sig`.
pub fn sig_tag(digest: &Digest) -> String {
    format!("{}-{}.sig", digest.algorithm(), digest.hex())
}

/// A private signing key.
pub struct Key(SigningKey);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({})", self.public().fingerprint())
    }
}

impl Key {
    /// Reads a PKCS#8 PEM key (`PRIVATE KEY`, or `ENCRYPTED PRIVATE KEY` with
    /// `passphrase`). `what` names where it came from, for errors.
    pub fn from_pem(pem: &str, passphrase: Option<&str>, what: &str) -> Result<Key, Error> {
        let pem = pem.trim();
        if pem.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
            let Some(pass) = passphrase else {
                return Err(Error::Key(format!(
                    "{what} is an encrypted key: set OXBUILD_SIGN_PASSPHRASE to its passphrase"
                )));
            };
            return SigningKey::from_pkcs8_encrypted_pem(pem, pass.as_bytes()).map(Key).map_err(|_| {
                Error::Key(format!(
                    "{what}: cannot decrypt the key with OXBUILD_SIGN_PASSPHRASE (a wrong passphrase, or not an ECDSA P-256 key)"
                ))
            });
        }
        if pem.contains("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----")
            || pem.contains("-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----")
        {
            let Some(pass) = passphrase else {
                return Err(Error::Key(format!(
                    "{what} is an encrypted cosign key: set OXBUILD_SIGN_PASSPHRASE to its password"
                )));
            };
            let der = cosign::decrypt(pem, pass, what)?;
            return SigningKey::from_pkcs8_der(&der)
                .map(Key)
                .map_err(|_| Error::Key(format!("{what} holds a key that is not ECDSA P-256")));
        }
        if pem.contains("-----BEGIN EC PRIVATE KEY-----") {
            return Err(Error::Key(format!(
                "{what} is a SEC1 (`EC PRIVATE KEY`) key: convert it to PKCS#8 with `openssl pkcs8 -topk8 -nocrypt -in KEY`"
            )));
        }
        if !pem.contains("-----BEGIN PRIVATE KEY-----") {
            return Err(Error::Key(format!(
                "{what} is not a PEM private key (expected `-----BEGIN PRIVATE KEY-----` or `-----BEGIN ENCRYPTED PRIVATE KEY-----`)"
            )));
        }
        SigningKey::from_pkcs8_pem(pem)
            .map(Key)
            .map_err(|_| Error::Key(format!("{what} is not an ECDSA P-256 private key in PKCS#8")))
    }

    /// Its public half.
    pub fn public(&self) -> PublicKey {
        PublicKey(*self.0.verifying_key())
    }

    /// The base64 DER ECDSA signature of `payload`, as cosign writes it.
    pub fn sign(&self, payload: &[u8]) -> String {
        let sig: DerSignature = self.0.sign(payload);
        base64::engine::general_purpose::STANDARD.encode(sig.as_bytes())
    }
}

/// A public key that verifies signatures.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", self.fingerprint())
    }
}

impl PublicKey {
    /// Reads a `PUBLIC KEY` PEM (SubjectPublicKeyInfo), as `cosign
    /// generate-key-pair` and `openssl pkey -pubout` write it.
    pub fn from_pem(pem: &str, what: &str) -> Result<PublicKey, Error> {
        VerifyingKey::from_public_key_pem(pem.trim()).map(PublicKey).map_err(|_| {
            Error::Key(format!("{what} is not an ECDSA P-256 public key in PEM (`-----BEGIN PUBLIC KEY-----`)"))
        })
    }

    /// Whether `signature` (base64 DER, or raw r||s) signs `payload`.
    pub fn verifies(&self, payload: &[u8], signature: &str) -> bool {
        let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else { return false };
        if let Ok(sig) = p256::ecdsa::Signature::from_der(&bytes) {
            return self.0.verify(payload, &sig).is_ok();
        }
        p256::ecdsa::Signature::from_slice(&bytes).is_ok_and(|sig| self.0.verify(payload, &sig).is_ok())
    }

    /// `sha256:<first 16 hex digits>` of its DER encoding, to name it in reports.
    pub fn fingerprint(&self) -> String {
        let der = self.0.to_public_key_der().map(|d| d.as_bytes().to_vec()).unwrap_or_default();
        let d = Digest::of(&der);
        format!("sha256:{}", &d.hex()[..16])
    }
}

/// The simple-signing payload for the image `digest` in `repository`
/// (`registry/path`, no tag), as canonical JSON.
pub fn payload(repository: &str, digest: &Digest) -> Vec<u8> {
    canonical_json(&json!({
        "critical": {
            "identity": {"docker-reference": repository},
            "image": {"docker-manifest-digest": digest.as_str()},
            "type": PAYLOAD_TYPE,
        },
        "optional": null,
    }))
}

/// What a payload claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// `critical.identity.docker-reference`.
    pub reference: String,
    /// `critical.image.docker-manifest-digest`.
    pub digest: String,
}

/// Reads a simple-signing payload.
pub fn claims(payload: &[u8]) -> Result<Claims, Error> {
    let v: serde_json::Value =
        serde_json::from_slice(payload).map_err(|e| Error::Format(format!("a signature payload is not JSON: {e}")))?;
    let digest = v["critical"]["image"]["docker-manifest-digest"]
        .as_str()
        .ok_or_else(|| Error::Format("a signature payload names no critical.image.docker-manifest-digest".into()))?;
    Ok(Claims {
        reference: v["critical"]["identity"]["docker-reference"].as_str().unwrap_or("").to_string(),
        digest: digest.to_string(),
    })
}

/// The payload layer of one signature: the payload's descriptor with the
/// signature annotation, its bytes in the file at `path`.
pub fn signature_layer(payload: &[u8], signature: &str, path: std::path::PathBuf) -> Layer {
    let mut d = Descriptor::of(SIMPLE_SIGNING, payload);
    d.annotations.insert(SIGNATURE_ANNOTATION.to_string(), signature.to_string());
    Layer::file(d, path)
}

/// The `.sig` manifest holding every signature in `layers` (cosign's shape:
/// an OCI image whose config lists the payloads as diff ids), with
/// `subject` so that it is also a referrer of the image.
pub fn signature_image(layers: Vec<Layer>, subject: &Descriptor) -> Result<Image, Error> {
    let diff_ids: Vec<&str> = layers.iter().map(|l| l.descriptor.digest.as_str()).collect();
    let config = canonical_json(&json!({
        "architecture": "",
        "os": "",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }));
    let subject = Descriptor::new(subject.media_type.clone(), subject.digest.clone(), subject.size);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        "config": Descriptor::of(media::OCI_CONFIG, &config),
        "layers": layers.iter().map(|l| &l.descriptor).collect::<Vec<_>>(),
        "subject": subject,
    });
    Image::from_raw(canonical_json(&manifest), config, layers).map_err(|e| Error::Format(e.to_string()))
}

/// Whether `image` holds signatures (layers of the simple-signing type).
pub fn is_signature(image: &Image) -> bool {
    image.layers().iter().any(|l| l.descriptor.media_type == SIMPLE_SIGNING)
}

/// `referrers` of `image` with every signature manifest in oxbuild's shape:
/// one with a `subject` (cosign's own `.sig` manifests have none), so that
/// layouts, archives and registries list it among the image's referrers.
/// Referrers of other images are left out.
pub fn with_subject(referrers: &[Image], image: &Image) -> Vec<Image> {
    let subject = image.descriptor();
    referrers
        .iter()
        .filter_map(|r| match r.subject() {
            Some(s) if s.digest != subject.digest => None,
            Some(_) if !is_signature(r) => Some(r.clone()),
            _ if is_signature(r) => {
                let layers = r.layers().iter().filter(|l| l.descriptor.media_type == SIMPLE_SIGNING).cloned().collect();
                signature_image(layers, &subject).ok()
            }
            _ => None,
        })
        .collect()
}

/// One signature found on a `.sig` manifest's layer.
#[derive(Debug, Clone)]
pub struct Found {
    /// The payload layer's digest.
    pub layer: Digest,
    /// The base64 signature.
    pub signature: String,
}

/// The signatures a `.sig` manifest carries (layers of the simple-signing type with the annotation).
pub fn signatures(sig: &Image) -> Vec<(Layer, Found)> {
    sig.layers()
        .iter()
        .filter(|l| l.descriptor.media_type == SIMPLE_SIGNING)
        .filter_map(|l| {
            let signature = l.descriptor.annotations.get(SIGNATURE_ANNOTATION)?.clone();
            Some((l.clone(), Found { layer: l.descriptor.digest.clone(), signature }))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    /// A P-256 key pair made by openssl, not by the code under test:
    /// (PKCS#8 PEM, the same encrypted with `pass`, public PEM).
    fn openssl_keys(pass: &str) -> (String, String, String) {
        let dir = tempfile::tempdir().unwrap();
        let run = |args: &[&str]| {
            let out = Command::new("openssl").args(args).current_dir(dir.path()).output().expect("openssl runs");
            assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        run(&["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "key.pem"]);
        let passout = format!("pass:{pass}");
        run(&["pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in", "key.pem", "-passout", &passout, "-out", "enc.pem"]);
        run(&["pkey", "-in", "key.pem", "-pubout", "-out", "pub.pem"]);
        let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap();
        (read("key.pem"), read("enc.pem"), read("pub.pem"))
    }

    #[test]
    fn keys_from_openssl_sign_and_verify_and_refuse_what_they_should() {
        let (plain, encrypted, public) = openssl_keys("s3cret-pass");
        let key = Key::from_pem(&plain, None, "the key").unwrap();
        let public = PublicKey::from_pem(&public, "the public key").unwrap();
        assert_eq!(key.public(), public);
        let digest = Digest::of(b"an image manifest");
        let payload = payload("127.0.0.1:5000/team/app", &digest);
        let sig = key.sign(&payload);
        assert!(public.verifies(&payload, &sig));
        assert!(!public.verifies(&super::payload("127.0.0.1:5000/team/app", &Digest::of(b"another")), &sig));
        assert_eq!(claims(&payload).unwrap().digest, digest.as_str());

        let decrypted = Key::from_pem(&encrypted, Some("s3cret-pass"), "the key").unwrap();
        assert_eq!(decrypted.public(), public);
        let e = Key::from_pem(&encrypted, Some("wrong"), "OXBUILD_SIGN_KEY").unwrap_err().to_string();
        assert!(e.contains("OXBUILD_SIGN_KEY") && e.contains("passphrase"), "{e}");
        let e = Key::from_pem(&encrypted, None, "key.pem").unwrap_err().to_string();
        assert!(e.contains("OXBUILD_SIGN_PASSPHRASE"), "{e}");
        let e = Key::from_pem("not a key", None, "key.pem").unwrap_err().to_string();
        assert!(e.contains("key.pem") && e.contains("PEM"), "{e}");
        assert!(!format!("{key:?}").contains("PRIVATE"), "Debug shows no key material");
    }

    #[test]
    fn the_sig_manifest_has_cosigns_shape() {
        let (plain, _, _) = openssl_keys("x");
        let key = Key::from_pem(&plain, None, "k").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let subject = Descriptor::of(media::OCI_MANIFEST, b"{}");
        let payload = payload("r/app", &subject.digest);
        std::fs::write(dir.path().join("p"), &payload).unwrap();
        let layer = signature_layer(&payload, &key.sign(&payload), dir.path().join("p"));
        let image = signature_image(vec![layer], &subject).unwrap();
        let m: serde_json::Value = serde_json::from_slice(image.manifest()).unwrap();
        assert_eq!(m["layers"][0]["mediaType"], SIMPLE_SIGNING);
        assert!(m["layers"][0]["annotations"][SIGNATURE_ANNOTATION].is_string());
        assert_eq!(m["subject"]["digest"], subject.digest.as_str());
        assert_eq!(image.artifact_type(), Some(ARTIFACT_TYPE));
        assert_eq!(signatures(&image).len(), 1);
        assert_eq!(sig_tag(&subject.digest), format!("sha256-{}.sig", subject.digest.hex()));
    }
}
