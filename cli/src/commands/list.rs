//! `llmpm list` / `ls`: the local models as a table, or `/api/tags` as JSON.

use std::time::SystemTime;

use llmpm_spec::api::ListResponse;

use crate::cli::ListArgs;
use crate::client::Client;
use crate::format::{human_bytes, human_rfc3339, short_id, table};
use crate::printer::Printer;

/// The columns: `ollama list`'s four first, so scripts that read those keep
/// working, then llmpm's details.
const HEADER: [&str; 7] = [
    "NAME", "ID", "SIZE", "MODIFIED", "FAMILY", "PARAMS", "QUANT",
];

/// Lists the models.
pub async fn run(args: &ListArgs, client: &Client, printer: &Printer) -> anyhow::Result<()> {
    let list = client.list().await?;
    if args.json {
        return printer.json(&list);
    }
    printer.data(&render(&list, SystemTime::now()))
}

/// The table for `list`, with times relative to `now`.
pub fn render(list: &ListResponse, now: SystemTime) -> String {
    let rows: Vec<Vec<String>> = list
        .models
        .iter()
        .map(|m| {
            vec![
                m.name.clone(),
                short_id(&m.digest).to_owned(),
                human_bytes(m.size),
                human_rfc3339(&m.modified_at, now),
                m.details.family.clone(),
                m.details.parameter_size.clone(),
                m.details.quantization_level.clone(),
            ]
        })
        .collect();
    table(&HEADER, &rows, 4)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use llmpm_spec::api::{ListModel, ModelDetails};

    use super::*;

    #[test]
    fn table_like_ollama() {
        let now = humantime::parse_rfc3339("2024-05-01T12:00:00Z").unwrap();
        let list = ListResponse {
            models: vec![ListModel {
                name: "llama3:latest".into(),
                model: "llama3:latest".into(),
                modified_at: "2024-05-01T11:58:00.000000Z".into(),
                size: 4_661_224_676,
                digest: "365c0bd3c000a25d28ddbf732fe1c6add414de7275464c4e4d1c3b5fcb5d8ad1".into(),
                details: ModelDetails {
                    family: "llama".into(),
                    parameter_size: "8.0B".into(),
                    quantization_level: "Q4_0".into(),
                    ..ModelDetails::default()
                },
                capabilities: vec!["completion".into()],
            }],
        };
        let want = "\
NAME             ID              SIZE      MODIFIED         FAMILY    PARAMS    QUANT
llama3:latest    365c0bd3c000    4.7 GB    2 minutes ago    llama     8.0B      Q4_0
";
        assert_eq!(render(&list, now), want);
        assert_eq!(
            render(&ListResponse { models: vec![] }, now),
            "NAME    ID    SIZE    MODIFIED    FAMILY    PARAMS    QUANT\n"
        );
    }
}
