//! The daemon's side of a runner: the wire protocol it speaks
//! ([`protocol`]), starting and calling its process ([`client`]), a typed
//! handle on a loaded one ([`Runner`]: tokenize, complete, embed), the
//! resolved model with its prompt rendering and fitting ([`infer`]), the
//! request options ([`options`]), output constraints ([`grammar`]), and the
//! reading of its output into reasoning, text and tool calls ([`parse`]).
//!
//! The runner process itself is `crate::runner`; `llm` never imports it
//! (it starts it as a subprocess). The scheduler decides which runners are
//! loaded and hands out [`Runner`] handles on them.

pub mod client;
mod error;
pub mod grammar;
pub mod handle;
pub mod infer;
pub mod options;
pub mod parse;
pub mod protocol;

pub use error::LlmError;
pub use handle::{shorten_embedding, Endpoint, Event, Events, Runner};
pub use infer::{Capability, Features, Models, Prompt, ResolvedModel, ToolChoice};
pub use options::Options;
