//! The live-progress websocket: snapshots first, then every change in order; sockets on two
//! processes; Redis restarted under an open socket; bad messages; limits; pings; shutdown.

use std::time::Duration;

use futures_util::SinkExt;
use pixdrop::app::Role;
use serde_json::json;
use tokio_tungstenite::MaybeTlsStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::helpers::{TestApp, jpeg};
use crate::socket::{Socket, close_code, next, open, refused_upgrade, send, until_state, versions};

#[tokio::test]
async fn a_socket_that_subscribes_after_the_job_finished_gets_its_final_snapshot() {
    // The event is long gone; the snapshot says completed, with the variants, shaped as GET /jobs.
    let app = TestApp::spawn(Role::All).await;
    let id = app.upload_one(jpeg(640, 480)).await;
    let status = app.wait_for(&id, &["completed"]).await;

    let mut socket = open(&app.address, &format!("?job={id}")).await;
    let snapshot = next(&mut socket).await;
    assert_eq!(snapshot["type"], "snapshot");
    assert_eq!(snapshot["state"], "completed");
    assert_eq!(snapshot["variants"], status["variants"]);
    assert_eq!(snapshot["original"], status["original"]);
    assert_eq!(snapshot["version"], status["version"]);
}

#[tokio::test]
async fn a_socket_gets_the_snapshot_then_every_change_in_order() {
    // HTTP only at first, so the job waits queued; workers then start in another process.
    let app = TestApp::spawn(Role::HttpOnly).await;
    let id = app.upload_one(jpeg(800, 600)).await;
    let mut socket = open(&app.address, "").await;
    send(&mut socket, json!({ "subscribe": [id] })).await;
    let snapshot = next(&mut socket).await;
    assert_eq!(
        (&snapshot["type"], &snapshot["state"]),
        (&json!("snapshot"), &json!("queued"))
    );

    let mut workers = app.sibling(Role::WorkerOnly).await;
    let events = until_state(&mut socket, &id, "completed").await;
    assert!(events.iter().all(|e| e["type"] == "event"));
    assert_eq!(events[0]["state"], "active");
    let steps: Vec<&str> = events.iter().filter_map(|e| e["step"].as_str()).collect();
    assert!(
        steps.contains(&"decoded"),
        "progress steps are streamed: {steps:?}"
    );
    let mut all = vec![snapshot];
    all.extend(events.iter().cloned());
    let versions = versions(&all);
    assert!(
        versions.windows(2).all(|w| w[0] < w[1]),
        "in order, once each: {versions:?}"
    );
    let progress: Vec<u64> = events
        .iter()
        .map(|e| e["progress"].as_u64().unwrap())
        .collect();
    assert!(
        progress.windows(2).all(|w| w[0] <= w[1]),
        "progress only grows: {progress:?}"
    );

    let done = events.last().unwrap();
    assert_eq!(done["progress"], 100);
    let variants = done["variants"].as_array().unwrap();
    assert_eq!(variants.len(), 2);
    for variant in variants {
        let url = variant["url"].as_str().unwrap();
        let response = app.client.get(app.url(url)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{url} is served");
    }
    workers.stop().await;
}

#[tokio::test]
async fn sockets_on_two_processes_both_see_every_event_of_a_job_run_by_another() {
    // A and B serve HTTP only; the jobs run in a third, worker-only process. Each event reaches
    // both processes through their one Redis subscription, and each fans it out to its socket.
    let app = TestApp::spawn(Role::HttpOnly).await;
    let mut other = app.sibling(Role::HttpOnly).await;
    let through_a = app.upload_one(jpeg(300, 200)).await;
    let mut on_a = open(&app.address, &format!("?job={through_a}")).await;
    let mut on_b = open(&other.address, &format!("?job={through_a}")).await;
    let through_b = app.upload_one(jpeg(200, 300)).await;
    for socket in [&mut on_a, &mut on_b] {
        assert_eq!(next(socket).await["state"], "queued");
        send(socket, json!({ "subscribe": [through_b] })).await;
    }

    let mut workers = app.sibling(Role::WorkerOnly).await;
    for socket in [&mut on_a, &mut on_b] {
        let mut done = Vec::new();
        while done.len() < 2 {
            let message = next(socket).await;
            if message["state"] == "completed" {
                assert_eq!(message["type"], "event", "seen live, not read afterwards");
                done.push(message["id"].as_str().unwrap().to_owned());
            }
        }
        done.sort();
        let mut expected = vec![through_a.clone(), through_b.clone()];
        expected.sort();
        assert_eq!(done, expected);
    }
    workers.stop().await;
    other.stop().await;
}

#[tokio::test]
async fn sockets_survive_a_redis_restart_and_end_with_the_current_state() {
    // One socket watches through the restart; another subscribes while Redis is down and is told
    // so, then gets the snapshot once Redis is back. Both see the job complete.
    let mut app = TestApp::spawn(Role::HttpOnly).await;
    let id = app.upload_one(jpeg(400, 300)).await;
    let mut before = open(&app.address, &format!("?job={id}")).await;
    assert_eq!(next(&mut before).await["state"], "queued");

    app.redis.server.stop();
    let mut during = open(&app.address, &format!("?job={id}")).await;
    let told = next(&mut during).await;
    assert_eq!(
        (&told["type"], &told["code"]),
        (&json!("error"), &json!("unavailable"))
    );
    app.redis
        .server
        .restart()
        .expect("redis restarts from its AOF");

    // The hub resubscribes and both sockets get a fresh snapshot of the (still queued) job.
    for socket in [&mut before, &mut during] {
        let resync = next(socket).await;
        assert_eq!(
            (&resync["type"], &resync["state"]),
            (&json!("snapshot"), &json!("queued"))
        );
    }
    let mut workers = app.sibling(Role::WorkerOnly).await;
    for socket in [&mut before, &mut during] {
        until_state(socket, &id, "completed").await;
    }
    workers.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn a_snapshot_redis_refused_follows_when_it_answers_again_though_the_subscription_held() {
    // Redis refuses the snapshot's read (an ACL takes HGETALL away) while the hub's subscription
    // stays up, so no resubscription will come: the socket must try again by itself.
    let mut app = TestApp::spawn_with(Role::HttpOnly, |s| s.websocket.resync_spread_ms = 200).await;
    let id = app.upload_one(jpeg(40, 30)).await;
    let mut admin = app.redis.conn().await;
    let acl = |rule: &'static str| {
        redis::cmd("ACL")
            .arg("SETUSER")
            .arg("default")
            .arg(rule)
            .clone()
    };
    let _: () = acl("-hgetall").query_async(&mut admin).await.unwrap();

    let mut socket = open(&app.address, &format!("?job={id}")).await;
    let told = next(&mut socket).await;
    assert_eq!(
        (&told["type"], &told["code"]),
        (&json!("error"), &json!("unavailable"))
    );
    // Still refused a little later: told again, nothing else.
    let again = next(&mut socket).await;
    assert_eq!(again["code"], "unavailable", "{again}");

    let _: () = acl("+hgetall").query_async(&mut admin).await.unwrap();
    let mut message = next(&mut socket).await;
    while message["code"] == "unavailable" {
        message = next(&mut socket).await;
    }
    assert_eq!(
        (&message["type"], &message["state"]),
        (&json!("snapshot"), &json!("queued"))
    );
    // And its events flow: a worker finishes the job.
    let mut workers = app.sibling(Role::WorkerOnly).await;
    until_state(&mut socket, &id, "completed").await;
    workers.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn after_a_redis_restart_sockets_resync_spread_over_the_window_not_all_at_once() {
    // Twenty sockets, a one-second window: their fresh snapshots arrive at scattered moments.
    let mut app =
        TestApp::spawn_with(Role::HttpOnly, |s| s.websocket.resync_spread_ms = 1000).await;
    let id = app.upload_one(jpeg(20, 20)).await;
    let mut sockets = Vec::new();
    for _ in 0..20 {
        let mut socket = open(&app.address, &format!("?job={id}")).await;
        assert_eq!(next(&mut socket).await["type"], "snapshot");
        sockets.push(socket);
    }
    app.redis
        .server
        .restart()
        .expect("redis restarts from its AOF");
    let arrivals = futures_util::future::join_all(sockets.iter_mut().map(|socket| async {
        let resync = next(socket).await;
        assert_eq!(resync["type"], "snapshot");
        tokio::time::Instant::now()
    }))
    .await;
    let first = *arrivals.iter().min().unwrap();
    let last = *arrivals.iter().max().unwrap();
    let spread = last - first;
    assert!(
        spread > Duration::from_millis(300) && spread <= Duration::from_millis(1500),
        "resyncs spread over {spread:?}"
    );
}

#[tokio::test]
async fn bad_messages_get_error_messages_and_the_socket_stays_usable() {
    let app = TestApp::spawn(Role::HttpOnly).await;
    let id = app.upload_one(jpeg(20, 20)).await;
    let mut socket = open(&app.address, "").await;

    let garbage = [
        Message::text("not json"),
        Message::text(r#"{"subscribe": "one id"}"#),
        Message::text(r#"{"watch": ["x"]}"#),
        Message::text("{}"),
        Message::binary(vec![0u8, 159, 146, 150]),
    ];
    for message in garbage {
        socket.send(message).await.unwrap();
        let answer = next(&mut socket).await;
        assert_eq!(
            (&answer["type"], &answer["code"]),
            (&json!("error"), &json!("bad-message"))
        );
        assert!(!answer["detail"].as_str().unwrap().is_empty());
    }

    let unknown = "0190f1f2-0000-7000-8000-000000000000";
    send(
        &mut socket,
        json!({ "subscribe": ["../../etc/passwd", unknown] }),
    )
    .await;
    for expected in ["../../etc/passwd", unknown] {
        let answer = next(&mut socket).await;
        assert_eq!(
            (&answer["code"], &answer["id"]),
            (&json!("not-found"), &json!(expected))
        );
    }

    send(&mut socket, json!({ "subscribe": [id] })).await;
    let snapshot = next(&mut socket).await;
    assert_eq!(
        (&snapshot["type"], &snapshot["id"]),
        (&json!("snapshot"), &json!(id))
    );
}

#[tokio::test]
async fn a_socket_watches_no_more_jobs_than_its_limit() {
    let app = TestApp::spawn_with(Role::HttpOnly, |s| s.websocket.max_subscriptions = 2).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(app.upload_one(jpeg(20, 20)).await);
    }
    let mut socket = open(&app.address, "").await;
    send(&mut socket, json!({ "subscribe": ids })).await;
    let answer = next(&mut socket).await;
    assert_eq!(answer["code"], "too-many-subscriptions");

    // Two fit; after unsubscribing one, the third fits too.
    send(&mut socket, json!({ "subscribe": &ids[..2] })).await;
    for id in &ids[..2] {
        assert_eq!(next(&mut socket).await["id"], json!(id));
    }
    send(
        &mut socket,
        json!({ "unsubscribe": [ids[0]], "subscribe": [ids[2]] }),
    )
    .await;
    let snapshot = next(&mut socket).await;
    assert_eq!(
        (&snapshot["type"], &snapshot["id"]),
        (&json!("snapshot"), &json!(ids[2]))
    );
}

#[tokio::test]
async fn sockets_over_the_per_client_and_total_caps_are_refused_before_the_upgrade() {
    let app = TestApp::spawn_with(Role::HttpOnly, |s| s.websocket.max_sockets_per_client = 2).await;
    let held = [open(&app.address, "").await, open(&app.address, "").await];
    let (status, body) = refused_upgrade(&app.address, "", None).await;
    assert_eq!((status, &body["code"]), (429, &json!("too-many-sockets")));
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    open(&app.address, "").await;

    let app = TestApp::spawn_with(Role::HttpOnly, |s| s.websocket.max_sockets = 1).await;
    let _held = open(&app.address, "").await;
    let (status, body) = refused_upgrade(&app.address, "", None).await;
    assert_eq!((status, &body["code"]), (503, &json!("unavailable")));
}

#[tokio::test]
async fn a_socket_flooding_messages_is_refused_then_closed_and_too_many_ids_are_refused() {
    let app = TestApp::spawn_with(Role::HttpOnly, |s| {
        s.websocket.max_messages_per_sec = 2;
        s.websocket.max_ids_per_message = 3;
    })
    .await;
    let mut socket = open(&app.address, "").await;
    let ids: Vec<String> = (0..4)
        .map(|_| pixdrop::queue::JobId::new().to_string())
        .collect();
    send(&mut socket, json!({ "subscribe": ids })).await;
    assert_eq!(next(&mut socket).await["code"], "too-many-ids");

    // One token left of the burst of two, then three refusals in a row close the socket.
    send(&mut socket, json!({ "unsubscribe": [ids[0]] })).await;
    for _ in 0..2 {
        send(&mut socket, json!({ "unsubscribe": [ids[0]] })).await;
        assert_eq!(next(&mut socket).await["code"], "rate-limited");
    }
    send(&mut socket, json!({ "unsubscribe": [ids[0]] })).await;
    assert_eq!(close_code(&mut socket).await, CloseCode::Policy);
}

#[tokio::test]
async fn a_message_over_the_size_limit_closes_the_socket_with_1009() {
    let app = TestApp::spawn_with(Role::HttpOnly, |s| s.websocket.max_message_bytes = 1024).await;
    let mut socket = open(&app.address, "").await;
    let huge = json!({ "subscribe": vec!["0190f1f2-0000-7000-8000-000000000000"; 100] });
    send(&mut socket, huge).await;
    assert_eq!(close_code(&mut socket).await, CloseCode::Size);
}

#[tokio::test]
async fn a_socket_that_answers_no_pings_is_closed() {
    // The client reads nothing, so it answers no ping: closed after the idle timeout.
    let app = TestApp::spawn_with(Role::HttpOnly, |s| {
        s.websocket.ping_interval_secs = 1;
        s.websocket.idle_timeout_secs = 2;
    })
    .await;
    let mut socket = open(&app.address, "").await;
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(close_code(&mut socket).await, CloseCode::Policy);
}

#[tokio::test]
async fn a_socket_that_answers_pings_stays_open() {
    // Reading answers pings (the client library pongs): still open after several idle timeouts.
    let app = TestApp::spawn_with(Role::HttpOnly, |s| {
        s.websocket.ping_interval_secs = 1;
        s.websocket.idle_timeout_secs = 2;
    })
    .await;
    let id = app.upload_one(jpeg(20, 20)).await;
    let mut socket = open(&app.address, "").await;
    let quiet = tokio::time::timeout(Duration::from_millis(4500), next(&mut socket)).await;
    assert!(quiet.is_err(), "no message while nothing happens");
    send(&mut socket, json!({ "subscribe": [id] })).await;
    assert_eq!(next(&mut socket).await["type"], "snapshot");
}

#[tokio::test]
async fn a_graceful_stop_closes_open_sockets_at_once_with_going_away() {
    // A long grace period: if open sockets held the HTTP server, stopping would take 30 s.
    let mut app = TestApp::spawn_with(Role::All, |s| s.workers.shutdown_grace_secs = 30).await;
    let mut socket = open(&app.address, "").await;
    tokio::time::timeout(Duration::from_secs(10), app.stop())
        .await
        .expect("stops without waiting for the socket");
    assert_eq!(close_code(&mut socket).await, CloseCode::Away);
}

#[tokio::test]
async fn unsubscribed_jobs_send_nothing_more() {
    let app = TestApp::spawn(Role::HttpOnly).await;
    let dropped = app.upload_one(jpeg(300, 300)).await;
    let kept = app.upload_one(jpeg(300, 300)).await;
    let mut socket = open(&app.address, &format!("?job={dropped}&job={kept}")).await;
    for _ in 0..2 {
        assert_eq!(next(&mut socket).await["type"], "snapshot");
    }
    send(&mut socket, json!({ "unsubscribe": [dropped] })).await;
    // No acknowledgement exists: a snapshot of `kept` after the unsubscribe shows it was read.
    send(&mut socket, json!({ "subscribe": [kept] })).await;
    assert_eq!(next(&mut socket).await["id"], json!(kept));

    let mut workers = app.sibling(Role::WorkerOnly).await;
    until_state(&mut socket, &kept, "completed").await;
    app.wait_for(&dropped, &["completed"]).await;
    let more = tokio::time::timeout(Duration::from_millis(300), next(&mut socket)).await;
    assert!(
        more.is_err(),
        "nothing about the unsubscribed job: {more:?}"
    );
    workers.stop().await;
}

#[tokio::test]
async fn a_slow_client_lags_only_itself_and_then_gets_a_fresh_snapshot() {
    // Two sockets watch one job; the slow one reads nothing, through a small receive buffer. A
    // burst of events for the job (published straight to the channel, as transitions would) fills
    // its buffers: it falls behind the broadcast while the fast one gets every event in order.
    const EVENTS: u64 = 20_000;
    let app = TestApp::spawn_with(Role::HttpOnly, |s| s.websocket.event_buffer = 4096).await;
    let id = app.upload_one(jpeg(20, 20)).await;
    let mut fast = open(&app.address, &format!("?job={id}")).await;
    let mut slow = open_with_small_buffer(&app.address, &format!("?job={id}")).await;
    assert_eq!(next(&mut slow).await["type"], "snapshot");
    let snapshot = next(&mut fast).await;
    assert_eq!(snapshot["type"], "snapshot");
    let first = snapshot["version"].as_u64().unwrap() + 1;

    let reader = tokio::spawn(async move {
        let mut last = first - 1;
        while last < first + EVENTS - 1 {
            let message = next(&mut fast).await;
            assert_eq!(message["type"], "event", "the fast socket never lagged");
            let version = message["version"].as_u64().unwrap();
            assert_eq!(version, last + 1, "every event, in order");
            last = version;
        }
    });
    let mut redis = app.redis.conn().await;
    for batch in (first..first + EVENTS).collect::<Vec<_>>().chunks(1000) {
        let mut pipe = redis::pipe();
        for version in batch {
            let event = json!({
                "id": id, "state": "active", "attempts": 1, "max_attempts": 3,
                "progress": version % 100, "step": "working", "error": null,
                "version": version, "updated_at": 1_700_000_000_000u64,
            });
            pipe.publish("{pixdrop}:events", event.to_string()).ignore();
        }
        let () = pipe.query_async(&mut redis).await.unwrap();
        // 20,000 events a second: the fast socket keeps up on a busy machine; the slow one,
        // reading nothing, falls behind all the same.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .expect("the fast socket got every event")
        .unwrap();

    // The slow socket, read at last: what it had buffered, then a fresh snapshot.
    let mut buffered = 0;
    loop {
        let message = next(&mut slow).await;
        if message["type"] == "snapshot" {
            assert_eq!(message["id"], json!(id));
            break;
        }
        buffered += 1;
        assert!(
            buffered < EVENTS,
            "the lagging socket got a snapshot, not every event"
        );
    }
}

/// A socket whose receive buffer is tiny, so a client that does not read backs up quickly.
async fn open_with_small_buffer(address: &str, query: &str) -> Socket {
    let host = address.trim_start_matches("http://");
    let tcp = tokio::net::TcpSocket::new_v4().unwrap();
    tcp.set_recv_buffer_size(4096).unwrap();
    let stream = tcp.connect(host.parse().unwrap()).await.unwrap();
    let url = format!("ws://{host}/ws{query}");
    let (socket, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream))
        .await
        .expect("websocket opens");
    socket
}
