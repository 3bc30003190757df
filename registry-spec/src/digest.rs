//! Content digests (`sha256:<hex>`): the only way a blob is named, validated before it becomes a path.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A digest algorithm llmpm accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// SHA-256: 64 lower-case hex digits. What llmpm writes.
    Sha256,
    /// SHA-512: 128 lower-case hex digits. Accepted where the OCI spec allows it.
    Sha512,
}

impl Algorithm {
    /// The name as it appears before the `:`.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// How many hex digits an encoded digest of this algorithm has.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

/// A validated content digest such as `sha256:2b1f…` (64 lower-case hex digits).
///
/// Parsing accepts `algo:hex` and, like Ollama's blob paths, `algo-hex`; printing
/// always gives `algo:hex`. The hex part only ever holds `[0-9a-f]`, so a digest
/// can be joined onto a path safely.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

/// Why a string is not a digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// No `:` separates the algorithm from the encoded part.
    #[error("digest `{0}` is not of the form `sha256:<64 hex digits>`")]
    Shape(String),
    /// The algorithm is not one llmpm supports.
    #[error("digest `{0}` uses an unsupported algorithm: use `sha256` (or `sha512`)")]
    Algorithm(String),
    /// The encoded part has the wrong length.
    #[error("digest `{digest}` has {got} hex digits, {algorithm} needs {want}")]
    Length {
        /// The input.
        digest: String,
        /// The algorithm's name.
        algorithm: &'static str,
        /// Digits found.
        got: usize,
        /// Digits required.
        want: usize,
    },
    /// The encoded part holds something other than lower-case hex digits.
    #[error("digest `{0}` may only hold lower-case hex digits `0-9a-f` after the algorithm")]
    Hex(String),
}

impl Digest {
    /// Builds a SHA-256 digest from its 32 raw bytes.
    pub fn sha256_from_bytes(bytes: [u8; 32]) -> Digest {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut hex = String::with_capacity(64);
        for b in bytes {
            hex.push(char::from(HEX[usize::from(b >> 4)]));
            hex.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        Digest {
            algorithm: Algorithm::Sha256,
            hex,
        }
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The encoded part: lower-case hex only.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The first 12 hex digits: the short id `list` and progress lines show.
    pub fn short(&self) -> &str {
        &self.hex[..12]
    }

    /// The `algo-hex` form Ollama uses in file names and progress messages.
    pub fn dashed(&self) -> String {
        format!("{}-{}", self.algorithm.as_str(), self.hex)
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (algo, hex) = s
            .split_once(':')
            .or_else(|| s.split_once('-'))
            .ok_or_else(|| DigestError::Shape(s.to_owned()))?;
        let algorithm = match algo {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            _ => return Err(DigestError::Algorithm(s.to_owned())),
        };
        if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(DigestError::Hex(s.to_owned()));
        }
        if hex.len() != algorithm.hex_len() {
            return Err(DigestError::Length {
                digest: s.to_owned(),
                algorithm: algorithm.as_str(),
                got: hex.len(),
                want: algorithm.hex_len(),
            });
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_owned(),
        })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.as_str(), self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const H: &str = "2b1f0c9e8d7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c";

    #[test]
    fn parses_and_prints() {
        let d: Digest = format!("sha256:{H}").parse().unwrap();
        assert_eq!(d.to_string(), format!("sha256:{H}"));
        assert_eq!(d.short(), &H[..12]);
        assert_eq!(d.dashed(), format!("sha256-{H}"));
        let dashed: Digest = format!("sha256-{H}").parse().unwrap();
        assert_eq!(dashed, d);
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
    }

    #[test]
    fn rejects_hostile_and_malformed() {
        for bad in [
            "sha256:../x",
            "sha256:../../../../etc/passwd",
            "sha256:abc",
            &format!("sha256:{H}00"),
            &format!("sha256:{}", H.to_uppercase()),
            &format!("md5:{H}"),
            &format!("sha256:{}/", &H[..63]),
            "",
            "sha256",
            "sha256:",
            &format!("sha512:{H}"),
        ] {
            assert!(bad.parse::<Digest>().is_err(), "{bad} parsed");
        }
        let e = "sha256:abc".parse::<Digest>().unwrap_err().to_string();
        assert!(e.contains("3 hex digits") && e.contains("64"), "{e}");
        assert!(serde_json::from_str::<Digest>("\"sha256:../x\"").is_err());
    }

    #[test]
    fn from_bytes_is_hex() {
        let d = Digest::sha256_from_bytes([0xab; 32]);
        assert_eq!(d.hex(), "ab".repeat(32));
    }
}
