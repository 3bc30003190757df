//! Test harness: a temporary llmpm home, the real `llmpmd` and `llmpm` binaries, real sockets.
//!
//! Nothing here is mocked: [`Daemon`] spawns the built `llmpmd` on a temp
//! home with its own unix socket and a free loopback port, [`TestContext::cli`]
//! runs the built `llmpm` against it, and [`http`] speaks raw HTTP/1.1 over
//! the real socket so tests see exactly what a client sees. [`registry`] is
//! a real OCI registry (in-memory, fault injection, byte counters) and the
//! launcher of Debian's `docker-registry` for the interop tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

pub mod http;
pub mod proxy;
pub mod registry;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub use llmpm_gguf::tiny::{write_tiny_llama, TinyLlamaSpec};

/// Where the workspace's binaries are built.
pub fn bin_dir() -> PathBuf {
    // target/<profile>/deps/<test-exe> → target/<profile>
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps")
        .to_owned()
}

/// Builds `llmpmd` and `llmpm` when they are missing, so `cargo test -p
/// llmpm-tests` works on a fresh checkout. `cargo test --workspace` (the
/// README's command) builds both itself; a build here would resolve features
/// differently from that run and relink the daemon for every test binary, so
/// none is started when the binaries exist.
pub fn ensure_binaries() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        if ["llmpmd", "llmpm"]
            .iter()
            .all(|b| bin_dir().join(b).exists())
        {
            return;
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet", "-p", "llmpmd", "-p", "llmpm", "--bins"]);
        if bin_dir().file_name().and_then(|n| n.to_str()) == Some("release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build");
        assert!(status.success(), "building llmpmd and llmpm failed");
    });
}

/// Path of a built binary.
pub fn bin(name: &str) -> PathBuf {
    ensure_binaries();
    bin_dir().join(name)
}

/// A free loopback port (bound then released; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A running `llmpmd`.
pub struct Daemon {
    child: Option<Child>,
    /// Its unix socket.
    pub socket: PathBuf,
    /// Its TCP port.
    pub port: u16,
    /// Its log file.
    pub log: PathBuf,
}

impl Daemon {
    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// `kill -9`, as a crash would.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait: a clean stop.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }

    /// Whether it is still running.
    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A temp llmpm home and the environment that points both binaries at it.
pub struct TestContext {
    /// The temp dir holding everything.
    pub dir: tempfile::TempDir,
    /// `LLMPM_HOME`.
    pub home: PathBuf,
    /// Scratch space for Modelfiles and GGUFs.
    pub work: PathBuf,
    /// The running daemon, if started.
    pub daemon: Option<Daemon>,
    /// Extra environment for the daemon (set before [`TestContext::start`]).
    pub daemon_env: Vec<(String, String)>,
    /// Another `llmpmd` to start instead of the workspace's (e.g. a `cuda`
    /// build), set before [`TestContext::start`].
    pub daemon_exe: Option<PathBuf>,
    port: u16,
}

impl TestContext {
    /// A new home, daemon not started.
    pub fn new() -> TestContext {
        let dir = tempfile::Builder::new()
            .prefix("llmpm")
            .tempdir()
            .expect("tempdir");
        let home = dir.path().join("home");
        let work = dir.path().join("work");
        std::fs::create_dir_all(&work).expect("mkdir work");
        // An empty config file, so no developer's own config leaks in.
        std::fs::write(dir.path().join("none.yaml"), "").expect("write config");
        TestContext {
            home,
            work,
            daemon: None,
            daemon_env: Vec::new(),
            daemon_exe: None,
            port: free_port(),
            dir,
        }
    }

    /// A new home with the daemon started.
    pub fn started() -> TestContext {
        let mut ctx = TestContext::new();
        ctx.start();
        ctx
    }

    /// The unix socket path.
    pub fn socket(&self) -> PathBuf {
        self.home.join("llmpm.sock")
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The environment both binaries get.
    pub fn envs(&self) -> Vec<(String, String)> {
        vec![
            ("LLMPM_HOME".into(), self.home.display().to_string()),
            ("LLMPM_SOCKET".into(), self.socket().display().to_string()),
            (
                "LLMPM_CONFIG".into(),
                self.dir.path().join("none.yaml").display().to_string(),
            ),
            ("LLMPM_LOG".into(), "info".into()),
            ("NO_COLOR".into(), "1".into()),
        ]
    }

    /// The `llmpmd` command with the context's environment, not started.
    pub fn daemon_command(&self) -> Command {
        let exe = self.daemon_exe.clone().unwrap_or_else(|| bin("llmpmd"));
        let mut cmd = Command::new(exe);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.envs())
            .env("LLMPM_HOST", format!("127.0.0.1:{}", self.port))
            .envs(self.daemon_env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        cmd
    }

    /// Starts the daemon and waits until it answers on its socket.
    pub fn start(&mut self) {
        std::fs::create_dir_all(&self.home).expect("mkdir home");
        let log = self.dir.path().join("llmpmd.log");
        let logf = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log");
        let child = self
            .daemon_command()
            .stdout(logf.try_clone().expect("log"))
            .stderr(logf)
            .spawn()
            .expect("spawn llmpmd");
        let mut d = Daemon {
            child: Some(child),
            socket: self.socket(),
            port: self.port,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if http::get_unix(&d.socket, "/").is_ok_and(|r| r.status == 200) {
                break;
            }
            if !d.alive() {
                panic!("llmpmd exited at start:\n{}", self.daemon_log_of(&d));
            }
            assert!(
                Instant::now() < deadline,
                "llmpmd did not answer within 20 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.daemon = Some(d);
    }

    fn daemon_log_of(&self, d: &Daemon) -> String {
        std::fs::read_to_string(&d.log).unwrap_or_default()
    }

    /// The daemon's log so far.
    pub fn daemon_log(&self) -> String {
        self.daemon
            .as_ref()
            .map(|d| self.daemon_log_of(d))
            .unwrap_or_default()
    }

    /// The running daemon.
    pub fn daemon(&mut self) -> &mut Daemon {
        self.daemon.as_mut().expect("daemon started")
    }

    /// `llmpm ARGS` with the context's environment (autostart off).
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_cmd(args).output().expect("run llmpm")
    }

    /// The `llmpm` command, for tests that need to adjust it.
    pub fn cli_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin("llmpm"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.envs())
            .env("LLMPM_NO_AUTOSTART", "1")
            .current_dir(&self.work)
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    /// Writes a tiny Llama-3-shaped GGUF into the work dir and returns its path.
    pub fn tiny_gguf(&self, name: &str, spec: &TinyLlamaSpec) -> PathBuf {
        let p = self.work.join(name);
        let mut f = std::io::BufWriter::new(std::fs::File::create(&p).expect("create gguf"));
        write_tiny_llama(spec, &mut f).expect("write gguf");
        std::io::Write::flush(&mut f).expect("flush");
        p
    }

    /// A started daemon with the tiny generated model created as `tiny`,
    /// its context `num_ctx` tokens.
    pub fn with_tiny_model(num_ctx: u32) -> TestContext {
        let ctx = TestContext::started();
        ctx.tiny_gguf("tiny.gguf", &TinyLlamaSpec::default());
        std::fs::write(
            ctx.work.join("Modelfile"),
            format!("FROM ./tiny.gguf\nPARAMETER num_ctx {num_ctx}\n"),
        )
        .expect("write Modelfile");
        assert_ok(&ctx.cli(&["create", "tiny", "-f", "Modelfile"]));
        ctx
    }

    /// A started daemon bound to every address (`0.0.0.0`), as on a LAN,
    /// which makes the API key `key` required on TCP.
    pub fn network_bound(key: &str) -> TestContext {
        let mut ctx = TestContext::new();
        ctx.daemon_env = vec![
            ("LLMPM_HOST".into(), format!("0.0.0.0:{}", ctx.port())),
            ("LLMPM_API_KEY".into(), key.into()),
        ];
        ctx.start();
        ctx
    }

    /// Creates model `name` from the tiny generated GGUF (`tiny.gguf` in the
    /// work dir) and the Modelfile lines `extra` after its `FROM`.
    pub fn create_tiny(&self, name: &str, extra: &str) {
        self.tiny_gguf("tiny.gguf", &TinyLlamaSpec::default());
        std::fs::write(
            self.work.join("Modelfile"),
            format!("FROM ./tiny.gguf\n{extra}"),
        )
        .expect("write Modelfile");
        assert_ok(&self.cli(&["create", name, "-f", "Modelfile"]));
    }

    /// POSTs `body` as JSON to `path` on the daemon's unix socket.
    pub fn post_json(&self, path: &str, body: &serde_json::Value) -> http::Response {
        http::call_unix(&self.socket(), "POST", path, body.to_string().as_bytes())
            .expect("request to the daemon")
    }

    /// Names of the files under `blobs/sha256`.
    pub fn blob_files(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.home.join("blobs/sha256"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

impl Default for TestContext {
    fn default() -> Self {
        TestContext::new()
    }
}

/// stdout of a finished command, as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr of a finished command, as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success, printing both streams otherwise.
pub fn assert_ok(o: &Output) {
    assert!(
        o.status.success(),
        "command failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        stdout(o),
        stderr(o)
    );
}

/// The pids of `parent`'s child processes (a daemon's runners), from `/proc`.
pub fn child_pids(parent: u32) -> Vec<String> {
    let parent = parent.to_string();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| {
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            // pid (comm) state ppid …; comm may hold spaces, so split after ')'.
            let ppid = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?;
            (ppid == parent).then(|| e.file_name().to_string_lossy().into_owned())
        })
        .collect()
}

/// Whether CI demands that nothing skips (`LLMPM_TEST_STRICT=1`).
pub fn strict() -> bool {
    std::env::var("LLMPM_TEST_STRICT").is_ok_and(|v| v == "1")
}

/// The real model `file` of tests/fetch-models.sh (in `LLMPM_MODELS_DIR`,
/// by default target/models), or `None` after [`skip`]ping when it is not
/// there.
pub fn real_model(file: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("LLMPM_MODELS_DIR").map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/models")),
        PathBuf::from,
    );
    let path = dir.join(file);
    if path.is_file() {
        return Some(path);
    }
    skip(&format!(
        "{} is missing: run tests/fetch-models.sh",
        path.display()
    ));
    None
}

/// A llama.cpp fixture's JSON, `name` in tests/fixtures/, or in
/// `LLMPM_FIXTURES_DIR` when set (bench/check-fixtures.sh runs the
/// reference tests against fixtures just regenerated with llama.cpp).
pub fn llamacpp_fixture(name: &str) -> serde_json::Value {
    let dir = std::env::var_os("LLMPM_FIXTURES_DIR").map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures")),
        PathBuf::from,
    );
    let path = dir.join(name);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

/// The first case of `file` in tests/fixtures/llamacpp_real.json (llama.cpp's
/// greedy tokens and top logits for a real model's prompt).
pub fn real_fixture_case(file: &str) -> serde_json::Value {
    real_fixture_cases(file)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no case for {file} in llamacpp_real.json"))
}

/// Every case of `file` in tests/fixtures/llamacpp_real.json, in order.
pub fn real_fixture_cases(file: &str) -> Vec<serde_json::Value> {
    let fixture = llamacpp_fixture("llamacpp_real.json");
    fixture["cases"]
        .as_array()
        .map(|cases| {
            cases
                .iter()
                .filter(|c| c["file"] == file)
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// Skips a test whose prerequisite is missing: says so, and fails under strict mode.
pub fn skip(why: &str) {
    assert!(
        !strict(),
        "LLMPM_TEST_STRICT=1 and a prerequisite is missing: {why}"
    );
    eprintln!("SKIP: {why}");
}
