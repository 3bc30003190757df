//! Manifests (Docker v2, OCI, Ollama, ModelPack, Docker model layers) and
//! model config blobs: what parses serializes to bytes that parse the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llmpm_spec::{LayerKind, Manifest, ModelConfig};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Manifest::from_slice(data) {
        let _ = m.total_size();
        for kind in [LayerKind::Model, LayerKind::Template, LayerKind::Params] {
            let _ = m.layers_of(kind).count();
        }
        let bytes = m.to_bytes();
        let again = Manifest::from_slice(&bytes).expect("llmpm's own manifest bytes parse");
        assert_eq!(again, m);
    }
    let _ = serde_json::from_slice::<ModelConfig>(data);
    let _ = llmpmd::transfer::index_entry(data, "application/vnd.oci.image.index.v1+json");
});
