//! Tests of the OMS statement, signing and checks.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::trust::keys::{KeyKind, SigningKey};
use llmpm_spec::{Descriptor, MediaType};

fn d(c: char) -> Digest {
    format!("sha256:{}", c.to_string().repeat(64))
        .parse()
        .unwrap()
}

fn manifest() -> (Digest, Manifest) {
    let m = Manifest::docker_v2(
        Descriptor::new(
            MediaType::new(llmpm_spec::media_type::DOCKER_CONFIG),
            d('c'),
            2,
        ),
        vec![
            Descriptor::new(
                MediaType::new("application/vnd.ollama.image.model"),
                d('a'),
                10,
            ),
            Descriptor::new(
                MediaType::new("application/vnd.ollama.image.template"),
                d('b'),
                3,
            ),
        ],
    );
    (d('f'), m)
}

fn trusted(k: &SigningKey) -> Vec<TrustedKey> {
    vec![TrustedKey {
        name: "k".into(),
        key: k.public(),
    }]
}

fn signed(key: &SigningKey, md: &Digest, m: &Manifest) -> Vec<u8> {
    let files = sig::model_files(md, m).unwrap();
    serde_json::to_vec(&sign(&statement("m", &files), key)).unwrap()
}

#[test]
fn pae_is_dsse_v1() {
    assert_eq!(pae("t", b"abc"), b"DSSEv1 1 t 3 abc");
}

#[test]
fn both_key_kinds_sign_and_verify() {
    let (md, m) = manifest();
    for kind in [KeyKind::P256, KeyKind::Ed25519] {
        let key = SigningKey::generate(kind);
        let b = signed(&key, &md, &m);
        let v = verify(&b, &trusted(&key), &md, &m).unwrap();
        assert_eq!(v.key_hint, key.public().hint());
        let other = SigningKey::generate(kind);
        let e = verify(&b, &trusted(&other), &md, &m).unwrap_err();
        assert!(matches!(e, BundleError::BadSignature { .. }), "{e}");
    }
}

#[test]
fn flipped_signature_bytes_fail() {
    let (md, m) = manifest();
    let key = SigningKey::generate(KeyKind::P256);
    let mut b: Bundle = serde_json::from_slice(&signed(&key, &md, &m)).unwrap();
    let env = b.dsse_envelope.as_mut().unwrap();
    let mut raw = B64.decode(&env.signatures[0].sig).unwrap();
    let n = raw.len();
    raw[n - 3] ^= 0x01;
    env.signatures[0].sig = B64.encode(raw);
    let e = verify(&serde_json::to_vec(&b).unwrap(), &trusted(&key), &md, &m).unwrap_err();
    assert!(matches!(e, BundleError::BadSignature { .. }), "{e}");
}

#[test]
fn a_bundle_for_another_manifest_or_other_layers_fails() {
    let (md, m) = manifest();
    let key = SigningKey::generate(KeyKind::Ed25519);
    let b = signed(&key, &md, &m);
    let e = verify(&b, &trusted(&key), &d('e'), &m).unwrap_err();
    assert!(matches!(e, BundleError::OtherManifest { .. }), "{e}");
    let mut m2 = m.clone();
    m2.layers[1].digest = d('9');
    let e = verify(&b, &trusted(&key), &md, &m2)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("is not signed") && e.contains("is signed but not in the model"),
        "{e}"
    );
}

#[test]
fn certificates_and_unknown_key_types_are_refused_by_name() {
    let (md, m) = manifest();
    let key = SigningKey::generate(KeyKind::P256);
    let mut b: serde_json::Value = serde_json::from_slice(&signed(&key, &md, &m)).unwrap();
    b["verificationMaterial"]["publicKey"]["keyDetails"] = "PKIX_RSA_PKCS1V15_2048_SHA256".into();
    let e = verify(&serde_json::to_vec(&b).unwrap(), &trusted(&key), &md, &m).unwrap_err();
    assert!(
        e.to_string().contains("PKIX_RSA_PKCS1V15_2048_SHA256"),
        "{e}"
    );
    b["verificationMaterial"] = serde_json::json!({"certificate": {"rawBytes": "AA=="}});
    let e = verify(&serde_json::to_vec(&b).unwrap(), &trusted(&key), &md, &m).unwrap_err();
    assert_eq!(
        e,
        BundleError::Certificate("an unreadable certificate".into())
    );
    // An expired certificate (openssl req -x509 -days 1, dated 2020): named, with its end.
    b["verificationMaterial"] = serde_json::json!({"certificate": {"rawBytes": EXPIRED_CERT}});
    let e = verify(&serde_json::to_vec(&b).unwrap(), &trusted(&key), &md, &m)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("CN=signer@example.com") && e.contains("expired"),
        "{e}"
    );
    assert!(e.contains("no offline trust root"), "{e}");
    let e = verify(b"[1]", &trusted(&key), &md, &m).unwrap_err();
    assert!(matches!(e, BundleError::Malformed(_)), "{e}");
}

#[test]
fn keys_round_trip_through_pem_and_bad_keys_are_named() {
    for kind in [KeyKind::P256, KeyKind::Ed25519] {
        let k = SigningKey::generate(kind);
        let again = SigningKey::from_pem(&k.to_pem().unwrap(), "k").unwrap();
        assert_eq!(again.public(), k.public());
        let pubk = PublicKey::from_pem(&k.public().to_pem().unwrap(), "p").unwrap();
        assert_eq!(pubk, k.public());
    }
    let rsa = "-----BEGIN PUBLIC KEY-----\nMIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDidTvHoshmCRDf0bC33Z3P9pqa\n4p+x59jbOLc9f0DWHBMdYzOc00l6sH1FPKRGvm74lqRy5JETbgxeZnw2dV/bBknr\nJVmGSy0QAuG9W4tdRtX2h6pBMyV4/n+tIZXJhGQY+Vp7clG7gtSBgY8rPQKSvChF\noAtCPxY7rJHhqsZd/QIDAQAB\n-----END PUBLIC KEY-----\n";
    let e = PublicKey::from_pem(rsa, "`rsa.pub`")
        .unwrap_err()
        .to_string();
    assert!(e.contains("`rsa.pub` is an RSA key"), "{e}");
    let p384 = "-----BEGIN PUBLIC KEY-----\nMHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEs2gTZcIjM55CBKxLiXVEBvhMa1NkRzva\nNQI0Gzi/xtNP80Z84VHUMGolpDTozE1++Vr7lOfEOrOq8fQeUDsxFH1HKMfKn4WU\nRunjPUw9hz5QGHty0NFmQD/trWD9lfsd\n-----END PUBLIC KEY-----\n";
    let e = PublicKey::from_pem(p384, "`p384.pub`")
        .unwrap_err()
        .to_string();
    assert!(e.contains("is a P-384 ECDSA key"), "{e}");
    let e = SigningKey::from_pem("hello", "`x`")
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a PEM key"), "{e}");
}

/// A self-signed P-256 certificate for `CN=signer@example.com`, valid 2020-01-01 to 2020-01-02 (made with Python's `cryptography`).
const EXPIRED_CERT: &str = "MIIBJjCBzaADAgECAgEBMAoGCCqGSM49BAMCMB0xGzAZBgNVBAMMEnNpZ25lckBleGFtcGxlLmNvbTAeFw0yMDAxMDEwMDAwMDBaFw0yMDAxMDIwMDAwMDBaMB0xGzAZBgNVBAMMEnNpZ25lckBleGFtcGxlLmNvbTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABKFBdBU0Le89BWAv36PrL+bmZct7spap4BBwMf8rtk8KfK2f19bMViUghmI0kYGZe6eRBaTaKDKOV1h3QdFfpNkwCgYIKoZIzj0EAwIDSAAwRQIhAKNxiFUduy5VtV0ZUbzE1LTJLYy8DdPxTMAa5WNOa5MvAiAD98yBeOOFG2ZT/Y0iPeOGocDbYbK2G4QagTQEtue1Nw==";
