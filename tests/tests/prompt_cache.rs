//! The prompt cache, context limits and context shift, end to end on a
//! generated model: a warm cache answers exactly as a cold one, evaluates
//! only what is new, never serves a stale prefix, shares one system prompt
//! between parallel requests; a generation runs past `num_ctx` by shifting
//! (or stops with `shift: false`); `truncate: false` refuses a prompt that
//! does not fit; a chat longer than the context keeps its system prompt and
//! newest turns, the tokens counted by the daemon.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use llmpm_tests::{assert_ok, TestContext};
use serde_json::{json, Value};

/// A daemon with the tiny model `tiny` of context `num_ctx`, with `env`.
fn setup(env: &[(&str, &str)], num_ctx: u32) -> TestContext {
    let mut ctx = TestContext::new();
    ctx.daemon_env = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    ctx.start();
    ctx.tiny_gguf("tiny.gguf", &llmpm_gguf::tiny::TinyLlamaSpec::default());
    std::fs::write(
        ctx.work.join("Modelfile"),
        format!("FROM ./tiny.gguf\nPARAMETER num_ctx {num_ctx}\n"),
    )
    .unwrap();
    assert_ok(&ctx.cli(&["create", "tiny", "-f", "Modelfile"]));
    ctx
}

/// A raw, unstreamed generation of `prompt` with `options`; `extra` fields
/// are added to the request.
fn generate(ctx: &TestContext, prompt: &str, options: Value, extra: Value) -> Value {
    let mut body = json!({"model": "tiny", "prompt": prompt, "raw": true, "stream": false,
        "options": options});
    if let Value::Object(m) = extra {
        for (k, v) in m {
            body[k] = v;
        }
    }
    let r = ctx.post_json("/api/generate", &body);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

fn count(r: &Value, key: &str) -> u64 {
    r[key].as_u64().unwrap_or_else(|| panic!("no {key} in {r}"))
}

/// Prompt tokens evaluated: Ollama's `prompt_eval_count` counts the whole
/// prompt, `prompt_cache_count` those the cache held.
fn evaluated(r: &Value) -> u64 {
    count(r, "prompt_eval_count") - count(r, "prompt_cache_count")
}

/// A long prompt of distinct words (the tiny tokenizer spells most bytes
/// alone, so this is a few hundred tokens).
fn words(tag: &str, n: usize) -> String {
    (0..n).map(|i| format!("{tag}{i} ")).collect()
}

/// Unloads the model: the next request starts from an empty cache.
fn unload(ctx: &TestContext) {
    let r = ctx.post_json("/api/generate", &json!({"model": "tiny", "keep_alive": 0}));
    assert_eq!(r.status, 200, "{}", r.text());
    for _ in 0..200 {
        let ps = llmpm_tests::http::call_unix(&ctx.socket(), "GET", "/api/ps", b"")
            .unwrap()
            .json();
        if ps["models"].as_array().is_some_and(Vec::is_empty) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("the model did not unload");
}

#[test]
fn warm_cache_answers_as_cold_and_evaluates_only_the_new_token() {
    let ctx = setup(&[], 1024);
    let prompt = words("w", 60);
    for options in [
        json!({"temperature": 0, "num_predict": 24}),
        json!({"temperature": 0.9, "seed": 7, "num_predict": 24}),
    ] {
        unload(&ctx);
        let cold = generate(&ctx, &prompt, options.clone(), json!({}));
        let warm = generate(&ctx, &prompt, options.clone(), json!({}));
        assert_eq!(warm["response"], cold["response"], "{options}");
        assert_eq!(count(&warm, "eval_count"), count(&cold, "eval_count"));
        assert!(count(&cold, "prompt_eval_count") > 100, "{cold}");
        assert_eq!(count(&cold, "prompt_cache_count"), 0, "{cold}");
        assert_eq!(
            count(&warm, "prompt_eval_count"),
            count(&cold, "prompt_eval_count")
        );
        // Only the prompt's last token, for its logits.
        assert_eq!(evaluated(&warm), 1, "{warm}");
    }
}

#[test]
fn a_prompt_that_diverges_is_evaluated_from_the_divergence() {
    let ctx = setup(&[], 1024);
    let options = json!({"temperature": 0, "num_predict": 16});
    let base = words("b", 40);
    let a = format!("{base}\nalpha {}", words("a", 10));
    let b = format!("{base}\nbeta {}", words("c", 12));
    // Cold counts: the base alone, and B alone.
    unload(&ctx);
    let base_n = count(
        &generate(&ctx, &base, options.clone(), json!({})),
        "prompt_eval_count",
    );
    unload(&ctx);
    let cold_b = generate(&ctx, &b, options.clone(), json!({}));
    let b_n = count(&cold_b, "prompt_eval_count");
    unload(&ctx);
    generate(&ctx, &a, options.clone(), json!({}));
    let warm_b = generate(&ctx, &b, options.clone(), json!({}));
    assert_eq!(warm_b["response"], cold_b["response"]);
    let evaluated = evaluated(&warm_b);
    // The shared prefix is the base and its newline (at most one token more
    // than the base alone, however the newline tokenizes).
    assert!(
        (b_n - base_n - 1..=b_n - base_n).contains(&evaluated),
        "B evaluated {evaluated} of {b_n}, base {base_n}"
    );
}

#[test]
fn a_changed_system_prompt_or_template_never_gets_a_stale_answer() {
    let ctx = setup(&[], 1024);
    let options = json!({"temperature": 0, "num_predict": 16});
    let chat = |system: &str| {
        let body = json!({"model": "tiny", "stream": false, "options": options,
            "messages": [{"role": "system", "content": system},
                         {"role": "user", "content": "the same question"}]});
        let r = ctx.post_json("/api/chat", &body);
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    };
    let one = words("s", 30);
    let two = format!("{} changed", words("s", 29));
    unload(&ctx);
    let cold_two = chat(&two);
    chat(&one);
    let warm_two = chat(&two);
    assert_eq!(warm_two["message"], cold_two["message"]);
    assert!(evaluated(&warm_two) < evaluated(&cold_two));

    // The request's own template over the same prompt.
    let templated = |t: &str| {
        let r = ctx.post_json(
            "/api/generate",
            &json!({"model": "tiny", "prompt": "same words", "template": t, "stream": false,
                "options": options}),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    };
    unload(&ctx);
    let cold = templated("B: {{ .Prompt }}");
    templated("A: {{ .Prompt }}");
    assert_eq!(templated("B: {{ .Prompt }}")["response"], cold["response"]);
}

#[test]
fn parallel_requests_evaluate_a_shared_system_prompt_once() {
    let ctx = setup(&[("LLMPM_NUM_PARALLEL", "4")], 2048);
    let options = json!({"temperature": 0, "num_predict": 8});
    let system = words("sys", 80);
    let prompts: Vec<String> = (0..4)
        .map(|i| format!("{system}\nquestion {i}: {}", words(&format!("q{i}x"), 5)))
        .collect();
    // Each alone, from a cold cache: the answers and full counts.
    let mut alone = Vec::new();
    for p in &prompts {
        unload(&ctx);
        alone.push(generate(&ctx, p, options.clone(), json!({})));
    }
    unload(&ctx);
    let together: Vec<Value> = std::thread::scope(|s| {
        let handles: Vec<_> = prompts
            .iter()
            .map(|p| {
                let (ctx, options) = (&ctx, options.clone());
                s.spawn(move || generate(ctx, p, options, json!({})))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let full: u64 = alone.iter().map(|r| count(r, "prompt_eval_count")).sum();
    let evaluated: u64 = together.iter().map(evaluated).sum();
    let one = count(&alone[0], "prompt_eval_count");
    for (t, a) in together.iter().zip(&alone) {
        assert_eq!(t["response"], a["response"]);
    }
    // The system prompt once, plus each question: far less than four
    // prompts' worth. (Requests that arrive after the first finished its
    // prompt find it in a free slot; either way it is not evaluated again.)
    assert!(
        evaluated < full / 2 + one / 2,
        "evaluated {evaluated} of {full} prompt tokens (one prompt: {one})"
    );
}

/// Resident memory of the daemon's runner processes, in KiB.
fn runner_rss(ctx: &mut TestContext) -> u64 {
    let pid = ctx.daemon().pid();
    llmpm_tests::child_pids(pid)
        .iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
        .filter_map(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .sum()
}

#[test]
fn a_generation_runs_past_the_context_by_shifting_or_stops_without_shift() {
    let mut ctx = setup(&[], 512);
    // Greedy on the tiny model settles into a loop without its end token.
    let options = json!({"temperature": 0, "num_predict": 1536});
    let short = generate(
        &ctx,
        "once upon a time",
        json!({"temperature": 0, "num_predict": 400}),
        json!({}),
    );
    let before = runner_rss(&mut ctx);
    let long = generate(&ctx, "once upon a time", options.clone(), json!({}));
    let after = runner_rss(&mut ctx);
    assert_eq!(long["done_reason"], "length", "{long}");
    assert_eq!(count(&long, "eval_count"), 1536);
    // Until the first shift, the text of a generation that never shifts.
    let (s, l) = (
        short["response"].as_str().unwrap(),
        long["response"].as_str().unwrap(),
    );
    let agree = s.chars().zip(l.chars()).take_while(|(a, b)| a == b).count();
    assert!(agree >= s.chars().count() * 3 / 4, "{agree} chars agree");
    // The cache was reserved once for num_ctx tokens: nothing grows with
    // the generation's length.
    assert!(
        after <= before + 8 * 1024,
        "runner RSS {before} KiB -> {after} KiB"
    );

    let stopped = generate(&ctx, "once upon a time", options, json!({"shift": false}));
    assert_eq!(stopped["done_reason"], "length", "{stopped}");
    let used = count(&stopped, "eval_count") + count(&stopped, "prompt_eval_count");
    // The context holds 512 tokens; the last one sampled is sent, never evaluated.
    assert!(
        used <= 513 && count(&stopped, "eval_count") > 400,
        "{stopped}"
    );
}

#[test]
fn truncate_false_refuses_a_prompt_longer_than_the_context() {
    let ctx = setup(&[], 256);
    let long = words("t", 200);
    let r = ctx.post_json(
        "/api/generate",
        &json!({"model": "tiny", "prompt": long, "raw": true, "stream": false, "truncate": false,
            "options": {"num_predict": 4}}),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    let err = r.json()["error"].as_str().unwrap().to_owned();
    assert!(
        err.contains("num_ctx 256") && err.contains("truncate"),
        "{err}"
    );
    // The same chat with truncate on (the default) keeps the last message.
    let msgs = json!([{"role": "user", "content": long}, {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "and now?"}]);
    let r = ctx.post_json(
        "/api/chat",
        &json!({"model": "tiny", "messages": msgs, "stream": false, "options": {"num_predict": 4}}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(count(&r.json(), "prompt_eval_count") < 64);
    let r = ctx.post_json(
        "/api/chat",
        &json!({"model": "tiny", "messages": msgs, "stream": false, "truncate": false,
            "options": {"num_predict": 4}}),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    // Served on.
    let r = generate(&ctx, "hi", json!({"num_predict": 2}), json!({}));
    assert_eq!(r["done"], true);
}

/// A chat template with special tokens between messages, as real ones
/// have (the daemon remembers the count of each text between them).
const CHAT_TEMPLATE: &str =
    "{{ range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n\
{{ .Content }}<|eot_id|>{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n";

/// What [`CHAT_TEMPLATE`] renders for `messages` (role, content).
fn chat_text(messages: &[(String, String)]) -> String {
    let mut s: String = messages
        .iter()
        .map(|(r, c)| format!("<|start_header_id|>{r}<|end_header_id|>\n\n{c}<|eot_id|>"))
        .collect();
    s.push_str("<|start_header_id|>assistant<|end_header_id|>\n\n");
    s
}

/// Texts the daemon sent its runners to tokenize (`/metrics`).
fn runner_tokenize_requests(ctx: &TestContext) -> u64 {
    let text = llmpm_tests::http::call_unix(&ctx.socket(), "GET", "/metrics", b"")
        .unwrap()
        .text();
    text.lines()
        .find_map(|l| l.strip_prefix("llmpm_runner_tokenize_requests_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no runner tokenize counter in:\n{text}"))
}

#[test]
fn a_chat_longer_than_the_context_keeps_the_system_prompt_and_the_newest_turns() {
    let ctx = setup(&[], 256);
    std::fs::write(
        ctx.work.join("Modelfile"),
        format!("FROM ./tiny.gguf\nPARAMETER num_ctx 256\nTEMPLATE \"\"\"{CHAT_TEMPLATE}\"\"\"\n"),
    )
    .unwrap();
    assert_ok(&ctx.cli(&["create", "tiny", "-f", "Modelfile"]));
    let mut messages = vec![("system".to_owned(), "answer in one word".to_owned())];
    for i in 0..16 {
        let role = if i % 2 == 0 { "user" } else { "assistant" };
        messages.push((role.to_owned(), words(&format!("m{i}x"), 6)));
    }
    messages.push(("user".to_owned(), "and the last question?".to_owned()));
    // What Ollama keeps: the system prompt, then the newest messages, as
    // many as fit in num_ctx - 1 tokens as the runner counts them (a raw
    // prompt's `prompt_eval_count`, in a context that holds it whole).
    let options = json!({"temperature": 0, "num_predict": 1});
    let kept = |dropped: usize| {
        let mut m = vec![messages[0].clone()];
        m.extend_from_slice(&messages[1 + dropped..]);
        chat_text(&m)
    };
    let runner_count = |text: &str| {
        let wide = json!({"num_ctx": 2048, "num_predict": 1});
        count(&generate(&ctx, text, wide, json!({})), "prompt_eval_count")
    };
    assert!(runner_count(&kept(0)) > 255, "the whole chat must not fit");
    let dropped = (1..16).find(|&k| runner_count(&kept(k)) <= 255).unwrap();
    assert!(dropped < 15, "more than the last message fits");
    let want = kept(dropped);
    let want_n = runner_count(&want);

    let before = runner_tokenize_requests(&ctx);
    let body: Vec<Value> = messages
        .iter()
        .map(|(r, c)| json!({"role": r, "content": c}))
        .collect();
    let r = ctx.post_json(
        "/api/chat",
        &json!({"model": "tiny", "messages": body, "stream": false, "options": options}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        count(&r.json(), "prompt_eval_count"),
        want_n,
        "{}",
        r.text()
    );
    // The very prompt the chat sent: all of it in the cache.
    let raw = generate(&ctx, &want, options.clone(), json!({}));
    assert_eq!(count(&raw, "prompt_eval_count"), want_n, "{raw}");
    assert_eq!(evaluated(&raw), 1, "{raw}");
    // A longer chat still: the daemon counted every render itself.
    let mut long = body.clone();
    for i in 0..60 {
        let role = if i % 2 == 0 { "assistant" } else { "user" };
        long.insert(
            1,
            json!({"role": role, "content": words(&format!("o{i}y"), 6)}),
        );
    }
    let r = ctx.post_json(
        "/api/chat",
        &json!({"model": "tiny", "messages": long, "stream": false, "options": options}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(count(&r.json(), "prompt_eval_count"), want_n);
    assert_eq!(
        runner_tokenize_requests(&ctx),
        before,
        "the daemon asked its runner to count"
    );
}

#[test]
fn generate_context_round_trips_through_the_cache() {
    let ctx = setup(&[], 1024);
    let options = json!({"temperature": 0, "num_predict": 8});
    let body = |prompt: &str, context: Option<&Value>| {
        let mut b = json!({"model": "tiny", "prompt": prompt, "stream": false, "options": options});
        if let Some(c) = context {
            b["context"] = c.clone();
        }
        b
    };
    let first = ctx
        .post_json("/api/generate", &body("tell me a story", None))
        .json();
    let context = first["context"].clone();
    let n = context.as_array().map_or(0, Vec::len) as u64;
    assert_eq!(
        n,
        count(&first, "prompt_eval_count") + count(&first, "eval_count"),
        "the prompt's and the answer's tokens: {first}"
    );
    let next = ctx.post_json("/api/generate", &body("and then?", Some(&context)));
    assert_eq!(next.status, 200, "{}", next.text());
    let next = next.json();
    // The earlier turn is in the cache: only the new prompt is evaluated.
    assert!(count(&next, "prompt_eval_count") > n, "{next}");
    assert!(count(&next, "prompt_cache_count") >= n - 1, "{next}");
    let longer = next["context"].as_array().unwrap();
    assert_eq!(
        &longer[..n as usize],
        context.as_array().unwrap().as_slice()
    );

    // Not token ids, or beside raw: 400s that say so.
    let r = ctx.post_json("/api/generate", &body("x", Some(&json!([1, -2]))));
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("`context`"), "{}", r.text());
    let mut raw = body("x", Some(&context));
    raw["raw"] = json!(true);
    assert_eq!(ctx.post_json("/api/generate", &raw).status, 400);
    // A raw answer carries no context.
    let r = generate(&ctx, "x", json!({"num_predict": 2}), json!({}));
    assert!(r.get("context").is_none(), "{r}");
}
