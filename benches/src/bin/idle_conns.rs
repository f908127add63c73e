//! Opens N keep-alive HTTP/1.1 connections to an address on loopback, sends one request on
//! each and reads its response, then holds them all idle: the client half of
//! `benches/load/idle-connections.sh`, which reads the proxy's memory before and after.
//!
//! ```text
//! idle_conns ADDR N [HOLD_SECS]
//! ```
//!
//! Prints `held N` once every connection has had its answer, then holds them until stdin
//! closes or HOLD_SECS (default 60) pass, whichever is first. Loopback only: the address must
//! be in 127.0.0.0/8 or ::1.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Connections opened at once.
const BATCH: usize = 500;

async fn one(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: idle\r\n\r\n").await?;
    // One small response: read until its head and body (Content-Length) have arrived.
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    loop {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf);
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return Ok(s);
            }
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = args
        .next()
        .ok_or("usage: idle_conns ADDR N [HOLD_SECS]")?
        .parse()?;
    if !addr.ip().is_loopback() {
        return Err("idle_conns talks to loopback addresses only".into());
    }
    let n: usize = args.next().ok_or("usage: idle_conns ADDR N")?.parse()?;
    let hold = Duration::from_secs(args.next().map_or(Ok(60), |s| s.parse())?);
    let mut held = Vec::with_capacity(n);
    while held.len() < n {
        let batch = BATCH.min(n - held.len());
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..batch {
            set.spawn(one(addr));
        }
        while let Some(r) = set.join_next().await {
            held.push(r??);
        }
    }
    println!("held {}", held.len());
    // Hold until stdin closes (the script is done reading memory) or the time is up.
    let (closed_tx, closed) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
        let _ = closed_tx.send(());
    });
    tokio::select! {
        _ = closed => {}
        () = tokio::time::sleep(hold) => {}
    }
    drop(held);
    Ok(())
}
