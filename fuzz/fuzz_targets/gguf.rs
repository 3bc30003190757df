//! GGUF: header, metadata, tensor table, hyperparameters, the summary
//! `/api/show` prints, each tensor's bytes, and the load a runner does
//! (mapped, every tensor checked against the hyperparameters).
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use llmpm_gguf::{GgufFile, Hyperparameters};

fuzz_target!(|data: &[u8]| {
    let Ok(file) = GgufFile::from_bytes(data) else {
        return;
    };
    let _ = Hyperparameters::read(&file);
    let _ = file.architecture();
    let _ = file.parameter_count();
    let _ = file.file_type();
    let _ = file.context_length();
    let _ = file.human_parameter_size();
    let _ = file.model_info_verbose();
    let mut r = Cursor::new(data);
    for t in file.tensors().iter().take(64) {
        if let Ok(bytes) = file.read_tensor_data(&mut r, t) {
            assert!(bytes.len() as u64 <= data.len() as u64);
        }
    }
    // What the runner maps: only for files that parse, written once each.
    let Ok(dir) = std::env::temp_dir().canonicalize() else {
        return;
    };
    let path = dir.join(format!("llmpm-fuzz-gguf-{}", std::process::id()));
    if std::fs::write(&path, data).is_ok() {
        let _ = llmpmd::runner::model::Model::load(&path, &candle_core::Device::Cpu);
        let _ = std::fs::remove_file(&path);
    }
});
