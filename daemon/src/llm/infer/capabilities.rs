//! What a model can be asked to do (`completion`, `tools`, `insert`,
//! `embedding`, `thinking`, `vision`), computed as Ollama's
//! `Model.Capabilities` does, and the 400 a request gets when it asks for
//! one the model lacks.

use llmpm_gguf::GgufFile;

use crate::template::ChatTemplate;

/// One capability, named as Ollama names it on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Capability {
    /// Generates text (any model without a pooling type).
    Completion,
    /// Its template takes `tools`.
    Tools,
    /// Fill-in-the-middle: its template reads `.Suffix`, or its GGUF
    /// declares FIM tokens.
    Insert,
    /// An embedding model (the GGUF has a pooling type).
    Embedding,
    /// It writes reasoning between think tags its template knows.
    Thinking,
    /// It reads images (a vision tower in the GGUF or a projector layer).
    Vision,
}

impl Capability {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Completion => "completion",
            Capability::Tools => "tools",
            Capability::Insert => "insert",
            Capability::Embedding => "embedding",
            Capability::Thinking => "thinking",
            Capability::Vision => "vision",
        }
    }
}

impl std::fmt::Display for Capability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The GGUF keys that decide a model's capabilities, read once at resolve.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct GgufFacts {
    /// `<arch>.pooling_type` is present.
    pub pooling: bool,
    /// `<arch>.vision.block_count` is present.
    pub vision: bool,
    /// The prefix, suffix and middle FIM tokens are all declared.
    pub fim: bool,
    /// The architecture is gpt-oss (thinking without tags: harmony channels).
    pub gpt_oss: bool,
}

impl GgufFacts {
    pub(super) fn read(f: &GgufFile) -> GgufFacts {
        let arch = f.get_str("general.architecture").unwrap_or_default();
        let has = |k: &str| f.get(&format!("{arch}.{k}")).is_some();
        let fim = ["pre", "suf", "mid"].iter().all(|t| {
            f.get_u64(&format!("tokenizer.ggml.fim_{t}_token_id"))
                .is_some()
        });
        GgufFacts {
            pooling: has("pooling_type"),
            vision: has("vision.block_count"),
            fim,
            gpt_oss: matches!(arch, "gptoss" | "gpt-oss"),
        }
    }
}

/// The capabilities of a model with these GGUF facts (`None`: the weights
/// did not open), template and projector layer, in Ollama's order.
pub(super) fn compute(
    gguf: Option<GgufFacts>,
    template: &ChatTemplate,
    projector: bool,
) -> Vec<Capability> {
    let mut caps = Vec::new();
    let mut add = |c: Capability| {
        if !caps.contains(&c) {
            caps.push(c);
        }
    };
    if let Some(g) = gguf {
        add(if g.pooling {
            Capability::Embedding
        } else {
            Capability::Completion
        });
        if g.vision {
            add(Capability::Vision);
        }
    }
    if projector {
        add(Capability::Vision);
    }
    if template.takes_tools() {
        add(Capability::Tools);
    }
    if template.takes_suffix() || gguf.is_some_and(|g| g.fim) {
        add(Capability::Insert);
    }
    if template.think_tags().is_some() || gguf.is_some_and(|g| g.gpt_oss) {
        add(Capability::Thinking);
    }
    caps
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn template(go: &str) -> ChatTemplate {
        ChatTemplate::select(Some(go), None, "llama")
            .unwrap()
            .template
    }

    #[test]
    fn capabilities_as_ollama_computes_them() {
        let chat = template("{{ .Prompt }}");
        let plain = GgufFacts::default();
        assert_eq!(compute(Some(plain), &chat, false), [Capability::Completion]);
        // A pooling type makes an embedding model, not a completion one.
        let embed = GgufFacts {
            pooling: true,
            ..plain
        };
        assert_eq!(compute(Some(embed), &chat, false), [Capability::Embedding]);
        // FIM tokens in the GGUF give `insert` even when the template has no `.Suffix`.
        let fim = GgufFacts { fim: true, ..plain };
        assert_eq!(
            compute(Some(fim), &chat, false),
            [Capability::Completion, Capability::Insert]
        );
        let tools = template("{{ if .Tools }}{{ .Tools }}{{ end }}{{ .Prompt }}");
        assert_eq!(
            compute(Some(plain), &tools, true),
            [
                Capability::Completion,
                Capability::Vision,
                Capability::Tools
            ]
        );
        let gpt_oss = GgufFacts {
            gpt_oss: true,
            ..plain
        };
        assert_eq!(
            compute(Some(gpt_oss), &chat, false),
            [Capability::Completion, Capability::Thinking]
        );
        // Weights that do not open: only what the template says.
        assert_eq!(compute(None, &tools, false), [Capability::Tools]);
    }
}
