//! The check of the WAL on open, before raft-log replays it ([`repair_or_refuse`]).
//!
//! Every record that was acknowledged had been fdatasync'd, so a crash can only have torn the
//! records written after the last sync: the tail of the last chunk. Such a tail is cut off with a
//! WARN line. Damage anywhere else (in an earlier chunk, before an intact record, or a complete
//! record failing its checksum) lies under acknowledged records: the open is refused with an
//! `InvalidData` error naming the chunk file and the byte offset, and nothing is changed.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use raft_log::codeq::Decode;
use raft_log::RaftLogRecord;

use crate::wal_format::{WalTypes, REPLAY_READ_BUFFER};

/// The largest damaged tail of the last chunk that open examines as a possibly torn write. One
/// flush of raft-log writes at most its queue limit (64 MiB), whatever the chunk size; anything
/// longer than two of them cannot be a single interrupted write.
const MAX_TORN_TAIL: u64 = 2 * 64 * 1024 * 1024;

/// The first record of a WAL chunk that could not be read.
#[derive(Debug)]
struct Damage {
    /// Byte offset of the unreadable record in its chunk file.
    offset: u64,
    file_len: u64,
    error: io::Error,
}

/// Counts the bytes a decoder has taken, to know where each record starts.
struct CountingReader<R> {
    inner: R,
    taken: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.taken += n as u64;
        Ok(n)
    }
}

/// The chunk files of the WAL in `dir`, oldest first (named as raft-log names them; raft-log
/// ignores any other file there).
fn chunk_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut chunks = Vec::new();
    for dirent in std::fs::read_dir(dir)? {
        let dirent = dirent?;
        let name = dirent.file_name();
        if let Ok(chunk_id) = raft_log::chunked_wal::Config::parse_chunk_file_name(&name.to_string_lossy()) {
            chunks.push((chunk_id, dirent.path()));
        }
    }
    chunks.sort();
    Ok(chunks.into_iter().map(|(_, path)| path).collect())
}

/// Read every record of one chunk file; the first one that cannot be read is the damage.
fn scan_chunk(path: &Path) -> io::Result<Option<Damage>> {
    let file = File::open(path)?;
    let file_len = file.metadata()?.len();
    let mut reader = CountingReader {
        inner: BufReader::with_capacity(REPLAY_READ_BUFFER, file),
        taken: 0,
    };
    while reader.taken < file_len {
        let offset = reader.taken;
        if let Err(error) = RaftLogRecord::<WalTypes>::decode(&mut reader) {
            return Ok(Some(Damage {
                offset,
                file_len,
                error,
            }));
        }
    }
    Ok(None)
}

/// Whether a record could start at the beginning of `bytes`: a known record type and, where the
/// type is followed by a length, one that fits. Keeps the search for intact records after damage
/// from decoding (and copying) at every byte.
fn plausible_record_start(bytes: &[u8]) -> bool {
    let Some(header) = bytes.get(..8) else {
        return false;
    };
    let record_type = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    let length = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
    match record_type {
        // Vote, append, commit and purge records start with a length-prefixed codec record.
        0 | 1 | 2 | 4 => length <= bytes.len() - 8,
        // Truncate records start with an option tag, checkpoints with format version 1.
        3 => header[4] <= 1,
        5 => header[4] == 1,
        _ => false,
    }
}

/// Whether an intact record (one that decodes and passes its checksum) starts anywhere in `bytes`
/// after its first byte.
fn holds_an_intact_record(bytes: &[u8]) -> bool {
    (1..bytes.len()).any(|start| {
        let candidate = &bytes[start..];
        plausible_record_start(candidate) && RaftLogRecord::<WalTypes>::decode(candidate).is_ok()
    })
}

/// Why damage at the end of the last chunk is (`Ok`) or is not (`Err`) a torn write.
fn torn_write(path: &Path, damage: &Damage) -> io::Result<Result<(), &'static str>> {
    let tail_len = damage.file_len - damage.offset;
    if tail_len > MAX_TORN_TAIL {
        return Ok(Err("the unreadable tail is longer than any single write"));
    }
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(damage.offset))?;
    let mut tail = Vec::with_capacity(tail_len as usize);
    file.take(tail_len).read_to_end(&mut tail)?;
    // A crash leaves a record that runs past the end of the file or, where the file's new length
    // reached the disk before its data (ext4 data=writeback), zeros.
    let cut_short = damage.error.kind() == io::ErrorKind::UnexpectedEof;
    let unwritten = tail.iter().all(|&b| b == 0);
    if !cut_short && !unwritten {
        return Ok(Err("the record is complete but fails its checksum or decoding"));
    }
    if !unwritten && holds_an_intact_record(&tail) {
        return Ok(Err("intact records follow the damaged one"));
    }
    Ok(Ok(()))
}

fn corrupt(path: &Path, damage: &Damage, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "WAL chunk {} is damaged at byte offset {} (of {}): {}; this is not the torn tail a crash \
             leaves ({why}), so acknowledged records are damaged and the log is not repaired \
             automatically: restore this member from its peers or from a backup",
            path.display(),
            damage.offset,
            damage.file_len,
            damage.error,
        ),
    )
}

/// Check every chunk of the WAL in `dir` before raft-log replays it.
///
/// Every record that was acknowledged had been fdatasync'd, so a crash can only have torn the
/// records written after the last sync: the tail of the last chunk. Such a tail is cut off. Damage
/// anywhere else (in an earlier chunk, before an intact record, or a complete record failing its
/// checksum) means acknowledged data is damaged: the open is refused with the file and offset,
/// and nothing is changed.
pub(crate) fn repair_or_refuse(dir: &Path) -> io::Result<()> {
    let chunks = chunk_files(dir)?;
    for (position, path) in chunks.iter().enumerate() {
        let Some(damage) = scan_chunk(path)? else {
            continue;
        };
        if position + 1 < chunks.len() {
            return Err(corrupt(path, &damage, "a later chunk follows this one"));
        }
        if let Err(why) = torn_write(path, &damage)? {
            return Err(corrupt(path, &damage, why));
        }
        let file = OpenOptions::new().write(true).open(path)?;
        file.set_len(damage.offset)?;
        file.sync_all()?;
        tracing::warn!(
            file = %path.display(),
            offset = damage.offset,
            dropped_bytes = damage.file_len - damage.offset,
            error = %damage.error,
            "WAL: cut off a torn record at the end of the last chunk (a write that a crash interrupted \
             before it was acknowledged)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use raft_log::codeq::Decode;

    use super::*;
    use std::time::Instant;

    use crate::log_store::tests::{append, put, read_puts, write_puts};
    use crate::log_store::LogStore;
    use crate::wal_format::{WalLogId, WalPayload, WalVote, CHUNK_MAX_SIZE};

    /// Byte offsets at which the records of a (healthy) chunk file start.
    fn record_starts(path: &Path) -> Vec<u64> {
        let bytes = std::fs::read(path).expect("read chunk");
        let mut reader = CountingReader {
            inner: &bytes[..],
            taken: 0,
        };
        let mut starts = Vec::new();
        while reader.taken < bytes.len() as u64 {
            starts.push(reader.taken);
            RaftLogRecord::<WalTypes>::decode(&mut reader).expect("healthy record");
        }
        starts
    }

    fn only_chunk(dir: &Path) -> PathBuf {
        let chunks = chunk_files(dir).expect("list chunks");
        assert_eq!(chunks.len(), 1, "one chunk file expected: {chunks:?}");
        chunks[0].clone()
    }

    #[tokio::test]
    async fn torn_last_record_is_cut_off_with_a_warning() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_puts(dir.path(), 1..=6, CHUNK_MAX_SIZE).await;
        let chunk = only_chunk(dir.path());
        let last_start = *record_starts(&chunk).last().expect("records");
        let len = std::fs::metadata(&chunk).expect("stat").len();
        // The append of entry 6 loses its last bytes, as a crash in the middle of its write
        // would leave it (before its fsync, so before it was acknowledged).
        OpenOptions::new()
            .write(true)
            .open(&chunk)
            .and_then(|f| f.set_len(len - 3))
            .expect("cut the chunk");

        // The WARN line of the repair is checked by raft/tests/t45_wal_damage.rs, whose process has
        // one global subscriber: a thread-scoped one here raced other tests over tracing's global
        // interest cache and sometimes saw no line at all.
        let mut store = LogStore::open(dir.path()).expect("a torn last record is repaired");
        assert_eq!(read_puts(&mut store).await, vec![1, 2, 3, 4, 5]);
        assert_eq!(
            std::fs::metadata(&chunk).expect("stat").len(),
            last_start,
            "the torn record is cut off at its start"
        );

        tracing::info!("--- the repaired log takes entry 6 again and keeps it");
        append(&mut store, vec![put(1, 6)]).await;
        drop(store);
        let mut store = LogStore::open(dir.path()).expect("reopen");
        assert_eq!(read_puts(&mut store).await, vec![1, 2, 3, 4, 5, 6]);
    }

    #[tokio::test]
    async fn zeroed_tail_is_cut_off() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_puts(dir.path(), 1..=3, CHUNK_MAX_SIZE).await;
        let chunk = only_chunk(dir.path());
        let len = std::fs::metadata(&chunk).expect("stat").len();
        // A file whose new length reached the disk before its data (ext4 data=writeback).
        OpenOptions::new()
            .write(true)
            .open(&chunk)
            .and_then(|f| f.set_len(len + 4096))
            .expect("extend the chunk");
        let mut store = LogStore::open(dir.path()).expect("a zeroed tail is repaired");
        assert_eq!(read_puts(&mut store).await, vec![1, 2, 3]);
        assert_eq!(
            std::fs::metadata(&chunk).expect("stat").len(),
            len,
            "the 4096 zeroed bytes are cut off"
        );
    }

    /// Open must fail with a clear `InvalidData` error naming the file and offset, and leave the
    /// file as it was.
    fn assert_refused(dir: &Path, chunk: &Path, offset: u64) {
        let before = std::fs::read(chunk).expect("read chunk");
        let error = LogStore::open(dir).err().expect("a damaged WAL is refused");
        assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{error}");
        let message = error.to_string();
        assert!(message.contains(&chunk.display().to_string()), "{message}");
        assert!(message.contains(&format!("byte offset {offset} ")), "{message}");
        assert_eq!(
            std::fs::read(chunk).expect("read chunk"),
            before,
            "a refused WAL is left untouched"
        );
    }

    #[tokio::test]
    async fn garbage_in_the_middle_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_puts(dir.path(), 1..=6, CHUNK_MAX_SIZE).await;
        let chunk = only_chunk(dir.path());
        let starts = record_starts(&chunk);
        let mut bytes = std::fs::read(&chunk).expect("read chunk");
        let at = starts[3] as usize + 6;
        bytes[at..at + 16].fill(0xa5);
        std::fs::write(&chunk, &bytes).expect("write chunk");
        assert_refused(dir.path(), &chunk, starts[3]);
    }

    #[tokio::test]
    async fn flipped_bit_in_an_earlier_record_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_puts(dir.path(), 1..=6, CHUNK_MAX_SIZE).await;
        let chunk = only_chunk(dir.path());
        let starts = record_starts(&chunk);
        let mut bytes = std::fs::read(&chunk).expect("read chunk");
        let at = ((starts[2] + starts[3]) / 2) as usize;
        bytes[at] ^= 0x10;
        std::fs::write(&chunk, &bytes).expect("write chunk");
        assert_refused(dir.path(), &chunk, starts[2]);
    }

    #[tokio::test]
    async fn damage_in_an_earlier_chunk_is_refused_and_a_torn_last_chunk_repaired() {
        const SMALL_CHUNK: usize = 512;
        let dir = tempfile::tempdir().expect("tempdir");
        write_puts(dir.path(), 1..=20, SMALL_CHUNK).await;
        let chunks = chunk_files(dir.path()).expect("list chunks");
        assert!(chunks.len() >= 3, "small chunks rotate: {chunks:?}");

        tracing::info!("--- a torn record at the end of the last chunk is cut off");
        let last = chunks.last().expect("chunks");
        let len = std::fs::metadata(last).expect("stat").len();
        OpenOptions::new()
            .write(true)
            .open(last)
            .and_then(|f| f.set_len(len - 1))
            .expect("cut the chunk");
        {
            let mut store = LogStore::open_with_chunk_size(dir.path(), SMALL_CHUNK).expect("repaired");
            assert_eq!(read_puts(&mut store).await, (1..=19).collect::<Vec<_>>());
        }

        tracing::info!("--- a flipped bit in the first chunk stops the open");
        let first = &chunks[0];
        let starts = record_starts(first);
        let mut bytes = std::fs::read(first).expect("read chunk");
        let at = starts[1] as usize + 10;
        bytes[at] ^= 0x01;
        std::fs::write(first, &bytes).expect("write chunk");
        assert_refused(dir.path(), first, starts[1]);
    }

    /// Walks a single flipped bit through every bit of a small WAL. Each open either refuses the
    /// WAL, or (only when the flip lies in the last record, where it looks exactly like a torn
    /// write) cuts that one record off; it never panics and never loses an earlier entry.
    #[tokio::test]
    async fn every_single_bit_flip_is_refused_or_costs_at_most_the_last_record() {
        let base = tempfile::tempdir().expect("tempdir");
        let pristine_dir = base.path().join("pristine");
        write_puts(&pristine_dir, 1..=3, CHUNK_MAX_SIZE).await;
        let pristine_chunk = only_chunk(&pristine_dir);
        let name = pristine_chunk.file_name().expect("file name").to_owned();
        let pristine = std::fs::read(&pristine_chunk).expect("read chunk");
        let last_start = *record_starts(&pristine_chunk).last().expect("records") as usize;
        let (mut refused, mut cut) = (0, 0);
        let started = Instant::now();
        for bit in 0..pristine.len() * 8 {
            let at = bit / 8;
            let dir = base.path().join(format!("flip-{bit}"));
            std::fs::create_dir_all(&dir).expect("mkdir");
            let mut bytes = pristine.clone();
            bytes[at] ^= 1 << (bit % 8);
            std::fs::write(dir.join(&name), &bytes).expect("write chunk");
            match LogStore::open(&dir) {
                Err(e) => {
                    assert_eq!(e.kind(), io::ErrorKind::InvalidData, "flip of bit {bit}: {e}");
                    refused += 1;
                }
                Ok(mut store) => {
                    assert!(
                        at >= last_start,
                        "a flip of bit {bit} (before the last record) was accepted"
                    );
                    assert_eq!(read_puts(&mut store).await, vec![1, 2], "flip of bit {bit}");
                    cut += 1;
                }
            }
            std::fs::remove_dir_all(&dir).expect("clean up");
        }
        println!(
            "single-bit flips through a {}-byte WAL: {refused} refused, {cut} cut off as a torn last record, in {:.1} s",
            pristine.len(),
            started.elapsed().as_secs_f64()
        );
        assert!(refused > 0 && refused + cut == pristine.len() * 8);
    }

    /// A healthy one-chunk WAL holding puts 1..=6: the chunk's file name and bytes.
    fn pristine_wal() -> &'static (std::ffi::OsString, Vec<u8>) {
        static PRISTINE: std::sync::OnceLock<(std::ffi::OsString, Vec<u8>)> = std::sync::OnceLock::new();
        PRISTINE.get_or_init(|| {
            let dir = tempfile::tempdir().expect("tempdir");
            let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
            runtime.block_on(write_puts(dir.path(), 1..=6, CHUNK_MAX_SIZE));
            let chunk = only_chunk(dir.path());
            let name = chunk.file_name().expect("chunk file name").to_owned();
            (name, std::fs::read(&chunk).expect("read chunk"))
        })
    }

    /// Open a WAL made of one chunk file holding `bytes`: either refused as damaged, or opened with
    /// the entries it then holds. Never a panic, never another kind of error.
    fn open_chunk_bytes(bytes: &[u8]) -> Result<Vec<u64>, io::Error> {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(&pristine_wal().0), bytes).expect("write chunk");
        match LogStore::open(dir.path()) {
            Ok(mut store) => {
                let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
                Ok(runtime.block_on(read_puts(&mut store)))
            }
            Err(e) => {
                assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
                Err(e)
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]

        /// Random bytes never panic the decoders of a WAL record and of its fields, nor the search
        /// for intact records after damage.
        #[test]
        fn random_bytes_never_panic_the_wal_decoders(bytes in proptest::collection::vec(0u8..=255, 0..600)) {
            let _ = RaftLogRecord::<WalTypes>::decode(&bytes[..]);
            let _ = WalLogId::decode(&bytes[..]);
            let _ = WalPayload::decode(&bytes[..]);
            let _ = WalVote::decode(&bytes[..]);
            let _ = holds_an_intact_record(&bytes);
        }

        /// The records of a healthy WAL with one byte changed: the decoders fail or decode, never
        /// panic (a length prefix that lies reads through `take`, bounded by the input).
        #[test]
        fn mutated_wal_records_never_panic_the_decoders(at in 0usize..10_000, byte in 0u8..=255) {
            let bytes = &pristine_wal().1;
            let mut mutated = bytes.clone();
            let at = at % mutated.len();
            mutated[at] = byte;
            let mut reader = &mutated[..];
            while !reader.is_empty() {
                if RaftLogRecord::<WalTypes>::decode(&mut reader).is_err() {
                    break;
                }
            }
        }

        /// A chunk file of random bytes is refused, or taken as a torn write and cut off.
        #[test]
        fn random_chunk_file_is_refused_or_cut_off(bytes in proptest::collection::vec(0u8..=255, 0..2000)) {
            if let Ok(entries) = open_chunk_bytes(&bytes) {
                proptest::prop_assert!(entries.is_empty(), "entries invented from random bytes: {:?}", entries);
            }
        }

        /// A healthy WAL with bytes overwritten, inserted, removed or cut: open refuses it, or
        /// keeps a prefix of the written entries with their exact payloads; it never invents or
        /// reorders an entry.
        #[test]
        fn mutated_wal_is_refused_or_keeps_a_prefix(
            mutations in proptest::collection::vec((0usize..10_000, 0u8..4, 0u8..=255), 1..4)
        ) {
            let mut bytes = pristine_wal().1.clone();
            for (at, op, byte) in mutations {
                let at = at % (bytes.len() + 1);
                match op {
                    0 if at < bytes.len() => bytes[at] = byte,
                    1 => bytes.insert(at, byte),
                    2 if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    _ => bytes.truncate(at),
                }
            }
            if let Ok(entries) = open_chunk_bytes(&bytes) {
                let prefix: Vec<u64> = (1..=entries.len() as u64).collect();
                proptest::prop_assert_eq!(entries, prefix);
            }
        }
    }
}
