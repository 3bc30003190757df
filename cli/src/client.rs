//! The HTTP client of llmpmd: requests over its unix socket or TCP, errors decoded, progress streams read.
//!
//! Each request opens its own HTTP/1.1 connection: a CLI makes a handful of
//! calls, and a fresh connection per call keeps this free of pooling and of a
//! connector abstraction over two socket kinds. A non-2xx answer becomes a
//! [`StatusError`] carrying the daemon's `{"error"}` message; an NDJSON
//! progress stream is read with [`ProgressStream`], where an `{"error"}` line
//! (a failure after the stream began, see SPEC.md "Local API") becomes a
//! [`StreamError`].
//!
//! When the daemon is not running and may be started (see `autostart`), the
//! first connection attempt starts it and waits until it answers.

use std::cell::Cell;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::task::{ready, Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use anyhow::Context;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;
use hyper::{header, Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use indicatif::ProgressBar;
use llmpm_spec::api::{
    CopyRequest, CreateRequest, DeleteRequest, GenerateRequest, GenerateResponse, ListResponse,
    ProcessResponse, ProgressResponse, PruneResponse, PullRequest, ShowRequest, ShowResponse,
    VerifyResponse,
};
use llmpm_spec::Digest;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::autostart;
use crate::error::{Failure, StatusError, StreamError, Unreachable};
use crate::printer::Printer;
use crate::settings::{Settings, Target};

/// The body of every request we send.
pub type RequestBody = BoxBody<Bytes, io::Error>;

/// How long a TCP connect may take before the daemon counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a freshly started daemon has to answer.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// The most of an error body or of one progress line we hold in memory.
const MAX_MESSAGE: usize = 1 << 20;
/// The read size when streaming a file upload.
const UPLOAD_CHUNK: usize = 256 * 1024;

/// A connection attempt's failure: nobody listening, or something else.
enum ConnectError {
    Unreachable(io::Error),
    Other(anyhow::Error),
}

/// Whether a connect error means "no daemon there" (worth starting one).
fn is_unreachable(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused | io::ErrorKind::TimedOut
    )
}

/// The client of one daemon.
pub struct Client {
    settings: Settings,
    printer: Printer,
    /// Set once an autostart was tried, so a daemon that will not start is
    /// reported instead of started again on every request.
    autostarted: Cell<bool>,
}

impl Client {
    /// A client for the daemon `settings` point at.
    pub fn new(settings: &Settings, printer: Printer) -> Client {
        Client {
            settings: settings.clone(),
            printer,
            autostarted: Cell::new(false),
        }
    }

    /// Where the daemon is.
    pub fn target(&self) -> &Target {
        &self.settings.target
    }

    fn host_header(&self) -> String {
        match &self.settings.target {
            // The daemon checks Host only on TCP; `localhost` is what a
            // local client would send anyway.
            Target::Unix(_) => "localhost".to_owned(),
            Target::Tcp(tcp) => tcp.authority(),
        }
    }

    async fn try_connect(&self) -> Result<SendRequest<RequestBody>, ConnectError> {
        match &self.settings.target {
            Target::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(|e| classify(e, &self.settings.target))?;
                handshake(stream).await
            }
            Target::Tcp(tcp) => {
                let connect = tokio::net::TcpStream::connect((tcp.host.as_str(), tcp.port));
                let stream = tokio::time::timeout(CONNECT_TIMEOUT, connect)
                    .await
                    .map_err(|_| ConnectError::Unreachable(io::ErrorKind::TimedOut.into()))?
                    .map_err(|e| classify(e, &self.settings.target))?;
                let _ = stream.set_nodelay(true);
                handshake(stream).await
            }
        }
    }

    /// A connection to the daemon, starting it first when it is not running
    /// and that is allowed.
    async fn connect(&self) -> anyhow::Result<SendRequest<RequestBody>> {
        match self.try_connect().await {
            Ok(s) => Ok(s),
            Err(ConnectError::Other(e)) => Err(e),
            Err(ConnectError::Unreachable(source)) => {
                if !self.settings.autostart || self.autostarted.replace(true) {
                    return Err(Unreachable {
                        target: self.settings.target.to_string(),
                        source,
                    }
                    .into());
                }
                self.start_daemon().await?;
                match self.try_connect().await {
                    Ok(s) => Ok(s),
                    Err(ConnectError::Other(e)) => Err(e),
                    Err(ConnectError::Unreachable(source)) => Err(Unreachable {
                        target: self.settings.target.to_string(),
                        source,
                    }
                    .into()),
                }
            }
        }
    }

    /// Starts `llmpmd` in the background and waits until it answers `GET /`.
    async fn start_daemon(&self) -> anyhow::Result<()> {
        let mut started = autostart::spawn(&self.settings)?;
        self.printer.status(&format!(
            "llmpm: started llmpmd in the background (log: {})",
            started.log.display()
        ));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if self.ping().await {
                return Ok(());
            }
            if let Some(status) = started.exited()? {
                return Err(autostart::exited_early(&started.log, status));
            }
            if Instant::now() >= deadline {
                return Err(Failure::new(format!(
                    "llmpmd did not answer at `{}` within {} s of starting",
                    self.settings.target,
                    START_TIMEOUT.as_secs()
                ))
                .with_hint(format!("see its log `{}`", started.log.display()))
                .into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether the daemon answers `GET /` (without starting it).
    pub async fn ping(&self) -> bool {
        let Ok(mut sender) = self.try_connect().await else {
            return false;
        };
        let Ok(req) = self.request(Method::GET, "/", empty(), None) else {
            return false;
        };
        sender
            .send_request(req)
            .await
            .is_ok_and(|r| r.status().is_success())
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        body: RequestBody,
        content_type: Option<&str>,
    ) -> anyhow::Result<Request<RequestBody>> {
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, self.host_header())
            .header(
                header::USER_AGENT,
                concat!("llmpm/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(ct) = content_type {
            builder = builder.header(header::CONTENT_TYPE, ct);
        }
        if let Some(len) = body.size_hint().exact() {
            builder = builder.header(header::CONTENT_LENGTH, len);
        }
        if let Some(key) = &self.settings.api_key {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {key}"));
        }
        builder
            .body(body)
            .with_context(|| format!("Failed to build the request for `{path}`"))
    }

    /// Sends one request; a non-2xx answer becomes a [`StatusError`].
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: RequestBody,
        content_type: Option<&str>,
    ) -> anyhow::Result<Response<Incoming>> {
        let mut sender = self.connect().await?;
        let req = self.request(method, path, body, content_type)?;
        let resp = sender
            .send_request(req)
            .await
            .with_context(|| format!("Failed to talk to llmpmd at `{}`", self.settings.target))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        Err(status_error(resp).await.into())
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> anyhow::Result<T> {
        let resp = self.send_json(method, path, body).await?;
        let bytes = read_body(resp).await?;
        serde_json::from_slice(&bytes)
            .with_context(|| format!("Failed to decode llmpmd's answer to `{path}`"))
    }

    async fn send_json(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> anyhow::Result<Response<Incoming>> {
        match body {
            Some(b) => {
                let json = serde_json::to_vec(b)?;
                self.send(method, path, full(json), Some("application/json"))
                    .await
            }
            None => self.send(method, path, empty(), None).await,
        }
    }

    /// `GET /api/tags`.
    pub async fn list(&self) -> anyhow::Result<ListResponse> {
        self.call(Method::GET, "/api/tags", None::<&()>).await
    }

    /// `GET /api/ps`.
    pub async fn ps(&self) -> anyhow::Result<ProcessResponse> {
        self.call(Method::GET, "/api/ps", None::<&()>).await
    }

    /// `POST /api/generate`, not streamed: for loading and unloading (an
    /// empty prompt), where the one answer is all there is.
    pub async fn generate(&self, req: &GenerateRequest) -> anyhow::Result<GenerateResponse> {
        self.call(Method::POST, "/api/generate", Some(req)).await
    }

    /// `POST /api/show`.
    pub async fn show(&self, req: &ShowRequest) -> anyhow::Result<ShowResponse> {
        self.call(Method::POST, "/api/show", Some(req)).await
    }

    /// `POST /api/copy`.
    pub async fn copy(&self, req: &CopyRequest) -> anyhow::Result<()> {
        let resp = self.send_json(Method::POST, "/api/copy", Some(req)).await?;
        read_body(resp).await.map(drop)
    }

    /// `DELETE /api/delete`.
    pub async fn delete(&self, req: &DeleteRequest) -> anyhow::Result<()> {
        let resp = self
            .send_json(Method::DELETE, "/api/delete", Some(req))
            .await?;
        read_body(resp).await.map(drop)
    }

    /// `POST /api/prune`.
    pub async fn prune(&self) -> anyhow::Result<PruneResponse> {
        self.call(Method::POST, "/api/prune", None::<&()>).await
    }

    /// `POST /api/verify`.
    pub async fn verify(&self) -> anyhow::Result<VerifyResponse> {
        self.call(Method::POST, "/api/verify", None::<&()>).await
    }

    /// `POST /api/keygen`.
    pub async fn keygen(
        &self,
        req: &llmpm_spec::api::KeygenRequest,
    ) -> anyhow::Result<llmpm_spec::api::KeygenResponse> {
        self.call(Method::POST, "/api/keygen", Some(req)).await
    }

    /// `POST /api/sign`.
    pub async fn sign(
        &self,
        req: &llmpm_spec::api::SignRequest,
    ) -> anyhow::Result<llmpm_spec::api::SignResponse> {
        self.call(Method::POST, "/api/sign", Some(req)).await
    }

    /// `POST /api/signatures`.
    pub async fn signatures(
        &self,
        req: &llmpm_spec::api::SignaturesRequest,
    ) -> anyhow::Result<llmpm_spec::api::SignaturesResponse> {
        self.call(Method::POST, "/api/signatures", Some(req)).await
    }

    /// `POST /api/export`.
    pub async fn export(
        &self,
        req: &llmpm_spec::api::ExportRequest,
    ) -> anyhow::Result<llmpm_spec::api::ExportResponse> {
        self.call(Method::POST, "/api/export", Some(req)).await
    }

    /// `POST /api/export` asking for an OCI archive: the answer, whose body is the tar.
    pub async fn save(
        &self,
        req: &llmpm_spec::api::ExportRequest,
    ) -> anyhow::Result<Response<Incoming>> {
        self.send_json(Method::POST, "/api/export", Some(req)).await
    }

    /// `POST /api/import?name=…` with an OCI archive as the body.
    pub async fn import(
        &self,
        body: ReaderBody,
        name: Option<&str>,
    ) -> anyhow::Result<llmpm_spec::api::ImportResponse> {
        let path = match name {
            Some(n) => format!("/api/import?name={}", query_escape(n)),
            None => "/api/import".to_owned(),
        };
        let resp = self
            .send(Method::POST, &path, body.boxed(), Some("application/x-tar"))
            .await?;
        let bytes = read_body(resp).await?;
        serde_json::from_slice(&bytes).context("Failed to decode llmpmd's answer to `/api/import`")
    }

    /// `POST /api/create`, streamed.
    pub async fn create(&self, req: &CreateRequest) -> anyhow::Result<ProgressStream> {
        let resp = self
            .send_json(Method::POST, "/api/create", Some(req))
            .await?;
        Ok(ProgressStream::new(resp.into_body()))
    }

    /// `POST /api/pull`, streamed.
    pub async fn pull(&self, req: &PullRequest) -> anyhow::Result<ProgressStream> {
        let resp = self.send_json(Method::POST, "/api/pull", Some(req)).await?;
        Ok(ProgressStream::new(resp.into_body()))
    }

    /// `POST /api/chat`, streamed: the body, read line by line by `run`.
    pub async fn chat(&self, req: &llmpm_spec::api::ChatRequest) -> anyhow::Result<Incoming> {
        let resp = self.send_json(Method::POST, "/api/chat", Some(req)).await?;
        Ok(resp.into_body())
    }

    /// `POST /api/push`, streamed.
    pub async fn push(&self, req: &PullRequest) -> anyhow::Result<ProgressStream> {
        let resp = self.send_json(Method::POST, "/api/push", Some(req)).await?;
        Ok(ProgressStream::new(resp.into_body()))
    }

    /// `HEAD /api/blobs/:digest`: whether the daemon has the blob.
    pub async fn has_blob(&self, digest: &Digest) -> anyhow::Result<bool> {
        let path = format!("/api/blobs/{digest}");
        match self.send(Method::HEAD, &path, empty(), None).await {
            Ok(_) => Ok(true),
            Err(e)
                if e.downcast_ref::<StatusError>()
                    .is_some_and(|s| s.status == 404) =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// `POST /api/blobs/:digest` with the file's bytes, streamed from disk
    /// (never read whole into memory); `bar` advances as bytes are sent.
    pub async fn upload_blob(
        &self,
        digest: &Digest,
        file: &Path,
        bar: &ProgressBar,
    ) -> anyhow::Result<()> {
        let f = tokio::fs::File::open(file)
            .await
            .with_context(|| format!("Failed to open `{}`", file.display()))?;
        let len = f
            .metadata()
            .await
            .with_context(|| format!("Failed to read the size of `{}`", file.display()))?
            .len();
        bar.set_length(len);
        let body = ReaderBody::new(f, Some(len), bar.clone());
        let path = format!("/api/blobs/{digest}");
        let resp = self
            .send(
                Method::POST,
                &path,
                body.boxed(),
                Some("application/octet-stream"),
            )
            .await?;
        read_body(resp).await.map(drop)
    }
}

/// Percent-encodes a query value (model names are mostly safe already).
fn query_escape(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn classify(e: io::Error, target: &Target) -> ConnectError {
    if is_unreachable(&e) {
        ConnectError::Unreachable(e)
    } else {
        ConnectError::Other(
            anyhow::Error::new(e).context(format!("Failed to connect to llmpmd at `{target}`")),
        )
    }
}

async fn handshake<T>(io: T) -> Result<SendRequest<RequestBody>, ConnectError>
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| {
            ConnectError::Other(anyhow::Error::new(e).context("Failed to open an HTTP connection"))
        })?;
    // The connection is driven in the background; its errors surface on the
    // request that was using it.
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

fn empty() -> RequestBody {
    full(Vec::new())
}

fn full(bytes: Vec<u8>) -> RequestBody {
    Full::new(Bytes::from(bytes))
        .map_err(|never| match never {})
        .boxed()
}

async fn read_body(resp: Response<Incoming>) -> anyhow::Result<Bytes> {
    Ok(resp
        .into_body()
        .collect()
        .await
        .context("Failed to read llmpmd's answer")?
        .to_bytes())
}

/// Turns a non-2xx answer into a [`StatusError`], reading at most
/// [`MAX_MESSAGE`] bytes of it.
async fn status_error(resp: Response<Incoming>) -> StatusError {
    let status = resp.status();
    let body = Limited::new(resp.into_body(), MAX_MESSAGE)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    StatusError {
        status: status.as_u16(),
        message: error_message(status, &body),
    }
}

/// The message of an error answer: its `{"error"}`, else its text, else the
/// status's reason phrase.
fn error_message(status: StatusCode, body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        if let Some(msg) = v.get("error").and_then(|e| e.as_str()) {
            return msg.to_owned();
        }
    }
    let text = String::from_utf8_lossy(body).trim().to_owned();
    if !text.is_empty() {
        return text;
    }
    match status.canonical_reason() {
        Some(reason) => format!("llmpmd answered {} {reason}", status.as_u16()),
        None => format!("llmpmd answered {}", status.as_u16()),
    }
}

/// An NDJSON stream of [`ProgressResponse`] lines.
pub struct ProgressStream {
    body: Incoming,
    buf: Vec<u8>,
    done: bool,
}

impl ProgressStream {
    fn new(body: Incoming) -> ProgressStream {
        ProgressStream {
            body,
            buf: Vec::new(),
            done: false,
        }
    }

    /// The next progress line; `None` at the end of the stream. An
    /// `{"error"}` line is returned as a [`StreamError`].
    pub async fn next(&mut self) -> anyhow::Result<Option<ProgressResponse>> {
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=end).collect();
                match parse_line(&line)? {
                    Some(p) => return Ok(Some(p)),
                    None => continue,
                }
            }
            if self.done {
                // A last line without its newline still counts.
                let line = std::mem::take(&mut self.buf);
                return parse_line(&line);
            }
            if self.buf.len() > MAX_MESSAGE {
                anyhow::bail!("llmpmd sent a progress line longer than {MAX_MESSAGE} bytes");
            }
            match self.body.frame().await {
                None => self.done = true,
                Some(frame) => {
                    let frame = frame.context("Failed to read llmpmd's progress stream")?;
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
            }
        }
    }
}

/// One NDJSON line: a progress update, nothing (blank), or an error.
pub fn parse_line(line: &[u8]) -> anyhow::Result<Option<ProgressResponse>> {
    let text = String::from_utf8_lossy(line);
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let value: serde_json::Value = serde_json::from_str(text)
        .with_context(|| format!("llmpmd sent a progress line that is not JSON: `{text}`"))?;
    if let Some(msg) = value.get("error").and_then(|e| e.as_str()) {
        return Err(StreamError {
            message: msg.to_owned(),
        }
        .into());
    }
    let p = serde_json::from_value(value)
        .with_context(|| format!("llmpmd sent an unexpected progress line: `{text}`"))?;
    Ok(Some(p))
}

/// A request body read from a file or a pipe as it is sent: with a known
/// length an exact size (so `Content-Length`), else chunked to the end.
pub struct ReaderBody {
    reader: Pin<Box<dyn AsyncRead + Send + Sync>>,
    remaining: Option<u64>,
    done: bool,
    buf: Vec<u8>,
    bar: ProgressBar,
}

impl ReaderBody {
    /// Reads `reader`, which holds exactly `len` bytes when that is given; `bar` advances as bytes go.
    pub fn new(
        reader: impl AsyncRead + Send + Sync + 'static,
        len: Option<u64>,
        bar: ProgressBar,
    ) -> ReaderBody {
        ReaderBody {
            reader: Box::pin(reader),
            remaining: len,
            done: len == Some(0),
            buf: vec![0; UPLOAD_CHUNK],
            bar,
        }
    }
}

impl Body for ReaderBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let want = this
            .remaining
            .map_or(usize::MAX, |r| usize::try_from(r).unwrap_or(usize::MAX))
            .min(this.buf.len());
        let mut rb = ReadBuf::new(&mut this.buf[..want]);
        ready!(this.reader.as_mut().poll_read(cx, &mut rb))?;
        let n = rb.filled().len();
        if n == 0 {
            this.done = true;
            if this.remaining.is_some() {
                return Poll::Ready(Some(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the file shrank while it was being uploaded",
                ))));
            }
            return Poll::Ready(None);
        }
        if let Some(r) = &mut this.remaining {
            *r -= n as u64;
            this.done = *r == 0;
        }
        this.bar.inc(n as u64);
        Poll::Ready(Some(Ok(Frame::data(Bytes::copy_from_slice(rb.filled())))))
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        match self.remaining {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies() {
        let s = StatusCode::NOT_FOUND;
        assert_eq!(
            error_message(s, br#"{"error":"model `x` not found"}"#),
            "model `x` not found"
        );
        assert_eq!(error_message(s, b"plain text\n"), "plain text");
        assert_eq!(error_message(s, b""), "llmpmd answered 404 Not Found");
    }

    #[test]
    fn progress_lines() {
        let p =
            parse_line(br#"{"status":"pulling","digest":"sha256:ab","total":10,"completed":5}"#)
                .unwrap()
                .unwrap();
        assert_eq!(p.status, "pulling");
        assert_eq!((p.total, p.completed), (Some(10), Some(5)));
        assert!(parse_line(b"  \n").unwrap().is_none());
        let e = parse_line(br#"{"error":"bad GGUF"}"#).unwrap_err();
        assert_eq!(e.downcast_ref::<StreamError>().unwrap().message, "bad GGUF");
        assert!(parse_line(b"nope").is_err());
    }
}
