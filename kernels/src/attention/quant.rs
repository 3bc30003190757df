//! The key/value cache in ggml's 8-bit and 4-bit blocks (`q8_0`, `q4_0`,
//! Ollama's `OLLAMA_KV_CACHE_TYPE`): about 1/2 and 1/4 of f16's memory per
//! token. Keys and values are stored token by token in blocks of 32 along
//! the head, as ggml stores them; attention dequantizes a block of keys or
//! values at a time into the same fused kernel the f16 cache uses. The
//! queries stay in f32 (ggml rounds them to `q8_0` for its integer dot
//! products: an error this float product does without).
//!
//! As llama.cpp does since it quantizes caches well, heads of a multiple
//! of 64 values are rotated by an orthonormal Walsh-Hadamard transform
//! before they are quantized: keys (and with them the queries, so every
//! product is unchanged) over the largest power of two dividing the head,
//! values over 64 (the output is rotated back, the transform being its own
//! inverse). The rotation spreads the few huge channels that models such
//! as Qwen 2.5 have in their keys over the whole block, where blocks of 32
//! would otherwise round every other channel of that block to nothing:
//! without it Qwen2.5-Coder-0.5B answers nonsense with a q8_0 cache.
//! Keys may also be stored less a constant vector ([`QKv::centre_keys`]).

use half::f16;

use crate::pages::Grow;

use super::{attend_here, check_append, Scores, Store, KEYS};

/// Values per block.
const BLOCK: usize = 32;

/// The block format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QType {
    /// An f16 scale and 32 signed bytes.
    Q8_0,
    /// An f16 scale and 32 4-bit values.
    Q4_0,
}

impl QType {
    /// Bytes of one block.
    pub fn block_bytes(self) -> usize {
        match self {
            QType::Q8_0 => 2 + BLOCK,
            QType::Q4_0 => 2 + BLOCK / 2,
        }
    }

    /// `x` (32 values) into `dst` (one block), as ggml's reference quantizers.
    pub(crate) fn quantize(self, x: &[f32], dst: &mut [u8]) {
        match self {
            QType::Q8_0 => {
                let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
                let d = amax / 127.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                dst[..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
                for (q, &v) in dst[2..].iter_mut().zip(x) {
                    *q = ((v * id).round() as i8).to_le_bytes()[0];
                }
            }
            QType::Q4_0 => {
                // The value of largest magnitude, with its sign, maps to -8.
                let max = x
                    .iter()
                    .fold(0f32, |m, &v| if v.abs() > m.abs() { v } else { m });
                let d = max / -8.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                dst[..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
                let nib = |v: f32| ((v * id + 8.5) as i32).clamp(0, 15) as u8;
                for j in 0..BLOCK / 2 {
                    dst[2 + j] = nib(x[j]) | (nib(x[j + BLOCK / 2]) << 4);
                }
            }
        }
    }

    /// One block back to 32 values.
    pub(crate) fn dequantize(self, b: &[u8], out: &mut [f32]) {
        let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
        match self {
            QType::Q8_0 => {
                for (o, &q) in out.iter_mut().zip(&b[2..2 + BLOCK]) {
                    *o = f32::from(i8::from_le_bytes([q])) * d;
                }
            }
            QType::Q4_0 => {
                for j in 0..BLOCK / 2 {
                    let q = b[2 + j];
                    out[j] = (f32::from(q & 0x0f) - 8.0) * d;
                    out[j + BLOCK / 2] = (f32::from(q >> 4) - 8.0) * d;
                }
            }
        }
    }
}

/// One layer's keys and values in blocks: `[position][kv_head][head_dim]`
/// for both, each head's row `head_dim / 32` blocks.
#[derive(Debug)]
pub struct QKv {
    ty: QType,
    /// Keys (and queries) are rotated in chunks of this many values (0: not).
    rot_k: usize,
    /// Values (and the output) likewise.
    rot_v: usize,
    /// Subtracted from every key before it is rotated and quantized (empty:
    /// nothing); see [`QKv::centre_keys`].
    k_centre: Vec<f32>,
    kv_heads: usize,
    head_dim: usize,
    max_len: usize,
    k: Grow<u8>,
    v: Grow<u8>,
}

impl QKv {
    /// A cache of `ty` blocks; the head size must be a multiple of 32.
    pub fn new(ty: QType, kv_heads: usize, head_dim: usize, max_len: usize) -> Result<QKv, String> {
        if head_dim == 0 || !head_dim.is_multiple_of(BLOCK) {
            return Err(format!(
                "a {ty:?} cache needs heads of a multiple of {BLOCK} values, not {head_dim}"
            ));
        }
        // llama.cpp's sizes: the largest power of two dividing the head for
        // keys, 64 for values; heads not a multiple of 64 are not rotated.
        let (rot_k, rot_v) = match head_dim.is_multiple_of(64) {
            true => (1 << head_dim.trailing_zeros(), 64),
            false => (0, 0),
        };
        Ok(QKv {
            ty,
            rot_k,
            rot_v,
            k_centre: Vec::new(),
            kv_heads,
            head_dim,
            max_len,
            k: Grow::new(),
            v: Grow::new(),
        })
    }

    /// Stores every key as its difference from `centre` (`kv_heads *
    /// head_dim` values, one vector per kv head), before it is rotated and
    /// quantized. Subtracting one vector from all the keys a query sees
    /// lowers each of its scores by the same amount, which the softmax
    /// takes away again: the attention is unchanged, while keys that share
    /// a large constant part (Qwen 2's key bias reaches 150 in the slowest
    /// RoPE pairs of its first layers, where the rotation hardly moves it)
    /// leave only what varies to the blocks' scales. Only on an empty
    /// cache, and not with sinks (a sink's score is not lowered with the
    /// others).
    pub fn centre_keys(&mut self, centre: Vec<f32>) -> Result<(), String> {
        if centre.len() != self.kv_heads * self.head_dim {
            return Err(format!(
                "a key centre of {} values for {} heads of {}",
                centre.len(),
                self.kv_heads,
                self.head_dim
            ));
        }
        if !self.is_empty() {
            return Err("the keys' centre changes only on an empty cache".into());
        }
        self.k_centre = centre;
        Ok(())
    }

    /// Bytes of one head's row.
    fn head_bytes(&self) -> usize {
        self.head_dim / BLOCK * self.ty.block_bytes()
    }

    /// Bytes of one token (all heads, keys or values).
    fn row_bytes(&self) -> usize {
        self.kv_heads * self.head_bytes()
    }

    /// Bytes per token of context, keys and values.
    pub fn bytes_per_token(&self) -> usize {
        2 * self.row_bytes()
    }

    /// Tokens held.
    pub fn len(&self) -> usize {
        self.v.len() / self.row_bytes().max(1)
    }

    /// Whether it holds no token.
    pub fn is_empty(&self) -> bool {
        self.v.is_empty()
    }

    /// Forgets every token (keeps the memory).
    pub fn reset(&mut self) {
        self.k.clear();
        self.v.clear();
    }

    /// Keeps the first `n` tokens.
    pub fn truncate(&mut self, n: usize) {
        let at = n * self.row_bytes();
        self.k.truncate(at);
        self.v.truncate(at);
    }

    /// Becomes the first `n` tokens of `from` (see `Kv::copy_prefix`).
    pub fn copy_prefix(&mut self, from: &QKv, n: usize) -> bool {
        if (self.ty, self.kv_heads, self.head_dim) != (from.ty, from.kv_heads, from.head_dim)
            || self.k_centre != from.k_centre
            || n > from.len()
            || n > self.max_len
        {
            return false;
        }
        if self.reserve().is_err() {
            return false;
        }
        let at = n * self.row_bytes();
        self.k.clear();
        self.v.clear();
        if self.k.extend_from_slice(&from.k[..at]).is_err()
            || self.v.extend_from_slice(&from.v[..at]).is_err()
        {
            self.reset();
            return false;
        }
        true
    }

    /// Room for `max_len` tokens, on the first token (pages become
    /// resident as tokens are written).
    fn reserve(&mut self) -> Result<(), String> {
        if self.v.capacity() == 0 {
            let all = self.max_len * self.row_bytes();
            self.k.reserve_total(all)?;
            self.v.reserve_total(all)?;
        }
        Ok(())
    }

    /// Appends `t` tokens' keys and values, each laid out
    /// `[kv_head][t][head_dim]` (candle's `(1, kv_heads, t, head_dim)`).
    pub fn append(&mut self, k: &[f32], v: &[f32], t: usize) -> Result<(), String> {
        let (h, d) = (self.kv_heads, self.head_dim);
        check_append((h, d), k, v, t, self.len(), self.max_len)?;
        self.reserve()?;
        let (ty, hb, bb) = (self.ty, self.head_bytes(), self.ty.block_bytes());
        let mut x = vec![0f32; d];
        for (src, dst, rot, centre) in [
            (k, &mut self.k, self.rot_k, self.k_centre.as_slice()),
            (v, &mut self.v, self.rot_v, &[][..]),
        ] {
            let at = dst.len();
            dst.resize(at + t * h * hb, 0)?;
            for i in 0..t {
                for g in 0..h {
                    x.copy_from_slice(&src[(g * t + i) * d..(g * t + i + 1) * d]);
                    if let Some(c) = centre.get(g * d..(g + 1) * d) {
                        x.iter_mut().zip(c).for_each(|(x, c)| *x -= c);
                    }
                    rotate(&mut x, rot);
                    let row = &mut dst[at + (i * h + g) * hb..][..hb];
                    for (xb, qb) in x.chunks_exact(BLOCK).zip(row.chunks_exact_mut(bb)) {
                        ty.quantize(xb, qb);
                    }
                }
            }
        }
        Ok(())
    }

    /// Head `g`'s row of token `p` from `data`, dequantized into `out`.
    #[inline(always)]
    fn row(&self, data: &[u8], p: usize, g: usize, out: &mut [f32]) {
        let hb = self.head_bytes();
        let at = (p * self.kv_heads + g) * hb;
        for (b, o) in data[at..at + hb]
            .chunks_exact(self.ty.block_bytes())
            .zip(out.chunks_exact_mut(BLOCK))
        {
            self.ty.dequantize(b, o);
        }
    }
}

impl Store for QKv {
    fn shape(&self) -> (usize, usize) {
        (self.kv_heads, self.head_dim)
    }
    fn held(&self) -> usize {
        self.len()
    }
    #[inline(always)]
    fn key_block(&self, b: usize, g: usize, kt: &mut [f32]) {
        // One block of 32 at a time, on the stack: this runs for every
        // block of keys of every query task, too often to allocate in.
        let (hb, bb) = (self.head_bytes(), self.ty.block_bytes());
        let len = self.len();
        let mut tmp = [0f32; BLOCK];
        for jj in 0..KEYS {
            let p = b * KEYS + jj;
            if p >= len {
                for x in 0..self.head_dim {
                    kt[x * KEYS + jj] = 0.0;
                }
                continue;
            }
            let at = (p * self.kv_heads + g) * hb;
            for (c, blk) in self.k[at..at + hb].chunks_exact(bb).enumerate() {
                self.ty.dequantize(blk, &mut tmp);
                for (x, &val) in tmp.iter().enumerate() {
                    kt[(c * BLOCK + x) * KEYS + jj] = val;
                }
            }
        }
    }
    #[inline(always)]
    fn values(&self, j0: usize, j1: usize, g: usize, buf: &mut [f32]) {
        for (j, dst) in (j0..j1).zip(buf.chunks_exact_mut(self.head_dim)) {
            self.row(&self.v, j, g, dst);
        }
    }
    fn queries(&self, q: &[f32]) -> Vec<f32> {
        // Rotated as the keys are, and kept in f32: ggml rounds them to
        // q8_0 for its integer dot products, an error of its own on top of
        // the keys' that this float product need not add.
        let mut rotated = q.to_vec();
        for row in rotated.chunks_exact_mut(self.head_dim) {
            rotate(row, self.rot_k);
        }
        rotated
    }
}

/// [`super::attend`] over a block-quantized cache.
pub fn attend_quant(
    q: &[f32],
    heads: usize,
    t: usize,
    kv: &QKv,
    pos: usize,
    scale: f32,
    window: Option<usize>,
) -> Result<Vec<f32>, String> {
    let scores = Scores {
        scale,
        window,
        sinks: None,
    };
    attend_quant_with(q, heads, t, kv, pos, scores)
}

/// [`attend_quant`] with sinks (see [`Scores`]).
pub fn attend_quant_with(
    q: &[f32],
    heads: usize,
    t: usize,
    kv: &QKv,
    pos: usize,
    scores: Scores<'_>,
) -> Result<Vec<f32>, String> {
    if scores.sinks.is_some() && !kv.k_centre.is_empty() {
        return Err("a cache with centred keys cannot take sinks".into());
    }
    let mut out = attend_here(q, heads, t, kv, pos, scores)?;
    // The values were rotated: rotate their weighted sums back.
    for row in out.chunks_exact_mut(kv.head_dim) {
        rotate(row, kv.rot_v);
    }
    Ok(out)
}

/// Applies the orthonormal Walsh-Hadamard transform (Sylvester's order, its
/// own inverse) to each chunk of `n` values of `x`; nothing when `n` is 0.
fn rotate(x: &mut [f32], n: usize) {
    if n == 0 {
        return;
    }
    let norm = 1.0 / (n as f32).sqrt();
    for chunk in x.chunks_exact_mut(n) {
        let mut h = 1;
        while h < n {
            for i in (0..n).step_by(2 * h) {
                for j in i..i + h {
                    let (a, b) = (chunk[j], chunk[j + h]);
                    chunk[j] = a + b;
                    chunk[j + h] = a - b;
                }
            }
            h *= 2;
        }
        for v in chunk.iter_mut() {
            *v *= norm;
        }
    }
}
