//! Per-subject quotas, held in Redis: two instances on one Redis enforce one limit together.

use std::time::Duration;

use pixdrop::app::Role;
use serde_json::Value;

use crate::auth::{ALICE, As, BOB, with_tokens};
use crate::helpers::TestApp;
use crate::socket::{open_with_token, refused_upgrade, request};

#[tokio::test]
async fn the_upload_quota_holds_across_two_instances_and_refuses_a_request_whole() {
    let mut app = TestApp::spawn_with(Role::HttpOnly, |s| {
        with_tokens(s);
        s.quotas.uploads_per_minute = 3;
    })
    .await;
    let sibling = app.sibling(Role::HttpOnly).await;
    let first_address = app.address.clone();

    assert_eq!(As::new(&app, ALICE).upload(2).await.status(), 202);
    app.address = sibling.address.clone();
    let alice_there = As::new(&app, ALICE);
    // Two more would make four: refused whole, and taking nothing.
    let refused = alice_there.upload(2).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(alice_there.upload(1).await.status(), 202);

    app.address = first_address;
    let alice = As::new(&app, ALICE);
    let refused = alice.upload(1).await;
    assert_eq!(refused.status(), 429);
    let wait: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "Retry-After: {wait}");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "upload-quota");
    assert_eq!(
        alice.json("/jobs").await["jobs"].as_array().unwrap().len(),
        3
    );
    // Bob's minute is his own.
    assert_eq!(As::new(&app, BOB).upload(1).await.status(), 202);
}

#[tokio::test]
async fn the_storage_quota_counts_every_instances_uploads() {
    let mut app = TestApp::spawn_with(Role::HttpOnly, |s| {
        with_tokens(s);
        // Room for two of the tests' photos (each a little over 1 KB), not three.
        s.quotas.stored_bytes = 2 * crate::helpers::jpeg(40, 30).len() as u64 + 100;
    })
    .await;
    let sibling = app.sibling(Role::HttpOnly).await;
    assert_eq!(As::new(&app, ALICE).upload(1).await.status(), 202);
    app.address = sibling.address.clone();
    let alice = As::new(&app, ALICE);
    assert_eq!(alice.upload(1).await.status(), 202);
    let refused = alice.upload(1).await;
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "storage-quota");
    assert_eq!(As::new(&app, BOB).upload(1).await.status(), 202);
}

#[tokio::test]
async fn the_socket_quota_holds_across_instances_and_a_closed_socket_frees_its_place() {
    let app = TestApp::spawn_with(Role::HttpOnly, |s| {
        with_tokens(s);
        s.quotas.sockets = 1;
    })
    .await;
    let sibling = app.sibling(Role::HttpOnly).await;
    let mut socket = open_with_token(&app.address, "", ALICE).await;
    let (status, body) = refused_upgrade(&sibling.address, "", Some(ALICE)).await;
    assert_eq!((status, body["code"].as_str()), (429, Some("socket-quota")));
    let bobs = open_with_token(&sibling.address, "", BOB).await;

    socket.close(None).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = refused_or_open(&sibling.address).await;
        if status == 101 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the place was never freed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(bobs);
}

/// 101 when Alice's socket opens on `address`, else the refusal's status.
async fn refused_or_open(address: &str) -> (u16, Option<crate::socket::Socket>) {
    match tokio_tungstenite::connect_async(request(address, "", Some(ALICE))).await {
        Ok((socket, _)) => (101, Some(socket)),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            (response.status().as_u16(), None)
        }
        Err(e) => panic!("{e}"),
    }
}
