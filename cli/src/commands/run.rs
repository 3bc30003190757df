//! `llmpm run MODEL [PROMPT…]`: one answer to a prompt (from the arguments
//! or piped stdin), or a chat on a terminal as `ollama run` has it: line
//! editing and history, `"""` multi-line messages, `/set`, `/show`,
//! `/clear`, `/bye`; Ctrl-C stops an answer, Ctrl-D leaves. A missing model
//! is pulled first. A thinking model's reasoning is shown dimmed before its
//! answer (`--hidethinking` leaves it out; `--think`, `/set think` and
//! `/set nothink` choose whether and how hard it thinks).

use std::io::{IsTerminal, Read};

use anyhow::Context;
use http_body_util::BodyExt;
use llmpm_spec::api::{ChatRequest, ChatResponse, Message, PullRequest, ShowRequest, Think};

use crate::cli::RunArgs;
use crate::client::Client;
use crate::error::StatusError;
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
        let req = ChatRequest {
            model: args.model.clone(),
            messages: vec![user(prompt)],
            stream: Some(true),
            think: args.think,
            ..ChatRequest::default()
        };
        answer(args, client, printer, req).await?;
        return Ok(());
    }
    chat(args, client, printer).await
}

fn user(content: String) -> Message {
    Message::new("user", content)
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
                limit_rate: None,
            };
            super::pull::follow(client.pull(&pull).await, printer, "pull")
                .await
                .with_context(|| format!("Failed to pull `{}`", args.model))
        }
        Err(e) => Err(e),
    }
}

/// One line of a streamed chat answer: the response, nothing (not JSON,
/// e.g. blank), or the daemon's `{"error"}` as an error.
pub fn parse_chat_line(line: &[u8]) -> anyhow::Result<Option<ChatResponse>> {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(line) else {
        return Ok(None);
    };
    if let Some(err) = value.get("error").and_then(|e| e.as_str()) {
        anyhow::bail!("{err}");
    }
    serde_json::from_value(value)
        .map(Some)
        .context("llmpmd sent an unexpected chat line")
}

/// Streams one answer to stdout and returns its text.
async fn answer(
    args: &RunArgs,
    client: &Client,
    printer: &Printer,
    mut req: ChatRequest,
) -> anyhow::Result<String> {
    req.format = args.format.clone().map(serde_json::Value::String);
    req.keep_alive = args.keepalive.clone().map(serde_json::Value::String);
    let mut body = client
        .chat(&req)
        .await
        .with_context(|| format!("Failed to run `{}`", args.model))?;
    let mut buf = Vec::new();
    let mut text = String::new();
    let mut last = None;
    let mut thoughts = Thoughts::new(args.hidethinking);
    loop {
        while let Some(end) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=end).collect();
            let Some(r) = parse_chat_line(&line)? else {
                continue;
            };
            thoughts.show(printer, &r.message.thinking)?;
            if !r.message.content.is_empty() {
                thoughts.close(printer)?;
            }
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
    thoughts.close(printer)?;
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

/// A thinking model's reasoning on the way to stdout: opened with
/// `Thinking...` and closed with `...done thinking.` as `ollama run` shows
/// it, dimmed on a terminal; nothing when hidden.
struct Thoughts {
    hide: bool,
    dim: bool,
    open: bool,
    ends_in_newline: bool,
}

/// ANSI dim and back to normal.
const DIM: &str = "\x1b[2m";
const NORMAL: &str = "\x1b[0m";

impl Thoughts {
    fn new(hide: bool) -> Thoughts {
        Thoughts {
            hide,
            dim: std::io::stdout().is_terminal(),
            open: false,
            ends_in_newline: true,
        }
    }

    fn style<'a>(&self, code: &'a str) -> &'a str {
        if self.dim {
            code
        } else {
            ""
        }
    }

    /// Prints reasoning, opening the block first.
    fn show(&mut self, printer: &Printer, thinking: &str) -> anyhow::Result<()> {
        if self.hide || thinking.is_empty() {
            return Ok(());
        }
        if !self.open {
            printer.data(&format!("{}Thinking...\n", self.style(DIM)))?;
            self.open = true;
        }
        printer.data(thinking)?;
        self.ends_in_newline = thinking.ends_with('\n');
        Ok(())
    }

    /// Ends an open block before the answer.
    fn close(&mut self, printer: &Printer) -> anyhow::Result<()> {
        if !self.open {
            return Ok(());
        }
        self.open = false;
        let newline = if self.ends_in_newline { "" } else { "\n" };
        printer.data(&format!(
            "{newline}...done thinking.\n\n{}",
            self.style(NORMAL)
        ))
    }
}

/// What `/set` changed in this chat session.
#[derive(Debug, Default)]
struct Session {
    history: Vec<Message>,
    system: Option<String>,
    options: serde_json::Map<String, serde_json::Value>,
    /// `--think`, then `/set think` and `/set nothink`.
    think: Option<Think>,
}

impl Session {
    /// The messages of the next request: the session's system prompt first.
    fn messages(&self) -> Vec<Message> {
        let mut out = Vec::with_capacity(self.history.len() + 1);
        if let Some(s) = &self.system {
            out.push(Message::new("system", s.clone()));
        }
        out.extend(self.history.iter().cloned());
        out
    }

    fn options(&self) -> Option<serde_json::Value> {
        (!self.options.is_empty()).then(|| serde_json::Value::Object(self.options.clone()))
    }

    /// `/set parameter NAME VALUE`: numbers and booleans as such, `stop`
    /// accumulates (as in Ollama), anything else as a string. The daemon
    /// checks names and ranges on the next request.
    fn set_parameter(&mut self, name: &str, value: &str) {
        let v = serde_json::from_str::<serde_json::Value>(value)
            .ok()
            .filter(|v| v.is_number() || v.is_boolean())
            .unwrap_or_else(|| serde_json::Value::String(value.to_string()));
        if name == "stop" {
            let e = self
                .options
                .entry("stop")
                .or_insert_with(|| serde_json::Value::Array(Vec::new()));
            if let serde_json::Value::Array(a) = e {
                a.push(serde_json::Value::String(value.to_string()));
            }
        } else {
            self.options.insert(name.to_string(), v);
        }
    }
}

const HELP: &str = "Available commands:
  /set parameter NAME VALUE   Set a model option for this session (temperature, num_ctx, stop, …)
  /set system TEXT            Set the system prompt for this session
  /set think [LEVEL]          Let a thinking model think (at low, medium or high)
  /set nothink                Answer without thinking
  /show info|system|parameters|template|license
  /clear                      Forget the conversation
  /bye                        Leave (or Ctrl-D)
  \"\"\"                         Begin or end a multi-line message
Ctrl-C stops an answer and keeps the session.";

/// One line from the editor; `None` on Ctrl-D.
fn read_line(
    rl: &mut rustyline::DefaultEditor,
    prompt: &str,
    printer: &Printer,
) -> anyhow::Result<Option<String>> {
    loop {
        match rl.readline(prompt) {
            Ok(line) => return Ok(Some(line)),
            Err(rustyline::error::ReadlineError::Interrupted) => {
                printer.status("Use Ctrl + d or /bye to exit.");
            }
            Err(rustyline::error::ReadlineError::Eof) => return Ok(None),
            Err(e) => return Err(e).context("Failed to read the terminal"),
        }
    }
}

/// Reads a `"""` message: text after the opening quotes, then lines until one
/// holding the closing quotes (text before them is kept).
fn read_multiline(
    rl: &mut rustyline::DefaultEditor,
    first: &str,
    printer: &Printer,
) -> anyhow::Result<Option<String>> {
    let mut text = String::new();
    let mut rest = first.to_string();
    loop {
        if let Some(end) = rest.find("\"\"\"") {
            text.push_str(&rest[..end]);
            return Ok(Some(text));
        }
        text.push_str(&rest);
        text.push('\n');
        match read_line(rl, "... ", printer)? {
            Some(l) => rest = l,
            None => return Ok(None),
        }
    }
}

/// `$LLMPM_HOME/history`, as Ollama keeps `~/.ollama/history`.
fn history_file() -> Option<std::path::PathBuf> {
    llmpm_spec::env::default_home(&llmpm_spec::env::ProcessEnv).map(|h| h.join("history"))
}

async fn show(
    args: &RunArgs,
    client: &Client,
    session: &Session,
    what: &str,
    printer: &Printer,
) -> anyhow::Result<()> {
    let req = ShowRequest {
        model: args.model.clone(),
        ..ShowRequest::default()
    };
    let info = client.show(&req).await?;
    let text = match what {
        "system" => session.system.clone().unwrap_or(info.system),
        "template" => info.template,
        "license" => info.license,
        "parameters" => {
            let mut t = info.parameters;
            for (k, v) in &session.options {
                t.push_str(&format!("\n{k} {v}  (this session)"));
            }
            t
        }
        "info" => {
            let d = &info.details;
            format!(
                "  family          {}\n  parameters      {}\n  quantization    {}\n  format          {}",
                d.family, d.parameter_size, d.quantization_level, d.format
            )
        }
        _ => {
            printer.status("Usage: /show info|system|parameters|template|license");
            return Ok(());
        }
    };
    if text.trim().is_empty() {
        printer.status(&format!("No {what} is set."));
    } else {
        printer.data_line(text.trim_end())?;
    }
    Ok(())
}

async fn chat(args: &RunArgs, client: &Client, printer: &Printer) -> anyhow::Result<()> {
    let mut session = Session {
        think: args.think,
        ..Session::default()
    };
    let mut rl = rustyline::DefaultEditor::new().context("Failed to start the line editor")?;
    let history = history_file();
    if let Some(h) = &history {
        let _ = rl.load_history(h);
    }
    let result = chat_loop(args, client, printer, &mut session, &mut rl).await;
    if let Some(h) = &history {
        let _ = rl.save_history(h);
    }
    result
}

async fn chat_loop(
    args: &RunArgs,
    client: &Client,
    printer: &Printer,
    session: &mut Session,
    rl: &mut rustyline::DefaultEditor,
) -> anyhow::Result<()> {
    loop {
        let Some(line) = read_line(rl, ">>> ", printer)? else {
            return Ok(());
        };
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        let _ = rl.add_history_entry(trimmed);
        let content = if let Some(rest) = trimmed.strip_prefix("\"\"\"") {
            match read_multiline(rl, rest, printer)? {
                Some(t) => t,
                None => return Ok(()),
            }
        } else if trimmed.starts_with('/') {
            let mut words = trimmed.splitn(3, char::is_whitespace);
            match (words.next(), words.next(), words.next()) {
                (Some("/bye" | "/exit"), _, _) => return Ok(()),
                (Some("/clear"), _, _) => {
                    session.history.clear();
                    printer.status("Cleared session context");
                }
                (Some("/set"), Some("think"), level) => match level.map(str::trim) {
                    None | Some("") => {
                        session.think = Some(Think::Bool(true));
                        printer.status("Set 'think' mode.");
                    }
                    Some(l) => match l.parse::<Think>() {
                        Ok(t @ Think::Level(_)) => {
                            session.think = Some(t);
                            printer.status(&format!("Set 'think' mode to '{l}'."));
                        }
                        _ => printer.status("Usage: /set think [low|medium|high]"),
                    },
                },
                (Some("/set"), Some("nothink"), _) => {
                    session.think = Some(Think::Bool(false));
                    printer.status("Set 'nothink' mode.");
                }
                (Some("/set"), Some("system"), Some(text)) => {
                    session.system = Some(text.trim().to_string());
                    printer.status("Set system message.");
                }
                (Some("/set"), Some("parameter"), Some(rest)) => match rest
                    .split_once(char::is_whitespace)
                {
                    Some((name, value)) => {
                        session.set_parameter(name, value.trim());
                        printer.status(&format!("Set parameter '{name}' to '{}'", value.trim()));
                    }
                    None => printer.status("Usage: /set parameter NAME VALUE"),
                },
                (Some("/show"), what, _) => {
                    if let Err(e) = show(args, client, session, what.unwrap_or(""), printer).await {
                        printer.error(&e, None);
                    }
                }
                (Some("/?" | "/help"), _, _) => printer.status(HELP),
                _ => printer.status(&format!("Unknown command '{trimmed}'. Type /? for help")),
            }
            continue;
        } else {
            line.clone()
        };
        session.history.push(user(content));
        let req = ChatRequest {
            model: args.model.clone(),
            messages: session.messages(),
            options: session.options(),
            stream: Some(true),
            think: session.think,
            ..ChatRequest::default()
        };
        // Ctrl-C while answering stops the answer (dropping the stream makes
        // the daemon stop generating) and keeps the session.
        let outcome = tokio::select! {
            r = answer(args, client, printer, req) => Some(r),
            _ = tokio::signal::ctrl_c() => None,
        };
        match outcome {
            Some(Ok(text)) => session.history.push(Message::new("assistant", text)),
            Some(Err(e)) => {
                // The turn did not happen: the session goes on without it.
                session.history.pop();
                printer.error(&e, None);
            }
            None => {
                session.history.pop();
                // Stopped maybe inside dimmed reasoning: back to normal.
                let reset = if std::io::stdout().is_terminal() {
                    NORMAL
                } else {
                    ""
                };
                let _ = printer.data(&format!("{reset}\n"));
            }
        }
    }
}
