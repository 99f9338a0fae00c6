//! A TCP proxy on loopback that delays every byte sent to the server by a
//! fixed time, so each request costs what a Lambda pays to reach S3 or
//! DynamoDB rather than loopback's fraction of a millisecond.
//!
//! Chunks are delayed, not serialized: a request's bytes leave `delay` after
//! they arrived, whatever else is in flight, so pipelined and concurrent
//! requests each pay the delay once. Answers flow back undelayed.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// A running proxy; stops when dropped.
pub struct DelayProxy {
    addr: SocketAddr,
    accept: JoinHandle<()>,
}

impl DelayProxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr, delay: Duration) -> io::Result<DelayProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(async move {
                    if let Err(e) = pipe(client, upstream, delay).await {
                        eprintln!("delay proxy: connection ended: {e}");
                    }
                });
            }
        });
        Ok(DelayProxy { addr, accept })
    }

    /// `http://127.0.0.1:PORT`, to use as an SDK endpoint.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn pipe(client: TcpStream, upstream: SocketAddr, delay: Duration) -> io::Result<()> {
    let server = TcpStream::connect(upstream).await?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut server_rx, mut server_tx) = server.into_split();

    let (chunks, mut due) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reader = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = client_rx.read(&mut buf).await?;
            if n == 0
                || chunks
                    .send((Instant::now() + delay, buf[..n].to_vec()))
                    .is_err()
            {
                return io::Result::Ok(());
            }
        }
    };
    let writer = async move {
        while let Some((at, chunk)) = due.recv().await {
            tokio::time::sleep_until(at).await;
            server_tx.write_all(&chunk).await?;
        }
        server_tx.shutdown().await
    };
    let back = async move {
        tokio::io::copy(&mut server_rx, &mut client_tx).await?;
        client_tx.shutdown().await
    };
    let (r, w, b) = tokio::join!(reader, writer, back);
    r.and(w).and(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_request_pays_the_delay_once_even_when_concurrent() {
        // Long enough that scheduling noise on a loaded machine is small beside it.
        const DELAY: Duration = Duration::from_millis(500);
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream = echo.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = echo.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let proxy = DelayProxy::start(upstream, DELAY).await.unwrap();
        let started = Instant::now();
        let clients: Vec<_> = (0..10)
            .map(|i| {
                let addr = proxy.addr;
                tokio::spawn(async move {
                    let mut s = TcpStream::connect(addr).await.unwrap();
                    let mut took = Vec::new();
                    for _ in 0..2 {
                        let t = Instant::now();
                        s.write_all(&[i; 4]).await.unwrap();
                        let mut back = [0u8; 4];
                        s.read_exact(&mut back).await.unwrap();
                        assert_eq!(back, [i; 4]);
                        took.push(t.elapsed());
                    }
                    took
                })
            })
            .collect();
        for c in clients {
            for t in c.await.unwrap() {
                assert!(t >= DELAY, "a round trip took {t:?}");
            }
        }
        let total = started.elapsed();
        // Serialized, the 20 round trips would take 20 × DELAY = 10 s; overlapped
        // about 2 × DELAY. The bound sits far from both, so load cannot flip it.
        assert!(
            total < DELAY * 8,
            "10 clients × 2 round trips must overlap (one after another: 10 s), took {total:?}"
        );
    }
}
