//! The command line's shape: clap definitions only, no behaviour.
//!
//! Each subcommand's arguments are one struct here and one module under
//! `commands/`; global flags are merged with the environment in `settings`.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand};

/// A package manager for local LLMs: the client of `llmpmd`.
#[derive(Debug, Parser)]
#[command(name = "llmpm", version, propagate_version = true)]
pub struct Cli {
    /// Flags every subcommand accepts.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Flags that apply to every subcommand.
#[derive(Debug, Clone, Default, Args)]
pub struct GlobalArgs {
    /// The daemon's TCP address, `[http://][host][:port]`, used instead of its
    /// unix socket (overrides `LLMPM_HOST`; for `serve`, where it listens)
    #[arg(long, global = true, value_name = "ADDR")]
    pub host: Option<String>,

    /// Fail instead of starting `llmpmd` when it is not running (also
    /// `LLMPM_NO_AUTOSTART=1`)
    #[arg(long, global = true)]
    pub no_autostart: bool,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon in the foreground (the same as `llmpmd`)
    Serve,
    /// List the local models
    #[command(visible_alias = "ls")]
    List(ListArgs),
    /// Show a model's details, parameters, template, system prompt and license
    Show(ShowArgs),
    /// List the models loaded in memory
    Ps(ListArgs),
    /// Unload a model from memory (after the requests it is serving)
    Stop(StopArgs),
    /// Chat with a model, or answer one prompt (from the arguments or piped stdin)
    Run(RunArgs),
    /// Remove models (blobs no other model uses are deleted)
    Rm(RmArgs),
    /// Give a model another name (no data is copied)
    Cp(CpArgs),
    /// Create a model from a Modelfile
    Create(CreateArgs),
    /// Pull a model from a registry
    Pull(TransferArgs),
    /// Push a model to a registry
    Push(TransferArgs),
    /// Save a registry login (user name and password or token)
    Login(LoginArgs),
    /// Forget a registry login
    Logout(LogoutArgs),
    /// Delete blobs no model uses and stale partial files
    Prune(JsonArgs),
    /// Re-hash every blob and report those that are corrupt or missing; with
    /// `--signatures`, check models' signatures instead
    Verify(VerifyArgs),
    /// Write a new signing key pair (ECDSA P-256 by default) for `llmpm sign`
    Keygen(KeygenArgs),
    /// Sign a model (an OpenSSF model-signing bundle, kept with the model and pushed with it)
    Sign(SignArgs),
    /// Write a model's files to a directory (`manifest.json`, `<media type>/sha256-<hex>`):
    /// what a signature covers, for `model-signing` to check
    Export(ExportArgs),
    /// Save models to an OCI image-layout archive (a tar other OCI tools read)
    Save(SaveArgs),
    /// Load models from an OCI image-layout archive (`llmpm save`'s, or `skopeo copy … oci-archive:`'s)
    Load(LoadArgs),
}

/// `llmpm run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The model name (pulled when missing)
    pub model: String,
    /// The prompt; without it, piped stdin is the prompt, or a chat starts on a terminal
    pub prompt: Vec<String>,
    /// Print the timings after each answer (to stderr)
    #[arg(long)]
    pub verbose: bool,
    /// Answer format: `json` holds the answer to one JSON object
    #[arg(long)]
    pub format: Option<String>,
    /// How long the model stays loaded after this run ("5m", "1h", "0", "-1")
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub keepalive: Option<String>,
    /// Thinking for a model that thinks: `--think` alone is true; false, or a
    /// level (low, medium, high); unset, the model's default (on)
    #[arg(
        long,
        value_name = "true|false|low|medium|high",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    pub think: Option<llmpm_spec::api::Think>,
    /// Do not print the model's reasoning (it still thinks)
    #[arg(long)]
    pub hidethinking: bool,
}

/// `llmpm list` and `llmpm ps`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print the daemon's answer as JSON (`/api/tags`, `/api/ps`)
    #[arg(long)]
    pub json: bool,
}

/// `llmpm prune` and `llmpm verify`.
#[derive(Debug, Args)]
pub struct JsonArgs {
    /// Print the daemon's answer as JSON
    #[arg(long)]
    pub json: bool,
}

/// `llmpm show`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("part").args(["json", "modelfile", "parameters", "template", "system", "license"])))]
pub struct ShowArgs {
    /// The model name
    pub model: String,
    /// Print the daemon's answer as JSON (`/api/show`)
    #[arg(long)]
    pub json: bool,
    /// Print the Modelfile that recreates the model
    #[arg(long)]
    pub modelfile: bool,
    /// Print the parameters
    #[arg(long)]
    pub parameters: bool,
    /// Print the prompt template
    #[arg(long)]
    pub template: bool,
    /// Print the system prompt
    #[arg(long)]
    pub system: bool,
    /// Print the license
    #[arg(long)]
    pub license: bool,
    /// Include all GGUF metadata
    #[arg(long, short)]
    pub verbose: bool,
}

/// `llmpm stop`.
#[derive(Debug, Args)]
pub struct StopArgs {
    /// The model to unload
    pub model: String,
}

/// `llmpm rm`.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// The models to remove
    #[arg(required = true, value_name = "MODEL")]
    pub models: Vec<String>,
}

/// `llmpm cp`.
#[derive(Debug, Args)]
pub struct CpArgs {
    /// The existing model
    pub source: String,
    /// The new name
    pub destination: String,
}

/// `llmpm create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The name of the model to create
    pub model: String,
    /// The Modelfile (`-` reads it from stdin; relative paths in it are then
    /// relative to the current directory)
    #[arg(long, short, value_name = "FILE", default_value = "Modelfile")]
    pub file: PathBuf,
}

/// `llmpm pull` and `llmpm push`.
#[derive(Debug, Args)]
pub struct TransferArgs {
    /// The model name (`[host/][namespace/]model[:tag]`)
    pub model: String,
    /// Allow plain HTTP and unverified TLS to the registry
    #[arg(long)]
    pub insecure: bool,
    /// Most bytes per second this transfer moves, e.g. `50M`, `50MB/s`,
    /// `512k` or a number of bytes (on top of the daemon's own limit)
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub limit_rate: Option<u64>,
}

/// `--limit-rate`: a rate, or a message saying what one looks like.
fn parse_rate(v: &str) -> Result<u64, String> {
    llmpm_spec::size::parse_rate(v).ok_or_else(|| {
        format!(
            "`{v}` is not a rate; use bytes per second or a size per second such as 50M or 50MB/s"
        )
    })
}

/// `llmpm login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The registry host (`name[:port]`, as in model names)
    pub host: String,
    /// The user name (asked for when not given)
    #[arg(long, short)]
    pub username: Option<String>,
    /// Read the password (or token) from standard input
    #[arg(long)]
    pub password_stdin: bool,
}

/// `llmpm logout`.
#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// The registry host
    pub host: String,
}

/// `llmpm verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
    /// Check signatures (against the trust policy's keys and `--key`) instead of re-hashing blobs
    #[arg(long)]
    pub signatures: bool,
    /// With `--signatures`: the models to check (default: every model)
    pub models: Vec<String>,
    /// With `--signatures`: a public key (PEM) to trust besides the policy's; repeatable
    #[arg(long, value_name = "PUB")]
    pub key: Vec<PathBuf>,
    /// With `--signatures` and one model: check this bundle file (e.g. `model-signing`'s
    /// `.sig` over `llmpm export`'s files) and keep it with the model when it verifies
    #[arg(long, value_name = "FILE")]
    pub bundle: Option<PathBuf>,
}

/// `llmpm keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// `ecdsa-p256` (what `model-signing` also verifies) or `ed25519`
    #[arg(long = "type", default_value = "ecdsa-p256", value_name = "TYPE")]
    pub key_type: String,
    /// Writes `PREFIX.key` (mode 0600) and `PREFIX.pub`; existing files are never overwritten
    #[arg(long, short, default_value = "llmpm-signing", value_name = "PREFIX")]
    pub out: PathBuf,
}

/// `llmpm sign`.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// The model
    pub model: String,
    /// The private key (PEM: PKCS#8, or SEC1 for P-256)
    #[arg(long, value_name = "KEY")]
    pub key: PathBuf,
    /// Also write the bundle to this file (the `.sig` file `model-signing` reads)
    #[arg(long, value_name = "FILE")]
    pub bundle: Option<PathBuf>,
}

/// `llmpm export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The model
    pub model: String,
    /// A new or empty directory
    pub dir: PathBuf,
}

/// `llmpm save`.
#[derive(Debug, Args)]
pub struct SaveArgs {
    /// The models
    #[arg(required = true)]
    pub models: Vec<String>,
    /// The archive to write (`-`, or left out: standard output, which must not be a terminal)
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// `llmpm load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The archive to read (`-`, or left out: standard input)
    #[arg(long, short, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// The name for the archive's model, over the name it carries (an archive of one model)
    #[arg(long, value_name = "MODEL")]
    pub name: Option<String>,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}
