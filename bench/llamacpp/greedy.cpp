// Greedy decoding with llama.cpp from fixed token ids, for the reference
// fixture (tests/fixtures/llamacpp_greedy.json). Token ids in, token ids out,
// so tokenizer differences cannot hide a model difference.
//
// usage: llmpm-greedy MODEL.gguf N_PREDICT ID[,ID...] [N_THREADS]
// prints: {"prompt":[...],"expected":[...],"top":[[[id,logit]xK] per step]} on stdout,
//   and "load_ms N" on stderr (model load and context creation)
// LLMPM_GREEDY_TOPK=K: how many (id, logit) pairs per step (default 4, what
//   the tiny-model fixtures hold; the real-model fixture keeps 8).
// LLMPM_GREEDY_REPACK=1: llama.cpp's default weight repacking (as llama-bench
//   and llama-server run), for load-time comparisons; the fixture never sets it.
// LLMPM_GREEDY_CTX=N: a context of N tokens (default: the prompt and the
//   predictions), for models whose RoPE depends on it (Phi-3's longrope).
#include "llama.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

static void quiet_log(enum ggml_log_level level, const char * text, void *) {
    if (level >= GGML_LOG_LEVEL_ERROR) {
        fputs(text, stderr);
    }
}

int main(int argc, char ** argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL.gguf N_PREDICT ID[,ID...] [N_THREADS]\n", argv[0]);
        return 2;
    }
    const char * path = argv[1];
    const int n_predict = atoi(argv[2]);
    std::vector<llama_token> prompt;
    {
        std::string ids = argv[3];
        size_t pos = 0;
        while (pos <= ids.size()) {
            size_t comma = ids.find(',', pos);
            if (comma == std::string::npos) comma = ids.size();
            prompt.push_back((llama_token) atoi(ids.substr(pos, comma - pos).c_str()));
            pos = comma + 1;
        }
    }
    const int n_threads = argc > 4 ? atoi(argv[4]) : 2;
    const char * topk_env = getenv("LLMPM_GREEDY_TOPK");
    const int n_top = topk_env && atoi(topk_env) > 0 ? atoi(topk_env) : 4;

    llama_log_set(quiet_log, nullptr);
    llama_backend_init();

    const auto t_load = std::chrono::steady_clock::now();
    llama_model_params mparams = llama_model_default_params();
    mparams.n_gpu_layers = 0;
    // The plain CPU kernels: no weight repacking (and no AMX, which this
    // sandbox's kernel does not enable: SIGILL) so the reference is the
    // straightforward ggml arithmetic.
    const char * repack = getenv("LLMPM_GREEDY_REPACK");
    mparams.use_extra_bufts = repack && repack[0] == '1';
    llama_model * model = llama_model_load_from_file(path, mparams);
    if (!model) {
        fprintf(stderr, "failed to load %s\n", path);
        return 1;
    }
    const llama_vocab * vocab = llama_model_get_vocab(model);
    const int n_vocab = llama_vocab_n_tokens(vocab);

    llama_context_params cparams = llama_context_default_params();
    cparams.n_ctx = prompt.size() + n_predict + 8;
    const char * ctx_env = getenv("LLMPM_GREEDY_CTX");
    if (ctx_env && atoi(ctx_env) > (int) cparams.n_ctx) {
        cparams.n_ctx = atoi(ctx_env);
    }
    cparams.n_batch = prompt.size() + n_predict + 8;
    cparams.n_threads = n_threads;
    cparams.n_threads_batch = n_threads;
    // Attention in F32 (llama.cpp's defaults round K/V to F16 and use flash
    // attention with F16 accumulation): the reference should be the model's
    // arithmetic, not a cache format.
    cparams.type_k = GGML_TYPE_F32;
    cparams.type_v = GGML_TYPE_F32;
    cparams.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    // LLMPM_GREEDY_KV=f16|q8_0|q4_0: that cache type (with flash attention,
    // which quantized caches need), for bench/kv_quant checks.
    if (const char * kv = getenv("LLMPM_GREEDY_KV")) {
        const std::string t = kv;
        const ggml_type ty = t == "q8_0" ? GGML_TYPE_Q8_0 : t == "q4_0" ? GGML_TYPE_Q4_0 : GGML_TYPE_F16;
        cparams.type_k = ty;
        cparams.type_v = ty;
        cparams.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_ENABLED;
    }
    llama_context * ctx = llama_init_from_model(model, cparams);
    if (!ctx) {
        fprintf(stderr, "failed to create context\n");
        return 1;
    }
    fprintf(stderr, "load_ms %.1f\n",
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t_load).count());

    std::vector<llama_token> out;
    std::vector<std::string> tops;
    std::vector<llama_token> batch_tokens = prompt;
    for (int i = 0; i < n_predict; i++) {
        llama_batch batch = llama_batch_get_one(batch_tokens.data(), batch_tokens.size());
        if (llama_decode(ctx, batch) != 0) {
            fprintf(stderr, "llama_decode failed at step %d\n", i);
            return 1;
        }
        const float * logits = llama_get_logits_ith(ctx, -1);
        int best = 0;
        for (int t = 1; t < n_vocab; t++) {
            if (logits[t] > logits[best]) best = t;
        }
        // The top K (id, logit) of each step, so the test can compare
        // logits on the same context, not only the argmax.
        std::vector<int> top;
        for (int k = 0; k < n_top && k < n_vocab; k++) {
            int b = -1;
            for (int t = 0; t < n_vocab; t++) {
                bool taken = false;
                for (int u : top) taken |= (u == t);
                if (!taken && (b < 0 || logits[t] > logits[b])) b = t;
            }
            top.push_back(b);
        }
        std::string line = "[";
        for (size_t k = 0; k < top.size(); k++) {
            char buf[64];
            snprintf(buf, sizeof buf, "%s[%d,%.6f]", k ? "," : "", top[k], logits[top[k]]);
            line += buf;
        }
        tops.push_back(line + "]");
        out.push_back(best);
        batch_tokens.assign(1, best);
    }

    printf("{\"prompt\":[");
    for (size_t i = 0; i < prompt.size(); i++) printf(i ? ",%d" : "%d", prompt[i]);
    printf("],\"expected\":[");
    for (size_t i = 0; i < out.size(); i++) printf(i ? ",%d" : "%d", out[i]);
    printf("],\"top\":[");
    for (size_t i = 0; i < tops.size(); i++) printf(i ? ",%s" : "%s", tops[i].c_str());
    printf("]}\n");

    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
