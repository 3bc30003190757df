//! llmpmd: the llmpm daemon library — store, create, API routes and listeners.
//!
//! `main.rs` only parses arguments and calls [`server::run`]; the tests crate
//! drives [`api::router`] and [`server::serve`] directly.

pub mod store;
