//! A minimal HTTP/1.1 client over unix sockets and TCP, so tests see raw statuses and bodies.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// A response, body fully read (chunked decoded).
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, lower-cased names.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// Body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }

    /// Each NDJSON line as JSON.
    pub fn ndjson(&self) -> Vec<serde_json::Value> {
        self.text()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("bad NDJSON line {l:?}: {e}"))
            })
            .collect()
    }

    /// A header value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request on `stream` and reads the response.
pub fn request<S: Read + Write>(
    stream: S,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Response> {
    let mut s = stream;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        head.push_str("Host: localhost\r\n");
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    // One write: a server that answers before reading the body (a 404 on a
    // bad path) may close early, and a second write would then fail.
    let mut req = head.into_bytes();
    req.extend_from_slice(body);
    s.write_all(&req)?;
    s.flush()?;
    read_response(BufReader::new(s), method == "HEAD")
}

fn read_response<R: BufRead>(mut r: R, head_only: bool) -> io::Result<Response> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad status line {line:?}"),
            )
        })?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let mut body = Vec::new();
    if !head_only {
        let chunked = headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
        if chunked {
            loop {
                line.clear();
                r.read_line(&mut line)?;
                let n = usize::from_str_radix(line.trim(), 16)
                    .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
                if n == 0 {
                    break;
                }
                let mut buf = vec![0; n];
                r.read_exact(&mut buf)?;
                body.extend_from_slice(&buf);
                line.clear();
                r.read_line(&mut line)?;
            }
        } else {
            r.read_to_end(&mut body)?;
        }
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn unix(path: &Path) -> io::Result<UnixStream> {
    let s = UnixStream::connect(path)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    Ok(s)
}

/// `GET` over the unix socket.
pub fn get_unix(sock: &Path, path: &str) -> io::Result<Response> {
    request(unix(sock)?, "GET", path, &[], b"")
}

/// Any method over the unix socket with a body.
pub fn call_unix(sock: &Path, method: &str, path: &str, body: &[u8]) -> io::Result<Response> {
    request(unix(sock)?, method, path, &[], body)
}

/// Any method over TCP, with extra headers.
pub fn call_tcp(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Response> {
    let s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    request(s, method, path, headers, body)
}

/// A streamed request read line by line, so a test can act mid-stream.
#[derive(Debug)]
pub struct Stream {
    reader: BufReader<UnixStream>,
}

impl Stream {
    /// POSTs `body` to `path` on `sock`; panics unless the status is 200.
    pub fn open(sock: &Path, path: &str, body: &serde_json::Value) -> Stream {
        let mut s = UnixStream::connect(sock).expect("connect to the daemon");
        s.set_read_timeout(Some(Duration::from_secs(120)))
            .expect("read timeout");
        let body = body.to_string();
        write!(
            s,
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .expect("send request");
        let mut reader = BufReader::new(s);
        let mut line = String::new();
        reader.read_line(&mut line).expect("status line");
        assert!(line.contains(" 200 "), "{line}");
        loop {
            line.clear();
            reader.read_line(&mut line).expect("header line");
            if line.trim().is_empty() {
                break;
            }
        }
        Stream { reader }
    }

    /// The next NDJSON value (chunk framing skipped), `None` at the end.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<serde_json::Value> {
        let mut line = String::new();
        loop {
            line.clear();
            if self.reader.read_line(&mut line).ok()? == 0 {
                return None;
            }
            let l = line.trim();
            if l.starts_with('{') {
                return Some(serde_json::from_str(l).expect("an NDJSON line"));
            }
        }
    }

    /// Reads to the end; the last value.
    pub fn finish(mut self) -> serde_json::Value {
        let mut last = serde_json::Value::Null;
        while let Some(v) = self.next() {
            last = v;
        }
        last
    }
}
