//! What `/api/show` and `list` print about a GGUF file: the architecture,
//! the parameter count (and Ollama's rounding of it), the quantization
//! level and `model_info`. All of it is read from the header alone.

use crate::read::GgufFile;
use crate::types::{FileType, GgmlType};
use crate::value::Value;

impl GgufFile {
    /// `general.architecture` (`llama`, `qwen2`).
    pub fn architecture(&self) -> Option<&str> {
        self.get_str("general.architecture")
    }

    /// The number of weights: the sum of the tensors' element counts.
    pub fn parameter_count(&self) -> u64 {
        self.tensors()
            .iter()
            .fold(0u64, |n, t| n.saturating_add(t.element_count()))
    }

    /// The quantization: `general.file_type` when it names a known type,
    /// else inferred from the tensor type holding most weights.
    pub fn file_type(&self) -> Option<FileType> {
        // llama.cpp ORs in 1024 (LLAMA_FTYPE_GUESSED) when it guessed.
        let declared = self
            .get_u64("general.file_type")
            .and_then(|v| u32::try_from(v & !1024).ok())
            .and_then(FileType::from_u32);
        declared.or_else(|| self.inferred_file_type())
    }

    fn inferred_file_type(&self) -> Option<FileType> {
        // Norms and biases (1-D) stay F32 in quantized models, so only
        // matrices vote, unless there are none.
        let has_matrices = self.tensors().iter().any(|t| t.dims.len() >= 2);
        let mut totals: Vec<(GgmlType, u64)> = Vec::new();
        for t in self.tensors() {
            if has_matrices && t.dims.len() < 2 {
                continue;
            }
            match totals.iter_mut().find(|(ty, _)| *ty == t.ggml_type) {
                Some((_, n)) => *n = n.saturating_add(t.element_count()),
                None => totals.push((t.ggml_type, t.element_count())),
            }
        }
        // Ties go to the lower type id so the answer does not depend on order.
        totals
            .into_iter()
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
            .and_then(|(t, _)| FileType::from_ggml_type(t))
    }

    /// `{arch}.context_length`.
    pub fn context_length(&self) -> Option<u64> {
        let arch = self.architecture()?;
        self.get_u64(&format!("{arch}.context_length"))
    }

    /// The Jinja chat template (`tokenizer.chat_template`).
    pub fn chat_template(&self) -> Option<&str> {
        self.get_str("tokenizer.chat_template")
    }

    /// `tokenizer.ggml.model`: `gpt2` for byte-level BPE (Llama 3, Qwen),
    /// `llama` for SentencePiece.
    pub fn tokenizer_model(&self) -> Option<&str> {
        self.get_str("tokenizer.ggml.model")
    }

    /// The parameter count as Ollama prints it (`8.0B`, `494.03M`).
    pub fn human_parameter_size(&self) -> String {
        human_number(self.parameter_count())
    }

    /// `model_info` of Ollama's `/api/show`: every metadata entry but
    /// `general.name` and `tokenizer.chat_template` (shown elsewhere), plus
    /// `general.parameter_count`; non-empty arrays are `null`, as Ollama
    /// sends them unless asked to be verbose.
    pub fn model_info(&self) -> serde_json::Map<String, serde_json::Value> {
        self.model_info_with(false)
    }

    /// [`GgufFile::model_info`] with arrays in full (`"verbose": true`).
    pub fn model_info_verbose(&self) -> serde_json::Map<String, serde_json::Value> {
        self.model_info_with(true)
    }

    fn model_info_with(&self, verbose: bool) -> serde_json::Map<String, serde_json::Value> {
        // Keys sorted, as Ollama's (a Go map) are, also when serde_json keeps
        // insertion order (its `preserve_order`, which the daemon's tree
        // turns on).
        let mut info = std::collections::BTreeMap::new();
        for (key, value) in self.metadata() {
            if key == "general.name" || key == "tokenizer.chat_template" {
                continue;
            }
            let json = match value {
                Value::Array(a) if !verbose && !a.is_empty() => serde_json::Value::Null,
                other => other.to_json(),
            };
            info.insert(key.clone(), json);
        }
        info.insert(
            "general.parameter_count".to_owned(),
            serde_json::Value::from(self.parameter_count()),
        );
        info.into_iter().collect()
    }
}

/// A count as Ollama's `format.HumanNumber` prints it: `8.0B`, `1B`,
/// `494.03M`, `135K`, `999`.
pub fn human_number(n: u64) -> String {
    const THOUSAND: u64 = 1_000;
    const MILLION: u64 = 1_000_000;
    const BILLION: u64 = 1_000_000_000;
    let scaled = |unit: u64| n as f64 / unit as f64;
    if n >= BILLION {
        let x = scaled(BILLION);
        if x == x.floor() {
            format!("{x:.0}B")
        } else {
            format!("{x:.1}B")
        }
    } else if n >= MILLION {
        let x = scaled(MILLION);
        if x == x.floor() {
            format!("{x:.0}M")
        } else {
            format!("{x:.2}M")
        }
    } else if n >= THOUSAND {
        format!("{:.0}K", scaled(THOUSAND))
    } else {
        n.to_string()
    }
}

#[cfg(test)]
mod tests;
