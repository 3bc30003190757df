//! A small real OCI distribution registry for tests: in-memory, on a loopback socket, with fault injection.
//!
//! [`TestRegistry::start`] binds `127.0.0.1:0` (the registry) and a second
//! listener on another port (a "storage host" that blob redirects point to,
//! addressed as `localhost:PORT2` so it is a different host to a client) and
//! serves both from a tokio runtime on its own thread, so plain `#[test]`
//! functions can use it. It implements what clients use from the OCI
//! distribution spec v1.1 — manifests by tag or digest, blobs with `Range`,
//! monolithic, chunked and cross-repository-mount uploads, OCI error bodies —
//! and counts every blob byte it serves, so tests can prove what was (not)
//! downloaded. [`Faults`] make it misbehave on demand.
//!
//! [`distribution`] starts the real third-party registry (Debian's
//! `docker-registry`) for the interop tests.
//!
//! Spec: <https://github.com/opencontainers/distribution-spec/blob/main/spec.md>.

pub mod distribution;
mod faults;
pub mod publish;
mod server;

use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use axum::body::Bytes;
use sha2::{Digest as _, Sha256};

pub use faults::{Fault, Faults, ALWAYS};
pub use publish::{
    DOCKER_AI_CONFIG, DOCKER_AI_GGUF, DOCKER_AI_LICENSE, MODELPACK_ARTIFACT, MODELPACK_CONFIG,
    MODELPACK_WEIGHT_RAW,
};

/// Deterministic bytes that do not compress.
pub fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// How a [`TestRegistry`] behaves beyond the spec's defaults.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Faults armed from the start.
    pub faults: Vec<Fault>,
    /// Honour `?mount=&from=` (201) when the blob is in `from`; otherwise a
    /// mount request starts an ordinary upload (202), as the spec allows.
    pub mount: bool,
    /// `Location` headers as absolute URLs (`http://127.0.0.1:PORT/v2/…`,
    /// what `docker-registry` sends) rather than paths (what many hosted
    /// registries send). Clients must handle both.
    pub absolute_locations: bool,
    /// Largest manifest a `PUT` may carry.
    pub max_manifest_put: usize,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            faults: Vec::new(),
            mount: true,
            absolute_locations: false,
            // Bigger than llmpm's 4 MiB limit, so tests can store an
            // oversized manifest and see the client refuse it.
            max_manifest_put: 16 * 1024 * 1024,
        }
    }
}

/// One request the registry (or its redirect host) received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// `GET`, `HEAD`, …
    pub method: String,
    /// The path and query.
    pub path: String,
    /// Whether an `Authorization` header came.
    pub authorization: bool,
    /// The `Range` header, if any.
    pub range: Option<String>,
    /// True for the redirect host (`localhost:PORT2`), false for the registry.
    pub redirect_host: bool,
}

/// A stored manifest: the media type it is served with and its exact bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredManifest {
    /// `Content-Type` it is served with.
    pub media_type: String,
    /// The bytes, exactly as put.
    pub bytes: Vec<u8>,
}

#[derive(Debug, Default)]
pub(crate) struct Store {
    /// Every blob by digest; which repositories hold it is in `links`.
    pub blobs: HashMap<String, Bytes>,
    /// `(repository, digest)`: blobs are served only from repositories that hold them.
    pub links: HashSet<(String, String)>,
    /// `(repository, tag or digest)` → manifest.
    pub manifests: HashMap<(String, String), (String, Bytes)>,
    /// Upload session id → (repository, bytes so far).
    pub uploads: HashMap<String, (String, Vec<u8>)>,
    pub next_upload: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub blob_bytes: AtomicU64,
    pub per_digest: Mutex<HashMap<String, DigestCount>>,
    pub tokens_issued: AtomicU64,
}

/// What the registry served of one blob.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DigestCount {
    /// Body bytes sent (both listeners).
    pub bytes: u64,
    /// GET requests (both listeners; redirects not counted).
    pub gets: u64,
}

/// State shared by the handlers and the [`TestRegistry`] handle.
#[derive(Debug)]
pub(crate) struct Shared {
    pub host: String,
    pub redirect_host: String,
    pub options: RegistryOptions,
    pub store: Mutex<Store>,
    pub faults: Faults,
    pub counters: Counters,
    pub log: Mutex<Vec<RequestRecord>>,
}

impl Shared {
    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn count(&self, digest: &str, bytes: u64, get: bool) {
        self.counters.blob_bytes.fetch_add(bytes, Ordering::Relaxed);
        let mut m = self
            .counters
            .per_digest
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let c = m.entry(digest.to_owned()).or_default();
        c.bytes += bytes;
        c.gets += u64::from(get);
    }
}

/// A running in-memory registry; stopped when dropped.
pub struct TestRegistry {
    shared: Arc<Shared>,
    port: u16,
    redirect_port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TestRegistry {
    /// Starts a registry with default options.
    pub fn start() -> TestRegistry {
        TestRegistry::start_with(RegistryOptions::default())
    }

    /// Starts a registry with `options`.
    pub fn start_with(options: RegistryOptions) -> TestRegistry {
        // Bound here, synchronously, so the ports are known before the first request.
        let main = TcpListener::bind("127.0.0.1:0").expect("bind registry");
        let other = TcpListener::bind("127.0.0.1:0").expect("bind redirect host");
        let port = main.local_addr().expect("addr").port();
        let redirect_port = other.local_addr().expect("addr").port();
        main.set_nonblocking(true).expect("nonblocking");
        other.set_nonblocking(true).expect("nonblocking");
        let faults = Faults::default();
        for f in &options.faults {
            faults.set(f.clone());
        }
        let shared = Arc::new(Shared {
            host: format!("127.0.0.1:{port}"),
            redirect_host: format!("localhost:{redirect_port}"),
            options,
            store: Mutex::default(),
            faults,
            counters: Counters::default(),
            log: Mutex::default(),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("test-registry-{port}"))
            .spawn(move || server::run(s, main, other, stopped))
            .expect("spawn registry thread");
        TestRegistry {
            shared,
            port,
            redirect_port,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The registry's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`: the host part of a model name.
    pub fn host(&self) -> String {
        self.shared.host.clone()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.shared.host)
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `localhost:PORT2`: the other host blob redirects point to.
    pub fn redirect_host(&self) -> String {
        self.shared.redirect_host.clone()
    }

    /// The redirect host's port.
    pub fn redirect_port(&self) -> u16 {
        self.redirect_port
    }

    /// `127.0.0.1:PORT/repo:tag`, a model name for `llmpm pull`.
    pub fn model(&self, repo: &str, tag: &str) -> String {
        format!("{}/{repo}:{tag}", self.shared.host)
    }

    /// The faults in force; arm more with `.faults().set(…)`.
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// Stores a blob in `repo` and returns its digest.
    pub fn add_blob(&self, repo: &str, bytes: impl Into<Vec<u8>>) -> String {
        let bytes = Bytes::from(bytes.into());
        let digest = sha256_digest(&bytes);
        let mut st = self.shared.store();
        st.blobs.insert(digest.clone(), bytes);
        st.links.insert((repo.to_owned(), digest.clone()));
        digest
    }

    /// Stores a manifest under `reference` (a tag) and under its digest,
    /// served with `media_type` (which need not agree with the JSON's
    /// `mediaType`: that is a test case). Returns the digest. No checks.
    pub fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: impl Into<Vec<u8>>,
    ) -> String {
        let bytes = Bytes::from(bytes.into());
        let digest = sha256_digest(&bytes);
        let mut st = self.shared.store();
        for r in [reference, digest.as_str()] {
            st.manifests.insert(
                (repo.to_owned(), r.to_owned()),
                (media_type.to_owned(), bytes.clone()),
            );
        }
        digest
    }

    /// Stores `bytes` under `reference` only, even a digest they do not hash
    /// to: a lying registry, for tests of the client's checks.
    pub fn put_manifest_at(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: impl Into<Vec<u8>>,
    ) {
        self.shared.store().manifests.insert(
            (repo.to_owned(), reference.to_owned()),
            (media_type.to_owned(), Bytes::from(bytes.into())),
        );
    }

    /// A blob's bytes, if any repository holds it (e.g. what a push uploaded).
    pub fn blob(&self, digest: &str) -> Option<Vec<u8>> {
        self.shared.store().blobs.get(digest).map(|b| b.to_vec())
    }

    /// Whether `repo` holds blob `digest`.
    pub fn has_blob(&self, repo: &str, digest: &str) -> bool {
        self.shared
            .store()
            .links
            .contains(&(repo.to_owned(), digest.to_owned()))
    }

    /// The manifest `repo` holds under a tag or digest.
    pub fn manifest(&self, repo: &str, reference: &str) -> Option<StoredManifest> {
        self.shared
            .store()
            .manifests
            .get(&(repo.to_owned(), reference.to_owned()))
            .map(|(media_type, bytes)| StoredManifest {
                media_type: media_type.clone(),
                bytes: bytes.to_vec(),
            })
    }

    /// Tags of `repo`, sorted.
    pub fn tags(&self, repo: &str) -> Vec<String> {
        server::tags(&self.shared.store(), repo)
    }

    /// Body bytes served by blob GETs so far, all blobs, both listeners.
    pub fn blob_bytes_served(&self) -> u64 {
        self.shared.counters.blob_bytes.load(Ordering::Relaxed)
    }

    /// Body bytes and GETs served for one blob.
    pub fn served(&self, digest: &str) -> DigestCount {
        self.shared
            .counters
            .per_digest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(digest)
            .copied()
            .unwrap_or_default()
    }

    /// Tokens `/token` has issued.
    pub fn tokens_issued(&self) -> u64 {
        self.shared.counters.tokens_issued.load(Ordering::Relaxed)
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Zeroes the byte counters and forgets the request log (blobs, manifests and faults stay).
    pub fn reset_counters(&self) {
        self.shared.counters.blob_bytes.store(0, Ordering::Relaxed);
        self.shared
            .counters
            .per_digest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.shared
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Publishes an Ollama-style model (Docker v2 schema 2 manifest, Ollama
    /// config) with `layers` as `(media type, bytes)`; returns the manifest digest.
    pub fn publish_ollama_model(&self, repo: &str, tag: &str, layers: &[(&str, &[u8])]) -> String {
        self.publish(repo, tag, &publish::ollama_model(layers))
    }

    /// Publishes a CNCF ModelPack artifact (OCI manifest, artifactType
    /// `application/vnd.cncf.model.manifest.v1+json`); returns the manifest digest.
    pub fn publish_modelpack(&self, repo: &str, tag: &str, layers: &[(&str, &[u8])]) -> String {
        self.publish(repo, tag, &publish::modelpack(layers))
    }

    /// Publishes a Docker model artifact (`application/vnd.docker.ai.*`);
    /// returns the manifest digest.
    pub fn publish_docker_model(&self, repo: &str, tag: &str, layers: &[(&str, &[u8])]) -> String {
        self.publish(repo, tag, &publish::docker_model(layers))
    }

    /// Publishes a built artifact: its blobs, then its manifest.
    pub fn publish(&self, repo: &str, tag: &str, artifact: &publish::Artifact) -> String {
        for b in &artifact.blobs {
            self.add_blob(repo, b.clone());
        }
        self.put_manifest(repo, tag, &artifact.media_type, artifact.manifest.clone())
    }

    /// Publishes an OCI index under `tag` whose only entry is a digest that
    /// this registry answers with the index itself: an index that points at
    /// itself, which a client must refuse (by digest or by depth) rather than loop.
    pub fn publish_index_loop(&self, repo: &str, tag: &str) -> String {
        let (child, index) = publish::index_loop();
        let digest = self.put_manifest(repo, tag, llmpm_spec::media_type::OCI_INDEX, index.clone());
        self.put_manifest_at(repo, &child, llmpm_spec::media_type::OCI_INDEX, index);
        digest
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
