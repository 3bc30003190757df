//! Tokenizers built from a GGUF file's `tokenizer.ggml.*` metadata: the
//! byte-level BPE of Llama 3 and Qwen2 (`model = "gpt2"`),
//! SentencePiece-style vocabularies (`model = "llama"`: Llama 2, Gemma) and
//! WordPiece (`model = "bert"`: the BERT-family embedding models).
//!
//! The behaviour follows llama.cpp's `llama-vocab.cpp`, which is what the
//! GGUF files are made for: special tokens are cut out of the text first
//! (leftmost, longest), the rest is pre-tokenized and merged; Llama 3 looks
//! a whole pre-token up in the vocabulary before merging (`ignore_merges`,
//! as Meta's tiktoken does). Everything read from the file is checked —
//! array lengths, ids, merges — so hostile metadata gives an error, never a
//! panic.

mod bpe;
mod count;
mod pretokenize;
mod spm;
mod stream;
mod unicode_tables;
mod wpm;
mod wpm_tables;

use std::collections::HashMap;

use llmpm_gguf::{gpt2_byte_chars, Array, GgufFile};

pub use count::CountMemo;
pub use pretokenize::PreTokenizer;
pub use stream::StreamDecoder;

/// `tokenizer.ggml.token_type` values (llama.cpp's `llama_token_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenType {
    Undefined,
    Normal,
    Unknown,
    /// Never produced from plain text; matched only with `parse_special`.
    Control,
    /// Added tokens, matched in the text even without `parse_special`.
    UserDefined,
    Unused,
    /// `<0xXX>` byte-fallback tokens of SentencePiece vocabularies.
    Byte,
}

impl TokenType {
    fn from_i64(v: i64) -> Option<TokenType> {
        Some(match v {
            0 => TokenType::Undefined,
            1 => TokenType::Normal,
            2 => TokenType::Unknown,
            3 => TokenType::Control,
            4 => TokenType::UserDefined,
            5 => TokenType::Unused,
            6 => TokenType::Byte,
            _ => return None,
        })
    }
}

/// What can be wrong with a GGUF's tokenizer metadata.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("the GGUF metadata has no `{0}`")]
    MissingKey(&'static str),
    #[error("`{key}` is not {expected}")]
    WrongType {
        key: &'static str,
        expected: &'static str,
    },
    #[error("tokenizer model `{0}` is not supported; expected `gpt2` (byte-level BPE), `llama` (SentencePiece) or `bert` (WordPiece)")]
    UnknownModel(String),
    #[error("`tokenizer.ggml.tokens` is empty")]
    EmptyVocab,
    #[error("`tokenizer.ggml.tokens` has {0} entries, more than token ids can address")]
    VocabTooLarge(usize),
    #[error("`{key}` has {actual} entries but the vocabulary has {expected} tokens")]
    LengthMismatch {
        key: &'static str,
        actual: usize,
        expected: usize,
    },
    #[error("`{key}` is {id}, outside the vocabulary of {vocab} tokens")]
    IdOutOfRange {
        key: &'static str,
        id: i64,
        vocab: usize,
    },
    #[error("`tokenizer.ggml.token_type` entry {index} is {value}, not a token type (0 to 6)")]
    BadTokenType { index: usize, value: i64 },
    #[error("merge {index} `{merge}` {reason}")]
    BadMerge {
        index: usize,
        merge: String,
        reason: &'static str,
    },
    #[error("the byte-level vocabulary has no token for byte 0x{0:02X}")]
    MissingByteToken(u8),
}

const KEY_MODEL: &str = "tokenizer.ggml.model";
const KEY_PRE: &str = "tokenizer.ggml.pre";
const KEY_TOKENS: &str = "tokenizer.ggml.tokens";
const KEY_TYPES: &str = "tokenizer.ggml.token_type";
const KEY_SCORES: &str = "tokenizer.ggml.scores";
const KEY_MERGES: &str = "tokenizer.ggml.merges";
const KEY_BOS: &str = "tokenizer.ggml.bos_token_id";
const KEY_EOS: &str = "tokenizer.ggml.eos_token_id";
const KEY_EOT: &str = "tokenizer.ggml.eot_token_id";
const KEY_EOM: &str = "tokenizer.ggml.eom_token_id";
const KEY_PAD: &str = "tokenizer.ggml.padding_token_id";
const KEY_UNK: &str = "tokenizer.ggml.unknown_token_id";
const KEY_ADD_BOS: &str = "tokenizer.ggml.add_bos_token";
const KEY_ADD_EOS: &str = "tokenizer.ggml.add_eos_token";
const KEY_ADD_SPACE_PREFIX: &str = "tokenizer.ggml.add_space_prefix";
const KEY_SEP: &str = "tokenizer.ggml.seperator_token_id";
const KEY_LOWERCASE: &str = "tokenizer.ggml.normalizer.lowercase";
const KEY_STRIP_ACCENTS: &str = "tokenizer.ggml.normalizer.strip_accents";

/// Tokens that end generation when the vocabulary has them, whatever the
/// metadata says (llama.cpp's end-of-generation detection): Llama 3's
/// `<|eot_id|>`, `<|end_of_text|>`, `<|eom_id|>`, ChatML's `<|im_end|>`,
/// Gemma's `<end_of_turn>`, Phi's `<|end|>`, and the fill-in-the-middle
/// pad, repository and file separators a coder model writes when the gap is
/// filled (Qwen's `<|fim_pad|>`, `<|repo_name|>`, `<|file_sep|>`, which
/// llama.cpp also ends on). The runner's fallback codec stops on the same list.
pub const STOP_TOKEN_NAMES: [&str; 10] = [
    "<|eot_id|>",
    "<|end_of_text|>",
    "<|eom_id|>",
    "<|im_end|>",
    "<|endoftext|>",
    "<end_of_turn>",
    "<|end|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
];

/// The names of the stop tokens of a vocabulary that has the tokens `has`
/// says: those of [`STOP_TOKEN_NAMES`] it has; with harmony's `<|return|>`
/// and `<|call|>` (gpt-oss) those two, and `<|end|>` no more, which there
/// only ends one message of several (llama.cpp's rule for o200k_harmony).
pub fn stop_token_names(has: impl Fn(&str) -> bool) -> Vec<&'static str> {
    let harmony = has("<|return|>") && has("<|call|>");
    let mut names: Vec<&'static str> = STOP_TOKEN_NAMES
        .iter()
        .copied()
        .filter(|n| has(n) && !(harmony && *n == "<|end|>"))
        .collect();
    if harmony {
        names.extend(["<|return|>", "<|call|>"]);
    }
    names
}

/// The SentencePiece space.
const SPM_SPACE: char = '\u{2581}';

// One `Model` per loaded model: its size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
enum Model {
    Bpe {
        merges: bpe::Merges,
        pre: PreTokenizer,
        /// Emit a pre-token that is a whole vocabulary entry as is, without
        /// merging (llama.cpp does so for Llama 3 only; some Llama 3 tokens
        /// are not reachable through the merges).
        ignore_merges: bool,
    },
    Spm {
        spm: spm::Spm,
        scores: Vec<f32>,
        add_space_prefix: bool,
    },
    Wpm(wpm::Wpm),
}

/// A text fragment between special tokens, or a special token.
enum Fragment<'t> {
    Text(&'t str),
    Token(u32),
}

/// A tokenizer for one model's vocabulary. Cheap to share: `&self` methods
/// only, no interior mutability.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    tokens: Vec<String>,
    types: Vec<TokenType>,
    /// Vocab string → id; on duplicates the last id wins, as in llama.cpp.
    vocab: HashMap<String, u32>,
    /// The bytes each token stands for, concatenated; token `i` is
    /// `bytes[offsets[i]..offsets[i + 1]]`.
    bytes: Vec<u8>,
    offsets: Vec<usize>,
    model: Model,
    /// Special tokens by first byte, longest first; the flag says whether
    /// the token is matched even without `parse_special` (user-defined).
    specials: Vec<Vec<(u32, bool)>>,
    bos: Option<u32>,
    eos: Option<u32>,
    pad: Option<u32>,
    /// `[SEP]`, which ends a WordPiece input.
    sep: Option<u32>,
    add_bos: bool,
    add_eos: bool,
    stop: Vec<u32>,
}

impl Tokenizer {
    /// Builds the tokenizer that `g`'s metadata describes.
    pub fn from_gguf(g: &GgufFile) -> Result<Tokenizer, TokenizerError> {
        let model_name = required_str(g, KEY_MODEL)?;
        let tokens = strings(g, KEY_TOKENS)?.ok_or(TokenizerError::MissingKey(KEY_TOKENS))?;
        let n = tokens.len();
        if n == 0 {
            return Err(TokenizerError::EmptyVocab);
        }
        if u32::try_from(n).is_err() {
            return Err(TokenizerError::VocabTooLarge(n));
        }
        let types = match array(g, KEY_TYPES)? {
            None => vec![TokenType::Normal; n],
            Some(a) => {
                let values = int_array(a).ok_or(TokenizerError::WrongType {
                    key: KEY_TYPES,
                    expected: "an array of integers",
                })?;
                check_len(KEY_TYPES, values.len(), n)?;
                values
                    .iter()
                    .enumerate()
                    .map(|(index, &value)| {
                        TokenType::from_i64(value)
                            .ok_or(TokenizerError::BadTokenType { index, value })
                    })
                    .collect::<Result<Vec<_>, _>>()?
            }
        };
        let mut vocab = HashMap::with_capacity(n);
        for (i, t) in tokens.iter().enumerate() {
            vocab.insert(t.clone(), i as u32);
        }
        let id = |key: &'static str| token_id_key(g, key, n);
        let mut bos = id(KEY_BOS)?;
        let mut eos = id(KEY_EOS)?;
        let eot = id(KEY_EOT)?;
        let eom = id(KEY_EOM)?;
        let mut pad = id(KEY_PAD)?;
        let unk = id(KEY_UNK)?;
        let mut sep = id(KEY_SEP)?;
        let add_bos_key = opt_bool(g, KEY_ADD_BOS)?;
        let add_eos = opt_bool(g, KEY_ADD_EOS)?.unwrap_or(false);

        let (model, add_bos_default) = match model_name {
            "gpt2" => {
                // Ollama's gpt-oss files (`gptoss`) name a generic
                // pre-tokenizer; the vocabulary is o200k's, as llama.cpp's
                // compatibility layer for them says.
                let ollama_gpt_oss = g.get_str("general.architecture") == Some("gptoss");
                let pre = match g.get(KEY_PRE) {
                    _ if ollama_gpt_oss => PreTokenizer::Gpt4o,
                    None => {
                        tracing::warn!(
                            "GGUF has no `{KEY_PRE}`; using the llama-bpe pre-tokenizer"
                        );
                        PreTokenizer::Llama3
                    }
                    Some(v) => {
                        let name = v.as_str().ok_or(TokenizerError::WrongType {
                            key: KEY_PRE,
                            expected: "a string",
                        })?;
                        PreTokenizer::from_name(name).unwrap_or_else(|| {
                            tracing::warn!(
                                pre = name,
                                "unknown `{KEY_PRE}`; using the llama-bpe pre-tokenizer"
                            );
                            PreTokenizer::Llama3
                        })
                    }
                };
                let merges = parse_merges(g, &vocab)?;
                let ignore_merges = pre == PreTokenizer::Llama3;
                let model = Model::Bpe {
                    merges,
                    pre,
                    ignore_merges,
                };
                (model, pre == PreTokenizer::Llama3)
            }
            "llama" => {
                let scores = match array(g, KEY_SCORES)? {
                    None => vec![0.0; n],
                    Some(a) => {
                        let s = float_array(a).ok_or(TokenizerError::WrongType {
                            key: KEY_SCORES,
                            expected: "an array of floats",
                        })?;
                        check_len(KEY_SCORES, s.len(), n)?;
                        s
                    }
                };
                let mut byte_ids = [None; 256];
                for (b, slot) in byte_ids.iter_mut().enumerate() {
                    *slot = vocab.get(&format!("<0x{b:02X}>")).copied();
                }
                // llama.cpp's SentencePiece defaults: <unk> 0, <s> 1, </s> 2.
                let default = |id: u32| (usize::try_from(id).is_ok_and(|i| i < n)).then_some(id);
                bos = bos.or_else(|| default(1));
                eos = eos.or_else(|| default(2));
                let model = Model::Spm {
                    spm: spm::Spm {
                        byte_ids,
                        unk: unk.or_else(|| default(0)),
                    },
                    scores,
                    add_space_prefix: opt_bool(g, KEY_ADD_SPACE_PREFIX)?.unwrap_or(true),
                };
                (model, true)
            }
            "bert" => {
                // llama.cpp's WordPiece defaults, bert-base-uncased's ids:
                // [PAD] 0, [UNK] 100, [CLS] 101, [SEP] 102.
                let default = |id: u32| (usize::try_from(id).is_ok_and(|i| i < n)).then_some(id);
                bos = bos.or_else(|| default(101));
                sep = sep.or_else(|| default(102));
                pad = pad.or_else(|| default(0));
                let lowercase = opt_bool(g, KEY_LOWERCASE)?.unwrap_or(true);
                let model = Model::Wpm(wpm::Wpm {
                    unk: unk.or_else(|| default(100)),
                    max_token_len: tokens.iter().map(String::len).max().unwrap_or(0),
                    lowercase,
                    strip_accents: opt_bool(g, KEY_STRIP_ACCENTS)?.unwrap_or(lowercase),
                });
                (model, true)
            }
            other => return Err(TokenizerError::UnknownModel(other.to_owned())),
        };
        // llama.cpp frames every WordPiece input as [CLS] … [SEP] whatever
        // the add_* flags say (its EOS is never appended).
        let wordpiece = matches!(model, Model::Wpm(_));

        let (bytes, offsets) = token_bytes_table(tokens, &types, &model);
        let specials = special_table(tokens, &types);
        let mut stop: Vec<u32> = Vec::new();
        let named = stop_token_names(|s| vocab.contains_key(s))
            .into_iter()
            .filter_map(|s| vocab.get(s).copied());
        for t in [eos, eot, eom].into_iter().flatten().chain(named) {
            if !stop.contains(&t) {
                stop.push(t);
            }
        }
        Ok(Tokenizer {
            tokens: tokens.to_vec(),
            types,
            vocab,
            bytes,
            offsets,
            model,
            specials,
            bos,
            eos,
            pad,
            sep,
            add_bos: (wordpiece || add_bos_key.unwrap_or(add_bos_default)) && bos.is_some(),
            add_eos: !wordpiece && add_eos && eos.is_some(),
            stop,
        })
    }

    /// The tokens of `text`. `add_bos` puts BOS first (and EOS last where
    /// the model's `add_eos_token` says so; `[SEP]` last for WordPiece);
    /// pass [`Self::add_bos_default`]
    /// for a prompt. With `parse_special`, control tokens written in the
    /// text (`<|eot_id|>`) become their ids; without, only user-defined
    /// tokens do and control tokens are tokenized as plain text.
    pub fn encode(&self, text: &str, add_bos: bool, parse_special: bool) -> Vec<u32> {
        let mut out = Vec::new();
        if add_bos {
            out.extend(self.bos);
        }
        let mut words = Vec::new();
        let mut scratch = String::new();
        let mut prev_special = true;
        for fragment in self.fragments(text, parse_special) {
            match fragment {
                Fragment::Token(id) => {
                    out.push(id);
                    prev_special = true;
                }
                Fragment::Text(t) => {
                    self.encode_text(t, prev_special, &mut words, &mut scratch, &mut out);
                    prev_special = false;
                }
            }
        }
        if add_bos && self.add_eos {
            out.extend(self.eos);
        }
        if add_bos && matches!(self.model, Model::Wpm(_)) {
            out.extend(self.sep);
        }
        out
    }

    fn encode_text<'t>(
        &self,
        text: &'t str,
        prev_special: bool,
        words: &mut Vec<&'t str>,
        scratch: &mut String,
        out: &mut Vec<u32>,
    ) {
        match &self.model {
            Model::Bpe {
                merges,
                pre,
                ignore_merges,
            } => {
                words.clear();
                pre.split(text, words);
                let chars = gpt2_byte_chars();
                for word in words.iter() {
                    if *ignore_merges {
                        scratch.clear();
                        scratch.extend(word.bytes().map(|b| chars[usize::from(b)]));
                        if let Some(&id) = self.vocab.get(scratch.as_str()) {
                            out.push(id);
                            continue;
                        }
                    }
                    merges.encode_word(word.as_bytes(), out);
                }
            }
            Model::Spm {
                spm,
                scores,
                add_space_prefix,
            } => {
                scratch.clear();
                if *add_space_prefix && prev_special {
                    scratch.push(SPM_SPACE);
                }
                scratch.extend(text.chars().map(|c| if c == ' ' { SPM_SPACE } else { c }));
                spm.encode(scratch, &self.vocab, scores, out);
            }
            Model::Wpm(wpm) => wpm.encode(text, &self.vocab, out),
        }
    }

    /// Cuts the special tokens out of `text`: at each position the longest
    /// special token that starts there, as HF's added-token matcher does.
    fn fragments<'t>(&self, text: &'t str, parse_special: bool) -> Vec<Fragment<'t>> {
        let bytes = text.as_bytes();
        let mut out = Vec::new();
        let (mut start, mut i) = (0, 0);
        while i < bytes.len() {
            let found = self.specials[usize::from(bytes[i])]
                .iter()
                .filter(|(_, always)| parse_special || *always)
                .map(|&(id, _)| (id, self.tokens[id as usize].as_bytes()))
                .find(|(_, t)| bytes[i..].starts_with(t));
            match found {
                // Token texts are valid UTF-8, so a match starts and ends
                // on char boundaries and the slices below cannot fail.
                Some((id, t)) => {
                    if let Some(before) = text.get(start..i).filter(|s| !s.is_empty()) {
                        out.push(Fragment::Text(before));
                    }
                    out.push(Fragment::Token(id));
                    i += t.len();
                    start = i;
                }
                None => i += 1,
            }
        }
        if let Some(rest) = text.get(start..).filter(|s| !s.is_empty()) {
            out.push(Fragment::Text(rest));
        }
        out
    }

    /// The bytes of `ids` concatenated. Special tokens give their text;
    /// ids outside the vocabulary give nothing. WordPiece text is cleaned
    /// up as llama.cpp's detokenizer does (no space before `.`, `,` …;
    /// the leading space of the first word stays, as there).
    pub fn decode(&self, ids: &[u32]) -> Vec<u8> {
        let mut out = Vec::new();
        for &id in ids {
            out.extend_from_slice(self.token_bytes(id));
        }
        if matches!(self.model, Model::Wpm(_)) {
            wpm::clean_spaces(&mut out);
        }
        out
    }

    /// The bytes token `id` stands for (part of a UTF-8 character, for
    /// some byte-level tokens); empty for an id outside the vocabulary.
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        let i = id as usize;
        match (self.offsets.get(i), self.offsets.get(i + 1)) {
            (Some(&a), Some(&b)) => self.bytes.get(a..b).unwrap_or_default(),
            _ => &[],
        }
    }

    /// The vocabulary string of token `id` (`Ġthe`, `▁the`, `<|eot_id|>`).
    pub fn token_str(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// The id of the vocabulary string `s`.
    pub fn token_id(&self, s: &str) -> Option<u32> {
        self.vocab.get(s).copied()
    }

    /// The number of tokens.
    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    /// The type of token `id`.
    pub fn token_type(&self, id: u32) -> Option<TokenType> {
        self.types.get(id as usize).copied()
    }

    pub fn bos(&self) -> Option<u32> {
        self.bos
    }

    pub fn eos(&self) -> Option<u32> {
        self.eos
    }

    pub fn pad(&self) -> Option<u32> {
        self.pad
    }

    /// `[SEP]` of a WordPiece vocabulary (`seperator_token_id`, as
    /// llama.cpp spells the key; default 102).
    pub fn sep(&self) -> Option<u32> {
        self.sep
    }

    /// Tokens that end generation: EOS, EOT, EOM, and the known
    /// end-of-turn tokens the vocabulary has (see [`STOP_TOKEN_NAMES`]).
    pub fn stop_tokens(&self) -> &[u32] {
        &self.stop
    }

    /// Whether `id` is a control token (never printed as text).
    pub fn is_control(&self, id: u32) -> bool {
        self.token_type(id) == Some(TokenType::Control)
    }

    /// Whether prompts start with BOS: `add_bos_token`, else llama.cpp's
    /// default (yes for Llama 3 and SentencePiece, no for other BPE).
    pub fn add_bos_default(&self) -> bool {
        self.add_bos
    }

    /// Whether `add_bos` also appends EOS (`add_eos_token`).
    pub fn add_eos_default(&self) -> bool {
        self.add_eos
    }

    /// The pre-tokenizer, for byte-level BPE vocabularies.
    pub fn pre_tokenizer(&self) -> Option<PreTokenizer> {
        match &self.model {
            Model::Bpe { pre, .. } => Some(*pre),
            Model::Spm { .. } | Model::Wpm(_) => None,
        }
    }
}

/// The concatenated bytes of every token and their offsets.
fn token_bytes_table(
    tokens: &[String],
    types: &[TokenType],
    model: &Model,
) -> (Vec<u8>, Vec<usize>) {
    let decoder = bpe::ByteDecoder::new();
    let mut bytes = Vec::with_capacity(tokens.iter().map(String::len).sum());
    let mut offsets = Vec::with_capacity(tokens.len() + 1);
    offsets.push(0);
    for (t, ty) in tokens.iter().zip(types) {
        match (ty, model) {
            (TokenType::Control | TokenType::UserDefined | TokenType::Unknown, _) => {
                bytes.extend_from_slice(t.as_bytes());
            }
            (_, Model::Bpe { .. }) => decoder.decode(t, &mut bytes),
            (TokenType::Byte, Model::Spm { .. }) => match spm::parse_byte_token(t) {
                Some(b) => bytes.push(b),
                None => bytes.extend_from_slice(t.as_bytes()),
            },
            (_, Model::Spm { .. } | Model::Wpm(_)) => {
                for c in t.chars() {
                    let c = if c == SPM_SPACE { ' ' } else { c };
                    let mut buf = [0; 4];
                    bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        offsets.push(bytes.len());
    }
    (bytes, offsets)
}

/// Control, unknown and user-defined tokens by first byte, longest first.
fn special_table(tokens: &[String], types: &[TokenType]) -> Vec<Vec<(u32, bool)>> {
    let mut table: Vec<Vec<(u32, bool)>> = vec![Vec::new(); 256];
    for (i, (t, ty)) in tokens.iter().zip(types).enumerate() {
        let always = match ty {
            TokenType::UserDefined => true,
            TokenType::Control | TokenType::Unknown => false,
            _ => continue,
        };
        // An empty special token would match everywhere.
        if let Some(&first) = t.as_bytes().first() {
            table[usize::from(first)].push((i as u32, always));
        }
    }
    for bucket in &mut table {
        bucket.sort_by_key(|&(id, _)| (std::cmp::Reverse(tokens[id as usize].len()), id));
    }
    table
}

/// `tokenizer.ggml.merges` as id pairs. The first of duplicate merges wins,
/// as in llama.cpp.
fn parse_merges(g: &GgufFile, vocab: &HashMap<String, u32>) -> Result<bpe::Merges, TokenizerError> {
    let merges = strings(g, KEY_MERGES)?.ok_or(TokenizerError::MissingKey(KEY_MERGES))?;
    let mut pairs = HashMap::with_capacity(merges.len());
    let bad = |index: usize, merge: &str, reason| TokenizerError::BadMerge {
        index,
        merge: merge.chars().take(64).collect(),
        reason,
    };
    for (index, m) in merges.iter().enumerate() {
        let (a, b) = m
            .split_once(' ')
            .ok_or_else(|| bad(index, m, "is not two tokens separated by a space"))?;
        let left = vocab
            .get(a)
            .ok_or_else(|| bad(index, m, "names a left token that is not in the vocabulary"))?;
        let right = vocab.get(b).ok_or_else(|| {
            bad(
                index,
                m,
                "names a right token that is not in the vocabulary",
            )
        })?;
        let mut joined = String::with_capacity(a.len() + b.len());
        joined.push_str(a);
        joined.push_str(b);
        let merged = vocab
            .get(&joined)
            .ok_or_else(|| bad(index, m, "makes a token that is not in the vocabulary"))?;
        let rank = u32::try_from(index).unwrap_or(u32::MAX);
        pairs.entry((*left, *right)).or_insert((rank, *merged));
    }
    let chars = gpt2_byte_chars();
    let mut byte_ids = [0u32; 256];
    for (b, slot) in byte_ids.iter_mut().enumerate() {
        let c = chars[b].to_string();
        *slot = *vocab
            .get(&c)
            .ok_or(TokenizerError::MissingByteToken(b as u8))?;
    }
    Ok(bpe::Merges { pairs, byte_ids })
}

fn check_len(key: &'static str, actual: usize, expected: usize) -> Result<(), TokenizerError> {
    if actual == expected {
        Ok(())
    } else {
        Err(TokenizerError::LengthMismatch {
            key,
            actual,
            expected,
        })
    }
}

fn required_str<'g>(g: &'g GgufFile, key: &'static str) -> Result<&'g str, TokenizerError> {
    g.get(key)
        .ok_or(TokenizerError::MissingKey(key))?
        .as_str()
        .ok_or(TokenizerError::WrongType {
            key,
            expected: "a string",
        })
}

fn array<'g>(g: &'g GgufFile, key: &'static str) -> Result<Option<&'g Array>, TokenizerError> {
    match g.get(key) {
        None => Ok(None),
        Some(v) => v.as_array().map(Some).ok_or(TokenizerError::WrongType {
            key,
            expected: "an array",
        }),
    }
}

fn strings<'g>(g: &'g GgufFile, key: &'static str) -> Result<Option<&'g [String]>, TokenizerError> {
    match array(g, key)? {
        None => Ok(None),
        Some(a) => a.as_strings().map(Some).ok_or(TokenizerError::WrongType {
            key,
            expected: "an array of strings",
        }),
    }
}

fn opt_bool(g: &GgufFile, key: &'static str) -> Result<Option<bool>, TokenizerError> {
    match g.get(key) {
        None => Ok(None),
        Some(v) => v.as_bool().map(Some).ok_or(TokenizerError::WrongType {
            key,
            expected: "a boolean",
        }),
    }
}

/// A token id from `key`: absent or negative (some writers use -1 for
/// "none") is `None`; an id past the vocabulary is an error.
fn token_id_key(g: &GgufFile, key: &'static str, n: usize) -> Result<Option<u32>, TokenizerError> {
    let Some(v) = g.get(key) else {
        return Ok(None);
    };
    let id = v.as_i64().ok_or(TokenizerError::WrongType {
        key,
        expected: "an integer",
    })?;
    if id < 0 {
        return Ok(None);
    }
    match usize::try_from(id) {
        Ok(i) if i < n => Ok(u32::try_from(i).ok()),
        _ => Err(TokenizerError::IdOutOfRange { key, id, vocab: n }),
    }
}

fn int_array(a: &Array) -> Option<Vec<i64>> {
    fn conv<T: Copy>(v: &[T], f: impl Fn(T) -> Option<i64>) -> Option<Vec<i64>> {
        v.iter().map(|&x| f(x)).collect()
    }
    match a {
        Array::U8(v) => conv(v, |x| Some(i64::from(x))),
        Array::I8(v) => conv(v, |x| Some(i64::from(x))),
        Array::U16(v) => conv(v, |x| Some(i64::from(x))),
        Array::I16(v) => conv(v, |x| Some(i64::from(x))),
        Array::U32(v) => conv(v, |x| Some(i64::from(x))),
        Array::I32(v) => conv(v, |x| Some(i64::from(x))),
        Array::U64(v) => conv(v, |x| i64::try_from(x).ok()),
        Array::I64(v) => Some(v.clone()),
        _ => None,
    }
}

fn float_array(a: &Array) -> Option<Vec<f32>> {
    match a {
        Array::F32(v) => Some(v.clone()),
        Array::F64(v) => Some(v.iter().map(|&x| x as f32).collect()),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
