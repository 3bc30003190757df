//! Prompt fitting against Ollama's one-message-at-a-time drop, and the
//! cache of resolved models.

use std::cell::Cell;
use std::sync::Arc;

use llmpm_spec::api::Message;
use llmpm_spec::media_type::{ollama, DOCKER_CONFIG};
use llmpm_spec::{Descriptor, Manifest, MediaType, Reference};

use super::prompt::{fit, Prompt};
use super::Models;
use crate::llm::error::LlmError;
use crate::store::{Store, StoreError};

fn msg(role: &str, content: &str) -> Message {
    Message::new(role, content)
}

/// A stand-in template: one line per message.
fn render(messages: &[Message]) -> Result<Prompt, LlmError> {
    let text = messages
        .iter()
        .map(|m| format!("{}: {}\n", m.role, m.content))
        .collect();
    Ok(Prompt {
        text,
        add_bos: true,
        ..Prompt::default()
    })
}

/// Ollama's loop: count, drop the oldest droppable message, until it fits.
fn one_at_a_time(messages: &[Message], limit: usize) -> Prompt {
    let mut kept = messages.to_vec();
    let mut prompt = render(&kept).unwrap();
    if kept.len() < 2 {
        return prompt;
    }
    loop {
        let droppable = kept[..kept.len() - 1]
            .iter()
            .position(|m| m.role != "system");
        match droppable {
            Some(i) if prompt.text.len() > limit => {
                kept.remove(i);
                prompt = render(&kept).unwrap();
            }
            _ => return prompt,
        }
    }
}

fn fitted(messages: &[Message], limit: usize, counts: &Cell<usize>) -> Prompt {
    let run = fit(messages, limit, render, |p| {
        counts.set(counts.get() + 1);
        std::future::ready(Ok(p.text.len()))
    });
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(run)
        .unwrap()
}

#[test]
fn bisection_drops_what_one_at_a_time_drops() {
    let mut rng = fastrand::Rng::with_seed(7);
    for case in 0..400 {
        let n = rng.usize(0..24);
        let messages: Vec<Message> = (0..n)
            .map(|i| {
                let role = match rng.u8(0..10) {
                    0 => "system",
                    r if r % 2 == 0 => "user",
                    _ => "assistant",
                };
                msg(role, &"x".repeat(rng.usize(0..40) + i % 3))
            })
            .collect();
        let whole = render(&messages).unwrap().text.len();
        let limit = rng.usize(0..whole + 10);
        let counts = Cell::new(0);
        let got = fitted(&messages, limit, &counts);
        assert_eq!(got, one_at_a_time(&messages, limit), "case {case}");
        // A count for the whole prompt, one for a single drop, then a bisection.
        let bound = 2 + (usize::BITS - n.leading_zeros()) as usize;
        assert!(
            counts.get() <= bound,
            "case {case}: {} counts",
            counts.get()
        );
    }
}

#[test]
fn system_messages_and_the_last_message_stay() {
    let messages = [
        msg("system", "be brief"),
        msg("user", "one"),
        msg("assistant", "two"),
        msg("user", "three"),
    ];
    let counts = Cell::new(0);
    let got = fitted(&messages, 0, &counts);
    assert_eq!(got.text, "system: be brief\nuser: three\n");
    // One message: never counted.
    let counts = Cell::new(0);
    fitted(&messages[3..], 0, &counts);
    assert_eq!(counts.get(), 0);
}

/// A manifest with (not really GGUF) weights and a SYSTEM layer.
fn manifest(store: &Store, system: &str) -> Manifest {
    let w = store.put_bytes(b"weights").unwrap();
    let s = store.put_bytes(system.as_bytes()).unwrap();
    let c = store.put_bytes(b"{}").unwrap();
    Manifest::docker_v2(
        Descriptor::new(MediaType::new(DOCKER_CONFIG), c, 2),
        vec![
            Descriptor::new(MediaType::new(ollama::MODEL), w, 7),
            Descriptor::new(MediaType::new(ollama::SYSTEM), s, system.len() as u64),
        ],
    )
}

#[tokio::test]
async fn a_resolution_is_kept_while_the_manifest_is_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let models: Models<u64> = Models::new(store.clone(), |f| f.file_len());
    let name: Reference = "a".parse().unwrap();
    store.put_manifest(&name, &manifest(&store, "one")).unwrap();
    let first = models.resolve(&name).await.unwrap();
    assert_eq!(first.system.as_deref(), Some("one"));
    assert_eq!(first.name, "a:latest");
    // Not a GGUF: the caller's part is its default.
    assert_eq!(first.shape, 0);
    assert!(Arc::ptr_eq(&first, &models.resolve(&name).await.unwrap()));
    // The same name, another manifest: read again.
    store.put_manifest(&name, &manifest(&store, "two")).unwrap();
    let second = models.resolve(&name).await.unwrap();
    assert_eq!(second.system.as_deref(), Some("two"));
    assert_ne!(first.digest, second.digest);
    // Gone from the store: gone from the cache.
    store.delete(&name).unwrap();
    assert!(matches!(
        models.resolve(&name).await,
        Err(LlmError::Store(StoreError::ModelNotFound(_)))
    ));
}

/// The grammar a forced call is held to: the template's tag, then the
/// call as a JSON schema (the tool's name, its parameters as arguments).
#[test]
fn forced_call_grammars() {
    use super::{call_grammar, ToolChoice};
    use crate::template::ToolCallFormat;
    use llmpm_spec::api::Tool;
    use serde_json::json;

    let tools = [
        Tool::function(
            "get_weather",
            "",
            json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
        ),
        Tool::function("now", "", serde_json::Value::Null),
    ];
    let fmt = |tag: &str, key: &str| ToolCallFormat {
        tag: tag.into(),
        arguments_key: key.into(),
        alt_prefix: None,
    };
    let named = ToolChoice::Function("get_weather".into());
    assert_eq!(
        call_grammar(&fmt("<tool_call>", "arguments"), &tools, &named),
        "start: \"<tool_call>\" WS? call\n\
         call: %json {\"type\":\"object\",\"properties\":{\"name\":{\"const\":\"get_weather\"},\"arguments\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}},\"required\":[\"city\"]}},\"required\":[\"name\",\"arguments\"],\"additionalProperties\":false}\n\
         WS: /[ \\t\\r\\n]+/\n"
    );
    // Llama: bare JSON with "parameters"; `required`: any of the tools.
    let g = call_grammar(&fmt("{", "parameters"), &tools, &ToolChoice::Required);
    assert!(
        g.starts_with("start: call\ncall: %json {\"anyOf\":[{"),
        "{g}"
    );
    assert!(g.contains("\"name\":{\"const\":\"now\"}"), "{g}");
    assert!(g.contains("\"parameters\":{\"type\":\"object\"}"), "{g}");
    assert!(g.contains("\"required\":[\"name\",\"parameters\"]"), "{g}");
    // Mistral: the list's bracket is closed after the call.
    let g = call_grammar(&fmt("[TOOL_CALLS] [", "arguments"), &tools, &named);
    assert!(
        g.starts_with("start: \"[TOOL_CALLS] [\" WS? call WS? \"]\"\n"),
        "{g}"
    );
}

/// The daemon builds a blob's tokenizer once and keeps a few: the same one
/// for the same blob, none for a file that is not a GGUF (the runner
/// counts then), the least recently used going when the cache is full.
#[tokio::test]
async fn tokenizers_are_built_once_per_blob_and_bounded() {
    use super::tokens::Tokenizers;
    use llmpm_gguf::tiny::{tiny_llama_bytes, TinyLlamaSpec};

    let dir = tempfile::tempdir().unwrap();
    let gguf = tiny_llama_bytes(&TinyLlamaSpec::default()).unwrap();
    let blobs: Vec<_> = (0..6)
        .map(|i| {
            let p = dir.path().join(format!("blob{i}"));
            std::fs::write(&p, &gguf).unwrap();
            p
        })
        .collect();
    let cache = Tokenizers::default();
    let first = cache.get(&blobs[0]).await.unwrap();
    assert!(Arc::ptr_eq(&first, &cache.get(&blobs[0]).await.unwrap()));
    let text = "<|begin_of_text|>hello<|eot_id|>";
    assert_eq!(
        first.count(text, false, true, &mut Default::default()),
        first.encode(text, false, true).len()
    );
    for b in &blobs[1..] {
        cache.get(b).await.unwrap();
        // The first stays in use.
        cache.get(&blobs[0]).await.unwrap();
    }
    assert_eq!(cache.len(), 4);
    assert!(Arc::ptr_eq(&first, &cache.get(&blobs[0]).await.unwrap()));
    let junk = dir.path().join("junk");
    std::fs::write(&junk, b"not a gguf").unwrap();
    assert!(cache.get(&junk).await.is_none());
}
