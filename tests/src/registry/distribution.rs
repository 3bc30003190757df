//! The real third-party registry for interop tests: Debian's `docker-registry` (CNCF distribution) on loopback.
//!
//! [`DockerRegistry::start`] writes a temp config (filesystem storage in a
//! temp dir, no auth, `127.0.0.1:<free port>`), runs
//! `docker-registry serve config.yml` and waits for `GET /v2/`. Where the
//! binary is missing it returns `None` after [`crate::skip`], which fails
//! under `LLMPM_TEST_STRICT=1` (CI installs the package).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{publish, sha256_digest};
use crate::http;

/// Where `docker-registry` is: `$LLMPM_DOCKER_REGISTRY`, else Debian's path, else `$PATH`.
pub fn docker_registry_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("LLMPM_DOCKER_REGISTRY") {
        return Some(PathBuf::from(p));
    }
    find_on_path("docker-registry")
}

/// A program on `$PATH` (or in `/usr/bin`, `/usr/sbin`).
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/bin", "/usr/sbin", "/usr/local/bin"])
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file());
    found
}

/// A running `docker-registry`; killed and its storage deleted when dropped.
pub struct DockerRegistry {
    child: Child,
    port: u16,
    /// Config, storage and log.
    pub dir: tempfile::TempDir,
}

impl DockerRegistry {
    /// Starts one, or returns `None` (skipped, or failed under strict mode)
    /// when `docker-registry` is not installed.
    pub fn start() -> Option<DockerRegistry> {
        DockerRegistry::start_with("")
    }

    /// Starts one as a pull-through cache of the registry at `remote`
    /// (`http://127.0.0.1:PORT`): distribution's `proxy: remoteurl:`. It
    /// fetches what it does not hold from `remote` and keeps it.
    pub fn start_proxy(remote: &str) -> Option<DockerRegistry> {
        DockerRegistry::start_with(&format!("proxy:\n  remoteurl: {remote}\n"))
    }

    /// Starts one with `extra` appended to its config (top-level YAML keys).
    fn start_with(extra: &str) -> Option<DockerRegistry> {
        let Some(bin) = docker_registry_bin() else {
            crate::skip("`docker-registry` is not installed (apt-get install docker-registry)");
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("llmpm-distribution")
            .tempdir()
            .expect("tempdir");
        let port = crate::free_port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\n\
                 log:\n  level: warn\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                 http:\n  addr: 127.0.0.1:{port}\n{extra}",
                dir.path().join("storage").display()
            ),
        )
        .expect("write registry config");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("log");
        let child = Command::new(&bin)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("run `{}`: {e}", bin.display()));
        let mut reg = DockerRegistry { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if http::call_tcp(port, "GET", "/v2/", &[], b"").is_ok_and(|r| r.status == 200) {
                return Some(reg);
            }
            if matches!(reg.child.try_wait(), Ok(Some(_))) || Instant::now() > deadline {
                panic!("docker-registry did not start:\n{}", reg.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the process (SIGKILL) now, mid-transfer if one is under way.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.host())
    }

    /// `127.0.0.1:PORT/repo:tag`.
    pub fn model(&self, repo: &str, tag: &str) -> String {
        format!("{}/{repo}:{tag}", self.host())
    }

    /// The registry's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> http::Response {
        let host = self.host();
        let mut h = vec![("Host", host.as_str())];
        h.extend_from_slice(headers);
        http::call_tcp(self.port, method, path, &h, body)
            .unwrap_or_else(|e| panic!("{method} {path} to docker-registry: {e}"))
    }

    /// Uploads a blob (POST, then a monolithic PUT) and returns its digest.
    pub fn add_blob(&self, repo: &str, bytes: &[u8]) -> String {
        let digest = sha256_digest(bytes);
        let r = self.call("POST", &format!("/v2/{repo}/blobs/uploads/"), &[], b"");
        assert_eq!(r.status, 202, "start upload: {}", r.text());
        let loc = r.header("location").expect("upload Location").to_owned();
        let loc = loc.strip_prefix(&self.url()).unwrap_or(&loc);
        let sep = if loc.contains('?') { '&' } else { '?' };
        let r = self.call(
            "PUT",
            &format!("{loc}{sep}digest={digest}"),
            &[("Content-Type", "application/octet-stream")],
            bytes,
        );
        assert_eq!(r.status, 201, "finish upload: {}", r.text());
        digest
    }

    /// PUTs a manifest under `reference` and returns its digest.
    pub fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> String {
        let r = self.call(
            "PUT",
            &format!("/v2/{repo}/manifests/{reference}"),
            &[("Content-Type", media_type)],
            bytes,
        );
        assert_eq!(r.status, 201, "put manifest: {}\n{}", r.text(), self.log());
        sha256_digest(bytes)
    }

    /// A manifest's bytes and `Content-Type`, asking for every type llmpm knows.
    pub fn get_manifest(&self, repo: &str, reference: &str) -> Option<(String, Vec<u8>)> {
        let accept = llmpm_spec::media_type::MANIFEST_TYPES.join(", ");
        let r = self.call(
            "GET",
            &format!("/v2/{repo}/manifests/{reference}"),
            &[("Accept", &accept)],
            b"",
        );
        (r.status == 200).then(|| (r.header("content-type").unwrap_or("").to_owned(), r.body))
    }

    /// Deletes a manifest by digest (and every tag pointing at it).
    pub fn delete_manifest(&self, repo: &str, digest: &str) {
        let r = self.call(
            "DELETE",
            &format!("/v2/{repo}/manifests/{digest}"),
            &[],
            b"",
        );
        assert_eq!(
            r.status,
            202,
            "delete manifest: {}\n{}",
            r.text(),
            self.log()
        );
    }

    /// A blob's bytes.
    pub fn get_blob(&self, repo: &str, digest: &str) -> Option<Vec<u8>> {
        let r = self.call("GET", &format!("/v2/{repo}/blobs/{digest}"), &[], b"");
        (r.status == 200).then_some(r.body)
    }

    /// Publishes a built artifact: blobs, then the manifest. Returns the manifest digest.
    pub fn publish(&self, repo: &str, tag: &str, a: &publish::Artifact) -> String {
        for b in &a.blobs {
            self.add_blob(repo, b);
        }
        self.put_manifest(repo, tag, &a.media_type, &a.manifest)
    }

    /// See [`super::TestRegistry::publish_ollama_model`].
    pub fn publish_ollama_model(&self, repo: &str, tag: &str, layers: &[(&str, &[u8])]) -> String {
        self.publish(repo, tag, &publish::ollama_model(layers))
    }

    /// See [`super::TestRegistry::publish_modelpack`].
    pub fn publish_modelpack(&self, repo: &str, tag: &str, layers: &[(&str, &[u8])]) -> String {
        self.publish(repo, tag, &publish::modelpack(layers))
    }

    /// See [`super::TestRegistry::publish_docker_model`].
    pub fn publish_docker_model(&self, repo: &str, tag: &str, layers: &[(&str, &[u8])]) -> String {
        self.publish(repo, tag, &publish::docker_model(layers))
    }
}

impl Drop for DockerRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
