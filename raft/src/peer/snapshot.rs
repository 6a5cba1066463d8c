//! How snapshot data crosses the transport. openraft leaves the snapshot data type to the state
//! machine, so the transport asks two small things of it: the sender reads the data as bytes from
//! the start, the receiver builds the data from those bytes. The bytes travel in bounded chunks;
//! neither side needs the whole snapshot in memory unless its data type is in memory anyway.

use std::future::Future;
use std::io::{self, Cursor};

use tokio::io::{AsyncRead, AsyncSeekExt, AsyncWrite};

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
