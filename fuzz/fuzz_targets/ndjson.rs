//! The CLI's readers of the daemon's streams: NDJSON progress lines and
//! the chat lines `llmpm run` prints, cut at any byte.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for line in data.split(|&b| b == b'\n') {
        let _ = llmpm::client::parse_line(line);
        let _ = llmpm::commands::run::parse_chat_line(line);
    }
});
