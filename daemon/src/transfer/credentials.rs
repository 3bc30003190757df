//! Reading the registry logins `llmpm login` saved (`$LLMPM_HOME/credentials.json`, mode 0600).
//!
//! The CLI writes the file; the daemon only reads it, afresh for each pull
//! or push, so a new login takes effect without a restart. A file that other
//! users can read is refused, as ssh refuses a readable private key.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use llmpm_spec::credentials::{Credential, CredentialsFile, FILE_NAME};

use super::TransferError;

/// Where the file is under a home.
pub fn path(home: &Path) -> PathBuf {
    home.join(FILE_NAME)
}

/// The login for `host`, if one was saved.
pub fn lookup(home: &Path, host: &str) -> Result<Option<Credential>, TransferError> {
    let p = path(home);
    let meta = match std::fs::metadata(&p) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(TransferError::Credentials {
                path: p,
                source: Box::new(e),
            })
        }
    };
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(TransferError::Credentials {
            path: p.clone(),
            source: format!(
                "it is readable by other users (mode {:o}); run `chmod 600 {}`",
                meta.permissions().mode() & 0o777,
                p.display()
            )
            .into(),
        });
    }
    let bytes = std::fs::read(&p).map_err(|e| TransferError::Credentials {
        path: p.clone(),
        source: Box::new(e),
    })?;
    let file: CredentialsFile =
        serde_json::from_slice(&bytes).map_err(|e| TransferError::Credentials {
            path: p.clone(),
            source: Box::new(e),
        })?;
    Ok(file.get(host).cloned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_by_host_and_refuses_open_modes() {
        let dir = tempfile::tempdir().unwrap();
        assert!(lookup(dir.path(), "h").unwrap().is_none());
        let p = path(dir.path());
        std::fs::write(
            &p,
            r#"{"hosts":{"reg.example:5000":{"username":"u","password":"p"}}}"#,
        )
        .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let c = lookup(dir.path(), "REG.example:5000").unwrap().unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("u", "p"));
        assert!(lookup(dir.path(), "other").unwrap().is_none());
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = lookup(dir.path(), "reg.example:5000").unwrap_err();
        assert!(format!("{e:?}").contains("chmod 600"), "{e:?}");
    }
}
