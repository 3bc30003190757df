//! End to end: create, list, show, copy and delete through the real `llmpm` and `llmpmd`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use llmpm_tests::{assert_ok, stderr, stdout, TestContext, TinyLlamaSpec};
use serde_json::Value;

const MODELFILE: &str = r#"# a tiny test model
FROM ./tiny.gguf
PARAMETER temperature 0.25
PARAMETER num_ctx 512
PARAMETER stop "<|eot_id|>"
PARAMETER stop "<|end_of_text|>"
TEMPLATE """{{ if .System }}<|start_header_id|>system<|end_header_id|>

{{ .System }}<|eot_id|>{{ end }}<|start_header_id|>user<|end_header_id|>

{{ .Prompt }}<|eot_id|><|start_header_id|>assistant<|end_header_id|>

"""
SYSTEM You are a terse assistant.
LICENSE """Test license, line one.
Line two."""
MESSAGE user Hello
MESSAGE assistant Hi there
"#;

fn list_json(ctx: &TestContext) -> Vec<Value> {
    let out = ctx.cli(&["list", "--json"]);
    assert_ok(&out);
    let v: Value = serde_json::from_str(&stdout(&out)).expect("list --json is JSON");
    v["models"].as_array().cloned().unwrap_or_default()
}

/// `name` created from a generated GGUF of `spec` (a Modelfile of one FROM).
fn create_tiny(ctx: &TestContext, name: &str, spec: &TinyLlamaSpec) {
    ctx.tiny_gguf(&format!("{name}.gguf"), spec);
    let mf = format!("Modelfile.{name}");
    std::fs::write(ctx.work.join(&mf), format!("FROM ./{name}.gguf\n")).unwrap();
    assert_ok(&ctx.cli(&["create", name, "-f", &mf]));
}

/// `llmpm show NAME --json`, parsed.
fn show_json(ctx: &TestContext, name: &str) -> Value {
    let show = ctx.cli(&["show", name, "--json"]);
    assert_ok(&show);
    serde_json::from_str(&stdout(&show)).expect("show --json is JSON")
}

fn find<'a>(models: &'a [Value], name: &str) -> Option<&'a Value> {
    models.iter().find(|m| m["name"] == name)
}

#[test]
fn create_list_show_copy_remove() {
    let ctx = TestContext::started();
    let gguf = ctx.tiny_gguf("tiny.gguf", &TinyLlamaSpec::default());
    let gguf_len = std::fs::metadata(&gguf).unwrap().len();
    std::fs::write(ctx.work.join("Modelfile"), MODELFILE).unwrap();

    let out = ctx.cli(&["create", "m", "-f", "Modelfile"]);
    assert_ok(&out);
    assert!(stderr(&out).contains("success"), "{}", stderr(&out));

    // list: size, id, family, parameter size and quantization from the GGUF.
    let models = list_json(&ctx);
    let m = find(&models, "m:latest").expect("m listed");
    assert!(
        m["size"].as_u64().unwrap() > gguf_len,
        "size counts every layer"
    );
    let digest = m["digest"].as_str().unwrap().to_owned();
    assert_eq!(digest.len(), 64);
    assert_eq!(m["details"]["family"], "llama");
    assert_eq!(m["details"]["format"], "gguf");
    assert_eq!(m["details"]["quantization_level"], "F32");
    assert!(!m["details"]["parameter_size"].as_str().unwrap().is_empty());
    let table = stdout(&ctx.cli(&["list"]));
    assert!(
        table.contains("NAME") && table.contains("m:latest") && table.contains(&digest[..12]),
        "{table}"
    );

    // show: the parts, and a Modelfile that recreates the identical manifest.
    let show = ctx.cli(&["show", "m", "--json"]);
    assert_ok(&show);
    let s: Value = serde_json::from_str(&stdout(&show)).unwrap();
    assert_eq!(s["system"], "You are a terse assistant.");
    assert!(s["template"].as_str().unwrap().contains("{{ .Prompt }}"));
    assert!(s["license"].as_str().unwrap().contains("Line two."));
    assert!(s["parameters"].as_str().unwrap().contains("temperature"));
    assert_eq!(s["messages"].as_array().unwrap().len(), 2);
    assert_eq!(s["model_info"]["general.architecture"], "llama");
    assert_eq!(s["capabilities"], serde_json::json!(["completion"]));
    assert_eq!(m["capabilities"], serde_json::json!(["completion"]));
    let out = ctx.cli(&["show", "m", "--system"]);
    assert_eq!(stdout(&out).trim(), "You are a terse assistant.");

    let mf = ctx.cli(&["show", "m", "--modelfile"]);
    assert_ok(&mf);
    std::fs::write(ctx.work.join("Modelfile.again"), stdout(&mf)).unwrap();
    let blobs_before = ctx.blob_files();
    assert_ok(&ctx.cli(&["create", "again", "-f", "Modelfile.again"]));
    let models = list_json(&ctx);
    assert_eq!(
        find(&models, "again:latest").unwrap()["digest"],
        digest.as_str(),
        "same manifest"
    );
    assert_eq!(ctx.blob_files(), blobs_before, "recreating added no blob");
    assert_ok(&ctx.cli(&["rm", "again"]));

    // cp adds no blob; rm keeps shared blobs until the last user goes.
    assert_ok(&ctx.cli(&["cp", "m", "m2"]));
    assert_eq!(ctx.blob_files(), blobs_before, "cp adds no blob");
    assert_eq!(
        find(&list_json(&ctx), "m2:latest").unwrap()["digest"],
        digest.as_str()
    );
    assert_ok(&ctx.cli(&["rm", "m"]));
    assert_eq!(ctx.blob_files(), blobs_before, "m2 still needs every blob");
    assert!(find(&list_json(&ctx), "m:latest").is_none());
    assert_ok(&ctx.cli(&["rm", "m2"]));
    assert!(ctx.blob_files().is_empty(), "left: {:?}", ctx.blob_files());
    assert!(list_json(&ctx).is_empty());

    // Removing what is not there is a clear error.
    let out = ctx.cli(&["rm", "m2"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not found"), "{}", stderr(&out));
}

#[test]
fn same_weights_stored_once_and_not_uploaded_twice() {
    let ctx = TestContext::started();
    let gguf = ctx.tiny_gguf("tiny.gguf", &TinyLlamaSpec::default());
    let gguf_len = std::fs::metadata(&gguf).unwrap().len();
    std::fs::write(ctx.work.join("A"), "FROM ./tiny.gguf\nSYSTEM one\n").unwrap();
    std::fs::write(ctx.work.join("B"), "FROM ./tiny.gguf\nSYSTEM two\n").unwrap();

    // Route the CLI through a byte-counting relay to the daemon's TCP port.
    let proxy = llmpm_tests::proxy::CountingProxy::start(ctx.port());
    let via_proxy = |args: &[&str]| {
        let mut cmd = ctx.cli_cmd(args);
        cmd.env("LLMPM_HOST", format!("127.0.0.1:{}", proxy.port));
        cmd.output().unwrap()
    };
    assert_ok(&via_proxy(&["create", "a", "-f", "A"]));
    let first = proxy.upstream_bytes();
    assert!(
        first >= gguf_len,
        "first create uploads the weights ({first} < {gguf_len})"
    );
    assert_ok(&via_proxy(&["create", "b", "-f", "B"]));
    let second = proxy.upstream_bytes() - first;
    assert!(
        second < 16 * 1024,
        "second create uploaded {second} bytes; the daemon already had the weights"
    );

    let weights: Vec<_> = ctx
        .blob_files()
        .into_iter()
        .filter(|b| {
            std::fs::metadata(ctx.home.join("blobs/sha256").join(b))
                .unwrap()
                .len()
                == gguf_len
        })
        .collect();
    assert_eq!(weights.len(), 1, "the GGUF is stored once");
}

#[test]
fn create_from_existing_model_overrides_parts() {
    let ctx = TestContext::started();
    ctx.tiny_gguf("tiny.gguf", &TinyLlamaSpec::default());
    std::fs::write(
        ctx.work.join("Base"),
        "FROM ./tiny.gguf\nSYSTEM base\nPARAMETER top_k 7\n",
    )
    .unwrap();
    assert_ok(&ctx.cli(&["create", "base", "-f", "Base"]));
    std::fs::write(
        ctx.work.join("Child"),
        "FROM base\nSYSTEM child\nPARAMETER temperature 0.5\n",
    )
    .unwrap();
    assert_ok(&ctx.cli(&["create", "child", "-f", "Child"]));
    let s: Value = serde_json::from_str(&stdout(&ctx.cli(&["show", "child", "--json"]))).unwrap();
    assert_eq!(s["system"], "child");
    let params = s["parameters"].as_str().unwrap();
    assert!(
        params.contains("top_k") && params.contains("temperature"),
        "{params}"
    );

    let out = ctx.cli(&["create", "orphan", "-f", "Missing"]);
    assert!(!out.status.success());
    std::fs::write(ctx.work.join("Nobase"), "FROM nosuchmodel\n").unwrap();
    let out = ctx.cli(&["create", "orphan", "-f", "Nobase"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("nosuchmodel"), "{}", stderr(&out));
}

/// A template that reads `.Tools` and `.Suffix` and wraps `.Thinking` in tags.
const RICH_TEMPLATE: &str = r#"TEMPLATE """{{- if .Suffix }}<fim_pre>{{ .Prompt }}<fim_suf>{{ .Suffix }}<fim_mid>
{{- else }}{{ if .Tools }}tools: {{ range .Tools }}{{ .Function.Name }} {{ end }}{{ end }}
{{- range .Messages }}[{{ .Role }}]{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}{{ .Content }}
{{- end }}[assistant]{{ end }}"""
"#;

#[test]
fn capabilities_follow_the_template() {
    let ctx = TestContext::started();
    ctx.tiny_gguf("tiny.gguf", &TinyLlamaSpec::default());
    std::fs::write(
        ctx.work.join("Modelfile"),
        format!("FROM ./tiny.gguf\n{RICH_TEMPLATE}"),
    )
    .unwrap();
    assert_ok(&ctx.cli(&["create", "rich", "-f", "Modelfile"]));
    let want = serde_json::json!(["completion", "tools", "insert", "thinking"]);
    let s: Value = serde_json::from_str(&stdout(&ctx.cli(&["show", "rich", "--json"]))).unwrap();
    assert_eq!(s["capabilities"], want);
    assert_eq!(
        find(&list_json(&ctx), "rich:latest").unwrap()["capabilities"],
        want
    );
    // The human view lists them as `ollama show` does.
    let text = stdout(&ctx.cli(&["show", "rich"]));
    let caps = text.split("Capabilities").nth(1).unwrap_or_default();
    for c in ["completion", "tools", "insert", "thinking"] {
        assert!(caps.contains(c), "{c} missing in:\n{text}");
    }
}

/// Qwen 3 (dense and MoE) and Phi-3 models made by the generator are
/// created, shown with their architecture's details (the experts too), and chat through their own templates
/// (Qwen 3's ChatML with `<|im_end|>`, Phi-3's `<|user|>` turns); `ps`
/// reports the loaded model's size.
#[test]
fn qwen3_and_phi3_create_show_and_chat() {
    use llmpm_gguf::tiny::TinyArch;
    use llmpm_tests::http::call_unix;
    use serde_json::json;
    let ctx = TestContext::started();
    for (arch, head_dim, n_expert) in [
        (TinyArch::Qwen3, 32, 0),
        (TinyArch::Qwen3Moe, 32, 8),
        (TinyArch::Phi3, 0, 0),
    ] {
        let name = arch.name();
        let spec = TinyLlamaSpec {
            arch,
            head_dim,
            n_expert,
            n_expert_used: n_expert / 4,
            n_vocab: 400,
            ..TinyLlamaSpec::default()
        };
        create_tiny(&ctx, name, &spec);
        let s = show_json(&ctx, name);
        assert_eq!(s["details"]["family"], name);
        assert_eq!(s["model_info"]["general.architecture"], name);
        assert_eq!(
            s["model_info"][format!("{name}.attention.head_count")],
            json!(4)
        );
        if n_expert > 0 {
            let info = &s["model_info"];
            assert_eq!(info[format!("{name}.expert_count")], json!(8), "{s}");
            assert_eq!(info[format!("{name}.expert_used_count")], json!(2));
        }
        assert!(s["capabilities"]
            .as_array()
            .unwrap()
            .contains(&json!("completion")));
        let body = json!({
            "model": name, "stream": false,
            "messages": [{"role": "user", "content": "Hello there"}],
            "options": {"temperature": 0, "num_predict": 6},
        });
        let r = call_unix(
            &ctx.socket(),
            "POST",
            "/api/chat",
            body.to_string().as_bytes(),
        )
        .unwrap();
        assert_eq!(r.status, 200, "{name}: {}", r.text());
        let v = r.json();
        assert_eq!(v["message"]["role"], "assistant", "{v}");
        // The template was applied: more prompt tokens than the bare text.
        assert!(v["prompt_eval_count"].as_u64().unwrap() > 4, "{name}: {v}");
        let ps = call_unix(&ctx.socket(), "GET", "/api/ps", b"")
            .unwrap()
            .json();
        let loaded = ps["models"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == format!("{name}:latest"))
            .cloned()
            .unwrap_or_default();
        assert!(loaded["size"].as_u64().unwrap_or(0) > 0, "{name}: {ps}");
    }
}

/// A generated gpt-oss model (its harmony chat template, the o200k
/// tokenizer kind) is created and shown with its architecture's details and
/// the `tools` and `thinking` capabilities; a chat with tools and `think`
/// renders through the template (the harmony system and developer headers
/// make a long prompt) and answers.
#[test]
fn gpt_oss_create_show_and_chat() {
    use llmpm_gguf::tiny::TinyArch;
    use llmpm_tests::http::call_unix;
    use serde_json::json;
    let ctx = TestContext::started();
    let spec = TinyLlamaSpec {
        arch: TinyArch::GptOss,
        head_dim: 16,
        n_expert: 4,
        n_expert_used: 2,
        n_vocab: 400,
        sliding_window: 8,
        ..TinyLlamaSpec::default()
    };
    create_tiny(&ctx, "oss", &spec);
    let s = show_json(&ctx, "oss");
    assert_eq!(s["details"]["family"], "gpt-oss", "{s}");
    let info = &s["model_info"];
    assert_eq!(info["gpt-oss.expert_count"], json!(4), "{s}");
    assert_eq!(info["gpt-oss.attention.sliding_window"], json!(8), "{s}");
    for cap in ["completion", "tools", "thinking"] {
        assert!(
            s["capabilities"].as_array().unwrap().contains(&json!(cap)),
            "{cap}: {s}"
        );
    }
    let body = json!({
        "model": "oss", "stream": false, "think": "low",
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": [{"type": "function", "function": {"name": "get_weather",
            "description": "Get the weather", "parameters": {"type": "object",
            "required": ["city"], "properties": {"city": {"type": "string"}}}}}],
        "options": {"temperature": 0, "num_predict": 6},
    });
    let r = call_unix(
        &ctx.socket(),
        "POST",
        "/api/chat",
        body.to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["message"]["role"], "assistant", "{v}");
    // The harmony headers and the tool's signature: hundreds of byte-level
    // tokens for a 16-byte question.
    assert!(v["prompt_eval_count"].as_u64().unwrap() > 200, "{v}");
}

/// A generated BERT model embeds through `/api/embed` and `/v1/embeddings`
/// (normalised vectors of the hidden size), shows the `embedding`
/// capability, and a generate or chat request to it is a 400 saying so
/// (Ollama's text).
#[test]
fn bert_only_embeds() {
    use llmpm_gguf::tiny::TinyArch;
    use llmpm_tests::http::call_unix;
    use serde_json::json;
    let ctx = TestContext::started();
    let spec = TinyLlamaSpec {
        arch: TinyArch::Bert,
        n_embd: 64,
        n_head: 2,
        n_head_kv: 2,
        n_vocab: 300,
        context_length: 512,
        ..TinyLlamaSpec::default()
    };
    create_tiny(&ctx, "minilm", &spec);
    let post = |path: &str, body: Value| {
        call_unix(&ctx.socket(), "POST", path, body.to_string().as_bytes()).unwrap()
    };
    let r = post(
        "/api/embed",
        json!({"model": "minilm", "input": ["hello world", "the quick brown fox jumps over the lazy dog"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let embs = v["embeddings"].as_array().unwrap();
    assert_eq!(embs.len(), 2);
    for e in embs {
        let e: Vec<f64> = e
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert_eq!(e.len(), 64);
        let norm: f64 = e.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-3, "{norm}");
    }
    assert_ne!(embs[0], embs[1]);
    let r = post(
        "/v1/embeddings",
        json!({"model": "minilm", "input": "hello"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["data"][0]["embedding"].as_array().unwrap().len(),
        64
    );
    let show = show_json(&ctx, "minilm");
    assert_eq!(show["capabilities"], json!(["embedding"]));
    for (path, body, what) in [
        (
            "/api/chat",
            json!({"model": "minilm", "messages": [{"role": "user", "content": "hi"}]}),
            "chat",
        ),
        (
            "/api/generate",
            json!({"model": "minilm", "prompt": "hi"}),
            "generate",
        ),
        (
            "/v1/chat/completions",
            json!({"model": "minilm", "messages": [{"role": "user", "content": "hi"}]}),
            "chat",
        ),
    ] {
        let r = post(path, body);
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        assert!(
            r.text()
                .contains(&format!("\\\"minilm\\\" does not support {what}")),
            "{path}: {}",
            r.text()
        );
    }
}

/// The CLI's error and damage paths against the real daemon (cli/tests/cli.rs
/// pins the same against a scripted fake): a missing model exits 2 with the
/// daemon's text and a hint; `verify` reports a damaged blob, quarantines it
/// and exits 1 naming the model; `prune` then reports what it removed.
#[test]
fn cli_error_verify_and_prune_paths_against_the_real_daemon() {
    let ctx = TestContext::started();
    ctx.tiny_gguf("tiny.gguf", &TinyLlamaSpec::default());
    std::fs::write(ctx.work.join("Modelfile"), "FROM ./tiny.gguf\n").unwrap();
    assert_ok(&ctx.cli(&["create", "m", "-f", "Modelfile"]));

    let out = ctx.cli(&["show", "nope"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).starts_with("error: model"), "{}", stderr(&out));
    assert!(stderr(&out).contains("not found"), "{}", stderr(&out));
    assert!(stderr(&out).contains("hint: "), "{}", stderr(&out));
    let out = ctx.cli(&["rm", "nope"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = ctx.cli(&["cp", "m", "m2"]);
    assert_ok(&out);
    assert_eq!(stderr(&out), "copied 'm' to 'm2'\n");

    let out = ctx.cli(&["verify"]);
    assert_ok(&out);
    assert!(stdout(&out).starts_with("checked "), "{}", stdout(&out));

    // Damage the weights blob (the largest) in place.
    let blobs = ctx.home.join("blobs/sha256");
    let weights = std::fs::read_dir(&blobs)
        .unwrap()
        .flatten()
        .max_by_key(|e| e.metadata().unwrap().len())
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&weights).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&weights, bytes).unwrap();
    let out = ctx.cli(&["verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let name = format!("sha256:{}", weights.file_name().unwrap().to_string_lossy());
    assert!(
        stdout(&out).contains(&format!("corrupt {name}: ")),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("  moved to "), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("needed by m2:latest, m:latest"),
        "{}",
        stdout(&out)
    );
    // Quarantined, the blob is now missing too.
    assert!(
        stdout(&out).contains(&format!("missing {name}")),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).starts_with("error: 2 blobs are corrupt or missing"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("`m:latest`"), "{}", stderr(&out));
    assert!(!weights.exists(), "the damaged blob was quarantined");

    assert_ok(&ctx.cli(&["rm", "m", "m2"]));
    let out = ctx.cli(&["prune"]);
    assert_ok(&out);
    assert!(stdout(&out).starts_with("removed "), "{}", stdout(&out));
}
