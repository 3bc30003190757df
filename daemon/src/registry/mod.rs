//! The store as a registry for others: served read-only over the OCI distribution API (`/v2/`), and OCI image-layout archives for offline moves.
//!
//! `api::v2` is the HTTP side (routes, `Range`, error bodies, auth);
//! `distribution` decides what a repository name means and what it may
//! serve. `archive` writes and reads the archives of `llmpm save`/`load`
//! (`api::archive` is their HTTP side).

pub mod archive;
pub mod distribution;

/// A model in `store` under `name`: one Ollama weights layer and an empty
/// config, as the registry modules' tests need.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) fn put_test_model(store: &crate::store::Store, name: &str, weights: &[u8]) {
    use llmpm_spec::media_type::{ollama, DOCKER_CONFIG};
    use llmpm_spec::{Descriptor, Manifest, MediaType};
    let w = store.put_bytes(weights).unwrap();
    let c = store.put_bytes(b"{}").unwrap();
    let m = Manifest::docker_v2(
        Descriptor::new(MediaType::new(DOCKER_CONFIG), c, 2),
        vec![Descriptor::new(
            MediaType::new(ollama::MODEL),
            w,
            weights.len() as u64,
        )],
    );
    store.put_manifest(&name.parse().unwrap(), &m).unwrap();
}
