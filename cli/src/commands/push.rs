//! `llmpm push NAME [--insecure] [--limit-rate RATE]`: the daemon pushes; this draws one byte bar per layer.

use anyhow::Context;
use llmpm_spec::api::PullRequest;

use crate::cli::TransferArgs;
use crate::client::Client;
use crate::printer::Printer;

/// Pushes a model.
pub async fn run(args: &TransferArgs, client: &Client, printer: &Printer) -> anyhow::Result<()> {
    super::parse_name(&args.model)?;
    let req = PullRequest {
        model: args.model.clone(),
        insecure: args.insecure,
        stream: Some(true),
        limit_rate: args.limit_rate,
    };
    let stream = client.push(&req).await;
    super::pull::follow(stream, printer, "push")
        .await
        .with_context(|| format!("Failed to push `{}`", args.model))
}
