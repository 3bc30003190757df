//! gpt-oss's output format, harmony, read as Ollama's `harmony` parser
//! reads it: the reply is messages `<|start|>{header}<|message|>{body}<|end|>`
//! whose header names a channel (`<|channel|>analysis`, `commentary`,
//! `final`) and maybe a recipient (`to=functions.NAME`). The `analysis`
//! channel is reasoning, `final` (and `commentary` to no one) the answer,
//! and a message to `functions.NAME` a tool call whose body is the JSON
//! arguments. The prompt ends with `<|start|>assistant`, so the reply
//! starts in a header. The reply's last message ends with `<|return|>` or
//! `<|call|>`, which stop generation and are not printed: the stream's end
//! closes it.

use serde_json::{Map, Value};

use super::thinking::overlap;
use super::{FoundCall, Parsed};

const START: &str = "<|start|>";
const CHANNEL: &str = "<|channel|>";
const MESSAGE: &str = "<|message|>";
const CONSTRAIN: &str = "<|constrain|>";
/// The tags that end a message: `<|end|>`, and the stop tokens where the
/// runner prints them.
const ENDS: [&str; 3] = ["<|end|>", "<|call|>", "<|return|>"];

/// The control tokens harmony's text is made of, which the runner must
/// print for this parser to see them.
pub const HARMONY_TAGS: [&str; 7] = [
    START,
    CHANNEL,
    MESSAGE,
    CONSTRAIN,
    "<|end|>",
    "<|call|>",
    "<|return|>",
];

/// Where the parser is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Between messages: waiting for `<|start|>`.
    BetweenMessages,
    /// In a header, up to `<|message|>`.
    Header,
    /// In a message's body.
    Body(Kind),
}

/// What a message's body is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Thinking,
    Content,
    /// A call to this tool; the body is its arguments.
    Call(String),
}

/// Splits harmony text into reasoning, answer and tool calls.
#[derive(Debug, Clone)]
pub struct HarmonyParser {
    state: State,
    acc: String,
    /// The body of the call being read.
    args: String,
    /// A header has ended: the reply is harmony.
    seen_message: bool,
}

impl Default for HarmonyParser {
    fn default() -> Self {
        HarmonyParser::new()
    }
}

impl HarmonyParser {
    /// A parser of a reply whose prompt ended with `<|start|>assistant`.
    pub fn new() -> HarmonyParser {
        HarmonyParser {
            state: State::Header,
            acc: String::new(),
            args: String::new(),
            seen_message: false,
        }
    }

    /// Adds text; returns what is certain now.
    pub fn push(&mut self, text: &str) -> Parsed {
        self.acc.push_str(text);
        let mut out = Parsed::default();
        while self.step(&mut out) {}
        out
    }

    /// Ends the reply: the open message ends here (its stop token was not
    /// printed). Text between messages is dropped and so is a header never
    /// finished, as Ollama drops them, but a reply that never wrote a header
    /// (a model that ignored the format) is the answer as it came.
    pub fn finish(&mut self) -> Parsed {
        let mut out = Parsed::default();
        let rest = std::mem::take(&mut self.acc);
        match std::mem::replace(&mut self.state, State::BetweenMessages) {
            State::Body(kind) => self.end_message(&kind, &rest, &mut out),
            State::Header if !self.seen_message => out.content.push_str(&rest),
            State::Header | State::BetweenMessages => {}
        }
        out
    }

    /// One step; whether another may make progress.
    fn step(&mut self, out: &mut Parsed) -> bool {
        match self.state.clone() {
            State::BetweenMessages => match self.acc.find(START) {
                Some(at) => {
                    self.acc.drain(..at + START.len());
                    self.state = State::Header;
                    true
                }
                None => {
                    // Keep only what may begin a `<|start|>`.
                    let keep = overlap(&self.acc, START);
                    self.acc.drain(..self.acc.len() - keep);
                    false
                }
            },
            State::Header => match self.acc.find(MESSAGE) {
                Some(at) => {
                    let kind = header_kind(&self.acc[..at]);
                    self.acc.drain(..at + MESSAGE.len());
                    self.seen_message = true;
                    self.args.clear();
                    self.state = State::Body(kind);
                    true
                }
                None => false,
            },
            State::Body(kind) => {
                let end = ENDS
                    .iter()
                    .filter_map(|t| self.acc.find(t).map(|at| (at, t.len())))
                    .min();
                if let Some((at, len)) = end {
                    let body = self.acc[..at].to_owned();
                    self.acc.drain(..at + len);
                    self.state = State::BetweenMessages;
                    self.end_message(&kind, &body, out);
                    return true;
                }
                let held = ENDS
                    .iter()
                    .map(|t| overlap(&self.acc, t))
                    .max()
                    .unwrap_or(0);
                let ready: String = self.acc.drain(..self.acc.len() - held).collect();
                match &kind {
                    Kind::Thinking => out.thinking.push_str(&ready),
                    Kind::Content => out.content.push_str(&ready),
                    Kind::Call(_) => self.args.push_str(&ready),
                }
                false
            }
        }
    }

    /// The last of a message's body, `rest`, and the message's end.
    fn end_message(&mut self, kind: &Kind, rest: &str, out: &mut Parsed) {
        match kind {
            Kind::Thinking => out.thinking.push_str(rest),
            Kind::Content => out.content.push_str(rest),
            Kind::Call(name) => {
                self.args.push_str(rest);
                let args = std::mem::take(&mut self.args);
                out.calls.push(FoundCall {
                    name: name.clone(),
                    arguments: arguments(&args),
                });
            }
        }
    }
}

/// What a header (`assistant<|channel|>analysis`, `<|channel|>commentary
/// to=functions.get_weather <|constrain|>json`) makes of its body.
fn header_kind(header: &str) -> Kind {
    let header = header.replace(CONSTRAIN, " ");
    let channel = header.find(CHANNEL).map(|at| {
        header[at + CHANNEL.len()..]
            .split(|c: char| c.is_whitespace() || c == '<')
            .next()
            .unwrap_or_default()
            .to_owned()
    });
    let recipient = header
        .split(|c: char| c.is_whitespace() || c == '<' || c == '>')
        .chain(header.split(CHANNEL))
        .find_map(|w| w.trim().strip_prefix("to=").map(str::to_owned));
    if let Some(to) = recipient {
        // `functions.NAME` for the request's tools; built-ins keep their names.
        let to = to.split_whitespace().next().unwrap_or_default();
        let name = to.strip_prefix("functions.").unwrap_or(to);
        return Kind::Call(name.to_owned());
    }
    match channel.as_deref() {
        Some("analysis") => Kind::Thinking,
        _ => Kind::Content,
    }
}

/// A call's body as its arguments: a JSON object, else none (a body that
/// is no JSON object is kept whole under `"input"` rather than lost).
fn arguments(body: &str) -> Map<String, Value> {
    match serde_json::from_str::<Value>(body.trim()) {
        Ok(Value::Object(m)) => m,
        _ if body.trim().is_empty() => Map::new(),
        _ => {
            let mut m = Map::new();
            m.insert("input".into(), Value::String(body.trim().to_owned()));
            m
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The whole text at once, and one char at a time (as a stream may cut
    /// it anywhere, tags included), give the same parts.
    fn parse(text: &str) -> Parsed {
        let mut whole = HarmonyParser::new();
        let mut a = whole.push(text);
        let end = whole.finish();
        a.thinking.push_str(&end.thinking);
        a.content.push_str(&end.content);
        a.calls.extend(end.calls);
        let mut streamed = HarmonyParser::new();
        let mut b = Parsed::default();
        let mut buf = [0u8; 4];
        for c in text.chars().map(|c| c.encode_utf8(&mut buf).to_owned()) {
            let p = streamed.push(&c);
            b.thinking.push_str(&p.thinking);
            b.content.push_str(&p.content);
            b.calls.extend(p.calls);
        }
        let end = streamed.finish();
        b.thinking.push_str(&end.thinking);
        b.content.push_str(&end.content);
        b.calls.extend(end.calls);
        assert_eq!(a, b, "streamed differently: {text:?}");
        a
    }

    #[test]
    fn analysis_is_thinking_and_final_is_the_answer() {
        // gpt-oss-20b's reply to "What is 2+2?" after `<|start|>assistant`;
        // `<|return|>` stops generation and is not printed.
        let p = parse(
            "<|channel|>analysis<|message|>User asks: \"What is 2+2?\" Simple arithmetic. \
             Provide answer.<|end|><|start|>assistant<|channel|>final<|message|>2 + 2 = 4.",
        );
        assert_eq!(
            p.thinking,
            "User asks: \"What is 2+2?\" Simple arithmetic. Provide answer."
        );
        assert_eq!(p.content, "2 + 2 = 4.");
        assert!(p.calls.is_empty());
        // Printed stop tokens end the message too.
        let p = parse("<|channel|>final<|message|>Hi!<|return|>");
        assert_eq!((p.thinking.as_str(), p.content.as_str()), ("", "Hi!"));
    }

    #[test]
    fn a_message_to_a_function_is_a_call() {
        let p = parse(
            "<|channel|>analysis<|message|>Need to use function get_weather.<|end|>\
             <|start|>assistant<|channel|>commentary to=functions.get_weather \
             <|constrain|>json<|message|>{\"location\":\"Paris, France\",\"unit\":\"celsius\"}",
        );
        assert_eq!(p.thinking, "Need to use function get_weather.");
        assert_eq!(p.content, "");
        assert_eq!(p.calls.len(), 1);
        assert_eq!(p.calls[0].name, "get_weather");
        assert_eq!(p.calls[0].arguments["location"], "Paris, France");
        assert_eq!(p.calls[0].arguments["unit"], "celsius");
        // The recipient may come before the channel, and `<|call|>` printed
        // ends the call; a body that is no JSON object is kept.
        let p = parse(
            " to=functions.lookup<|channel|>commentary json<|message|>{}<|call|>\
             <|start|>assistant to=functions.echo<|channel|>commentary<|message|>plain",
        );
        assert_eq!(p.calls.len(), 2);
        assert_eq!(p.calls[0].name, "lookup");
        assert!(p.calls[0].arguments.is_empty());
        assert_eq!(p.calls[1].name, "echo");
        assert_eq!(p.calls[1].arguments["input"], "plain");
    }

    #[test]
    fn commentary_to_no_one_is_answer_and_text_outside_messages_goes() {
        let p = parse("<|channel|>commentary<|message|>Working on it.<|end|>");
        assert_eq!(p.content, "Working on it.");
        // Text between messages and a header never finished are dropped.
        let p = parse("<|channel|>final<|message|>a<|end|>stray<|start|>assistant<|chan");
        assert_eq!(p.content, "a");
        // A reply with no header at all is the answer as it came.
        let p = parse("just text");
        assert_eq!(p.content, "just text");
    }
}
