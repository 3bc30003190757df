//! Daemon configuration: a YAML file, overridden by `LLMPM_*` environment variables.
//!
//! Precedence, lowest first: built-in defaults, the config file
//! (`$LLMPM_CONFIG`, else `$XDG_CONFIG_HOME/llmpm/config.yaml`, else
//! `~/.config/llmpm/config.yaml`; a missing default file is fine, a missing
//! named file is an error), then the environment. This is the only module that
//! reads the environment.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use llmpm_spec::host::{HostPort, HostSpec};
use serde::Deserialize;

pub use llmpm_spec::host::DEFAULT_PORT;

/// A configuration error: names the setting and what is accepted.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file `{}`", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid YAML for our settings.
    #[error("config file `{}` is invalid: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What serde_yaml_ng said, with line and column.
        message: String,
    },
    /// A setting has a bad value.
    #[error("{name} = `{value}` is invalid: {why}")]
    Value {
        /// `LLMPM_HOST` or the YAML key.
        name: &'static str,
        /// The value given.
        value: String,
        /// What is accepted.
        why: &'static str,
    },
    /// A setting has a bad value, said in more words than one fixed text.
    #[error("{name} is invalid: {why}")]
    Invalid {
        /// `LLMPM_…` or the YAML key.
        name: &'static str,
        /// What is wrong and what is accepted.
        why: String,
    },
    /// No home directory to put the store in.
    #[error("cannot find a home directory for the store: set LLMPM_HOME")]
    NoHome,
}

/// The YAML file's shape. Unknown keys are an error, so a typo is not silently ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    home: Option<PathBuf>,
    socket: Option<PathBuf>,
    host: Option<String>,
    api_key: Option<String>,
    keep_alive: Option<String>,
    max_loaded_models: Option<u32>,
    num_parallel: Option<u32>,
    max_queue: Option<u32>,
    memory_budget: Option<String>,
    load_timeout: Option<String>,
    pull_part_size: Option<String>,
    pull_concurrency: Option<u32>,
    pull_stall_timeout: Option<String>,
    #[serde(default)]
    trust_policy: crate::trust::TrustPolicy,
    registry_mirrors: Option<std::collections::BTreeMap<String, Vec<String>>>,
    max_download_speed: Option<String>,
    max_upload_speed: Option<String>,
}

/// The resolved settings the daemon runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Store root (`LLMPM_HOME`).
    pub home: PathBuf,
    /// Unix socket path (`LLMPM_SOCKET`).
    pub socket: PathBuf,
    /// TCP address, or `None` when `LLMPM_HOST=none` (`LLMPM_HOST`).
    pub tcp: Option<SocketAddr>,
    /// Bearer key required on TCP; mandatory for a non-loopback bind (`LLMPM_API_KEY`).
    pub api_key: Option<String>,
    /// Default keep-alive for loaded models (`LLMPM_KEEP_ALIVE`, default `5m`).
    pub keep_alive: KeepAlive,
    /// Models loaded at once (`LLMPM_MAX_LOADED_MODELS`, default 3, at least 1).
    pub max_loaded_models: u32,
    /// Requests one loaded model takes at once (`LLMPM_NUM_PARALLEL`).
    pub num_parallel: u32,
    /// Requests waiting for a model before 503 (`LLMPM_MAX_QUEUE`, default 512, at least 1).
    pub max_queue: u32,
    /// What loaded models may use together (`LLMPM_MEMORY_BUDGET`); `None`:
    /// the system's available memory at each load.
    pub memory_budget: Option<u64>,
    /// A model runner not ready after this long is killed (`LLMPM_LOAD_TIMEOUT`, default 5m).
    pub load_timeout: std::time::Duration,
    /// Bytes per Range part of a blob download (`LLMPM_PULL_PART_SIZE`, default 64 MiB).
    pub pull_part_size: u64,
    /// Parts of one blob fetched at once (`LLMPM_PULL_CONCURRENCY`, default 8).
    pub pull_concurrency: u32,
    /// A part silent this long is restarted (`LLMPM_PULL_STALL_TIMEOUT`, default 30s).
    pub pull_stall_timeout: std::time::Duration,
    /// Which registries and namespaces need signatures, and whose keys count
    /// (`trust_policy`, YAML only; default: none, so every pull is `off`).
    pub trust_policy: crate::trust::TrustPolicy,
    /// Per upstream registry host, the mirrors a pull tries first, in order
    /// (`LLMPM_REGISTRY_MIRRORS` as `upstream=m1,m2;upstream2=m3`, or the
    /// `registry_mirrors` map; the variable replaces the map).
    pub registry_mirrors: crate::transfer::Mirrors,
    /// Bytes per second all pulls together may download
    /// (`LLMPM_MAX_DOWNLOAD_SPEED`, e.g. `50MB/s`; default unlimited).
    pub max_download_speed: Option<u64>,
    /// Bytes per second all pushes together may upload
    /// (`LLMPM_MAX_UPLOAD_SPEED`; default unlimited).
    pub max_upload_speed: Option<u64>,
}

pub use llmpm_spec::size::parse_size;

pub use llmpm_spec::env::{Env, ProcessEnv};

use crate::sched::KeepAlive;

/// Parses `LLMPM_HOST` by the rule the CLI shares ([`HostSpec`], Ollama's
/// `OLLAMA_HOST`): `[scheme://][host][:port]`; a missing host means
/// 127.0.0.1, a missing port 11434; `none` disables TCP. The address to bind
/// is the IP address given, or for a name its first IPv4 address (Go's
/// `net.Listen`, so Ollama's server, prefers IPv4 too), `localhost` being
/// 127.0.0.1 without asking the resolver. `https://` binds plain HTTP, as
/// Ollama's server does.
pub fn parse_host(value: &str) -> Result<Option<SocketAddr>, ConfigError> {
    let bad = |why| ConfigError::Value {
        name: "LLMPM_HOST",
        value: value.to_owned(),
        why,
    };
    match value.parse::<HostSpec>() {
        Ok(HostSpec::Off) => Ok(None),
        Ok(HostSpec::Tcp(t)) => bind_address(&t).map(Some).ok_or_else(|| {
            bad("cannot resolve the host name; use an IP address such as 127.0.0.1, with an optional :port")
        }),
        Err(e) => Err(bad(e.why())),
    }
}

/// The socket address to bind for `t`; `None` when its name does not resolve.
fn bind_address(t: &HostPort) -> Option<SocketAddr> {
    if let Some(ip) = t.ip() {
        return Some(SocketAddr::new(ip, t.port));
    }
    if t.host.eq_ignore_ascii_case("localhost") {
        return Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), t.port));
    }
    let addrs: Vec<SocketAddr> = (t.host.as_str(), t.port).to_socket_addrs().ok()?.collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
}

impl Config {
    /// Resolves the configuration from the file and the environment.
    pub fn load(env: &impl Env) -> Result<Config, ConfigError> {
        let file = match env.var("LLMPM_CONFIG") {
            Some(p) => Some(read_file(Path::new(&p))?),
            None => match llmpm_spec::env::default_config_path(env) {
                Some(p) if p.exists() => Some(read_file(&p)?),
                _ => None,
            },
        }
        .unwrap_or_default();

        let home = env
            .var("LLMPM_HOME")
            .map(PathBuf::from)
            .or(file.home)
            .or_else(|| llmpm_spec::env::default_home(env))
            .ok_or(ConfigError::NoHome)?;
        let socket = env
            .var("LLMPM_SOCKET")
            .map(PathBuf::from)
            .or(file.socket)
            .or_else(|| llmpm_spec::env::default_socket(env, Some(&home)))
            .unwrap_or_else(|| home.join("llmpm.sock"));
        let host = env.var("LLMPM_HOST").or(file.host);
        let tcp = match host {
            Some(h) => parse_host(&h)?,
            None => Some(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                DEFAULT_PORT,
            )),
        };
        let api_key = env.var("LLMPM_API_KEY").or(file.api_key);
        if let Some(addr) = tcp {
            if !addr.ip().is_loopback() && api_key.is_none() {
                return Err(ConfigError::Value {
                    name: "LLMPM_HOST",
                    value: addr.to_string(),
                    why: "binding a non-loopback address exposes the API to the network; set LLMPM_API_KEY too",
                });
            }
        }
        let num = |name: &'static str, env_v: Option<String>, file_v: Option<u32>, default: u32| {
            match env_v {
                Some(v) => v.parse::<u32>().map_err(|_| ConfigError::Value {
                    name,
                    value: v,
                    why: "use a whole number",
                }),
                None => Ok(file_v.unwrap_or(default)),
            }
        };
        let part_size = env.var("LLMPM_PULL_PART_SIZE").or(file.pull_part_size);
        let pull_part_size = match part_size {
            Some(v) => parse_size(&v).ok_or(ConfigError::Value {
                name: "LLMPM_PULL_PART_SIZE",
                value: v,
                why: "use a size such as 64MiB or a number of bytes",
            })?,
            None => crate::transfer::DEFAULT_PART_SIZE,
        };
        let stall = env
            .var("LLMPM_PULL_STALL_TIMEOUT")
            .or(file.pull_stall_timeout);
        let pull_stall_timeout = match stall {
            Some(v) => humantime::parse_duration(&v).map_err(|_| ConfigError::Value {
                name: "LLMPM_PULL_STALL_TIMEOUT",
                value: v,
                why: "use a duration such as 30s",
            })?,
            None => std::time::Duration::from_secs(30),
        };
        let keep_alive = match env.var("LLMPM_KEEP_ALIVE").or(file.keep_alive) {
            Some(v) => KeepAlive::parse(&v).map_err(|_| ConfigError::Value {
                name: "LLMPM_KEEP_ALIVE",
                value: v,
                why: "use a duration such as 5m or 1h30m, a number of seconds, 0, or a negative value for forever",
            })?,
            None => crate::sched::keep_alive::DEFAULT,
        };
        let memory_budget = match env.var("LLMPM_MEMORY_BUDGET").or(file.memory_budget) {
            Some(v) => Some(parse_size(&v).ok_or(ConfigError::Value {
                name: "LLMPM_MEMORY_BUDGET",
                value: v,
                why: "use a size such as 8GiB or 512MiB",
            })?),
            None => None,
        };
        let load_timeout = match env.var("LLMPM_LOAD_TIMEOUT").or(file.load_timeout) {
            Some(v) => humantime::parse_duration(&v)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or(ConfigError::Value {
                    name: "LLMPM_LOAD_TIMEOUT",
                    value: v,
                    why: "use a duration such as 5m",
                })?,
            None => std::time::Duration::from_secs(300),
        };
        let pull_concurrency = num(
            "LLMPM_PULL_CONCURRENCY",
            env.var("LLMPM_PULL_CONCURRENCY"),
            file.pull_concurrency,
            crate::transfer::DEFAULT_CONCURRENCY as u32,
        )?
        .max(1);
        let registry_mirrors = match env.var("LLMPM_REGISTRY_MIRRORS") {
            Some(v) => crate::transfer::Mirrors::parse(&v).map_err(|why| ConfigError::Invalid {
                name: "LLMPM_REGISTRY_MIRRORS",
                why: format!("{why} (write `upstream=mirror1,mirror2;upstream2=mirror3`)"),
            })?,
            None => match &file.registry_mirrors {
                Some(m) => {
                    crate::transfer::Mirrors::from_map(m).map_err(|why| ConfigError::Invalid {
                        name: "registry_mirrors",
                        why,
                    })?
                }
                None => crate::transfer::Mirrors::default(),
            },
        };
        let speed = |name: &'static str, v: Option<String>| match v {
            Some(v) => llmpm_spec::size::parse_rate(&v)
                .map(Some)
                .ok_or(ConfigError::Value {
                    name,
                    value: v,
                    why: "use a rate such as 50MB/s, 50M or a number of bytes per second",
                }),
            None => Ok(None),
        };
        let max_download_speed = speed(
            "LLMPM_MAX_DOWNLOAD_SPEED",
            env.var("LLMPM_MAX_DOWNLOAD_SPEED")
                .or(file.max_download_speed),
        )?;
        let max_upload_speed = speed(
            "LLMPM_MAX_UPLOAD_SPEED",
            env.var("LLMPM_MAX_UPLOAD_SPEED").or(file.max_upload_speed),
        )?;
        Ok(Config {
            registry_mirrors,
            max_download_speed,
            max_upload_speed,
            pull_part_size,
            pull_concurrency,
            pull_stall_timeout,
            trust_policy: file.trust_policy,
            home,
            socket,
            tcp,
            api_key,
            keep_alive,
            memory_budget,
            load_timeout,
            max_loaded_models: num(
                "LLMPM_MAX_LOADED_MODELS",
                env.var("LLMPM_MAX_LOADED_MODELS"),
                file.max_loaded_models,
                3,
            )?
            .max(1),
            num_parallel: num(
                "LLMPM_NUM_PARALLEL",
                env.var("LLMPM_NUM_PARALLEL"),
                file.num_parallel,
                1,
            )?,
            max_queue: num(
                "LLMPM_MAX_QUEUE",
                env.var("LLMPM_MAX_QUEUE"),
                file.max_queue,
                512,
            )?
            .max(1),
        })
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    if text.trim().is_empty() {
        return Ok(FileConfig::default());
    }
    serde_yaml_ng::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn host_forms() {
        let p = |s| parse_host(s).unwrap().map(|a| a.to_string());
        assert_eq!(p("").as_deref(), Some("127.0.0.1:11434"));
        assert_eq!(p(":9000").as_deref(), Some("127.0.0.1:9000"));
        assert_eq!(p("http://127.0.0.1:5/").as_deref(), Some("127.0.0.1:5"));
        assert_eq!(p("[::1]:7").as_deref(), Some("[::1]:7"));
        assert_eq!(p("none"), None);
        // One rule with the CLI's (llmpm_spec::host): a name is a host, bound
        // at what it resolves to (`localhost` without the resolver, so no
        // test here depends on DNS); `https://` binds plain HTTP; port 0
        // binds any free port.
        assert_eq!(p("localhost:7").as_deref(), Some("127.0.0.1:7"));
        assert_eq!(p("https://127.0.0.1:5").as_deref(), Some("127.0.0.1:5"));
        assert_eq!(p("0.0.0.0:0").as_deref(), Some("0.0.0.0:0"));
        assert!(parse_host("127.0.0.1:99999").is_err());
        for bad in ["a b", "ftp://127.0.0.1", "[::1]x", "[::1"] {
            let e = parse_host(bad).unwrap_err().to_string();
            assert!(e.starts_with("LLMPM_HOST = "), "{e}");
        }
    }

    #[test]
    fn env_over_file_and_non_loopback_needs_key() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.yaml");
        std::fs::write(
            &f,
            "home: /from/file\nhost: 127.0.0.1:1234\nnum_parallel: 4\n",
        )
        .unwrap();
        let fs = f.to_str().unwrap();
        let c = Config::load(&[("LLMPM_CONFIG", fs), ("LLMPM_HOST", ":555")]).unwrap();
        assert_eq!(c.home, PathBuf::from("/from/file"));
        assert_eq!(c.tcp.unwrap().port(), 555);
        assert_eq!(c.num_parallel, 4);
        assert_eq!(c.socket, PathBuf::from("/from/file/llmpm.sock"));
        let e = Config::load(&[("LLMPM_CONFIG", fs), ("LLMPM_HOST", "0.0.0.0")]).unwrap_err();
        assert!(e.to_string().contains("LLMPM_API_KEY"), "{e}");
        assert!(Config::load(&[
            ("LLMPM_CONFIG", fs),
            ("LLMPM_HOST", "0.0.0.0"),
            ("LLMPM_API_KEY", "k")
        ])
        .is_ok());
        std::fs::write(&f, "hmoe: /typo\n").unwrap();
        let e = Config::load(&[("LLMPM_CONFIG", fs)]).unwrap_err();
        assert!(e.to_string().contains("hmoe"), "{e}");
    }

    #[test]
    fn pull_knobs() {
        assert_eq!(parse_size("64MiB"), Some(64 << 20));
        assert_eq!(parse_size("1g"), Some(1 << 30));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("0"), None);
        assert_eq!(parse_size("12 parsecs"), None);
        let c = Config::load(&[
            ("HOME", "/h"),
            ("LLMPM_PULL_PART_SIZE", "1MiB"),
            ("LLMPM_PULL_CONCURRENCY", "3"),
        ])
        .unwrap();
        assert_eq!((c.pull_part_size, c.pull_concurrency), (1 << 20, 3));
        assert!(Config::load(&[("HOME", "/h"), ("LLMPM_PULL_PART_SIZE", "big")]).is_err());
    }

    #[test]
    fn mirrors_and_speed_limits() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.yaml");
        std::fs::write(
            &f,
            "registry_mirrors:\n  registry.ollama.ai: [\"http://10.0.0.5:5000\", mirror.example]\nmax_download_speed: 50MB/s\n",
        )
        .unwrap();
        let fs = f.to_str().unwrap();
        let c = Config::load(&[("LLMPM_CONFIG", fs), ("HOME", "/h")]).unwrap();
        let m: Vec<&str> = c
            .registry_mirrors
            .of("registry.ollama.ai")
            .iter()
            .map(|u| u.as_str())
            .collect();
        assert_eq!(m, ["http://10.0.0.5:5000/", "https://mirror.example/"]);
        assert_eq!(c.max_download_speed, Some(50 << 20));
        assert_eq!(c.max_upload_speed, None);
        // The variable replaces the file's map.
        let c = Config::load(&[
            ("LLMPM_CONFIG", fs),
            ("HOME", "/h"),
            (
                "LLMPM_REGISTRY_MIRRORS",
                "127.0.0.1:5000=http://127.0.0.1:5001",
            ),
            ("LLMPM_MAX_UPLOAD_SPEED", "1M"),
        ])
        .unwrap();
        assert!(c.registry_mirrors.of("registry.ollama.ai").is_empty());
        assert_eq!(c.registry_mirrors.of("127.0.0.1:5000").len(), 1);
        assert_eq!(c.max_upload_speed, Some(1 << 20));
        for (k, v) in [
            ("LLMPM_REGISTRY_MIRRORS", "registry.ollama.ai"),
            ("LLMPM_MAX_DOWNLOAD_SPEED", "fast"),
        ] {
            let e = Config::load(&[("HOME", "/h"), (k, v)]).unwrap_err();
            assert!(e.to_string().contains(k), "{e}");
        }
    }

    #[test]
    fn scheduler_knobs() {
        let c = Config::load(&[("HOME", "/h")]).unwrap();
        assert_eq!(c.keep_alive, crate::sched::keep_alive::DEFAULT);
        assert_eq!((c.max_loaded_models, c.max_queue), (3, 512));
        assert_eq!(c.memory_budget, None);
        let c = Config::load(&[
            ("HOME", "/h"),
            ("LLMPM_KEEP_ALIVE", "-1"),
            ("LLMPM_MEMORY_BUDGET", "2GiB"),
            ("LLMPM_MAX_LOADED_MODELS", "2"),
            ("LLMPM_LOAD_TIMEOUT", "30s"),
        ])
        .unwrap();
        assert_eq!(c.keep_alive, KeepAlive::Forever);
        assert_eq!(c.memory_budget, Some(2 << 30));
        assert_eq!(c.max_loaded_models, 2);
        assert_eq!(c.load_timeout, std::time::Duration::from_secs(30));
        for (k, v) in [
            ("LLMPM_KEEP_ALIVE", "soon"),
            ("LLMPM_MEMORY_BUDGET", "lots"),
            ("LLMPM_LOAD_TIMEOUT", "0s"),
        ] {
            let e = Config::load(&[("HOME", "/h"), (k, v)]).unwrap_err();
            assert!(e.to_string().contains(k), "{e}");
        }
    }

    #[test]
    fn xdg_defaults() {
        let c = Config::load(&[("HOME", "/h"), ("XDG_RUNTIME_DIR", "/run/u")]).unwrap();
        assert_eq!(c.home, PathBuf::from("/h/.local/share/llmpm"));
        assert_eq!(c.socket, PathBuf::from("/run/u/llmpm/llmpm.sock"));
    }
}
