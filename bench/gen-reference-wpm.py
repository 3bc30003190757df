#!/usr/bin/env python3
"""Regenerates tests/fixtures/llamacpp_wpm_tokens.json: the token ids
llama.cpp's WordPiece tokenizer (`llm_tokenizer_wpm`) gives a set of
sentences, on the vocabulary `llmpm-gen-gguf --arch bert --vocab N` writes
(bert-base-uncased's layout, phantom-space pieces). For each sentence: the
ids with [CLS]/[SEP] and special tokens parsed (as llama-embedding
tokenizes), the ids of the plain text, and llama_detokenize of the first.
daemon/src/tokenizer/tests.rs compares ours.

usage: bench/gen-reference-wpm.py   (LLAMA_CPP_DIR: default target/llama.cpp; LLMPM_FIXTURES_DIR;
its bin/llmpm-tokenize is bench/llamacpp/tokenize.cpp, built by bench/build-llamacpp.sh)
"""
import json
import os
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LLAMA = os.environ.get("LLAMA_CPP_DIR", os.path.join(ROOT, "target/llama.cpp"))
PROBE = os.path.join(LLAMA, "bin/llmpm-tokenize")
GEN = os.path.join(ROOT, "target/debug/llmpm-gen-gguf")
# LLMPM_FIXTURES_DIR: where the fixture is written (bench/check-fixtures.sh).
OUT = os.path.join(os.environ.get("LLMPM_FIXTURES_DIR", os.path.join(ROOT, "tests/fixtures")),
                   "llamacpp_wpm_tokens.json")
VOCAB = 4000

SENTENCES = [
    "hello world",
    "Hello, World! The quick brown fox jumps over the lazy dog.",
    "",
    "   ",
    "A llama is an animal that lives in the hills and eats grass.",
    "Why is the sky blue?",
    "embedding models read documents; search finds them.",
    "don't it's I'm we're they've you'll she'd",
    "x ' y",
    "U.S.A. e-mail a+b=c $100 50% #tag @user (parens) [brackets] {braces} <angle> ~tilde^ `tick` |pipe|",
    "Café naïve Ångström résumé Zoë façade jalapeño",
    "Tiếng Việt có dấu",
    "İstanbul ΑΘΗΝΑ Ωmega \u2126hm MOSCOW Москва",
    "ǅemal ﬁne ﬂower",
    "中文分词测试：我们在北京。",
    "日本語のテキストです",
    "한국어 문장입니다",
    "مَرْحَبًا بالعالم",
    "नमस्ते दुनिया",
    "ภาษาไทย",
    "emoji 🙂 and symbols © ® ™ € £ ¥ → ∑",
    "ellipsis… «quoted» — dash – “curly” ‘single’ ¿qué? ¡sí!",
    "tabs\tand\nnewlines\r\nand\u00a0nbsp\u3000ideographic\u2028line",
    "zero\u200bwidth\u200djoiner\ufeffbom soft\u00adhyphen",
    "control\x01chars\x1f and \x7f del \x00 nul \ufffd replacement",
    "[CLS] text with [SEP] and [MASK] and [UNK] [PAD] [unused0] written in",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "qwertyzxcv xyzzy bazooka",
    "123 4567 89.01 1,000,000 3rd 21st",
    "the the the the the the the the the the the the the the the the",
    "retrieval of texts with vector embeddings is fast",
    "CAPS LOCK IS ON",
    "combining a\u0301 e\u0308 n\u0303 marks",
    "hello   world  \n\n  spaced",
    "ends with spaces and a period .",
    "a ' b ' c 's 'm 're 've 'll 'd 't",
]


def main():
    with tempfile.TemporaryDirectory() as work:
        path = os.path.join(work, "wp.gguf")
        subprocess.run([GEN, "--out", path, "--arch", "bert", "--embd", "64", "--heads", "2",
                        "--kv-heads", "2", "--layers", "1", "--ff", "128", "--vocab", str(VOCAB),
                        "--ctx", "512"], check=True)
        stdin = "".join(s.encode("utf-8").hex() + "\n" for s in SENTENCES)
        r = subprocess.run([PROBE, path], input=stdin, capture_output=True, text=True, check=True)
    lines = r.stdout.splitlines()
    assert len(lines) == len(SENTENCES), r.stderr

    def ids(field):
        return [int(x) for x in field.split(",")] if field else []

    cases = []
    for text, line in zip(SENTENCES, lines):
        special, plain, decoded = line.split("\t")
        cases.append({"text": text, "ids": ids(special), "plain": ids(plain),
                      "decoded": bytes.fromhex(decoded).decode("utf-8")})
    out = {"_about": "Token ids from llama.cpp's WordPiece tokenizer (llama-cpp-python 0.3.36's, "
                     "bench/llamacpp/tokenize.cpp) on the vocabulary of `llmpm-gen-gguf --arch bert "
                     "--vocab <vocab>`: `ids` with [CLS]/[SEP] and specials parsed, `plain` without, "
                     "`decoded` = llama_detokenize(ids). Regenerate: bench/gen-reference-wpm.py",
           "vocab": VOCAB, "cases": cases}
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
