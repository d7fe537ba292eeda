//! A client that speaks HTTP/1.1 by hand over TCP, as a hostile one would: chunked bodies of any
//! shape, sent at any pace, stopping when the server answers. Ordinary clients give up writing
//! when the server answers early and report a broken pipe instead of the answer; this one reads
//! the answer.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What the server answered.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Answer {
    /// The problem+json body.
    pub fn problem(&self) -> Value {
        assert!(
            self.head
                .to_ascii_lowercase()
                .contains("content-type: application/problem+json"),
            "{}",
            self.head
        );
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<String> {
        let wanted = format!("{}:", name.to_ascii_lowercase());
        self.head.lines().find_map(|line| {
            line.to_ascii_lowercase()
                .starts_with(&wanted)
                .then(|| line[wanted.len()..].trim().to_owned())
        })
    }
}

/// A chunked `POST /upload` to `address` (`http://127.0.0.1:PORT`) with a multipart boundary
/// `XyZ`: writes the head, then each chunk of `body`, waiting `pace` before each one, until the
/// body ends or the server answers.
pub async fn chunked_upload(
    address: &str,
    body: impl Iterator<Item = Vec<u8>>,
    pace: Duration,
) -> Answer {
    let mut stream = open(address).await;
    let head = "POST /upload HTTP/1.1\r\nHost: localhost\r\n\
                Content-Type: multipart/form-data; boundary=XyZ\r\n\
                Transfer-Encoding: chunked\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let answer = tokio::spawn(async move { read_answer(&mut reader).await });
    for chunk in body {
        if answer.is_finished() {
            break;
        }
        tokio::time::sleep(pace).await;
        let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
        if writer.write_all(&framed).await.is_err() {
            break;
        }
    }
    let _ = writer.write_all(b"0\r\n\r\n").await;
    tokio::time::timeout(Duration::from_secs(30), answer)
        .await
        .expect("the server answers")
        .unwrap()
}

/// A connection that sent a request head and the start of an upload, then holds still.
pub async fn stalled_upload(address: &str) -> TcpStream {
    let mut stream = open(address).await;
    let start = "POST /upload HTTP/1.1\r\nHost: localhost\r\n\
                 Content-Type: multipart/form-data; boundary=XyZ\r\n\
                 Content-Length: 1000000\r\n\r\n\
                 --XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n\r\n\
                 \u{ff}\u{d8}\u{ff}";
    stream.write_all(start.as_bytes()).await.unwrap();
    stream
}

/// Reads the answer a connection got (after a stall, say).
pub async fn answer_of(stream: TcpStream) -> Answer {
    let (mut reader, _writer) = stream.into_split();
    tokio::time::timeout(Duration::from_secs(30), read_answer(&mut reader))
        .await
        .expect("the server answers")
}

async fn open(address: &str) -> TcpStream {
    let host = address.trim_start_matches("http://");
    TcpStream::connect(host).await.unwrap()
}

/// Reads one response: its head, then a body of Content-Length bytes (or to the close).
async fn read_answer(reader: &mut (impl AsyncReadExt + Unpin)) -> Answer {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = reader.read(&mut chunk).await.unwrap_or(0);
        assert!(n > 0, "connection closed without an answer: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let length = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
        })
        .unwrap_or(usize::MAX);
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    body.truncate(length.min(body.len()));
    Answer {
        status,
        head,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// This process's resident memory, in bytes.
pub fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}
