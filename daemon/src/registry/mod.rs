//! The store as a registry for other tools: OCI image-layout archives for offline moves (`archive`).

pub mod archive;
