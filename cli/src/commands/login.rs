//! `llmpm login HOST` / `llmpm logout HOST`: the registry logins in `$LLMPM_HOME/credentials.json` (mode 0600).
//!
//! Credentials are the daemon's to use but not part of its store, so the
//! CLI writes the file itself (atomically, mode 0600 from creation) and the
//! daemon reads it afresh on every pull and push. The login is not checked
//! against the registry here: the next pull or push reports a refusal.

use std::io::{BufRead, IsTerminal, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use llmpm_spec::credentials::{Credential, CredentialsFile, FILE_NAME};

use crate::cli::{LoginArgs, LogoutArgs};
use crate::error::UserError;
use crate::printer::Printer;
use crate::settings::Settings;

fn file_path(settings: &Settings) -> anyhow::Result<PathBuf> {
    settings
        .home
        .as_ref()
        .map(|h| h.join(FILE_NAME))
        .ok_or_else(|| UserError::new("cannot find llmpm's home directory: set LLMPM_HOME").into())
}

fn read(path: &Path) -> anyhow::Result<CredentialsFile> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .with_context(|| format!("Failed to read `{}`; fix or delete it", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(CredentialsFile::default()),
        Err(e) => {
            Err(anyhow::Error::new(e).context(format!("Failed to read `{}`", path.display())))
        }
    }
}

/// Writes the file through a temp file created with mode 0600, then renames it.
fn write(path: &Path, file: &CredentialsFile) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("Failed to create `{}`", dir.display()))?;
    }
    let tmp = path.with_extension(format!("json.{}.tmp", std::process::id()));
    let json = serde_json::to_vec_pretty(file)?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("Failed to create `{}`", tmp.display()))?;
    let res = f
        .write_all(&json)
        .and_then(|()| f.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(anyhow::Error::new(e).context(format!("Failed to write `{}`", path.display())));
    }
    Ok(())
}

fn check_host(host: &str) -> anyhow::Result<String> {
    // A host is whatever parses as the host part of a model name.
    let probe = format!("{host}/x/y");
    match probe.parse::<llmpm_spec::Reference>() {
        Ok(r) => Ok(r.host().to_owned()),
        Err(_) => Err(UserError::new(format!(
            "`{host}` is not a registry host; use `name[:port]` as in model names"
        ))
        .into()),
    }
}

fn read_line(prompt: Option<&str>, printer: &Printer) -> anyhow::Result<String> {
    if let Some(p) = prompt {
        printer.prompt(p);
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("Failed to read standard input")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

/// Saves a login.
pub fn login(args: &LoginArgs, settings: &Settings, printer: &Printer) -> anyhow::Result<()> {
    let host = check_host(&args.host)?;
    let interactive = std::io::stdin().is_terminal();
    let username = match &args.username {
        Some(u) => u.clone(),
        None if interactive && !args.password_stdin => read_line(Some("Username: "), printer)?,
        None => return Err(UserError::new("give the user name with `--username`").into()),
    };
    let password = if args.password_stdin || !interactive {
        read_line(None, printer)?
    } else {
        rpassword::prompt_password("Password: ").context("Failed to read the password")?
    };
    if username.is_empty() || password.is_empty() {
        return Err(UserError::new("the user name and the password must not be empty").into());
    }
    let path = file_path(settings)?;
    let mut file = read(&path)?;
    file.hosts
        .insert(host.clone(), Credential { username, password });
    write(&path, &file)?;
    printer.status(&format!("Login for `{host}` saved in `{}`", path.display()));
    Ok(())
}

/// Forgets a login.
pub fn logout(args: &LogoutArgs, settings: &Settings, printer: &Printer) -> anyhow::Result<()> {
    let host = check_host(&args.host)?;
    let path = file_path(settings)?;
    let mut file = read(&path)?;
    if file.hosts.remove(&host).is_none() {
        return Err(UserError::new(format!("not logged in to `{host}`")).into());
    }
    write(&path, &file)?;
    printer.status(&format!("Removed the login for `{host}`"));
    Ok(())
}
