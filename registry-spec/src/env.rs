//! Where llmpm looks by default: the environment rules the daemon and the CLI share, as pure functions of an [`Env`].

use std::path::{Path, PathBuf};

/// A source of environment variables: the process's, or a list in tests.
pub trait Env {
    /// The value of `key`, if set and not empty.
    fn var(&self, key: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, key: &str) -> Option<String> {
        std::env::var(key).ok().filter(|v| !v.is_empty())
    }
}

impl<const N: usize> Env for [(&str, &str); N] {
    fn var(&self, key: &str) -> Option<String> {
        self.iter()
            .find(|(k, v)| *k == key && !v.is_empty())
            .map(|(_, v)| (*v).to_owned())
    }
}

/// The default store root: `$XDG_DATA_HOME/llmpm`, else `~/.local/share/llmpm`.
pub fn default_home(env: &impl Env) -> Option<PathBuf> {
    if let Some(x) = env.var("XDG_DATA_HOME") {
        return Some(Path::new(&x).join("llmpm"));
    }
    env.var("HOME")
        .map(|h| Path::new(&h).join(".local/share/llmpm"))
}

/// The default socket: `$XDG_RUNTIME_DIR/llmpm/llmpm.sock`, else `<home>/llmpm.sock`.
///
/// When `LLMPM_HOME` is set explicitly the socket lives in it, so two daemons
/// on two homes (tests, several users' stores) never share a socket.
pub fn default_socket(env: &impl Env, home: Option<&Path>) -> Option<PathBuf> {
    if env.var("LLMPM_HOME").is_none() {
        if let Some(x) = env.var("XDG_RUNTIME_DIR") {
            return Some(Path::new(&x).join("llmpm/llmpm.sock"));
        }
    }
    home.map(|h| h.join("llmpm.sock"))
}

/// The default config file: `$XDG_CONFIG_HOME/llmpm/config.yaml`, else
/// `~/.config/llmpm/config.yaml` (`LLMPM_CONFIG` overrides it; callers check that first).
pub fn default_config_path(env: &impl Env) -> Option<PathBuf> {
    if let Some(x) = env.var("XDG_CONFIG_HOME") {
        return Some(Path::new(&x).join("llmpm/config.yaml"));
    }
    env.var("HOME")
        .map(|h| Path::new(&h).join(".config/llmpm/config.yaml"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        let e = [
            ("HOME", "/h"),
            ("XDG_RUNTIME_DIR", "/run/u"),
            ("XDG_DATA_HOME", ""),
        ];
        assert_eq!(
            default_home(&e),
            Some(PathBuf::from("/h/.local/share/llmpm"))
        );
        assert_eq!(
            default_socket(&e, Some(Path::new("/x"))),
            Some(PathBuf::from("/run/u/llmpm/llmpm.sock"))
        );
        let e = [("LLMPM_HOME", "/x"), ("XDG_RUNTIME_DIR", "/run/u")];
        assert_eq!(
            default_socket(&e, Some(Path::new("/x"))),
            Some(PathBuf::from("/x/llmpm.sock"))
        );
        assert_eq!(
            default_config_path(&[("XDG_CONFIG_HOME", "/c")]),
            Some(PathBuf::from("/c/llmpm/config.yaml"))
        );
    }
}
