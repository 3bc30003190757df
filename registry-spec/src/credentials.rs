//! `credentials.json`: the registry logins `llmpm login` writes and the daemon reads.
//!
//! The file lives at `$LLMPM_HOME/credentials.json` with mode 0600. It is not
//! part of the store: the CLI writes it (it never touches the store), the
//! daemon reads it afresh for every pull and push, so a login needs no
//! restart. Keys are registry hosts as they appear in model names (lower
//! case, with the port if any).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The file name under `$LLMPM_HOME`.
pub const FILE_NAME: &str = "credentials.json";

/// One registry login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    /// The user name.
    pub username: String,
    /// The password or access token.
    pub password: String,
}

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialsFile {
    /// Host → login.
    #[serde(default)]
    pub hosts: BTreeMap<String, Credential>,
}

impl CredentialsFile {
    /// The login for `host` (compared in lower case).
    pub fn get(&self, host: &str) -> Option<&Credential> {
        self.hosts.get(&host.to_ascii_lowercase())
    }
}
