//! `llmpm create NAME -f Modelfile`: parse the Modelfile here, upload the local files the daemon lacks, create.
//!
//! Everything that can be checked without the daemon is checked first — the
//! name, the Modelfile's syntax and parameters, that every FROM/ADAPTER file
//! exists and is a GGUF — so a mistake costs no upload and exits with 2.
//!
//! A FROM argument is a file when a file of that name exists (relative to
//! the Modelfile's directory, `~` expanded), else a model name; an argument
//! that only makes sense as a path (`./`, `../`, `/`, `~`, or `*.gguf`) and
//! does not exist is an error rather than a model name nobody has. Files are
//! hashed locally and sent with `POST /api/blobs/:digest` only when `HEAD`
//! says the daemon lacks them, streamed from disk.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;
use indicatif::ProgressBar;
use llmpm_spec::api::{CreateRequest, License, Message};
use llmpm_spec::modelfile::{Command, Modelfile};
use llmpm_spec::Digest;
use sha2::{Digest as _, Sha256};

use crate::cli::CreateArgs;
use crate::client::Client;
use crate::error::{Failure, UserError};
use crate::printer::Printer;
use crate::progress::Progress;
use crate::settings::Settings;

/// The first bytes of every GGUF file.
const GGUF_MAGIC: &[u8; 4] = b"GGUF";
/// The read size while hashing.
const HASH_CHUNK: usize = 1 << 20;

/// A local file the request refers to by digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalBlob {
    /// The file.
    pub path: PathBuf,
    /// Its sha256.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
}

/// The create request, and the files it needs the daemon to have.
#[derive(Debug, Clone)]
pub struct Plan {
    /// What is sent to `/api/create`.
    pub request: CreateRequest,
    /// Files to upload unless the daemon has them.
    pub blobs: Vec<LocalBlob>,
    /// Instructions llmpm ignores, for a warning.
    pub ignored: Vec<&'static str>,
}

/// Creates a model.
pub async fn run(
    args: &CreateArgs,
    settings: &Settings,
    client: &Client,
    printer: &Printer,
) -> anyhow::Result<()> {
    super::parse_name(&args.model)?;
    let (modelfile, base) = read_modelfile(&args.file)?;
    let mut progress = Progress::new(printer);
    let plan = plan(
        &args.model,
        &modelfile,
        &base,
        settings.user_home.as_deref(),
        &mut progress,
    )?;
    for instruction in &plan.ignored {
        progress.suspend(|| {
            printer.warn(&format!(
                "`{instruction}` is not supported by llmpm and was ignored"
            ));
        });
    }
    send(&plan, client, &mut progress)
        .await
        .with_context(|| format!("Failed to create `{}`", args.model))
}

/// Uploads what is missing, then streams the create's progress.
async fn send(plan: &Plan, client: &Client, progress: &mut Progress) -> anyhow::Result<()> {
    if !plan.blobs.is_empty() {
        progress.step("transferring model data");
    }
    for blob in &plan.blobs {
        if client.has_blob(&blob.digest).await? {
            continue;
        }
        let label = format!("copying {}", file_label(&blob.path));
        let bar = progress.bytes(&label, blob.size);
        client
            .upload_blob(&blob.digest, &blob.path, &bar)
            .await
            .with_context(|| format!("Failed to upload `{}`", blob.path.display()))?;
        progress.done(&bar);
    }
    let mut stream = client.create(&plan.request).await?;
    let mut succeeded = false;
    while let Some(p) = stream.next().await? {
        succeeded = p.status == "success";
        progress.update(&p);
    }
    progress.finish();
    if !succeeded {
        return Err(
            Failure::new("llmpmd ended the create before it reported `success`")
                .with_hint("see the daemon's log (`llmpmd.log` in its home)")
                .into(),
        );
    }
    Ok(())
}

/// Reads and parses the Modelfile (`-` is stdin); returns it and the
/// directory its relative paths are relative to.
pub fn read_modelfile(file: &Path) -> anyhow::Result<(Modelfile, PathBuf)> {
    let (text, shown, base) = if file == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("Failed to read the Modelfile from stdin")?;
        (text, "<stdin>".to_owned(), PathBuf::from("."))
    } else {
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(UserError::new(format!(
                    "Modelfile `{}` does not exist",
                    file.display()
                ))
                .with_hint("name the Modelfile with `-f FILE`")
                .into())
            }
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("Failed to read the Modelfile `{}`", file.display()))
            }
        };
        let base = match file.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        (text, file.display().to_string(), base)
    };
    let modelfile = Modelfile::parse(&text)
        // `file:line:column: message`, the form editors jump to.
        .map_err(|e| UserError::new(format!("{shown}:{e}")))?;
    Ok((modelfile, base))
}

/// What a FROM or ADAPTER argument refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A local file.
    File(PathBuf),
    /// A model the daemon has.
    Model(String),
}

/// Whether an argument can only be meant as a path.
fn looks_like_path(arg: &str) -> bool {
    arg.starts_with("./")
        || arg.starts_with("../")
        || arg.starts_with('/')
        || arg.starts_with('~')
        || arg.to_ascii_lowercase().ends_with(".gguf")
}

/// `~` and `~/…` expanded with the user's home.
fn expand_tilde(arg: &str, user_home: Option<&Path>) -> PathBuf {
    match (arg.strip_prefix('~'), user_home) {
        (Some(""), Some(home)) => home.to_owned(),
        (Some(rest), Some(home)) if rest.starts_with('/') => {
            home.join(rest.trim_start_matches('/'))
        }
        _ => PathBuf::from(arg),
    }
}

/// Resolves a FROM or ADAPTER argument to a file or a model name.
pub fn resolve(
    instruction: &str,
    arg: &str,
    base: &Path,
    user_home: Option<&Path>,
) -> anyhow::Result<Source> {
    let path = expand_tilde(arg, user_home);
    let path = if path.is_absolute() {
        path
    } else {
        base.join(path)
    };
    if path.exists() {
        return Ok(Source::File(path));
    }
    if looks_like_path(arg) || instruction == "ADAPTER" {
        return Err(
            UserError::new(format!("{instruction} `{arg}`: no such file"))
                .with_hint(format!(
                    "paths are relative to the Modelfile's directory `{}`",
                    base.display()
                ))
                .into(),
        );
    }
    match arg.parse::<llmpm_spec::Reference>() {
        Ok(_) => Ok(Source::Model(arg.to_owned())),
        Err(e) => Err(UserError::new(format!(
            "{instruction} `{arg}` is neither a file nor a model name: {e}"
        ))
        .into()),
    }
}

/// The file's name for progress lines.
fn file_label(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Checks that `path` is a GGUF file and hashes it, advancing `bar`.
pub fn hash_gguf(instruction: &str, path: &Path, bar: &ProgressBar) -> anyhow::Result<LocalBlob> {
    let mut file = std::fs::File::open(path)
        .with_context(|| format!("Failed to open `{}`", path.display()))?;
    let meta = file
        .metadata()
        .with_context(|| format!("Failed to read `{}`", path.display()))?;
    if meta.is_dir() {
        return Err(UserError::new(format!(
            "{instruction} `{}` is a directory; llmpm creates models from a GGUF file",
            path.display()
        ))
        .into());
    }
    bar.set_length(meta.len());
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; HASH_CHUNK];
    let mut size = 0u64;
    let mut head = Vec::with_capacity(GGUF_MAGIC.len());
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("Failed to read `{}`", path.display()))?;
        if n == 0 {
            break;
        }
        let chunk = &buf[..n];
        if head.len() < GGUF_MAGIC.len() {
            let take = (GGUF_MAGIC.len() - head.len()).min(n);
            head.extend_from_slice(&chunk[..take]);
            if head.len() == GGUF_MAGIC.len() && head != GGUF_MAGIC {
                break;
            }
        }
        hasher.update(chunk);
        size += n as u64;
        bar.inc(n as u64);
    }
    if head != GGUF_MAGIC {
        return Err(UserError::new(format!(
            "{instruction} `{}` is not a GGUF file (it does not start with `GGUF`)",
            path.display()
        ))
        .into());
    }
    Ok(LocalBlob {
        path: path.to_owned(),
        digest: Digest::sha256_from_bytes(hasher.finalize().into()),
        size,
    })
}

/// A name for `path` in `files`/`adapters` that no earlier entry uses.
fn unique_key(map: &std::collections::BTreeMap<String, String>, path: &Path) -> String {
    let name = file_label(path);
    if !map.contains_key(&name) {
        return name;
    }
    (2..)
        .map(|i| format!("{i}-{name}"))
        .find(|k| !map.contains_key(k))
        .unwrap_or(name)
}

/// Turns a parsed Modelfile into the create request, hashing its local files.
pub fn plan(
    name: &str,
    modelfile: &Modelfile,
    base: &Path,
    user_home: Option<&Path>,
    progress: &mut Progress,
) -> anyhow::Result<Plan> {
    let mut req = CreateRequest {
        model: name.to_owned(),
        stream: Some(true),
        ..CreateRequest::default()
    };
    let mut blobs: Vec<LocalBlob> = Vec::new();
    let mut hash = |instruction: &str, path: &Path, progress: &mut Progress| {
        // The same file twice (FROM and a second FROM, say) is hashed once.
        if let Some(b) = blobs.iter().find(|b| b.path == path) {
            return Ok(b.digest.clone());
        }
        let bar = progress.bytes(&format!("hashing {}", file_label(path)), 0);
        let blob = hash_gguf(instruction, path, &bar)?;
        bar.finish_and_clear();
        let digest = blob.digest.clone();
        blobs.push(blob);
        anyhow::Ok(digest)
    };
    let mut ignored = Vec::new();
    for command in &modelfile.commands {
        match command {
            Command::From(arg) => match resolve("FROM", arg, base, user_home)? {
                Source::File(path) => {
                    let digest = hash("FROM", &path, progress)?;
                    let key = unique_key(&req.files, &path);
                    req.files.insert(key, digest.to_string());
                }
                Source::Model(model) => {
                    if let Some(first) = &req.from {
                        return Err(UserError::new(format!(
                            "FROM names two models, `{first}` and `{model}`; a model has one base"
                        ))
                        .into());
                    }
                    req.from = Some(model);
                }
            },
            Command::Adapter(arg) => {
                if let Ok(digest) = arg.parse::<Digest>() {
                    // A blob the daemon already has, as `show --modelfile` may name it.
                    req.adapters
                        .insert(digest.hex().to_owned(), digest.to_string());
                    continue;
                }
                if let Source::File(path) = resolve("ADAPTER", arg, base, user_home)? {
                    let digest = hash("ADAPTER", &path, progress)?;
                    let key = unique_key(&req.adapters, &path);
                    req.adapters.insert(key, digest.to_string());
                }
            }
            Command::Template(t) => req.template = Some(t.clone()),
            Command::System(s) => req.system = Some(s.clone()),
            Command::License(_) | Command::Parameter { .. } | Command::Message { .. } => {}
            // The minimum Ollama version a model needs means nothing to llmpm.
            Command::Requires(_) => {}
            Command::Draft(_) | Command::Renderer(_) | Command::Parser(_) => {
                if !ignored.contains(&command.instruction()) {
                    ignored.push(command.instruction());
                }
            }
        }
    }
    let licenses = modelfile.licenses();
    req.license = match licenses.as_slice() {
        [] => None,
        [one] => Some(License::One((*one).to_owned())),
        many => Some(License::Many(
            many.iter().map(|l| (*l).to_owned()).collect(),
        )),
    };
    let params = modelfile.parameters();
    if !params.is_empty() {
        req.parameters = Some(params.to_json());
    }
    let messages: Vec<Message> = modelfile
        .messages()
        .into_iter()
        .map(|(role, content)| Message::new(role.as_str().to_owned(), content.to_owned()))
        .collect();
    if !messages.is_empty() {
        req.messages = Some(messages);
    }
    Ok(Plan {
        request: req,
        blobs,
        ignored,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::error::{exit_status, ExitStatus};

    fn sha256_hex(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    fn plan_of(dir: &Path, text: &str) -> anyhow::Result<Plan> {
        let mf = Modelfile::parse(text).map_err(|e| UserError::new(e.to_string()))?;
        plan(
            "m",
            &mf,
            dir,
            Some(Path::new("/home/u")),
            &mut Progress::quiet(),
        )
    }

    #[test]
    fn modelfile_becomes_a_create_request() {
        let dir = tempfile::tempdir().unwrap();
        let weights = b"GGUF\x03\x00\x00\x00fake weights".to_vec();
        std::fs::write(dir.path().join("tiny.gguf"), &weights).unwrap();
        std::fs::write(dir.path().join("lora.gguf"), b"GGUFlora").unwrap();
        let text = r#"
FROM ./tiny.gguf
ADAPTER lora.gguf
PARAMETER temperature 0.25
PARAMETER num_ctx 512
PARAMETER stop "<|eot_id|>"
PARAMETER stop "<|end_of_text|>"
TEMPLATE """{{ .Prompt }}"""
SYSTEM You are terse.
LICENSE one
LICENSE two
MESSAGE user Hello
MESSAGE assistant Hi
REQUIRES 0.5.0
"#;
        let p = plan_of(dir.path(), text).unwrap();
        let req = serde_json::to_value(&p.request).unwrap();
        let w = format!("sha256:{}", sha256_hex(&weights));
        let l = format!("sha256:{}", sha256_hex(b"GGUFlora"));
        assert_eq!(
            req,
            json!({
                "model": "m",
                "files": {"tiny.gguf": w},
                "adapters": {"lora.gguf": l},
                "template": "{{ .Prompt }}",
                "system": "You are terse.",
                "license": ["one", "two"],
                "parameters": {
                    "num_ctx": 512,
                    "stop": ["<|eot_id|>", "<|end_of_text|>"],
                    "temperature": 0.25,
                },
                "messages": [
                    {"role": "user", "content": "Hello"},
                    {"role": "assistant", "content": "Hi"},
                ],
                "stream": true,
            })
        );
        assert_eq!(p.blobs.len(), 2);
        assert_eq!(p.blobs[0].size, weights.len() as u64);
        assert_eq!(p.blobs[0].path, dir.path().join("./tiny.gguf"));
        assert!(p.ignored.is_empty());
    }

    #[test]
    fn from_a_model_and_one_license() {
        let dir = tempfile::tempdir().unwrap();
        let p = plan_of(dir.path(), "FROM llama3:8b\nLICENSE MIT\nRENDERER x\n").unwrap();
        assert_eq!(p.request.from.as_deref(), Some("llama3:8b"));
        assert!(p.request.files.is_empty());
        assert_eq!(p.request.license, Some(License::One("MIT".into())));
        assert_eq!(p.request.parameters, None);
        assert_eq!(p.request.messages, None);
        assert_eq!(p.ignored, vec!["RENDERER"]);
        assert!(p.blobs.is_empty());
    }

    #[test]
    fn path_errors_are_user_errors() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notgguf.bin"), b"PK\x03\x04zip").unwrap();
        std::fs::create_dir(dir.path().join("weights")).unwrap();
        for (text, want) in [
            (
                "FROM ./missing.gguf\n",
                "FROM `./missing.gguf`: no such file",
            ),
            ("FROM other.gguf\n", "FROM `other.gguf`: no such file"),
            ("FROM ~/x.gguf\n", "FROM `~/x.gguf`: no such file"),
            ("FROM notgguf.bin\n", "is not a GGUF file"),
            ("FROM weights\n", "is a directory"),
            ("FROM a\nFROM b\n", "FROM names two models"),
            ("FROM Bad/Name/x/y\n", "neither a file nor a model name"),
            ("FROM m\nADAPTER lora\n", "ADAPTER `lora`: no such file"),
        ] {
            let e = plan_of(dir.path(), text).unwrap_err();
            assert!(e.to_string().contains(want), "{text:?}: {e}");
            assert_eq!(exit_status(&e), ExitStatus::UserError, "{text:?}");
        }
    }

    #[test]
    fn tilde_and_relative_paths() {
        let home = Path::new("/home/u");
        assert_eq!(expand_tilde("~", Some(home)), home);
        assert_eq!(
            expand_tilde("~/m/x.gguf", Some(home)),
            home.join("m/x.gguf")
        );
        assert_eq!(expand_tilde("~bob/x", Some(home)), PathBuf::from("~bob/x"));
        assert_eq!(expand_tilde("~/x", None), PathBuf::from("~/x"));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("llama3"), b"GGUF").unwrap();
        // An existing file wins over a model of the same name, as in Ollama.
        assert_eq!(
            resolve("FROM", "llama3", dir.path(), None).unwrap(),
            Source::File(dir.path().join("llama3"))
        );
        assert_eq!(
            resolve("FROM", "llama3:8b", dir.path(), None).unwrap(),
            Source::Model("llama3:8b".into())
        );
    }

    #[test]
    fn modelfile_errors_name_file_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("Modelfile");
        std::fs::write(&f, "FROM x\nPARAMETER num_ctx abc\n").unwrap();
        let e = read_modelfile(&f).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with(&format!("{}:2:", f.display())), "{msg}");
        assert_eq!(exit_status(&e), ExitStatus::UserError);
        let e = read_modelfile(&dir.path().join("nope")).unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
        assert_eq!(exit_status(&e), ExitStatus::UserError);
        std::fs::write(&f, "FROM ./w.gguf\n").unwrap();
        let (_, base) = read_modelfile(&f).unwrap();
        assert_eq!(base, dir.path());
    }
}
