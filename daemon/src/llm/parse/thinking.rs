//! The reasoning between a template's think tags, split from the answer as
//! the text streams in, as Ollama's `thinking.Parser` splits it: the
//! opening tag is looked for only at the start (after whitespace); text
//! that may be the start of a tag is held until it is not; whitespace
//! after either tag is dropped.

/// Where the parser is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before anything but whitespace: the opening tag may still come.
    LookingForOpening,
    /// Just after the opening tag: whitespace is dropped.
    StartedEatingWhitespace,
    /// Inside the reasoning.
    Thinking,
    /// Just after the closing tag: whitespace is dropped.
    DoneEatingWhitespace,
    /// In the answer.
    Done,
}

/// Splits reasoning from the answer.
#[derive(Debug, Clone)]
pub struct ThinkingParser {
    open: String,
    close: String,
    state: State,
    acc: String,
}

/// The longest suffix of `s` that is a proper prefix of `tag`, in bytes.
pub(super) fn overlap(s: &str, tag: &str) -> usize {
    (1..tag.len().min(s.len() + 1))
        .rev()
        .filter(|&i| tag.is_char_boundary(i))
        .find(|&i| s.ends_with(&tag[..i]))
        .unwrap_or(0)
}

impl ThinkingParser {
    /// A parser for reasoning between `open` and `close`.
    pub fn new(open: &str, close: &str) -> ThinkingParser {
        ThinkingParser {
            open: open.to_owned(),
            close: close.to_owned(),
            state: State::LookingForOpening,
            acc: String::new(),
        }
    }

    /// A parser whose opening tag was already written, by the template at
    /// the end of the prompt.
    #[must_use]
    pub fn opened(mut self) -> ThinkingParser {
        let open = self.open.clone();
        self.push(&open);
        self
    }

    /// Adds text; returns the reasoning and the answer text that are now
    /// certain.
    pub fn push(&mut self, text: &str) -> (String, String) {
        self.acc.push_str(text);
        let (mut thinking, mut content) = (String::new(), String::new());
        loop {
            let (t, c, again) = self.eat();
            thinking.push_str(&t);
            content.push_str(&c);
            if !again {
                return (thinking, content);
            }
        }
    }

    /// Ends the text: what was held back is released (reasoning that was
    /// never closed stays reasoning; an opening tag never finished is text).
    pub fn finish(&mut self) -> (String, String) {
        let acc = std::mem::take(&mut self.acc);
        match self.state {
            State::Thinking => (acc, String::new()),
            State::LookingForOpening | State::Done => (String::new(), acc),
            State::StartedEatingWhitespace | State::DoneEatingWhitespace => {
                (String::new(), String::new())
            }
        }
    }

    /// One step; the flag says whether another may make progress.
    fn eat(&mut self) -> (String, String, bool) {
        let none = String::new;
        match self.state {
            State::LookingForOpening => {
                let trimmed = self.acc.trim_start();
                if let Some(after) = trimmed.strip_prefix(self.open.as_str()) {
                    let after = after.trim_start().to_owned();
                    self.state = if after.is_empty() {
                        State::StartedEatingWhitespace
                    } else {
                        State::Thinking
                    };
                    self.acc = after;
                    (none(), none(), true)
                } else if trimmed.is_empty() || self.open.starts_with(trimmed) {
                    // Whitespace, or the opening tag so far: wait.
                    (none(), none(), false)
                } else {
                    // No reasoning: the text as it came, whitespace and all.
                    self.state = State::Done;
                    (none(), std::mem::take(&mut self.acc), false)
                }
            }
            State::StartedEatingWhitespace => {
                let trimmed = self.acc.trim_start().to_owned();
                self.acc.clear();
                if trimmed.is_empty() {
                    return (none(), none(), false);
                }
                self.state = State::Thinking;
                self.acc = trimmed;
                (none(), none(), true)
            }
            State::Thinking => {
                if let Some(at) = self.acc.find(self.close.as_str()) {
                    let thinking = self.acc[..at].to_owned();
                    let rest = self.acc[at + self.close.len()..].trim_start().to_owned();
                    self.acc.clear();
                    self.state = if rest.is_empty() {
                        State::DoneEatingWhitespace
                    } else {
                        State::Done
                    };
                    return (thinking, rest, false);
                }
                let held = overlap(&self.acc, &self.close);
                let thinking = self.acc[..self.acc.len() - held].to_owned();
                self.acc.drain(..self.acc.len() - held);
                (thinking, none(), false)
            }
            State::DoneEatingWhitespace => {
                let trimmed = self.acc.trim_start().to_owned();
                self.acc.clear();
                if !trimmed.is_empty() {
                    self.state = State::Done;
                }
                (none(), trimmed, false)
            }
            State::Done => (none(), std::mem::take(&mut self.acc), false),
        }
    }
}
