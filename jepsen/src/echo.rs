//! A tiny TCP echo server and client, run inside namespaces by the network tests to probe reachability.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use anyhow::{bail, Context};

/// Echo every connection's bytes back until the peer closes; serves `max_connections` connections.
pub fn serve(listen: SocketAddr, max_connections: usize) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen).with_context(|| format!("bind {listen}"))?;
    println!("listening on {listen}");
    for stream in listener.incoming().take(max_connections) {
        let Ok(mut stream) = stream else { continue };
        std::thread::spawn(move || {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let mut buffer = [0u8; 1024];
            while let Ok(read) = stream.read(&mut buffer) {
                if read == 0 || stream.write_all(&buffer[..read]).is_err() {
                    break;
                }
            }
        });
    }
    Ok(())
}

/// Connect to `target`, send a line and expect it back, all within `timeout`.
pub fn probe(target: SocketAddr, timeout: Duration) -> anyhow::Result<()> {
    let mut stream = TcpStream::connect_timeout(&target, timeout).with_context(|| format!("connect to {target}"))?;
    stream.set_read_timeout(Some(timeout)).context("set a read timeout")?;
    stream.set_write_timeout(Some(timeout)).context("set a write timeout")?;
    let message = b"kuboard-jepsen probe\n";
    stream.write_all(message).context("send the probe")?;
    let mut answer = vec![0u8; message.len()];
    stream.read_exact(&mut answer).context("read the echo")?;
    if answer != message {
        bail!(
            "{target} answered {:?} instead of echoing",
            String::from_utf8_lossy(&answer)
        );
    }
    Ok(())
}
