//! How much memory a load needs (an estimate read from the GGUF header) and
//! how much the runners may use (a configured budget, or the memory the
//! system has available), behind a trait so tests can fake the machine.

use std::fmt;
use std::path::Path;

use llmpm_gguf::{GgufFile, Hyperparameters};

use crate::llm::options::KvCacheType;

/// What a runner process needs besides weights and KV cache: the code,
/// the async runtime, candle's buffers and the forward pass's scratch
/// (a tiny model's runner measures about 15 MiB resident; the rest is
/// headroom for the activations of real models).
pub const RUNNER_OVERHEAD: u64 = 64 << 20;

/// The parts of a model's shape that decide its memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ModelShape {
    /// Bytes of the GGUF file (the weights, mapped or read whole).
    pub weights: u64,
    /// Transformer blocks.
    pub n_layer: u64,
    /// Key/value heads.
    pub n_head_kv: u64,
    /// Size of one key head.
    pub key_length: u64,
    /// Size of one value head.
    pub value_length: u64,
    /// Sliding-window layers (Gemma 3, gpt-oss): their cache holds the
    /// window, not the context.
    pub local_layers: u64,
    /// Their window.
    pub window: u64,
}

/// What a sliding-window layer's cache holds beyond its window: the runner
/// forgets whole blocks of 64 positions, and a prompt chunk (`num_batch`,
/// 512 by default) is appended before its queries attend.
const WINDOW_SLACK: u64 = 64 + 512;

impl ModelShape {
    /// Reads the shape from a GGUF header, through the hyperparameters the
    /// runner reads. A header they refuse (the runner would too) counts as
    /// no layers: the estimate is then the weights and the overhead.
    pub fn from_gguf(file: &GgufFile) -> ModelShape {
        let weights = file.file_len();
        let Ok(hp) = Hyperparameters::read(file) else {
            return ModelShape {
                weights,
                ..ModelShape::default()
            };
        };
        // An embedding model (BERT) keeps no cache between requests: its
        // estimate is its weights, F16 ones twice (the runner holds an
        // encoder's F16 matrices in F32 for the GEMM).
        if file.get(&hp.key("pooling_type")).is_some() {
            let f16 = file.get("general.file_type").and_then(|v| v.as_u64()) == Some(1);
            return ModelShape {
                weights: if f16 {
                    weights.saturating_mul(2)
                } else {
                    weights
                },
                ..ModelShape::default()
            };
        }
        // The architectures whose window the runner applies.
        let window = match hp.architecture.as_str() {
            "gemma3" | "gpt-oss" | "gptoss" => hp.sliding_window().ok().flatten(),
            _ => None,
        };
        let local_layers = match window {
            Some(_) => (0..hp.n_layer)
                .filter(|&i| llmpm_gguf::is_local_layer(&hp.architecture, i))
                .count() as u64,
            None => 0,
        };
        ModelShape {
            weights,
            n_layer: hp.n_layer as u64,
            n_head_kv: hp.n_head_kv as u64,
            key_length: hp.key_length as u64,
            value_length: hp.value_length,
            local_layers,
            window: window.unwrap_or(0) as u64,
        }
    }

    /// Reads the shape of the GGUF at `path`.
    pub fn open(path: &Path) -> Result<ModelShape, llmpm_gguf::GgufError> {
        GgufFile::open(path).map(|f| ModelShape::from_gguf(&f))
    }

    /// Bytes of the KV cache for `num_ctx` tokens: keys and values of every
    /// layer, in the runner's cache type (`LLMPM_KV_CACHE_TYPE`, which the
    /// runner inherits; a runner refuses to start with a name it does not
    /// know).
    pub fn kv_cache(&self, num_ctx: u64) -> u64 {
        // Tokens held over all layers: the context in each full layer, at
        // most the window (and its slack) in each sliding-window one.
        let local = self.local_layers.min(self.n_layer);
        let local_ctx = num_ctx.min(self.window.saturating_add(WINDOW_SLACK));
        let tokens = (self.n_layer - local)
            .saturating_mul(num_ctx)
            .saturating_add(local.saturating_mul(local_ctx));
        let values = tokens
            .saturating_mul(self.n_head_kv)
            .saturating_mul(self.key_length.saturating_add(self.value_length));
        KvCacheType::from_env()
            .unwrap_or(KvCacheType::F32)
            .bytes_for(values)
    }

    /// The estimate for a runner with `num_ctx`: weights + KV cache + overhead.
    pub fn estimate(&self, num_ctx: u64) -> u64 {
        self.weights
            .saturating_add(self.kv_cache(num_ctx))
            .saturating_add(RUNNER_OVERHEAD)
    }
}

/// Where the memory figure comes from: the machine's inventory, system
/// memory ([`SystemMemory`]) or, built with the `nvml` feature (which
/// `cuda` turns on), a GPU's ([`GpuMemory`]).
pub trait MemoryInventory: Send + Sync + fmt::Debug {
    /// Bytes free for new runners now, `None` when unknown.
    fn available(&self) -> Option<u64>;

    /// Whether this is GPU memory (runners' weights live there).
    fn on_gpu(&self) -> bool {
        false
    }
}

/// The free memory of one NVIDIA GPU, from NVML (loaded at run time, so a
/// build with the feature still runs on a machine without the driver).
#[cfg(feature = "nvml")]
pub struct GpuMemory {
    nvml: nvml_wrapper::Nvml,
    index: u32,
}

#[cfg(feature = "nvml")]
impl GpuMemory {
    /// GPU `index` (runners use the first), or why it cannot be read.
    pub fn open(index: u32) -> Result<GpuMemory, String> {
        let nvml = nvml_wrapper::Nvml::init().map_err(|e| format!("NVML: {e}"))?;
        nvml.device_by_index(index)
            .map_err(|e| format!("NVML GPU {index}: {e}"))?;
        Ok(GpuMemory { nvml, index })
    }
}

#[cfg(feature = "nvml")]
impl fmt::Debug for GpuMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GpuMemory")
            .field("index", &self.index)
            .finish()
    }
}

#[cfg(feature = "nvml")]
impl MemoryInventory for GpuMemory {
    fn available(&self) -> Option<u64> {
        let device = self.nvml.device_by_index(self.index).ok()?;
        device.memory_info().ok().map(|m| m.free)
    }

    fn on_gpu(&self) -> bool {
        true
    }
}

/// The system's `MemAvailable` (Linux `/proc/meminfo`).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemMemory;

impl MemoryInventory for SystemMemory {
    fn available(&self) -> Option<u64> {
        let text = std::fs::read_to_string("/proc/meminfo").ok()?;
        mem_available(&text)
    }
}

/// `MemAvailable` of a `/proc/meminfo` text, in bytes.
pub fn mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?;
    let kib: u64 = line.trim().trim_end_matches("kB").trim().parse().ok()?;
    kib.checked_mul(1024)
}

/// The limit on what the loaded runners may use together.
#[derive(Debug)]
pub enum Budget {
    /// A configured number of bytes (`memory_budget`).
    Fixed(u64),
    /// What the inventory reports free at load time, plus what our own
    /// runners hold (unloading them would give it back).
    Available(Box<dyn MemoryInventory>),
}

impl Budget {
    /// The budget now, given that our runners hold `ours` bytes; `None`
    /// when the inventory cannot tell (then only `max_loaded_models` limits).
    pub fn total(&self, ours: u64) -> Option<u64> {
        match self {
            Budget::Fixed(n) => Some(*n),
            Budget::Available(inv) => inv.available().map(|a| a.saturating_add(ours)),
        }
    }

    /// Whether the budget is GPU memory.
    pub fn on_gpu(&self) -> bool {
        match self {
            Budget::Fixed(_) => false,
            Budget::Available(inv) => inv.on_gpu(),
        }
    }

    /// Names the setting to raise, for error messages.
    pub fn hint(&self) -> &'static str {
        match self {
            Budget::Fixed(_) => "raise memory_budget (LLMPM_MEMORY_BUDGET)",
            Budget::Available(_) => "free some memory",
        }
    }
}

/// Bytes in binary units, as the budget is configured: `512 MiB`, `1.2 GiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (1 << 40, "TiB"),
        (1 << 30, "GiB"),
        (1 << 20, "MiB"),
        (1 << 10, "KiB"),
    ];
    for (size, unit) in UNITS {
        if n >= size {
            let v = n as f64 / size as f64;
            return if v >= 10.0 {
                format!("{v:.0} {unit}")
            } else {
                format!("{v:.1} {unit}")
            };
        }
    }
    format!("{n} B")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use llmpm_gguf::tiny::{write_tiny_llama, TinyLlamaSpec};

    #[test]
    fn estimate_of_a_tiny_llama() {
        let spec = TinyLlamaSpec::default();
        let mut bytes = Vec::new();
        write_tiny_llama(&spec, &mut bytes).unwrap();
        let file = GgufFile::from_bytes(&bytes).unwrap();
        let shape = ModelShape::from_gguf(&file);
        assert_eq!(shape.weights, bytes.len() as u64);
        assert_eq!(shape.n_layer, u64::from(spec.n_layer));
        assert_eq!(shape.n_head_kv, u64::from(spec.n_head_kv));
        assert_eq!(shape.key_length, u64::from(spec.head_dim()));
        // 2 (K and V) * n_layer * num_ctx * n_head_kv * head_dim * bytes
        // of the cache type (f16 unless the environment says f32).
        let kv = KvCacheType::from_env()
            .unwrap_or(KvCacheType::F32)
            .bytes_for(2 * 2 * 1024 * 2 * 16);
        assert_eq!(shape.kv_cache(1024), kv);
        assert_eq!(
            shape.estimate(1024),
            bytes.len() as u64 + kv + RUNNER_OVERHEAD
        );
        // Twice the context, twice the cache.
        assert_eq!(shape.kv_cache(2048), 2 * kv);
        assert_eq!(shape.kv_cache(u64::MAX), u64::MAX);
    }

    /// Qwen 3's heads are wider than `n_embd / n_head` (its `key_length`
    /// says so) and Phi-3's KV heads are read as written: the cache is
    /// sized from what the runner allocates, not from the hidden size.
    #[test]
    fn estimates_of_qwen3_and_phi3() {
        use llmpm_gguf::tiny::TinyArch;
        let cache = KvCacheType::from_env().unwrap_or(KvCacheType::F32);
        for (arch, head_dim, expected_key) in
            [(TinyArch::Qwen3, 32, 32u64), (TinyArch::Phi3, 0, 16)]
        {
            let spec = TinyLlamaSpec {
                arch,
                head_dim,
                ..TinyLlamaSpec::default()
            };
            let mut file = Vec::new();
            write_tiny_llama(&spec, &mut file).unwrap();
            let shape = ModelShape::from_gguf(&GgufFile::from_bytes(&file).unwrap());
            assert_eq!(shape.key_length, expected_key, "{arch:?}");
            // K and V of 2 layers, 2 KV heads.
            let kv = cache.bytes_for(2 * 2 * 1024 * 2 * expected_key);
            assert_eq!(shape.kv_cache(1024), kv, "{arch:?}");
            assert_eq!(
                shape.estimate(1024),
                file.len() as u64 + kv + RUNNER_OVERHEAD
            );
        }
    }

    /// gpt-oss's even layers see a window: past the window (and the
    /// runner's slack) their cache stops growing; the odd layers hold the
    /// context. A context within the window counts every layer whole.
    #[test]
    fn sliding_window_layers_hold_the_window() {
        let cache = KvCacheType::from_env().unwrap_or(KvCacheType::F32);
        let spec = TinyLlamaSpec {
            arch: llmpm_gguf::tiny::TinyArch::GptOss,
            n_layer: 4,
            n_expert: 4,
            n_expert_used: 2,
            sliding_window: 128,
            ..TinyLlamaSpec::default()
        };
        let mut file = Vec::new();
        write_tiny_llama(&spec, &mut file).unwrap();
        let shape = ModelShape::from_gguf(&GgufFile::from_bytes(&file).unwrap());
        assert_eq!((shape.local_layers, shape.window), (2, 128));
        // K and V, 2 KV heads of 16.
        let per_token = 2 * 2 * 16;
        assert_eq!(shape.kv_cache(256), cache.bytes_for(4 * 256 * per_token));
        let held = 128 + WINDOW_SLACK;
        assert_eq!(
            shape.kv_cache(32768),
            cache.bytes_for((2 * 32768 + 2 * held) * per_token)
        );
    }

    /// An encoder (BERT: `pooling_type`) keeps no KV cache: only its weights.
    #[test]
    fn an_encoder_is_its_weights() {
        let spec = TinyLlamaSpec {
            arch: llmpm_gguf::tiny::TinyArch::Bert,
            n_vocab: 300,
            context_length: 512,
            ..TinyLlamaSpec::default()
        };
        let mut file = Vec::new();
        write_tiny_llama(&spec, &mut file).unwrap();
        let shape = ModelShape::from_gguf(&GgufFile::from_bytes(&file).unwrap());
        assert_eq!(shape.kv_cache(4096), 0);
        assert_eq!(shape.estimate(4096), file.len() as u64 + RUNNER_OVERHEAD);
        let f16 = TinyLlamaSpec {
            ftype: llmpm_gguf::FileType::F16,
            ..spec
        };
        let mut file = Vec::new();
        write_tiny_llama(&f16, &mut file).unwrap();
        let shape = ModelShape::from_gguf(&GgufFile::from_bytes(&file).unwrap());
        assert_eq!(
            shape.weights,
            2 * file.len() as u64,
            "F16 matrices held in F32"
        );
    }

    /// A header the runner refuses (here per-layer key sizes) is only
    /// its weights: the load fails in the runner, not in the estimate.
    #[test]
    fn a_refused_header_is_only_its_weights() {
        let spec = TinyLlamaSpec::default();
        let mut w = llmpm_gguf::tiny::tiny_llama_writer(&spec).unwrap();
        w.add_kv("llama.attention.key_length", vec![16u32, 16])
            .unwrap();
        let bytes = w.to_bytes();
        let shape = ModelShape::from_gguf(&GgufFile::from_bytes(&bytes).unwrap());
        assert_eq!(
            shape,
            ModelShape {
                weights: bytes.len() as u64,
                ..ModelShape::default()
            }
        );
        assert_eq!(shape.estimate(1024), bytes.len() as u64 + RUNNER_OVERHEAD);
    }

    #[test]
    fn budgets() {
        #[derive(Debug)]
        struct Fake(Option<u64>);
        impl MemoryInventory for Fake {
            fn available(&self) -> Option<u64> {
                self.0
            }
        }
        assert_eq!(Budget::Fixed(5).total(3), Some(5));
        assert_eq!(
            Budget::Available(Box::new(Fake(Some(10)))).total(3),
            Some(13)
        );
        assert_eq!(Budget::Available(Box::new(Fake(None))).total(3), None);
        let meminfo = "MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:   2048 kB\n";
        assert_eq!(mem_available(meminfo), Some(2 << 20));
        assert_eq!(mem_available("MemFree: 1 kB\n"), None);
        assert!(SystemMemory.available().is_some_and(|n| n > 0));
        assert!(!Budget::Available(Box::new(SystemMemory)).on_gpu());
    }

    /// Without an NVIDIA driver (this machine) NVML does not open, and says
    /// why; the daemon then budgets system memory.
    #[cfg(feature = "nvml")]
    #[test]
    fn gpu_inventory_without_a_gpu() {
        match GpuMemory::open(0) {
            Err(e) => assert!(e.contains("NVML"), "{e}"),
            Ok(g) => {
                assert!(g.on_gpu());
                assert!(g.available().is_some_and(|n| n > 0));
            }
        }
    }

    #[test]
    fn binary_units() {
        assert_eq!(human_bytes(512 << 20), "512 MiB");
        assert_eq!(human_bytes(1288490189), "1.2 GiB");
        assert_eq!(human_bytes(100), "100 B");
    }
}
