//! `LLMPM_HOST`: the daemon's TCP address, parsed by one rule for the daemon (which binds it) and the CLI (which connects to it).
//!
//! The rule is Ollama's for `OLLAMA_HOST` (`envconfig.Host`), so a value
//! written for Ollama means the same here:
//!
//! ```text
//! value     = "none" | "off"                   (* any letter case: no TCP *)
//!           | [ scheme "://" ] [ host ] [ ":" [ port ] ] { "/" } ;
//! scheme    = "http" | "https" ;
//! host      = "[" ipv6 "]" | ipv6 | ipv4 | name ;   (* default 127.0.0.1 *)
//! port      = 0-65535 ;                              (* default 11434 *)
//! ```
//!
//! Surrounding blanks and quotes (`"` or `'`) are dropped, as Ollama drops
//! them. An IPv6 address may be written bare (`::1`, which then has no port)
//! or in brackets (`[::1]:11434`). Where the daemon and the CLI used to
//! accept different values, the choice follows Ollama:
//!
//! - a host name (`example.com`, `localhost`) is a host: the CLI connects to
//!   it, the daemon resolves it to bind;
//! - `https://` is accepted and recorded in [`HostPort::https`]: the daemon
//!   binds plain HTTP regardless (as Ollama's server does), the CLI refuses
//!   it because it speaks plain HTTP only;
//! - port 0 is a port (the daemon binds any free one; the CLI refuses it,
//!   as nothing can be reached there);
//! - anything after `]` but a `:port` is an error, not ignored.
//!
//! One difference from Ollama is kept on purpose: a value with a scheme and
//! no port (`http://10.0.0.2`) still means port 11434, where Ollama takes
//! the scheme's port (80, 443). Both llmpm sides always read it so, and the
//! variable names the daemon's address, whose port is 11434. Other schemes
//! and characters that cannot be in a host (blanks, `/`, `@`, `?`, `#`,
//! stray brackets) are refused.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

#[cfg(test)]
mod tests;

/// The daemon's default TCP port (Ollama's, so clients find it unchanged).
pub const DEFAULT_PORT: u16 = 11434;

/// The host when the value leaves it out.
pub const DEFAULT_HOST: &str = "127.0.0.1";

/// A parsed `LLMPM_HOST` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostSpec {
    /// `none` or `off`: no TCP, the unix socket only.
    Off,
    /// A TCP address.
    Tcp(HostPort),
}

/// A TCP address as `LLMPM_HOST` gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// Whether it was written with `https://`.
    pub https: bool,
    /// A host name or an IP address, without brackets.
    pub host: String,
    /// The port; 0 when written so.
    pub port: u16,
}

impl HostPort {
    /// `host:port`, with brackets around an IPv6 address: the `Host` header.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The host as an IP address, when it is one.
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }
}

impl Default for HostPort {
    /// `127.0.0.1:11434`, what an unset `LLMPM_HOST` means.
    fn default() -> HostPort {
        HostPort {
            https: false,
            host: DEFAULT_HOST.to_owned(),
            port: DEFAULT_PORT,
        }
    }
}

/// `host:port` ([`HostPort::authority`]).
impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.authority())
    }
}

/// `none`, or the address with its scheme; it parses back to the same value.
impl fmt::Display for HostSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostSpec::Off => f.write_str("none"),
            HostSpec::Tcp(t) if t.https => write!(f, "https://{t}"),
            HostSpec::Tcp(t) => write!(f, "http://{t}"),
        }
    }
}

/// Why an `LLMPM_HOST` value was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostError {
    /// A scheme other than `http` or `https`.
    Scheme,
    /// `[` without its `]`.
    Bracket,
    /// Something other than `:port` after `]`.
    AfterBracket,
    /// A character that cannot be part of a host.
    HostChar,
    /// The port is not a number from 0 to 65535.
    Port,
}

impl HostError {
    /// What is wrong, as one clause.
    pub fn why(self) -> &'static str {
        match self {
            HostError::Scheme => "the scheme must be `http://` or `https://`",
            HostError::Bracket => "an IPv6 address needs a closing `]`",
            HostError::AfterBracket => "expected `:port` after `]`",
            HostError::HostChar => "the host holds a character that is not allowed in a host",
            HostError::Port => "the port must be 0-65535",
        }
    }
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.why())
    }
}

impl std::error::Error for HostError {}

impl FromStr for HostSpec {
    type Err = HostError;

    fn from_str(value: &str) -> Result<HostSpec, HostError> {
        let v = value.trim().trim_matches(['"', '\'']).trim();
        if v.eq_ignore_ascii_case("none") || v.eq_ignore_ascii_case("off") {
            return Ok(HostSpec::Off);
        }
        let (https, v) = match v.split_once("://") {
            None => (false, v),
            Some(("http", rest)) => (false, rest),
            Some(("https", rest)) => (true, rest),
            Some(_) => return Err(HostError::Scheme),
        };
        let v = v.trim_end_matches('/');
        let (host, port) = if let Some(rest) = v.strip_prefix('[') {
            let (h, tail) = rest.split_once(']').ok_or(HostError::Bracket)?;
            let port = match tail {
                "" => None,
                t => Some(t.strip_prefix(':').ok_or(HostError::AfterBracket)?),
            };
            (h, port)
        } else if v.matches(':').count() > 1 {
            // A bare IPv6 address: all of it is the host.
            (v, None)
        } else {
            match v.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (v, None),
            }
        };
        if host
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '/' | '@' | '?' | '#' | '[' | ']'))
        {
            return Err(HostError::HostChar);
        }
        let host = match host {
            "" => DEFAULT_HOST.to_owned(),
            h => h.to_owned(),
        };
        let port = match port {
            None | Some("") => DEFAULT_PORT,
            Some(p) => p.parse().map_err(|_| HostError::Port)?,
        };
        Ok(HostSpec::Tcp(HostPort { https, host, port }))
    }
}
