//! Takes the `:authority` etcdctl 3.4 sends for some commands.
//!
//! For `endpoint status` (and `hashkv`, `move-leader`) etcdctl 3.4 dials `passthrough:///URL`, so
//! grpc-go sends the whole endpoint URL, scheme included (`http://10.0.0.1:2379`), as the HTTP/2
//! `:authority` pseudo-header. etcd's Go server does not look at it; the h2 crate under tonic
//! resets such a stream as malformed. This module sits between the connection and tonic, reads the
//! client's HTTP/2 frames and, on a connection whose first request carries a URL as authority,
//! rewrites every header block with the authority reduced to `host:port`.
//!
//! Header blocks are HPACK-compressed against a table both ends keep, so a block cannot be edited
//! in place: on a rewritten connection every block is decoded with the client's table and encoded
//! again with a table this module keeps for the server. A connection whose first authority is
//! well formed (every other client) is passed through untouched from then on.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::{Connected, TcpConnectInfo};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER: usize = 9;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// HPACK's default dynamic table size, which the server (h2's default) keeps.
const DEFAULT_TABLE_SIZE: usize = 4096;
/// Every HTTP/2 peer must accept frames of this size; rewritten blocks are cut to it.
const DEFAULT_MAX_FRAME: usize = 16_384;
/// Larger frames than the server ever allows (tonic's h2 default is 16 KiB; etcd clients send at
/// most 2 MiB messages in many frames): a peer announcing more is cut off.
const MAX_FRAME: usize = 16 * 1024 * 1024;
/// A header block larger than this (across CONTINUATION frames) ends the connection.
const MAX_HEADER_BLOCK: usize = 1024 * 1024;
/// How much is read from the connection at a time while frames are inspected.
const READ_CHUNK: usize = 16 * 1024;

/// A connection to the etcd API with the client's `:authority` made acceptable to the server.
pub(super) struct AuthorityFix<S> {
    inner: S,
    info: TcpConnectInfo,
    /// The verified client certificate's common name (TLS with client certificates).
    common_name: Option<String>,
    /// Bytes read from the client that have not been looked at yet.
    input: BytesMut,
    /// Bytes ready for the server.
    output: BytesMut,
    mode: Mode,
    /// The client's input has ended.
    eof: bool,
}

enum Mode {
    /// Before the 24-byte connection preface.
    Preface,
    /// Frames are passed on until the first header block shows whether the connection needs help.
    Deciding(Box<Block>),
    /// Every header block is decoded and encoded again.
    Rewriting(Box<Rewriter>),
    /// Bytes go through untouched.
    PassThrough,
}

/// The client's header compression table, and the header block being collected.
struct Block {
    decoder: loona_hpack::Decoder<'static>,
    pending: Option<PendingBlock>,
}

impl Default for Block {
    fn default() -> Block {
        let mut decoder = loona_hpack::Decoder::new();
        // The server announces no larger table than HTTP/2's default; a client asking for more
        // is refused by the decoder rather than allowed to grow it.
        decoder.set_max_allowed_table_size(DEFAULT_TABLE_SIZE);
        Block { decoder, pending: None }
    }
}

/// A header block being collected: its first frame's flags and priority fields, its fragments.
struct PendingBlock {
    stream_id: u32,
    flags: u8,
    priority: Option<[u8; 5]>,
    fragment: Vec<u8>,
    /// The frames as they came, for a pass-through decision.
    raw: Vec<u8>,
}

struct Rewriter {
    block: Block,
    encoder: loona_hpack::Encoder<'static>,
}

impl<S> AuthorityFix<S> {
    pub(super) fn new(inner: S, info: TcpConnectInfo) -> AuthorityFix<S> {
        AuthorityFix {
            inner,
            info,
            common_name: None,
            input: BytesMut::new(),
            output: BytesMut::new(),
            mode: Mode::Preface,
            eof: false,
        }
    }

    /// The common name of the client certificate the connection's TLS handshake verified.
    pub(super) fn with_common_name(mut self, common_name: Option<String>) -> AuthorityFix<S> {
        self.common_name = common_name;
        self
    }

    /// Move what can be decided from `input` to `output`.
    fn process(&mut self) -> io::Result<()> {
        loop {
            match &mut self.mode {
                Mode::PassThrough => {
                    let all = self.input.split();
                    self.output.unsplit(all);
                    return Ok(());
                }
                Mode::Preface => {
                    if self.input.len() < PREFACE.len() {
                        if !PREFACE.starts_with(&self.input) {
                            // Not HTTP/2 with prior knowledge: the server will say so.
                            self.mode = Mode::PassThrough;
                            continue;
                        }
                        return Ok(());
                    }
                    if &self.input[..PREFACE.len()] != PREFACE {
                        self.mode = Mode::PassThrough;
                        continue;
                    }
                    let preface = self.input.split_to(PREFACE.len());
                    self.output.unsplit(preface);
                    self.mode = Mode::Deciding(Box::default());
                }
                Mode::Deciding(_) | Mode::Rewriting(_) => {
                    let Some(frame) = take_frame(&mut self.input)? else {
                        return Ok(());
                    };
                    self.frame(frame)?;
                }
            }
        }
    }

    /// One whole frame from the client, while header blocks are being looked at.
    fn frame(&mut self, frame: BytesMut) -> io::Result<()> {
        let kind = frame[3];
        let block = match &mut self.mode {
            Mode::Deciding(block) => block.as_mut(),
            Mode::Rewriting(rewriter) => &mut rewriter.block,
            Mode::Preface | Mode::PassThrough => unreachable!("frames are only parsed while deciding or rewriting"),
        };
        if kind != HEADERS && kind != CONTINUATION {
            if block.pending.is_some() {
                return Err(protocol("a header block was interrupted by another frame"));
            }
            self.output.unsplit(frame);
            return Ok(());
        }
        block.collect(&frame)?;
        let complete = block
            .pending
            .as_ref()
            .is_some_and(|pending| pending.flags & END_HEADERS != 0);
        if !complete {
            return Ok(());
        }
        let pending = block.pending.take().expect("a complete block is pending");
        let headers = block
            .decoder
            .decode(&pending.fragment)
            .map_err(|error| protocol(&format!("undecodable header block: {error:?}")))?;
        match &mut self.mode {
            Mode::Deciding(_) => {
                if headers.iter().any(|(name, value)| needs_fix(name, value)) {
                    let Mode::Deciding(block) = std::mem::replace(&mut self.mode, Mode::PassThrough) else {
                        unreachable!()
                    };
                    tracing::debug!("etcd API client sends a URL as :authority; its header blocks are rewritten");
                    let mut rewriter = Rewriter {
                        block: *block,
                        encoder: loona_hpack::Encoder::new(),
                    };
                    rewriter.emit(&pending, headers, &mut self.output);
                    self.mode = Mode::Rewriting(Box::new(rewriter));
                } else {
                    self.output.put_slice(&pending.raw);
                    self.mode = Mode::PassThrough;
                }
            }
            Mode::Rewriting(rewriter) => rewriter.emit(&pending, headers, &mut self.output),
            Mode::Preface | Mode::PassThrough => unreachable!(),
        }
        Ok(())
    }
}

impl Block {
    /// Add a HEADERS or CONTINUATION frame to the block being collected.
    fn collect(&mut self, frame: &[u8]) -> io::Result<()> {
        let (kind, flags) = (frame[3], frame[4]);
        let stream_id = u32::from_be_bytes([frame[5], frame[6], frame[7], frame[8]]) & 0x7fff_ffff;
        let mut payload = &frame[FRAME_HEADER..];
        match (kind, &mut self.pending) {
            (HEADERS, None) => {
                let mut pad = 0;
                if flags & PADDED != 0 {
                    let (&length, rest) = payload
                        .split_first()
                        .ok_or_else(|| protocol("HEADERS without its pad length"))?;
                    pad = usize::from(length);
                    payload = rest;
                }
                let mut priority = None;
                if flags & PRIORITY != 0 {
                    if payload.len() < 5 {
                        return Err(protocol("HEADERS too short for its priority"));
                    }
                    let mut fields = [0; 5];
                    fields.copy_from_slice(&payload[..5]);
                    priority = Some(fields);
                    payload = &payload[5..];
                }
                if pad > payload.len() {
                    return Err(protocol("HEADERS padding longer than the frame"));
                }
                self.pending = Some(PendingBlock {
                    stream_id,
                    flags,
                    priority,
                    fragment: payload[..payload.len() - pad].to_vec(),
                    raw: frame.to_vec(),
                });
            }
            (CONTINUATION, Some(pending)) if pending.stream_id == stream_id => {
                pending.fragment.extend_from_slice(payload);
                pending.raw.extend_from_slice(frame);
                // The block is complete when a CONTINUATION says so.
                pending.flags = (pending.flags & !END_HEADERS) | (flags & END_HEADERS);
                if pending.fragment.len() > MAX_HEADER_BLOCK {
                    return Err(protocol("header block too large"));
                }
            }
            _ => return Err(protocol("CONTINUATION out of place")),
        }
        Ok(())
    }
}

impl Rewriter {
    /// Encode the block again, authority fixed, as HEADERS plus CONTINUATION frames.
    fn emit(&mut self, pending: &PendingBlock, headers: Vec<(Vec<u8>, Vec<u8>)>, output: &mut BytesMut) {
        let fixed: Vec<(Vec<u8>, Vec<u8>)> = headers
            .into_iter()
            .map(|(name, value)| {
                let value = if needs_fix(&name, &value) {
                    host_port(&value)
                } else {
                    value
                };
                (name, value)
            })
            .collect();
        let encoded = self
            .encoder
            .encode(fixed.iter().map(|(name, value)| (name.as_slice(), value.as_slice())));
        let mut first = Vec::with_capacity(5 + encoded.len().min(DEFAULT_MAX_FRAME));
        let mut flags = pending.flags & END_STREAM;
        if let Some(priority) = pending.priority {
            first.extend_from_slice(&priority);
            flags |= PRIORITY;
        }
        let room = DEFAULT_MAX_FRAME - first.len();
        let mut chunks = std::iter::once(&encoded[..encoded.len().min(room)])
            .chain(encoded.get(room..).unwrap_or_default().chunks(DEFAULT_MAX_FRAME))
            .peekable();
        let head = chunks.next().unwrap_or_default();
        first.extend_from_slice(head);
        let last = chunks.peek().is_none();
        put_frame(
            output,
            HEADERS,
            flags | if last { END_HEADERS } else { 0 },
            pending.stream_id,
            &first,
        );
        while let Some(chunk) = chunks.next() {
            let last = chunks.peek().is_none();
            put_frame(
                output,
                CONTINUATION,
                if last { END_HEADERS } else { 0 },
                pending.stream_id,
                chunk,
            );
        }
    }
}

/// True for an `:authority` that holds a URL rather than `host[:port]`.
fn needs_fix(name: &[u8], value: &[u8]) -> bool {
    name == b":authority" && value.windows(3).any(|window| window == b"://")
}

/// `http://host:port/whatever` → `host:port`.
fn host_port(value: &[u8]) -> Vec<u8> {
    let after_scheme = value
        .windows(3)
        .position(|window| window == b"://")
        .map_or(value, |at| &value[at + 3..]);
    let end = after_scheme
        .iter()
        .position(|&byte| byte == b'/')
        .unwrap_or(after_scheme.len());
    after_scheme[..end].to_vec()
}

/// Take one whole frame off the front of `input`, if it is all there.
fn take_frame(input: &mut BytesMut) -> io::Result<Option<BytesMut>> {
    if input.len() < FRAME_HEADER {
        return Ok(None);
    }
    let length = (usize::from(input[0]) << 16) | (usize::from(input[1]) << 8) | usize::from(input[2]);
    if length > MAX_FRAME {
        return Err(protocol("frame larger than any the server allows"));
    }
    if input.len() < FRAME_HEADER + length {
        input.reserve(FRAME_HEADER + length - input.len());
        return Ok(None);
    }
    Ok(Some(input.split_to(FRAME_HEADER + length)))
}

fn put_frame(output: &mut BytesMut, kind: u8, flags: u8, stream_id: u32, payload: &[u8]) {
    let length = payload.len() as u32;
    output.put_slice(&length.to_be_bytes()[1..]);
    output.put_u8(kind);
    output.put_u8(flags);
    output.put_u32(stream_id);
    output.put_slice(payload);
}

fn protocol(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("etcd API client: {what}"))
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthorityFix<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.output.is_empty() {
                let n = this.output.len().min(buf.remaining());
                buf.put_slice(&this.output[..n]);
                this.output.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            if matches!(this.mode, Mode::PassThrough) && this.input.is_empty() {
                // Nothing held back any more: read straight into the caller's buffer.
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            let mut chunk = [0u8; READ_CHUNK];
            let mut chunk_buf = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut chunk_buf))?;
            if chunk_buf.filled().is_empty() {
                this.eof = true;
                // Whatever is left unparsed goes on as it is; the server judges it.
                let rest = this.input.split();
                this.output.unsplit(rest);
                continue;
            }
            this.input.extend_from_slice(chunk_buf.filled());
            this.process()?;
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AuthorityFix<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// What a connection tells about its client, in every request's extensions.
#[derive(Debug, Clone)]
pub(super) struct ClientInfo {
    /// The TCP connection's addresses (the peer's is logged with failed authentications).
    pub tcp: TcpConnectInfo,
    /// The subject common name of the client certificate the TLS handshake verified.
    pub common_name: Option<String>,
}

impl<S> Connected for AuthorityFix<S> {
    type ConnectInfo = ClientInfo;

    fn connect_info(&self) -> ClientInfo {
        ClientInfo {
            tcp: self.info.clone(),
            common_name: self.common_name.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn headers_frame(stream_id: u32, flags: u8, block: &[u8]) -> Vec<u8> {
        let mut frame = BytesMut::new();
        put_frame(&mut frame, HEADERS, flags, stream_id, block);
        frame.to_vec()
    }

    /// Feed `client` bytes through the fix in small pieces and return what the server reads.
    async fn through_fix(client: Vec<u8>) -> Vec<u8> {
        let (mut client_end, server_end) = tokio::io::duplex(64);
        let writer = tokio::spawn(async move {
            for piece in client.chunks(7) {
                client_end.write_all(piece).await.unwrap();
            }
            client_end.shutdown().await.unwrap();
        });
        let mut fix = AuthorityFix::new(
            server_end,
            TcpConnectInfo {
                local_addr: None,
                remote_addr: None,
            },
        );
        let mut seen = Vec::new();
        fix.read_to_end(&mut seen).await.unwrap();
        writer.await.unwrap();
        seen
    }

    /// Decode every header block the server would read.
    fn server_headers(mut bytes: &[u8]) -> Vec<Vec<(Vec<u8>, Vec<u8>)>> {
        assert!(bytes.starts_with(PREFACE));
        bytes = &bytes[PREFACE.len()..];
        let mut decoder = loona_hpack::Decoder::new();
        let (mut blocks, mut fragment) = (Vec::new(), Vec::new());
        while !bytes.is_empty() {
            let length = (usize::from(bytes[0]) << 16) | (usize::from(bytes[1]) << 8) | usize::from(bytes[2]);
            let (kind, flags) = (bytes[3], bytes[4]);
            let payload = &bytes[FRAME_HEADER..FRAME_HEADER + length];
            if kind == HEADERS || kind == CONTINUATION {
                let skip = if kind == HEADERS && flags & PRIORITY != 0 { 5 } else { 0 };
                fragment.extend_from_slice(&payload[skip..]);
                if flags & END_HEADERS != 0 {
                    blocks.push(decoder.decode(&fragment).unwrap());
                    fragment.clear();
                }
            }
            bytes = &bytes[FRAME_HEADER + length..];
        }
        blocks
    }

    fn request(authority: &str, path: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
        [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", path),
            (":authority", authority),
            ("content-type", "application/grpc"),
        ]
        .iter()
        .map(|(name, value)| (name.as_bytes().to_vec(), value.as_bytes().to_vec()))
        .collect()
    }

    fn encode(encoder: &mut loona_hpack::Encoder<'static>, headers: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
        encoder.encode(headers.iter().map(|(name, value)| (name.as_slice(), value.as_slice())))
    }

    #[tokio::test]
    async fn a_url_authority_becomes_host_and_port_in_every_block() {
        let mut encoder = loona_hpack::Encoder::new();
        let mut client = PREFACE.to_vec();
        put_frame_vec(&mut client, 0x4, 0, 0, &[]); // SETTINGS
        let first = request("http://127.0.0.1:2379", "/etcdserverpb.Maintenance/Status");
        client.extend(headers_frame(
            1,
            END_HEADERS | END_STREAM,
            &encode(&mut encoder, &first),
        ));
        // The second block refers to the first one's table entries.
        let second = request("http://127.0.0.1:2379", "/etcdserverpb.KV/Range");
        let block = encode(&mut encoder, &second);
        // Split over HEADERS + CONTINUATION, with padding and priority on the HEADERS frame.
        let mut payload = vec![3u8];
        payload.extend_from_slice(&[0, 0, 0, 0, 15]);
        payload.extend_from_slice(&block[..2]);
        payload.extend_from_slice(&[0, 0, 0]);
        client.extend(headers_frame(3, PADDED | PRIORITY, &payload));
        put_frame_vec(&mut client, CONTINUATION, END_HEADERS, 3, &block[2..]);
        put_frame_vec(&mut client, 0x0, END_STREAM, 3, b"data");

        let seen = through_fix(client).await;
        let blocks = server_headers(&seen);
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0], request("127.0.0.1:2379", "/etcdserverpb.Maintenance/Status"));
        assert_eq!(blocks[1], request("127.0.0.1:2379", "/etcdserverpb.KV/Range"));
        assert!(seen.ends_with(b"data"), "other frames pass unchanged");
    }

    #[tokio::test]
    async fn a_well_formed_connection_passes_through_byte_for_byte() {
        let mut encoder = loona_hpack::Encoder::new();
        let mut client = PREFACE.to_vec();
        for stream in [1, 3, 5] {
            let block = encode(&mut encoder, &request("127.0.0.1:2379", "/etcdserverpb.KV/Put"));
            client.extend(headers_frame(stream, END_HEADERS, &block));
            put_frame_vec(&mut client, 0x0, END_STREAM, stream, &[0; 40]);
        }
        assert_eq!(through_fix(client.clone()).await, client);
        // Not HTTP/2 at all: untouched too, for the server to refuse.
        let http1 = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
        assert_eq!(through_fix(http1.clone()).await, http1);
    }

    #[tokio::test]
    async fn damaged_frames_end_the_connection_with_an_error() {
        let mut client = PREFACE.to_vec();
        put_frame_vec(&mut client, CONTINUATION, END_HEADERS, 1, b"\x82");
        let (mut client_end, server_end) = tokio::io::duplex(1024);
        client_end.write_all(&client).await.unwrap();
        let mut fix = AuthorityFix::new(
            server_end,
            TcpConnectInfo {
                local_addr: None,
                remote_addr: None,
            },
        );
        let mut seen = vec![0; 1024];
        let mut result = Ok(0);
        for _ in 0..3 {
            result = fix.read(&mut seen).await;
            if result.is_err() {
                break;
            }
        }
        assert!(result.is_err(), "a CONTINUATION without HEADERS is refused: {result:?}");
    }

    #[test]
    fn host_port_strips_scheme_and_path() {
        assert_eq!(host_port(b"http://10.0.0.1:2379"), b"10.0.0.1:2379");
        assert_eq!(host_port(b"https://[::1]:2379/x"), b"[::1]:2379");
        assert!(!needs_fix(b":authority", b"127.0.0.1:2379"));
        assert!(needs_fix(b":authority", b"unix://x"));
        assert!(!needs_fix(b":path", b"http://x"));
    }

    fn put_frame_vec(out: &mut Vec<u8>, kind: u8, flags: u8, stream_id: u32, payload: &[u8]) {
        let mut frame = BytesMut::new();
        put_frame(&mut frame, kind, flags, stream_id, payload);
        out.extend_from_slice(&frame);
    }
}
