//! llmpmd: the llmpm daemon library — store, transfer, create, API routes and listeners.
//!
//! `main.rs` only parses arguments and calls [`server::run`]; the tests crate
//! drives [`api::router`] and [`server::serve`] directly.

pub mod api;
pub mod config;
pub mod create;
pub mod describe;
pub mod errors;
pub mod llm;
pub mod logging;
pub mod metrics;
pub mod registry;
pub mod runner;
pub mod sched;
pub mod server;
pub mod store;
pub mod template;
pub mod tokenizer;
pub mod transfer;
pub mod trust;
