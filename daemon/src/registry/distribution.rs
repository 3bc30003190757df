//! The store seen as an OCI distribution registry, read-only: how repository names map onto store names, and which tags, manifests, blobs and referrers each repository serves.
//!
//! Mapping (`SPEC.md`, section 10): `namespace/model` is a name on the
//! default host (`library/llama3.2` with tag `1b` is `llama3.2:1b`);
//! `host/namespace/model` is one on another host, its port written
//! `host_port` because `:` may not appear in a repository name. A mirror
//! request's `?ns=<host>` (containerd's convention) puts a two-part name on
//! that host. A repository serves its tags' manifests, their referrers, and
//! the blobs those name, nothing else in the store: OCI registries scope blobs
//! by repository, and a client that knows one digest must not read others.

use std::collections::BTreeSet;
use std::path::PathBuf;

use llmpm_spec::name::DEFAULT_HOST;
use llmpm_spec::{media_type, Descriptor, Digest, DigestError, Manifest, MediaType, Reference};

use crate::store::{Store, StoreError};

/// Why a `/v2/` request cannot be served; each is one OCI error code.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// `NAME_INVALID`: the repository name breaks the grammar.
    #[error("repository name `{name}` is invalid: {why}")]
    NameInvalid {
        /// The name as sent.
        name: String,
        /// What is wrong.
        why: String,
    },
    /// `NAME_UNKNOWN`: no model has this repository name.
    #[error("repository `{0}` is not known here; `GET /v2/_catalog` lists those served")]
    NameUnknown(String),
    /// `NAME_UNKNOWN`: a name of a shape llmpm never serves.
    #[error("repository `{0}` is not known here: llmpmd serves `namespace/model` (the default host's models, e.g. `library/llama3.2`) and `host_port/namespace/model` (another host's)")]
    NameShape(String),
    /// `MANIFEST_UNKNOWN`.
    #[error("manifest `{reference}` is not known in repository `{repository}`")]
    ManifestUnknown {
        /// The repository.
        repository: String,
        /// The tag or digest asked for.
        reference: String,
    },
    /// `BLOB_UNKNOWN`.
    #[error("blob `{digest}` is not known in repository `{repository}`")]
    BlobUnknown {
        /// The repository.
        repository: String,
        /// The blob.
        digest: Digest,
    },
    /// `DIGEST_INVALID`: not a digest llmpm accepts.
    #[error("{0}")]
    DigestInvalid(#[from] DigestError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A repository name, validated and mapped onto the store's names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Repository {
    host: String,
    namespace: String,
    model: String,
}

/// Whether `c` is one component of an OCI repository name:
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*` (distribution-spec, "Pulling manifests").
fn is_oci_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    let (Some(&first), Some(&last)) = (b.first(), b.last()) else {
        return false;
    };
    if !alnum(first) || !alnum(last) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: one `.`, one or two `_`, or any number of `-`.
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let run = &b[start..i];
        let ok = run == b"." || run == b"_" || run == b"__" || run.iter().all(|&x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

impl Repository {
    /// The repository an OCI name (as it appears in a `/v2/<name>/…` path)
    /// stands for; `ns` is a mirror request's upstream host, if any.
    pub fn parse(name: &str, ns: Option<&str>) -> Result<Repository, RegistryError> {
        let invalid = |why: String| RegistryError::NameInvalid {
            name: name.chars().take(300).collect(),
            why,
        };
        let parts: Vec<&str> = name.split('/').collect();
        if let Some(bad) = parts.iter().find(|c| !is_oci_component(c)) {
            return Err(invalid(format!(
                "component `{}` is not lower-case letters and digits joined by `.`, `_`, `__` or `-`",
                bad.chars().take(80).collect::<String>()
            )));
        }
        let (host, namespace, model) = match parts.as_slice() {
            [namespace, model] => (ns.unwrap_or(DEFAULT_HOST).to_owned(), namespace, model),
            // Host labels hold no `_`, so the last one is the port's colon.
            [host, namespace, model] => (
                match host.rsplit_once('_') {
                    Some((h, port)) => format!("{h}:{port}"),
                    None => (*host).to_owned(),
                },
                namespace,
                model,
            ),
            _ => return Err(RegistryError::NameShape(name.chars().take(300).collect())),
        };
        // The store's own name grammar has the last word: lengths, no `..`.
        let r: Reference = format!("{host}/{namespace}/{model}")
            .parse()
            .map_err(|e: llmpm_spec::NameError| invalid(e.to_string()))?;
        Ok(Repository::of(&r))
    }

    /// The repository a store name belongs to. OCI repository names are
    /// lower case and store names match case-insensitively, so a mixed-case
    /// name (`hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF`) is served lower-cased.
    pub fn of(reference: &Reference) -> Repository {
        Repository {
            host: reference.host().to_owned(),
            namespace: reference.namespace().to_ascii_lowercase(),
            model: reference.model().to_ascii_lowercase(),
        }
    }

    /// The OCI name: `namespace/model`, or `host_port/namespace/model`
    /// off the default host.
    pub fn name(&self) -> String {
        if self.host == DEFAULT_HOST {
            format!("{}/{}", self.namespace, self.model)
        } else {
            format!(
                "{}/{}/{}",
                self.host.replace(':', "_"),
                self.namespace,
                self.model
            )
        }
    }

    /// The store name of `tag` in this repository, if `tag` is a valid tag.
    fn reference(&self, tag: &str) -> Option<Reference> {
        format!("{}/{}/{}:{tag}", self.host, self.namespace, self.model)
            .parse()
            .ok()
    }

    fn contains(&self, r: &Reference) -> bool {
        r.host() == self.host
            && r.namespace().eq_ignore_ascii_case(&self.namespace)
            && r.model().eq_ignore_ascii_case(&self.model)
    }
}

/// What `manifests/<reference>` names: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestRef {
    /// A tag.
    Tag(String),
    /// A digest.
    Digest(Digest),
}

impl ManifestRef {
    /// A digest when it holds `:` (tags cannot), else a tag.
    pub fn parse(s: &str) -> Result<ManifestRef, RegistryError> {
        if s.contains(':') {
            Ok(ManifestRef::Digest(parse_digest(s)?))
        } else {
            Ok(ManifestRef::Tag(s.to_owned()))
        }
    }
}

/// A digest from a URL: only the `algorithm:hex` form (the `sha256-<hex>`
/// form llmpm takes elsewhere is a tag here, that of the referrers tag schema).
pub fn parse_digest(s: &str) -> Result<Digest, RegistryError> {
    if !s.contains(':') {
        return Err(DigestError::Shape(s.chars().take(200).collect()).into());
    }
    Ok(s.parse::<Digest>()?)
}

/// A manifest as served: the stored bytes and what to call them.
#[derive(Debug, Clone)]
pub struct ServedManifest {
    /// The sha256 of `bytes`.
    pub digest: Digest,
    /// Exactly the stored bytes.
    pub bytes: Vec<u8>,
    /// The manifest's own `mediaType` (OCI's when it has none).
    pub media_type: String,
}

fn tagged(store: &Store, repo: &Repository) -> Result<Vec<(String, Digest)>, RegistryError> {
    let mut out: Vec<(String, Digest)> = store
        .names()?
        .into_iter()
        .filter(|(r, _)| repo.contains(r))
        .map(|(r, d)| (r.tag().to_owned(), d))
        .collect();
    if out.is_empty() {
        return Err(RegistryError::NameUnknown(repo.name()));
    }
    out.sort();
    Ok(out)
}

/// Every repository name, sorted.
pub fn catalog(store: &Store) -> Result<Vec<String>, RegistryError> {
    let names: BTreeSet<String> = store
        .names()?
        .iter()
        .map(|(r, _)| Repository::of(r).name())
        .collect();
    Ok(names.into_iter().collect())
}

/// The repository's tags, sorted; `NameUnknown` when it has none.
pub fn tags(store: &Store, repo: &Repository) -> Result<Vec<String>, RegistryError> {
    Ok(tagged(store, repo)?.into_iter().map(|(t, _)| t).collect())
}

/// The manifests the repository serves by digest: its tags' and their referrers'.
fn manifest_digests(store: &Store, repo: &Repository) -> Result<Vec<Digest>, RegistryError> {
    let mut out = Vec::new();
    for (_, d) in tagged(store, repo)? {
        for r in store.referrers(&d)? {
            out.push(r.digest);
        }
        out.push(d);
    }
    Ok(out)
}

/// The manifest `reference` names in `repo`, byte for byte.
pub fn manifest(
    store: &Store,
    repo: &Repository,
    reference: &ManifestRef,
) -> Result<ServedManifest, RegistryError> {
    let unknown = || RegistryError::ManifestUnknown {
        repository: repo.name(),
        reference: match reference {
            ManifestRef::Tag(t) => t.chars().take(200).collect(),
            ManifestRef::Digest(d) => d.to_string(),
        },
    };
    let digest = match reference {
        ManifestRef::Tag(tag) => {
            let r = repo.reference(tag).ok_or_else(unknown)?;
            match store.manifest_digest(&r) {
                Ok(d) => d,
                Err(StoreError::ModelNotFound(_)) => {
                    // Tell an unknown repository from an unknown tag.
                    tagged(store, repo)?;
                    return Err(unknown());
                }
                Err(e) => return Err(e.into()),
            }
        }
        ManifestRef::Digest(d) => {
            if !manifest_digests(store, repo)?.contains(d) {
                return Err(unknown());
            }
            d.clone()
        }
    };
    let bytes = store.read_blob(&digest, llmpm_spec::manifest::MAX_MANIFEST_BYTES as u64)?;
    let media_type = Manifest::from_slice(&bytes)
        .ok()
        .and_then(|m| m.media_type)
        .unwrap_or_else(|| media_type::OCI_MANIFEST.to_owned());
    Ok(ServedManifest {
        digest,
        bytes,
        media_type,
    })
}

/// The file of blob `digest` and its size, if `repo` references it: a
/// config or layer of one of its manifests or of their referrers, or one of
/// those manifests.
pub fn blob(
    store: &Store,
    repo: &Repository,
    digest: &Digest,
) -> Result<(PathBuf, u64), RegistryError> {
    let unknown = || RegistryError::BlobUnknown {
        repository: repo.name(),
        digest: digest.clone(),
    };
    let mut referenced = false;
    for m in manifest_digests(store, repo)? {
        if m == *digest
            || store
                .read_blob(&m, llmpm_spec::manifest::MAX_MANIFEST_BYTES as u64)
                .ok()
                .and_then(|b| Manifest::from_slice(&b).ok())
                .is_some_and(|m| m.blobs().any(|b| b.digest == *digest))
        {
            referenced = true;
            break;
        }
    }
    if !referenced {
        return Err(unknown());
    }
    let size = store.blob_size(digest).ok_or_else(unknown)?;
    Ok((store.blob_path(digest), size))
}

/// The referrers of `subject` in `repo` as image-index descriptors, those of
/// `artifact_type` only when one is given. A subject the repository does
/// not hold has none (the spec's answer is an empty index, not a 404).
pub fn referrers(
    store: &Store,
    repo: &Repository,
    subject: &Digest,
    artifact_type: Option<&str>,
) -> Result<Vec<Descriptor>, RegistryError> {
    if !tagged(store, repo)?.iter().any(|(_, d)| d == subject) {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for r in store.referrers(subject)? {
        if artifact_type.is_some_and(|t| t != r.artifact_type) {
            continue;
        }
        let Some(size) = store.blob_size(&r.digest) else {
            continue;
        };
        out.push(Descriptor {
            media_type: MediaType::new(
                r.manifest
                    .media_type
                    .clone()
                    .unwrap_or_else(|| media_type::OCI_MANIFEST.to_owned()),
            ),
            digest: r.digest,
            size,
            annotations: r.manifest.annotations,
            artifact_type: Some(r.artifact_type),
            platform: None,
        });
    }
    Ok(out)
}

/// One page of a sorted list: the items after `last`, at most `n` of them
/// (all when `n` is `None`), and whether more follow.
pub fn page(items: Vec<String>, n: Option<usize>, last: Option<&str>) -> (Vec<String>, bool) {
    let mut rest: Vec<String> = match last {
        Some(l) => items.into_iter().filter(|i| i.as_str() > l).collect(),
        None => items,
    };
    match n {
        Some(n) if rest.len() > n => {
            rest.truncate(n);
            (rest, true)
        }
        _ => (rest, false),
    }
}

#[cfg(test)]
mod tests;
