//! Sign-in with API tokens, and everything scoped to its subject: a second subject never reads,
//! lists, cancels, retries, downloads or hears the first one's jobs, and is told exactly what it
//! would be told of a job that never existed. Listing, websocket tickets, token revocation.

use pixdrop::app::Role;
use pixdrop::auth::AuthMode;
use pixdrop::auth::settings::TokenEntry;
use pixdrop::auth::tokens::token_digest;
use pixdrop::config::Settings;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::helpers::{TestApp, jpeg};
use crate::socket::{next, open, open_with_token, refused_upgrade, send};

pub const ALICE: &str = "pxd_alice-token-for-the-tests-only-0000000000";
pub const BOB: &str = "pxd_bob-token-for-the-tests-only-000000000000";

/// Token sign-in with Alice's and Bob's tokens.
pub fn with_tokens(settings: &mut Settings) {
    settings.auth.mode = AuthMode::Tokens;
    settings.auth.tokens = vec![token("alice", ALICE), token("bob", BOB)];
}

fn token(subject: &str, token: &str) -> TokenEntry {
    TokenEntry {
        subject: subject.into(),
        sha256: token_digest(token),
    }
}

/// Requests as one caller: with `Authorization: Bearer <token>`, or none.
pub struct As<'a> {
    pub app: &'a TestApp,
    pub token: Option<&'a str>,
}

impl<'a> As<'a> {
    pub fn new(app: &'a TestApp, token: &'a str) -> Self {
        Self {
            app,
            token: Some(token),
        }
    }

    pub fn anonymous(app: &'a TestApp) -> Self {
        Self { app, token: None }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.app.client.request(method, self.app.url(path));
        match self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.request(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap()
    }

    pub async fn delete(&self, path: &str) -> reqwest::Response {
        self.request(reqwest::Method::DELETE, path)
            .send()
            .await
            .unwrap()
    }

    pub async fn post(&self, path: &str) -> reqwest::Response {
        self.request(reqwest::Method::POST, path)
            .send()
            .await
            .unwrap()
    }

    pub async fn upload(&self, files: usize) -> reqwest::Response {
        let mut form = Form::new();
        for i in 0..files {
            form = form.part(
                "file",
                Part::bytes(jpeg(40, 30)).file_name(format!("{i}.jpg")),
            );
        }
        self.request(reqwest::Method::POST, "/upload")
            .multipart(form)
            .send()
            .await
            .unwrap()
    }

    /// Uploads `files` photos in one request, expecting 202: their ids.
    pub async fn upload_ok(&self, files: usize) -> Vec<String> {
        let response = self.upload(files).await;
        assert_eq!(response.status(), 202);
        let body: Value = response.json().await.unwrap();
        body["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|job| job["id"].as_str().unwrap().to_owned())
            .collect()
    }

    pub async fn ticket(&self) -> String {
        let response = self.post("/ws/ticket").await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        body["ticket"].as_str().unwrap().to_owned()
    }

    /// `GET path` expecting 200: the body.
    pub async fn json(&self, path: &str) -> Value {
        let response = self.get(path).await;
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.unwrap()
    }
}

/// Status, problem code and detail, with `id` written as `ID`: what tells two answers apart.
async fn answer(response: reqwest::Response, id: &str) -> (u16, Value) {
    let status = response.status().as_u16();
    let mut body: Value = response.json().await.unwrap();
    let detail = body["detail"]
        .as_str()
        .unwrap_or_default()
        .replace(id, "ID");
    body["detail"] = json!(detail);
    (status, body)
}

/// A job id that never existed, of the same shape as a real one.
fn never_existed() -> String {
    pixdrop::queue::JobId::new().to_string()
}

#[tokio::test]
async fn with_sign_in_on_every_route_that_acts_for_someone_answers_401_with_a_challenge() {
    // The page, its static files, the limits and health stay open; nothing else does.
    let app = TestApp::spawn_with(Role::HttpOnly, with_tokens).await;
    let nobody = As::anonymous(&app);
    let id = never_existed();
    let refused = [
        nobody.upload(1).await,
        nobody.get("/jobs").await,
        nobody.get(&format!("/jobs/{id}")).await,
        nobody.delete(&format!("/jobs/{id}")).await,
        nobody.post(&format!("/jobs/{id}/retry")).await,
        nobody.get("/me").await,
        nobody.post("/ws/ticket").await,
    ];
    for response in refused {
        let url = response.url().to_string();
        assert_eq!(response.status(), 401, "{url}");
        assert_eq!(
            response.headers()["www-authenticate"],
            "Bearer realm=\"pixdrop\"",
            "{url}"
        );
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{url}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "unauthenticated", "{url}");
    }
    let (status, body) = refused_upgrade(&app.address, "", None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("invalid-credentials"))
    );
    for open_path in ["/", "/limits", "/healthz", "/readyz"] {
        assert_eq!(nobody.get(open_path).await.status(), 200, "{open_path}");
    }
}

#[tokio::test]
async fn unknown_tokens_other_schemes_and_revoked_tokens_are_refused() {
    let mut app = TestApp::spawn_with(Role::HttpOnly, with_tokens).await;
    let alice = As::new(&app, ALICE);
    let me = alice.json("/me").await;
    assert_eq!(
        me,
        json!({ "subject": "alice", "auth": "tokens", "expires_at": null })
    );

    let unknown = As::new(&app, "pxd_not-a-token-anyone-was-given");
    let response = unknown.get("/me").await;
    assert_eq!(response.status(), 401);
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "invalid-credentials");

    let basic = app
        .client
        .get(app.url("/me"))
        .basic_auth("alice", Some(ALICE))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 401);
    assert!(
        basic.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_request")
    );

    // Bob's entry leaves the settings; the reload (SIGHUP) puts that in force at once.
    let mut revoked = app.settings.clone();
    revoked.auth.tokens.retain(|entry| entry.subject != "bob");
    app.reload_auth(&revoked);
    let bob = As::new(&app, BOB);
    assert_eq!(bob.get("/me").await.status(), 401);
    let alice = As::new(&app, ALICE);
    assert_eq!(alice.get("/me").await.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn a_second_subject_never_reads_cancels_retries_lists_downloads_or_hears_anothers_job() {
    // HTTP only: Alice's job stays queued, so every action on it is possible for her.
    let app = TestApp::spawn_with(Role::HttpOnly, with_tokens).await;
    let alice = As::new(&app, ALICE);
    let bob = As::new(&app, BOB);
    let id = alice.upload_ok(1).await.remove(0);
    let ghost = never_existed();

    // Bob opens a socket and asks for Alice's job: not found, as a made-up id is.
    let mut bobs_socket = open(&app.address, &format!("?ticket={}", bob.ticket().await)).await;
    send(&mut bobs_socket, json!({ "subscribe": [id] })).await;
    let heard = next(&mut bobs_socket).await;
    send(&mut bobs_socket, json!({ "subscribe": [ghost] })).await;
    let heard_of_ghost = next(&mut bobs_socket).await;
    assert_eq!(heard["type"], "error");
    assert_eq!(heard["code"], heard_of_ghost["code"]);
    assert_eq!(
        heard["detail"].as_str().unwrap().replace(&id, "ID"),
        heard_of_ghost["detail"]
            .as_str()
            .unwrap()
            .replace(&ghost, "ID")
    );

    for (path, method) in [
        ("/jobs/{}", reqwest::Method::GET),
        ("/jobs/{}", reqwest::Method::DELETE),
        ("/jobs/{}/retry", reqwest::Method::POST),
    ] {
        let of = |job: &str| path.replace("{}", job);
        let on_alices = bob.request(method.clone(), &of(&id)).send().await.unwrap();
        let on_ghost = bob
            .request(method.clone(), &of(&ghost))
            .send()
            .await
            .unwrap();
        let (on_alices, on_ghost) = (answer(on_alices, &id).await, answer(on_ghost, &ghost).await);
        assert_eq!(on_alices.0, 404, "{method} {path}");
        assert_eq!(on_alices, on_ghost, "{method} {path}");
    }
    assert_eq!(bob.json("/jobs").await["jobs"], json!([]));

    // Bob's cancel changed nothing; Alice's own actions work, and Bob's socket hears none of them.
    let status = alice.json(&format!("/jobs/{id}")).await;
    assert_eq!(status["state"], "queued");
    assert_eq!(alice.delete(&format!("/jobs/{id}")).await.status(), 200);
    assert_eq!(alice.post(&format!("/jobs/{id}/retry")).await.status(), 202);

    // Her original's URL is signed for her; the bare path, or a made-up signature, gets nothing.
    let original = status["original"]["url"].as_str().unwrap();
    assert!(original.contains("&sig="), "{original}");
    assert_eq!(
        bob.get(original).await.status(),
        200,
        "a signed URL is a capability"
    );
    let bare = original.split('?').next().unwrap();
    assert_eq!(bob.get(bare).await.status(), 403);
    let forged = format!("{}AAAA", original);
    assert_eq!(bob.get(&forged).await.status(), 403);

    // The next thing Bob's socket says answers his next message: nothing of Alice's came between.
    send(&mut bobs_socket, json!({ "subscribe": [never_existed()] })).await;
    let after = next(&mut bobs_socket).await;
    assert_eq!(after["type"], "error", "{after}");
    assert_eq!(after["code"], "not-found");
}

#[tokio::test]
async fn the_caller_lists_its_own_jobs_newest_first_a_page_at_a_time_filtered_by_state() {
    let app = TestApp::spawn_with(Role::HttpOnly, with_tokens).await;
    let alice = As::new(&app, ALICE);
    let bob = As::new(&app, BOB);
    let mut ids = alice.upload_ok(3).await;
    ids.extend(alice.upload_ok(2).await);
    let bobs = bob.upload_ok(1).await;
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();

    let mut listed = Vec::new();
    let mut page = alice.json("/jobs?limit=2").await;
    let mut pages = 1;
    loop {
        for job in page["jobs"].as_array().unwrap() {
            assert!(job["original"]["url"].is_string(), "whole job views: {job}");
            listed.push(job["id"].as_str().unwrap().to_owned());
        }
        let Some(next) = page["next"].as_str() else {
            break;
        };
        page = alice.json(next).await;
        pages += 1;
    }
    assert_eq!(listed, newest_first);
    assert_eq!(pages, 3);

    assert_eq!(
        alice.delete(&format!("/jobs/{}", ids[1])).await.status(),
        200
    );
    let cancelled = alice.json("/jobs?state=cancelled").await;
    let cancelled: Vec<&str> = cancelled["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|job| job["id"].as_str().unwrap())
        .collect();
    assert_eq!(cancelled, [ids[1].as_str()]);
    let queued = alice.json("/jobs?state=queued&state=active").await;
    assert_eq!(queued["jobs"].as_array().unwrap().len(), 4);

    let bobs_list = bob.json("/jobs").await;
    assert_eq!(bobs_list["jobs"][0]["id"], bobs[0].as_str());
    assert_eq!(bobs_list["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(bobs_list["next"], Value::Null);

    for bad in [
        "/jobs?state=lost",
        "/jobs?limit=0",
        "/jobs?limit=101",
        "/jobs?cursor=abc",
        "/jobs?sort=asc",
    ] {
        let response = alice.get(bad).await;
        assert_eq!(response.status(), 400, "{bad}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "bad-query", "{bad}");
    }
}

#[tokio::test]
async fn a_ticket_opens_one_socket_once_on_either_instance() {
    // Tickets live in Redis: one issued by this instance opens a socket on the other, once.
    let app = TestApp::spawn_with(Role::HttpOnly, with_tokens).await;
    let other = app.sibling(Role::HttpOnly).await;
    let alice = As::new(&app, ALICE);
    let id = alice.upload_ok(1).await.remove(0);

    let ticket = alice.ticket().await;
    let mut socket = open(&other.address, &format!("?ticket={ticket}&job={id}")).await;
    let snapshot = next(&mut socket).await;
    assert_eq!(
        (snapshot["type"].as_str(), snapshot["id"].as_str()),
        (Some("snapshot"), Some(id.as_str()))
    );

    for address in [&app.address, &other.address] {
        let (status, body) = refused_upgrade(address, &format!("?ticket={ticket}"), None).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (401, Some("invalid-credentials"))
        );
    }
    let (status, _) = refused_upgrade(&app.address, "?ticket=made-up", None).await;
    assert_eq!(status, 401);

    // A client that can set headers needs no ticket.
    let mut socket = open_with_token(&app.address, &format!("?job={id}"), ALICE).await;
    assert_eq!(next(&mut socket).await["type"], "snapshot");
    let (status, _) = refused_upgrade(&app.address, "", Some("pxd_wrong")).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn without_sign_in_there_is_no_list_of_everyones_uploads() {
    let app = TestApp::spawn(Role::HttpOnly).await;
    let anyone = As::anonymous(&app);
    anyone.upload_ok(1).await;
    let response = anyone.get("/jobs").await;
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "listing-needs-sign-in");
    let me = anyone.json("/me").await;
    assert_eq!(
        me,
        json!({ "subject": null, "auth": "off", "expires_at": null })
    );
}

#[tokio::test]
async fn hostile_listing_queries_and_tickets_are_bounded_answers_not_errors() {
    let app = TestApp::spawn_with(Role::HttpOnly, with_tokens).await;
    let alice = As::new(&app, ALICE);
    alice.upload_ok(2).await;
    // Two states asked for a thousand times each: one filter, and a next page naming each once.
    let query = "&state=queued&state=failed".repeat(1000);
    let page = alice.json(&format!("/jobs?limit=1{query}")).await;
    assert_eq!(page["jobs"].as_array().unwrap().len(), 1);
    let next = page["next"].as_str().unwrap();
    assert_eq!(next.matches("state=queued").count(), 1, "{next}");
    assert_eq!(next.matches("state=failed").count(), 1, "{next}");
    // A ticket of any length is an unknown ticket: 401, before it is looked up.
    let long = "t".repeat(4000);
    let (status, body) = refused_upgrade(&app.address, &format!("?ticket={long}"), None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("invalid-credentials"))
    );
    // A bearer token of any shape is just not a token; the challenge stays one clean header.
    let junk = As::new(&app, "not \"a\" token \\ at all");
    let response = junk.get("/me").await;
    assert_eq!(response.status(), 401);
    let challenge = response.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.starts_with("Bearer realm=\"pixdrop\", error=\"invalid_token\""),
        "{challenge}"
    );
}
