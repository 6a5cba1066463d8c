//! How snapshot data crosses the transport. openraft leaves the snapshot data type to the state
//! machine, so the transport asks two small things of it: the sender reads the data as bytes from
//! the start, the receiver builds the data from those bytes. The bytes travel in bounded chunks;
//! neither side needs the whole snapshot in memory unless its data type is in memory anyway.

use std::future::Future;
use std::io::{self, Cursor, Seek};
use std::path::PathBuf;

use tokio::io::{AsyncRead, AsyncSeekExt, AsyncWrite, AsyncWriteExt, BufWriter};

/// Snapshot data the transport can send.
pub trait SnapshotSend: Send + 'static {
    type Reader: AsyncRead + Unpin + Send + 'static;

    /// A reader over the snapshot's bytes from the first one.
    fn into_reader(self) -> impl Future<Output = io::Result<Self::Reader>> + Send;
}

/// Builds snapshot data of type `D` on the receiving member. One receiver serves every incoming
/// transfer; a transfer that is abandoned midway drops its writer without calling `finish`.
pub trait SnapshotReceive<D>: Send + Sync + 'static {
    type Writer: AsyncWrite + Unpin + Send + 'static;

    /// Start receiving a snapshot.
    fn begin(&self) -> impl Future<Output = io::Result<Self::Writer>> + Send;

    /// Turn a writer that received every byte into snapshot data ready to install.
    fn finish(&self, writer: Self::Writer) -> impl Future<Output = io::Result<D>> + Send;
}

impl SnapshotSend for Cursor<Vec<u8>> {
    type Reader = Cursor<Vec<u8>>;

    async fn into_reader(mut self) -> io::Result<Self::Reader> {
        self.set_position(0);
        Ok(self)
    }
}

impl SnapshotSend for tokio::fs::File {
    type Reader = tokio::fs::File;

    async fn into_reader(mut self) -> io::Result<Self::Reader> {
        self.seek(io::SeekFrom::Start(0)).await?;
        Ok(self)
    }
}

impl SnapshotSend for std::fs::File {
    type Reader = tokio::fs::File;

    async fn into_reader(self) -> io::Result<Self::Reader> {
        let mut file = tokio::fs::File::from_std(self);
        file.seek(io::SeekFrom::Start(0)).await?;
        Ok(file)
    }
}

/// Receives snapshots into files under `dir`, for state machines whose snapshot data is an open
/// `std::fs::File`. Each file is unlinked as soon as it is created: the open handle is all the
/// state machine needs to install it, and a transfer that is abandoned or cut short by a crash
/// leaves nothing behind.
#[derive(Debug, Clone)]
pub struct FileSnapshotReceiver {
    pub dir: PathBuf,
}

impl SnapshotReceive<std::fs::File> for FileSnapshotReceiver {
    type Writer = BufWriter<tokio::fs::File>;

    async fn begin(&self) -> io::Result<Self::Writer> {
        tokio::fs::create_dir_all(&self.dir).await?;
        let path = self
            .dir
            .join(format!("incoming-{:016x}.snapshot", rand::random::<u64>()));
        let file = tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .await?;
        tokio::fs::remove_file(&path).await?;
        Ok(BufWriter::new(file))
    }

    async fn finish(&self, mut writer: Self::Writer) -> io::Result<std::fs::File> {
        writer.flush().await?;
        let mut file = writer.into_inner().into_std().await;
        file.rewind()?;
        Ok(file)
    }
}

/// Receives snapshots into memory, for state machines whose snapshot data is `Cursor<Vec<u8>>`.
/// The size of one snapshot is bounded by `PeerConfig::max_snapshot_bytes` before it gets here.
#[derive(Debug, Clone, Copy, Default)]
pub struct InMemorySnapshotReceiver;

impl SnapshotReceive<Cursor<Vec<u8>>> for InMemorySnapshotReceiver {
    type Writer = Vec<u8>;

    async fn begin(&self) -> io::Result<Self::Writer> {
        Ok(Vec::new())
    }

    async fn finish(&self, writer: Self::Writer) -> io::Result<Cursor<Vec<u8>>> {
        Ok(Cursor::new(writer))
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use tokio::io::AsyncReadExt;

    use super::*;

    #[tokio::test]
    async fn file_snapshots_are_sent_from_the_start_and_received_into_unlinked_files() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut source = tempfile::tempfile().expect("temp file");
        source.write_all(b"snapshot bytes").expect("write");
        // The sender reads from the start even if the handle was left at the end.
        let mut reader = source.into_reader().await.expect("reader");
        let mut sent = Vec::new();
        reader.read_to_end(&mut sent).await.expect("read");
        assert_eq!(sent, b"snapshot bytes");

        let receiver = FileSnapshotReceiver {
            dir: dir.path().join("incoming"),
        };
        let mut writer = receiver.begin().await.expect("begin");
        writer.write_all(&sent).await.expect("write chunk");
        let mut received = receiver.finish(writer).await.expect("finish");
        let mut back = Vec::new();
        received.read_to_end(&mut back).expect("read back");
        assert_eq!(back, b"snapshot bytes");
        let left_behind = std::fs::read_dir(dir.path().join("incoming")).expect("list").count();
        assert_eq!(left_behind, 0);
    }
}
