//! `llmpm prune`: deletes unreferenced blobs and stale partial files, and says what went.

use crate::cli::JsonArgs;
use crate::client::Client;
use crate::format::{human_bytes, plural};
use crate::printer::Printer;

/// Prunes the store and prints what was removed.
pub async fn run(args: &JsonArgs, client: &Client, printer: &Printer) -> anyhow::Result<()> {
    let r = client.prune().await?;
    if args.json {
        return printer.json(&r);
    }
    printer.data_line(&format!(
        "removed {} unused {} ({} freed) and {} stale temporary {}",
        r.blobs_removed,
        plural(r.blobs_removed, "blob", "blobs"),
        human_bytes(r.bytes_freed),
        r.temp_files_removed,
        plural(r.temp_files_removed, "file", "files"),
    ))
}
