//! The snapshot file: a versioned, checksummed copy of every key of a store at one revision.
//!
//! # Format, version 1
//!
//! All integers are little-endian. The file is read whole (kuboard's data is small) and checked
//! before anything is decoded or restored.
//!
//! ```text
//! magic        8 bytes   "KBDSNAP\0"
//! version      u16       1
//! header_len   u32       at most 64 KiB
//! header       JSON      SnapshotHeader (backend, source, revision, created_at, key_count, ...)
//! key_count    u64       the number of records that follow (equal to header.key_count)
//! records      key_count times:
//!                u32 key_len, key bytes (1 .. 2 MiB)
//!                u32 value_len, value bytes (0 .. 2 MiB)
//!                i64 create_revision, i64 mod_revision, i64 version, i64 lease
//! checksum     32 bytes  SHA-256 of every byte before it
//! ```
//!
//! Keys are relative to the store (for an external etcd: without the prefix) and strictly
//! ascending. A reader refuses an unknown magic, a newer version, a checksum mismatch, bounds
//! exceeded, unordered keys and trailing bytes, so a truncated or altered file is never restored.
//!
//! The file holds every user's password hash and the hashes of live session tokens: it is written
//! with mode 0600 and must be kept like a secret.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, ensure, Context};
use kuboard_storage::KeyValue;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const MAGIC: [u8; 8] = *b"KBDSNAP\0";
pub const FORMAT_VERSION: u16 = 1;
const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Larger than etcd's default request limit (1.5 MiB), so every storable key and value fits.
const MAX_FIELD_BYTES: usize = 2 * 1024 * 1024;
/// A bound on what is read into memory.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024 * 1024;
const CHECKSUM_BYTES: usize = 32;
/// Fixed bytes of one record besides its key and value.
const RECORD_FIXED_BYTES: usize = 4 + 4 + 4 * 8;

/// What the snapshot is of. Stored as JSON so that later versions can add fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotHeader {
    /// `raft` or `etcd`: the backend the keys were read from.
    pub backend: String,
    /// For etcd the key prefix, for the embedded store `embedded`.
    pub source: String,
    /// The revision every key was read at.
    pub revision: i64,
    /// Seconds since the Unix epoch when the snapshot was taken.
    pub created_at: u64,
    pub key_count: u64,
    /// The version of the kuboard that wrote the file.
    pub kuboard_version: String,
}

/// A decoded snapshot: its header and every key in ascending order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub header: SnapshotHeader,
    pub entries: Vec<KeyValue>,
}

impl Snapshot {
    /// The file bytes of this snapshot.
    pub fn encode(&self) -> anyhow::Result<Vec<u8>> {
        let header = serde_json::to_vec(&self.header).context("encode the snapshot header")?;
        ensure!(header.len() <= MAX_HEADER_BYTES, "the snapshot header is too large");
        let mut bytes = Vec::with_capacity(
            64 + header.len()
                + self
                    .entries
                    .iter()
                    .map(|kv| RECORD_FIXED_BYTES + kv.key.len() + kv.value.len())
                    .sum::<usize>(),
        );
        bytes.extend_from_slice(&MAGIC);
        bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        bytes.extend_from_slice(&u32::try_from(header.len()).context("header length")?.to_le_bytes());
        bytes.extend_from_slice(&header);
        bytes.extend_from_slice(&(self.entries.len() as u64).to_le_bytes());
        for kv in &self.entries {
            ensure!(
                kv.key.len() <= MAX_FIELD_BYTES && kv.value.len() <= MAX_FIELD_BYTES,
                "key {} is too large for a snapshot",
                String::from_utf8_lossy(&kv.key)
            );
            bytes.extend_from_slice(&(kv.key.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&kv.key);
            bytes.extend_from_slice(&(kv.value.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&kv.value);
            for number in [kv.create_revision, kv.mod_revision, kv.version, kv.lease] {
                bytes.extend_from_slice(&number.to_le_bytes());
            }
        }
        let checksum = Sha256::digest(&bytes);
        bytes.extend_from_slice(&checksum);
        Ok(bytes)
    }

    /// Checks and decodes file bytes. Every failure says what is wrong with the file.
    pub fn decode(bytes: &[u8]) -> anyhow::Result<Snapshot> {
        ensure!(
            bytes.len() >= MAGIC.len() && bytes[..MAGIC.len()] == MAGIC,
            "not a kuboard snapshot file (the magic bytes do not match)"
        );
        ensure!(
            bytes.len() >= MAGIC.len() + 2 + 4 + 8 + CHECKSUM_BYTES,
            "the snapshot file is truncated ({} bytes)",
            bytes.len()
        );
        let (body, checksum) = bytes.split_at(bytes.len() - CHECKSUM_BYTES);
        ensure!(
            Sha256::digest(body).as_slice() == checksum,
            "the snapshot file is damaged or truncated (its SHA-256 checksum does not match)"
        );

        let mut reader = Reader {
            bytes: body,
            offset: MAGIC.len(),
        };
        let version = u16::from_le_bytes(reader.array()?);
        ensure!(
            version == FORMAT_VERSION,
            "snapshot format version {version} is not supported by this kuboard (it reads version {FORMAT_VERSION})"
        );
        let header_len = u32::from_le_bytes(reader.array()?) as usize;
        ensure!(
            header_len <= MAX_HEADER_BYTES,
            "the snapshot header is too large ({header_len} bytes)"
        );
        let header: SnapshotHeader =
            serde_json::from_slice(reader.take(header_len)?).context("the snapshot header is not valid")?;
        let count = u64::from_le_bytes(reader.array()?);
        ensure!(
            count == header.key_count,
            "the snapshot holds {count} records but its header says {}",
            header.key_count
        );
        // Each record takes at least its fixed bytes plus a one-byte key, which bounds the count
        // before any allocation depends on it.
        ensure!(
            count <= (body.len() / (RECORD_FIXED_BYTES + 1)) as u64,
            "the snapshot record count {count} does not fit the file size"
        );
        let mut entries: Vec<KeyValue> = Vec::with_capacity(count as usize);
        for index in 0..count {
            let key_len = u32::from_le_bytes(reader.array()?) as usize;
            ensure!(
                (1..=MAX_FIELD_BYTES).contains(&key_len),
                "record {index}: key length {key_len} is out of bounds"
            );
            let key = reader.take(key_len)?.to_vec();
            let value_len = u32::from_le_bytes(reader.array()?) as usize;
            ensure!(
                value_len <= MAX_FIELD_BYTES,
                "record {index}: value length {value_len} is out of bounds"
            );
            let value = reader.take(value_len)?.to_vec();
            let create_revision = i64::from_le_bytes(reader.array()?);
            let mod_revision = i64::from_le_bytes(reader.array()?);
            let version = i64::from_le_bytes(reader.array()?);
            let lease = i64::from_le_bytes(reader.array()?);
            if let Some(previous) = entries.last() {
                ensure!(previous.key < key, "record {index}: keys are not in ascending order");
            }
            entries.push(KeyValue {
                key,
                value,
                create_revision,
                mod_revision,
                version,
                lease,
            });
        }
        ensure!(
            reader.offset == body.len(),
            "the snapshot file has {} unexpected bytes after its records",
            body.len() - reader.offset
        );
        Ok(Snapshot { header, entries })
    }

    /// Reads and checks a snapshot file.
    pub fn read_file(path: &Path) -> anyhow::Result<Snapshot> {
        let metadata = std::fs::metadata(path).with_context(|| format!("read the snapshot file {}", path.display()))?;
        if metadata.len() > MAX_FILE_BYTES {
            bail!(
                "the snapshot file {} is larger than {MAX_FILE_BYTES} bytes",
                path.display()
            );
        }
        let bytes = std::fs::read(path).with_context(|| format!("read the snapshot file {}", path.display()))?;
        Snapshot::decode(&bytes).with_context(|| format!("check the snapshot file {}", path.display()))
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, fsynced, renamed
/// over `path`, and the directory fsynced, so that a crash leaves either the old file or the new
/// one. The file is created with mode 0600 (it holds password hashes).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;

    let file_name = path
        .file_name()
        .with_context(|| format!("{} does not name a file", path.display()))?;
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let temporary = directory.join(format!(".{}.tmp-{}", file_name.to_string_lossy(), std::process::id()));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)
            .with_context(|| format!("create {}", temporary.display()))?;
        file.write_all(bytes)
            .with_context(|| format!("write {}", temporary.display()))?;
        file.sync_all()
            .with_context(|| format!("fsync {}", temporary.display()))?;
        drop(file);
        std::fs::rename(&temporary, path)
            .with_context(|| format!("rename {} to {}", temporary.display(), path.display()))?;
        std::fs::File::open(&directory)
            .and_then(|directory| directory.sync_all())
            .with_context(|| format!("fsync the directory {}", directory.display()))
    })();
    if result.is_err() {
        // Best effort: the temporary file is ours and useless after a failure.
        let _ = std::fs::remove_file(&temporary);
    }
    result
}

/// Reads fixed-size fields from the checked bytes, failing on truncation instead of panicking.
struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, length: usize) -> anyhow::Result<&'a [u8]> {
        let end = self
            .offset
            .checked_add(length)
            .filter(|end| *end <= self.bytes.len())
            .context("the snapshot file ends in the middle of a record")?;
        let slice = &self.bytes[self.offset..end];
        self.offset = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> anyhow::Result<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("take returned exactly N bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Snapshot {
        let entries = vec![
            KeyValue {
                key: b"sessions/ab".to_vec(),
                value: b"{}".to_vec(),
                create_revision: 4,
                mod_revision: 4,
                version: 1,
                lease: 77,
            },
            KeyValue {
                key: b"users/admin".to_vec(),
                value: vec![0, 1, 2, 255],
                create_revision: 2,
                mod_revision: 9,
                version: 3,
                lease: 0,
            },
        ];
        Snapshot {
            header: SnapshotHeader {
                backend: "raft".into(),
                source: "embedded".into(),
                revision: 9,
                created_at: 1_700_000_000,
                key_count: entries.len() as u64,
                kuboard_version: "0.1.0".into(),
            },
            entries,
        }
    }

    #[test]
    fn round_trip() {
        let snapshot = sample();
        let bytes = snapshot.encode().expect("encode");
        assert_eq!(Snapshot::decode(&bytes).expect("decode"), snapshot);
        let empty = Snapshot {
            header: SnapshotHeader {
                key_count: 0,
                ..sample().header
            },
            entries: Vec::new(),
        };
        assert_eq!(
            Snapshot::decode(&empty.encode().expect("encode")).expect("decode"),
            empty
        );
    }

    fn check_refused(bytes: &[u8], expected: &str) {
        let error = format!("{:#}", Snapshot::decode(bytes).expect_err("damaged file is refused"));
        assert!(error.contains(expected), "expected {expected:?} in {error:?}");
    }

    #[test]
    fn damaged_files_are_refused() {
        let bytes = sample().encode().expect("encode");
        check_refused(b"", "not a kuboard snapshot");
        check_refused(b"hello world, this is not a snapshot at all", "not a kuboard snapshot");
        check_refused(&bytes[..bytes.len() - 1], "checksum does not match");
        check_refused(&bytes[..20], "truncated");
        for position in [10, 30, bytes.len() / 2, bytes.len() - 1] {
            let mut flipped = bytes.clone();
            flipped[position] ^= 0x40;
            check_refused(&flipped, "checksum does not match");
        }
    }

    /// A file whose checksum is right but whose content breaks the rules (as a buggy or hostile
    /// writer could produce) is refused by the structural checks.
    #[test]
    fn well_checksummed_but_malformed_files_are_refused() {
        let reseal = |mut body: Vec<u8>| {
            let checksum = Sha256::digest(&body);
            body.extend_from_slice(&checksum);
            body
        };
        let bytes = sample().encode().expect("encode");
        let body = bytes[..bytes.len() - CHECKSUM_BYTES].to_vec();

        let mut newer = body.clone();
        newer[8] = 2;
        check_refused(&reseal(newer), "format version 2 is not supported");

        let mut trailing = body.clone();
        trailing.push(0);
        check_refused(&reseal(trailing), "unexpected bytes");

        let mut unordered = sample();
        unordered.entries.reverse();
        check_refused(&unordered.encode().expect("encode"), "not in ascending order");

        let mut miscounted = sample();
        miscounted.header.key_count = 5;
        check_refused(&miscounted.encode().expect("encode"), "header says 5");
    }

    #[test]
    fn atomic_write_replaces_the_file_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt;

        let directory = tempfile::tempdir().expect("temporary directory");
        let path = directory.path().join("kuboard.snap");
        std::fs::write(&path, b"old").expect("write the old file");
        write_atomically(&path, b"new contents").expect("write atomically");
        assert_eq!(std::fs::read(&path).expect("read back"), b"new contents");
        let mode = std::fs::metadata(&path).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let leftovers: Vec<_> = std::fs::read_dir(directory.path())
            .expect("list directory")
            .filter_map(Result::ok)
            .map(|entry| entry.file_name())
            .collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("kuboard.snap")]);
    }
}
