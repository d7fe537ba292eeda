//! The websocket client the tests use: open (anonymously, with a ticket or a bearer token), send,
//! read the next message, wait for a state, read the close code.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens `/ws` (with `query`, e.g. `?job=ID`) on the process at `address` (`http://host:port`).
pub async fn open(address: &str, query: &str) -> Socket {
    let url = format!("{}/ws{query}", address.replacen("http", "ws", 1));
    let (socket, response) = connect_async(url).await.expect("websocket opens");
    assert_eq!(response.status(), 101);
    socket
}

/// Opens `/ws{query}` sending `Authorization: Bearer {token}`.
pub async fn open_with_token(address: &str, query: &str, token: &str) -> Socket {
    let (socket, response) = connect_async(request(address, query, Some(token)))
        .await
        .expect("websocket opens");
    assert_eq!(response.status(), 101);
    socket
}

/// The upgrade request for `/ws{query}`, with a bearer token if given.
pub fn request(
    address: &str,
    query: &str,
    token: Option<&str>,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = format!("{}/ws{query}", address.replacen("http", "ws", 1));
    let mut request = url.into_client_request().unwrap();
    if let Some(token) = token {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    request
}

/// Tries to open `/ws{query}` (with a bearer token if given), expecting an HTTP refusal: its
/// status and problem body.
pub async fn refused_upgrade(address: &str, query: &str, token: Option<&str>) -> (u16, Value) {
    let refused = connect_async(request(address, query, token))
        .await
        .expect_err("the socket is refused");
    let tokio_tungstenite::tungstenite::Error::Http(response) = refused else {
        panic!("refused with an HTTP answer: {refused:?}");
    };
    let body = serde_json::from_slice(response.body().as_deref().unwrap_or_default()).unwrap();
    (response.status().as_u16(), body)
}

pub async fn send(socket: &mut Socket, message: Value) {
    socket
        .send(Message::text(message.to_string()))
        .await
        .unwrap();
}

/// The next JSON message, skipping pings; fails the test on close or after 30 s.
pub async fn next(socket: &mut Socket) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let frame = tokio::time::timeout_at(deadline, socket.next())
            .await
            .expect("a message within 30 s")
            .expect("the socket is open")
            .expect("a valid frame");
        match frame {
            Message::Text(text) => return serde_json::from_str(&text).expect("JSON messages"),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// Every message about `id` until one says it is `state`; fails on messages about other jobs.
pub async fn until_state(socket: &mut Socket, id: &str, state: &str) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let message = next(socket).await;
        assert_eq!(message["id"], id, "only the watched job: {message}");
        let done = message["state"] == state;
        seen.push(message);
        if done {
            return seen;
        }
    }
}

/// The close frame's code, reading past pings and any messages still queued.
pub async fn close_code(socket: &mut Socket) -> CloseCode {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("closed within 10 s");
        match frame {
            Some(Ok(Message::Close(Some(close)))) => return close.code,
            Some(Ok(Message::Close(None))) | None => panic!("closed without a code"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => panic!("socket failed instead of closing: {e}"),
        }
    }
}

pub fn versions(messages: &[Value]) -> Vec<u64> {
    messages
        .iter()
        .map(|m| m["version"].as_u64().unwrap())
        .collect()
}
