//! `llmpm serve`: becomes `llmpmd` in the foreground.

use crate::settings::Settings;

/// Replaces this process with the daemon; returns only if that failed.
pub fn run(settings: &Settings) -> anyhow::Result<()> {
    Err(crate::autostart::exec(settings))
}
