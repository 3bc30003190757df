//! `llmpm show MODEL`: a summary like `ollama show`, one part raw (`--modelfile`, `--system`, …), or the JSON.

use llmpm_spec::api::{ShowRequest, ShowResponse};
use serde_json::Value;

use crate::cli::ShowArgs;
use crate::client::Client;
use crate::printer::Printer;

/// Lines of System and License shown in the summary; the full text is one
/// flag away.
const PREVIEW_LINES: usize = 2;
/// Array items shown per metadata key with `--verbose`.
const PREVIEW_ITEMS: usize = 8;

/// Shows a model.
pub async fn run(args: &ShowArgs, client: &Client, printer: &Printer) -> anyhow::Result<()> {
    super::parse_name(&args.model)?;
    let req = ShowRequest {
        model: args.model.clone(),
        verbose: args.verbose,
    };
    let show = client.show(&req).await?;
    if args.json {
        return printer.json(&show);
    }
    let part = if args.modelfile {
        Some(&show.modelfile)
    } else if args.parameters {
        Some(&show.parameters)
    } else if args.template {
        Some(&show.template)
    } else if args.system {
        Some(&show.system)
    } else if args.license {
        Some(&show.license)
    } else {
        None
    };
    match part {
        // An absent part prints nothing, so `$(llmpm show m --system)` is
        // empty rather than a blank line.
        Some(text) if text.is_empty() => Ok(()),
        Some(text) => printer.data_line(text),
        None => printer.data(&summary(&show, args.verbose)),
    }
}

/// A section: a title and aligned key/value rows (a row with an empty key is
/// a plain line).
fn section(out: &mut String, title: &str, rows: &[(String, String)]) {
    if rows.is_empty() {
        return;
    }
    let width = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    out.push_str(&format!("  {title}\n"));
    for (k, v) in rows {
        let line = if k.is_empty() {
            format!("    {v}")
        } else {
            format!("    {k:<width$}    {v}")
        };
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.push('\n');
}

/// Up to [`PREVIEW_LINES`] lines of `text`, then `...` if there is more.
fn preview(text: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = text.trim().lines().collect();
    let mut rows: Vec<(String, String)> = lines
        .iter()
        .take(PREVIEW_LINES)
        .map(|l| (String::new(), (*l).to_owned()))
        .collect();
    if lines.len() > PREVIEW_LINES {
        rows.push((String::new(), "...".to_owned()));
    }
    rows
}

fn info_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let mut shown: Vec<String> = items.iter().take(PREVIEW_ITEMS).map(info_text).collect();
            if items.len() > PREVIEW_ITEMS {
                shown.push(format!("... ({} items)", items.len()));
            }
            format!("[{}]", shown.join(", "))
        }
        other => other.to_string(),
    }
}

/// The summary `show` prints without flags.
pub fn summary(show: &ShowResponse, verbose: bool) -> String {
    let info = &show.model_info;
    let arch = info
        .get("general.architecture")
        .and_then(Value::as_str)
        .unwrap_or(&show.details.family)
        .to_owned();
    let mut model = Vec::new();
    let mut row = |k: &str, v: String| {
        if !v.is_empty() {
            model.push((k.to_owned(), v));
        }
    };
    row("architecture", arch.clone());
    row("parameters", show.details.parameter_size.clone());
    for (label, key) in [
        ("context length", "context_length"),
        ("embedding length", "embedding_length"),
    ] {
        if let Some(v) = info.get(&format!("{arch}.{key}")) {
            row(label, info_text(v));
        }
    }
    row("quantization", show.details.quantization_level.clone());

    let mut out = String::new();
    section(&mut out, "Model", &model);
    let caps: Vec<(String, String)> = show
        .capabilities
        .iter()
        .map(|c| (String::new(), c.clone()))
        .collect();
    section(&mut out, "Capabilities", &caps);
    let params: Vec<(String, String)> = show
        .parameters
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| match l.trim().split_once(char::is_whitespace) {
            Some((k, v)) => (k.to_owned(), v.trim().to_owned()),
            None => (l.trim().to_owned(), String::new()),
        })
        .collect();
    section(&mut out, "Parameters", &params);
    section(&mut out, "System", &preview(&show.system));
    section(&mut out, "License", &preview(&show.license));
    section(
        &mut out,
        "Signatures",
        &super::sign::signature_rows(&show.signatures),
    );
    if verbose {
        let meta: Vec<(String, String)> = info
            .iter()
            .map(|(k, v)| (k.clone(), info_text(v)))
            .collect();
        section(&mut out, "Metadata", &meta);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use llmpm_spec::api::ModelDetails;

    use super::*;

    #[test]
    fn summary_like_ollama() {
        let mut info = serde_json::Map::new();
        info.insert("general.architecture".into(), "llama".into());
        info.insert("llama.context_length".into(), 8192.into());
        info.insert("llama.embedding_length".into(), 4096.into());
        let show = ShowResponse {
            parameters: "num_ctx                        512\nstop                           \"<|eot_id|>\"\n".into(),
            system: "You are terse.".into(),
            license: "Line one.\nLine two.\nLine three.".into(),
            details: ModelDetails {
                family: "llama".into(),
                parameter_size: "8.0B".into(),
                quantization_level: "Q4_0".into(),
                ..ModelDetails::default()
            },
            model_info: info,
            capabilities: vec!["completion".into()],
            ..ShowResponse::default()
        };
        let want = "  Model
    architecture        llama
    parameters          8.0B
    context length      8192
    embedding length    4096
    quantization        Q4_0

  Capabilities
    completion

  Parameters
    num_ctx    512
    stop       \"<|eot_id|>\"

  System
    You are terse.

  License
    Line one.
    Line two.
    ...

";
        assert_eq!(summary(&show, false), want);
        let verbose = summary(&show, true);
        assert!(
            verbose.contains("  Metadata\n    general.architecture      llama\n"),
            "{verbose}"
        );
    }
}
