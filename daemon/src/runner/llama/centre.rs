//! Which part of a key bias a quantized KV cache may take out of the keys
//! before rounding them (`QKv::centre_keys`): the part RoPE leaves nearly
//! where it is over the whole context.

/// How a model's RoPE turns one head.
pub(super) struct Rope<'a> {
    pub head_dim: usize,
    /// The first `rope_dim` values of a head are turned, the rest not.
    pub rope_dim: usize,
    /// Pairs `i` and `i + rope_dim / 2` (NeoX) rather than `2i` and `2i + 1`.
    pub neox: bool,
    /// Each pair's angle per position.
    pub inv_freq: &'a [f32],
    /// Positions are multiplied by this before the angle is taken.
    pub pos_scale: f32,
    /// Cos and sin are multiplied by this.
    pub magnitude: f32,
}

/// The key bias `bias` (`heads * head_dim` values, before RoPE) where the
/// keys keep it at every position below `max_len`: all of it in values
/// RoPE does not turn, and in the pairs it turns by at most one radian
/// (there the turned bias stays nearer to the bias than to nothing, so
/// taking it away never leaves more than was there); 0 elsewhere.
pub(super) fn steady_bias(bias: &[f32], rope: &Rope<'_>, max_len: usize) -> Vec<f32> {
    let half = rope.rope_dim / 2;
    bias.chunks_exact(rope.head_dim.max(1))
        .flat_map(|head| {
            head.iter().enumerate().map(move |(i, &b)| {
                let pair = match (i < rope.rope_dim, rope.neox) {
                    (false, _) => return b,
                    (true, true) => i % half,
                    (true, false) => i / 2,
                };
                let turn = rope.inv_freq.get(pair).copied().unwrap_or(f32::MAX)
                    * rope.pos_scale
                    * max_len as f32;
                if turn <= 1.0 {
                    b * rope.magnitude
                } else {
                    0.0
                }
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Slow pairs keep their bias, fast ones do not, per layout; values past
    /// `rope_dim` keep it whatever the context; a longer context keeps less.
    #[test]
    fn keeps_the_bias_where_rope_hardly_turns_it() {
        // Two heads of 8: six turned values (3 pairs) and two not.
        let inv_freq = [1.0, 0.01, 0.0001];
        let bias: Vec<f32> = (1..=16).map(|x| x as f32).collect();
        let rope = |neox| Rope {
            head_dim: 8,
            rope_dim: 6,
            neox,
            inv_freq: &inv_freq,
            pos_scale: 1.0,
            magnitude: 2.0,
        };
        // 50 positions: pair 0 turns 50 radians, pair 1 0.5, pair 2 0.005.
        assert_eq!(
            steady_bias(&bias, &rope(true), 50),
            [
                0.0, 4.0, 6.0, 0.0, 10.0, 12.0, 7.0, 8.0, 0.0, 20.0, 22.0, 0.0, 26.0, 28.0, 15.0,
                16.0
            ]
        );
        assert_eq!(
            steady_bias(&bias, &rope(false), 50),
            [
                0.0, 0.0, 6.0, 8.0, 10.0, 12.0, 7.0, 8.0, 0.0, 0.0, 22.0, 24.0, 26.0, 28.0, 15.0,
                16.0
            ]
        );
        // 500 positions: pair 1 turns 5 radians.
        assert_eq!(
            steady_bias(&bias, &rope(false), 500)[..8],
            [0.0, 0.0, 0.0, 0.0, 10.0, 12.0, 7.0, 8.0]
        );
    }
}
