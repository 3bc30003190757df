//! `cargo bench -p llmpm-kernels`: each kernel alone on a 1B model's
//! shapes (hidden 2048, feed-forward 8192, 32 query heads over 8 kv heads
//! of 64), decode-shaped (one activation row) and prompt-shaped (128 rows),
//! per weight format. Weights are random blocks with small scales, made
//! here; each case runs for about a second and prints its mean time per
//! call. `cargo bench -p llmpm-kernels -- q4_k` runs the cases whose name
//! holds `q4_k`; `stream` runs a whole 1B Q4_K_M model's matrices in turn
//! (what one decoded token streams), with the time per kind of matrix.
//!
//! A plain loop on `std::time` rather than a bench framework: no
//! dependency, and the numbers are what `bench/runner_speed.py` breaks
//! down (the whole-model comparison against llama.cpp lives there).

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use llmpm_kernels::attention::{attend, Kv};
use llmpm_kernels::{Format, QuantMatrix};

/// About how long each case runs.
const BUDGET: Duration = Duration::from_secs(1);

/// Runs `f` for about [`BUDGET`] (at least three times, after one
/// warm-up call) and prints the mean time per call.
fn time(name: &str, filter: &[String], work: Option<(f64, &str)>, mut f: impl FnMut()) {
    if !filter.is_empty() && !filter.iter().any(|p| name.contains(p.as_str())) {
        return;
    }
    f();
    let start = Instant::now();
    let mut calls = 0u32;
    while calls < 3 || start.elapsed() < BUDGET {
        f();
        calls += 1;
    }
    let each = start.elapsed().as_secs_f64() / f64::from(calls);
    let rate = work.map_or(String::new(), |(amount, unit)| {
        format!("  {:>8.1} {unit}", amount / each / 1e9)
    });
    println!("{name:<40} {:>10.3} ms{rate}", each * 1e3);
}

/// A `(n, k)` matrix of random `format` blocks, each block's f16 scales
/// set to small positive values (random bytes there could be infinities).
fn weights(format: Format, n: usize, k: usize, rng: &mut fastrand::Rng) -> Vec<u8> {
    let len = format.matrix_bytes(n, k).expect("the shape fits");
    let mut data: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
    // Where each block keeps its f16 scales (GGUF's layouts).
    let scales: &[usize] = match format {
        Format::Q8_0 | Format::Q4_0 | Format::Q5_0 => &[0],
        Format::Q4K | Format::Q5K => &[0, 2],
        Format::Q6K => &[208],
        // One E8M0 byte: a power of two near 2^-6.
        Format::Mxfp4 => {
            for block in data.chunks_exact_mut(format.block_bytes()) {
                block[0] = 120 + rng.u8(..4);
            }
            return data;
        }
    };
    for block in data.chunks_exact_mut(format.block_bytes()) {
        for &at in scales {
            let d = half::f16::from_f32(0.001 + 0.01 * rng.f32());
            block[at..at + 2].copy_from_slice(&d.to_le_bytes());
        }
    }
    data
}

fn values(n: usize, rng: &mut fastrand::Rng) -> Vec<f32> {
    (0..n).map(|_| rng.f32() * 2.0 - 1.0).collect()
}

fn products(filter: &[String], rng: &mut fastrand::Rng) {
    let k = 2048;
    for format in [
        Format::Q8_0,
        Format::Q4_0,
        Format::Q4K,
        Format::Q5K,
        Format::Q6K,
        Format::Mxfp4,
    ] {
        for n in [2048, 8192] {
            let data = weights(format, n, k, rng);
            let w = QuantMatrix::from_bytes(format, n, k, &data, &mut |_| {}).unwrap();
            let bytes = data.len() as f64;
            for m in [1, 128] {
                let x = values(m * k, rng);
                let mut out = vec![0f32; m * n];
                let name = format!("matmul {} {n}x{k} rows {m}", format.name().to_lowercase());
                // Decoding streams the weights (GB/s of them); a prompt
                // is arithmetic (GFLOP/s).
                let work = match m {
                    1 => (bytes, "GB/s"),
                    _ => (2.0 * (m * n * k) as f64, "GFLOP/s"),
                };
                time(&name, filter, Some(work), || {
                    w.forward(black_box(&x), &mut out).unwrap();
                });
            }
        }
    }
}

/// Decoding's largest matrix, the output projection of a model with a big
/// vocabulary (Qwen's 151,936 × 1,024): far larger than the caches, so the
/// kernel streams from memory as it does on a whole model.
fn output_matrix(filter: &[String], rng: &mut fastrand::Rng) {
    let (n, k) = (151_936, 1024);
    for format in [Format::Q6K, Format::Q8_0, Format::Q4K, Format::Q5K] {
        let name = format!("output {} {n}x{k} rows 1", format.name().to_lowercase());
        if !filter.is_empty() && !filter.iter().any(|p| name.contains(p.as_str())) {
            continue;
        }
        let data = weights(format, n, k, rng);
        let w = QuantMatrix::from_bytes(format, n, k, &data, &mut |_| {}).unwrap();
        let x = values(k, rng);
        let mut out = vec![0f32; n];
        time(&name, filter, Some((data.len() as f64, "GB/s")), || {
            w.forward(black_box(&x), &mut out).unwrap();
        });
    }
}

/// Every matrix of a Llama-3.2-1B-shaped Q4_K_M model (16 layers; `attn_v`
/// and `ffn_down` in Q6_K on the layers llama.cpp's `use_more_bits` picks;
/// the 128,256 × 2,048 output in Q6_K), one activation row through each in
/// a layer's order: the weight streaming of one decoded token, apart from
/// attention and the small vector work. GB/s of weights and the tokens/s
/// that alone would allow, beside `llama-bench`'s tg128 on the same shape.
fn model_stream(filter: &[String], rng: &mut fastrand::Rng) {
    let name = "stream 1b q4_k_m rows 1";
    if !filter.is_empty() && !filter.iter().any(|p| name.contains(p)) {
        return;
    }
    let (h, f, kv, layers) = (2048, 8192, 512, 16);
    let more_bits = |i: usize| i < layers / 8 || i >= 7 * layers / 8 || (i - layers / 8) % 3 == 2;
    let mut mats = Vec::new();
    let mut bytes = 0usize;
    for i in 0..layers {
        let wide = if more_bits(i) {
            Format::Q6K
        } else {
            Format::Q4K
        };
        for (format, n, k) in [
            (Format::Q4K, h, h),
            (Format::Q4K, kv, h),
            (wide, kv, h),
            (Format::Q4K, h, h),
            (Format::Q4K, f, h),
            (Format::Q4K, f, h),
            (wide, h, f),
        ] {
            let data = weights(format, n, k, rng);
            bytes += data.len();
            mats.push(QuantMatrix::from_bytes(format, n, k, &data, &mut |_| {}).unwrap());
        }
    }
    let data = weights(Format::Q6K, 128_256, h, rng);
    bytes += data.len();
    mats.push(QuantMatrix::from_bytes(Format::Q6K, 128_256, h, &data, &mut |_| {}).unwrap());
    drop(data);
    let x = values(f, rng);
    let mut out = vec![0f32; 128_256];
    // Time per kind of matrix too: which of them streams slowest.
    let mut kinds: Vec<((Format, usize, usize), f64, usize)> = Vec::new();
    let start = Instant::now();
    let mut calls = 0u32;
    while calls < 3 || start.elapsed() < 2 * BUDGET {
        for w in &mats {
            let (n, k) = (w.n(), w.k());
            let t = Instant::now();
            w.forward(black_box(&x[..k]), &mut out[..n]).unwrap();
            let spent = t.elapsed().as_secs_f64();
            let kind = (w.format(), n, k);
            match kinds.iter_mut().find(|(key, _, _)| *key == kind) {
                Some((_, total, _)) => *total += spent,
                None => kinds.push((kind, spent, w.format().matrix_bytes(n, k).unwrap())),
            }
        }
        calls += 1;
    }
    let each = start.elapsed().as_secs_f64() / f64::from(calls);
    println!(
        "{name:<40} {:>10.3} ms  {:>8.1} GB/s  {:>6.1} tokens/s",
        each * 1e3,
        bytes as f64 / each / 1e9,
        1.0 / each
    );
    for ((format, n, k), total, size) in kinds {
        let count = mats
            .iter()
            .filter(|w| (w.format(), w.n(), w.k()) == (format, n, k))
            .count();
        let per_call = total / f64::from(calls) / count as f64;
        println!(
            "  {:<5} {n}x{k} ×{count:<3} {:>8.1} µs each  {:>6.1} GB/s",
            format.name().to_lowercase(),
            per_call * 1e6,
            size as f64 / per_call / 1e9
        );
    }
}

fn attention(filter: &[String], rng: &mut fastrand::Rng) {
    // The 1B shape decoding and prompting, then a chat turn's shape: ~95
    // new tokens after ~1,500 cached, on the 1B and on Qwen2.5-0.5B (14
    // query heads over 2 kv heads), and decoding 4,096 tokens deep.
    for (heads, kv_heads, cached, t) in [
        (32, 8, 512, 1),
        (32, 8, 0, 512),
        (32, 8, 1500, 95),
        (14, 2, 1500, 95),
        (32, 8, 4096, 1),
        (14, 2, 4096, 1),
    ] {
        let d = 64;
        let scale = 1.0 / (d as f32).sqrt();
        let total = cached + t;
        let mut kv = Kv::<half::f16>::new(kv_heads, d, total);
        if cached > 0 {
            let k = values(kv_heads * cached * d, rng);
            kv.append(&k, &k, cached).unwrap();
        }
        let new = values(kv_heads * t * d, rng);
        kv.append(&new, &new, t).unwrap();
        let q = values(heads * t * d, rng);
        let name = format!("attention f16 heads {heads}/{kv_heads} context {total} queries {t}");
        time(&name, filter, None, || {
            black_box(attend(black_box(&q), heads, t, &kv, cached, scale, None).unwrap());
        });
    }
}

fn glu(filter: &[String], rng: &mut fastrand::Rng) {
    let ff = 8192;
    for m in [1, 128] {
        let gate = values(m * ff, rng);
        let up = values(m * ff, rng);
        let mut out = vec![0f32; m * ff];
        time(&format!("geglu {ff} rows {m}"), filter, None, || {
            llmpm_kernels::glu::geglu(black_box(&gate), &up, &mut out).unwrap();
        });
    }
}

fn main() {
    // `cargo bench` passes `--bench`; other words are filters.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let mut rng = fastrand::Rng::with_seed(1);
    println!("{} threads", rayon::current_num_threads());
    // On a thread of the pool, as the runner's engine calls the kernels:
    // from outside it, each call would wait on a wake-up from another
    // thread (tens of microseconds here, a whole small product's time).
    rayon::scope(|_| {
        products(&filter, &mut rng);
        output_matrix(&filter, &mut rng);
        model_stream(&filter, &mut rng);
        attention(&filter, &mut rng);
        glu(&filter, &mut rng);
    });
}
