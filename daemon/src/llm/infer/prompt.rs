//! Prompts: a conversation rendered through the model's template (with the
//! request's tools and thinking), and fitted to the runner's context by
//! dropping the oldest messages, as Ollama does, the tokens counted by the
//! daemon; and fill-in-the-middle prompts.

use std::future::Future;
use std::sync::Arc;

use llmpm_spec::api::Message;

use super::ResolvedModel;
use crate::llm::error::LlmError;
use crate::llm::handle::Runner;
use crate::llm::options::Options;
use crate::llm::protocol::{CompletionRequest, Constraint};
use crate::template::{ChatMessage, ChatTemplate, GoTemplate, PromptData, RenderOptions};
use crate::tokenizer::{CountMemo, Tokenizer};

/// A rendered prompt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prompt {
    /// The text (special-token text is parsed by the runner).
    pub text: String,
    /// Whether the runner should still add BOS (a Jinja template writes it itself).
    pub add_bos: bool,
    /// Tokens before the text: `/api/generate`'s `context` from an earlier answer.
    pub context: Vec<u32>,
    /// Answer with the tokens of the prompt and the generation (`context`).
    pub return_context: bool,
}

impl Prompt {
    /// A prompt sent as given (`raw`), BOS added.
    pub fn raw(text: String) -> Prompt {
        Prompt {
            text,
            add_bos: true,
            ..Prompt::default()
        }
    }

    /// The runner request generating from this prompt with `opts`, its
    /// output held to `constraint` if there is one.
    pub fn completion(self, opts: &Options, constraint: Option<Constraint>) -> CompletionRequest {
        CompletionRequest {
            prompt: self.text,
            add_bos: self.add_bos,
            num_predict: opts.num_predict,
            num_keep: opts.num_keep,
            shift: opts.shift,
            stop: opts.stop.clone(),
            sampler: opts.sampler.clone(),
            constraint,
            preserved_tokens: Vec::new(),
            logprobs: None,
            context: self.context,
            return_context: self.return_context,
        }
    }
}

impl<X> ResolvedModel<X> {
    /// The prompt for `messages` through `template` (the model's when
    /// `None`), with `system` first unless they bring their own, and the
    /// request's tools and thinking (`opts`).
    pub fn render(
        &self,
        template: Option<&ChatTemplate>,
        system: Option<&str>,
        messages: &[Message],
        opts: &RenderOptions,
    ) -> Result<Prompt, LlmError> {
        let msgs: Vec<ChatMessage> = messages.iter().map(ChatMessage::from).collect();
        let t = template.unwrap_or(&self.template.template);
        let text = t
            .render_chat(system, &msgs, opts, &self.bos, &self.eos)
            .map_err(LlmError::Render)?;
        Ok(Prompt {
            text,
            add_bos: !matches!(t, ChatTemplate::Jinja(_)),
            ..Prompt::default()
        })
    }

    /// The prompt of a one-shot generation: `prompt` as the user's message,
    /// through the request's own Go `template` if it gives one, with its
    /// `system` or else the model's.
    pub fn generate_prompt(
        &self,
        prompt: &str,
        system: Option<&str>,
        template: Option<&str>,
        opts: &RenderOptions,
    ) -> Result<Prompt, LlmError> {
        let own = match template {
            Some(t) => Some(ChatTemplate::Go(
                GoTemplate::parse(t).map_err(LlmError::RequestTemplate)?,
            )),
            None => None,
        };
        let messages = [Message::new("user", prompt)];
        self.render(
            own.as_ref(),
            system.or(self.system.as_deref()),
            &messages,
            opts,
        )
    }

    /// The fill-in-the-middle prompt asking for what goes between `prefix`
    /// and `suffix`: through the request's Go `template` if it gives one
    /// (it must read `.Suffix`), else the model's template when it reads
    /// `.Suffix` (rendered with `.Prompt` and `.Suffix` only, as Ollama
    /// does), else framed by the GGUF's FIM tokens as llama.cpp's /infill
    /// frames it. `model` is the name as the request gave it, for the 400
    /// of a model that can do none of these.
    pub fn fim_prompt(
        &self,
        model: &str,
        prefix: &str,
        suffix: &str,
        template: Option<&str>,
    ) -> Result<Prompt, LlmError> {
        let own = match template {
            Some(t) => {
                let t = GoTemplate::parse(t).map_err(LlmError::RequestTemplate)?;
                if !t.reads("suffix") {
                    return Err(LlmError::TemplateWithoutSuffix);
                }
                Some(t)
            }
            None => None,
        };
        let go = match (&own, &self.template.template) {
            (Some(t), _) => Some(t),
            (None, ChatTemplate::Go(t)) if t.reads("suffix") => Some(t),
            _ => None,
        };
        let text = match (go, &self.fim) {
            (Some(t), _) => t
                .execute(&PromptData {
                    prompt: prefix.to_owned(),
                    suffix: suffix.to_owned(),
                    ..PromptData::default()
                })
                .map_err(LlmError::Render)?,
            (None, Some(fim)) => fim.frame(prefix, suffix),
            (None, None) => {
                return Err(LlmError::Unsupported {
                    model: model.to_owned(),
                    what: "insert",
                })
            }
        };
        Ok(Prompt {
            text,
            add_bos: true,
            ..Prompt::default()
        })
    }

    /// The prompt of a chat (the model's SYSTEM first unless the messages
    /// bring their own), without the oldest messages that do not fit the
    /// context of `runner`; all of them when `truncate` is off (a prompt
    /// too long is then refused when it is sent: [`ResolvedModel::generate`]).
    ///
    /// The daemon counts the tokens with the model's own tokenizer, each
    /// message's text tokenized once however many renders are tried (see
    /// [`CountMemo`]); the runner is asked only for a vocabulary the daemon's
    /// tokenizer refuses (the runner then uses its fallback codec).
    pub async fn fit_chat(
        &self,
        runner: &Runner,
        messages: &[Message],
        opts: &RenderOptions,
        truncate: bool,
    ) -> Result<Prompt, LlmError> {
        let system = self.system.as_deref();
        if !truncate {
            return self.render(None, system, messages, opts);
        }
        let limit = runner.num_ctx().saturating_sub(1);
        let render = |kept: &[Message]| self.render(None, system, kept, opts);
        match self.tokenizer().await {
            Some(tokenizer) => {
                let mut memo = CountMemo::default();
                fit(messages, limit, render, |p| {
                    let n = tokenizer.count(&p.text, p.add_bos, true, &mut memo);
                    std::future::ready(Ok(n))
                })
                .await
            }
            None => {
                fit(messages, limit, render, |p| {
                    let (text, add_bos) = (p.text.clone(), p.add_bos);
                    async move { runner.tokenize(&text, add_bos).await.map(|t| t.len()) }
                })
                .await
            }
        }
    }

    /// The daemon's tokenizer for the model's weights; `None` when it
    /// cannot read the vocabulary (the runner counts then).
    pub async fn tokenizer(&self) -> Option<Arc<Tokenizer>> {
        self.tokenizers.get(&self.blob).await
    }

    /// The tokens of `prompt`'s text as `runner` will read it: counted by
    /// the daemon's tokenizer, by the runner when there is none.
    pub async fn count_tokens(&self, runner: &Runner, prompt: &Prompt) -> Result<usize, LlmError> {
        match self.tokenizer().await {
            Some(t) => Ok(t.count(
                &prompt.text,
                prompt.add_bos,
                true,
                &mut CountMemo::default(),
            )),
            None => Ok(runner.tokenize(&prompt.text, prompt.add_bos).await?.len()),
        }
    }
}

/// Renders `messages` (with `render`) so that the prompt has at most
/// `limit` tokens (as `count` says), dropping the oldest messages first,
/// never a system message and never the last one; when even the fewest
/// do not fit, that shortest prompt.
///
/// Ollama drops one message at a time and counts again. The prompt only
/// shrinks as messages leave it, so the first count that fits is found by
/// bisection over how many are dropped, with the same result in a few
/// counts instead of one per message. One dropped message is tried first,
/// as one at a time would: the usual case, and where a template that
/// refuses a conversation without its opening message fails, as it did.
pub(super) async fn fit<R, C, F>(
    messages: &[Message],
    limit: usize,
    render: R,
    mut count: C,
) -> Result<Prompt, LlmError>
where
    R: Fn(&[Message]) -> Result<Prompt, LlmError>,
    C: FnMut(&Prompt) -> F,
    F: Future<Output = Result<usize, LlmError>>,
{
    let all = render(messages)?;
    let Some((_, earlier)) = messages.split_last() else {
        return Ok(all);
    };
    // Indexes of the messages that may go, oldest first.
    let droppable: Vec<usize> = earlier
        .iter()
        .enumerate()
        .filter(|(_, m)| m.role != "system")
        .map(|(i, _)| i)
        .collect();
    if droppable.is_empty() || count(&all).await? <= limit {
        return Ok(all);
    }
    // The messages left when the first `k` droppable ones are gone.
    let without = |k: usize| -> Vec<Message> {
        let gone = &droppable[..k];
        messages
            .iter()
            .enumerate()
            .filter(|(i, _)| gone.binary_search(i).is_err())
            .map(|(_, m)| m.clone())
            .collect()
    };
    // The answer lies in lo..=hi: fewer than lo do not fit, and hi is
    // the answer when nothing fits.
    let (mut lo, mut hi) = (1, droppable.len());
    let mut fitting: Option<(usize, Prompt)> = None;
    while lo < hi {
        let mid = if lo == 1 { 1 } else { lo + (hi - lo) / 2 };
        let prompt = render(&without(mid))?;
        if count(&prompt).await? <= limit {
            hi = mid;
            fitting = Some((mid, prompt));
        } else {
            lo = mid + 1;
        }
    }
    match fitting {
        Some((k, prompt)) if k == lo => Ok(prompt),
        _ => render(&without(lo)),
    }
}
