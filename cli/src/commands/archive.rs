//! `llmpm save MODEL… [-o FILE]` and `llmpm load [-i FILE] [--name MODEL]`: OCI archives through the daemon's `/api/export` and `/api/import`.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use http_body_util::BodyExt;
use hyper::header;
use llmpm_spec::api::{ExportRequest, OCI_ARCHIVE};

use crate::cli::{LoadArgs, SaveArgs};
use crate::client::{Client, ReaderBody};
use crate::error::UserError;
use crate::printer::Printer;
use crate::progress::Progress;

fn is_dash(p: &Option<PathBuf>) -> bool {
    p.as_deref().is_none_or(|p| p == Path::new("-"))
}

/// Where the archive goes: a temp file beside `FILE` renamed at the end (so a
/// failed save leaves no `FILE` that looks whole), or stdout.
enum Sink {
    File {
        tmp: PathBuf,
        dest: PathBuf,
        file: std::io::BufWriter<std::fs::File>,
    },
    Stdout(std::io::Stdout),
}

impl Sink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::File { file, .. } => file.write_all(bytes),
            Sink::Stdout(out) => out.write_all(bytes),
        }
    }

    fn finish(self) -> anyhow::Result<()> {
        match self {
            Sink::File { tmp, dest, file } => {
                let f = file
                    .into_inner()
                    .map_err(|e| e.into_error())
                    .with_context(|| format!("Failed to write `{}`", tmp.display()))?;
                f.sync_all()
                    .with_context(|| format!("Failed to write `{}`", tmp.display()))?;
                std::fs::rename(&tmp, &dest).with_context(|| {
                    format!(
                        "Failed to rename `{}` to `{}`",
                        tmp.display(),
                        dest.display()
                    )
                })
            }
            Sink::Stdout(mut out) => out
                .flush()
                .context("Failed to write the archive to standard output"),
        }
    }
}

/// Saves models into an archive.
pub async fn save(args: &SaveArgs, client: &Client, printer: &Printer) -> anyhow::Result<()> {
    for m in &args.models {
        super::parse_name(m)?;
    }
    let to_stdout = is_dash(&args.output);
    if to_stdout && std::io::stdout().is_terminal() {
        return Err(UserError::new("refusing to write an archive to a terminal")
            .with_hint("pass `-o FILE.tar`, or redirect standard output")
            .into());
    }
    let req = ExportRequest {
        models: args.models.clone(),
        format: Some(OCI_ARCHIVE.to_owned()),
        ..ExportRequest::default()
    };
    let resp = client.save(&req).await?;
    let total = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut sink = match &args.output {
        Some(dest) if !to_stdout => {
            let name = dest
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let tmp = dest.with_file_name(format!(".{name}.{}.partial", std::process::id()));
            let file = std::fs::File::create(&tmp)
                .with_context(|| format!("Failed to create `{}`", tmp.display()))?;
            Sink::File {
                tmp,
                dest: dest.clone(),
                file: std::io::BufWriter::with_capacity(1 << 20, file),
            }
        }
        _ => Sink::Stdout(std::io::stdout()),
    };
    let mut progress = Progress::new(printer);
    let bar = progress.bytes("saving", total.unwrap_or(0));
    let mut body = resp.into_body();
    let mut written = 0u64;
    let res: anyhow::Result<()> = async {
        while let Some(frame) = body.frame().await {
            let frame = frame.context("The archive broke off: llmpmd stopped sending it")?;
            if let Some(data) = frame.data_ref() {
                sink.write(data).context("Failed to write the archive")?;
                written += data.len() as u64;
                bar.set_position(written);
            }
        }
        if let Some(t) = total {
            anyhow::ensure!(
                written == t,
                "The archive broke off after {written} of {t} bytes"
            );
        }
        Ok(())
    }
    .await;
    progress.done(&bar);
    if let Err(e) = res {
        if let Sink::File { tmp, .. } = &sink {
            let _ = std::fs::remove_file(tmp);
        }
        return Err(e);
    }
    sink.finish()?;
    let target = match &args.output {
        Some(p) if !to_stdout => p.display().to_string(),
        _ => "standard output".into(),
    };
    printer.status(&format!(
        "saved {} to {target} ({written} bytes)",
        args.models.join(", ")
    ));
    Ok(())
}

/// Loads an archive.
pub async fn load(args: &LoadArgs, client: &Client, printer: &Printer) -> anyhow::Result<()> {
    if let Some(n) = &args.name {
        super::parse_name(n)?;
    }
    let mut progress = Progress::new(printer);
    let body = if is_dash(&args.input) {
        if std::io::stdin().is_terminal() {
            return Err(UserError::new("no archive on standard input")
                .with_hint("pass `-i FILE.tar`, or pipe the archive in")
                .into());
        }
        ReaderBody::new(tokio::io::stdin(), None, progress.bytes("loading", 0))
    } else {
        let path = args.input.as_deref().unwrap_or(Path::new("-"));
        let f = tokio::fs::File::open(path)
            .await
            .with_context(|| format!("Failed to open `{}`", path.display()))?;
        let len = f
            .metadata()
            .await
            .with_context(|| format!("Failed to read the size of `{}`", path.display()))?
            .len();
        ReaderBody::new(f, Some(len), progress.bytes("loading", len))
    };
    let r = client
        .import(body, args.name.as_deref())
        .await
        .context("Failed to load the archive")?;
    if args.json {
        return printer.json(&r);
    }
    for m in &r.models {
        let short = m
            .parse::<llmpm_spec::Reference>()
            .map(|r| r.display_short())
            .unwrap_or_else(|_| m.clone());
        printer.status(&format!("Loaded model: {short}"));
    }
    Ok(())
}
