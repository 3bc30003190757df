//! [`Runner`]: a typed handle on one loaded runner process, as the
//! scheduler's lease gives it out: `tokenize`, `complete` (a stream of
//! [`Event`]s) and `embed`. It reads the runner's answer lines itself and
//! turns a connection that ends early into "the runner died", with how the
//! process exited when the OS has said.

use std::any::Any;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use llmpm_spec::api::Logprob;
use llmpm_spec::api::ToolCall;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use super::client::{self, Answer, ClientError};
use super::error::LlmError;
use super::protocol::{CompletionChunk, CompletionRequest, Embeddings, RunnerRequest, Tokens};

/// How long a broken answer waits for the OS to report the runner's exit.
const EXIT_WAIT: Duration = Duration::from_millis(500);

/// Where a loaded runner process is reached, as its owner (the scheduler)
/// describes it.
#[derive(Debug)]
pub struct Endpoint {
    /// Its unix socket.
    pub socket: PathBuf,
    /// The context size it was started with.
    pub num_ctx: usize,
    /// How it exited, once it has.
    pub exit: watch::Receiver<Option<String>>,
}

/// A handle on a ready runner. Clones share one hold on it (the scheduler's
/// lease): the runner is not unloaded while a handle, or a stream from
/// [`complete`](Runner::complete), exists.
#[derive(Clone)]
pub struct Runner {
    endpoint: Arc<Endpoint>,
    _hold: Arc<dyn Any + Send + Sync>,
}

impl fmt::Debug for Runner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runner")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// A generation's events: as the runner reports them, and, once read
/// through the model's output parser ([`crate::llm::parse`]), its
/// reasoning and tool calls apart from its text.
#[derive(Debug)]
pub enum Event {
    /// Text since the last event.
    Text(String),
    /// Reasoning since the last event.
    Thinking(String),
    /// One complete tool call.
    ToolCall(ToolCall),
    /// The log-probabilities of the tokens of the `Text` that follows
    /// (only when the request asked for them; the last chunk carries its
    /// own in `Done`).
    Logprobs(Vec<Logprob>),
    /// The last chunk, with its text, the counts and the timings.
    Done(CompletionChunk),
}

/// A generation: text pieces, then the last chunk, or an error (the last item).
pub type Events = BoxStream<'static, Result<Event, LlmError>>;

impl Runner {
    /// A handle on the runner at `endpoint`; `hold` is dropped with the
    /// last clone of the handle (the scheduler's release).
    pub fn new(endpoint: Arc<Endpoint>, hold: Arc<dyn Any + Send + Sync>) -> Runner {
        Runner {
            endpoint,
            _hold: hold,
        }
    }

    /// The runner's socket.
    pub fn socket(&self) -> &Path {
        &self.endpoint.socket
    }

    /// The runner's context size.
    pub fn num_ctx(&self) -> usize {
        self.endpoint.num_ctx
    }

    /// How the runner exited, when a broken answer suggests it did; waits a
    /// moment for the OS to report it.
    pub async fn exit_status(&self) -> Option<String> {
        let mut rx = self.endpoint.exit.clone();
        let wait = async move { rx.wait_for(Option::is_some).await.ok()?.clone() };
        tokio::time::timeout(EXIT_WAIT, wait).await.ok().flatten()
    }

    /// The error for an answer that ended before it should have.
    async fn died(&self) -> LlmError {
        let why = self
            .exit_status()
            .await
            .unwrap_or_else(|| "it closed the connection".into());
        ClientError::Died(why).into()
    }

    /// The next line of `answer`; an early end is the runner's death.
    async fn next<T: DeserializeOwned>(&self, answer: &mut Answer) -> Result<T, LlmError> {
        match answer.next().await? {
            Some(line) => Ok(line),
            None => Err(self.died().await),
        }
    }

    /// Sends `req` and reads its one answer line.
    async fn one<T: DeserializeOwned>(&self, req: &RunnerRequest) -> Result<T, LlmError> {
        let mut answer = client::call(self.socket(), req).await?;
        self.next(&mut answer).await
    }

    /// The token ids of `text` (with BOS first when `add_bos` and the model wants one).
    pub async fn tokenize(&self, text: &str, add_bos: bool) -> Result<Vec<u32>, LlmError> {
        crate::metrics::runner_tokenize();
        let req = RunnerRequest::Tokenize {
            content: text.to_owned(),
            add_bos,
        };
        Ok(self.one::<Tokens>(&req).await?.tokens)
    }

    /// The embeddings of each input (cut to the context when `truncate`,
    /// else refused when too long).
    pub async fn embed(&self, input: Vec<String>, truncate: bool) -> Result<Embeddings, LlmError> {
        self.one(&RunnerRequest::Embed { input, truncate }).await
    }

    /// A reranker's scores of each document for `query` (each document's
    /// head logits; the first is its score).
    pub async fn rerank(
        &self,
        query: String,
        documents: Vec<String>,
    ) -> Result<Embeddings, LlmError> {
        self.one(&RunnerRequest::Rerank { query, documents }).await
    }

    /// Starts a generation. The stream holds this runner until it ends or
    /// is dropped; dropping it closes the connection, which stops the
    /// generation in the runner.
    pub async fn complete(&self, req: CompletionRequest) -> Result<Events, LlmError> {
        let answer = client::call(self.socket(), &RunnerRequest::Completion(Box::new(req))).await?;
        let events =
            futures_util::stream::unfold(Some((self.clone(), answer)), |state| async move {
                let (runner, mut answer) = state?;
                let events = match runner.next::<CompletionChunk>(&mut answer).await {
                    Ok(c) if c.done => return Some((vec![Ok(Event::Done(c))], None)),
                    Ok(c) if c.logprobs.is_empty() => vec![Ok(Event::Text(c.content))],
                    Ok(c) => vec![Ok(Event::Logprobs(c.logprobs)), Ok(Event::Text(c.content))],
                    Err(e) => return Some((vec![Err(e)], None)),
                };
                Some((events, Some((runner, answer))))
            })
            .flat_map(futures_util::stream::iter);
        Ok(events.boxed())
    }
}

/// `events` of a generation of `model`, recorded in [`crate::metrics`] as
/// they pass: the time to the first token (from now) and, at the end, the
/// token counts and the speed.
pub fn metered(model: &str, events: Events) -> Events {
    let started = std::time::Instant::now();
    let model = model.to_owned();
    let mut first = true;
    events
        .map(move |e| {
            if let Ok(ev) = &e {
                let token = !matches!(ev, Event::Logprobs(_));
                if token && std::mem::take(&mut first) {
                    crate::metrics::first_token(&model, started.elapsed());
                }
                if let Event::Done(c) = ev {
                    crate::metrics::generation(
                        &model,
                        c.prompt_eval_count,
                        c.eval_count,
                        c.eval_duration,
                    );
                }
            }
            e
        })
        .boxed()
}

/// `v` cut to its first `dimensions` values and normalized again, as
/// Ollama answers `dimensions` (a count at or past the length changes
/// nothing).
pub fn shorten_embedding(mut v: Vec<f32>, dimensions: Option<usize>) -> Vec<f32> {
    let Some(d) = dimensions.filter(|d| *d < v.len()) else {
        return v;
    };
    v.truncate(d);
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

/// A whole generation, read to its end.
#[derive(Debug)]
pub struct Collected {
    /// The text (the last chunk's included).
    pub text: String,
    /// The reasoning.
    pub thinking: String,
    /// The tool calls, in order.
    pub tool_calls: Vec<ToolCall>,
    /// The last chunk (counts, timings, why it ended), holding the
    /// log-probabilities of every token when they were asked for.
    pub last: CompletionChunk,
}

/// Reads a whole generation; `None` when it ended without a last chunk.
pub async fn collect(mut events: Events) -> Result<Option<Collected>, LlmError> {
    let (mut text, mut thinking, mut tool_calls) = (String::new(), String::new(), Vec::new());
    let mut logprobs = Vec::new();
    while let Some(event) = events.next().await {
        match event? {
            Event::Text(t) => text.push_str(&t),
            Event::Thinking(t) => thinking.push_str(&t),
            Event::ToolCall(c) => tool_calls.push(c),
            Event::Logprobs(l) => logprobs.extend(l),
            Event::Done(mut c) => {
                text.push_str(&c.content);
                logprobs.append(&mut c.logprobs);
                c.logprobs = logprobs;
                return Ok(Some(Collected {
                    text,
                    thinking,
                    tool_calls,
                    last: c,
                }));
            }
        }
    }
    Ok(None)
}
