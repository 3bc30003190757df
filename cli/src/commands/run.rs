//! `llmpm run MODEL [PROMPT…]`: one answer to a prompt (from the arguments
//! or piped stdin), or a simple chat on a terminal (`/bye` or Ctrl-D leaves,
//! `/clear` forgets the conversation). A missing model is pulled first.

use std::io::{BufRead, IsTerminal, Read};

use anyhow::Context;
use http_body_util::BodyExt;
use llmpm_spec::api::{ChatRequest, ChatResponse, Message, PullRequest, ShowRequest};

use crate::cli::RunArgs;
use crate::client::{Client, StatusError};
use crate::printer::Printer;

/// Runs `llmpm run`.
pub async fn run(args: &RunArgs, client: &Client, printer: &Printer) -> anyhow::Result<()> {
    super::parse_name(&args.model)?;
    ensure_model(args, client, printer).await?;
    let mut prompt = args.prompt.join(" ");
    let stdin = std::io::stdin();
    if prompt.is_empty() && !stdin.is_terminal() {
        stdin
            .lock()
            .read_to_string(&mut prompt)
            .context("Failed to read the prompt from stdin")?;
    }
    if !prompt.trim().is_empty() {
        let messages = vec![user(prompt)];
        answer(args, client, printer, &messages).await?;
        return Ok(());
    }
    chat(args, client, printer).await
}

fn user(content: String) -> Message {
    Message {
        role: "user".into(),
        content,
    }
}

async fn ensure_model(args: &RunArgs, client: &Client, printer: &Printer) -> anyhow::Result<()> {
    let req = ShowRequest {
        model: args.model.clone(),
        ..ShowRequest::default()
    };
    match client.show(&req).await {
        Ok(_) => Ok(()),
        Err(e)
            if e.downcast_ref::<StatusError>()
                .is_some_and(|s| s.status == 404) =>
        {
            printer.status(&format!("pulling `{}`", args.model));
            let pull = PullRequest {
                model: args.model.clone(),
                insecure: false,
                stream: Some(true),
            };
            super::pull::follow(client.pull(&pull).await, printer, "pull")
                .await
                .with_context(|| format!("Failed to pull `{}`", args.model))
        }
        Err(e) => Err(e),
    }
}

/// Streams one answer to stdout and returns its text.
async fn answer(
    args: &RunArgs,
    client: &Client,
    printer: &Printer,
    messages: &[Message],
) -> anyhow::Result<String> {
    let req = ChatRequest {
        model: args.model.clone(),
        messages: messages.to_vec(),
        stream: Some(true),
        keep_alive: args.keepalive.clone().map(serde_json::Value::String),
        ..ChatRequest::default()
    };
    let mut body = client
        .chat(&req)
        .await
        .with_context(|| format!("Failed to run `{}`", args.model))?;
    let mut buf = Vec::new();
    let mut text = String::new();
    let mut last = None;
    loop {
        while let Some(end) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=end).collect();
            let value: serde_json::Value = match serde_json::from_slice(&line) {
                Ok(v) => v,
                Err(_) => continue,
            };
            if let Some(err) = value.get("error").and_then(|e| e.as_str()) {
                anyhow::bail!("{err}");
            }
            let r: ChatResponse =
                serde_json::from_value(value).context("llmpmd sent an unexpected chat line")?;
            printer.data(&r.message.content)?;
            text.push_str(&r.message.content);
            if r.done {
                last = Some(r);
            }
        }
        match body.frame().await {
            None => break,
            Some(frame) => {
                let frame = frame.context("Failed to read llmpmd's answer")?;
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                }
            }
        }
    }
    printer.data("\n")?;
    if args.verbose {
        if let Some(r) = last {
            let m = &r.metrics;
            let secs = |ns: Option<u64>| ns.unwrap_or(0) as f64 / 1e9;
            let rate = |n: Option<u64>, ns: Option<u64>| {
                let s = secs(ns);
                if s > 0.0 {
                    n.unwrap_or(0) as f64 / s
                } else {
                    0.0
                }
            };
            printer.status(&format!(
                "total duration:       {:.3}s\nload duration:        {:.3}s\nprompt eval count:    {} token(s)\nprompt eval duration: {:.3}s\nprompt eval rate:     {:.2} tokens/s\neval count:           {} token(s)\neval duration:        {:.3}s\neval rate:            {:.2} tokens/s",
                secs(m.total_duration),
                secs(m.load_duration),
                m.prompt_eval_count.unwrap_or(0),
                secs(m.prompt_eval_duration),
                rate(m.prompt_eval_count, m.prompt_eval_duration),
                m.eval_count.unwrap_or(0),
                secs(m.eval_duration),
                rate(m.eval_count, m.eval_duration),
            ));
        }
    }
    Ok(text)
}

async fn chat(args: &RunArgs, client: &Client, printer: &Printer) -> anyhow::Result<()> {
    let mut history: Vec<Message> = Vec::new();
    let stdin = std::io::stdin();
    loop {
        printer.prompt(">>> ");
        let mut line = String::new();
        if stdin
            .lock()
            .read_line(&mut line)
            .context("Failed to read stdin")?
            == 0
        {
            return Ok(());
        }
        let line = line.trim_end_matches(['\n', '\r']);
        match line.trim() {
            "" => continue,
            "/bye" => return Ok(()),
            "/clear" => {
                history.clear();
                printer.status("Cleared session context");
                continue;
            }
            _ => {}
        }
        history.push(user(line.to_string()));
        let text = answer(args, client, printer, &history).await?;
        history.push(Message {
            role: "assistant".into(),
            content: text,
        });
    }
}
