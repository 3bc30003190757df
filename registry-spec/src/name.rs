//! Model names: `[host[:port]/][namespace/]model[:tag][@digest]`, parsed into a type that is always valid.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
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
/// namespace := [A-Za-z0-9] [A-Za-z0-9._-]{0,79}         ; case kept, matched case-insensitively
/// model     := [A-Za-z0-9] [A-Za-z0-9._-]{0,79}         ; case kept, matched case-insensitively
/// tag       := [A-Za-z0-9_] [A-Za-z0-9._-]{0,79}         ; case-sensitive
/// ```
///
/// One `/` means `namespace/model`, two mean `host/namespace/model` (Ollama's
/// rule); more are rejected. Missing parts default to `registry.ollama.ai`,
/// `library` and `latest`. No part can be empty, `.` or `..`, or hold `/`, so a
/// reference never escapes a directory it is joined onto.
///
/// Namespace and model keep the case they were written in (Hugging Face's
/// `hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF`), but two references that
/// differ only in their case are the same model: equality, ordering, hashing
/// and [`Reference::key`] ignore it, as Ollama's name matching does.
#[derive(Clone)]
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
    let first_ok = v.as_bytes()[0].is_ascii_alphanumeric();
    if !first_ok {
        return Err(err("must start with a letter or digit".into()));
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
    /// The namespace (`library` by default), in the case it was written.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }
    /// The model part, in the case it was written.
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
    /// The repository path sent to the registry: `namespace/model`, in the
    /// case it was written (Hugging Face's names are mixed-case).
    pub fn repository(&self) -> String {
        format!("{}/{}", self.namespace, self.model)
    }
    /// The identity of the tag it names, the same for every spelling:
    /// `host/namespace/model:tag` with namespace and model in lower case and
    /// no digest. The store keys its names by it; for a lower-case name it is
    /// the full form.
    pub fn key(&self) -> String {
        format!(
            "{}/{}/{}:{}",
            self.host,
            self.namespace.to_ascii_lowercase(),
            self.model.to_ascii_lowercase(),
            self.tag
        )
    }

    /// Whether `self` and `other` name the same model (case aside) and tag,
    /// whatever digest either pins.
    pub fn same_tag(&self, other: &Reference) -> bool {
        self.host == other.host
            && self.namespace.eq_ignore_ascii_case(&other.namespace)
            && self.model.eq_ignore_ascii_case(&other.model)
            && self.tag == other.tag
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

/// Orders ASCII case-insensitively, byte by byte.
fn cmp_fold(a: &str, b: &str) -> Ordering {
    a.bytes()
        .map(|c| c.to_ascii_lowercase())
        .cmp(b.bytes().map(|c| c.to_ascii_lowercase()))
}

impl PartialEq for Reference {
    fn eq(&self, other: &Self) -> bool {
        self.same_tag(other) && self.digest == other.digest
    }
}

impl Eq for Reference {}

impl Ord for Reference {
    fn cmp(&self, other: &Self) -> Ordering {
        self.host
            .cmp(&other.host)
            .then_with(|| cmp_fold(&self.namespace, &other.namespace))
            .then_with(|| cmp_fold(&self.model, &other.model))
            .then_with(|| self.tag.cmp(&other.tag))
            .then_with(|| self.digest.cmp(&other.digest))
    }
}

impl PartialOrd for Reference {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Hash for Reference {
    /// Consistent with `Eq`: the case-folded parts.
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.host.hash(h);
        for part in [&self.namespace, &self.model] {
            for c in part.bytes() {
                h.write_u8(c.to_ascii_lowercase());
            }
            h.write_u8(b'/');
        }
        self.tag.hash(h);
        self.digest.hash(h);
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
        let e = "ns/Mo%del".parse::<Reference>().unwrap_err().to_string();
        assert!(e.contains("model `Mo%del` holds `%`"), "{e}");
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

    #[test]
    fn hugging_face_names_keep_their_case() {
        let n = r("hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M");
        assert_eq!(n.host(), "hf.co");
        assert_eq!(n.namespace(), "bartowski");
        assert_eq!(n.model(), "Llama-3.2-1B-Instruct-GGUF");
        assert_eq!(n.tag(), "Q4_K_M");
        // The registry is asked for the repository as written.
        assert_eq!(n.repository(), "bartowski/Llama-3.2-1B-Instruct-GGUF");
        assert_eq!(
            n.display_short(),
            "hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M"
        );
        assert_eq!(
            n.to_string(),
            "hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M"
        );
        assert_eq!(r(&n.to_string()), n);
        // No tag: the registry's default.
        assert_eq!(r("HF.co/Qwen/Qwen2.5-0.5B-Instruct-GGUF").tag(), "latest");
        assert_eq!(
            r("huggingface.co/unsloth/Qwen3-0.6B-GGUF:q8_0").tag(),
            "q8_0"
        );
        // A file name as the tag.
        let f = r("hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Llama-3.2-1B-Instruct-Q4_K_M.gguf");
        assert_eq!(f.tag(), "Llama-3.2-1B-Instruct-Q4_K_M.gguf");
        // Plain names take upper case too (Ollama does).
        assert_eq!(r("Llama3").display_short(), "Llama3:latest");
    }

    #[test]
    fn case_is_kept_but_not_part_of_identity() {
        use std::collections::HashSet;
        let a = r("hf.co/Bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M");
        let b = r("HF.CO/bartowski/llama-3.2-1b-instruct-gguf:Q4_K_M");
        assert_eq!(a, b);
        assert_eq!(a.cmp(&b), Ordering::Equal);
        assert_eq!(a.key(), "hf.co/bartowski/llama-3.2-1b-instruct-gguf:Q4_K_M");
        assert_eq!(a.key(), b.key());
        let set: HashSet<Reference> = [a.clone(), b.clone()].into_iter().collect();
        assert_eq!(set.len(), 1);
        // The case as written survives.
        assert_eq!(a.model(), "Llama-3.2-1B-Instruct-GGUF");
        assert_eq!(b.model(), "llama-3.2-1b-instruct-gguf");
        // Tags stay case-sensitive (the OCI tag rule; stores may hold both).
        let q = r("hf.co/bartowski/llama-3.2-1b-instruct-gguf:q4_k_m");
        assert_ne!(a, q);
        assert_ne!(a.key(), q.key());
        // A lower-case name's key is its full form: keys of existing stores hold.
        let l = r("me/m:V1");
        assert_eq!(l.key(), l.to_string());
        // A pinned digest is part of equality, not of the key.
        let d = r(&format!("hf.co/A/B:t@sha256:{}", "a".repeat(64)));
        assert_ne!(d, r("hf.co/a/b:t"));
        assert_eq!(d.key(), r("hf.co/a/b:t").key());
        assert!(d.same_tag(&r("hf.co/a/b:t")));
        // Ordering folds case: `b` sorts after `A`.
        assert!(r("hf.co/x/b") > r("hf.co/x/A"));
    }

    #[test]
    fn hostile_hugging_face_names() {
        for bad in [
            "hf.co/bartowski/../x",
            "hf.co/../Llama:Q4",
            "hf.co/bartowski/.Llama",
            "hf.co/bartowski/-Llama",
            "hf.co/Bart%2Fowski/Llama",
            "hf.co/bartowski/Llama\\..\\x",
            "hf.co/bartowski/Llama:Q4/../../x",
            "hf.co/bartowski/Llama:../Q4",
            "hf.co/bartowski/Llama:.gguf",
            "hf.co/bartowski/Llama-GGUF/extra",
            "hf.co//Llama",
            "hf.co/bartowski/",
            "hf..co/bartowski/Llama",
            "hf_co/bartowski/Llama",
            "https://hf.co/bartowski/Llama",
            "hf.co/bartowski/Llama:Q4 K",
            "hf.co/bartowski/Llama\u{130}",
            "hf.co/bartowski/Llam\u{212a}",
            "hf.co/bartowski/Lla\nma:Q4",
        ] {
            assert!(bad.parse::<Reference>().is_err(), "`{bad:?}` parsed");
        }
        // Non-ASCII letters whose lower case is ASCII never reach the key.
        let e = "hf.co/bartowski/Llam\u{212a}"
            .parse::<Reference>()
            .unwrap_err();
        assert!(e.to_string().contains("holds `\u{212a}`"), "{e}");
    }
}
