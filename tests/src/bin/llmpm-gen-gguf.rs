//! `llmpm-gen-gguf`: writes a deterministic random-weights GGUF (Llama 3, Qwen 3 dense or MoE, Phi-3, gpt-oss, BERT shaped), for tests, demos and benchmarks.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{bail, Context};
use llmpm_gguf::tiny::{write_tiny_llama, OutputWeight, TinyArch, TinyLlamaSpec};
use llmpm_gguf::FileType;

const USAGE: &str =
    "usage: llmpm-gen-gguf --out FILE [--arch llama|qwen3|qwen3moe|phi3|gpt-oss|bert|nomic-bert]
                     [--preset tiny|1b] [--ftype f32|f16|q8_0|q4_0|q4_k_m|mxfp4]
                     [--layers N] [--embd N] [--heads N] [--kv-heads N] [--ff N]
                     [--head-dim N] [--rope-dim N] [--orig-ctx N] [--tied] [--pooling N]
                     [--vocab N] [--ctx N] [--seed N] [--chat-template]
                     [--experts N] [--experts-used N] [--window N]

--head-dim: head size other than embd/heads (written as key_length);
--rope-dim: dimensions RoPE rotates; --orig-ctx: phi3's longrope original
context (0: no longrope), gpt-oss's YaRN original context (the factor is
ctx / orig-ctx; 0: no YaRN); --window: gpt-oss's sliding window (default
128); --ftype mxfp4: gpt-oss's MXFP4_MOE (MXFP4 experts, Q8_0 elsewhere); --tied: no output.weight; --pooling: an encoder's
pooling_type (1 mean, 2 CLS, 4 rank: a reranker with a classification
head); --experts / --experts-used: qwen3moe's or gpt-oss's expert count and
top-k (default 8 and 2), --ff then being one expert's size.

Presets: tiny (the test default) and 1b (hidden 2048, 16 layers, vocabulary
128256, GQA 32/8, ff 8192: Llama 3.2 1B's shape). Flags after --preset override it.";

fn parse_ftype(s: &str) -> anyhow::Result<FileType> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "f32" => FileType::F32,
        "f16" => FileType::F16,
        "q8_0" => FileType::Q8_0,
        "q4_0" => FileType::Q4_0,
        "q4_k_m" => FileType::Q4_K_M,
        "mxfp4" | "mxfp4_moe" => FileType::MXFP4_MOE,
        other => bail!("unknown --ftype `{other}`; use f32, f16, q8_0, q4_0, q4_k_m or mxfp4"),
    })
}

fn run() -> anyhow::Result<()> {
    let mut spec = TinyLlamaSpec::default();
    let mut out = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--help" || a == "-h" {
            #[allow(clippy::print_stdout)]
            {
                println!("{USAGE}");
            }
            return Ok(());
        }
        if a == "--chat-template" {
            spec.with_chat_template = true;
            continue;
        }
        if a == "--tied" {
            spec.output = OutputWeight::Tied;
            continue;
        }
        let v = args
            .next()
            .with_context(|| format!("`{a}` needs a value\n\n{USAGE}"))?;
        let num = |v: &str| -> anyhow::Result<u32> {
            v.parse()
                .with_context(|| format!("`{a} {v}`: not a whole number"))
        };
        match a.as_str() {
            "--out" => out = Some(v),
            "--preset" => match v.as_str() {
                "tiny" => spec = TinyLlamaSpec::default(),
                "1b" => {
                    spec = TinyLlamaSpec {
                        n_layer: 16,
                        n_embd: 2048,
                        n_head: 32,
                        n_head_kv: 8,
                        n_ff: 8192,
                        n_vocab: 128_256,
                        context_length: 131_072,
                        ..spec
                    }
                }
                other => bail!("unknown --preset `{other}`; use tiny or 1b"),
            },
            "--arch" => {
                spec.arch = TinyArch::from_name(&v).with_context(|| {
                    format!(
                    "unknown --arch `{v}`; use llama, qwen3, qwen3moe, phi3, gpt-oss, bert or nomic-bert"
                )
                })?
            }
            "--ftype" => spec.ftype = parse_ftype(&v)?,
            "--head-dim" => spec.head_dim = num(&v)?,
            "--rope-dim" => spec.rope_dim = num(&v)?,
            "--orig-ctx" => spec.rope_orig_context = num(&v)?,
            "--pooling" => spec.pooling = Some(num(&v)?),
            "--layers" => spec.n_layer = num(&v)?,
            "--embd" => spec.n_embd = num(&v)?,
            "--heads" => spec.n_head = num(&v)?,
            "--kv-heads" => spec.n_head_kv = num(&v)?,
            "--ff" => spec.n_ff = num(&v)?,
            "--vocab" => spec.n_vocab = num(&v)?,
            "--ctx" => spec.context_length = num(&v)?,
            "--experts" => spec.n_expert = num(&v)?,
            "--experts-used" => spec.n_expert_used = num(&v)?,
            "--window" => spec.sliding_window = num(&v)?,
            "--seed" => spec.seed = v.parse().with_context(|| format!("`--seed {v}`"))?,
            other => bail!("unknown argument `{other}`\n\n{USAGE}"),
        }
    }
    let out = out.with_context(|| format!("--out is required\n\n{USAGE}"))?;
    let moe = matches!(spec.arch, TinyArch::Qwen3Moe | TinyArch::GptOss);
    if moe && spec.n_expert == 0 {
        spec.n_expert = 8;
    }
    if moe && spec.n_expert_used == 0 {
        spec.n_expert_used = 2.min(spec.n_expert);
    }
    spec.validate().map_err(anyhow::Error::msg)?;
    let f = std::fs::File::create(&out).with_context(|| format!("cannot create `{out}`"))?;
    let mut w = std::io::BufWriter::new(f);
    write_tiny_llama(&spec, &mut w).with_context(|| format!("cannot write `{out}`"))?;
    w.flush().with_context(|| format!("cannot write `{out}`"))?;
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("error: {e:#}");
            }
            ExitCode::from(2)
        }
    }
}
