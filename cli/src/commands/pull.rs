//! `llmpm pull NAME [--insecure] [--limit-rate RATE]`: the daemon pulls; this draws one byte bar per layer.

use anyhow::Context;
use llmpm_spec::api::PullRequest;

use crate::cli::TransferArgs;
use crate::client::{Client, ProgressStream};
use crate::error::Failure;
use crate::printer::Printer;
use crate::progress::Progress;

/// Pulls a model.
pub async fn run(args: &TransferArgs, client: &Client, printer: &Printer) -> anyhow::Result<()> {
    super::parse_name(&args.model)?;
    let req = PullRequest {
        model: args.model.clone(),
        insecure: args.insecure,
        stream: Some(true),
        limit_rate: args.limit_rate,
    };
    let stream = client.pull(&req).await;
    follow(stream, printer, "pull")
        .await
        .with_context(|| format!("Failed to pull `{}`", args.model))
}

/// Renders a pull or push stream until `success`.
pub async fn follow(
    stream: anyhow::Result<ProgressStream>,
    printer: &Printer,
    what: &str,
) -> anyhow::Result<()> {
    let mut stream = stream?;
    let mut progress = Progress::new(printer);
    let mut succeeded = false;
    while let Some(p) = stream.next().await? {
        succeeded = p.status == "success";
        progress.update(&p);
    }
    progress.finish();
    if !succeeded {
        return Err(Failure::new(format!(
            "llmpmd ended the {what} before it reported `success`"
        ))
        .with_hint("see the daemon's log (`llmpmd.log` in its home)")
        .into());
    }
    Ok(())
}
