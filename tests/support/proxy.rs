//! A TCP proxy in front of a test's redis-server that can lose one reply: the request carrying a
//! marker reaches Redis and runs, then the connection is cut before the answer gets back, as a
//! network fault or a client's timeout would leave it.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub struct RedisProxy {
    port: u16,
    armed: Arc<Mutex<Option<Vec<u8>>>>,
    accepting: tokio::task::JoinHandle<()>,
}

impl RedisProxy {
    /// Forwards a free loopback port to the Redis on `target`.
    pub async fn start(target: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let armed: Arc<Mutex<Option<Vec<u8>>>> = Arc::default();
        let shared = armed.clone();
        let accepting = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(client, target, shared.clone()));
            }
        });
        Self {
            port,
            armed,
            accepting,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The next request containing `marker` runs on Redis, but its connection is cut before the
    /// answer is passed on.
    pub fn lose_reply_to(&self, marker: &[u8]) {
        *self.armed.lock().unwrap_or_else(PoisonError::into_inner) = Some(marker.to_vec());
    }

    /// True once the armed reply was lost.
    pub fn fired(&self) -> bool {
        self.armed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none()
    }
}

impl Drop for RedisProxy {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

async fn relay(client: TcpStream, target: u16, armed: Arc<Mutex<Option<Vec<u8>>>>) {
    let Ok(server) = TcpStream::connect(("127.0.0.1", target)).await else {
        return;
    };
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let answers = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = from_server.read(&mut buf).await {
            if n == 0 || to_client.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    });
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n) = from_client.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let chunk = &buf[..n];
        let hit = {
            let mut armed = armed.lock().unwrap_or_else(PoisonError::into_inner);
            let hit = armed
                .as_ref()
                .is_some_and(|marker| chunk.windows(marker.len()).any(|w| w == marker));
            if hit {
                *armed = None;
            }
            hit
        };
        if hit {
            // Stop passing answers on, let the request run, then cut the connection.
            answers.abort();
            let _ = to_server.write_all(chunk).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            return;
        }
        if to_server.write_all(chunk).await.is_err() {
            break;
        }
    }
    answers.abort();
}
