//! `llmpm keygen`, `llmpm sign`, `llmpm export` and `llmpm verify --signatures`: model signatures through the daemon.
//!
//! The daemon does the cryptography (the CLI has none): `keygen` asks it for
//! a pair and writes the files here, `sign` sends the private key's PEM over
//! the local socket (mode 0600, or TCP behind the API key) and gets back the
//! bundle it stored with the model.

use std::io::Write as _;
use std::path::Path;

use llmpm_spec::api::{
    ExportRequest, KeygenRequest, SignRequest, SignatureInfo, SignaturesRequest,
};

use crate::cli::{ExportArgs, KeygenArgs, SignArgs, VerifyArgs};
use crate::client::Client;
use crate::error::{Failure, UserError};
use crate::printer::Printer;

fn read_text(path: &Path, what: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| UserError::new(format!("cannot read {what} `{}`: {e}", path.display())).into())
}

/// Creates `path` (never overwriting) with `mode` and writes `text`.
fn write_new(path: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| {
            UserError::new(format!("cannot create `{}`: {e}", path.display()))
                .with_hint("keygen never overwrites a key; choose another `--out`")
        })?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// Writes a new key pair.
pub async fn keygen(args: &KeygenArgs, client: &Client, printer: &Printer) -> anyhow::Result<()> {
    let pair = client
        .keygen(&KeygenRequest {
            key_type: Some(args.key_type.clone()),
        })
        .await?;
    let with_ext = |ext: &str| {
        let mut p = args.out.clone().into_os_string();
        p.push(ext);
        std::path::PathBuf::from(p)
    };
    let (key, public) = (with_ext(".key"), with_ext(".pub"));
    write_new(&key, &pair.private_key, 0o600)?;
    write_new(&public, &pair.public_key, 0o644)?;
    printer.data(&format!(
        "wrote {} key `{}` (keep it secret) and `{}`\nkey hint {}\n",
        pair.key_type,
        key.display(),
        public.display(),
        pair.key_hint
    ))
}

/// Signs a model.
pub async fn sign(args: &SignArgs, client: &Client, printer: &Printer) -> anyhow::Result<()> {
    super::parse_name(&args.model)?;
    let key = read_text(&args.key, "key")?;
    let r = client
        .sign(&SignRequest {
            model: args.model.clone(),
            key,
        })
        .await?;
    if let Some(path) = &args.bundle {
        let text = serde_json::to_string(&r.bundle)?;
        std::fs::write(path, text)
            .map_err(|e| UserError::new(format!("cannot write `{}`: {e}", path.display())))?;
    }
    printer.data(&format!(
        "signed {} ({}) with {} key {}\nsignature {}\n",
        args.model, r.digest, r.key_type, r.key_hint, r.artifact
    ))
}

/// Writes a model's files to a directory.
pub async fn export(args: &ExportArgs, client: &Client, printer: &Printer) -> anyhow::Result<()> {
    super::parse_name(&args.model)?;
    let dir = std::path::absolute(&args.dir)?;
    let r = client
        .export(&ExportRequest {
            model: args.model.clone(),
            path: dir.display().to_string(),
            ..ExportRequest::default()
        })
        .await?;
    let mut out = String::new();
    for f in &r.files {
        out.push_str(&format!("{}\n", dir.join(f).display()));
    }
    printer.data(&out)
}

/// The `show` rows of a model's signatures.
pub fn signature_rows(sigs: &[SignatureInfo]) -> Vec<(String, String)> {
    sigs.iter()
        .map(|s| {
            let key = s
                .key_hint
                .as_deref()
                .map(|h| format!("key {}", &h[..h.len().min(12)]))
                .unwrap_or_else(|| "no key hint".to_owned());
            let when = s
                .created
                .as_deref()
                .map(|c| format!(", made {c}"))
                .unwrap_or_default();
            let what = match (&s.signer, &s.error) {
                (Some(signer), _) => format!("signed by {signer} ({key}{when})"),
                (None, Some(e)) => format!("does not verify ({key}{when}): {e}"),
                (None, None) => format!("unchecked ({key}{when})"),
            };
            (String::new(), what)
        })
        .collect()
}

/// Checks the signatures of the named models (or all of them); a model
/// without a verified signature makes the exit code 1.
pub async fn verify_signatures(
    args: &VerifyArgs,
    client: &Client,
    printer: &Printer,
) -> anyhow::Result<()> {
    let models = if args.models.is_empty() {
        client
            .list()
            .await?
            .models
            .into_iter()
            .map(|m| m.name)
            .collect()
    } else {
        args.models.clone()
    };
    if args.bundle.is_some() && models.len() != 1 {
        return Err(UserError::new("`--bundle` checks one model; name it").into());
    }
    let mut keys = Vec::new();
    for k in &args.key {
        keys.push(read_text(k, "public key")?);
    }
    let bundle =
        match &args.bundle {
            Some(p) => Some(serde_json::from_str(&read_text(p, "bundle")?).map_err(|e| {
                UserError::new(format!("`{}` is not a JSON bundle: {e}", p.display()))
            })?),
            None => None,
        };
    let mut unsigned = Vec::new();
    let mut report = Vec::new();
    let mut out = String::new();
    for m in &models {
        super::parse_name(m)?;
        let r = client
            .signatures(&SignaturesRequest {
                model: m.clone(),
                bundle: bundle.clone(),
                keys: keys.clone(),
            })
            .await?;
        if !r.signatures.iter().any(|s| s.verified) {
            unsigned.push(m.clone());
        }
        out.push_str(&format!("{m} {}\n", r.digest));
        if r.signatures.is_empty() {
            out.push_str("    no signature\n");
        }
        for (_, row) in signature_rows(&r.signatures) {
            out.push_str(&format!("    {row}\n"));
        }
        report
            .push(serde_json::json!({"model": m, "digest": r.digest, "signatures": r.signatures}));
    }
    if args.json {
        printer.json(&report)?;
    } else {
        printer.data(&out)?;
    }
    if unsigned.is_empty() {
        return Ok(());
    }
    Err(Failure::new(format!(
        "no trusted signature verifies {}",
        unsigned
            .iter()
            .map(|m| format!("`{m}`"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
    .with_hint("trust the signer's public key in `trust_policy` (config) or pass `--key PUB`")
    .into())
}
