//! Reading a model's output as Ollama does: the reasoning between the
//! template's think tags ([`thinking`]) and the tool calls after its call
//! tag ([`tools`]), or gpt-oss's channels and recipients ([`harmony`]),
//! taken out of the text as it streams, so the API handlers only frame
//! [`Event`]s.
//!
//! Reasoning is split first and the rest goes to the tool parser, so
//! reasoning always streams before the answer it precedes, and a call is
//! sent once it is complete, in one event.

pub mod harmony;
pub mod thinking;
pub mod tools;

use std::collections::VecDeque;

use futures_util::StreamExt;
use llmpm_spec::api::{ToolCall, ToolCallFunction};

use super::handle::{Event, Events};

pub use harmony::{HarmonyParser, HARMONY_TAGS};
pub use thinking::ThinkingParser;
pub use tools::{FoundCall, ToolParser};

/// What one piece of output held.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    /// Reasoning.
    pub thinking: String,
    /// Answer text.
    pub content: String,
    /// Complete tool calls.
    pub calls: Vec<FoundCall>,
}

/// Splits a model's output into reasoning, answer text and tool calls.
#[derive(Debug, Clone, Default)]
pub struct OutputParser {
    thinking: Option<ThinkingParser>,
    tools: Option<ToolParser>,
    /// gpt-oss: harmony does both.
    harmony: Option<HarmonyParser>,
}

impl OutputParser {
    /// A parser that splits reasoning with `thinking` (if any) and finds
    /// tool calls with `tools` (if any).
    pub fn new(thinking: Option<ThinkingParser>, tools: Option<ToolParser>) -> OutputParser {
        OutputParser {
            thinking,
            tools,
            harmony: None,
        }
    }

    /// A parser of harmony (gpt-oss): reasoning, answer and calls by channel.
    pub fn harmony() -> OutputParser {
        OutputParser {
            thinking: None,
            tools: None,
            harmony: Some(HarmonyParser::new()),
        }
    }

    /// Whether it does anything (otherwise text passes through as it is).
    pub fn is_active(&self) -> bool {
        self.thinking.is_some() || self.tools.is_some() || self.harmony.is_some()
    }

    /// Adds text; returns what is certain now.
    pub fn push(&mut self, text: &str) -> Parsed {
        if let Some(h) = &mut self.harmony {
            return h.push(text);
        }
        let (thinking, content) = match &mut self.thinking {
            Some(t) => t.push(text),
            None => (String::new(), text.to_owned()),
        };
        self.answer(thinking, &content)
    }

    /// Ends the output: whatever was held back.
    pub fn finish(&mut self) -> Parsed {
        if let Some(h) = &mut self.harmony {
            return h.finish();
        }
        let (thinking, content) = match &mut self.thinking {
            Some(t) => t.finish(),
            None => (String::new(), String::new()),
        };
        let mut out = self.answer(thinking, &content);
        if let Some(t) = &mut self.tools {
            out.content.push_str(&t.finish());
        }
        out
    }

    fn answer(&mut self, thinking: String, content: &str) -> Parsed {
        let (calls, content) = match &mut self.tools {
            Some(t) if !content.is_empty() => t.push(content),
            _ => (Vec::new(), content.to_owned()),
        };
        Parsed {
            thinking,
            content,
            calls,
        }
    }
}

/// An id for a tool call, as Ollama makes them (`call_` and 8 characters).
pub fn call_id() -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let tail: String = (0..8)
        .map(|_| char::from(CHARS[fastrand::usize(..CHARS.len())]))
        .collect();
    format!("call_{tail}")
}

/// The events of `events` read through `parser`: [`Event::Thinking`] and
/// [`Event::ToolCall`] apart from [`Event::Text`], calls numbered in order
/// and given ids; the last chunk's text is parsed too, so [`Event::Done`]
/// comes with none.
pub fn parse_events(events: Events, parser: OutputParser) -> Events {
    if !parser.is_active() {
        return events;
    }
    struct State {
        events: Events,
        parser: OutputParser,
        queue: VecDeque<Event>,
        index: usize,
        ended: bool,
    }
    fn enqueue(s: &mut State, p: Parsed) {
        if !p.thinking.is_empty() {
            s.queue.push_back(Event::Thinking(p.thinking));
        }
        if !p.content.is_empty() {
            s.queue.push_back(Event::Text(p.content));
        }
        for c in p.calls {
            s.queue.push_back(Event::ToolCall(ToolCall {
                id: call_id(),
                function: ToolCallFunction {
                    index: s.index,
                    name: c.name,
                    arguments: c.arguments,
                },
            }));
            s.index += 1;
        }
    }
    let state = State {
        events,
        parser,
        queue: VecDeque::new(),
        index: 0,
        ended: false,
    };
    futures_util::stream::unfold(state, |mut s| async move {
        loop {
            if let Some(e) = s.queue.pop_front() {
                return Some((Ok(e), s));
            }
            if s.ended {
                return None;
            }
            match s.events.next().await {
                None => return None,
                Some(Err(e)) => {
                    s.ended = true;
                    return Some((Err(e), s));
                }
                Some(Ok(Event::Text(t))) => {
                    let p = s.parser.push(&t);
                    enqueue(&mut s, p);
                }
                Some(Ok(Event::Done(mut c))) => {
                    let p = s.parser.push(&std::mem::take(&mut c.content));
                    enqueue(&mut s, p);
                    let p = s.parser.finish();
                    enqueue(&mut s, p);
                    s.queue.push_back(Event::Done(c));
                    s.ended = true;
                }
                // Already parsed (by another parser): passed on.
                Some(Ok(other)) => s.queue.push_back(other),
            }
        }
    })
    .boxed()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
