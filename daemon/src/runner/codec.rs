//! The runner's view of a tokenizer ([`TextCodec`]): the real one
//! (`crate::tokenizer::Tokenizer`), and a minimal fallback built from the
//! GGUF vocabulary ([`VocabCodec`]) for vocabularies it refuses. The
//! fallback decodes exactly (decoding is a table lookup) but encodes by
//! greedy longest match, a valid tokenization though not always BPE's.

use std::collections::{HashMap, HashSet};

use llmpm_gguf::{gpt2_byte_chars, Array, GgufFile, Value};

use crate::tokenizer::stop_token_names;

/// What the runner needs from a tokenizer.
pub trait TextCodec: Send + Sync {
    /// Token ids of `text`; `add_bos` prepends BOS when the model wants one,
    /// `parse_special` lets `<|eot_id|>`-like text become the special token.
    fn encode(&self, text: &str, add_bos: bool, parse_special: bool) -> Vec<u32>;
    /// The bytes `ids` stand for (control tokens render as nothing).
    fn decode(&self, ids: &[u32]) -> Vec<u8>;
    /// Whether `id` ends generation (EOS, EOT, `<|im_end|>`, …).
    fn is_eog(&self, id: u32) -> bool;
    /// How many token ids the vocabulary has.
    fn vocab_len(&self) -> usize;
    /// Token `id` as constrained sampling sees it: its bytes (a special
    /// token's text), and whether it is special: a control, unknown or unused
    /// token, never part of plain text, so that a grammar reaches it only by
    /// name.
    fn token_entry(&self, id: u32) -> (Vec<u8>, bool);
    /// Whether `encode` tokenizes as the model was trained (BPE merges,
    /// SentencePiece scores), so that text a grammar forces can be tokenized
    /// as the model itself would write it.
    fn canonical(&self) -> bool;
    /// The bytes of one token, a control token's text included (for the
    /// tokens a request asks to see).
    fn token_text(&self, id: u32) -> Vec<u8> {
        self.decode(&[id])
    }
}

/// Why a vocabulary could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// `tokenizer.ggml.tokens` is missing or not strings.
    #[error("the model has no `tokenizer.ggml.tokens` string array")]
    NoTokens,
}

/// The codec the runner uses for `file`: the tokenizer, or the plain
/// vocabulary codec where the tokenizer refuses the vocabulary.
pub fn for_gguf(file: &GgufFile) -> Result<std::sync::Arc<dyn TextCodec>, CodecError> {
    Ok(match crate::tokenizer::Tokenizer::from_gguf(file) {
        Ok(t) => std::sync::Arc::new(t),
        Err(e) => {
            tracing::warn!(error = %e, "tokenizer refused the vocabulary; using the plain vocabulary codec");
            std::sync::Arc::new(VocabCodec::from_gguf(file)?)
        }
    })
}

/// A vocabulary-table codec (see the module docs).
#[derive(Debug)]
pub struct VocabCodec {
    /// Bytes of each token; empty for control tokens.
    bytes: Vec<Vec<u8>>,
    /// Byte sequence → id for normal tokens.
    by_bytes: HashMap<Vec<u8>, u32>,
    /// Special token text → id, longest first.
    specials: Vec<(String, u32)>,
    max_len: usize,
    bos: Option<u32>,
    add_bos: bool,
    eog: HashSet<u32>,
}

fn u32_of(f: &GgufFile, key: &str) -> Option<u32> {
    f.get_u64(key).and_then(|v| u32::try_from(v).ok())
}

impl VocabCodec {
    /// Reads `tokenizer.ggml.*` from `file`.
    pub fn from_gguf(file: &GgufFile) -> Result<VocabCodec, CodecError> {
        let tokens = file
            .get("tokenizer.ggml.tokens")
            .and_then(Value::as_array)
            .and_then(Array::as_strings)
            .ok_or(CodecError::NoTokens)?;
        let types: Vec<i64> = match file.get("tokenizer.ggml.token_type") {
            Some(Value::Array(Array::I32(v))) => v.iter().map(|&x| i64::from(x)).collect(),
            Some(Value::Array(Array::U32(v))) => v.iter().map(|&x| i64::from(x)).collect(),
            _ => Vec::new(),
        };
        let spm = file.get_str("tokenizer.ggml.model") == Some("llama");
        let mut unchar = HashMap::new();
        for (b, c) in gpt2_byte_chars().iter().enumerate() {
            unchar.insert(*c, u8::try_from(b).unwrap_or(0));
        }
        let mut bytes = Vec::with_capacity(tokens.len());
        let mut by_bytes = HashMap::new();
        let mut specials = Vec::new();
        for (i, text) in tokens.iter().enumerate() {
            let id = u32::try_from(i).unwrap_or(u32::MAX);
            let ty = types.get(i).copied().unwrap_or(1);
            // 3 control, 4 user-defined: matched as whole strings, never by bytes.
            if ty == 3 || ty == 4 {
                specials.push((text.clone(), id));
                bytes.push(if ty == 4 {
                    text.as_bytes().to_vec()
                } else {
                    Vec::new()
                });
                continue;
            }
            let b = if spm {
                spm_bytes(text)
            } else {
                text.chars()
                    .map(|c| unchar.get(&c).copied())
                    .collect::<Option<Vec<u8>>>()
                    .unwrap_or_else(|| text.as_bytes().to_vec())
            };
            by_bytes.entry(b.clone()).or_insert(id);
            bytes.push(b);
        }
        specials.sort_by_key(|s| std::cmp::Reverse(s.0.len()));
        let max_len = by_bytes.keys().map(Vec::len).max().unwrap_or(1);
        let bos = u32_of(file, "tokenizer.ggml.bos_token_id");
        let add_bos = file
            .get("tokenizer.ggml.add_bos_token")
            .and_then(Value::as_bool)
            .unwrap_or(bos.is_some());
        let mut eog = HashSet::new();
        for key in ["tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id"] {
            if let Some(id) = u32_of(file, key) {
                eog.insert(id);
            }
        }
        let names = stop_token_names(|n| specials.iter().any(|(t, _)| t == n));
        for (text, id) in &specials {
            if names.contains(&text.as_str()) {
                eog.insert(*id);
            }
        }
        Ok(VocabCodec {
            bytes,
            by_bytes,
            specials,
            max_len,
            bos,
            add_bos,
            eog,
        })
    }

    fn encode_plain(&self, text: &[u8], out: &mut Vec<u32>) {
        let mut i = 0;
        while i < text.len() {
            let mut n = self.max_len.min(text.len() - i);
            let mut found = None;
            while n > 0 {
                if let Some(&id) = self.by_bytes.get(&text[i..i + n]) {
                    found = Some(id);
                    break;
                }
                n -= 1;
            }
            match found {
                Some(id) => {
                    out.push(id);
                    i += n;
                }
                // A byte the vocabulary cannot spell is dropped.
                None => i += 1,
            }
        }
    }
}

/// SentencePiece spelling: `▁` is a space, `<0x0A>` a raw byte.
fn spm_bytes(text: &str) -> Vec<u8> {
    if let Some(hex) = text.strip_prefix("<0x").and_then(|r| r.strip_suffix('>')) {
        if let Ok(b) = u8::from_str_radix(hex, 16) {
            return vec![b];
        }
    }
    text.replace('\u{2581}', " ").into_bytes()
}

impl TextCodec for VocabCodec {
    fn encode(&self, text: &str, add_bos: bool, parse_special: bool) -> Vec<u32> {
        let mut out = Vec::new();
        if add_bos && self.add_bos {
            if let Some(b) = self.bos {
                out.push(b);
            }
        }
        let bytes = text.as_bytes();
        let mut start = 0;
        let mut i = 0;
        while i < bytes.len() {
            if parse_special && bytes[i] == b'<' {
                if let Some((s, id)) = self
                    .specials
                    .iter()
                    .find(|(s, _)| !s.is_empty() && bytes[i..].starts_with(s.as_bytes()))
                {
                    self.encode_plain(&bytes[start..i], &mut out);
                    out.push(*id);
                    i += s.len();
                    start = i;
                    continue;
                }
            }
            i += 1;
        }
        self.encode_plain(&bytes[start..], &mut out);
        out
    }

    fn decode(&self, ids: &[u32]) -> Vec<u8> {
        ids.iter()
            .filter_map(|&id| self.bytes.get(id as usize))
            .flatten()
            .copied()
            .collect()
    }

    fn is_eog(&self, id: u32) -> bool {
        self.eog.contains(&id)
    }

    fn vocab_len(&self) -> usize {
        self.bytes.len()
    }

    fn token_entry(&self, id: u32) -> (Vec<u8>, bool) {
        match self.bytes.get(id as usize) {
            Some(b) if !b.is_empty() => (b.clone(), false),
            // Control tokens have no bytes here; their text is their name.
            _ => match self.specials.iter().find(|&&(_, s)| s == id) {
                Some((text, _)) => (text.as_bytes().to_vec(), true),
                None => (Vec::new(), false),
            },
        }
    }

    fn canonical(&self) -> bool {
        // Greedy longest match, not the model's merges.
        false
    }
}

impl TextCodec for crate::tokenizer::Tokenizer {
    fn encode(&self, text: &str, add_bos: bool, parse_special: bool) -> Vec<u32> {
        crate::tokenizer::Tokenizer::encode(
            self,
            text,
            add_bos && self.add_bos_default(),
            parse_special,
        )
    }

    fn decode(&self, ids: &[u32]) -> Vec<u8> {
        // Control tokens (`<|eot_id|>`) are never shown as text.
        ids.iter()
            .filter(|&&id| !self.is_control(id))
            .flat_map(|&id| self.token_bytes(id))
            .copied()
            .collect()
    }

    fn is_eog(&self, id: u32) -> bool {
        self.stop_tokens().contains(&id)
    }

    fn vocab_len(&self) -> usize {
        self.vocab_size()
    }

    fn token_entry(&self, id: u32) -> (Vec<u8>, bool) {
        use crate::tokenizer::TokenType;
        let special = matches!(
            self.token_type(id),
            Some(TokenType::Control | TokenType::Unknown | TokenType::Unused)
        );
        (self.token_bytes(id).to_vec(), special)
    }

    fn canonical(&self) -> bool {
        true
    }

    fn token_text(&self, id: u32) -> Vec<u8> {
        self.token_bytes(id).to_vec()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use llmpm_gguf::tiny::{tiny_llama_bytes, TinyLlamaSpec};

    #[test]
    fn round_trips_text_and_specials() {
        let bytes = tiny_llama_bytes(&TinyLlamaSpec::default()).unwrap();
        let file = GgufFile::from_bytes(&bytes).unwrap();
        let c = VocabCodec::from_gguf(&file).unwrap();
        let text = "Hello world, the llama! 日本";
        let ids = c.encode(text, false, false);
        assert_eq!(c.decode(&ids), text.as_bytes());
        let ids = c.encode("<|eot_id|>hi", true, true);
        assert_eq!(ids.len(), 4);
        assert!(c.is_eog(ids[1]));
        assert_eq!(c.decode(&ids), b"hi");
    }
}
