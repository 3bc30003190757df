//! Names and digests: what parses must be safe to join onto a store path
//! (Ollama's digest path traversal) and must print back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llmpm_spec::{Digest, Reference};

fn path_safe(part: &str) -> bool {
    !part.is_empty() && part != "." && part != ".." && !part.contains(['/', '\\', '\0'])
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(d) = text.parse::<Digest>() {
        assert!(
            d.hex()
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
            "{d}"
        );
        assert!(path_safe(&d.dashed()), "{d}");
        assert_eq!(d.to_string().parse::<Digest>().ok(), Some(d.clone()));
    }
    if let Ok(r) = text.parse::<Reference>() {
        for part in [r.namespace(), r.model(), r.tag()] {
            assert!(path_safe(part), "{text:?} → {part:?}");
        }
        for part in r.host().split(':') {
            assert!(path_safe(part), "{text:?} → host {:?}", r.host());
        }
        let again: Reference = r
            .display_short()
            .parse()
            .unwrap_or_else(|e| panic!("{text:?} printed as {:?}: {e}", r.display_short()));
        assert_eq!(again.untagged_digest(), r.untagged_digest());
    }
    let _ = text.parse::<llmpm_spec::host::HostSpec>();
});
