//! `llmpm rm MODEL...`: removes names; the daemon deletes blobs no other model uses.

use llmpm_spec::api::DeleteRequest;

use crate::cli::RmArgs;
use crate::client::Client;
use crate::printer::Printer;

/// Removes each model in order, stopping at the first failure (as `ollama
/// rm` does), so what was removed is exactly what was confirmed.
pub async fn run(args: &RmArgs, client: &Client, printer: &Printer) -> anyhow::Result<()> {
    // Every name is checked before anything is removed.
    for name in &args.models {
        super::parse_name(name)?;
    }
    for name in &args.models {
        client
            .delete(&DeleteRequest {
                model: name.clone(),
            })
            .await?;
        printer.status(&format!("deleted '{name}'"));
    }
    Ok(())
}
