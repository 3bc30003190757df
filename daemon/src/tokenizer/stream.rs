//! Incremental detokenization for streaming: a token may end in the middle
//! of a UTF-8 character (byte-level BPE splits emoji and CJK across
//! tokens), so bytes are held back until the character is complete.

use super::Tokenizer;

/// Turns a stream of token ids into text pieces that are always whole
/// UTF-8 characters. Bytes that can never become valid UTF-8 come out as
/// U+FFFD, as `String::from_utf8_lossy` would print them.
#[derive(Debug, Default, Clone)]
pub struct StreamDecoder {
    pending: Vec<u8>,
}

impl StreamDecoder {
    pub fn new() -> StreamDecoder {
        StreamDecoder::default()
    }

    /// Feeds one token; returns the text it completes (often empty for a
    /// token that starts a multi-byte character).
    pub fn push(&mut self, tokenizer: &Tokenizer, id: u32) -> String {
        self.push_bytes(tokenizer.token_bytes(id))
    }

    /// Feeds raw bytes; returns the complete text they end.
    pub fn push_bytes(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        let mut start = 0;
        loop {
            let rest = &self.pending[start..];
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    out.push_str(s);
                    start = self.pending.len();
                    break;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    out.push_str(String::from_utf8_lossy(&rest[..valid]).as_ref());
                    match e.error_len() {
                        // Invalid, not merely unfinished: replace and go on.
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            start += valid + bad;
                        }
                        // An unfinished character at the end: hold it.
                        None => {
                            start += valid;
                            break;
                        }
                    }
                }
            }
        }
        self.pending.drain(..start);
        out
    }

    /// Whether bytes of an unfinished character are held back.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Ends the stream: whatever is held back, with U+FFFD for the
    /// unfinished character.
    pub fn finish(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_back_partial_characters() {
        let mut d = StreamDecoder::new();
        let smile = "😀".as_bytes();
        assert_eq!(d.push_bytes(b"a"), "a");
        assert_eq!(d.push_bytes(&smile[..1]), "");
        assert_eq!(d.push_bytes(&smile[1..3]), "");
        assert!(d.has_pending());
        assert_eq!(d.push_bytes(&[smile[3], b'b']), "😀b");
        assert!(!d.has_pending());
    }

    #[test]
    fn replaces_invalid_bytes_and_flushes() {
        let mut d = StreamDecoder::new();
        assert_eq!(d.push_bytes(b"a\xffb\xe4\xb8"), "a\u{fffd}b");
        assert_eq!(d.finish(), "\u{fffd}");
        assert_eq!(d.finish(), "");
        // A lone continuation byte after a held lead byte.
        assert_eq!(d.push_bytes(b"\xe4"), "");
        assert_eq!(d.push_bytes(b"x"), "\u{fffd}x");
    }
}
