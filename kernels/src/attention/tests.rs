#![allow(clippy::unwrap_used)]

use super::*;
use crate::testing::uniform as values;

/// Plain attention in f64 over the same keys and values as the cache
/// holds them (`r` rounds to its type), with an explicit mask.
#[allow(clippy::too_many_arguments)]
fn reference(
    r: impl Fn(f32) -> f64,
    q: &[f32],
    heads: usize,
    t: usize,
    k: &[f32],
    v: &[f32],
    kv_heads: usize,
    d: usize,
    total: usize,
    scale: f32,
    window: Option<usize>,
) -> Vec<f32> {
    let pos = total - t;
    let mut out = vec![0f32; heads * t * d];
    for h in 0..heads {
        let g = h / (heads / kv_heads);
        for i in 0..t {
            let at = pos + i;
            let seen: Vec<usize> = (0..total)
                .filter(|&j| j <= at && window.is_none_or(|w| at < j + w))
                .collect();
            let s: Vec<f64> = seen
                .iter()
                .map(|&j| {
                    (0..d)
                        .map(|x| r(q[(h * t + i) * d + x]) * r(k[(g * total + j) * d + x]))
                        .sum::<f64>()
                        * f64::from(scale)
                })
                .collect();
            let max = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = s.iter().map(|x| (x - max).exp()).collect();
            let sum: f64 = e.iter().sum();
            for x in 0..d {
                let y: f64 = seen
                    .iter()
                    .zip(&e)
                    .map(|(&j, p)| p / sum * r(v[(g * total + j) * d + x]))
                    .sum();
                out[(h * t + i) * d + x] = y as f32;
            }
        }
    }
    out
}

/// `[kv_head][total][d]` split into the first `pos` tokens and the rest,
/// each `[kv_head][t][d]` as `append` takes them.
fn split(x: &[f32], kv_heads: usize, total: usize, pos: usize, d: usize) -> [Vec<f32>; 2] {
    let part = |a: usize, b: usize| -> Vec<f32> {
        (0..kv_heads)
            .flat_map(|g| x[(g * total + a) * d..(g * total + b) * d].to_vec())
            .collect()
    };
    [part(0, pos), part(pos, total)]
}

#[test]
fn matches_plain_attention_with_causality_windows_and_gqa() {
    check::<f16>(|x| f64::from(f16::from_f32(x).to_f32()));
    check::<f32>(f64::from);
}

fn check<E: Elem>(r: impl Fn(f32) -> f64 + Copy) {
    // (heads, kv heads, head dim, cached, new, window): a prompt
    // longer than one block of queries and keys, decode steps, odd head
    // dims (the dot product's tail), windows shorter than the prompt.
    let cases = [
        (4, 2, 64, 0, 70, None),
        (4, 1, 256, 3, 1, None),
        (2, 2, 20, 130, 1, Some(16)),
        (8, 2, 32, 5, 40, Some(7)),
        (1, 1, 16, 0, 1, None),
    ];
    for (heads, kv_heads, d, pos, t, window) in cases {
        let total = pos + t;
        let k = values(kv_heads * total * d, 1);
        let v = values(kv_heads * total * d, 2);
        let q = values(heads * t * d, 3);
        let scale = 1.0 / (d as f32).sqrt();
        let [k0, k1] = split(&k, kv_heads, total, pos, d);
        let [v0, v1] = split(&v, kv_heads, total, pos, d);
        let mut kv = Kv::<E>::new(kv_heads, d, total);
        kv.append(&k0, &v0, pos).unwrap();
        kv.append(&k1, &v1, t).unwrap();
        assert_eq!(kv.len(), total);
        let got = attend(&q, heads, t, &kv, pos, scale, window).unwrap();
        let want = reference(r, &q, heads, t, &k, &v, kv_heads, d, total, scale, window);
        // The heads that share a kv head go in one task or apart, as the
        // threads allow: the same bits either way.
        for threads in [1, 64] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let again = pool.install(|| attend(&q, heads, t, &kv, pos, scale, window).unwrap());
            assert_eq!(again, got, "{threads} threads");
        }
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() <= 2e-5,
                "heads {heads}/{kv_heads} d {d} pos {pos} t {t} {window:?} [{i}]: {g} vs {w}"
            );
        }
        // Each query alone (decode) gives the bits it gets in the prompt.
        let mut one = Kv::<E>::new(kv_heads, d, total);
        one.append(&k0, &v0, pos).unwrap();
        for i in 0..t {
            let [ki, vi] = [&k1, &v1].map(|x| {
                (0..kv_heads)
                    .flat_map(|g| x[(g * t + i) * d..(g * t + i + 1) * d].to_vec())
                    .collect::<Vec<f32>>()
            });
            one.append(&ki, &vi, 1).unwrap();
            let qi: Vec<f32> = (0..heads)
                .flat_map(|h| q[(h * t + i) * d..(h * t + i + 1) * d].to_vec())
                .collect();
            let alone = attend(&qi, heads, 1, &one, pos + i, scale, window).unwrap();
            for h in 0..heads {
                assert_eq!(
                    alone[h * d..(h + 1) * d],
                    got[(h * t + i) * d..(h * t + i + 1) * d],
                    "query {i} head {h}"
                );
            }
        }
    }
}

#[test]
fn truncated_and_copied_caches_attend_as_built_ones() {
    let (heads, kv_heads, d) = (4, 2, 16);
    // Cut inside a block, at a block's end, and at nothing.
    for (total, keep) in [(150, 70), (150, 64), (40, 0)] {
        let k = values(kv_heads * total * d, 1);
        let v = values(kv_heads * total * d, 2);
        let [k0, _] = split(&k, kv_heads, total, keep, d);
        let [v0, _] = split(&v, kv_heads, total, keep, d);
        // Other tokens after the prefix: a prompt that diverges there.
        let other_k = values(kv_heads * (total - keep) * d, 5);
        let other_v = values(kv_heads * (total - keep) * d, 6);
        let mut built = Kv::<f16>::new(kv_heads, d, total);
        built.append(&k0, &v0, keep).unwrap();
        built.append(&other_k, &other_v, total - keep).unwrap();

        let mut cut = Kv::<f16>::new(kv_heads, d, total);
        cut.append(&k, &v, total).unwrap();
        cut.truncate(keep);
        assert_eq!(cut.len(), keep);
        cut.append(&other_k, &other_v, total - keep).unwrap();

        let mut copied = Kv::<f16>::new(kv_heads, d, total);
        copied
            .append(&other_k[..kv_heads * d], &other_v[..kv_heads * d], 1)
            .unwrap();
        assert!(copied.copy_prefix(&cut, keep));
        assert_eq!(copied.len(), keep);
        copied.append(&other_k, &other_v, total - keep).unwrap();

        assert_eq!(
            cut.k[..],
            built.k[..],
            "keys after truncate, {total}/{keep}"
        );
        assert_eq!(cut.v[..], built.v[..]);
        assert_eq!(copied.k[..], built.k[..], "keys after copy, {total}/{keep}");
        assert_eq!(copied.v[..], built.v[..]);
        let q = values(heads * d, 3);
        let want = attend(&q, heads, 1, &built, total - 1, 0.25, None).unwrap();
        assert_eq!(
            attend(&q, heads, 1, &cut, total - 1, 0.25, None).unwrap(),
            want
        );
    }
    // A prefix longer than the source, or another shape: refused.
    let mut a = Kv::<f16>::new(2, 4, 8);
    let b = Kv::<f16>::new(2, 8, 8);
    assert!(!a.copy_prefix(&b, 0));
    let c = Kv::<f16>::new(2, 4, 8);
    assert!(!a.copy_prefix(&c, 1));
}

#[test]
fn refuses_what_does_not_fit() {
    let mut kv = Kv::<f16>::new(2, 4, 3);
    assert!(kv.append(&[0.0; 8], &[0.0; 8], 2).is_err());
    kv.append(&[0.0; 16], &[0.0; 16], 2).unwrap();
    // Past max_len.
    assert!(kv.append(&[0.0; 16], &[0.0; 16], 2).is_err());
    // Three query heads cannot share two kv heads.
    assert!(attend(&[0.0; 12], 3, 1, &kv, 1, 1.0, None).is_err());
    // The queries' positions must end where the cache does.
    assert!(attend(&[0.0; 8], 2, 1, &kv, 0, 1.0, None).is_err());
    kv.reset();
    assert_eq!(kv.len(), 0);
    kv.append(&[0.0; 24], &[0.0; 24], 3).unwrap();
    assert_eq!(kv.len(), 3);
}

#[test]
fn quantized_caches_attend_close_to_plain_attention() {
    let (heads, kv_heads, d) = (4, 2, 64);
    for (ty, tol) in [(QType::Q8_0, 0.02), (QType::Q4_0, 0.15)] {
        for (pos, t, window) in [(0, 70, None), (130, 1, None), (5, 40, Some(7))] {
            let total = pos + t;
            let k = values(kv_heads * total * d, 1);
            let v = values(kv_heads * total * d, 2);
            let q = values(heads * t * d, 3);
            let scale = 1.0 / (d as f32).sqrt();
            let [k0, k1] = split(&k, kv_heads, total, pos, d);
            let [v0, v1] = split(&v, kv_heads, total, pos, d);
            let mut kv = QKv::new(ty, kv_heads, d, total).unwrap();
            kv.append(&k0, &v0, pos).unwrap();
            kv.append(&k1, &v1, t).unwrap();
            assert_eq!(kv.len(), total);
            let got = attend_quant(&q, heads, t, &kv, pos, scale, window).unwrap();
            let want = reference(
                f64::from,
                &q,
                heads,
                t,
                &k,
                &v,
                kv_heads,
                d,
                total,
                scale,
                window,
            );
            let err = got
                .iter()
                .zip(&want)
                .map(|(g, w)| (g - w).abs())
                .fold(0f32, f32::max);
            assert!(err < tol, "{ty:?} pos {pos} t {t}: max error {err}");
            // Cut and copied caches attend as one built to that length.
            let mut cut = QKv::new(ty, kv_heads, d, total).unwrap();
            assert!(cut.copy_prefix(&kv, total));
            cut.truncate(pos);
            cut.append(&k1, &v1, t).unwrap();
            assert_eq!(
                attend_quant(&q, heads, t, &cut, pos, scale, window).unwrap(),
                got
            );
        }
    }
    // Heads that are not whole blocks are refused.
    assert!(QKv::new(QType::Q8_0, 1, 20, 8).is_err());
    // Memory: q8_0 is 34 bytes per 32 values, q4_0 18 (f16: 64).
    assert_eq!(
        QKv::new(QType::Q8_0, 2, 64, 8).unwrap().bytes_per_token(),
        2 * 2 * 2 * 34
    );
    assert_eq!(KvType::Q4_0.bytes_per_value(), 18.0 / 32.0);
}

/// The largest difference between `kv`'s attention (`k` and `v` appended)
/// and plain f32 attention over the same keys and values.
fn quant_error(kv: &mut QKv, q: &[f32], heads: usize, k: &[f32], v: &[f32]) -> f32 {
    let (kv_heads, d) = kv.shape();
    let t = k.len() / (kv_heads * d);
    let scale = 1.0 / (d as f32).sqrt();
    let mut f = Kv::<f32>::new(kv_heads, d, t);
    f.append(k, v, t).unwrap();
    let want = attend(q, heads, t, &f, 0, scale, None).unwrap();
    kv.append(k, v, t).unwrap();
    let got = attend_quant(q, heads, t, kv, 0, scale, None).unwrap();
    got.iter()
        .zip(&want)
        .map(|(g, w)| (g - w).abs())
        .fold(0f32, f32::max)
}

/// Keys with a few huge channels (Qwen 2.5's biases): rotated before they
/// are quantized, q8_0 keeps the products; without rotation (heads not a
/// multiple of 64) the same keys lose them.
#[test]
fn rotation_keeps_keys_with_huge_channels() {
    let (heads, kv_heads, t) = (4, 1, 24);
    let err_for = |d: usize| {
        let mut k = values(kv_heads * t * d, 1);
        for (i, x) in k.iter_mut().enumerate() {
            if i % d == 5 {
                *x += 40.0;
            }
        }
        let v = values(kv_heads * t * d, 2);
        let q = values(heads * t * d, 3);
        let mut kv = QKv::new(QType::Q8_0, kv_heads, d, t).unwrap();
        quant_error(&mut kv, &q, heads, &k, &v)
    };
    let (rotated, plain) = (err_for(64), err_for(96));
    assert!(rotated < 0.03, "rotated: {rotated}");
    assert!(
        plain > 2.0 * rotated,
        "plain {plain} against rotated {rotated}"
    );
}

/// Keys that share a large constant part (Qwen 2's key bias in its slowest
/// RoPE pairs): stored as their difference from it, a quantized cache
/// attends as plain attention does, much closer than when the part takes
/// the blocks' scales; the centre needs an empty cache and no sinks, and
/// caches with different centres do not share prefixes.
#[test]
fn centred_keys_leave_the_scales_to_what_varies() {
    let (heads, kv_heads, t, d) = (4, 2, 40, 64);
    let centre: Vec<f32> = (0..kv_heads * d)
        .map(|i| match i % d {
            29..=31 | 61..=63 => 150.0 - (i % 7) as f32 * 20.0,
            _ => 0.3 * ((i * 7) % 5) as f32,
        })
        .collect();
    let mut k = values(kv_heads * t * d, 4);
    for (i, x) in k.iter_mut().enumerate() {
        // `[kv_head][t][d]`
        let (g, x_at) = (i / (t * d), i % d);
        *x += centre[g * d + x_at];
    }
    let v = values(kv_heads * t * d, 5);
    let q = values(heads * t * d, 6);
    let err = |ty: QType, centred: bool| {
        let mut kv = QKv::new(ty, kv_heads, d, t).unwrap();
        if centred {
            kv.centre_keys(centre.clone()).unwrap();
        }
        quant_error(&mut kv, &q, heads, &k, &v)
    };
    for ty in [QType::Q8_0, QType::Q4_0] {
        let (centred, plain) = (err(ty, true), err(ty, false));
        assert!(
            centred * 4.0 < plain,
            "{ty:?}: centred {centred} against {plain}"
        );
    }
    assert!(err(QType::Q8_0, true) < 0.02);

    let mut kv = QKv::new(QType::Q8_0, kv_heads, d, t).unwrap();
    assert!(
        kv.centre_keys(vec![0.0; d]).is_err(),
        "one head's centre for two"
    );
    kv.centre_keys(centre.clone()).unwrap();
    kv.append(&k[..kv_heads * d], &v[..kv_heads * d], 1)
        .unwrap();
    assert!(
        kv.centre_keys(centre.clone()).is_err(),
        "a cache that holds keys"
    );
    let sinks = vec![0.5; heads];
    let scores = Scores {
        scale: 0.125,
        window: None,
        sinks: Some(&sinks),
    };
    assert!(attend_quant_with(&q[..heads * d], heads, 1, &kv, 0, scores).is_err());
    let mut other = QKv::new(QType::Q8_0, kv_heads, d, t).unwrap();
    assert!(!other.copy_prefix(&kv, 1), "another centre");
    other.centre_keys(centre).unwrap();
    assert!(other.copy_prefix(&kv, 1));
}

/// The softmax's `exp` is within a few units in the last place of the true
/// value over the scores' range, and 0 where f32 would be subnormal.
#[test]
fn exp_is_close_to_the_true_exponential() {
    let mut worst = 0f64;
    for i in 0..=870_000 {
        let x = -(i as f32) * 1e-4;
        let want = f64::from(x).exp();
        let got = f64::from(super::exp(x));
        worst = worst.max((got - want).abs() / want);
    }
    assert!(
        worst < 3.0 * f64::from(f32::EPSILON),
        "relative error {worst}"
    );
    assert_eq!(super::exp(0.0), 1.0);
    assert_eq!(super::exp(-100.0), 0.0);
    assert_eq!(super::exp(f32::NEG_INFINITY), 0.0);
}

/// A sink is a logit with no value: with all scores equal (zero queries)
/// each seen key weighs `1 / (n + e^sink)`, and a sink of -inf changes
/// nothing. Its count must match the heads.
#[test]
fn sinks_join_the_softmax_without_a_value() {
    let (heads, kv_heads, d, pos, t, w) = (4, 2, 32, 3, 5, 4);
    let total = pos + t;
    let k = values(kv_heads * total * d, 1);
    let v = values(kv_heads * total * d, 2);
    let mut kv = Kv::<f32>::new(kv_heads, d, total);
    kv.append(&k, &v, total).unwrap();
    let q = vec![0f32; heads * t * d];
    let sinks = [0.0f32, 1.0, -2.0, f32::NEG_INFINITY];
    let scores = Scores {
        scale: 0.125,
        window: Some(w),
        sinks: Some(&sinks),
    };
    let got = attend_with(&q, heads, t, &kv, pos, scores).unwrap();
    for h in 0..heads {
        let g = h / (heads / kv_heads);
        for i in 0..t {
            let at = pos + i;
            let seen: Vec<usize> = (0..=at).filter(|&j| at < j + w).collect();
            let denom = seen.len() as f64 + f64::from(sinks[h]).exp();
            for x in 0..d {
                let want: f64 = seen
                    .iter()
                    .map(|&j| f64::from(v[(g * total + j) * d + x]))
                    .sum::<f64>()
                    / denom;
                let got = got[(h * t + i) * d + x];
                assert!(
                    (f64::from(got) - want).abs() < 1e-5,
                    "h{h} i{i} x{x}: {got} vs {want}"
                );
            }
        }
    }
    let bad = Scores {
        sinks: Some(&sinks[..3]),
        ..scores
    };
    assert!(attend_with(&q, heads, t, &kv, pos, bad).is_err());
}

/// A sliding-window cache that forgets the blocks no query sees any more
/// attends exactly as one that keeps everything, holds only about the
/// window, and refuses what it forgot: a query that would see it, a
/// truncation into it, a copy from it.
#[test]
fn forgetting_blocks_behind_the_window_changes_nothing() {
    let (heads, kv_heads, d, w) = (4usize, 2usize, 32usize, 40usize);
    let chunks = [70, 1, 1, 100, 1, 3, 1];
    let total: usize = chunks.iter().sum();
    let mut full = Kv::<f32>::new(kv_heads, d, total);
    let mut slim = Kv::<f32>::new(kv_heads, d, total);
    let scores = Scores {
        scale: 0.2,
        window: Some(w),
        sinks: None,
    };
    let mut pos = 0usize;
    for (c, &t) in chunks.iter().enumerate() {
        let k = values(kv_heads * t * d, 10 + c as u64);
        let v = values(kv_heads * t * d, 20 + c as u64);
        let q = values(heads * t * d, 30 + c as u64);
        slim.forget_before((pos + 1).saturating_sub(w));
        full.append(&k, &v, t).unwrap();
        slim.append(&k, &v, t).unwrap();
        let a = attend_with(&q, heads, t, &full, pos, scores).unwrap();
        let b = attend_with(&q, heads, t, &slim, pos, scores).unwrap();
        assert_eq!(a, b, "chunk {c}");
        pos += t;
        assert!(slim.len() == pos && slim.len() - slim.first_held() < w + KEYS + t);
    }
    assert!(slim.first_held() > 0);
    // Without the window the first query would see forgotten keys.
    let q = values(heads * d, 99);
    let mut one = Kv::<f32>::new(kv_heads, d, total + 1);
    assert!(one.copy_prefix(&full, total));
    assert!(!one.copy_prefix(&slim, total));
    let unwindowed = Scores {
        window: None,
        ..scores
    };
    let (k, v) = (values(kv_heads * d, 1), values(kv_heads * d, 2));
    let mut s2 = Kv::<f32>::new(kv_heads, d, total + 1);
    s2.append(
        &values(kv_heads * total * d, 3),
        &values(kv_heads * total * d, 4),
        total,
    )
    .unwrap();
    s2.forget_before(total);
    s2.append(&k, &v, 1).unwrap();
    assert!(attend_with(&q, heads, 1, &s2, total, unwindowed).is_err());
    // Cutting within the held part works; into the forgotten part empties it.
    let held = slim.first_held();
    assert!(slim.truncate(held + 1));
    assert_eq!(slim.len(), held + 1);
    assert!(!slim.truncate(held - 1));
    assert_eq!((slim.len(), slim.first_held()), (0, 0));
}

#[test]
fn every_vector_unit_gives_the_same_bits() {
    // (query heads on the kv head, head dim, cached, new, window): decode
    // steps of four heads (one group of four) and seven (four and three
    // alone), prompts whose queries see the same keys off the diagonal and
    // not on it, a head narrower than a block of value columns.
    let cases = [
        (4, 64, 130, 1, None),
        (7, 64, 130, 1, None),
        (4, 128, 0, 70, None),
        (2, 20, 33, 9, Some(5)),
        (8, 64, 64, 3, Some(40)),
    ];
    for (heads, d, pos, t, window) in cases {
        let total = pos + t;
        let (k, v, q) = (
            values(total * d, 1),
            values(total * d, 2),
            values(heads * t * d, 3),
        );
        // The queries of `heads` heads at `pos..total` over one kv head.
        fn run<E: Elem>(
            isa: Isa,
            kv: &Kv<E>,
            q: &[f32],
            heads: usize,
            pos: usize,
            window: Option<usize>,
        ) -> Vec<f32> {
            let job = Job {
                kv,
                g: 0,
                qs: q,
                heads,
                at: pos,
                scale: 0.125,
                window,
                sinks: None,
            };
            let mut out = vec![0f32; q.len()];
            block_on(isa, &job, &mut out);
            out
        }
        let mut half = Kv::<f16>::new(1, d, total);
        half.append(&k, &v, total).unwrap();
        let mut full = Kv::<f32>::new(1, d, total);
        full.append(&k, &v, total).unwrap();
        let want = [
            run(Isa::Portable, &half, &q, heads, pos, window),
            run(Isa::Portable, &full, &q, heads, pos, window),
        ];
        for isa in Isa::available() {
            let got = [
                run(isa, &half, &q, heads, pos, window),
                run(isa, &full, &q, heads, pos, window),
            ];
            assert_eq!(got, want, "{isa:?}: heads {heads} d {d} pos {pos} t {t}");
        }
    }
}
