//! `llmpm verify`: the daemon re-hashes every blob; this prints what is damaged and which models need it.

use crate::cli::VerifyArgs;
use crate::client::Client;
use crate::error::Failure;
use crate::format::{human_bytes, plural};
use crate::printer::Printer;

/// Verifies the store; damage is reported on stdout and makes the exit code 1.
pub async fn run(args: &VerifyArgs, client: &Client, printer: &Printer) -> anyhow::Result<()> {
    if args.signatures {
        return super::sign::verify_signatures(args, client, printer).await;
    }
    if !args.models.is_empty() || !args.key.is_empty() || args.bundle.is_some() {
        return Err(crate::error::UserError::new(
            "models, `--key` and `--bundle` go with `--signatures`",
        )
        .into());
    }
    let r = client.verify().await?;
    if args.json {
        printer.json(&r)?;
    } else {
        let mut out = format!(
            "checked {} {} ({})\n",
            r.blobs_checked,
            plural(r.blobs_checked, "blob", "blobs"),
            human_bytes(r.bytes_checked)
        );
        for c in &r.corrupt {
            out.push_str(&format!("corrupt {}: {}\n", c.digest, c.problem));
            if !c.quarantined_to.is_empty() {
                out.push_str(&format!("  moved to {}\n", c.quarantined_to));
            }
            if !c.models.is_empty() {
                out.push_str(&format!("  needed by {}\n", c.models.join(", ")));
            }
        }
        for d in &r.missing {
            out.push_str(&format!("missing {d}\n"));
        }
        printer.data(&out)?;
    }
    let damaged = r.corrupt.len() + r.missing.len();
    if damaged == 0 {
        return Ok(());
    }
    let mut models: Vec<&str> = r
        .corrupt
        .iter()
        .flat_map(|c| c.models.iter().map(String::as_str))
        .collect();
    models.sort_unstable();
    models.dedup();
    let hint = if models.is_empty() {
        "pull or create the affected models again".to_owned()
    } else {
        format!(
            "create or pull these models again: {}",
            models
                .iter()
                .map(|m| format!("`{m}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    Err(Failure::new(format!(
        "{damaged} {} corrupt or missing",
        plural(damaged as u64, "blob is", "blobs are")
    ))
    .with_hint(hint)
    .into())
}
