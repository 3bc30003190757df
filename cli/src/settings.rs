//! Settings: the global flags and the environment merged into what commands use.
//!
//! This is the only module that reads the environment. The daemon's address
//! is found exactly as `llmpmd` chooses it (`daemon/src/config.rs`), so a
//! client and a daemon started from the same environment always meet:
//!
//! - `--host` or `LLMPM_HOST` (`[http://][host][:port]`, default
//!   `127.0.0.1:11434`; `none` means "not TCP"; one rule with the daemon's,
//!   `llmpm_spec::host`) selects TCP;
//! - otherwise the unix socket: `LLMPM_SOCKET`, else the config file's
//!   `socket`, else `$XDG_RUNTIME_DIR/llmpm/llmpm.sock` unless `LLMPM_HOME` is
//!   set, else `<home>/llmpm.sock`, where home is `LLMPM_HOME`, else the
//!   config file's `home`, else `$XDG_DATA_HOME/llmpm`, else
//!   `~/.local/share/llmpm`.
//!
//! The config file (`LLMPM_CONFIG`, else `$XDG_CONFIG_HOME/llmpm/config.yaml`,
//! else `~/.config/llmpm/config.yaml`) is read only for `home`, `socket` and
//! `api_key`; a missing file is fine here (the daemon reports it when it
//! starts) and other keys are left to the daemon to validate.

use std::fmt;
use std::path::PathBuf;

use anyhow::Context;
use llmpm_spec::host::{HostError, HostSpec};
use serde::Deserialize;

use crate::cli::GlobalArgs;
use crate::error::UserError;

pub use llmpm_spec::env::{default_home, default_socket, Env, ProcessEnv};
pub use llmpm_spec::host::HostPort;

/// Where the daemon listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Its unix socket.
    Unix(PathBuf),
    /// A TCP address chosen with `--host` or `LLMPM_HOST`.
    Tcp(HostPort),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Unix(path) => write!(f, "{}", path.display()),
            Target::Tcp(tcp) => write!(f, "http://{}", tcp.authority()),
        }
    }
}

/// Everything commands need to know about their surroundings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where the daemon listens.
    pub target: Target,
    /// The store root as the daemon resolves it (where its log goes when we
    /// start it); `None` without `HOME` or `LLMPM_HOME`.
    pub home: Option<PathBuf>,
    /// Sent as `Authorization: Bearer …` (`LLMPM_API_KEY`).
    pub api_key: Option<String>,
    /// Start `llmpmd` when it is not running (never for an explicit TCP host).
    pub autostart: bool,
    /// `LLMPM_HOST` when `--host` overrides it for `serve`.
    pub host_override: Option<String>,
    /// The user's home directory (`HOME`), for `~` in Modelfile paths.
    pub user_home: Option<PathBuf>,
}

/// The config file keys the client needs; the rest is the daemon's business.
#[derive(Debug, Default, Deserialize)]
struct FileConfig {
    home: Option<PathBuf>,
    socket: Option<PathBuf>,
    api_key: Option<String>,
}

impl Settings {
    /// Merges the global flags with the environment.
    pub fn resolve(args: &GlobalArgs, env: &impl Env) -> anyhow::Result<Settings> {
        let file = read_config(env)?;
        let home = env
            .var("LLMPM_HOME")
            .map(PathBuf::from)
            .or(file.home)
            .or_else(|| default_home(env));
        let host = args.host.clone().or_else(|| env.var("LLMPM_HOST"));
        let tcp = match &host {
            Some(h) => parse_host(h)?,
            None => None,
        };
        let target = match tcp {
            Some(tcp) => Target::Tcp(tcp),
            None => {
                let socket = env.var("LLMPM_SOCKET").map(PathBuf::from).or(file.socket);
                let socket = match socket {
                    Some(s) => s,
                    None => default_socket(env, home.as_deref()).ok_or_else(|| {
                        UserError::new("cannot find the daemon's socket: no home directory")
                            .with_hint("set `LLMPM_SOCKET` or `LLMPM_HOME`")
                    })?,
                };
                Target::Unix(socket)
            }
        };
        let autostart = matches!(target, Target::Unix(_))
            && !args.no_autostart
            && !env.var("LLMPM_NO_AUTOSTART").is_some_and(|v| truthy(&v));
        Ok(Settings {
            target,
            home,
            api_key: env.var("LLMPM_API_KEY").or(file.api_key),
            autostart,
            host_override: args.host.clone(),
            user_home: env.var("HOME").map(PathBuf::from),
        })
    }
}

fn truthy(v: &str) -> bool {
    !matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "" | "0" | "false" | "no" | "off"
    )
}

fn config_path(env: &impl Env) -> Option<PathBuf> {
    if let Some(p) = env.var("LLMPM_CONFIG") {
        return Some(PathBuf::from(p));
    }
    llmpm_spec::env::default_config_path(env)
}

fn read_config(env: &impl Env) -> anyhow::Result<FileConfig> {
    let Some(path) = config_path(env) else {
        return Ok(FileConfig::default());
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(FileConfig::default()),
        Err(e) => {
            return Err(e)
                .with_context(|| format!("Failed to read config file `{}`", path.display()))
        }
    };
    if text.trim().is_empty() {
        return Ok(FileConfig::default());
    }
    serde_yaml_ng::from_str(&text).map_err(|e| {
        UserError::new(format!("config file `{}` is invalid: {e}", path.display())).into()
    })
}

/// Parses `LLMPM_HOST` or `--host` by the rule the daemon uses
/// ([`HostSpec`], Ollama's): `[http://][host][:port]`, host `127.0.0.1` and
/// port 11434 when left out; `none`/`off` mean "use the unix socket". A
/// client refuses what it cannot connect to: `https://` (llmpmd speaks plain
/// HTTP) and port 0.
pub fn parse_host(value: &str) -> Result<Option<HostPort>, UserError> {
    let bad = |why: &str| {
        UserError::new(format!("`LLMPM_HOST` = `{value}` is invalid: {why}"))
            .with_hint("use `[http://][host][:port]`, such as `127.0.0.1:11434`")
    };
    const PORT: &str = "the port must be 1-65535";
    match value.parse::<HostSpec>() {
        Ok(HostSpec::Off) => Ok(None),
        Ok(HostSpec::Tcp(t)) if t.https => Err(bad("llmpmd speaks plain HTTP; use `http://`")),
        Ok(HostSpec::Tcp(t)) if t.port == 0 => Err(bad(PORT)),
        Ok(HostSpec::Tcp(t)) => Ok(Some(t)),
        Err(HostError::Port) => Err(bad(PORT)),
        Err(e) => Err(bad(e.why())),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::path::Path;

    fn resolve<const N: usize>(env: [(&str, &str); N]) -> Settings {
        Settings::resolve(&GlobalArgs::default(), &env).unwrap()
    }

    fn socket(s: &Settings) -> &Path {
        match &s.target {
            Target::Unix(p) => p,
            Target::Tcp(t) => panic!("expected a socket, got {t:?}"),
        }
    }

    // Every case points LLMPM_CONFIG at a file that does not exist, so the
    // developer's own config cannot leak in.
    const NO_CONFIG: (&str, &str) = ("LLMPM_CONFIG", "/nonexistent/llmpm.yaml");

    #[test]
    fn socket_follows_the_daemons_rule() {
        let s = resolve([NO_CONFIG, ("HOME", "/h")]);
        assert_eq!(socket(&s), Path::new("/h/.local/share/llmpm/llmpm.sock"));
        assert_eq!(s.home.as_deref(), Some(Path::new("/h/.local/share/llmpm")));
        assert!(s.autostart);

        let s = resolve([NO_CONFIG, ("HOME", "/h"), ("XDG_DATA_HOME", "/d")]);
        assert_eq!(socket(&s), Path::new("/d/llmpm/llmpm.sock"));

        let s = resolve([NO_CONFIG, ("HOME", "/h"), ("XDG_RUNTIME_DIR", "/run/u")]);
        assert_eq!(socket(&s), Path::new("/run/u/llmpm/llmpm.sock"));

        // An explicit home keeps its own socket, even with a runtime dir.
        let s = resolve([
            NO_CONFIG,
            ("HOME", "/h"),
            ("XDG_RUNTIME_DIR", "/run/u"),
            ("LLMPM_HOME", "/store"),
        ]);
        assert_eq!(socket(&s), Path::new("/store/llmpm.sock"));
        assert_eq!(s.home.as_deref(), Some(Path::new("/store")));

        let s = resolve([
            NO_CONFIG,
            ("LLMPM_HOME", "/store"),
            ("LLMPM_SOCKET", "/tmp/x.sock"),
        ]);
        assert_eq!(socket(&s), Path::new("/tmp/x.sock"));

        // An empty variable counts as unset, as in the daemon.
        let s = resolve([NO_CONFIG, ("HOME", "/h"), ("LLMPM_HOME", "")]);
        assert_eq!(socket(&s), Path::new("/h/.local/share/llmpm/llmpm.sock"));
    }

    #[test]
    fn no_home_is_a_user_error() {
        let e = Settings::resolve(&GlobalArgs::default(), &[NO_CONFIG]).unwrap_err();
        assert!(e.downcast_ref::<UserError>().is_some(), "{e}");
        // A runtime dir alone is enough to find the socket.
        let s = resolve([NO_CONFIG, ("XDG_RUNTIME_DIR", "/run/u")]);
        assert_eq!(socket(&s), Path::new("/run/u/llmpm/llmpm.sock"));
        assert_eq!(s.home, None);
    }

    #[test]
    fn config_file_supplies_home_and_socket() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.yaml");
        std::fs::write(&f, "home: /from/file\nmax_queue: 3\n").unwrap();
        let fs = f.to_str().unwrap();
        let s = resolve([("LLMPM_CONFIG", fs), ("HOME", "/h")]);
        assert_eq!(socket(&s), Path::new("/from/file/llmpm.sock"));
        std::fs::write(&f, "socket: /s.sock\napi_key: k\n").unwrap();
        let s = resolve([("LLMPM_CONFIG", fs), ("HOME", "/h")]);
        assert_eq!(socket(&s), Path::new("/s.sock"));
        assert_eq!(s.api_key.as_deref(), Some("k"));
        std::fs::write(&f, "home: [not, a, path\n").unwrap();
        let e = Settings::resolve(&GlobalArgs::default(), &[("LLMPM_CONFIG", fs)]).unwrap_err();
        assert!(e.to_string().contains("c.yaml"), "{e}");
    }

    #[test]
    fn host_selects_tcp_and_disables_autostart() {
        let s = resolve([NO_CONFIG, ("HOME", "/h"), ("LLMPM_HOST", ":9000")]);
        assert_eq!(s.target.to_string(), "http://127.0.0.1:9000");
        assert!(!s.autostart);
        // `--host` wins over the environment.
        let args = GlobalArgs {
            host: Some("localhost".into()),
            no_autostart: false,
        };
        let s = Settings::resolve(&args, &[NO_CONFIG, ("LLMPM_HOST", ":9000")]).unwrap();
        assert_eq!(s.target.to_string(), "http://localhost:11434");
        // `none` turns TCP off, as for the daemon.
        let s = resolve([NO_CONFIG, ("HOME", "/h"), ("LLMPM_HOST", "none")]);
        assert!(matches!(s.target, Target::Unix(_)));
    }

    #[test]
    fn autostart_opt_out() {
        let s = resolve([NO_CONFIG, ("HOME", "/h"), ("LLMPM_NO_AUTOSTART", "1")]);
        assert!(!s.autostart);
        let s = resolve([NO_CONFIG, ("HOME", "/h"), ("LLMPM_NO_AUTOSTART", "0")]);
        assert!(s.autostart);
        let args = GlobalArgs {
            host: None,
            no_autostart: true,
        };
        let s = Settings::resolve(&args, &[NO_CONFIG, ("HOME", "/h")]).unwrap();
        assert!(!s.autostart);
    }

    #[test]
    fn host_forms() {
        let p = |s| parse_host(s).unwrap().map(|t| t.authority());
        assert_eq!(p("").as_deref(), Some("127.0.0.1:11434"));
        assert_eq!(p(":9000").as_deref(), Some("127.0.0.1:9000"));
        assert_eq!(p("http://127.0.0.1:5/").as_deref(), Some("127.0.0.1:5"));
        assert_eq!(p("[::1]:7").as_deref(), Some("[::1]:7"));
        assert_eq!(p("[::1]").as_deref(), Some("[::1]:11434"));
        assert_eq!(p("::1").as_deref(), Some("[::1]:11434"));
        assert_eq!(p("example.com").as_deref(), Some("example.com:11434"));
        assert_eq!(p("none"), None);
        for bad in ["127.0.0.1:99999", "127.0.0.1:0", "https://x", "a/b", "[::1"] {
            assert!(parse_host(bad).is_err(), "{bad}");
        }
    }
}
