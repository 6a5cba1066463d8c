//! The frames of the peer transport, used from outside the crate as another transport of the
//! product (the agent tunnel) will use them: the byte layout is `[u32 big-endian length][codec
//! record]`, and the reader refuses what a hostile peer could send before allocating for it.

use kuboard_raft::codec;
use kuboard_raft::framing::{decode_payload, encode_frame, read_frame, read_record, write_record, FrameError};
use tokio::io::AsyncWriteExt;

const LIMIT: usize = 1024;

#[tokio::test]
async fn frames_have_the_documented_layout_and_round_trip_over_a_stream() {
    tracing::info!("--- a written record is a big-endian length and the codec record, nothing else");
    let value = ("tunnel".to_string(), 42u64, vec![1u8, 2, 3]);
    let record = codec::encode(&value).expect("encode");
    let frame = encode_frame(&value, LIMIT).expect("frame");
    assert_eq!(&frame[..4], &(record.len() as u32).to_be_bytes());
    assert_eq!(&frame[4..], &record[..]);

    tracing::info!("--- records written to one end of a stream are read in order at the other");
    let (mut client, mut server) = tokio::io::duplex(64);
    let writer = tokio::spawn(async move {
        write_record(&mut client, &value, LIMIT).await.expect("write first");
        write_record(&mut client, &(7u8, "second".to_string()), LIMIT)
            .await
            .expect("write second");
        client.shutdown().await.expect("close");
    });
    let first: (String, u64, Vec<u8>) = read_record(&mut server, LIMIT).await.expect("read first");
    assert_eq!(first, ("tunnel".to_string(), 42, vec![1, 2, 3]));
    let payload = read_frame(&mut server, LIMIT).await.expect("read second");
    let second: (u8, String) = decode_payload(&payload, LIMIT).expect("decode second");
    assert_eq!(second, (7, "second".to_string()));
    assert!(matches!(read_frame(&mut server, LIMIT).await, Err(FrameError::Closed)));
    writer.await.expect("writer task");
}

#[tokio::test]
async fn hostile_lengths_are_refused_before_anything_is_allocated() {
    tracing::info!("--- a length over the limit, an empty frame and a short body are errors, not hangs");
    let huge = [0xff, 0xff, 0xff, 0xff];
    assert!(matches!(
        read_frame(&mut &huge[..], LIMIT).await,
        Err(FrameError::TooLarge { len, limit: LIMIT }) if len == u32::MAX as usize
    ));
    assert!(matches!(
        read_frame(&mut &[0u8, 0, 0, 0][..], LIMIT).await,
        Err(FrameError::Empty)
    ));
    assert!(matches!(
        read_frame(&mut &[0u8, 0, 0, 9, 1][..], LIMIT).await,
        Err(FrameError::Io(_))
    ));

    tracing::info!("--- a writer refuses to build a frame its reader would refuse");
    let mut sink = Vec::new();
    let refused = write_record(&mut sink, &vec![0u8; 2 * LIMIT], LIMIT).await;
    assert!(matches!(refused, Err(FrameError::TooLarge { .. })));
    assert!(sink.is_empty(), "nothing is written for a refused frame");
}
