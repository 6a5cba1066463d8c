//! Length-prefixed frames: `[u32 big-endian payload length][payload]`, where the payload is one
//! codec record ([`crate::codec`]). The length is checked against a limit before anything is
//! allocated, so a peer cannot make the reader allocate more than the limit by lying about the
//! length; an empty frame is refused.
//!
//! This is the framing of the peer transport between members, public so that other transports of
//! the product (the agent tunnel) speak the same frames instead of a second copy. A stream of
//! records is written with [`write_record`] (or [`encode_frame`] and a write of one's own) and read
//! with [`read_record`] (or [`read_frame`] then [`decode_payload`]); both ends pass the same limit.
//! Changing anything here changes the peer protocol's bytes.
//!
//! Between members, every frame after the handshake carries a sealed record instead of a plain one
//! (`peer/sealing.rs`): the same length prefix, then the encrypted record and its tag.
//!
//! The challenge-response handshake that opens a peer connection (`peer/handshake.rs`) is not part
//! of this module: its proofs bind the group's name and both members' node ids, which a transport
//! between a server and an agent does not have; it is written over these frames and is the model
//! for such a transport's own.

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::codec::{self, CodecError};

/// Bytes of the length prefix.
pub const LENGTH_PREFIX_BYTES: usize = 4;

/// Why a frame could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer closed the connection between two frames: the normal end of a connection.
    #[error("connection closed")]
    Closed,
    #[error("frame i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("frame of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge { len: usize, limit: usize },
    #[error("empty frame")]
    Empty,
    #[error("undecodable frame: {0}")]
    Decode(#[from] CodecError),
}

impl FrameError {
    /// Whether the peer sent something malformed (as opposed to the connection ending or failing).
    pub fn is_malformed(&self) -> bool {
        matches!(
            self,
            FrameError::TooLarge { .. } | FrameError::Empty | FrameError::Decode(_)
        )
    }
}

/// Encode `value` as the payload of one frame (the codec record, without the length prefix),
/// refusing a record the peer would reject as too large. For transports that wrap the record
/// before framing it (the peer transport seals it).
pub fn encode_payload<T: Serialize>(value: &T, limit: usize) -> Result<Vec<u8>, FrameError> {
    let record = codec::encode(value)?;
    if record.len() > limit || record.len() > u32::MAX as usize {
        return Err(FrameError::TooLarge {
            len: record.len(),
            limit,
        });
    }
    Ok(record)
}

/// Encode `value` as a complete frame, length prefix included, refusing to build one the peer
/// would reject as too large.
pub fn encode_frame<T: Serialize>(value: &T, limit: usize) -> Result<Vec<u8>, FrameError> {
    let record = encode_payload(value, limit)?;
    let mut frame = Vec::with_capacity(LENGTH_PREFIX_BYTES + record.len());
    frame.extend_from_slice(&(record.len() as u32).to_be_bytes());
    frame.extend_from_slice(&record);
    Ok(frame)
}

/// Write `value` as one frame and flush it.
pub async fn write_record<T: Serialize, W: AsyncWrite + Unpin>(
    writer: &mut W,
    value: &T,
    limit: usize,
) -> Result<(), FrameError> {
    let frame = encode_frame(value, limit)?;
    writer.write_all(&frame).await?;
    writer.flush().await?;
    Ok(())
}

/// Read one frame's payload of at most `limit` bytes.
pub async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R, limit: usize) -> Result<Vec<u8>, FrameError> {
    let mut prefix = [0u8; LENGTH_PREFIX_BYTES];
    match reader.read_exact(&mut prefix).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(FrameError::Closed),
        Err(e) => return Err(FrameError::Io(e)),
    }
    let len = u32::from_be_bytes(prefix) as usize;
    if len == 0 {
        return Err(FrameError::Empty);
    }
    if len > limit {
        return Err(FrameError::TooLarge { len, limit });
    }
    let mut payload = vec![0u8; len];
    reader.read_exact(&mut payload).await?;
    Ok(payload)
}

/// Decode a frame's payload; the limit is the same one the frame was read with.
pub fn decode_payload<T: DeserializeOwned>(payload: &[u8], limit: usize) -> Result<T, FrameError> {
    Ok(codec::decode_with_limit(payload, limit)?)
}

/// Read one frame and decode it.
pub async fn read_record<T: DeserializeOwned, R: AsyncRead + Unpin>(
    reader: &mut R,
    limit: usize,
) -> Result<T, FrameError> {
    let payload = read_frame(reader, limit).await?;
    decode_payload(&payload, limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trip_and_limits() {
        let frame = encode_frame(&("hello".to_string(), 7u64), 1024).expect("encode");
        let mut reader = &frame[..];
        let back: (String, u64) = read_record(&mut reader, 1024).await.expect("decode");
        assert_eq!(back, ("hello".to_string(), 7));
        assert!(matches!(
            read_frame(&mut &frame[..], 4).await,
            Err(FrameError::TooLarge { .. })
        ));
        assert!(matches!(
            encode_frame(&vec![0u8; 100], 10),
            Err(FrameError::TooLarge { .. })
        ));
        assert!(matches!(read_frame(&mut &[][..], 16).await, Err(FrameError::Closed)));
        assert!(matches!(
            read_frame(&mut &[0, 0, 0, 0][..], 16).await,
            Err(FrameError::Empty)
        ));
        // A prefix promising more bytes than arrive is an I/O error, not a hang or a panic.
        assert!(matches!(
            read_frame(&mut &[0, 0, 0, 9, 1][..], 16).await,
            Err(FrameError::Io(_))
        ));
    }
}
