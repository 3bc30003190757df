//! `llmpm cp SRC DST`: another name for the same manifest.

use llmpm_spec::api::CopyRequest;

use crate::cli::CpArgs;
use crate::client::Client;
use crate::printer::Printer;

/// Copies `args.source` to `args.destination`.
pub async fn run(args: &CpArgs, client: &Client, printer: &Printer) -> anyhow::Result<()> {
    super::parse_name(&args.source)?;
    super::parse_name(&args.destination)?;
    let req = CopyRequest {
        source: args.source.clone(),
        destination: args.destination.clone(),
    };
    client.copy(&req).await?;
    printer.status(&format!(
        "copied '{}' to '{}'",
        args.source, args.destination
    ));
    Ok(())
}
