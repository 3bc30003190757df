//! Tiny BERT-family encoders (`bert`, `nomic-bert`) as llama.cpp's
//! converter writes them: a WordPiece vocabulary in its phantom-space form
//! (`▁word` starts a word, `piece` continues one; `[CLS]`, `[SEP]` at
//! bert-base-uncased's ids), learned
//! position embeddings and biases (`bert`) or fused QKV, SwiGLU and rotary
//! positions (`nomic-bert`), post-norm LayerNorms with biases; with rank
//! pooling (4), a reranker's classification head (`cls`, `cls.output`).

use std::collections::BTreeSet;

use super::super::writer::GgufWriter;
use super::super::{GgmlType, GgufError, Value};
use super::{random_values, TinyArch, TinyLlamaSpec};
use super::{TOKEN_TYPE_CONTROL, TOKEN_TYPE_NORMAL};

/// The special tokens, at bert-base-uncased's ids: `[PAD]` 0, `[UNK]` 100,
/// `[CLS]` 101, `[SEP]` 102, `[MASK]` 103 (ids 1 to 99 are `[unusedN]`),
/// which are also llama.cpp's defaults for a WordPiece vocabulary.
pub const BERT_SPECIAL_TOKENS: [(&str, u32); 5] = [
    ("[PAD]", 0),
    ("[UNK]", 100),
    ("[CLS]", 101),
    ("[SEP]", 102),
    ("[MASK]", 103),
];

/// Whole words (lower case, as uncased BERT), most common first.
const WORDS: &str = "the of and to in a is that for it as was with be by on not he i this \
are or his from at which but have an had they you were their one all we can her has there \
been if more when will would who so no out up into do only time new some could them than \
other its about first then also after two what way our like made over did many may any me \
these year most people such where she very just through how now even those well back much \
before good see must own right still work life day world long because great make last here \
between both under never three found few while same another old each small state part go \
know take place case hand high since against help however system without place set water \
word number thing night point home read hello today fine thank you model reads question \
answers sentence embedding embeddings search document documents query quick brown fox jumps \
lazy dog llama llamas animal animals lives live hills eats grass cat sat mat sky blue green \
red why because language languages machine learning vector vectors retrieval text texts \
token tokens data fast slow city river mountain sea sun moon star food music book books \
school teacher student computer phone car road house tree trees bird birds fish";

/// Continuation pieces (`##ing` in vocab.txt, `ing` in the GGUF).
const SUFFIXES: &str = "s es ed ing ly er ers est ion ions tion tions ment ments ness able \
ful less al ic ive ous ity ize ized izes ish ist ists y en ure ance ence";

/// Letters beyond ASCII that uncased BERT keeps after stripping accents:
/// Greek, Cyrillic, kana (no accents), CJK ideographs (each its own word).
const OTHER_CHARS: &str = "αβγδεζηθικλμνξοπρστυφχψωабвгдежзийклмнопрстуфхцчшщыьэюя\
ßæøłðþあいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわをん\
的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她\
里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老\
从动两长知民样现分将外但身些与高意进把法此实回二理美点月明其种声全工己话儿者向情部正名定女问力机\
给等几很业最间新什打便位因重被走电四第门相次东政海口使教西再平真听世气信北少关并内加化由却代军产\
入先山五太水万市眼体别处总才场师书比住员九笑性通目华报立马命张活难神数件安表原车白应路期叫死常提\
感金何更反合放做系计或司利受光王果亲界及今京务制解各任至清物台象记边共风战干接它许八特觉望直服毛\
林题建南度统色字请交爱让认算论百吃义科怎元社术结六功指思非流每青管夫连远资队跟带花快条院变联言权\
往展该领传近留红治决周保达办运武半候七必城父强步完革深区即求品士转量空甚众技轻程告江语英基派满式\
李息写呢识极令黄德收脸钱党倒未持取设始版双历越史商千片容研像找友孩站广改议形委早房音火际则首单据\
导影失拿网香似斯专石若兵弟谁校读志飞观争究包组造落视济喜离虽坐集编宝谈府拉黑且随格尽剑讲布杀微怕\
母调局根曾准团段终乐切级克精哪官示冷域";

/// Consonants and vowels of the made-up words that fill a vocabulary to
/// its size (real vocabularies hold ~30k pieces; these keep the longest
/// match honest without shipping one).
const ONSETS: [&str; 20] = [
    "b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z", "st",
    "tr",
];
const VOWELS: [&str; 6] = ["a", "e", "i", "o", "u", "ou"];

/// A WordPiece vocabulary of `n_vocab` tokens in llama.cpp's phantom-space
/// form and bert-base-uncased's layout: `[PAD]`, `[unused0..98]`, `[UNK]`,
/// `[CLS]`, `[SEP]`, `[MASK]`, then every printable lower-case ASCII
/// character as a word (`▁a`) and as a continuation (`a`), whole words,
/// suffix pieces, other scripts' letters in both forms, then made-up
/// syllable words and pieces up to the size (then `▁[unusedN]`).
pub(crate) fn wordpiece_vocab(n_vocab: u32) -> (Vec<String>, Vec<i32>) {
    let n = n_vocab as usize;
    let mut tokens: Vec<String> = Vec::with_capacity(n);
    let mut types: Vec<i32> = Vec::with_capacity(n);
    for i in 0..104u32 {
        match BERT_SPECIAL_TOKENS.iter().find(|(_, id)| *id == i) {
            Some((name, _)) => {
                tokens.push((*name).into());
                types.push(TOKEN_TYPE_CONTROL);
            }
            // Not added tokens in HF's tokenizer: normal, phantom-spaced.
            None => {
                tokens.push(format!("\u{2581}[unused{}]", i - 1));
                types.push(TOKEN_TYPE_NORMAL);
            }
        }
    }
    let mut seen: BTreeSet<String> = tokens.iter().cloned().collect();
    let ascii = (b'!'..=b'~')
        .filter(|c| !c.is_ascii_uppercase())
        .map(char::from);
    let other = OTHER_CHARS.chars();
    let word = |w: &str| format!("\u{2581}{w}");
    let syllables = || {
        ONSETS
            .iter()
            .flat_map(|o| VOWELS.iter().map(move |v| format!("{o}{v}")))
    };
    let made_up = syllables().flat_map(move |a| {
        syllables().flat_map(move |b| {
            let w = format!("{a}{b}");
            [format!("\u{2581}{w}"), w]
        })
    });
    let pieces = ascii
        .clone()
        .map(|c| word(&c.to_string()))
        .chain(ascii.map(String::from))
        .chain(WORDS.split_whitespace().map(word))
        .chain(SUFFIXES.split_whitespace().map(String::from))
        .chain(other.clone().map(|c| word(&c.to_string())))
        .chain(other.map(String::from))
        .chain(syllables().flat_map(|s| [word(&s), s]))
        .chain(made_up)
        // Past every made-up word (~30k pieces): more unused slots.
        .chain((99..).map(|i| format!("\u{2581}[unused{i}]")));
    for p in pieces {
        if tokens.len() >= n {
            break;
        }
        if seen.insert(p.clone()) {
            tokens.push(p);
            types.push(TOKEN_TYPE_NORMAL);
        }
    }
    tokens.truncate(n);
    types.truncate(n);
    (tokens, types)
}

/// The fewest tokens a tiny encoder's vocabulary has (the special region,
/// the ASCII characters in both forms).
pub(crate) const MIN_BERT_VOCAB: u32 = 104 + 2 * 68;

/// Writes the encoder `spec` describes (its arch `Bert` or `NomicBert`).
pub(crate) fn build(spec: &TinyLlamaSpec) -> Result<GgufWriter, GgufError> {
    let arch = spec.arch.name();
    let k = |s: &str| format!("{arch}.{s}");
    let nomic = spec.arch == TinyArch::NomicBert;
    let mut w = GgufWriter::new();
    w.add_kv("general.architecture", arch)?;
    w.add_kv("general.name", format!("tiny-{arch}"))?;
    w.add_kv(k("context_length"), spec.context_length)?;
    w.add_kv(k("embedding_length"), spec.n_embd)?;
    w.add_kv(k("feed_forward_length"), spec.n_ff)?;
    w.add_kv(k("block_count"), spec.n_layer)?;
    w.add_kv(k("attention.head_count"), spec.n_head)?;
    w.add_kv(k("attention.layer_norm_epsilon"), 1e-12f32)?;
    w.add_kv("general.file_type", spec.ftype.as_u32())?;
    w.add_kv(k("attention.causal"), false)?;
    // all-minilm and nomic-embed-text pool by mean (1); bge and mxbai by CLS (2).
    w.add_kv(k("pooling_type"), spec.pooling.unwrap_or(1))?;
    if nomic {
        w.add_kv(k("rope.freq_base"), 1000.0f32)?;
    }
    let (tokens, types) = wordpiece_vocab(spec.n_vocab);
    w.add_kv("tokenizer.ggml.model", "bert")?;
    w.add_kv("tokenizer.ggml.token_type_count", 2u32)?;
    w.add_kv("tokenizer.ggml.tokens", tokens)?;
    w.add_kv("tokenizer.ggml.token_type", types)?;
    // As gguf-py's SpecialVocab writes an uncased BERT's from its
    // `[CLS] $A [SEP]` template: `[CLS]` is also BOS, `[SEP]` (the last
    // token) also EOS and added; no separate SEP between a pair's halves.
    w.add_kv("tokenizer.ggml.pre", "default")?;
    w.add_kv("tokenizer.ggml.bos_token_id", 101u32)?;
    w.add_kv("tokenizer.ggml.eos_token_id", 102u32)?;
    w.add_kv("tokenizer.ggml.unknown_token_id", 100u32)?;
    w.add_kv("tokenizer.ggml.seperator_token_id", 102u32)?;
    w.add_kv("tokenizer.ggml.padding_token_id", 0u32)?;
    w.add_kv("tokenizer.ggml.cls_token_id", 101u32)?;
    w.add_kv("tokenizer.ggml.mask_token_id", 103u32)?;
    w.add_kv("tokenizer.ggml.add_bos_token", true)?;
    w.add_kv("tokenizer.ggml.add_eos_token", true)?;
    w.add_kv("tokenizer.ggml.add_sep_token", false)?;
    w.add_kv("general.quantization_version", Value::U32(2))?;

    let wt = spec.weight_type().unwrap_or(GgmlType::F32);
    let (e, ff, v) = (
        u64::from(spec.n_embd),
        u64::from(spec.n_ff),
        u64::from(spec.n_vocab),
    );
    let seed = spec.seed;
    let matrix = |w: &mut GgufWriter, name: &str, ne0: u64, ne1: u64| {
        let values = random_values(seed, name, ne0 * ne1, |u| u / (ne0 as f32).sqrt());
        w.add_tensor_f32(name, &[ne0, ne1], wt, &values)
    };
    let vector = |w: &mut GgufWriter, name: &str, n: u64, base: f32| {
        let values = random_values(seed, name, n, |u| base + 0.1 * u);
        w.add_tensor_f32(name, &[n], GgmlType::F32, &values)
    };
    let norm = |w: &mut GgufWriter, name: &str| -> Result<(), GgufError> {
        vector(w, &format!("{name}.weight"), e, 1.0)?;
        vector(w, &format!("{name}.bias"), e, 0.0)
    };
    matrix(&mut w, "token_embd.weight", e, v)?;
    let table = |w: &mut GgufWriter, name: &str, rows: u64| {
        let values = random_values(seed, name, e * rows, |u| 0.5 * u);
        w.add_tensor_f32(name, &[e, rows], GgmlType::F32, &values)
    };
    table(&mut w, "token_types.weight", 2)?;
    if !nomic {
        table(
            &mut w,
            "position_embd.weight",
            u64::from(spec.context_length),
        )?;
    }
    norm(&mut w, "token_embd_norm")?;
    for i in 0..spec.n_layer {
        let n = |p: &str| format!("blk.{i}.{p}.weight");
        let b = |p: &str| format!("blk.{i}.{p}.bias");
        if nomic {
            matrix(&mut w, &n("attn_qkv"), e, 3 * e)?;
            matrix(&mut w, &n("attn_output"), e, e)?;
        } else {
            for p in ["attn_q", "attn_k", "attn_v"] {
                matrix(&mut w, &n(p), e, e)?;
                vector(&mut w, &b(p), e, 0.0)?;
            }
            matrix(&mut w, &n("attn_output"), e, e)?;
            vector(&mut w, &b("attn_output"), e, 0.0)?;
        }
        norm(&mut w, &format!("blk.{i}.attn_output_norm"))?;
        matrix(&mut w, &n("ffn_up"), e, ff)?;
        if nomic {
            matrix(&mut w, &n("ffn_gate"), e, ff)?;
        } else {
            vector(&mut w, &b("ffn_up"), ff, 0.0)?;
        }
        matrix(&mut w, &n("ffn_down"), ff, e)?;
        if !nomic {
            vector(&mut w, &b("ffn_down"), e, 0.0)?;
        }
        norm(&mut w, &format!("blk.{i}.layer_output_norm"))?;
    }
    if spec.pooling == Some(4) {
        // A cross-encoder reranker (rank pooling): the classification head
        // llama.cpp reads, dense + tanh then one logit (`cls.output`). In
        // F32 whatever the ftype: with F16 head weights both sides round
        // the [CLS] state to f16 first, and the encoders' 1e-5 differences
        // flip some of those roundings, which moves the score by about
        // 1e-4, the tolerance of the reference check.
        let head = |w: &mut GgufWriter, name: &str, ne0: u64, ne1: u64| {
            let values = random_values(seed, name, ne0 * ne1, |u| u / (ne0 as f32).sqrt());
            w.add_tensor_f32(name, &[ne0, ne1], GgmlType::F32, &values)
        };
        head(&mut w, "cls.weight", e, e)?;
        vector(&mut w, "cls.bias", e, 0.0)?;
        head(&mut w, "cls.output.weight", e, 1)?;
        vector(&mut w, "cls.output.bias", 1, 0.0)?;
    }
    Ok(w)
}
