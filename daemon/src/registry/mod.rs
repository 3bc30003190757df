//! The store as a registry for others: served read-only over the OCI distribution API (`/v2/`), and OCI image-layout archives for offline moves.
//!
//! `api::v2` is the HTTP side (routes, `Range`, error bodies, auth);
//! `distribution` decides what a repository name means and what it may
//! serve. `archive` writes and reads the archives of `llmpm save`/`load`
//! (`api::archive` is their HTTP side).

pub mod archive;
pub mod distribution;
