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
    /// A reranker: scores documents for a query (`pooling_type` 4, rank).
    Rerank,
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
            Capability::Rerank => "rerank",
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
    /// `<arch>.pooling_type` is 4 (rank): a reranker.
    pub rank: bool,
    /// `<arch>.vision.block_count` is present.
    pub vision: bool,
    /// The prefix, suffix and middle FIM tokens are all there ([`FimTokens`]).
    pub fim: bool,
    /// The architecture is gpt-oss (thinking without tags: harmony channels).
    pub gpt_oss: bool,
}

impl GgufFacts {
    pub(super) fn read(f: &GgufFile) -> GgufFacts {
        let arch = f.get_str("general.architecture").unwrap_or_default();
        let has = |k: &str| f.get(&format!("{arch}.{k}")).is_some();
        GgufFacts {
            pooling: has("pooling_type"),
            rank: f
                .get(&format!("{arch}.pooling_type"))
                .and_then(|v| v.as_u64())
                == Some(4),
            vision: has("vision.block_count"),
            fim: FimTokens::read(f).is_some(),
            gpt_oss: matches!(arch, "gptoss" | "gpt-oss"),
        }
    }
}

/// The texts of a model's fill-in-the-middle tokens, which frame a
/// prompt as `<prefix>before<suffix>after<middle>` (llama.cpp's /infill
/// order, "PSM", which Qwen2.5-Coder, StarCoder, CodeLlama and DeepSeek
/// Coder were trained on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FimTokens {
    /// Opens the text before the gap.
    pub prefix: String,
    /// Opens the text after the gap.
    pub suffix: String,
    /// Asks for the middle.
    pub middle: String,
}

/// Vocabulary texts of FIM tokens, as llama.cpp's vocabulary loader finds
/// them when the GGUF does not declare the ids (Qwen, the dashed and
/// underscored forms, Granite, DeepSeek, CodeLlama, GLM-4.5, Falcon-H1).
const FIM_TEXTS: [[&str; 8]; 3] = [
    [
        "<|fim_prefix|>",
        "<fim-prefix>",
        "<fim_prefix>",
        "<\u{ff5c}fim\u{2581}begin\u{ff5c}>",
        "<PRE>",
        "\u{2581}<PRE>",
        "<|code_prefix|>",
        "<|prefix|>",
    ],
    [
        "<|fim_suffix|>",
        "<fim-suffix>",
        "<fim_suffix>",
        "<\u{ff5c}fim\u{2581}hole\u{ff5c}>",
        "<SUF>",
        "\u{2581}<SUF>",
        "<|code_suffix|>",
        "<|suffix|>",
    ],
    [
        "<|fim_middle|>",
        "<fim-middle>",
        "<fim_middle>",
        "<\u{ff5c}fim\u{2581}end\u{ff5c}>",
        "<MID>",
        "\u{2581}<MID>",
        "<|code_middle|>",
        "<|middle|>",
    ],
];

impl FimTokens {
    /// The FIM tokens of the GGUF `f`: the ids it declares
    /// (`tokenizer.ggml.fim_{pre,suf,mid}_token_id`, or the older
    /// `{prefix,suffix,middle}_token_id`), else the vocabulary's tokens
    /// with the known texts. `None` unless all three are there.
    pub(super) fn read(f: &GgufFile) -> Option<FimTokens> {
        let tokens = f.get("tokenizer.ggml.tokens")?.as_array()?.as_strings()?;
        let declared = |short: &str, long: &str| {
            [short, long].iter().find_map(|k| {
                let id = f.get_u64(&format!("tokenizer.ggml.{k}_token_id"))?;
                tokens.get(usize::try_from(id).ok()?).cloned()
            })
        };
        // As llama.cpp: the first token (by id) with a known text, one pass.
        let mut named: [Option<&String>; 3] = [None; 3];
        for t in tokens.iter().filter(|t| t.contains('<')) {
            for (slot, texts) in named.iter_mut().zip(&FIM_TEXTS) {
                if slot.is_none() && texts.contains(&t.as_str()) {
                    *slot = Some(t);
                }
            }
        }
        let named = |i: usize| named[i].cloned();
        Some(FimTokens {
            prefix: declared("fim_pre", "prefix").or_else(|| named(0))?,
            suffix: declared("fim_suf", "suffix").or_else(|| named(1))?,
            middle: declared("fim_mid", "middle").or_else(|| named(2))?,
        })
    }

    /// The prompt asking for what goes between `before` and `after`.
    pub fn frame(&self, before: &str, after: &str) -> String {
        format!(
            "{}{before}{}{after}{}",
            self.prefix, self.suffix, self.middle
        )
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
        add(if g.rank {
            Capability::Rerank
        } else if g.pooling {
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
        // Rank pooling makes a reranker, which gives no embeddings.
        let rank = GgufFacts {
            pooling: true,
            rank: true,
            ..plain
        };
        assert_eq!(compute(Some(rank), &chat, false), [Capability::Rerank]);
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

    fn gguf(tokens: &[&str], kvs: &[(&str, u32)]) -> GgufFile {
        let mut w = llmpm_gguf::writer::GgufWriter::new();
        w.add_kv("general.architecture", "qwen2").unwrap();
        let tokens: Vec<String> = tokens.iter().map(|t| (*t).to_owned()).collect();
        w.add_kv("tokenizer.ggml.tokens", tokens).unwrap();
        for (k, v) in kvs {
            w.add_kv(*k, *v).unwrap();
        }
        GgufFile::from_bytes(&w.to_bytes()).unwrap()
    }

    #[test]
    fn fim_tokens_declared_or_found_by_text() {
        let fim = |pre: &str, suf: &str, mid: &str| FimTokens {
            prefix: pre.into(),
            suffix: suf.into(),
            middle: mid.into(),
        };
        // Declared ids win (the current keys, then the older ones).
        let vocab = ["a", "<A>", "<B>", "<C>", "<|fim_prefix|>"];
        let declared = gguf(
            &vocab,
            &[
                ("tokenizer.ggml.fim_pre_token_id", 1),
                ("tokenizer.ggml.fim_suf_token_id", 2),
                ("tokenizer.ggml.middle_token_id", 3),
            ],
        );
        assert_eq!(FimTokens::read(&declared), Some(fim("<A>", "<B>", "<C>")));
        assert_eq!(
            FimTokens::read(&declared).unwrap().frame("x", "y"),
            "<A>x<B>y<C>"
        );
        // Qwen2.5-Coder GGUFs that declare nothing: found by text, as llama.cpp does.
        let qwen = gguf(
            &[
                "a",
                "<|fim_prefix|>",
                "<|fim_middle|>",
                "<|fim_suffix|>",
                "<|fim_pad|>",
            ],
            &[],
        );
        assert_eq!(
            FimTokens::read(&qwen),
            Some(fim("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"))
        );
        assert!(GgufFacts::read(&qwen).fim);
        // All three or nothing; an id past the vocabulary is no token.
        let partial = gguf(&["a", "<|fim_prefix|>", "<|fim_suffix|>"], &[]);
        assert_eq!(FimTokens::read(&partial), None);
        let past = gguf(
            &["a"],
            &[
                ("tokenizer.ggml.fim_pre_token_id", 7),
                ("tokenizer.ggml.fim_suf_token_id", 0),
                ("tokenizer.ggml.fim_mid_token_id", 0),
            ],
        );
        assert_eq!(FimTokens::read(&past), None);
        assert!(!GgufFacts::read(&past).fim);
    }
}
