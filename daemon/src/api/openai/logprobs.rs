//! Log-probabilities in OpenAI's shapes: chat's `choices[].logprobs =
//! {"content": [{token, logprob, bytes, top_logprobs}]}` and the legacy
//! completions' `{tokens, token_logprobs, top_logprobs, text_offset}`,
//! streamed chunk by chunk (each chunk's tokens, offsets counted from the
//! start of the answer) or whole.

use llmpm_spec::api::{Logprob, TokenLogprob};
use serde_json::{json, Map, Value};

/// The `logprobs` of each choice a generation answers with.
#[derive(Debug)]
pub struct Choices {
    /// Asked for at all.
    on: bool,
    /// Chat's shape, else the legacy one.
    chat: bool,
    /// Characters of the answer before the next token (legacy `text_offset`).
    chars: usize,
    /// Bytes of a character split across tokens, not yet counted.
    tail: Vec<u8>,
}

fn token_json(t: &TokenLogprob) -> Value {
    json!({"token": t.token, "logprob": t.logprob, "bytes": t.bytes})
}

impl Choices {
    /// For a request that asked (`on`) or not, on chat or completions.
    pub fn new(on: bool, chat: bool) -> Choices {
        Choices {
            on,
            chat,
            chars: 0,
            tail: Vec::new(),
        }
    }

    /// Whether this answers a chat.
    pub fn chat(&self) -> bool {
        self.chat
    }

    /// The `logprobs` of a choice (or chunk) with these tokens; `null` when
    /// they were not asked for.
    pub fn value(&mut self, tokens: &[Logprob]) -> Value {
        if !self.on {
            return Value::Null;
        }
        if self.chat {
            let content: Vec<Value> = tokens
                .iter()
                .map(|l| {
                    let mut v = token_json(&l.token);
                    v["top_logprobs"] = l.top_logprobs.iter().map(token_json).collect();
                    v
                })
                .collect();
            return json!({"content": content, "refusal": null});
        }
        let mut offsets = Vec::with_capacity(tokens.len());
        for l in tokens {
            // A token inside a split character starts where that character does.
            offsets.push(self.chars);
            self.advance(l.token.bytes.as_deref().unwrap_or_default());
        }
        let top: Vec<Value> = tokens
            .iter()
            .map(|l| {
                // The alternatives and, as OpenAI always lists it, the chosen one.
                let mut m = Map::new();
                for t in l.top_logprobs.iter().chain(std::iter::once(&l.token)) {
                    m.entry(t.token.clone()).or_insert(json!(t.logprob));
                }
                Value::Object(m)
            })
            .collect();
        json!({
            "tokens": tokens.iter().map(|l| l.token.token.as_str()).collect::<Vec<_>>(),
            "token_logprobs": tokens.iter().map(|l| l.token.logprob).collect::<Vec<_>>(),
            "top_logprobs": top,
            "text_offset": offsets,
        })
    }

    /// Counts the characters `bytes` complete.
    fn advance(&mut self, bytes: &[u8]) {
        self.tail.extend_from_slice(bytes);
        match std::str::from_utf8(&self.tail) {
            Ok(s) => {
                self.chars += s.chars().count();
                self.tail.clear();
            }
            Err(e) => {
                let (done, rest) = self.tail.split_at(e.valid_up_to());
                self.chars += String::from_utf8_lossy(done).chars().count();
                if e.error_len().is_some() {
                    // Not UTF-8 at all: shown as replacement characters.
                    self.chars += String::from_utf8_lossy(rest).chars().count();
                    self.tail.clear();
                } else {
                    self.tail = rest.to_vec();
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn lp(token: &[u8], logprob: f64, top: &[(&str, f64)]) -> Logprob {
        Logprob {
            token: TokenLogprob {
                token: String::from_utf8_lossy(token).into_owned(),
                logprob,
                bytes: Some(token.to_vec()),
            },
            top_logprobs: top
                .iter()
                .map(|(t, l)| TokenLogprob {
                    token: (*t).into(),
                    logprob: *l,
                    bytes: Some(t.as_bytes().to_vec()),
                })
                .collect(),
        }
    }

    #[test]
    fn chat_shape() {
        let mut c = Choices::new(true, true);
        let v = c.value(&[lp(b"Hi", -0.25, &[("Hi", -0.25), ("Yo", -2.0)])]);
        assert_eq!(
            v,
            json!({"content": [{"token": "Hi", "logprob": -0.25, "bytes": [72, 105],
                "top_logprobs": [{"token": "Hi", "logprob": -0.25, "bytes": [72, 105]},
                                 {"token": "Yo", "logprob": -2.0, "bytes": [89, 111]}]}],
                "refusal": null})
        );
        assert_eq!(Choices::new(false, true).value(&[]), Value::Null);
    }

    #[test]
    fn legacy_shape_counts_characters_across_chunks() {
        let mut c = Choices::new(true, false);
        // "é" split across two tokens, then " x".
        let e = "é".as_bytes();
        let v = c.value(&[lp(b"a", -0.5, &[("b", -1.0)]), lp(&e[..1], -0.1, &[])]);
        assert_eq!(v["tokens"], json!(["a", "\u{fffd}"]));
        assert_eq!(v["token_logprobs"], json!([-0.5, -0.1]));
        assert_eq!(v["top_logprobs"][0], json!({"b": -1.0, "a": -0.5}));
        assert_eq!(v["text_offset"], json!([0, 1]));
        let v = c.value(&[lp(&e[1..], -0.2, &[]), lp(b" x", -0.3, &[])]);
        // The second half belongs to the character that starts at 1; " x" starts at 2.
        assert_eq!(v["text_offset"], json!([1, 2]));
    }
}
