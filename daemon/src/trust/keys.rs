//! Signing keys and public keys: ECDSA P-256 and Ed25519 in PEM, as `model-signing`'s key method reads them.
//!
//! All cryptography is RustCrypto's (`p256`, `ed25519-dalek`). A P-256
//! signature is written DER-encoded (what Python's `cryptography` produces and
//! `model-signing` verifies); a fixed 64-byte one is accepted too. The key
//! "hint" a bundle carries is the sha256 of the public key's SPKI PEM text,
//! byte for byte as `cryptography` writes it (64-column base64, `\n` endings).

use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use p256::pkcs8::der::Decode;
use p256::pkcs8::{LineEnding, ObjectIdentifier};
use sha2::{Digest as _, Sha256};

/// A key that cannot be used, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Not PEM, or a PEM block that is not a key.
    #[error("{what} is not a PEM key ({why}); use a PKCS#8 `PRIVATE KEY`, a SEC1 `EC PRIVATE KEY` or an SPKI `PUBLIC KEY` as `llmpm keygen` writes them")]
    NotAKey {
        /// Which key.
        what: String,
        /// The decoder's complaint.
        why: String,
    },
    /// A key of a type llmpm does not sign or verify with.
    #[error(
        "{what} is {kind} key; llmpm signs and verifies with ECDSA P-256 and Ed25519 keys only"
    )]
    Unsupported {
        /// Which key.
        what: String,
        /// `an RSA`, `a P-384 ECDSA`, …
        kind: String,
    },
    /// A password-protected key.
    #[error("{what} is encrypted; llmpm reads unencrypted keys (`openssl pkcs8 -in KEY -nocrypt -out PLAIN`)")]
    Encrypted {
        /// Which key.
        what: String,
    },
    /// Writing a key out failed (it cannot, for a valid key).
    #[error("cannot encode the {0} key as PEM")]
    Encode(&'static str),
}

/// The two kinds of key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// ECDSA on NIST P-256 with SHA-256 (`model-signing`'s elliptic-curve key).
    P256,
    /// Ed25519.
    Ed25519,
}

impl KeyKind {
    /// Its name in messages and the API (`ecdsa-p256`, `ed25519`).
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::P256 => "ecdsa-p256",
            KeyKind::Ed25519 => "ed25519",
        }
    }

    /// Parses `ecdsa-p256` (also `p256`, `ecdsa`) or `ed25519`.
    pub fn parse(s: &str) -> Option<KeyKind> {
        match s.to_ascii_lowercase().as_str() {
            "ecdsa-p256" | "p256" | "p-256" | "ecdsa" => Some(KeyKind::P256),
            "ed25519" => Some(KeyKind::Ed25519),
            _ => None,
        }
    }
}

/// A private key to sign with.
pub enum SigningKey {
    /// ECDSA P-256.
    P256(p256::ecdsa::SigningKey),
    /// Ed25519.
    Ed25519(ed25519_dalek::SigningKey),
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        write!(f, "SigningKey({})", self.kind().as_str())
    }
}

/// A public key to verify with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// ECDSA P-256.
    P256(p256::ecdsa::VerifyingKey),
    /// Ed25519.
    Ed25519(ed25519_dalek::VerifyingKey),
}

const OID_EC: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";

/// A readable name for a key algorithm (and EC curve) OID.
fn kind_name(alg: ObjectIdentifier, param: Option<ObjectIdentifier>) -> String {
    let curve = param.map(|p| p.to_string());
    match (alg.to_string().as_str(), curve.as_deref()) {
        ("1.2.840.113549.1.1.1" | "1.2.840.113549.1.1.10", _) => "an RSA".into(),
        (OID_EC, Some("1.3.132.0.34")) => "a P-384 ECDSA".into(),
        (OID_EC, Some("1.3.132.0.35")) => "a P-521 ECDSA".into(),
        (OID_EC, Some("1.3.132.0.10")) => "a secp256k1 ECDSA".into(),
        (OID_EC, Some(c)) => format!("an ECDSA (curve {c})"),
        ("1.3.101.113", _) => "an Ed448".into(),
        ("1.3.101.110" | "1.3.101.111", _) => "an X25519/X448 (key agreement, not signing)".into(),
        ("1.2.840.10040.4.1", _) => "a DSA".into(),
        (o, _) => format!("an unknown (algorithm {o})"),
    }
}

fn pem_label(pem: &str) -> Option<&str> {
    let start = pem.find("-----BEGIN ")? + "-----BEGIN ".len();
    let end = pem[start..].find("-----")?;
    Some(&pem[start..start + end])
}

fn not_a_key(what: &str, why: impl std::fmt::Display) -> KeyError {
    KeyError::NotAKey {
        what: what.to_owned(),
        why: why.to_string(),
    }
}

impl SigningKey {
    /// A new random key.
    pub fn generate(kind: KeyKind) -> SigningKey {
        let mut rng = rand_core::OsRng;
        match kind {
            KeyKind::P256 => SigningKey::P256(p256::ecdsa::SigningKey::random(&mut rng)),
            KeyKind::Ed25519 => SigningKey::Ed25519(ed25519_dalek::SigningKey::generate(&mut rng)),
        }
    }

    /// Reads a PEM private key; `what` names it in errors (`--key \`k.pem\``).
    pub fn from_pem(pem: &str, what: &str) -> Result<SigningKey, KeyError> {
        let label = pem_label(pem).ok_or_else(|| not_a_key(what, "no PEM block"))?;
        match label {
            "EC PRIVATE KEY" => {
                use p256::elliptic_curve::SecretKey;
                SecretKey::<p256::NistP256>::from_sec1_pem(pem)
                    .map(|k| SigningKey::P256(k.into()))
                    .map_err(|_| KeyError::Unsupported {
                        what: what.to_owned(),
                        kind: "a SEC1 EC key on a curve other than P-256 (or a malformed)".into(),
                    })
            }
            "ENCRYPTED PRIVATE KEY" => Err(KeyError::Encrypted {
                what: what.to_owned(),
            }),
            "PRIVATE KEY" => {
                if let Ok(k) = p256::ecdsa::SigningKey::from_pkcs8_pem(pem) {
                    return Ok(SigningKey::P256(k));
                }
                if let Ok(k) = ed25519_dalek::SigningKey::from_pkcs8_pem(pem) {
                    return Ok(SigningKey::Ed25519(k));
                }
                let (_, doc) =
                    p256::pkcs8::SecretDocument::from_pem(pem).map_err(|e| not_a_key(what, e))?;
                let info = p256::pkcs8::PrivateKeyInfo::from_der(doc.as_bytes())
                    .map_err(|e| not_a_key(what, e))?;
                let param = info.algorithm.parameters_oid().ok();
                Err(KeyError::Unsupported {
                    what: what.to_owned(),
                    kind: kind_name(info.algorithm.oid, param),
                })
            }
            "PUBLIC KEY" => Err(not_a_key(
                what,
                "it is a public key; sign with the private key",
            )),
            other => Err(not_a_key(what, format!("a `{other}` block"))),
        }
    }

    /// The key's kind.
    pub fn kind(&self) -> KeyKind {
        match self {
            SigningKey::P256(_) => KeyKind::P256,
            SigningKey::Ed25519(_) => KeyKind::Ed25519,
        }
    }

    /// The PKCS#8 PEM text (`-----BEGIN PRIVATE KEY-----`).
    pub fn to_pem(&self) -> Result<String, KeyError> {
        let pem = match self {
            SigningKey::P256(k) => k.to_pkcs8_pem(LineEnding::LF),
            SigningKey::Ed25519(k) => k.to_pkcs8_pem(LineEnding::LF),
        }
        .map_err(|_| KeyError::Encode(self.kind().as_str()))?;
        Ok(pem.to_string())
    }

    /// Its public half.
    pub fn public(&self) -> PublicKey {
        match self {
            SigningKey::P256(k) => PublicKey::P256(*k.verifying_key()),
            SigningKey::Ed25519(k) => PublicKey::Ed25519(k.verifying_key()),
        }
    }

    /// Signs `msg`: ECDSA with SHA-256, DER-encoded; or Ed25519's 64 bytes.
    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        use p256::ecdsa::signature::Signer as _;
        match self {
            SigningKey::P256(k) => {
                let sig: p256::ecdsa::Signature = k.sign(msg);
                sig.to_der().as_bytes().to_vec()
            }
            SigningKey::Ed25519(k) => k.sign(msg).to_bytes().to_vec(),
        }
    }
}

impl PublicKey {
    /// Reads an SPKI PEM public key (`-----BEGIN PUBLIC KEY-----`).
    pub fn from_pem(pem: &str, what: &str) -> Result<PublicKey, KeyError> {
        match pem_label(pem) {
            Some("PUBLIC KEY") => {}
            Some(l) if l.contains("PRIVATE") => {
                return Err(not_a_key(
                    what,
                    "it is a private key; trust the public key (`.pub`) instead",
                ))
            }
            Some(other) => return Err(not_a_key(what, format!("a `{other}` block"))),
            None => return Err(not_a_key(what, "no PEM block")),
        }
        if let Ok(k) = p256::ecdsa::VerifyingKey::from_public_key_pem(pem) {
            return Ok(PublicKey::P256(k));
        }
        if let Ok(k) = ed25519_dalek::VerifyingKey::from_public_key_pem(pem) {
            return Ok(PublicKey::Ed25519(k));
        }
        let (_, doc) = p256::pkcs8::Document::from_pem(pem).map_err(|e| not_a_key(what, e))?;
        let info = p256::pkcs8::spki::SubjectPublicKeyInfoRef::from_der(doc.as_bytes())
            .map_err(|e| not_a_key(what, e))?;
        let param = info.algorithm.parameters_oid().ok();
        if info.algorithm.oid.to_string() == OID_EC
            && param.map(|p| p.to_string()).as_deref() == Some(OID_P256)
        {
            return Err(not_a_key(what, "not a point on P-256"));
        }
        Err(KeyError::Unsupported {
            what: what.to_owned(),
            kind: kind_name(info.algorithm.oid, param),
        })
    }

    /// The key's kind.
    pub fn kind(&self) -> KeyKind {
        match self {
            PublicKey::P256(_) => KeyKind::P256,
            PublicKey::Ed25519(_) => KeyKind::Ed25519,
        }
    }

    /// The SPKI PEM text, as Python's `cryptography` writes it.
    pub fn to_pem(&self) -> Result<String, KeyError> {
        match self {
            PublicKey::P256(k) => k.to_public_key_pem(LineEnding::LF),
            PublicKey::Ed25519(k) => k.to_public_key_pem(LineEnding::LF),
        }
        .map_err(|_| KeyError::Encode(self.kind().as_str()))
    }

    /// The hint a bundle names its key by: sha256 of the PEM text, hex.
    pub fn hint(&self) -> String {
        let pem = self.to_pem().unwrap_or_default();
        hex::encode(Sha256::digest(pem.as_bytes()))
    }

    /// Whether `sig` is this key's signature of `msg`.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        use p256::ecdsa::signature::Verifier as _;
        match self {
            PublicKey::P256(k) => {
                let parsed = p256::ecdsa::Signature::from_der(sig)
                    .or_else(|_| p256::ecdsa::Signature::from_slice(sig));
                parsed.is_ok_and(|s| k.verify(msg, &s).is_ok())
            }
            PublicKey::Ed25519(k) => ed25519_dalek::Signature::from_slice(sig)
                .is_ok_and(|s| k.verify_strict(msg, &s).is_ok()),
        }
    }
}
