//! `llmpm ps`: the loaded models as `ollama ps` shows them, or `/api/ps` as JSON.

use std::time::{Duration, SystemTime};

use llmpm_spec::api::{ProcessModel, ProcessResponse};

use crate::cli::ListArgs;
use crate::client::Client;
use crate::format::{human_bytes, human_duration, short_id, table};
use crate::printer::Printer;

/// `ollama ps`'s columns.
const HEADER: [&str; 6] = ["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"];

/// An expiry further ahead than this reads `Forever` (as in `ollama ps`:
/// "keep forever" is reported as a time centuries away).
const FOREVER: Duration = Duration::from_secs(20 * 365 * 24 * 3600);

/// Lists the loaded models.
pub async fn run(args: &ListArgs, client: &Client, printer: &Printer) -> anyhow::Result<()> {
    let ps = client.ps().await?;
    if args.json {
        return printer.json(&ps);
    }
    printer.data(&render(&ps, SystemTime::now()))
}

/// Where the model runs: all CPU, all GPU, or the split.
fn processor(m: &ProcessModel) -> String {
    if m.size_vram == 0 || m.size == 0 {
        return "100% CPU".to_owned();
    }
    if m.size_vram >= m.size {
        return "100% GPU".to_owned();
    }
    let gpu = (m.size_vram as f64 * 100.0 / m.size as f64).round() as u64;
    format!("{}%/{gpu}% CPU/GPU", 100 - gpu)
}

/// When the model will be unloaded, relative to `now`.
fn until(expires_at: &str, now: SystemTime) -> String {
    let Ok(t) = humantime::parse_rfc3339_weak(expires_at) else {
        return expires_at.to_owned();
    };
    match t.duration_since(now) {
        Ok(d) if d > FOREVER => "Forever".to_owned(),
        Ok(d) => format!("{} from now", human_duration(d)),
        // Past its time: the daemon is unloading it.
        Err(_) => "Stopping...".to_owned(),
    }
}

/// The table for `ps`, with times relative to `now`.
pub fn render(ps: &ProcessResponse, now: SystemTime) -> String {
    let rows: Vec<Vec<String>> = ps
        .models
        .iter()
        .map(|m| {
            vec![
                m.name.clone(),
                short_id(&m.digest).to_owned(),
                human_bytes(m.size),
                processor(m),
                m.context_length.to_string(),
                until(&m.expires_at, now),
            ]
        })
        .collect();
    table(&HEADER, &rows, 4)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use llmpm_spec::api::ModelDetails;

    use super::*;

    fn model(name: &str, expires_at: &str) -> ProcessModel {
        ProcessModel {
            name: name.into(),
            model: name.into(),
            size: 5_137_025_024,
            digest: "365c0bd3c000a25d28ddbf732fe1c6add414de7275464c4e4d1c3b5fcb5d8ad1".into(),
            details: ModelDetails::default(),
            expires_at: expires_at.into(),
            size_vram: 0,
            context_length: 4096,
        }
    }

    #[test]
    fn table_like_ollama() {
        let now = humantime::parse_rfc3339("2024-05-01T12:00:00Z").unwrap();
        let ps = ProcessResponse {
            models: vec![
                model("forever:latest", "2316-08-14T12:00:00.000000Z"),
                model("llama3:latest", "2024-05-01T12:04:30.000000Z"),
                model("old:latest", "2024-05-01T11:59:00Z"),
            ],
        };
        let want = "\
NAME              ID              SIZE      PROCESSOR    CONTEXT    UNTIL
forever:latest    365c0bd3c000    5.1 GB    100% CPU     4096       Forever
llama3:latest     365c0bd3c000    5.1 GB    100% CPU     4096       4 minutes from now
old:latest        365c0bd3c000    5.1 GB    100% CPU     4096       Stopping...
";
        assert_eq!(render(&ps, now), want);
        assert_eq!(
            render(&ProcessResponse { models: vec![] }, now),
            "NAME    ID    SIZE    PROCESSOR    CONTEXT    UNTIL\n"
        );
    }

    #[test]
    fn processors() {
        let mut m = model("a", "");
        assert_eq!(processor(&m), "100% CPU");
        m.size_vram = m.size;
        assert_eq!(processor(&m), "100% GPU");
        m.size_vram = m.size / 4;
        assert_eq!(processor(&m), "75%/25% CPU/GPU");
    }
}
