//! The sled index: reference → manifest digest, and per-blob size, reference count and last use.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use llmpm_spec::{Digest, Reference};
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use super::{now_secs, StoreError};

/// What a reference points at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RefEntry {
    pub manifest: Digest,
    /// Nanoseconds since the epoch of the last change.
    pub modified_ns: u64,
    /// The name as first written, when its case differs from the key's
    /// (`hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M`); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl RefEntry {
    /// A record for `manifest` under `name` (its case kept when it differs from the key).
    pub fn new(manifest: Digest, name: &Reference) -> RefEntry {
        let full = name.untagged_digest().to_string();
        let ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        RefEntry {
            manifest,
            modified_ns: ns,
            name: (full != name.key()).then_some(full),
        }
    }

    pub fn modified(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.modified_ns)
    }
}

/// What the index knows of a blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BlobEntry {
    pub size: u64,
    /// How many references' manifests include it (a manifest counts once per blob).
    pub refs: u64,
    /// Seconds since the epoch when it was last referenced.
    pub last_used: u64,
}

pub(crate) struct Index {
    db: sled::Db,
    refs: sled::Tree,
    blobs: sled::Tree,
    journal: sled::Tree,
    /// `<subject digest> <artifact digest>` → [`ReferrerEntry`]: signatures kept for a manifest.
    referrers: sled::Tree,
}

fn decode<T: for<'de> Deserialize<'de>>(key: &[u8], v: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(v)
        .map_err(|_| StoreError::Record(String::from_utf8_lossy(key).into_owned()))
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    // Plain structs of strings and integers always serialize.
    serde_json::to_vec(v).unwrap_or_default()
}

type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

/// Counts each blob of `add` up by one (creating its record), inside a transaction.
fn count_up(
    blobs: &sled::transaction::TransactionalTree,
    add: &BTreeMap<Digest, u64>,
    now: u64,
) -> TxResult<()> {
    for (d, size) in add {
        let k = d.to_string();
        let mut e = match blobs.get(k.as_bytes())? {
            Some(v) => serde_json::from_slice::<BlobEntry>(&v)
                .map_err(|_| ConflictableTransactionError::Abort(StoreError::Record(k.clone())))?,
            None => BlobEntry {
                size: *size,
                refs: 0,
                last_used: now,
            },
        };
        e.refs += 1;
        e.last_used = now;
        blobs.insert(k.as_bytes(), encode(&e))?;
    }
    Ok(())
}

/// Counts each blob of `remove` down by one; returns those that reached zero (records removed).
fn count_down(
    blobs: &sled::transaction::TransactionalTree,
    remove: &BTreeMap<Digest, u64>,
) -> TxResult<Vec<Digest>> {
    let mut freed = Vec::new();
    for d in remove.keys() {
        let k = d.to_string();
        let Some(v) = blobs.get(k.as_bytes())? else {
            freed.push(d.clone());
            continue;
        };
        let mut e: BlobEntry = serde_json::from_slice(&v)
            .map_err(|_| ConflictableTransactionError::Abort(StoreError::Record(k.clone())))?;
        e.refs = e.refs.saturating_sub(1);
        if e.refs == 0 {
            blobs.remove(k.as_bytes())?;
            freed.push(d.clone());
        } else {
            blobs.insert(k.as_bytes(), encode(&e))?;
        }
    }
    Ok(freed)
}

fn tx_result<T>(res: Result<T, TransactionError<StoreError>>) -> Result<T, StoreError> {
    match res {
        Ok(v) => Ok(v),
        Err(TransactionError::Abort(e)) => Err(e),
        Err(TransactionError::Storage(e)) => Err(StoreError::Db(e)),
    }
}

/// sled's page cache (see [`Index::open`]).
const INDEX_CACHE_BYTES: u64 = 8 << 20;

impl Index {
    pub fn open(path: &Path) -> Result<Index, StoreError> {
        // sled's page cache defaults to 1 GiB and grows toward it as the
        // index does: the soak's daemon RSS rose with the store (46 to 198
        // MB at 2,700 models). The index is small and its hot pages few.
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(INDEX_CACHE_BYTES)
            .open()
            .map_err(|e| match &e {
                sled::Error::Io(io) if io.to_string().contains("lock") => {
                    StoreError::Locked(path.to_owned())
                }
                _ => StoreError::Db(e),
            })?;
        let refs = db.open_tree("refs")?;
        let blobs = db.open_tree("blobs")?;
        let journal = db.open_tree("journal")?;
        let referrers = db.open_tree("referrers")?;
        Ok(Index {
            db,
            refs,
            blobs,
            journal,
            referrers,
        })
    }

    pub fn journal(&self) -> &sled::Tree {
        &self.journal
    }

    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    pub fn get_ref(&self, key: &str) -> Result<Option<RefEntry>, StoreError> {
        self.refs
            .get(key.as_bytes())?
            .map(|v| decode(key.as_bytes(), &v))
            .transpose()
    }

    pub fn set_ref_only(&self, key: &str, entry: &RefEntry) -> Result<(), StoreError> {
        self.refs.insert(key.as_bytes(), encode(entry))?;
        self.db.flush()?;
        Ok(())
    }

    /// Every reference: its name as written (the key when the record holds
    /// none) and its record.
    pub fn refs(&self) -> impl Iterator<Item = Result<(String, RefEntry), StoreError>> + '_ {
        self.refs.iter().map(|item| {
            let (k, v) = item?;
            let entry: RefEntry = decode(&k, &v)?;
            let name = match &entry.name {
                Some(n) => n.clone(),
                None => String::from_utf8_lossy(&k).into_owned(),
            };
            Ok((name, entry))
        })
    }

    /// In one transaction: set or remove `key`, count `add` up and `remove`
    /// down. Returns the blobs whose count reached zero (their records removed).
    pub fn swap_ref(
        &self,
        key: &str,
        new: Option<RefEntry>,
        add: &BTreeMap<Digest, u64>,
        remove: &BTreeMap<Digest, u64>,
    ) -> Result<Vec<Digest>, StoreError> {
        let now = now_secs();
        let res = (&self.refs, &self.blobs).transaction(|(refs, blobs)| {
            match &new {
                Some(e) => {
                    refs.insert(key.as_bytes(), encode(e))?;
                }
                None => {
                    refs.remove(key.as_bytes())?;
                }
            }
            count_up(blobs, add, now)?;
            count_down(blobs, remove)
        });
        let freed = tx_result(res)?;
        // Durable before the caller answers the client.
        self.db.flush()?;
        Ok(freed)
    }

    pub fn referenced_blobs(&self) -> Result<HashSet<Digest>, StoreError> {
        let mut out = HashSet::new();
        for item in self.blobs.iter() {
            let (k, v) = item?;
            let e: BlobEntry = decode(&k, &v)?;
            if e.refs > 0 {
                if let Ok(d) = std::str::from_utf8(&k).unwrap_or("").parse::<Digest>() {
                    out.insert(d);
                }
            }
        }
        Ok(out)
    }

    pub fn forget_blob(&self, d: &Digest) -> Result<(), StoreError> {
        let k = d.to_string();
        if let Some(v) = self.blobs.get(k.as_bytes())? {
            let e: BlobEntry = decode(k.as_bytes(), &v)?;
            if e.refs == 0 {
                self.blobs.remove(k.as_bytes())?;
            }
        }
        Ok(())
    }

    /// Sets the count of `d` to `want.refs` if it differs; true if it did.
    pub fn fix_blob_count(&self, d: &Digest, want: &BlobEntry) -> Result<bool, StoreError> {
        let k = d.to_string();
        let cur: Option<BlobEntry> = self
            .blobs
            .get(k.as_bytes())?
            .map(|v| decode(k.as_bytes(), &v))
            .transpose()?;
        if cur.as_ref().map(|c| c.refs) == Some(want.refs) {
            return Ok(false);
        }
        let mut e = cur.unwrap_or_else(|| want.clone());
        e.refs = want.refs;
        self.blobs.insert(k.as_bytes(), encode(&e))?;
        self.db.flush()?;
        Ok(true)
    }

    /// Zeroes the counts of blobs no manifest uses; returns how many changed.
    pub fn zero_blobs_not_in(
        &self,
        counts: &BTreeMap<Digest, (u64, u64)>,
    ) -> Result<u64, StoreError> {
        let mut fixed = 0;
        for item in self.blobs.iter() {
            let (k, v) = item?;
            let e: BlobEntry = decode(&k, &v)?;
            let d = std::str::from_utf8(&k)
                .ok()
                .and_then(|s| s.parse::<Digest>().ok());
            let used = d.as_ref().is_some_and(|d| counts.contains_key(d));
            if !used && e.refs > 0 {
                self.blobs.remove(&k)?;
                fixed += 1;
            }
        }
        self.db.flush()?;
        Ok(fixed)
    }
}

/// A referrer (an artifact whose `subject` is a stored manifest) as the index records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ReferrerEntry {
    pub artifact_type: String,
    /// Seconds since the epoch when it was stored.
    pub stored: u64,
}

impl Index {
    /// The referrers of `subject`: (artifact digest, entry).
    pub fn referrers_of(
        &self,
        subject: &Digest,
    ) -> Result<Vec<(Digest, ReferrerEntry)>, StoreError> {
        let prefix = format!("{subject} ");
        let mut out = Vec::new();
        for item in self.referrers.scan_prefix(prefix.as_bytes()) {
            let (k, v) = item?;
            let entry: ReferrerEntry = decode(&k, &v)?;
            let key = String::from_utf8_lossy(&k).into_owned();
            if let Some(d) = key.strip_prefix(&prefix).and_then(|d| d.parse().ok()) {
                out.push((d, entry));
            }
        }
        Ok(out)
    }

    /// Every referrer key's subject and artifact.
    pub fn all_referrers(&self) -> Result<Vec<(Digest, Digest)>, StoreError> {
        let mut out = Vec::new();
        for item in self.referrers.iter() {
            let (k, _) = item?;
            let key = String::from_utf8_lossy(&k).into_owned();
            if let Some((s, a)) = key.split_once(' ') {
                if let (Ok(s), Ok(a)) = (s.parse(), a.parse()) {
                    out.push((s, a));
                }
            }
        }
        Ok(out)
    }

    /// Records a referrer and counts its blobs up, in one transaction; false
    /// (and nothing changed) when it was recorded already.
    pub fn add_referrer(
        &self,
        subject: &Digest,
        artifact: &Digest,
        entry: &ReferrerEntry,
        blobs_of: &BTreeMap<Digest, u64>,
    ) -> Result<bool, StoreError> {
        let key = format!("{subject} {artifact}");
        let now = now_secs();
        let res = (&self.referrers, &self.blobs).transaction(|(refs, blobs)| {
            if refs.get(key.as_bytes())?.is_some() {
                return Ok(false);
            }
            refs.insert(key.as_bytes(), encode(entry))?;
            count_up(blobs, blobs_of, now)?;
            Ok(true)
        });
        let added = tx_result(res)?;
        self.db.flush()?;
        Ok(added)
    }

    /// Forgets a referrer and counts its blobs down; returns those freed.
    pub fn remove_referrer(
        &self,
        subject: &Digest,
        artifact: &Digest,
        blobs_of: &BTreeMap<Digest, u64>,
    ) -> Result<Vec<Digest>, StoreError> {
        let key = format!("{subject} {artifact}");
        let res = (&self.referrers, &self.blobs).transaction(|(refs, blobs)| {
            if refs.remove(key.as_bytes())?.is_none() {
                return Ok(Vec::new());
            }
            count_down(blobs, blobs_of)
        });
        let freed = tx_result(res)?;
        self.db.flush()?;
        Ok(freed)
    }
}
