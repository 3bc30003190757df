//! llmpm's wire and file formats: names, digests, manifests, media types, Modelfiles and the local API types.
//!
//! `SPEC.md` beside this crate is the normative description; this crate holds
//! the Rust types for it. Everything here is pure data with parse/print
//! round-trips: no I/O, no async runtime, no filesystem. A value of these types
//! that exists is valid: a [`Reference`] or [`Digest`] cannot hold a path
//! component that escapes its directory.
#![deny(missing_docs)]

pub mod api;
pub mod credentials;
pub mod digest;
pub mod env;
pub mod host;
pub mod manifest;
pub mod media_type;
pub mod modelfile;
pub mod name;
pub mod params;
pub mod quote;
pub mod signature;
pub mod size;

pub use digest::{Digest, DigestError};
pub use manifest::{Descriptor, Manifest, ManifestError, ModelConfig};
pub use media_type::{LayerKind, MediaType};
pub use modelfile::{Command, Modelfile, ModelfileError, ModelfileErrorKind, Role};
pub use name::{NameError, Reference};
pub use params::{ParamError, ParamKind, ParamValue, Parameters};
