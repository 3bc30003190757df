//! The store as a registry for others: served read-only over the OCI distribution API (`/v2/`).
//!
//! `api::v2` is the HTTP side (routes, `Range`, error bodies, auth); this
//! module decides what a repository name means and what it may serve.

pub mod distribution;
