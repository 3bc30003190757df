//! Token sampling with Ollama's option set, in llama.cpp's order: the
//! constraint's mask of allowed tokens (if any), penalties, then top-k,
//! top-p, min-p, temperature, then a seeded draw. Temperature 0 is greedy.
//! [`logprobs`] reports what the model's own distribution gave the chosen
//! token and its best alternatives.

pub mod logprobs;

use std::collections::HashMap;

use crate::llm::protocol::SamplerConfig;

/// A sampler for one generation: its config and its random stream.
#[derive(Debug)]
pub struct Sampler {
    config: SamplerConfig,
    rng: fastrand::Rng,
}

impl Sampler {
    /// A sampler; the same seed gives the same draws.
    pub fn new(config: SamplerConfig) -> Sampler {
        let rng = match config.seed {
            Some(s) => fastrand::Rng::with_seed(s),
            None => fastrand::Rng::new(),
        };
        Sampler { config, rng }
    }

    /// Picks the next token from `logits`, given the tokens so far
    /// (`history`: prompt and generated, oldest first).
    pub fn sample(&mut self, logits: &[f32], history: &[u32]) -> u32 {
        self.pick(logits.to_vec(), history)
    }

    /// Like [`Sampler::sample`], among the tokens `allowed` only: a bitset,
    /// bit `i % 32` of word `i / 32` for token `i`. The mask comes first, so
    /// that top-k and the others choose among allowed tokens. `None` when no
    /// token is allowed.
    pub fn sample_allowed(
        &mut self,
        logits: &[f32],
        history: &[u32],
        allowed: &[u32],
    ) -> Option<u32> {
        let mut masked = vec![f32::NEG_INFINITY; logits.len()];
        let mut any = false;
        for (w, &bits) in allowed.iter().enumerate() {
            if bits == 0 {
                continue;
            }
            let base = w * 32;
            for b in 0..32 {
                if bits & (1 << b) != 0 {
                    if let Some(&l) = logits.get(base + b) {
                        masked[base + b] = l;
                        any = true;
                    }
                }
            }
        }
        any.then(|| self.pick(masked, history))
    }

    fn pick(&mut self, mut logits: Vec<f32>, history: &[u32]) -> u32 {
        let c = &self.config;
        self.penalize(&mut logits, history);
        if c.temperature <= 0.0 {
            return super::model::argmax(&logits);
        }
        // Candidates sorted by logit, best first.
        let mut cand: Vec<(u32, f32)> = logits
            .iter()
            .enumerate()
            .filter(|(_, l)| l.is_finite())
            .map(|(i, &l)| (u32::try_from(i).unwrap_or(u32::MAX), l))
            .collect();
        if cand.is_empty() {
            return 0;
        }
        cand.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        if c.top_k > 0 {
            cand.truncate(usize::try_from(c.top_k).unwrap_or(usize::MAX).max(1));
        }
        let probs = softmax(&cand, 1.0);
        if c.top_p < 1.0 {
            let mut sum = 0.0;
            let mut keep = cand.len();
            for (i, p) in probs.iter().enumerate() {
                sum += p;
                if sum >= c.top_p {
                    keep = i + 1;
                    break;
                }
            }
            cand.truncate(keep.max(1));
        }
        if c.min_p > 0.0 {
            let best = cand[0].1;
            // p_i / p_max = exp(l_i - l_max).
            let floor = best + c.min_p.ln();
            cand.retain(|&(_, l)| l >= floor);
        }
        let probs = softmax(&cand, c.temperature);
        let r = self.rng.f32();
        let mut acc = 0.0;
        for (&(id, _), p) in cand.iter().zip(&probs) {
            acc += p;
            if r < acc {
                return id;
            }
        }
        cand.last().map_or(0, |&(id, _)| id)
    }

    fn penalize(&self, logits: &mut [f32], history: &[u32]) {
        let c = &self.config;
        let on = c.repeat_penalty != 1.0 || c.presence_penalty != 0.0 || c.frequency_penalty != 0.0;
        if !on || c.repeat_last_n == 0 {
            return;
        }
        let n = if c.repeat_last_n < 0 {
            history.len()
        } else {
            usize::try_from(c.repeat_last_n)
                .unwrap_or(usize::MAX)
                .min(history.len())
        };
        let mut counts: HashMap<u32, u32> = HashMap::new();
        for &t in &history[history.len() - n..] {
            *counts.entry(t).or_default() += 1;
        }
        for (t, count) in counts {
            let Some(l) = logits.get_mut(t as usize) else {
                continue;
            };
            if c.repeat_penalty > 0.0 && c.repeat_penalty != 1.0 {
                *l = if *l <= 0.0 {
                    *l * c.repeat_penalty
                } else {
                    *l / c.repeat_penalty
                };
            }
            *l -= count as f32 * c.frequency_penalty + c.presence_penalty;
        }
    }
}

/// Probabilities of `cand` (sorted, best first) at `temperature`.
fn softmax(cand: &[(u32, f32)], temperature: f32) -> Vec<f32> {
    let Some(&(_, max)) = cand.first() else {
        return Vec::new();
    };
    let e: Vec<f32> = cand
        .iter()
        .map(|&(_, l)| ((l - max) / temperature).exp())
        .collect();
    let sum: f32 = e.iter().sum();
    e.into_iter().map(|x| x / sum).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn logits() -> Vec<f32> {
        (0..50).map(|i| ((i * 37) % 17) as f32 * 0.3).collect()
    }

    #[test]
    fn greedy_at_zero_temperature() {
        let mut s = Sampler::new(SamplerConfig {
            temperature: 0.0,
            ..SamplerConfig::default()
        });
        let l = logits();
        assert_eq!(s.sample(&l, &[]), super::super::model::argmax(&l));
    }

    #[test]
    fn same_seed_same_tokens() {
        let cfg = SamplerConfig {
            temperature: 1.5,
            top_k: 0,
            top_p: 1.0,
            seed: Some(7),
            ..SamplerConfig::default()
        };
        let l = logits();
        let run = |cfg: &SamplerConfig| {
            let mut s = Sampler::new(cfg.clone());
            (0..20).map(|_| s.sample(&l, &[])).collect::<Vec<_>>()
        };
        assert_eq!(run(&cfg), run(&cfg));
        let other = SamplerConfig {
            seed: Some(8),
            ..cfg.clone()
        };
        assert_ne!(run(&cfg), run(&other));
    }

    #[test]
    fn top_k_one_is_greedy() {
        let mut s = Sampler::new(SamplerConfig {
            top_k: 1,
            temperature: 5.0,
            ..SamplerConfig::default()
        });
        let l = logits();
        for _ in 0..10 {
            assert_eq!(s.sample(&l, &[]), super::super::model::argmax(&l));
        }
    }

    #[test]
    fn repeat_penalty_moves_off_repeated_token() {
        let mut l = vec![0.0f32; 4];
        l[2] = 2.0;
        l[1] = 1.5;
        let mut s = Sampler::new(SamplerConfig {
            temperature: 0.0,
            repeat_penalty: 2.0,
            ..SamplerConfig::default()
        });
        assert_eq!(s.sample(&l, &[2]), 1);
        let mut s = Sampler::new(SamplerConfig {
            temperature: 0.0,
            presence_penalty: 1.0,
            ..SamplerConfig::default()
        });
        assert_eq!(s.sample(&l, &[2]), 1);
    }

    #[test]
    fn only_allowed_tokens_are_drawn() {
        let l = logits();
        // Tokens 3, 40 and 49 of 50.
        let allowed = [1u32 << 3, (1 << 8) | (1 << 17)];
        for temperature in [0.0, 1.0, 5.0] {
            let mut s = Sampler::new(SamplerConfig {
                temperature,
                top_k: 1,
                seed: Some(3),
                ..SamplerConfig::default()
            });
            for _ in 0..20 {
                let t = s.sample_allowed(&l, &[], &allowed).unwrap();
                assert!([3, 40, 49].contains(&t), "{t} at {temperature}");
            }
        }
        // Greedy picks the best allowed one, not the best overall.
        let mut s = Sampler::new(SamplerConfig {
            temperature: 0.0,
            ..SamplerConfig::default()
        });
        let best = super::super::model::argmax(&l);
        let mut only = [0u32; 2];
        only[(best as usize + 1) % 50 / 32] |= 1 << ((best as usize + 1) % 50 % 32);
        assert_eq!(s.sample_allowed(&l, &[], &only), Some((best + 1) % 50));
        // Nothing allowed (or only past the logits): no token.
        assert_eq!(s.sample_allowed(&l, &[], &[0, 0]), None);
        assert_eq!(s.sample_allowed(&l, &[], &[0, 0, 1]), None);
    }

    #[test]
    fn min_p_and_top_p_keep_the_best() {
        let mut l = vec![-10.0f32; 8];
        l[5] = 10.0;
        let mut s = Sampler::new(SamplerConfig {
            temperature: 1.0,
            top_p: 0.5,
            min_p: 0.5,
            seed: Some(1),
            ..SamplerConfig::default()
        });
        for _ in 0..10 {
            assert_eq!(s.sample(&l, &[]), 5);
        }
    }
}
