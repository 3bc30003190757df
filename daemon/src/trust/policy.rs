//! The trust policy: which registries and namespaces need signatures, in which mode, and whose keys count.
//!
//! In the YAML config:
//!
//! ```yaml
//! trust_policy:
//!   - scope: registry.example.com/acme   # a host, host/namespace, host/namespace/model, or "*"
//!     mode: require                      # require | warn | off
//!     keys:
//!       - name: acme-release
//!         path: /etc/llmpm/acme.pub      # or `pem: "-----BEGIN PUBLIC KEY-----…"`
//! ```
//!
//! The entry with the longest scope that matches a name (on `/` boundaries)
//! applies; no entry means `off`. Keys are read at each pull, so a changed
//! key file needs no restart, and a bad one fails that pull with its reason.

use std::path::PathBuf;

use llmpm_spec::Reference;
use serde::Deserialize;

use super::keys::{KeyError, PublicKey};
use super::oms::TrustedKey;

/// What a missing or bad signature does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Refuse the pull; nothing is stored.
    Require,
    /// Pull, and say why the signature did not verify.
    Warn,
    /// Do not look for signatures.
    #[default]
    Off,
}

impl Mode {
    /// `require`, `warn` or `off`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Require => "require",
            Mode::Warn => "warn",
            Mode::Off => "off",
        }
    }
}

/// A trusted key, as configured.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRef {
    /// Its name in messages (default: the file name).
    #[serde(default)]
    pub name: Option<String>,
    /// A PEM public key file.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// The PEM text itself.
    #[serde(default)]
    pub pem: Option<String>,
}

/// One policy entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyEntry {
    /// `host`, `host/namespace`, `host/namespace/model`, or `*`.
    pub scope: String,
    /// What a missing or bad signature does.
    pub mode: Mode,
    /// Whose signatures count.
    #[serde(default)]
    pub keys: Vec<KeyRef>,
}

/// The whole policy (`trust_policy` in the config).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct TrustPolicy(pub Vec<PolicyEntry>);

/// A configured key that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyKeyError {
    /// Neither or both of `path` and `pem`.
    #[error("trust_policy key {0} needs exactly one of `path` or `pem`")]
    Shape(String),
    /// The file cannot be read.
    #[error("cannot read trusted key `{}`", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Not a usable key.
    #[error(transparent)]
    Key(#[from] KeyError),
}

fn scope_matches(scope: &str, name: &str) -> bool {
    scope == "*" || name == scope || name.strip_prefix(scope).is_some_and(|r| r.starts_with('/'))
}

impl TrustPolicy {
    /// The entry that applies to `name` (`host/namespace/model`), if any.
    pub fn entry_for(&self, name: &Reference) -> Option<&PolicyEntry> {
        // Names match case-insensitively (SPEC.md, "Names"), and so do scopes.
        let full = format!("{}/{}", name.host(), name.repository()).to_ascii_lowercase();
        self.0
            .iter()
            .filter(|e| scope_matches(&e.scope.trim_end_matches('/').to_ascii_lowercase(), &full))
            .max_by_key(|e| if e.scope == "*" { 0 } else { e.scope.len() + 1 })
    }

    /// The mode for `name` (`off` when no entry applies).
    pub fn mode_for(&self, name: &Reference) -> Mode {
        self.entry_for(name).map_or(Mode::Off, |e| e.mode)
    }

    /// Every key of every entry (for checking stored models whatever their name).
    pub fn all_keys(&self) -> Result<Vec<TrustedKey>, PolicyKeyError> {
        let mut out: Vec<TrustedKey> = Vec::new();
        for e in &self.0 {
            for k in e.load_keys()? {
                if !out.iter().any(|o| o.key == k.key) {
                    out.push(k);
                }
            }
        }
        Ok(out)
    }
}

impl PolicyEntry {
    /// Reads this entry's keys.
    pub fn load_keys(&self) -> Result<Vec<TrustedKey>, PolicyKeyError> {
        self.keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let label = k
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("#{} of `{}`", i + 1, self.scope));
                let (pem, what, default_name) = match (&k.path, &k.pem) {
                    (Some(p), None) => {
                        let pem =
                            std::fs::read_to_string(p).map_err(|source| PolicyKeyError::Read {
                                path: p.clone(),
                                source,
                            })?;
                        let file = p
                            .file_name()
                            .map(|f| f.to_string_lossy().into_owned())
                            .unwrap_or_else(|| p.display().to_string());
                        (pem, format!("trusted key `{}`", p.display()), file)
                    }
                    (None, Some(pem)) => {
                        (pem.clone(), format!("trusted key {label}"), label.clone())
                    }
                    _ => return Err(PolicyKeyError::Shape(label)),
                };
                let key = PublicKey::from_pem(&pem, &what)?;
                Ok(TrustedKey {
                    name: k.name.clone().unwrap_or(default_name),
                    key,
                })
            })
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn policy(yaml: &str) -> TrustPolicy {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn the_longest_matching_scope_applies() {
        let p = policy(
            "- {scope: '*', mode: warn}\n\
             - {scope: 'reg.example/acme', mode: require}\n\
             - {scope: 'reg.example/acme/free', mode: off}\n",
        );
        let m = |n: &str| p.mode_for(&n.parse().unwrap());
        assert_eq!(m("reg.example/acme/model:1"), Mode::Require);
        assert_eq!(m("reg.example/acme/free:1"), Mode::Off);
        assert_eq!(m("reg.example/acmecorp/model"), Mode::Warn);
        assert_eq!(m("other.example/x/y"), Mode::Warn);
        assert_eq!(
            TrustPolicy::default().mode_for(&"a/b".parse().unwrap()),
            Mode::Off
        );
    }

    #[test]
    fn unknown_fields_and_modes_are_errors() {
        assert!(serde_yaml_ng::from_str::<TrustPolicy>("- {scope: x, mode: maybe}").is_err());
        assert!(
            serde_yaml_ng::from_str::<TrustPolicy>("- {scope: x, mode: off, kyes: []}").is_err()
        );
    }

    #[test]
    fn a_key_needs_a_path_or_pem() {
        let p = policy("- {scope: x, mode: require, keys: [{name: k}]}");
        let e = p.0[0].load_keys().unwrap_err().to_string();
        assert!(e.contains("exactly one of `path` or `pem`"), "{e}");
    }
}
