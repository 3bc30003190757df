//! The tar format, as much of it as an OCI archive needs: headers written (ustar, PAX for sizes past 8 GiB) and read (ustar, PAX, GNU long names).
//!
//! Our own few hundred lines rather than the `tar` crate: a load reads the
//! archive from an HTTP body as it arrives and hashes each blob into the
//! store while it streams, which wants an async reader that hands out
//! entries' bytes chunk by chunk, and a reader that refuses (instead of
//! following or extracting) every entry kind an archive of blobs never
//! needs: links, devices, sparse files. The `tar` crate is synchronous and
//! built to extract; bridging it would add a blocking thread per load.
//!
//! Reference: POSIX pax/ustar (IEEE 1003.1-2017, `pax`), GNU tar's `L`/`K`
//! and base-256 size extensions.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};

/// A tar block.
pub const BLOCK: usize = 512;
/// The largest size a ustar header's 11 octal digits hold.
const USTAR_MAX_SIZE: u64 = 0o777_7777_7777;
/// PAX and GNU long-name records bigger than this are refused.
const MAX_META: u64 = 64 * 1024;

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory (no content).
    Dir,
}

/// Why a tar stream could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TarError {
    /// The stream ended early.
    #[error("the archive is truncated: it ends {0}")]
    Truncated(String),
    /// A header's checksum is wrong (not a tar, or damaged).
    #[error(
        "the tar header at byte {0} is damaged or this is not a tar archive (bad header checksum)"
    )]
    Checksum(u64),
    /// A header field does not parse.
    #[error("the tar header at byte {offset} has an unreadable {field}")]
    Field {
        /// Where the header starts.
        offset: u64,
        /// Which field.
        field: &'static str,
    },
    /// An entry kind an archive of blobs never holds.
    #[error(
        "the archive entry `{path}` is a {kind}; an OCI archive holds only files and directories"
    )]
    Kind {
        /// The entry's path.
        path: String,
        /// What it is.
        kind: &'static str,
    },
    /// A PAX or GNU record too large to be honest.
    #[error("the tar extended header at byte {0} is larger than {MAX_META} bytes")]
    Meta(u64),
    /// Reading failed.
    #[error("cannot read the archive")]
    Io(#[source] io::Error),
}

fn io_err(e: io::Error) -> TarError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        TarError::Truncated("inside a header".into())
    } else {
        TarError::Io(e)
    }
}

/// The padding that follows `size` bytes of content.
pub fn padding(size: u64) -> usize {
    let rem = (size % BLOCK as u64) as usize;
    if rem == 0 {
        0
    } else {
        BLOCK - rem
    }
}

fn octal(field: &mut [u8], value: u64) {
    // `width - 1` digits and a NUL, as ustar has it.
    let digits = field.len() - 1;
    let s = format!("{value:0digits$o}");
    field[..digits].copy_from_slice(&s.as_bytes()[s.len() - digits..]);
    field[digits] = 0;
}

fn ustar_header(name: &str, size: u64, kind: u8) -> [u8; BLOCK] {
    let mut h = [0u8; BLOCK];
    let n = name.as_bytes();
    // Every name written here is ours and short (`blobs/sha256/<64 hex>` is 77).
    let len = n.len().min(100);
    h[..len].copy_from_slice(&n[..len]);
    octal(&mut h[100..108], if kind == b'5' { 0o755 } else { 0o644 });
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], size.min(USTAR_MAX_SIZE));
    octal(&mut h[136..148], 0);
    h[156] = kind;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    octal(&mut h[148..155], u64::from(sum));
    h[155] = b' ';
    h
}

/// The header block(s) of an entry named `name` (a file of `size` bytes, or
/// a directory). A size past ustar's 8 GiB goes in a PAX record first.
pub fn header(name: &str, size: u64, kind: Kind) -> Vec<u8> {
    let flag = match kind {
        Kind::File => b'0',
        Kind::Dir => b'5',
    };
    let mut out = Vec::with_capacity(BLOCK * 3);
    if size > USTAR_MAX_SIZE {
        let record = pax_record("size", &size.to_string());
        let pax_name = format!("PaxHeaders/{}", name.rsplit('/').next().unwrap_or(name));
        out.extend_from_slice(&ustar_header(&pax_name, record.len() as u64, b'x'));
        out.extend_from_slice(&record);
        out.resize(out.len() + padding(record.len() as u64), 0);
    }
    out.extend_from_slice(&ustar_header(name, size, flag));
    out
}

/// One `"<len> key=value\n"` PAX record; the length counts itself.
fn pax_record(key: &str, value: &str) -> Vec<u8> {
    let body = key.len() + value.len() + 3; // space, '=', newline
    let mut len = body + 1;
    while len.to_string().len() + body > len {
        len += 1;
    }
    format!("{} {key}={value}\n", len).into_bytes()
}

/// The end of an archive: two zero blocks.
pub fn trailer() -> [u8; BLOCK * 2] {
    [0u8; BLOCK * 2]
}

/// One entry's header, read.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its path as written (PAX or GNU long names applied).
    pub path: String,
    /// Its content size.
    pub size: u64,
    /// File or directory.
    pub kind: Kind,
}

/// Reads a tar stream entry by entry; the caller reads each entry's content
/// with [`Reader::read_content`] before asking for the next.
pub struct Reader<R> {
    inner: R,
    /// Bytes consumed so far (for messages).
    offset: u64,
    /// Content of the current entry not yet read.
    left: u64,
    /// Padding after the current entry's content.
    pad: usize,
}

fn parse_octal(field: &[u8]) -> Option<u64> {
    // GNU base-256: the high bit of the first byte set, then big-endian.
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let mut v: u64 = u64::from(field[0] & 0x7f);
        for &b in &field[1..] {
            v = v.checked_mul(256)?.checked_add(u64::from(b))?;
        }
        return Some(v);
    }
    let s: Vec<u8> = field
        .iter()
        .copied()
        .take_while(|&b| b != 0)
        .filter(|&b| b != b' ')
        .collect();
    if s.is_empty() {
        return Some(0);
    }
    let s = std::str::from_utf8(&s).ok()?;
    u64::from_str_radix(s, 8).ok()
}

fn text(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

fn checksum_ok(h: &[u8; BLOCK]) -> bool {
    let Some(want) = parse_octal(&h[148..156]) else {
        return false;
    };
    let (mut unsigned, mut signed) = (0u64, 0i64);
    for (i, &b) in h.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    // Some old writers summed signed bytes; both are accepted, as GNU tar does.
    want == unsigned || i64::try_from(want).is_ok_and(|w| w == signed)
}

/// Applies PAX records to the next entry: `path` and `size`, the only ones that matter here.
fn apply_pax(records: &[u8], path: &mut Option<String>, size: &mut Option<u64>) -> Option<()> {
    let mut rest = records;
    while !rest.is_empty() {
        let sp = rest.iter().position(|&b| b == b' ')?;
        let len: usize = std::str::from_utf8(&rest[..sp]).ok()?.parse().ok()?;
        if len <= sp + 1 || len > rest.len() {
            return None;
        }
        let rec = &rest[sp + 1..len];
        let rec = rec.strip_suffix(b"\n")?;
        let eq = rec.iter().position(|&b| b == b'=')?;
        let (k, v) = (&rec[..eq], &rec[eq + 1..]);
        match k {
            b"path" => *path = Some(String::from_utf8_lossy(v).into_owned()),
            b"size" => *size = Some(std::str::from_utf8(v).ok()?.parse().ok()?),
            _ => {}
        }
        rest = &rest[len..];
    }
    Some(())
}

impl<R: AsyncRead + Unpin> Reader<R> {
    /// A reader over `inner`.
    pub fn new(inner: R) -> Reader<R> {
        Reader {
            inner,
            offset: 0,
            left: 0,
            pad: 0,
        }
    }

    /// Bytes read so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    async fn block(&mut self) -> Result<Option<[u8; BLOCK]>, TarError> {
        let mut b = [0u8; BLOCK];
        let mut got = 0;
        while got < BLOCK {
            let n = self.inner.read(&mut b[got..]).await.map_err(io_err)?;
            if n == 0 {
                if got == 0 {
                    return Ok(None);
                }
                return Err(TarError::Truncated(if self.offset == 0 {
                    "inside its first header (is it a tar archive at all?)".to_owned()
                } else {
                    format!("inside the header at byte {}", self.offset)
                }));
            }
            got += n;
        }
        self.offset += BLOCK as u64;
        Ok(Some(b))
    }

    async fn skip(&mut self, mut n: u64, what: &str) -> Result<(), TarError> {
        let mut buf = [0u8; BLOCK];
        while n > 0 {
            let want = usize::try_from(n).unwrap_or(BLOCK).min(BLOCK);
            let k = self.inner.read(&mut buf[..want]).await.map_err(io_err)?;
            if k == 0 {
                return Err(TarError::Truncated(format!("inside {what}")));
            }
            n -= k as u64;
            self.offset += k as u64;
        }
        Ok(())
    }

    async fn meta(&mut self, size: u64, at: u64) -> Result<Vec<u8>, TarError> {
        if size > MAX_META {
            return Err(TarError::Meta(at));
        }
        let mut v = vec![0u8; size as usize];
        self.inner.read_exact(&mut v).await.map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                TarError::Truncated(format!("inside the extended header at byte {at}"))
            } else {
                TarError::Io(e)
            }
        })?;
        self.offset += size;
        self.skip(padding(size) as u64, "the padding of an extended header")
            .await?;
        Ok(v)
    }

    /// The next entry, or `None` at the end-of-archive marker. An archive
    /// that stops without the marker is truncated.
    pub async fn next(&mut self) -> Result<Option<Entry>, TarError> {
        if self.left > 0 {
            let left = self.left;
            self.skip(left, "an entry's content").await?;
            self.left = 0;
        }
        let pad = std::mem::take(&mut self.pad);
        self.skip(pad as u64, "an entry's padding").await?;
        let mut long_path: Option<String> = None;
        let mut pax_size: Option<u64> = None;
        loop {
            let at = self.offset;
            let Some(h) = self.block().await? else {
                return Err(TarError::Truncated(
                    "without the end-of-archive marker (two zero blocks)".into(),
                ));
            };
            if h.iter().all(|&b| b == 0) {
                // The marker is two zero blocks, and every writer writes both:
                // a stream cut inside it is as truncated as one cut anywhere.
                return match self.block().await {
                    Ok(None) | Err(TarError::Truncated(_)) => Err(TarError::Truncated(
                        "inside the end-of-archive marker".into(),
                    )),
                    Ok(Some(b)) if b.iter().all(|&b| b == 0) => Ok(None),
                    Ok(Some(_)) => Err(TarError::Field {
                        offset: at,
                        field: "end-of-archive marker (a zero block followed by data)",
                    }),
                    Err(e) => Err(e),
                };
            }
            if !checksum_ok(&h) {
                return Err(TarError::Checksum(at));
            }
            let size = parse_octal(&h[124..136]).ok_or(TarError::Field {
                offset: at,
                field: "size",
            })?;
            let mut path = text(&h[..100]);
            if &h[257..262] == b"ustar" {
                let prefix = text(&h[345..500]);
                if !prefix.is_empty() {
                    path = format!("{prefix}/{path}");
                }
            }
            let flag = h[156];
            match flag {
                b'x' => {
                    let recs = self.meta(size, at).await?;
                    apply_pax(&recs, &mut long_path, &mut pax_size).ok_or(TarError::Field {
                        offset: at,
                        field: "PAX record",
                    })?;
                    continue;
                }
                b'g' => {
                    // Global records (e.g. a comment) say nothing about paths or sizes here.
                    self.meta(size, at).await?;
                    continue;
                }
                b'L' => {
                    let name = self.meta(size, at).await?;
                    long_path = Some(text(&name));
                    continue;
                }
                _ => {}
            }
            let path = long_path.take().unwrap_or(path);
            let size = pax_size.take().unwrap_or(size);
            let kind = match flag {
                b'0' | 0 | b'7' => Kind::File,
                b'5' => Kind::Dir,
                other => {
                    let kind = match other {
                        b'1' => "hard link",
                        b'2' => "symbolic link",
                        b'3' | b'4' => "device",
                        b'6' => "FIFO",
                        b'K' => "GNU long link",
                        b'S' => "sparse file",
                        _ => "entry of an unknown type",
                    };
                    return Err(TarError::Kind { path, kind });
                }
            };
            self.left = if kind == Kind::Dir { 0 } else { size };
            self.pad = if kind == Kind::Dir { 0 } else { padding(size) };
            if kind == Kind::Dir && size > 0 {
                // A directory with content: skip it like GNU tar does.
                self.skip(size + padding(size) as u64, "a directory entry")
                    .await?;
            }
            return Ok(Some(Entry { path, size, kind }));
        }
    }

    /// After the end-of-archive marker: reads what follows (GNU tar pads to
    /// a 10 KiB record), so the sender is not cut off mid-upload, refusing
    /// more than `limit` bytes of it.
    pub async fn drain(&mut self, limit: u64) -> Result<(), TarError> {
        let mut buf = [0u8; BLOCK];
        let mut n = 0u64;
        loop {
            let k = self.inner.read(&mut buf).await.map_err(TarError::Io)?;
            if k == 0 {
                return Ok(());
            }
            n += k as u64;
            if n > limit {
                return Err(TarError::Field {
                    offset: self.offset,
                    field:
                        "trailer (more than the record padding follows the end-of-archive marker)",
                });
            }
        }
    }

    /// Reads up to `buf.len()` bytes of the current entry's content; 0 at
    /// its end. A stream that ends before the entry does is truncated.
    pub async fn read_content(&mut self, buf: &mut [u8], path: &str) -> Result<usize, TarError> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = usize::try_from(self.left)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = self
            .inner
            .read(&mut buf[..want])
            .await
            .map_err(TarError::Io)?;
        if n == 0 {
            return Err(TarError::Truncated(format!(
                "inside `{path}`, {} bytes short of its declared size",
                self.left
            )));
        }
        self.left -= n as u64;
        self.offset += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    async fn entries(bytes: &[u8]) -> Result<Vec<(Entry, Vec<u8>)>, TarError> {
        let mut r = Reader::new(bytes);
        let mut out = Vec::new();
        while let Some(e) = r.next().await? {
            let mut content = Vec::new();
            let mut buf = [0u8; 100];
            loop {
                let n = r.read_content(&mut buf, &e.path).await?;
                if n == 0 {
                    break;
                }
                content.extend_from_slice(&buf[..n]);
            }
            out.push((e, content));
        }
        Ok(out)
    }

    fn file(name: &str, content: &[u8]) -> Vec<u8> {
        let mut v = header(name, content.len() as u64, Kind::File);
        v.extend_from_slice(content);
        v.resize(v.len() + padding(content.len() as u64), 0);
        v
    }

    #[tokio::test]
    async fn writes_what_it_reads() {
        let mut t = header("blobs/", 0, Kind::Dir);
        t.extend(file("oci-layout", b"{}"));
        t.extend(file("blobs/x", &[7u8; 1000]));
        t.extend_from_slice(&trailer());
        let e = entries(&t).await.unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!((e[0].0.path.as_str(), e[0].0.kind), ("blobs/", Kind::Dir));
        assert_eq!(e[1].1, b"{}");
        assert_eq!(e[2].1, vec![7u8; 1000]);
    }

    #[tokio::test]
    async fn system_tar_reads_what_it_writes_and_it_reads_system_tar() {
        // GNU tar as the independent reader and writer.
        let dir = tempfile::tempdir().unwrap();
        let mut t = file("a.txt", b"hello");
        t.extend_from_slice(&trailer());
        std::fs::write(dir.path().join("x.tar"), &t).unwrap();
        let out = std::process::Command::new("tar")
            .arg("-tvf")
            .arg(dir.path().join("x.tar"))
            .output();
        let Ok(out) = out else { return };
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("a.txt"));
        std::fs::write(dir.path().join("long-name-".repeat(15)), b"abc").unwrap();
        let out = std::process::Command::new("tar")
            .args(["--format=pax", "-cf", "y.tar", &"long-name-".repeat(15)])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success());
        let e = entries(&std::fs::read(dir.path().join("y.tar")).unwrap())
            .await
            .unwrap();
        assert_eq!(e[0].0.path, "long-name-".repeat(15));
        assert_eq!(e[0].1, b"abc");
    }

    #[tokio::test]
    async fn big_sizes_go_in_a_pax_record() {
        let h = header("blobs/big", 20 << 30, Kind::File);
        assert_eq!(h.len(), BLOCK * 3);
        let mut r = Reader::new(h.as_slice());
        let e = r.next().await.unwrap().unwrap();
        assert_eq!((e.path.as_str(), e.size), ("blobs/big", 20 << 30));
        // The content is not there: reading it reports the truncation.
        let mut buf = [0u8; 16];
        let err = r.read_content(&mut buf, &e.path).await.unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
    }

    #[tokio::test]
    async fn refuses_links_bad_checksums_and_missing_end() {
        let mut link = ustar_header("evil", 0, b'2');
        link[157..167].copy_from_slice(b"/etc/passw");
        // Recompute the checksum over the changed link name.
        link[148..156].fill(b' ');
        let sum: u32 = link.iter().map(|&b| u32::from(b)).sum();
        octal(&mut link[148..155], u64::from(sum));
        let err = entries(&link).await.unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        let mut bad = file("a", b"x");
        bad[0] = b'b';
        assert!(matches!(entries(&bad).await, Err(TarError::Checksum(0))));
        let err = entries(&file("a", b"x")).await.unwrap_err();
        assert!(err.to_string().contains("end-of-archive"), "{err}");
        let mut cut = file("a", b"x");
        cut.extend_from_slice(&[0u8; BLOCK * 2 - 1]);
        let err = entries(&cut).await.unwrap_err();
        assert!(err.to_string().contains("end-of-archive marker"), "{err}");
        let whole = file("a", &[1u8; 600]);
        let err = entries(&whole[..700]).await.unwrap_err();
        assert!(err.to_string().contains("inside `a`"), "{err}");
    }

    #[test]
    fn pax_record_lengths_count_themselves() {
        for v in ["1", "123456789", &"9".repeat(95)] {
            let r = pax_record("size", v);
            let len: usize = std::str::from_utf8(&r)
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(len, r.len());
        }
    }
}
