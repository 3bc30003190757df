//! The model architectures the runner runs (`general.architecture`), and
//! what sets each apart from the Llama graph they share, as llama.cpp
//! builds them (`src/models/<arch>.cpp`).

/// Every architecture we load, by its `general.architecture` name: what a
/// refusal lists.
pub const ARCHITECTURES: [&str; 9] = [
    "llama",
    "qwen2",
    "qwen3",
    "qwen3moe",
    "gpt-oss",
    "gemma3",
    "phi3",
    "bert",
    "nomic-bert",
];

/// The architectures the runner loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// Llama 2/3.
    Llama,
    /// Qwen 2 and 2.5.
    Qwen2,
    /// Qwen 3 (dense): Qwen 2 without the Q/K/V biases, with per-head Q/K
    /// RMS norms.
    Qwen3,
    /// Qwen 3 MoE: Qwen 3's attention, a mixture of experts for the
    /// feed-forward (softmax router, top-k, weights renormalised).
    Qwen3Moe,
    /// OpenAI's gpt-oss: biased Q/K/V/O, a sink logit per head, every
    /// other layer a sliding window, a biased router whose top-k logits are
    /// softmaxed, biased experts with a clamped SwiGLU, YaRN.
    GptOss,
    /// Gemma 3 (text).
    Gemma3,
    /// Phi-3, Phi-3.5 and Phi-4-mini: fused QKV and gate/up matrices,
    /// `longrope` factors.
    Phi3,
    /// BERT encoders (all-minilm, mxbai-embed-large, bge): embeddings only.
    Bert,
    /// Nomic's BERT (nomic-embed-text): rotary positions, SwiGLU, fused QKV.
    NomicBert,
}

impl Arch {
    /// The architecture named by `general.architecture`, if we run it.
    pub fn from_name(name: &str) -> Option<Arch> {
        match name {
            "llama" => Some(Arch::Llama),
            "qwen2" => Some(Arch::Qwen2),
            "qwen3" => Some(Arch::Qwen3),
            "qwen3moe" => Some(Arch::Qwen3Moe),
            // Ollama's own gpt-oss files say `gptoss` (SPEC.md).
            "gpt-oss" | "gptoss" => Some(Arch::GptOss),
            "gemma3" => Some(Arch::Gemma3),
            "phi3" => Some(Arch::Phi3),
            "bert" => Some(Arch::Bert),
            "nomic-bert" => Some(Arch::NomicBert),
            _ => None,
        }
    }

    /// Whether RoPE rotates the two halves of a head (GPT-NeoX) rather than
    /// adjacent pairs, as llama.cpp's rope type for the architecture says.
    pub fn rope_neox(self) -> bool {
        !matches!(self, Arch::Llama)
    }

    /// Whether the model is an encoder that only embeds (no generation).
    pub fn embeds_only(self) -> bool {
        matches!(self, Arch::Bert | Arch::NomicBert)
    }

    /// Whether every layer has per-head RMS norms of queries and keys
    /// (`attn_q_norm`, `attn_k_norm`) applied before RoPE.
    pub fn qk_norm(self) -> bool {
        matches!(self, Arch::Qwen3 | Arch::Qwen3Moe | Arch::Gemma3)
    }

    /// Whether the feed-forward is a mixture of experts.
    pub fn moe(self) -> bool {
        matches!(self, Arch::Qwen3Moe | Arch::GptOss)
    }

    /// Whether every layer has Q/K/V biases (other architectures may still
    /// carry them).
    pub fn qkv_bias(self) -> bool {
        matches!(self, Arch::Qwen2 | Arch::GptOss)
    }

    /// Whether queries are scaled by `1/sqrt(head_dim)` before the product
    /// with the keys rather than the scores after it (llama.cpp's phi3
    /// graph; the two differ in float rounding only).
    pub fn scale_queries(self) -> bool {
        matches!(self, Arch::Phi3)
    }
}

/// Whether the runner loads `name`.
pub fn is_supported(name: &str) -> bool {
    Arch::from_name(name).is_some()
}

/// The refusal of an architecture we do not run, naming it and the ones we do.
pub fn unsupported_message(name: &str) -> String {
    format!(
        "unsupported model architecture `{name}`; llmpm runs {}",
        ARCHITECTURES
            .iter()
            .map(|a| format!("`{a}`"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_name_is_supported_and_named_in_a_refusal() {
        for name in ARCHITECTURES {
            assert!(is_supported(name), "{name}");
            assert!(unsupported_message("x").contains(&format!("`{name}`")));
        }
        assert!(!is_supported("mamba"));
        assert!(unsupported_message("mamba").contains("`mamba`"));
    }
}
