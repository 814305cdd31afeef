//! cosign's encrypted private keys (`ENCRYPTED SIGSTORE PRIVATE KEY`, or
//! `ENCRYPTED COSIGN PRIVATE KEY` from older cosign): the PEM body is a JSON
//! document, `{"kdf": {"name": "scrypt", "params": {"N", "r", "p"}, "salt"},
//! "cipher": {"name": "nacl/secretbox", "nonce"}, "ciphertext"}` with base64
//! byte fields. The password gives a 32-byte key through scrypt; NaCl's
//! secretbox (XSalsa20-Poly1305) opens the ciphertext, which is the key's
//! PKCS#8 DER. No crate reads this container; the primitives are RustCrypto's.

use base64::Engine as _;
use crypto_secretbox::aead::{Aead as _, KeyInit as _};
use crypto_secretbox::{Nonce, XSalsa20Poly1305};

use crate::Error;

/// The largest scrypt cost accepted, so a doctored key cannot make oxbuild
/// spend minutes and gigabytes (cosign writes N = 32768).
const MAX_LOG_N: u8 = 20;

/// The PKCS#8 DER inside a cosign-encrypted key.
pub fn decrypt(pem: &str, password: &str, what: &str) -> Result<Vec<u8>, Error> {
    let bad = |why: &str| Error::Key(format!("{what}: not a valid cosign key ({why})"));
    let body: String = pem.lines().filter(|l| !l.starts_with("-----") && !l.contains(':')).collect();
    let json =
        base64::engine::general_purpose::STANDARD.decode(body.trim()).map_err(|_| bad("its PEM body is not base64"))?;
    let doc: serde_json::Value = serde_json::from_slice(&json).map_err(|_| bad("its body is not JSON"))?;
    let bytes = |v: &serde_json::Value, field: &str| -> Result<Vec<u8>, Error> {
        let s = v.as_str().ok_or_else(|| bad(&format!("no {field}")))?;
        base64::engine::general_purpose::STANDARD.decode(s).map_err(|_| bad(&format!("{field} is not base64")))
    };
    if doc["kdf"]["name"] != "scrypt" || doc["cipher"]["name"] != "nacl/secretbox" {
        return Err(bad("only scrypt with nacl/secretbox is known"));
    }
    let param = |k: &str| doc["kdf"]["params"][k].as_u64().ok_or_else(|| bad(&format!("no scrypt {k}")));
    let (n, r, p) = (param("N")?, param("r")?, param("p")?);
    if !n.is_power_of_two() || n < 2 {
        return Err(bad("scrypt N is not a power of two"));
    }
    let log_n = n.trailing_zeros() as u8;
    if log_n > MAX_LOG_N || r > 32 || p > 16 {
        return Err(bad("scrypt parameters beyond what cosign writes"));
    }
    let params = scrypt::Params::new(log_n, r as u32, p as u32).map_err(|_| bad("scrypt parameters"))?;
    let salt = bytes(&doc["kdf"]["salt"], "salt")?;
    let mut key = [0u8; 32];
    scrypt::scrypt(password.as_bytes(), &salt, &params, &mut key).map_err(|_| bad("scrypt failed"))?;
    let nonce = bytes(&doc["cipher"]["nonce"], "nonce")?;
    if nonce.len() != 24 {
        return Err(bad("the nonce is not 24 bytes"));
    }
    let ciphertext = bytes(&doc["ciphertext"], "ciphertext")?;
    XSalsa20Poly1305::new(&key.into()).decrypt(Nonce::from_slice(&nonce), ciphertext.as_slice()).map_err(|_| {
        Error::Key(format!("{what}: cannot decrypt the cosign key with OXBUILD_SIGN_PASSPHRASE (a wrong password?)"))
    })
}
