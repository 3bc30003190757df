// Embeddings with llama.cpp from fixed token ids, for the reference fixture
// (tests/fixtures/llamacpp_embed.json): every sentence in one batch, each its
// own sequence (as llama-embedding batches its prompts), pooled as the model
// says and L2-normalised (llama-embedding's default --embd-normalize 2).
//
// usage: llmpm-embed MODEL.gguf ID,ID,...[;ID,ID,...] [N_THREADS]
// prints: [[f, f, ...], ...] on stdout, one embedding per sentence
// (LLMPM_EMBED_ROUNDS=N: the batch N more times, each run's time on stderr)
//
// Rank mode, for a reranker (pooling_type rank; tests/fixtures/llamacpp_rerank.json):
// usage: llmpm-embed MODEL.gguf --rank QUERY_IDS;DOC_IDS[;DOC_IDS...] [N_THREADS]
// (ids without special tokens) lays each query/document pair out as
// llama-server's format_prompt_rerank does (BOS, query, EOS, SEP, document,
// EOS by the vocabulary's add_* flags; EOS falls back to SEP) and prints
// {"pairs": [[id, ...], ...], "scores": [[f, ...], ...]}: each pair's tokens
// and its rank-pooled head logits, unnormalised (the first is the score).
#include "llama.h"

#include <cmath>
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
    const bool rank = argc > 2 && std::string(argv[2]) == "--rank";
    if (rank) {  // drop `--rank`: MODEL then IDS as in the other mode
        argv[2] = argv[1];
        argv++;
        argc--;
    }
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL.gguf ID,ID[;ID,ID] [N_THREADS]\n", argv[0]);
        return 2;
    }
    std::vector<std::vector<llama_token>> seqs(1);
    for (const char * p = argv[2]; *p; ) {
        if (*p == ';') { seqs.emplace_back(); p++; continue; }
        if (*p == ',') { p++; continue; }
        char * end;
        seqs.back().push_back((llama_token) strtol(p, &end, 10));
        p = end;
    }
    const int n_threads = argc > 3 ? atoi(argv[3]) : 2;
    llama_log_set(quiet_log, nullptr);
    llama_backend_init();
    llama_model_params mparams = llama_model_default_params();
    mparams.n_gpu_layers = 0;
    mparams.use_extra_bufts = false;
    llama_model * model = llama_model_load_from_file(argv[1], mparams);
    if (!model) { fprintf(stderr, "failed to load %s\n", argv[1]); return 1; }
    if (rank) {
        // As format_prompt_rerank (tools/server/server-common.cpp) without a rerank template.
        const llama_vocab * vocab = llama_model_get_vocab(model);
        llama_token eos = llama_vocab_eos(vocab);
        if (eos == LLAMA_TOKEN_NULL) eos = llama_vocab_sep(vocab);
        const std::vector<llama_token> query = seqs[0];
        std::vector<std::vector<llama_token>> pairs;
        for (size_t d = 1; d < seqs.size(); d++) {
            std::vector<llama_token> p;
            if (llama_vocab_get_add_bos(vocab)) p.push_back(llama_vocab_bos(vocab));
            p.insert(p.end(), query.begin(), query.end());
            if (llama_vocab_get_add_eos(vocab)) p.push_back(eos);
            if (llama_vocab_get_add_sep(vocab)) p.push_back(llama_vocab_sep(vocab));
            p.insert(p.end(), seqs[d].begin(), seqs[d].end());
            if (llama_vocab_get_add_eos(vocab)) p.push_back(eos);
            pairs.push_back(p);
        }
        seqs = pairs;
    }
    size_t total = 0;
    for (auto & s : seqs) total += s.size();
    llama_context_params cparams = llama_context_default_params();
    cparams.embeddings = true;
    // One micro-batch of the whole (256-padded, as llama.cpp pads n_ctx) context.
    const uint32_t n = (total + 8 + 255) / 256 * 256;
    cparams.n_ctx = n;
    cparams.n_batch = n;
    cparams.n_ubatch = n;
    cparams.n_seq_max = seqs.size();
    cparams.n_threads = n_threads;
    cparams.n_threads_batch = n_threads;
    cparams.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    llama_context * ctx = llama_init_from_model(model, cparams);
    if (!ctx) { fprintf(stderr, "failed to create context\n"); return 1; }
    llama_batch batch = llama_batch_init(total, 0, 1);
    for (size_t s = 0; s < seqs.size(); s++) {
        for (size_t i = 0; i < seqs[s].size(); i++) {
            int k = batch.n_tokens++;
            batch.token[k] = seqs[s][i];
            batch.pos[k] = i;
            batch.n_seq_id[k] = 1;
            batch.seq_id[k][0] = s;
            batch.logits[k] = i + 1 == seqs[s].size();
        }
    }
    if (llama_decode(ctx, batch) != 0) { fprintf(stderr, "llama_decode failed\n"); return 1; }
    // Throughput (bench/embed_speed.py): LLMPM_EMBED_ROUNDS more runs of the
    // same batch, each one's milliseconds on stderr ("decode_ms a,b,...").
    if (const char * r = getenv("LLMPM_EMBED_ROUNDS")) {
        fprintf(stderr, "decode_ms ");
        for (int i = 0, n = atoi(r); i < n; i++) {
            const int64_t t0 = llama_time_us();
            if (llama_decode(ctx, batch) != 0) { fprintf(stderr, "llama_decode failed\n"); return 1; }
            fprintf(stderr, i ? ",%.3f" : "%.3f", (llama_time_us() - t0) / 1000.0);
        }
        fprintf(stderr, "\n");
    }
    const int n_embd = llama_model_n_embd(model);
    if (rank) {
        const int n_out = (int) llama_model_n_cls_out(model);
        printf("{\"pairs\": [");
        for (size_t s = 0; s < seqs.size(); s++) {
            printf(s ? ",[" : "[");
            for (size_t i = 0; i < seqs[s].size(); i++) printf(i ? ",%d" : "%d", seqs[s][i]);
            printf("]");
        }
        printf("], \"scores\": [");
        for (size_t s = 0; s < seqs.size(); s++) {
            const float * e = llama_get_embeddings_seq(ctx, s);
            if (!e) { fprintf(stderr, "no scores for pair %zu\n", s); return 1; }
            printf(s ? ",[" : "[");
            for (int i = 0; i < n_out; i++) printf(i ? ",%.9g" : "%.9g", e[i]);
            printf("]");
        }
        printf("]}\n");
        llama_batch_free(batch);
        llama_free(ctx);
        llama_model_free(model);
        llama_backend_free();
        return 0;
    }
    printf("[");
    for (size_t s = 0; s < seqs.size(); s++) {
        const float * e = llama_get_embeddings_seq(ctx, s);
        if (!e) { fprintf(stderr, "no embedding for sequence %zu\n", s); return 1; }
        double sum = 0;
        for (int i = 0; i < n_embd; i++) sum += (double) e[i] * e[i];
        const double norm = std::sqrt(sum);
        printf(s ? ",[" : "[");
        for (int i = 0; i < n_embd; i++) printf(i ? ",%.7g" : "%.7g", norm > 0 ? e[i] / norm : e[i]);
        printf("]");
    }
    printf("]\n");
    llama_batch_free(batch);
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
