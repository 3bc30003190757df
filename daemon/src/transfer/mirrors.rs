//! Registry mirrors: per upstream registry host, the registries a pull tries first, in order (containerd's `hosts.toml` idea), and the sources one pull walks.
//!
//! Configured as `registry_mirrors` in the YAML config (upstream host → list
//! of mirror URLs) or `LLMPM_REGISTRY_MIRRORS` as
//! `upstream=mirror1,mirror2;upstream2=mirror3`. A mirror is a URL
//! (`http://10.0.0.5:5000`, `https://mirror.example`); a bare `host[:port]`
//! means `https://`. Mirrors serve the upstream's repository names unchanged
//! (as a pull-through cache does). A mirror is tried once per request, with
//! no retries: any failure moves on to the next source, the upstream last.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use llmpm_spec::Reference;
use reqwest::Url;

use super::client::Registry;
use super::{credentials, TransferError, Transfers};

/// The mirrors of every upstream host that has some.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mirrors(BTreeMap<String, Vec<Url>>);

impl Mirrors {
    /// From the config file's map (upstream host → mirror URLs).
    pub fn from_map(map: &BTreeMap<String, Vec<String>>) -> Result<Mirrors, String> {
        let mut out = BTreeMap::new();
        for (upstream, mirrors) in map {
            let upstream = upstream.trim();
            if upstream.is_empty() || upstream.contains(['/', ' ']) {
                return Err(format!(
                    "`{upstream}` is not a registry host; use `name[:port]` as in model names"
                ));
            }
            let urls = mirrors
                .iter()
                .map(|m| mirror_url(m))
                .collect::<Result<Vec<_>, _>>()?;
            if !urls.is_empty() {
                out.insert(upstream.to_ascii_lowercase(), urls);
            }
        }
        Ok(Mirrors(out))
    }

    /// From `LLMPM_REGISTRY_MIRRORS`: `upstream=m1,m2;upstream2=m3`.
    pub fn parse(v: &str) -> Result<Mirrors, String> {
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for entry in v.split(';').map(str::trim).filter(|e| !e.is_empty()) {
            let (upstream, list) = entry
                .split_once('=')
                .ok_or_else(|| format!("`{entry}` has no `=`; write `upstream=mirror1,mirror2`"))?;
            map.entry(upstream.trim().to_owned()).or_default().extend(
                list.split(',')
                    .map(str::trim)
                    .filter(|m| !m.is_empty())
                    .map(str::to_owned),
            );
        }
        Mirrors::from_map(&map)
    }

    /// The mirrors of `host`, in order (none for a host without any).
    pub fn of(&self, host: &str) -> &[Url] {
        self.0
            .get(&host.to_ascii_lowercase())
            .map_or(&[], Vec::as_slice)
    }
}

/// A mirror's base URL, ending in `/`.
fn mirror_url(m: &str) -> Result<Url, String> {
    let m = m.trim();
    let text = if m.contains("://") {
        m.to_owned()
    } else {
        format!("https://{m}")
    };
    let mut url = Url::parse(&text).map_err(|e| format!("mirror `{m}` is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!(
            "mirror `{m}` must be an http:// or https:// URL with a host"
        ));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(format!(
            "mirror `{m}` must not carry a query, a fragment or a user; logins come from `llmpm login`"
        ));
    }
    if !url.path().ends_with('/') {
        let p = format!("{}/", url.path());
        url.set_path(&p);
    }
    Ok(url)
}

/// `host[:port]` of a URL, as logins and messages name it.
fn host_port(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    }
}

/// The upstream registry of a reference, with the login saved for its host.
pub(crate) fn registry_for(
    t: &Transfers,
    home: &Path,
    name: &Reference,
    insecure: bool,
) -> Result<Arc<Registry>, TransferError> {
    let cred = credentials::lookup(home, name.host())?;
    Registry::new(&t.http, name.host(), insecure, cred, t.options.clone())
}

/// Where one pull fetches from: each mirror of the name's registry, in
/// order, then the upstream itself, always last.
pub(crate) fn sources_for(
    t: &Transfers,
    home: &Path,
    name: &Reference,
    insecure: bool,
) -> Result<Vec<Arc<Registry>>, TransferError> {
    let mut out = Vec::new();
    // One try per request: a failing mirror hands over to the next source
    // at once, rather than after the upstream's retries and backoff.
    let once = super::TransferOptions {
        max_attempts: 1,
        ..t.options.clone()
    };
    for url in t.mirrors.of(name.host()) {
        let host = host_port(url);
        let cred = credentials::lookup(home, &host)?;
        out.push(Registry::at(
            &t.http,
            url.clone(),
            host,
            insecure,
            cred,
            once.clone(),
        ));
    }
    out.push(registry_for(t, home, name, insecure)?);
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_variable_lists_mirrors_per_upstream_in_order() {
        let m = Mirrors::parse(
            "registry.ollama.ai=http://10.0.0.5:5000,mirror.example ; 127.0.0.1:5000=http://127.0.0.1:5001/pre",
        )
        .unwrap();
        let urls: Vec<&str> = m.of("Registry.Ollama.AI").iter().map(Url::as_str).collect();
        assert_eq!(urls, ["http://10.0.0.5:5000/", "https://mirror.example/"]);
        assert_eq!(
            m.of("127.0.0.1:5000")[0].as_str(),
            "http://127.0.0.1:5001/pre/"
        );
        assert!(m.of("docker.io").is_empty());
        assert_eq!(Mirrors::parse("").unwrap(), Mirrors::default());
    }

    #[test]
    fn bad_mirror_lists_say_what_to_write() {
        for (bad, says) in [
            ("registry.ollama.ai", "no `=`"),
            ("a=ftp://x", "http:// or https://"),
            ("a=http://u:p@x", "llmpm login"),
            ("a/b=http://x", "not a registry host"),
            ("a=http://x?y=1", "query"),
        ] {
            let e = Mirrors::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
