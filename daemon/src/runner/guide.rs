//! Constrained sampling with llguidance: the model's vocabulary as the
//! engine's token trie ([`Vocab`], built once per model), and per generation
//! a [`Guide`] that gives the tokens allowed next (a bitmask the sampler
//! applies before anything else) and follows the tokens sampled.

use std::sync::Arc;

use llguidance::toktrie::{SimpleVob, TokEnv, TokRxInfo, TokTrie, TokenId, TokenizerEnv};
use llguidance::{Matcher, ParserFactory};

use super::codec::TextCodec;
use crate::llm::grammar::top_level;
use crate::llm::protocol::Constraint;

/// The engine's view of the tokenizer: the trie of token bytes, and our
/// encoder for the text a grammar forces.
struct CodecEnv {
    trie: TokTrie,
    codec: Arc<dyn TextCodec>,
}

impl TokenizerEnv for CodecEnv {
    fn tok_trie(&self) -> &TokTrie {
        &self.trie
    }

    fn tokenize_bytes(&self, s: &[u8]) -> Vec<TokenId> {
        if let Ok(text) = std::str::from_utf8(s) {
            let ids = self.codec.encode(text, false, false);
            // The engine needs exactly these bytes back; an encoder that adds
            // to them (SentencePiece's leading space) cannot serve here.
            if self.codec.decode(&ids) == s {
                return ids;
            }
        }
        // Part of a character (the encoder takes text only), or see above.
        self.trie.greedy_tokenize(s)
    }

    fn tokenize_is_canonical(&self) -> bool {
        self.codec.canonical()
    }
}

/// One model's vocabulary, compiled for the engine; shared by every
/// constrained generation on that model.
pub struct Vocab {
    factory: ParserFactory,
}

impl Vocab {
    /// The vocabulary of `codec` for a model with `n_logits` outputs (which
    /// may be more than the tokenizer's tokens: padding rows are never
    /// allowed).
    pub fn new(codec: Arc<dyn TextCodec>, n_logits: usize) -> Result<Vocab, String> {
        let n = codec.vocab_len().max(n_logits);
        let mut words = Vec::with_capacity(n + 1);
        let mut eog = Vec::new();
        for id in 0..n {
            let id = u32::try_from(id).map_err(|_| "the vocabulary is too large".to_string())?;
            let (mut bytes, special) = if (id as usize) < codec.vocab_len() {
                codec.token_entry(id)
            } else {
                (Vec::new(), false)
            };
            if special && !bytes.is_empty() {
                // The engine's mark for a token that no text spells.
                bytes.insert(0, TokTrie::SPECIAL_TOKEN_MARKER);
            }
            if codec.is_eog(id) {
                eog.push(id);
            }
            words.push(bytes);
        }
        if eog.is_empty() {
            // The engine needs an end token: one that no logit can pick, so
            // generation ends when the grammar does.
            eog.push(u32::try_from(words.len()).map_err(|_| "the vocabulary is too large")?);
            words.push(Vec::new());
        }
        let vocab_size = u32::try_from(words.len()).map_err(|_| "the vocabulary is too large")?;
        let info = TokRxInfo::new(vocab_size, eog[0]);
        let trie = TokTrie::from(&info, &words).with_eos_tokens(&eog);
        let env: TokEnv = Arc::new(CodecEnv { trie, codec });
        let mut factory = ParserFactory::new_simple(&env).map_err(|e| e.to_string())?;
        // Errors are returned, not printed on the runner's stderr.
        factory.quiet();
        Ok(Vocab { factory })
    }
}

/// The vocabulary of a model, compiled when a generation first needs it
/// (most never do), on a thread of its own: compiling a large vocabulary
/// takes a second, in which the engine goes on serving the others.
pub struct LazyVocab {
    codec: Arc<dyn TextCodec>,
    n_logits: usize,
    state: LazyState,
}

enum LazyState {
    Idle,
    Building(std::thread::JoinHandle<Result<Vocab, String>>),
    Done(Result<Vocab, String>),
}

impl LazyVocab {
    /// Nothing compiled yet; see [`Vocab::new`] for the arguments.
    pub fn new(codec: Arc<dyn TextCodec>, n_logits: usize) -> LazyVocab {
        LazyVocab {
            codec,
            n_logits,
            state: LazyState::Idle,
        }
    }

    /// The vocabulary (or why it could not be compiled) when it is ready;
    /// `None` while it compiles, starting that if it has not started.
    pub fn poll(&mut self) -> Option<Result<&Vocab, &str>> {
        match &self.state {
            LazyState::Idle => {
                let (codec, n) = (self.codec.clone(), self.n_logits);
                let spawned = std::thread::Builder::new()
                    .name("vocab".into())
                    .spawn(move || {
                        let t = std::time::Instant::now();
                        let v = Vocab::new(codec, n);
                        tracing::info!(
                            ms = t.elapsed().as_millis(),
                            "vocabulary compiled for constrained sampling"
                        );
                        v
                    });
                self.state = match spawned {
                    Ok(h) => LazyState::Building(h),
                    Err(e) => LazyState::Done(Err(format!("cannot start a thread: {e}"))),
                };
            }
            LazyState::Building(h) if h.is_finished() => self.wait_done(),
            LazyState::Building(_) | LazyState::Done(_) => {}
        }
        match &self.state {
            LazyState::Done(r) => Some(r.as_ref().map_err(String::as_str)),
            _ => None,
        }
    }

    /// Blocks until a compilation under way is done.
    pub fn wait(&mut self) {
        if matches!(self.state, LazyState::Building(_)) {
            self.wait_done();
        }
    }

    fn wait_done(&mut self) {
        if let LazyState::Building(h) = std::mem::replace(&mut self.state, LazyState::Idle) {
            let r = h
                .join()
                .unwrap_or_else(|_| Err("the vocabulary compiler panicked".into()));
            self.state = LazyState::Done(r);
        }
    }
}

/// One generation's constraint: what may come next, given what came.
pub struct Guide {
    matcher: Matcher,
}

/// Why a constrained generation cannot go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuideError {
    /// The grammar does not compile for this model.
    #[error("cannot compile the output constraint: {0}")]
    Compile(String),
    /// The engine failed mid-generation.
    #[error("the output constraint failed: {0}")]
    Engine(String),
}

impl Guide {
    /// A guide for `c` on `vocab`'s model.
    pub fn new(vocab: &Vocab, c: &Constraint) -> Result<Guide, GuideError> {
        let parser = vocab
            .factory
            .create_parser(top_level(c))
            .map_err(|e| GuideError::Compile(e.to_string()))?;
        let matcher = Matcher::new(Ok(parser));
        if let Some(e) = matcher.get_error() {
            return Err(GuideError::Compile(e));
        }
        Ok(Guide { matcher })
    }

    /// The tokens allowed next, as a bitset (bit `i % 32` of word `i / 32`
    /// for token `i`); end tokens are in it once the output is complete.
    pub fn allowed(&mut self) -> Result<SimpleVob, GuideError> {
        self.matcher
            .compute_mask()
            .map_err(|e| GuideError::Engine(e.to_string()))
    }

    /// Follows `token`, which [`Guide::allowed`] allowed.
    pub fn commit(&mut self, token: u32) -> Result<(), GuideError> {
        self.matcher
            .consume_token(token)
            .map_err(|e| GuideError::Engine(e.to_string()))
    }

    /// Whether the output is complete and nothing may follow it.
    pub fn finished(&self) -> bool {
        self.matcher.is_stopped()
    }
}

#[cfg(test)]
mod tests;
