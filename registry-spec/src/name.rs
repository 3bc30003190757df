//! Model names: `[host[:port]/][namespace/]model[:tag][@digest]`, parsed into a type that is always valid.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::digest::{Digest, DigestError};

/// The registry a name without a host refers to.
pub const DEFAULT_HOST: &str = "registry.ollama.ai";
/// The namespace a name without one refers to.
pub const DEFAULT_NAMESPACE: &str = "library";
/// The tag a name without one refers to.
pub const DEFAULT_TAG: &str = "latest";

/// Longest host (with port) accepted.
pub const MAX_HOST_LEN: usize = 253;
/// Longest namespace, model or tag accepted (Ollama's limit).
pub const MAX_PART_LEN: usize = 80;

/// A fully qualified, validated model reference.
///
/// Grammar (see `SPEC.md`, "Names"):
///
/// ```text
/// reference := [ host "/" ] [ namespace "/" ] model [ ":" tag ] [ "@" digest ]
/// host      := label ( "." label )* [ ":" port ]        ; case-insensitive, folded to lower case
/// label     := [a-z0-9] ( [a-z0-9-]* [a-z0-9] )?
/// namespace := [a-z0-9] [a-z0-9._-]{0,79}               ; lower case only (OCI repository rule)
/// model     := [a-z0-9] [a-z0-9._-]{0,79}               ; lower case only
/// tag       := [A-Za-z0-9_] [A-Za-z0-9._-]{0,79}         ; case-sensitive
/// ```
///
/// One `/` means `namespace/model`, two mean `host/namespace/model` (Ollama's
/// rule); more are rejected. Missing parts default to `registry.ollama.ai`,
/// `library` and `latest`. No part can be empty, `.` or `..`, or hold `/`, so a
/// reference never escapes a directory it is joined onto.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    host: String,
    namespace: String,
    model: String,
    tag: String,
    digest: Option<Digest>,
}

/// Why a string is not a model name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Nothing was given.
    #[error("model name is empty")]
    Empty,
    /// More than `host/namespace/model`.
    #[error(
        "model name `{0}` has too many `/`-separated parts: use `[host/][namespace/]model[:tag]`"
    )]
    TooManyParts(String),
    /// A part is empty, too long, or holds a character its grammar forbids.
    #[error("model name `{name}`: {part} `{value}` {why}")]
    Part {
        /// The whole input.
        name: String,
        /// Which part: `host`, `namespace`, `model` or `tag`.
        part: &'static str,
        /// The offending part (cut to 40 characters).
        value: String,
        /// What is wrong and what is allowed.
        why: String,
    },
    /// The `@digest` suffix is not a digest.
    #[error("model name `{name}` has an invalid digest")]
    Digest {
        /// The whole input.
        name: String,
        /// The digest error.
        #[source]
        source: DigestError,
    },
}

fn clip(s: &str) -> String {
    if s.chars().count() > 40 {
        let head: String = s.chars().take(40).collect();
        format!("{head}…")
    } else {
        s.to_owned()
    }
}

fn check_repo_part(name: &str, part: &'static str, v: &str) -> Result<(), NameError> {
    let err = |why: String| NameError::Part {
        name: clip(name),
        part,
        value: clip(v),
        why,
    };
    if v.is_empty() {
        return Err(err("is empty".into()));
    }
    if v.len() > MAX_PART_LEN {
        return Err(err(format!(
            "is {} characters long; the limit is {MAX_PART_LEN}",
            v.len()
        )));
    }
    if v.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(err(format!(
            "has upper-case letters; repository names are lower case: use `{}`",
            clip(&v.to_ascii_lowercase())
        )));
    }
    let first_ok = v.as_bytes()[0].is_ascii_alphanumeric();
    if !first_ok {
        return Err(err("must start with a letter or digit".into()));
    }
    if let Some(c) = v
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')))
    {
        return Err(err(format!(
            "holds `{c}`; only `a-z`, `0-9`, `.`, `_` and `-` are allowed"
        )));
    }
    Ok(())
}

fn check_tag(name: &str, v: &str) -> Result<(), NameError> {
    let err = |why: String| NameError::Part {
        name: clip(name),
        part: "tag",
        value: clip(v),
        why,
    };
    if v.is_empty() {
        return Err(err("is empty".into()));
    }
    if v.len() > MAX_PART_LEN {
        return Err(err(format!(
            "is {} characters long; the limit is {MAX_PART_LEN}",
            v.len()
        )));
    }
    let first = v.as_bytes()[0];
    if !(first.is_ascii_alphanumeric() || first == b'_') {
        return Err(err("must start with a letter, digit or `_`".into()));
    }
    if let Some(c) = v
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(err(format!(
            "holds `{c}`; only letters, digits, `.`, `_` and `-` are allowed"
        )));
    }
    Ok(())
}

fn check_host(name: &str, v: &str) -> Result<String, NameError> {
    let err = |why: String| NameError::Part {
        name: clip(name),
        part: "host",
        value: clip(v),
        why,
    };
    if v.is_empty() {
        return Err(err("is empty".into()));
    }
    if v.len() > MAX_HOST_LEN {
        return Err(err(format!(
            "is {} characters long; the limit is {MAX_HOST_LEN}",
            v.len()
        )));
    }
    let lower = v.to_ascii_lowercase();
    let (host, port) = match lower.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (lower.as_str(), None),
    };
    if let Some(p) = port {
        match p.parse::<u16>() {
            Ok(n) if n > 0 && !p.starts_with('0') => {}
            _ => return Err(err(format!("has port `{}`; use a number 1-65535", clip(p)))),
        }
    }
    for label in host.split('.') {
        let b = label.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= 63
            && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
            && b[0] != b'-'
            && b[b.len() - 1] != b'-';
        if !ok {
            return Err(err(
                "is not a host name: use letters, digits, `-` and `.` with an optional `:port`"
                    .into(),
            ));
        }
    }
    Ok(lower)
}

impl Reference {
    /// The registry host, with port if any, in lower case.
    pub fn host(&self) -> &str {
        &self.host
    }
    /// The namespace (`library` by default).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }
    /// The model part.
    pub fn model(&self) -> &str {
        &self.model
    }
    /// The tag (`latest` by default).
    pub fn tag(&self) -> &str {
        &self.tag
    }
    /// The pinned digest, if the name carried `@sha256:…`.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }
    /// The OCI repository path: `namespace/model`.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.namespace, self.model)
    }
    /// The same reference without a pinned digest: the key a tag is stored under.
    pub fn untagged_digest(&self) -> Reference {
        Reference {
            digest: None,
            ..self.clone()
        }
    }
    /// The short display form Ollama prints: default host and `library/` left out,
    /// the tag always shown (`llama3:latest`, `me/m:v1`, `host:5000/ns/m:t`).
    pub fn display_short(&self) -> String {
        let mut s = String::new();
        if self.host != DEFAULT_HOST {
            s.push_str(&self.host);
            s.push('/');
            s.push_str(&self.namespace);
            s.push('/');
        } else if self.namespace != DEFAULT_NAMESPACE {
            s.push_str(&self.namespace);
            s.push('/');
        }
        s.push_str(&self.model);
        s.push(':');
        s.push_str(&self.tag);
        s
    }
}

impl FromStr for Reference {
    type Err = NameError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let s = input.trim();
        if s.is_empty() {
            return Err(NameError::Empty);
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                let digest = d.parse::<Digest>().map_err(|source| NameError::Digest {
                    name: clip(s),
                    source,
                })?;
                (r, Some(digest))
            }
            None => (s, None),
        };
        let parts: Vec<&str> = rest.split('/').collect();
        if parts.len() > 3 {
            return Err(NameError::TooManyParts(clip(s)));
        }
        let last = parts[parts.len() - 1];
        let (model, tag) = match last.split_once(':') {
            Some((m, t)) => (m, Some(t)),
            None => (last, None),
        };
        let (host, namespace) = match parts.len() {
            3 => (Some(parts[0]), Some(parts[1])),
            2 => (None, Some(parts[0])),
            _ => (None, None),
        };
        let host = match host {
            Some(h) => check_host(s, h)?,
            None => DEFAULT_HOST.to_owned(),
        };
        let namespace = namespace.unwrap_or(DEFAULT_NAMESPACE);
        check_repo_part(s, "namespace", namespace)?;
        check_repo_part(s, "model", model)?;
        let tag = tag.unwrap_or(DEFAULT_TAG);
        check_tag(s, tag)?;
        Ok(Reference {
            host,
            namespace: namespace.to_owned(),
            model: model.to_owned(),
            tag: tag.to_owned(),
            digest,
        })
    }
}

impl fmt::Display for Reference {
    /// The fully qualified form: `host/namespace/model:tag[@digest]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}:{}",
            self.host, self.namespace, self.model, self.tag
        )?;
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference({self})")
    }
}

impl Serialize for Reference {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Reference {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn r(s: &str) -> Reference {
        s.parse().unwrap()
    }

    #[test]
    fn defaults_and_forms() {
        let a = r("llama3");
        assert_eq!(a.to_string(), "registry.ollama.ai/library/llama3:latest");
        assert_eq!(a.display_short(), "llama3:latest");
        assert_eq!(r("me/m:v1").display_short(), "me/m:v1");
        let h = r("Localhost:5000/ns/m:V1.0");
        assert_eq!(h.host(), "localhost:5000");
        assert_eq!(h.tag(), "V1.0");
        assert_eq!(h.display_short(), "localhost:5000/ns/m:V1.0");
        assert_eq!(h.repository(), "ns/m");
        let d = format!("m@sha256:{}", "a".repeat(64));
        assert!(r(&d).digest().is_some());
        assert_eq!(r(&d).untagged_digest(), r("m"));
        assert_eq!(r(&r("x/y:z").to_string()), r("x/y:z"));
    }

    #[test]
    fn rejects_bad_names() {
        let long = "a".repeat(300);
        for bad in [
            "",
            "../../etc/passwd",
            "a/b/c/d/e",
            "Llama3",
            "ns/Model",
            "m:",
            ":tag",
            "m:ta/g",
            "m:.x",
            "m:-x",
            "-m",
            ".m",
            "..",
            "a/../b",
            "m@sha256:../x",
            "m@sha256:abc",
            "h_st/ns/m",
            "host:0/ns/m",
            "host:99999/ns/m",
            "ns/m m",
            &long,
            &format!("m:{long}"),
            &format!("{long}/m"),
            "m\0",
        ] {
            assert!(bad.parse::<Reference>().is_err(), "`{bad}` parsed");
        }
        let e = "Llama3".parse::<Reference>().unwrap_err().to_string();
        assert!(e.contains("upper-case") && e.contains("`llama3`"), "{e}");
        let e = long.parse::<Reference>().unwrap_err().to_string();
        assert!(e.contains("300 characters"), "{e}");
        let e = "a/b/c/d/e".parse::<Reference>().unwrap_err().to_string();
        assert!(e.contains("too many"), "{e}");
    }

    #[test]
    fn max_lengths_accepted() {
        let p = "a".repeat(MAX_PART_LEN);
        r(&format!("{p}/{p}:{p}"));
        assert!(format!("{p}a").parse::<Reference>().is_err());
    }
}
