//! End to end: the scheduler of the real `llmpmd` with real runners of tiny
//! generated models: which models stay loaded (keep_alive, `stop`), which
//! one goes when a load does not fit (least recently used, never one that
//! is serving), what `/api/ps` and `llmpm ps` report, the memory budget, a
//! runner killed mid-generation, and the bounded queue.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant, SystemTime};

use llmpm_tests::http::{call_unix, get_unix, Response, Stream};
use llmpm_tests::{assert_ok, stderr, stdout, TestContext, TinyLlamaSpec};
use llmpmd::sched::memory::human_bytes;
use llmpmd::sched::ModelShape;
use serde_json::{json, Value};

/// Every model's context: room for the long generations below.
const NUM_CTX: u64 = 2048;
/// Polls give up after this long: generous, never a timing assertion.
const DEADLINE: Duration = Duration::from_secs(30);

/// A daemon with `env`, and one model per name, each its own weights file
/// (runners are per file, so names sharing one would share a runner).
fn setup(env: &[(&str, &str)], names: &[&str]) -> TestContext {
    let mut ctx = TestContext::new();
    ctx.daemon_env = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    ctx.start();
    for (i, name) in names.iter().enumerate() {
        let spec = TinyLlamaSpec {
            seed: 100 + i as u64,
            ..TinyLlamaSpec::default()
        };
        ctx.tiny_gguf(&format!("{name}.gguf"), &spec);
        std::fs::write(
            ctx.work.join("Modelfile"),
            format!("FROM ./{name}.gguf\nPARAMETER num_ctx {NUM_CTX}\n"),
        )
        .unwrap();
        assert_ok(&ctx.cli(&["create", name, "-f", "Modelfile"]));
    }
    ctx
}

fn post(ctx: &TestContext, path: &str, body: &Value) -> Response {
    call_unix(&ctx.socket(), "POST", path, body.to_string().as_bytes()).unwrap()
}

/// A short greedy generation, not streamed; must succeed.
fn generate(ctx: &TestContext, model: &str, extra: Value) -> Value {
    let mut body = json!({"model": model, "prompt": "Hello", "stream": false,
        "options": {"temperature": 0, "num_predict": 4}});
    if let Value::Object(m) = extra {
        for (k, v) in m {
            body[k] = v;
        }
    }
    let r = post(ctx, "/api/generate", &body);
    assert_eq!(r.status, 200, "{model}: {}", r.text());
    r.json()
}

/// Loads `model` (an empty prompt) with an optional keep_alive.
fn load(ctx: &TestContext, model: &str, keep_alive: Option<Value>) {
    let mut body = json!({"model": model});
    if let Some(k) = keep_alive {
        body["keep_alive"] = k;
    }
    let r = post(ctx, "/api/generate", &body);
    assert_eq!(r.status, 200, "{model}: {}", r.text());
    assert_eq!(r.json()["done_reason"], "load");
}

/// `/api/ps`'s models.
fn ps(ctx: &TestContext) -> Vec<Value> {
    let r = get_unix(&ctx.socket(), "/api/ps").unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["models"].as_array().unwrap().clone()
}

/// The loaded models' names, sorted.
fn loaded(ctx: &TestContext) -> Vec<String> {
    let mut v: Vec<String> = ps(ctx)
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_owned())
        .collect();
    v.sort();
    v
}

/// Polls until `cond` holds; fails after [`DEADLINE`] with `what`.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Seconds from now until an RFC 3339 time (negative when past).
fn seconds_until(rfc3339: &str) -> f64 {
    let t = humantime_parse(rfc3339);
    match t.duration_since(SystemTime::now()) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

fn humantime_parse(s: &str) -> SystemTime {
    // The tests crate has no humantime; the daemon writes `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
    let (date, time) = s.trim_end_matches('Z').split_once('T').unwrap();
    let d: Vec<i64> = date.split('-').map(|x| x.parse().unwrap()).collect();
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<i64> = hms.split(':').map(|x| x.parse().unwrap()).collect();
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, m, day) = (d[0] - i64::from(d[1] <= 2), d[1], d[2]);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86400 + t[0] * 3600 + t[1] * 60 + t[2];
    let nanos: f64 = format!("0.{frac}").parse().unwrap();
    SystemTime::UNIX_EPOCH
        + Duration::from_secs(u64::try_from(secs).unwrap())
        + Duration::from_secs_f64(nanos)
}

/// A long streamed greedy generation on `model`, read up to its first line.
fn long_generation(ctx: &TestContext, model: &str) -> Stream {
    let mut s = Stream::open(
        &ctx.socket(),
        "/api/generate",
        &json!({"model": model, "prompt": "Once upon a time",
            "options": {"temperature": 0, "num_predict": 1500}}),
    );
    let first = s.next().unwrap();
    assert_eq!(first["done"], false, "{first}");
    s
}

/// A two-token generation of `model` on another thread; its answer when joined.
fn short_generation_in_background(
    ctx: &TestContext,
    model: &str,
) -> std::thread::JoinHandle<Response> {
    let socket = ctx.socket();
    let body = json!({"model": model, "prompt": "Hi", "stream": false,
        "options": {"temperature": 0, "num_predict": 2}});
    std::thread::spawn(move || {
        call_unix(
            &socket,
            "POST",
            "/api/generate",
            body.to_string().as_bytes(),
        )
        .unwrap()
    })
}

/// The shape of the first model [`setup`] creates.
fn shape_of_first_model() -> ModelShape {
    let mut bytes = Vec::new();
    llmpm_tests::write_tiny_llama(
        &TinyLlamaSpec {
            seed: 100,
            ..TinyLlamaSpec::default()
        },
        &mut bytes,
    )
    .unwrap();
    ModelShape::from_gguf(&llmpm_gguf::GgufFile::from_bytes(&bytes).unwrap())
}

/// The pids of the daemon's runner processes.
fn runner_pids(ctx: &TestContext) -> Vec<String> {
    llmpm_tests::child_pids(ctx.daemon.as_ref().unwrap().pid())
}

#[test]
fn the_least_recently_used_idle_model_is_evicted() {
    let ctx = setup(&[("LLMPM_MAX_LOADED_MODELS", "2")], &["a", "b", "c"]);
    load(&ctx, "a", None);
    load(&ctx, "b", None);
    // `a` is used again, so `b` is now the least recently used.
    generate(&ctx, "a", json!({}));
    assert_eq!(loaded(&ctx), ["a:latest", "b:latest"]);
    load(&ctx, "c", None);
    assert_eq!(loaded(&ctx), ["a:latest", "c:latest"]);
    assert!(ctx.daemon_log().contains("evict"), "{}", ctx.daemon_log());
}

#[test]
fn a_serving_model_is_never_evicted() {
    let ctx = setup(&[("LLMPM_MAX_LOADED_MODELS", "2")], &["a", "b", "c"]);
    // `a` starts first, so it is the least recently used, but it is serving.
    let stream = long_generation(&ctx, "a");
    load(&ctx, "b", None);
    load(&ctx, "c", None);
    assert_eq!(loaded(&ctx), ["a:latest", "c:latest"]);
    let last = stream.finish();
    assert_eq!(last["done"], true, "{last}");
    assert!(last.get("error").is_none(), "{last}");
    assert!(last["eval_count"].as_u64().unwrap() > 100, "{last}");
}

#[test]
fn a_load_waits_for_a_serving_model_instead_of_killing_it() {
    let ctx = setup(&[("LLMPM_MAX_LOADED_MODELS", "1")], &["a", "b"]);
    let stream = long_generation(&ctx, "a");
    let waiting = short_generation_in_background(&ctx, "b");
    let last = stream.finish();
    assert_eq!(last["done"], true, "{last}");
    assert!(last.get("error").is_none(), "{last}");
    let r = waiting.join().unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(loaded(&ctx), ["b:latest"]);
}

#[test]
fn keep_alive_stop_and_ps() {
    let ctx = setup(&[("LLMPM_KEEP_ALIVE", "10m")], &["a"]);

    // No keep_alive: the configured default (10m), shown by /api/ps in Ollama's shape.
    generate(&ctx, "a", json!({}));
    let models = ps(&ctx);
    assert_eq!(models.len(), 1, "{models:?}");
    let m = &models[0];
    assert_eq!(m["name"], "a:latest");
    assert_eq!(m["model"], "a:latest");
    assert!(m["size"].as_u64().unwrap() > 0, "{m}");
    assert_eq!(m["size_vram"], 0);
    assert_eq!(m["context_length"], NUM_CTX);
    assert_eq!(m["digest"].as_str().unwrap().len(), 64, "{m}");
    assert_eq!(m["details"]["family"], "llama", "{m}");
    assert_eq!(m["details"]["format"], "gguf", "{m}");
    let left = seconds_until(m["expires_at"].as_str().unwrap());
    assert!((540.0..=600.0).contains(&left), "expires in {left}s: {m}");
    // The digest is the model's, as /api/tags gives it.
    let tags = get_unix(&ctx.socket(), "/api/tags").unwrap().json();
    assert_eq!(tags["models"][0]["digest"], m["digest"]);

    // `llmpm ps`: ollama's columns.
    let out = ctx.cli(&["ps"]);
    assert_ok(&out);
    let text = stdout(&out);
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"]
    );
    let row = lines.next().unwrap();
    assert!(row.starts_with("a:latest"), "{text}");
    assert!(row.contains("100% CPU") && row.contains("2048"), "{text}");
    assert!(row.contains("minutes from now"), "{text}");

    // A per-request value replaces it.
    generate(&ctx, "a", json!({"keep_alive": "1h30m"}));
    let left = seconds_until(ps(&ctx)[0]["expires_at"].as_str().unwrap());
    assert!((5300.0..=5400.0).contains(&left), "expires in {left}s");

    // Negative: forever.
    generate(&ctx, "a", json!({"keep_alive": -1}));
    let left = seconds_until(ps(&ctx)[0]["expires_at"].as_str().unwrap());
    assert!(left > 200.0 * 365.0 * 86400.0, "expires in {left}s");
    let text = stdout(&ctx.cli(&["ps"]));
    assert!(text.contains("Forever"), "{text}");

    // `llmpm stop`: quiet, and the model goes.
    let out = ctx.cli(&["stop", "a"]);
    assert_ok(&out);
    assert_eq!(stdout(&out), "");
    wait_for("`a` unloaded by stop", || loaded(&ctx).is_empty());
    // Stopping a model that is not loaded is fine; an unknown one is not.
    assert_ok(&ctx.cli(&["stop", "a"]));
    let out = ctx.cli(&["stop", "nope"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("couldn't find model"),
        "{}",
        stderr(&out)
    );

    // 0: unloaded as soon as the request ends.
    generate(&ctx, "a", json!({"keep_alive": 0}));
    wait_for("`a` unloaded after keep_alive 0", || {
        loaded(&ctx).is_empty()
    });

    // "1s": loaded, then unloaded about a second later.
    generate(&ctx, "a", json!({"keep_alive": "1s"}));
    let answered = Instant::now();
    let models = ps(&ctx);
    // The timer starts when the request ends: the model may be gone only if
    // the question came a second after the answer (a very busy machine).
    assert!(
        !models.is_empty() || answered.elapsed() >= Duration::from_secs(1),
        "`a` unloaded before its keep_alive of 1s"
    );
    for m in &models {
        let left = seconds_until(m["expires_at"].as_str().unwrap());
        assert!(left <= 1.0, "expires in {left}s: {m}");
    }
    wait_for("`a` unloaded after keep_alive 1s", || {
        loaded(&ctx).is_empty()
    });
    // By its timer, not as keep_alive 0 would unload it.
    assert!(
        ctx.daemon_log().contains("keep_alive expired"),
        "{}",
        ctx.daemon_log()
    );

    // Chat: empty messages load, and with keep_alive 0 unload.
    let r = post(&ctx, "/api/chat", &json!({"model": "a", "messages": []}));
    assert_eq!(r.json()["done_reason"], "load", "{}", r.text());
    assert_eq!(loaded(&ctx), ["a:latest"]);
    let r = post(
        &ctx,
        "/api/chat",
        &json!({"model": "a", "messages": [], "keep_alive": 0}),
    );
    assert_eq!(r.json()["done_reason"], "unload", "{}", r.text());
    wait_for("`a` unloaded by chat", || loaded(&ctx).is_empty());

    // Nonsense is refused, naming the field.
    let r = post(
        &ctx,
        "/api/generate",
        &json!({"model": "a", "prompt": "x", "keep_alive": "soon"}),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("keep_alive"), "{}", r.text());
}

#[test]
fn the_memory_budget_evicts_and_refuses() {
    // Room for two of these models, not three.
    let shape = shape_of_first_model();
    let one = shape.estimate(NUM_CTX);
    let budget = one * 5 / 2;
    let ctx = setup(
        &[("LLMPM_MEMORY_BUDGET", &budget.to_string())],
        &["a", "b", "c"],
    );
    load(&ctx, "a", None);
    load(&ctx, "b", None);
    assert_eq!(ps(&ctx)[0]["size"], one);
    load(&ctx, "c", None);
    assert_eq!(loaded(&ctx), ["b:latest", "c:latest"]);

    // A context so large the model can never fit: refused, both figures named.
    let huge = 1 << 20;
    let r = post(
        &ctx,
        "/api/generate",
        &json!({"model": "a", "prompt": "x", "options": {"num_ctx": huge}}),
    );
    assert_eq!(r.status, 500, "{}", r.text());
    let msg = r.json()["error"].as_str().unwrap().to_owned();
    let needs = human_bytes(shape.estimate(huge));
    let has = human_bytes(budget);
    assert!(
        msg.contains(&format!("needs {needs} but the memory budget is {has}")),
        "{msg}"
    );
    assert!(msg.contains("memory_budget"), "{msg}");
    // Nothing was unloaded for it.
    assert_eq!(loaded(&ctx), ["b:latest", "c:latest"]);
}

#[test]
fn a_runner_killed_mid_generation_fails_only_its_request() {
    let mut ctx = setup(&[], &["a", "b"]);
    load(&ctx, "b", None);
    let b_pid = runner_pids(&ctx);
    assert_eq!(b_pid.len(), 1);
    let mut stream = long_generation(&ctx, "a");
    let a_pid: Vec<String> = runner_pids(&ctx)
        .into_iter()
        .filter(|p| !b_pid.contains(p))
        .collect();
    assert_eq!(a_pid.len(), 1);
    std::process::Command::new("kill")
        .args(["-9", &a_pid[0]])
        .status()
        .unwrap();
    // The client gets an error line, not a truncated stream.
    let mut last = Value::Null;
    while let Some(v) = stream.next() {
        last = v;
    }
    let err = last["error"].as_str().unwrap_or_default();
    assert!(err.contains("stopped unexpectedly"), "{last}");
    // The dead runner leaves the set; the other one was not touched.
    wait_for("the dead runner removed", || loaded(&ctx) == ["b:latest"]);
    generate(&ctx, "b", json!({}));
    // The next request starts it again and answers.
    let v = generate(&ctx, "a", json!({}));
    assert_eq!(v["done"], true);
    assert_eq!(loaded(&ctx), ["a:latest", "b:latest"]);
    assert!(ctx.daemon().alive());
}

#[test]
fn past_max_queue_requests_get_503() {
    let ctx = setup(
        &[("LLMPM_MAX_QUEUE", "1"), ("LLMPM_MAX_LOADED_MODELS", "1")],
        &["a"],
    );
    // `a` serves one request at a time: one more may wait, a third may not.
    let stream = long_generation(&ctx, "a");
    let send = || short_generation_in_background(&ctx, "a");
    let (b, c) = (send(), send());
    // Whichever came second was refused at once; the first waits for `a`.
    let (first, second) = {
        let (b, c) = (b, c);
        // The refused one returns while `a` still streams.
        let mut done = Vec::new();
        let mut handles = vec![b, c];
        while done.is_empty() {
            if let Some(i) = handles.iter().position(|h| h.is_finished()) {
                done.push(handles.remove(i).join().unwrap());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        (done.remove(0), handles.remove(0))
    };
    assert_eq!(first.status, 503, "{}", first.text());
    assert_eq!(
        first.json()["error"],
        "server busy, please try again.  maximum pending requests exceeded"
    );
    assert!(first.header("retry-after").is_some(), "{:?}", first.headers);
    let last = stream.finish();
    assert_eq!(last["done"], true, "{last}");
    let r = second.join().unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn another_num_ctx_reloads_the_model() {
    let ctx = setup(&[], &["a"]);
    generate(&ctx, "a", json!({}));
    assert_eq!(ps(&ctx)[0]["context_length"], NUM_CTX);
    generate(
        &ctx,
        "a",
        json!({"options": {"num_ctx": 512, "num_predict": 2}}),
    );
    let models = ps(&ctx);
    assert_eq!(models.len(), 1, "{models:?}");
    assert_eq!(models[0]["context_length"], 512);
}

/// `num_batch` and `num_thread` are runner settings, as in Ollama: a request
/// with other values gets a runner started with them (the old one goes),
/// one with the same values keeps the loaded runner.
#[test]
fn other_runner_options_reload_the_model() {
    let ctx = setup(&[], &["a"]);
    let runner = || {
        wait_for("one runner", || runner_pids(&ctx).len() == 1);
        let pid = runner_pids(&ctx).remove(0);
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        (pid, args.join(" "))
    };
    generate(&ctx, "a", json!({}));
    let (first, args) = runner();
    assert!(args.contains("--batch 512"), "{args}");
    let batch = json!({"options": {"num_batch": 64, "num_predict": 2}});
    generate(&ctx, "a", batch.clone());
    let (second, args) = runner();
    assert_ne!(first, second, "num_batch 64 needs another runner");
    assert!(args.contains("--batch 64"), "{args}");
    generate(&ctx, "a", batch);
    assert_eq!(runner().0, second, "the same settings keep the runner");
    generate(
        &ctx,
        "a",
        json!({"options": {"num_batch": 64, "num_thread": 1, "num_predict": 2}}),
    );
    let (third, args) = runner();
    assert_ne!(second, third, "num_thread 1 needs another runner");
    assert!(args.contains("--threads 1"), "{args}");
}

/// A model with an ADAPTER layer is refused by name, not answered as if it
/// were its base model.
#[test]
fn a_model_with_an_adapter_is_refused() {
    let ctx = setup(&[], &["a"]);
    ctx.tiny_gguf("lora.gguf", &TinyLlamaSpec::default());
    std::fs::write(
        ctx.work.join("Modelfile"),
        "FROM ./a.gguf\nADAPTER ./lora.gguf\n",
    )
    .unwrap();
    assert_ok(&ctx.cli(&["create", "tuned", "-f", "Modelfile"]));
    let r = post(
        &ctx,
        "/api/generate",
        &json!({"model": "tuned", "prompt": "Hello", "stream": false}),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("ADAPTER"), "{}", r.text());
    assert!(runner_pids(&ctx).is_empty(), "nothing was loaded");
}

#[test]
fn run_keepalive_sets_how_long_the_model_stays() {
    let ctx = setup(&[], &[]);
    ctx.tiny_gguf("short.gguf", &TinyLlamaSpec::default());
    std::fs::write(
        ctx.work.join("Modelfile"),
        "FROM ./short.gguf\nPARAMETER num_predict 3\n",
    )
    .unwrap();
    assert_ok(&ctx.cli(&["create", "short", "-f", "Modelfile"]));
    assert_ok(&ctx.cli(&["run", "short", "Hello", "--keepalive", "1h30m"]));
    let left = seconds_until(ps(&ctx)[0]["expires_at"].as_str().unwrap());
    assert!((5300.0..=5400.0).contains(&left), "expires in {left}s");
    let out = ctx.cli(&["run", "short", "Hello", "--keepalive", "soon"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("keep_alive"), "{}", stderr(&out));
}

/// A daemon killed with -9 cannot stop its runners; each notices its parent
/// is gone and exits (its stderr, a pipe to the dead daemon, must not stop it).
#[test]
fn runners_exit_when_their_daemon_is_killed() {
    let mut ctx = setup(&[], &["a"]);
    generate(&ctx, "a", json!({}));
    let pids = runner_pids(&ctx);
    assert_eq!(pids.len(), 1);
    ctx.daemon().kill9();
    wait_for("the orphaned runner to exit", || {
        std::fs::read_to_string(format!("/proc/{}/stat", pids[0]))
            .map_or(true, |s| s.contains(") Z"))
    });
}

/// CPU time a process has used, in clock ticks.
fn cpu_ticks(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    // utime and stime: fields 14 and 15, the 12th and 13th after the name.
    fields
        .get(11..13)
        .map_or(0, |f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum())
}

/// A client that stops reading mid-stream and then leaves must not wedge the
/// model: the runner, blocked on the full pipe, is released, and the next
/// request is answered.
#[test]
fn a_client_that_stalls_then_leaves_does_not_wedge_the_model() {
    let ctx = setup(&[], &["a"]);
    let stream = long_generation(&ctx, "a");
    let pid = runner_pids(&ctx).pop().unwrap();
    // Wait until every buffer is full and the runner stops computing.
    let mut last = cpu_ticks(&pid);
    wait_for("the runner to block on the unread stream", || {
        std::thread::sleep(Duration::from_millis(300));
        let now = cpu_ticks(&pid);
        std::mem::replace(&mut last, now) == now
    });
    drop(stream);
    let v = generate(&ctx, "a", json!({}));
    assert_eq!(v["done"], true);
}

/// 32 concurrent chats to one model (`num_parallel` 4): none is lost, and
/// each answer is the one the same request gets alone (same seed, same
/// output: requests do not leak into each other's sampling or cache). With
/// `max_queue` 8 the excess gets 503, and every admitted request still
/// completes correctly. (48 tokens each keep the model busy long enough
/// for the 32 to arrive while it is.)
#[test]
fn thirty_two_concurrent_chats_complete_independently() {
    for (max_queue, expect_refusals) in [("512", false), ("8", true)] {
        let ctx = setup(
            &[("LLMPM_NUM_PARALLEL", "4"), ("LLMPM_MAX_QUEUE", max_queue)],
            &["a"],
        );
        let body = |i: usize| {
            json!({"model": "a", "stream": false,
                "messages": [{"role": "user", "content": format!("question {}", i % 4)}],
                "options": {"temperature": 0.9, "seed": 42, "num_predict": 48}})
        };
        let alone: Vec<Value> = (0..4)
            .map(|i| {
                let r = post(&ctx, "/api/chat", &body(i));
                assert_eq!(r.status, 200, "{}", r.text());
                r.json()["message"]["content"].clone()
            })
            .collect();
        assert!(
            alone.windows(2).any(|w| w[0] != w[1]),
            "the four questions should not all get the same answer: {alone:?}"
        );
        let handles: Vec<_> = (0..32)
            .map(|i| {
                let socket = ctx.socket();
                let b = body(i).to_string();
                std::thread::spawn(move || {
                    (
                        i,
                        call_unix(&socket, "POST", "/api/chat", b.as_bytes()).unwrap(),
                    )
                })
            })
            .collect();
        let (mut ok, mut refused) = (0, 0);
        for h in handles {
            let (i, r) = h.join().unwrap();
            match r.status {
                200 => {
                    ok += 1;
                    assert_eq!(r.json()["message"]["content"], alone[i % 4], "request {i}");
                }
                503 if expect_refusals => refused += 1,
                s => panic!("request {i}: {s} {}", r.text()),
            }
        }
        assert_eq!(ok + refused, 32, "no request lost");
        if expect_refusals {
            assert!(refused > 0 && ok >= 4, "ok {ok}, refused {refused}");
        }
        // Nothing broke: the model still answers.
        assert_eq!(
            post(&ctx, "/api/chat", &body(0)).json()["message"]["content"],
            alone[0]
        );
    }
}

/// With `num_parallel = 2` a second request runs beside a long one instead
/// of waiting for it: a two-token answer started after a 1500-token one
/// finishes first, and the long one still runs to its full length.
#[test]
fn parallel_requests_run_side_by_side() {
    let ctx = setup(&[("LLMPM_NUM_PARALLEL", "2")], &["a"]);
    let long = long_generation(&ctx, "a");
    let short = short_generation_in_background(&ctx, "a").join().unwrap();
    assert_eq!(short.status, 200, "{}", short.text());
    let short_done = humantime_parse(short.json()["created_at"].as_str().unwrap());
    let last = long.finish();
    assert_eq!(last["done"], true, "{last}");
    assert_eq!(last["eval_count"], 1500, "{last}");
    let long_done = humantime_parse(last["created_at"].as_str().unwrap());
    // Each slot has its own cache: the estimate counts two.
    assert_eq!(
        ps(&ctx)[0]["size"],
        shape_of_first_model().estimate(2 * NUM_CTX)
    );
    assert!(
        short_done < long_done,
        "the short request waited for the long one: done at {short_done:?}, the long one at {long_done:?}"
    );
}
