//! Signing routes (llmpm additions): `POST /api/keygen`, `/api/sign`, `/api/signatures`, `/api/export`.

use axum::extract::State;
use axum::Json;
use llmpm_spec::api::{
    ExportRequest, ExportResponse, KeygenRequest, KeygenResponse, SignRequest, SignResponse,
    SignaturesRequest, SignaturesResponse,
};

use super::extract::ApiJson;
use super::models::{blocking, parse_name};
use super::{ApiError, AppState};
use crate::trust::{self, KeyKind, PublicKey, SigningKey, TrustedKey};

fn bad(e: impl std::fmt::Display) -> ApiError {
    ApiError::BadRequest(e.to_string())
}

pub async fn keygen(
    ApiJson(req): ApiJson<KeygenRequest>,
) -> Result<Json<KeygenResponse>, ApiError> {
    let kind = match req.key_type.as_deref() {
        None | Some("") => KeyKind::P256,
        Some(t) => KeyKind::parse(t).ok_or_else(|| {
            bad(format!(
                "type `{t}` is not a key type llmpm makes; use `ecdsa-p256` or `ed25519`"
            ))
        })?,
    };
    let key = SigningKey::generate(kind);
    let public = key.public();
    Ok(Json(KeygenResponse {
        key_type: kind.as_str().to_owned(),
        private_key: key.to_pem().map_err(|e| ApiError::internal(&e))?,
        public_key: public.to_pem().map_err(|e| ApiError::internal(&e))?,
        key_hint: public.hint(),
    }))
}

pub async fn sign(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<SignRequest>,
) -> Result<Json<SignResponse>, ApiError> {
    let name = parse_name(&req.model)?;
    let key = SigningKey::from_pem(&req.key, "`key`").map_err(bad)?;
    let store = state.store.clone();
    let signed = blocking(move || Ok(trust::sign_model(&store, &name, &key)?)).await?;
    Ok(Json(SignResponse {
        digest: signed.subject.to_string(),
        artifact: signed.artifact.to_string(),
        key_type: signed.kind.as_str().to_owned(),
        key_hint: signed.key_hint,
        bundle: serde_json::from_slice(&signed.bundle).unwrap_or_default(),
    }))
}

pub async fn signatures(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<SignaturesRequest>,
) -> Result<Json<SignaturesResponse>, ApiError> {
    let name = parse_name(&req.model)?;
    let mut extra = Vec::new();
    for (i, pem) in req.keys.iter().enumerate() {
        let key = PublicKey::from_pem(pem, &format!("`keys[{i}]`")).map_err(bad)?;
        extra.push(TrustedKey {
            name: format!("key {}", &key.hint()[..12]),
            key,
        });
    }
    let store = state.store.clone();
    let config = state.config.clone();
    let bundle = req
        .bundle
        .map(|b| serde_json::to_vec(&b).unwrap_or_default());
    let resp = blocking(move || {
        let entry = store.get(&name)?;
        if let Some(bundle) = bundle {
            let mut keys = config.trust_policy.all_keys().map_err(bad)?;
            keys.extend(extra);
            let result = trust::verify_bundle(&bundle, &keys, &entry.digest, &entry.manifest);
            let artifact = match &result {
                Ok(_) => trust::keep_bundle(&store, &entry, &bundle)?.to_string(),
                Err(_) => String::new(),
            };
            let status = trust::SignatureStatus {
                artifact: artifact.parse().unwrap_or(entry.digest.clone()),
                key_hint: trust::bundle_hint(&bundle),
                created: None,
                result: result.map_err(|e| e.to_string()),
            };
            let mut info = trust::info(status, None);
            info.artifact = artifact;
            return Ok(SignaturesResponse {
                digest: entry.digest.to_string(),
                signatures: vec![info],
            });
        }
        let signatures = trust::signature_infos(
            &store,
            &entry.digest,
            &entry.manifest,
            &config.trust_policy,
            &extra,
        )?;
        Ok(SignaturesResponse {
            digest: entry.digest.to_string(),
            signatures,
        })
    })
    .await?;
    Ok(Json(resp))
}

pub async fn export(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<ExportRequest>,
) -> Result<axum::response::Response, ApiError> {
    if req.format.is_some() {
        // An OCI archive as the answer (`llmpm save`), `archive.rs`.
        return super::archive::save(state, req).await;
    }
    if req.path.is_empty() {
        return Err(bad(
            "`path` is required: the directory to write the model's files to (or ask for `format: \"oci-archive\"`)",
        ));
    }
    let name = parse_name(&req.model)?;
    let store = state.store.clone();
    let dir = std::path::PathBuf::from(&req.path);
    let files = blocking(move || Ok(trust::export(&store, &name, &dir)?)).await?;
    Ok(axum::response::IntoResponse::into_response(Json(
        ExportResponse { files },
    )))
}
