//! The spelling of byte-level BPE vocabularies (`tokenizer.ggml.model =
//! "gpt2"`): GPT-2's byte-to-character map, shared by the tokenizer, the
//! runner's fallback codec and the tiny-model generator.

/// GPT-2's map from each byte to the printable char that spells it in
/// byte-level vocabularies: printable Latin-1 bytes stand for themselves,
/// the other 68 take U+0100.. in byte order (space is `Ġ`, newline `Ċ`).
pub fn gpt2_byte_chars() -> [char; 256] {
    let mut map = ['\0'; 256];
    let mut next = 0x100u32;
    for (b, slot) in map.iter_mut().enumerate() {
        let printable = matches!(b, 0x21..=0x7e | 0xa1..=0xac | 0xae..=0xff);
        let code = if printable {
            b as u32
        } else {
            next += 1;
            next - 1
        };
        *slot = char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER);
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spells_every_byte_once() {
        let chars = gpt2_byte_chars();
        assert_eq!(chars[usize::from(b' ')], 'Ġ');
        assert_eq!(chars[usize::from(b'\n')], 'Ċ');
        assert_eq!(chars[usize::from(b'A')], 'A');
        assert_eq!(chars[usize::from(b'!')], '!');
        let mut sorted = chars.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 256);
        // The 68 unprintable bytes take U+0100..U+0143.
        assert!(chars.iter().all(|&c| (c as u32) < 0x144));
    }
}
