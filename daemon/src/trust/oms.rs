//! OMS bundles: build and sign a model's in-toto statement, and check a bundle's signature and statement against a manifest.
//!
//! The DSSE pre-authentication encoding is written here ([`pae`]): it is one
//! `format!` of the DSSE v1 protocol, and the only Rust crates that carry it
//! (`sigstore`, `in-toto`) bring a TUF client, an HTTP stack and OpenSSL
//! bindings with them. The in-toto statement and the bundle are serde types
//! in `llmpm_spec::signature`.

use std::collections::BTreeMap;

use base64::Engine as _;
use llmpm_spec::signature::{
    self as sig, Bundle, Envelope, EnvelopeSignature, Predicate, PublicKeyIdentifier, Resource,
    Statement, Subject, VerificationMaterial,
};
use llmpm_spec::{Digest, Manifest};
use sha2::{Digest as _, Sha256};

use super::keys::{PublicKey, SigningKey};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Why a bundle does not vouch for a manifest. Each says what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// Not a Sigstore bundle of the shape OMS writes.
    #[error("the signature bundle is not a Sigstore bundle: {0}")]
    Malformed(String),
    /// A certificate (keyless or certificate signing).
    #[error("the signature bundle is signed with a certificate ({0}); llmpm verifies key-signed bundles only, and has no offline trust root for certificates yet")]
    Certificate(String),
    /// A key type the bundle names that llmpm cannot verify.
    #[error("the signature bundle's key type `{0}` is not supported; llmpm verifies ECDSA P-256 and Ed25519 signatures")]
    KeyType(String),
    /// No trusted key verifies any signature.
    #[error(
        "no trusted key verifies the signature (the bundle names key {hint}); trusted: {trusted}"
    )]
    BadSignature {
        /// The bundle's key hint, or `none`.
        hint: String,
        /// The trusted keys' names.
        trusted: String,
    },
    /// The signed statement is not an OMS v1.0 statement.
    #[error("the signed statement is not an OMS v1.0 model signature: {0}")]
    Statement(String),
    /// The statement is for another manifest.
    #[error("the signature is for manifest `{signed}`, not `{actual}`")]
    OtherManifest {
        /// What the statement names.
        signed: String,
        /// The manifest being checked.
        actual: Digest,
    },
    /// The files differ.
    #[error("the signature does not match the model's files: {0}")]
    Files(String),
}

/// A key trusted by the policy, with the name it is known by.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    /// A name for messages and `show` (the config's `name`, else the file).
    pub name: String,
    /// The key.
    pub key: PublicKey,
}

/// What a good signature says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The name of the trusted key that verified it.
    pub key_name: String,
    /// That key's hint (sha256 of its PEM).
    pub key_hint: String,
}

/// The DSSE v1 pre-authentication encoding of a payload.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// The OMS statement for a set of files, in `model-signing`'s order, its
/// subject digest the sha256 over every file digest's bytes in that order.
pub fn statement(model_name: &str, files: &BTreeMap<String, Digest>) -> Statement {
    let mut entries: Vec<(String, &Digest)> = files.iter().map(|(n, d)| (n.clone(), d)).collect();
    sig::sort_files(&mut entries);
    let mut root = Sha256::new();
    let mut resources = Vec::with_capacity(entries.len());
    for (name, d) in entries {
        if let Ok(bytes) = hex::decode(d.hex()) {
            root.update(&bytes);
        }
        resources.push(Resource {
            name,
            algorithm: d.algorithm().as_str().to_owned(),
            digest: d.hex().to_owned(),
        });
    }
    Statement {
        statement_type: sig::STATEMENT_TYPE.to_owned(),
        subject: vec![Subject {
            name: model_name.to_owned(),
            digest: BTreeMap::from([("sha256".to_owned(), hex::encode(root.finalize()))]),
        }],
        predicate_type: sig::PREDICATE_TYPE.to_owned(),
        predicate: Predicate {
            serialization: serde_json::json!({
                "method": "files",
                "hash_type": "sha256",
                "allow_symlinks": false,
                "ignore_paths": [],
            }),
            resources,
        },
    }
}

/// Signs a statement into a bundle.
pub fn sign(statement: &Statement, key: &SigningKey) -> Bundle {
    // Plain structs of strings: serialization cannot fail.
    let payload = serde_json::to_vec_pretty(statement).unwrap_or_default();
    let signature = key.sign(&pae(sig::PAYLOAD_TYPE, &payload));
    Bundle {
        media_type: sig::BUNDLE_MEDIA_TYPE.to_owned(),
        verification_material: VerificationMaterial {
            public_key: Some(PublicKeyIdentifier {
                hint: Some(key.public().hint()),
                key_details: None,
            }),
            ..VerificationMaterial::default()
        },
        dsse_envelope: Some(Envelope {
            payload: B64.encode(&payload),
            payload_type: sig::PAYLOAD_TYPE.to_owned(),
            signatures: vec![EnvelopeSignature {
                sig: B64.encode(signature),
                keyid: String::new(),
            }],
        }),
        message_signature: None,
    }
}

/// Parses bundle bytes.
pub fn parse(bytes: &[u8]) -> Result<Bundle, BundleError> {
    let b: Bundle =
        serde_json::from_slice(bytes).map_err(|e| BundleError::Malformed(e.to_string()))?;
    if b.media_type != sig::BUNDLE_MEDIA_TYPE && b.media_type != sig::BUNDLE_MEDIA_TYPE_ALT {
        return Err(BundleError::Malformed(format!(
            "media type `{}`, expected `{}`",
            b.media_type,
            sig::BUNDLE_MEDIA_TYPE
        )));
    }
    Ok(b)
}

/// The bundle's key hint, if it names one.
pub fn hint(b: &Bundle) -> Option<&str> {
    b.verification_material
        .public_key
        .as_ref()
        .and_then(|k| k.hint.as_deref())
}

/// Whose a bundle's leaf certificate is and when it is valid, for the
/// refusal's message (read, not verified: nothing here is trusted).
fn describe_certificate(vm: &VerificationMaterial) -> String {
    use x509_cert::der::Decode as _;
    let raw = vm
        .certificate
        .as_ref()
        .and_then(|c| c.get("rawBytes"))
        .or_else(|| {
            vm.x509_certificate_chain
                .as_ref()
                .and_then(|c| c.get("certificates"))
                .and_then(|c| c.get(0))
                .and_then(|c| c.get("rawBytes"))
        })
        .and_then(|v| v.as_str())
        .and_then(|b| B64.decode(b).ok());
    let Some(cert) = raw.and_then(|der| x509_cert::Certificate::from_der(&der).ok()) else {
        return "an unreadable certificate".to_owned();
    };
    let tbs = &cert.tbs_certificate;
    let not_after = tbs.validity.not_after.to_system_time();
    let expired = if not_after < std::time::SystemTime::now() {
        ", expired"
    } else {
        ""
    };
    format!(
        "subject `{}`, issuer `{}`, valid until {}{expired}",
        tbs.subject,
        tbs.issuer,
        humantime::format_rfc3339_seconds(not_after)
    )
}

/// Checks the signature with the trusted keys and returns the signed statement.
pub fn verify_signature(
    b: &Bundle,
    keys: &[TrustedKey],
) -> Result<(Statement, Verified), BundleError> {
    let vm = &b.verification_material;
    if vm.certificate.is_some() || vm.x509_certificate_chain.is_some() {
        return Err(BundleError::Certificate(describe_certificate(vm)));
    }
    if let Some(kd) = vm
        .public_key
        .as_ref()
        .and_then(|k| k.key_details.as_deref())
    {
        let known = ["PKIX_ECDSA_P256_SHA_256", "PKIX_ED25519", "PKIX_ED25519_PH"];
        if !known.contains(&kd) {
            return Err(BundleError::KeyType(kd.to_owned()));
        }
    }
    let env = b.dsse_envelope.as_ref().ok_or_else(|| {
        BundleError::Malformed("no `dsseEnvelope` (OMS signs an in-toto statement)".into())
    })?;
    if env.payload_type != sig::PAYLOAD_TYPE {
        return Err(BundleError::Malformed(format!(
            "payload type `{}`, expected `{}`",
            env.payload_type,
            sig::PAYLOAD_TYPE
        )));
    }
    let payload = B64
        .decode(env.payload.as_bytes())
        .map_err(|e| BundleError::Malformed(format!("payload is not base64: {e}")))?;
    let msg = pae(&env.payload_type, &payload);
    let bundle_hint = hint(b);
    // The hint is unsigned: it only picks which key to try first.
    let mut order: Vec<&TrustedKey> = keys.iter().collect();
    order.sort_by_key(|k| Some(k.key.hint().as_str()) != bundle_hint);
    let mut verified = None;
    'outer: for s in &env.signatures {
        let Ok(raw) = B64.decode(s.sig.as_bytes()) else {
            continue;
        };
        for k in &order {
            if k.key.verify(&msg, &raw) {
                verified = Some(Verified {
                    key_name: k.name.clone(),
                    key_hint: k.key.hint(),
                });
                break 'outer;
            }
        }
    }
    let Some(verified) = verified else {
        return Err(BundleError::BadSignature {
            hint: bundle_hint.unwrap_or("none").to_owned(),
            trusted: if keys.is_empty() {
                "none".to_owned()
            } else {
                keys.iter()
                    .map(|k| format!("{} ({})", k.name, k.key.hint()))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        });
    };
    let statement: Statement =
        serde_json::from_slice(&payload).map_err(|e| BundleError::Statement(e.to_string()))?;
    Ok((statement, verified))
}

/// The files a statement lists, after checking its types and subject digest.
pub fn statement_files(st: &Statement) -> Result<BTreeMap<String, String>, BundleError> {
    let bad = |s: String| Err(BundleError::Statement(s));
    if st.statement_type != sig::STATEMENT_TYPE {
        return bad(format!("`_type` is `{}`", st.statement_type));
    }
    if st.predicate_type != sig::PREDICATE_TYPE {
        return bad(format!("`predicateType` is `{}`", st.predicate_type));
    }
    let [subject] = st.subject.as_slice() else {
        return bad(format!("{} subjects, expected one", st.subject.len()));
    };
    let mut root = Sha256::new();
    let mut files = BTreeMap::new();
    for r in &st.predicate.resources {
        if r.algorithm != "sha256" {
            return bad(format!(
                "`{}` is hashed with `{}`; llmpm checks sha256 (sign with the default hash)",
                r.name, r.algorithm
            ));
        }
        let bytes = hex::decode(&r.digest)
            .ok()
            .filter(|b| b.len() == 32)
            .ok_or_else(|| {
                BundleError::Statement(format!("`{}` has a malformed digest", r.name))
            })?;
        root.update(&bytes);
        if files
            .insert(r.name.clone(), r.digest.to_ascii_lowercase())
            .is_some()
        {
            return bad(format!("`{}` is listed twice", r.name));
        }
    }
    let root = hex::encode(root.finalize());
    if subject.digest.get("sha256") != Some(&root) {
        return bad("the subject digest is not the digest of the resources".into());
    }
    Ok(files)
}

/// Checks a statement's files against a manifest: exactly the model's files, digest for digest.
pub fn check_files(
    files: &BTreeMap<String, String>,
    manifest_digest: &Digest,
    manifest: &Manifest,
) -> Result<(), BundleError> {
    let want = sig::model_files(manifest_digest, manifest)
        .map_err(|e| BundleError::Files(e.to_string()))?;
    match files.get(sig::MANIFEST_FILE) {
        Some(hex) if hex != manifest_digest.hex() => {
            return Err(BundleError::OtherManifest {
                signed: format!("sha256:{hex}"),
                actual: manifest_digest.clone(),
            })
        }
        Some(_) => {}
        None => {
            return Err(BundleError::Files(format!(
                "it does not list `{}`, so it does not bind the manifest",
                sig::MANIFEST_FILE
            )))
        }
    }
    let mut problems = Vec::new();
    for (name, d) in &want {
        match files.get(name) {
            None => problems.push(format!("`{name}` is not signed")),
            Some(h) if h != d.hex() => problems.push(format!("`{name}` differs")),
            Some(_) => {}
        }
    }
    for name in files.keys().filter(|n| !want.contains_key(*n)) {
        problems.push(format!("`{name}` is signed but not in the model"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(BundleError::Files(problems.join("; ")))
    }
}

/// Everything: the bundle's signature by a trusted key, and its statement for this manifest.
pub fn verify(
    bundle: &[u8],
    keys: &[TrustedKey],
    manifest_digest: &Digest,
    manifest: &Manifest,
) -> Result<Verified, BundleError> {
    let b = parse(bundle)?;
    let (st, v) = verify_signature(&b, keys)?;
    let files = statement_files(&st)?;
    check_files(&files, manifest_digest, manifest)?;
    Ok(v)
}

#[cfg(test)]
#[path = "oms_tests.rs"]
mod tests;
