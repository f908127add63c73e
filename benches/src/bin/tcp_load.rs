//! The TCP load of `benches/load/tcp-compare.sh`: an echo upstream and two load generators.
//!
//! ```text
//! tcp_load serve ADDR                      echo every byte back; at the client's EOF, close
//! tcp_load bulk ADDR CONNS SECONDS         CONNS connections stream 64 KiB writes for SECONDS
//!                                          while reading the echo; prints `bytes N secs S`
//! tcp_load conns ADDR WORKERS SECONDS      WORKERS loops of connect, "ping\n", half-close,
//!                                          read the echo to EOF, close; prints `conns N secs S`
//! ```
//!
//! Loopback only: ADDR must be in 127.0.0.0/8 or ::1. Every loop is bounded by SECONDS (and
//! `serve` runs until killed). Bytes counted by `bulk` are the echoed ones, so a proxy moves
//! twice that (both directions).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

const CHUNK: usize = 64 * 1024;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: tcp_load serve ADDR | bulk ADDR CONNS SECONDS | conns ADDR WORKERS SECONDS";
    let addr: SocketAddr = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("{usage}"));
    assert!(
        addr.ip().is_loopback(),
        "loopback addresses only, got {addr}"
    );
    let n = |i: usize| -> u64 {
        args.get(i)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{usage}"))
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    match args.first().map(String::as_str) {
        Some("serve") => rt.block_on(serve(addr)),
        Some("bulk") => {
            let secs = n(3);
            let (bytes, took) = rt.block_on(bulk(addr, n(2), Duration::from_secs(secs)));
            println!("bytes {bytes} secs {:.3}", took.as_secs_f64());
        }
        Some("conns") => {
            let secs = n(3);
            let (conns, took) = rt.block_on(conns(addr, n(2), Duration::from_secs(secs)));
            println!("conns {conns} secs {:.3}", took.as_secs_f64());
        }
        _ => panic!("{usage}"),
    }
}

async fn serve(addr: SocketAddr) {
    let l = TcpListener::bind(addr).await.expect("bind the upstream");
    println!("listening {}", l.local_addr().expect("an address"));
    loop {
        let Ok((s, _)) = l.accept().await else {
            continue;
        };
        let _ = s.set_nodelay(true);
        tokio::spawn(async move {
            let (mut r, mut w) = s.into_split();
            let _ = tokio::io::copy(&mut r, &mut w).await;
            let _ = w.shutdown().await;
        });
    }
}

async fn bulk(addr: SocketAddr, conns: u64, secs: Duration) -> (u64, Duration) {
    let echoed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + secs;
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let echoed = Arc::clone(&echoed);
        tasks.push(tokio::spawn(async move {
            let s = TcpStream::connect(addr).await.expect("connect");
            let (mut r, mut w) = s.into_split();
            let writer = tokio::spawn(async move {
                let chunk = vec![b'x'; CHUNK];
                while Instant::now() < deadline {
                    if w.write_all(&chunk).await.is_err() {
                        return;
                    }
                }
                let _ = w.shutdown().await;
            });
            let mut buf = vec![0u8; CHUNK];
            // Bounded: the writer stops at the deadline and the echo then ends; the timeout
            // guards against a proxy that never closes.
            let _ = tokio::time::timeout_at(deadline + Duration::from_secs(10), async {
                loop {
                    match r.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            echoed.fetch_add(n as u64, Ordering::Relaxed);
                        }
                    }
                }
            })
            .await;
            let _ = writer.await;
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    (echoed.load(Ordering::Relaxed), start.elapsed())
}

async fn conns(addr: SocketAddr, workers: u64, secs: Duration) -> (u64, Duration) {
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + secs;
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let done = Arc::clone(&done);
        tasks.push(tokio::spawn(async move {
            let mut buf = [0u8; 64];
            while Instant::now() < deadline {
                let one = async {
                    let mut s = TcpStream::connect(addr).await?;
                    s.write_all(b"ping\n").await?;
                    s.shutdown().await?;
                    let mut got = 0;
                    loop {
                        match s.read(&mut buf).await? {
                            0 => break,
                            n => got += n,
                        }
                    }
                    Ok::<_, std::io::Error>(got == 5)
                };
                match tokio::time::timeout(Duration::from_secs(5), one).await {
                    Ok(Ok(true)) => {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => return,
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    (done.load(Ordering::Relaxed), start.elapsed())
}
