//! Modelfile: parse, print, parse again (the printed form is what `show
//! --modelfile` gives back, so it must mean the same); PARAMETER values.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llmpm_spec::Modelfile;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(m) = Modelfile::parse(text) {
        let printed = m.to_string();
        let again = Modelfile::parse(&printed)
            .unwrap_or_else(|e| panic!("printed Modelfile does not parse: {e}\n{printed}"));
        assert_eq!(again.to_string(), printed, "printing is not stable");
    }
    if let Some((name, value)) = text.split_once(' ') {
        let _ = llmpm_spec::params::parse_value(name, value);
    }
});
