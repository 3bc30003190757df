//! The daemon's Prometheus metrics: counters and histograms that the
//! request path, the scheduler and transfers bump as they go, and their
//! text exposition (format 0.0.4) for `GET /metrics`. One registry per
//! process; it depends on nothing else in the crate, so any layer may
//! record into it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex, MutexGuard};
use std::time::Duration;

/// Time-to-first-token buckets, seconds.
const TTFT_BUCKETS: [f64; 11] = [0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
/// Generation speed buckets, tokens per second.
const TPS_BUCKETS: [f64; 10] = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0];

/// A histogram with fixed buckets.
#[derive(Debug, Clone, Default)]
struct Histogram {
    /// Per bucket (not cumulative); the last is +Inf.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, bounds: &[f64], v: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; bounds.len() + 1];
        }
        let i = bounds.iter().position(|b| v <= *b).unwrap_or(bounds.len());
        self.counts[i] += 1;
        self.sum += v;
        self.count += 1;
    }
}

/// What is counted per model.
#[derive(Debug, Clone, Default)]
struct ModelStats {
    ttft: Histogram,
    tps: Histogram,
    prompt_tokens: u64,
    generated_tokens: u64,
}

#[derive(Debug, Default)]
struct Registry {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    models: Mutex<BTreeMap<String, ModelStats>>,
    queue_depth: AtomicU64,
    pull_bytes: AtomicU64,
    verify_failures: AtomicU64,
    runner_exits: AtomicU64,
    runner_tokenize: AtomicU64,
}

static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::default);

/// A lock that survives a panic elsewhere (counters stay usable).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Counts one answered request: `route` is the route's pattern (not the
/// path, which would make a series per blob digest).
pub fn request(route: &str, status: u16) {
    *lock(&REGISTRY.requests)
        .entry((route.to_owned(), status))
        .or_default() += 1;
}

/// Records how long `model` took to its first token.
pub fn first_token(model: &str, after: Duration) {
    let mut m = lock(&REGISTRY.models);
    let s = m.entry(model.to_owned()).or_default();
    s.ttft.observe(&TTFT_BUCKETS, after.as_secs_f64());
}

/// Records a finished generation of `model`: its prompt and generated
/// tokens, and the generation speed (`eval_nanos` spent on the generated ones).
pub fn generation(model: &str, prompt_tokens: usize, generated: usize, eval_nanos: u64) {
    let mut m = lock(&REGISTRY.models);
    let s = m.entry(model.to_owned()).or_default();
    s.prompt_tokens += prompt_tokens as u64;
    s.generated_tokens += generated as u64;
    if generated > 0 && eval_nanos > 0 {
        let tps = generated as f64 / (eval_nanos as f64 / 1e9);
        s.tps.observe(&TPS_BUCKETS, tps);
    }
}

/// Forgets `model`'s series once the model is deleted: the store's names
/// come and go (a soak creates thousands), and a series per name ever seen
/// would grow the daemon without bound.
pub fn model_removed(model: &str) {
    lock(&REGISTRY.models).remove(model);
}

/// Sets how many requests wait for a runner.
pub fn queue_depth(n: usize) {
    REGISTRY.queue_depth.store(n as u64, Ordering::Relaxed);
}

/// Counts bytes received by pulls.
pub fn pulled(bytes: u64) {
    REGISTRY.pull_bytes.fetch_add(bytes, Ordering::Relaxed);
}

/// Counts a blob whose digest or size did not match.
pub fn verification_failed() {
    REGISTRY.verify_failures.fetch_add(1, Ordering::Relaxed);
}

/// Counts a runner that exited unexpectedly (it is started again on the next request).
pub fn runner_exited() {
    REGISTRY.runner_exits.fetch_add(1, Ordering::Relaxed);
}

/// Counts a request to a runner to tokenize text (the daemon counts a
/// prompt's tokens itself where it can read the model's vocabulary).
pub fn runner_tokenize() {
    REGISTRY.runner_tokenize.fetch_add(1, Ordering::Relaxed);
}

/// A loaded model as the exposition shows it.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Its name.
    pub name: String,
    /// Its memory estimate, bytes.
    pub bytes: u64,
    /// How much of it is in GPU memory.
    pub vram_bytes: u64,
}

/// A label value escaped for the exposition.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn histogram(out: &mut String, name: &str, model: &str, bounds: &[f64], h: &Histogram) {
    let mut cum = 0;
    let m = esc(model);
    for (i, b) in bounds.iter().enumerate() {
        cum += h.counts.get(i).copied().unwrap_or(0);
        let _ = writeln!(out, "{name}_bucket{{model=\"{m}\",le=\"{b}\"}} {cum}");
    }
    let _ = writeln!(
        out,
        "{name}_bucket{{model=\"{m}\",le=\"+Inf\"}} {}",
        h.count
    );
    let _ = writeln!(out, "{name}_sum{{model=\"{m}\"}} {}", h.sum);
    let _ = writeln!(out, "{name}_count{{model=\"{m}\"}} {}", h.count);
}

/// The text exposition of every metric, with the `loaded` models.
pub fn render(loaded: &[Loaded]) -> String {
    let mut out = String::new();
    let r = &*REGISTRY;
    header(
        &mut out,
        "llmpm_requests_total",
        "counter",
        "HTTP requests answered, by route and status.",
    );
    for ((route, status), n) in lock(&r.requests).iter() {
        let _ = writeln!(
            out,
            "llmpm_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
            esc(route)
        );
    }
    let models = lock(&r.models).clone();
    header(
        &mut out,
        "llmpm_time_to_first_token_seconds",
        "histogram",
        "Seconds from the runner request to the first token, by model.",
    );
    for (m, s) in &models {
        histogram(
            &mut out,
            "llmpm_time_to_first_token_seconds",
            m,
            &TTFT_BUCKETS,
            &s.ttft,
        );
    }
    header(
        &mut out,
        "llmpm_generation_tokens_per_second",
        "histogram",
        "Generated tokens per second of each generation, by model.",
    );
    for (m, s) in &models {
        histogram(
            &mut out,
            "llmpm_generation_tokens_per_second",
            m,
            &TPS_BUCKETS,
            &s.tps,
        );
    }
    header(
        &mut out,
        "llmpm_prompt_tokens_total",
        "counter",
        "Prompt tokens evaluated, by model.",
    );
    for (m, s) in &models {
        let _ = writeln!(
            out,
            "llmpm_prompt_tokens_total{{model=\"{}\"}} {}",
            esc(m),
            s.prompt_tokens
        );
    }
    header(
        &mut out,
        "llmpm_generated_tokens_total",
        "counter",
        "Tokens generated, by model.",
    );
    for (m, s) in &models {
        let _ = writeln!(
            out,
            "llmpm_generated_tokens_total{{model=\"{}\"}} {}",
            esc(m),
            s.generated_tokens
        );
    }
    let gauge = |out: &mut String, name: &str, help: &str, v: u64| {
        header(out, name, "gauge", help);
        let _ = writeln!(out, "{name} {v}");
    };
    let counter = |out: &mut String, name: &str, help: &str, v: u64| {
        header(out, name, "counter", help);
        let _ = writeln!(out, "{name} {v}");
    };
    gauge(
        &mut out,
        "llmpm_queue_depth",
        "Requests waiting for a runner.",
        r.queue_depth.load(Ordering::Relaxed),
    );
    gauge(
        &mut out,
        "llmpm_loaded_models",
        "Models loaded (or loading).",
        loaded.len() as u64,
    );
    header(
        &mut out,
        "llmpm_model_memory_bytes",
        "gauge",
        "Memory estimate of each loaded model, bytes.",
    );
    for l in loaded {
        let _ = writeln!(
            out,
            "llmpm_model_memory_bytes{{model=\"{}\"}} {}",
            esc(&l.name),
            l.bytes
        );
    }
    header(
        &mut out,
        "llmpm_model_vram_bytes",
        "gauge",
        "GPU memory of each loaded model, bytes.",
    );
    for l in loaded {
        let _ = writeln!(
            out,
            "llmpm_model_vram_bytes{{model=\"{}\"}} {}",
            esc(&l.name),
            l.vram_bytes
        );
    }
    counter(
        &mut out,
        "llmpm_pull_bytes_total",
        "Bytes received by pulls.",
        r.pull_bytes.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "llmpm_blob_verification_failures_total",
        "Blobs refused because their digest or size did not match.",
        r.verify_failures.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "llmpm_runner_restarts_total",
        "Runners that exited unexpectedly (each is started again on the next request).",
        r.runner_exits.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "llmpm_runner_tokenize_requests_total",
        "Texts sent to a runner to be tokenized (the daemon counts prompt tokens itself when it reads the vocabulary).",
        r.runner_tokenize.load(Ordering::Relaxed),
    );
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_labels_escaped() {
        let name = "ns/m\"odel\n";
        first_token(name, Duration::from_millis(30));
        first_token(name, Duration::from_secs(100));
        generation(name, 5, 10, 1_000_000_000);
        let text = render(&[Loaded {
            name: "a".into(),
            bytes: 7,
            vram_bytes: 0,
        }]);
        let m = "model=\"ns/m\\\"odel\\n\"";
        for line in [
            format!("llmpm_time_to_first_token_seconds_bucket{{{m},le=\"0.025\"}} 0"),
            format!("llmpm_time_to_first_token_seconds_bucket{{{m},le=\"0.05\"}} 1"),
            format!("llmpm_time_to_first_token_seconds_bucket{{{m},le=\"60\"}} 1"),
            format!("llmpm_time_to_first_token_seconds_bucket{{{m},le=\"+Inf\"}} 2"),
            format!("llmpm_time_to_first_token_seconds_count{{{m}}} 2"),
            format!("llmpm_generation_tokens_per_second_bucket{{{m},le=\"10\"}} 1"),
            format!("llmpm_prompt_tokens_total{{{m}}} 5"),
            "llmpm_model_memory_bytes{model=\"a\"} 7".to_owned(),
            "llmpm_loaded_models 1".to_owned(),
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
    }
}
