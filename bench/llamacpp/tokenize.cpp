// Token ids from llama.cpp's own tokenizer, for the tokenizer fixtures
// (tests/fixtures/llamacpp_wpm_tokens.json, bench/gen-reference-wpm.py):
// loads only the vocabulary of MODEL.gguf and, for each line of stdin (a
// sentence, hex-encoded UTF-8 so that any byte can be in it), prints
//   IDS_SPECIAL <TAB> IDS_PLAIN <TAB> HEX_TEXT
// IDS_SPECIAL: add_special and parse_special (as llama-embedding tokenizes);
// IDS_PLAIN: neither; HEX_TEXT: llama_detokenize of IDS_SPECIAL (specials
// kept, as text). Ids are comma-separated.
//
// usage: llmpm-tokenize MODEL.gguf < sentences.hex
#include "llama.h"

#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

static void quiet_log(enum ggml_log_level level, const char * text, void *) {
    if (level >= GGML_LOG_LEVEL_ERROR) {
        fputs(text, stderr);
    }
}

static std::string unhex(const std::string & h) {
    std::string out;
    for (size_t i = 0; i + 1 < h.size(); i += 2) {
        out.push_back((char) std::stoi(h.substr(i, 2), nullptr, 16));
    }
    return out;
}

static void print_ids(const std::vector<llama_token> & ids) {
    for (size_t i = 0; i < ids.size(); i++) printf(i ? ",%d" : "%d", ids[i]);
}

static std::vector<llama_token> tokenize(const llama_vocab * vocab, const std::string & text, bool special) {
    std::vector<llama_token> ids(text.size() + 8);
    int n = llama_tokenize(vocab, text.data(), (int32_t) text.size(), ids.data(), (int32_t) ids.size(), special, special);
    if (n < 0) {
        ids.resize(-n);
        n = llama_tokenize(vocab, text.data(), (int32_t) text.size(), ids.data(), (int32_t) ids.size(), special, special);
    }
    ids.resize(n < 0 ? 0 : n);
    return ids;
}

int main(int argc, char ** argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf < sentences.hex\n", argv[0]);
        return 2;
    }
    llama_log_set(quiet_log, nullptr);
    llama_backend_init();
    llama_model_params mparams = llama_model_default_params();
    mparams.vocab_only = true;
    llama_model * model = llama_model_load_from_file(argv[1], mparams);
    if (!model) { fprintf(stderr, "failed to load %s\n", argv[1]); return 1; }
    const llama_vocab * vocab = llama_model_get_vocab(model);
    std::string line;
    while (std::getline(std::cin, line)) {
        const std::string text = unhex(line);
        const auto special = tokenize(vocab, text, true);
        print_ids(special);
        printf("\t");
        print_ids(tokenize(vocab, text, false));
        std::string back(text.size() * 4 + 64, '\0');
        int n = llama_detokenize(vocab, special.data(), (int32_t) special.size(), back.data(), (int32_t) back.size(), false, true);
        if (n < 0) {
            back.resize(-n);
            n = llama_detokenize(vocab, special.data(), (int32_t) special.size(), back.data(), (int32_t) back.size(), false, true);
        }
        back.resize(n < 0 ? 0 : n);
        printf("\t");
        for (unsigned char c : back) printf("%02x", c);
        printf("\n");
    }
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
