//! Deleting for real: an upload's owner (or the holder of its delete token) removes it and its
//! files; two uploads of the same bytes share one original until both are gone; an administrator
//! purges content everywhere and blocks it; expiry, crashes and orphans leave nothing behind and
//! never remove what is still referenced.

use std::time::{Duration, SystemTime};

use pixdrop::app::Role;
use pixdrop::auth::quotas::{QuotaSettings, Quotas};
use pixdrop::cleanup::Cleanup;
use pixdrop::pipeline::ImageFormat;
use pixdrop::queue::{DeleteProof, Garbage, JobId, KeyPrefix, ManualClock, NewJob, Queue, Subject};
use pixdrop::storage::{Storage, StorageSettings};
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::auth::{ALICE, As, BOB, with_tokens};
use crate::helpers::{TestApp, jpeg};
use crate::socket::{next, open, send};
use crate::support::{TestRedis, eventually};

/// Uploads `bytes` as one file, as `token`'s subject (or anonymously): the job's id and its
/// delete token.
async fn upload(app: &TestApp, token: Option<&str>, bytes: Vec<u8>) -> (String, String) {
    let form = Form::new().part("file", Part::bytes(bytes).file_name("photo.jpg"));
    let mut request = app.client.post(app.url("/upload")).multipart(form);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    let job = &body["jobs"][0];
    assert_eq!(
        job["delete_url"],
        format!("/uploads/{}", job["id"].as_str().unwrap())
    );
    (
        job["id"].as_str().unwrap().to_owned(),
        job["delete_token"].as_str().unwrap().to_owned(),
    )
}

/// Waits for the job to complete: its view.
async fn completed(caller: &As<'_>, id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let job = caller.json(&format!("/jobs/{id}")).await;
        if job["state"] == "completed" {
            return job;
        }
        assert!(tokio::time::Instant::now() < deadline, "job stuck: {job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every media URL of a job's view: its original, then its variants.
fn media_urls(job: &Value) -> Vec<String> {
    let mut urls = vec![job["original"]["url"].as_str().unwrap().to_owned()];
    for variant in job["variants"].as_array().unwrap() {
        urls.push(variant["url"].as_str().unwrap().to_owned());
    }
    urls
}

async fn statuses(app: &TestApp, urls: &[String]) -> Vec<u16> {
    let mut found = Vec::new();
    for url in urls {
        found.push(
            app.client
                .get(app.url(url))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    found
}

fn originals(app: &TestApp) -> Vec<String> {
    app.stored_files()
        .into_iter()
        .filter(|f| f.starts_with("originals/"))
        .collect()
}

fn variants_of(app: &TestApp, id: &str) -> Vec<String> {
    app.stored_files()
        .into_iter()
        .filter(|f| f.starts_with(&format!("variants/{id}/")))
        .collect()
}

#[tokio::test]
async fn the_delete_token_deletes_its_upload_once_and_no_other() {
    // Without sign-in the token is the only proof: a wrong one, another upload's, or none is
    // refused and changes nothing; the right one removes the job, its variants and its original,
    // tells a watching socket, and works once.
    let app = TestApp::spawn(Role::All).await;
    let caller = As::anonymous(&app);
    let (id, token) = upload(&app, None, jpeg(64, 48)).await;
    let (other, other_token) = upload(&app, None, jpeg(80, 60)).await;
    let job = completed(&caller, &id).await;
    completed(&caller, &other).await;
    let urls = media_urls(&job);
    assert_eq!(statuses(&app, &urls).await, vec![200; urls.len()]);

    let path = format!("/uploads/{id}");
    let no_proof = app.client.delete(app.url(&path)).send().await.unwrap();
    assert_eq!(no_proof.status(), 401);
    assert_eq!(
        no_proof.headers()["content-type"],
        "application/problem+json"
    );
    for wrong in ["not-the-token", other_token.as_str()] {
        let response = app
            .client
            .delete(app.url(&path))
            .bearer_auth(wrong)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{wrong}");
        let query = format!("{path}?token={wrong}");
        assert_eq!(
            app.client
                .delete(app.url(&query))
                .send()
                .await
                .unwrap()
                .status(),
            404
        );
    }
    // Hostile shapes: not an id, a huge token, a token given twice.
    let not_an_id = app
        .client
        .delete(app.url("/uploads/..%2F..%2Fetc"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(not_an_id.status(), 404);
    assert_eq!(
        not_an_id.headers()["content-type"],
        "application/problem+json"
    );
    let huge = format!("{path}?token={}", "x".repeat(8000));
    assert_eq!(
        app.client
            .delete(app.url(&huge))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let twice = format!("{path}?token={token}&token={token}");
    assert_eq!(
        app.client
            .delete(app.url(&twice))
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(caller.get(&format!("/jobs/{id}")).await.status(), 200);
    let bad_query = app
        .client
        .delete(app.url(&format!("{path}?tokn=x")))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_query.status(), 400);

    let mut socket = open(&app.address, "").await;
    send(&mut socket, json!({ "subscribe": [id] })).await;
    assert_eq!(next(&mut socket).await["type"], "snapshot");

    let response = app
        .client
        .delete(app.url(&format!("{path}?token={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(
        next(&mut socket).await,
        json!({ "type": "deleted", "id": id })
    );
    assert_eq!(caller.get(&format!("/jobs/{id}")).await.status(), 404);
    assert_eq!(statuses(&app, &urls).await, vec![404; urls.len()]);
    assert!(variants_of(&app, &id).is_empty());
    assert_eq!(
        originals(&app).len(),
        1,
        "only the other upload's original is left"
    );

    let again = app
        .client
        .delete(app.url(&path))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 404);
    assert_eq!(caller.get(&format!("/jobs/{other}")).await.status(), 200);
    assert!(!variants_of(&app, &other).is_empty());
}

#[tokio::test]
async fn two_owners_of_the_same_bytes_share_the_original_and_its_variants_until_both_delete() {
    // The second upload of the same bytes reuses the first's variants (hard links to the same
    // files, made once), yet each owner's delete takes only their own.
    let app = TestApp::spawn_with(Role::All, with_tokens).await;
    let (alice, bob) = (As::new(&app, ALICE), As::new(&app, BOB));
    let photo = jpeg(640, 480);
    let (a, _) = upload(&app, Some(ALICE), photo.clone()).await;
    let job_a = completed(&alice, &a).await;
    let (b, _) = upload(&app, Some(BOB), photo).await;
    let job_b = completed(&bob, &b).await;
    assert_eq!(originals(&app).len(), 1, "one file for both uploads");
    let described = |job: &Value| {
        let mut variants = job["variants"].clone();
        for v in variants.as_array_mut().unwrap() {
            v.as_object_mut().unwrap().remove("url");
        }
        (
            variants,
            job["original"]["width"].clone(),
            job["warnings"].clone(),
        )
    };
    assert_eq!(described(&job_a), described(&job_b));
    let inode = |id: &str| {
        use std::os::unix::fs::MetadataExt;
        let path = app.storage.path().join(format!("variants/{id}/large.webp"));
        std::fs::metadata(path).unwrap().ino()
    };
    assert_eq!(inode(&a), inode(&b), "made once, linked into the second");

    // Bob cannot delete Alice's upload: it reads as one that does not exist.
    assert_eq!(bob.delete(&format!("/uploads/{a}")).await.status(), 404);
    assert_eq!(alice.delete(&format!("/uploads/{a}")).await.status(), 204);
    assert_eq!(alice.get(&format!("/jobs/{a}")).await.status(), 404);
    let urls_a = media_urls(&job_a);
    assert_eq!(
        statuses(&app, &urls_a[1..]).await,
        vec![404; urls_a.len() - 1]
    );
    let urls_b = media_urls(&job_b);
    assert_eq!(
        statuses(&app, &urls_b).await,
        vec![200; urls_b.len()],
        "Bob's upload is whole"
    );
    assert_eq!(originals(&app).len(), 1);

    assert_eq!(bob.delete(&format!("/uploads/{b}")).await.status(), 204);
    assert_eq!(statuses(&app, &urls_b).await, vec![404; urls_b.len()]);
    assert!(
        originals(&app).is_empty(),
        "the last upload took the file with it"
    );
    let left: Vec<String> = app
        .stored_files()
        .into_iter()
        .filter(|f| f.starts_with("variants/") || f.starts_with("made/"))
        .collect();
    assert!(
        left.is_empty(),
        "variants and kept copies are gone: {left:?}"
    );
}

#[tokio::test]
async fn deleting_a_queued_upload_takes_it_out_of_the_queue() {
    // No workers: the job waits. Deleted, it leaves the waiting list and the owner's listing.
    let app = TestApp::spawn_with(Role::HttpOnly, with_tokens).await;
    let alice = As::new(&app, ALICE);
    let (id, token) = upload(&app, Some(ALICE), jpeg(40, 30)).await;
    let queue = app.redis.queue();
    assert_eq!(queue.depths().await.unwrap().waiting, 1);
    // Alice's credential and the token both prove it; the token, sent as the bearer while
    // sign-in is on, is no credential but still deletes.
    let response = app
        .client
        .delete(app.url(&format!("/uploads/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(queue.depths().await.unwrap().waiting, 0);
    assert_eq!(alice.json("/jobs").await["jobs"], json!([]));
    assert!(
        app.stored_files()
            .iter()
            .all(|f| !f.starts_with("originals/"))
    );
}

#[tokio::test]
async fn an_admin_purges_every_upload_of_some_bytes_and_blocks_them() {
    let app = TestApp::spawn_with(Role::All, |settings| {
        with_tokens(settings);
        settings.auth.admins = vec!["alice".into()];
    })
    .await;
    let (alice, bob) = (As::new(&app, ALICE), As::new(&app, BOB));
    let photo = jpeg(64, 48);
    let (a, _) = upload(&app, Some(ALICE), photo.clone()).await;
    let (b, _) = upload(&app, Some(BOB), photo.clone()).await;
    let (kept, _) = upload(&app, Some(BOB), jpeg(30, 20)).await;
    completed(&alice, &a).await;
    completed(&bob, &b).await;
    completed(&bob, &kept).await;
    let sha = sha256_hex(&photo);
    let path = format!("/admin/originals/{sha}?block=true");

    let refused = bob.delete(&path).await;
    assert_eq!(refused.status(), 403);
    assert_eq!(refused.json::<Value>().await.unwrap()["code"], "admin-only");
    assert_eq!(As::anonymous(&app).delete(&path).await.status(), 401);
    assert_eq!(
        alice.delete("/admin/originals/not-a-hash").await.status(),
        400
    );

    let response = alice.delete(&path).await;
    assert_eq!(response.status(), 200);
    let purged: Value = response.json().await.unwrap();
    let mut deleted: Vec<&str> = purged["deleted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    deleted.sort();
    let mut expected = vec![a.as_str(), b.as_str()];
    expected.sort();
    assert_eq!(deleted, expected);
    assert_eq!(
        (
            purged["blocked"].clone(),
            purged["original_removed"].clone()
        ),
        (json!(true), json!(true))
    );
    assert_eq!(alice.get(&format!("/jobs/{a}")).await.status(), 404);
    assert_eq!(bob.get(&format!("/jobs/{b}")).await.status(), 404);
    assert_eq!(
        bob.get(&format!("/jobs/{kept}")).await.status(),
        200,
        "other bytes stay"
    );
    assert_eq!(originals(&app).len(), 1);

    // Blocked: a re-upload is refused with its own code, and stores nothing.
    let form = Form::new().part("file", Part::bytes(photo.clone()).file_name("again.jpg"));
    let again = app
        .client
        .post(app.url("/upload"))
        .bearer_auth(BOB)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 451);
    let problem: Value = again.json().await.unwrap();
    assert_eq!(problem["code"], "blocked-content");
    assert_eq!(originals(&app).len(), 1);

    // Lifted, the bytes may come back.
    assert_eq!(
        alice
            .delete(&format!("/admin/blocked/{sha}"))
            .await
            .status(),
        204
    );
    assert_eq!(
        alice
            .delete(&format!("/admin/blocked/{sha}"))
            .await
            .status(),
        404
    );
    upload(&app, Some(BOB), photo).await;
}

#[tokio::test]
async fn without_sign_in_the_admin_api_is_closed_unless_opened_to_loopback_callers_no_proxy_forwarded()
 {
    let sha = "ab".repeat(32);
    let closed = TestApp::spawn(Role::HttpOnly).await;
    let path = closed.url(&format!("/admin/originals/{sha}"));
    let refused = closed.client.delete(&path).send().await.unwrap();
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("auth.admin_on_loopback"),
        "{body}"
    );

    let open = TestApp::spawn_with(Role::HttpOnly, |settings| {
        settings.auth.admin_on_loopback = true;
    })
    .await;
    let path = open.url(&format!("/admin/originals/{sha}"));
    for (header, value) in [
        ("x-forwarded-for", "203.0.113.9"),
        ("forwarded", "for=203.0.113.9"),
        ("x-real-ip", "203.0.113.9"),
        ("via", "1.1 proxy"),
    ] {
        let forwarded = open
            .client
            .delete(&path)
            .header(header, value)
            .send()
            .await
            .unwrap();
        assert_eq!(forwarded.status(), 403, "{header}");
    }
    let local = open.client.delete(&path).send().await.unwrap();
    assert_eq!(local.status(), 200);
    let body: Value = local.json().await.unwrap();
    assert_eq!(body["deleted"], json!([]));
    assert_eq!(body["blocked"], json!(false));
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Sets a file's (or directory's) time two hours back: older than any orphan grace.
fn age(path: &std::path::Path) {
    let past = SystemTime::now() - Duration::from_secs(7200);
    let file = std::fs::File::open(path).unwrap();
    file.set_modified(past).unwrap();
}

#[tokio::test]
async fn a_crash_between_the_records_and_the_files_is_finished_by_the_next_start() {
    // The process dies right after the delete script: records gone, files still on disk. The
    // sweep of the next start removes them.
    let mut app = TestApp::spawn(Role::All).await;
    let caller = As::anonymous(&app);
    let (id, token) = upload(&app, None, jpeg(64, 48)).await;
    completed(&caller, &id).await;
    app.stop().await;
    let queue = app.redis.queue();
    let digest = pixdrop::auth::delete_token::digest(&token);
    let proof = DeleteProof {
        subject: &Subject::anonymous(),
        token_digest: Some(&digest),
    };
    let removed = queue
        .delete(&id.parse().unwrap(), proof, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(removed.is_some());
    assert_eq!(
        originals(&app).len(),
        1,
        "files outlive the records until a sweep"
    );
    assert!(!variants_of(&app, &id).is_empty());

    app.start(Role::All).await;
    eventually(
        Duration::from_secs(10),
        "the sweep removes the files",
        || async { originals(&app).is_empty() && variants_of(&app, &id).is_empty() },
    )
    .await;
    assert_eq!(queue.garbage_depth().await.unwrap(), 0);
}

#[tokio::test]
async fn the_orphan_sweep_removes_old_unreferenced_files_and_nothing_referenced() {
    let mut app = TestApp::spawn(Role::All).await;
    let (id, _) = upload(&app, None, jpeg(64, 48)).await;
    completed(&As::anonymous(&app), &id).await;
    app.stop().await;
    let root = app.storage.path().to_path_buf();
    // Everything old, so only references keep it.
    let mut referenced = Vec::new();
    for file in app.stored_files() {
        if ["originals/", "variants/", "made/"]
            .iter()
            .any(|dir| file.starts_with(dir))
        {
            age(&root.join(&file));
            referenced.push(file);
        }
    }
    age(&root.join("variants").join(&id));
    let kept: Vec<&String> = referenced
        .iter()
        .filter(|f| f.starts_with("made/"))
        .collect();
    assert!(!kept.is_empty(), "the job's variants were kept for reuse");
    let kept_dir = root.join(kept[0].split('/').take(2).collect::<Vec<_>>().join("/"));
    age(&kept_dir);
    // A sweep died after setting the upload's original aside, and its entry is gone: the orphan
    // sweep finds the tomb, and as the content is referenced, puts it back.
    let original = referenced
        .iter()
        .find(|f| f.starts_with("originals/"))
        .unwrap()
        .clone();
    let name = original.rsplit('/').next().unwrap();
    let set_aside = root.join(format!("tmp/{name}.tomb"));
    std::fs::rename(root.join(&original), &set_aside).unwrap();
    age(&set_aside);
    // Orphans: an original and a job's variants no record names, and a tomb no sweep holds.
    let orphan_sha = "cd".repeat(32);
    std::fs::create_dir_all(root.join("originals/cd")).unwrap();
    let orphan = root.join(format!("originals/cd/{orphan_sha}.png"));
    std::fs::write(&orphan, b"orphan").unwrap();
    age(&orphan);
    let gone_job = JobId::new();
    let orphan_dir = root.join("variants").join(gone_job.to_string());
    std::fs::create_dir_all(&orphan_dir).unwrap();
    std::fs::write(orphan_dir.join("thumb.webp"), b"webp").unwrap();
    age(&orphan_dir);
    let tomb = root.join(format!("tmp/{}.jpg.tomb", "ef".repeat(32)));
    std::fs::write(&tomb, b"tomb").unwrap();
    age(&tomb);
    // Variants kept for bytes whose original and jobs are gone.
    let orphan_made = root.join(format!("made/{}", "ab".repeat(32)));
    std::fs::create_dir_all(orphan_made.join("0123456789abcdef")).unwrap();
    std::fs::write(orphan_made.join("0123456789abcdef/thumb.webp"), b"webp").unwrap();
    age(&orphan_made);
    // A young orphan may be an upload under way: left alone.
    let young = root.join(format!("originals/cd/{}.png", "cd".repeat(31) + "ef"));
    std::fs::write(&young, b"young").unwrap();

    app.start(Role::All).await;
    eventually(
        Duration::from_secs(10),
        "the orphans are removed",
        || async {
            !orphan.exists() && !orphan_dir.exists() && !tomb.exists() && !orphan_made.exists()
        },
    )
    .await;
    assert!(young.exists());
    assert!(!set_aside.exists());
    for file in &referenced {
        assert!(root.join(file).exists(), "{file} is referenced");
    }
    let caller = As::anonymous(&app);
    assert_eq!(caller.get(&format!("/jobs/{id}")).await.status(), 200);
}

#[tokio::test]
async fn expired_records_take_their_files_with_them() {
    let app = TestApp::spawn_with(Role::All, |settings| {
        settings.queue.completed_retention_secs = 1;
    })
    .await;
    let caller = As::anonymous(&app);
    let (id, _) = upload(&app, None, jpeg(64, 48)).await;
    completed(&caller, &id).await;
    eventually(
        Duration::from_secs(10),
        "the record and its files expire",
        || async {
            caller.get(&format!("/jobs/{id}")).await.status() == 404
                && originals(&app).is_empty()
                && variants_of(&app, &id).is_empty()
        },
    )
    .await;
}

#[tokio::test]
async fn with_two_instances_up_the_retention_runs_once_per_occurrence_and_removes_only_what_expired()
 {
    let app = TestApp::spawn_with(Role::All, |settings| {
        settings.queue.completed_retention_secs = 2;
        settings.storage.sweep_interval_ms = 100;
    })
    .await;
    let mut sibling = app.sibling(Role::All).await;
    let caller = As::anonymous(&app);
    let mut cut = jpeg(400, 300);
    cut.truncate(cut.len() / 2);
    let (failed, _) = upload(&app, None, cut).await;
    let (done, _) = upload(&app, None, jpeg(64, 48)).await;
    completed(&caller, &done).await;
    assert_eq!(app.wait_for(&failed, &["failed"]).await["state"], "failed");
    assert_eq!(originals(&app).len(), 2);

    let queue = app.redis.queue();
    let runs = || async {
        let tasks = queue.repeating().await.unwrap();
        let task = tasks.iter().find(|t| t.name == "expire-finished");
        task.map_or(0, |t| t.runs)
    };
    let (before, started) = (runs().await, std::time::Instant::now());
    eventually(
        Duration::from_secs(10),
        "the completed record and its files to expire",
        || async {
            caller.get(&format!("/jobs/{done}")).await.status() == 404
                && variants_of(&app, &done).is_empty()
                && originals(&app).len() == 1
        },
    )
    .await;
    // Past the expiry, a second more of both instances ticking every 100 ms.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (after, elapsed) = (runs().await, started.elapsed());
    let occurrences = (elapsed.as_millis() / 100) as u64;
    assert!(
        after > before && after - before <= occurrences + 2,
        "{} runs in {elapsed:?}: two instances each running it would make about {}",
        after - before,
        2 * occurrences
    );
    // The failed job's retention is a week: its record and original stay.
    let kept = caller.get(&format!("/jobs/{failed}")).await;
    assert_eq!(kept.status(), 200);
    assert_eq!(originals(&app).len(), 1);
    sibling.stop().await;
}

#[tokio::test]
async fn finished_records_past_their_cap_by_count_go_oldest_first_with_their_files() {
    let app = TestApp::spawn_with(Role::All, |settings| {
        settings.queue.completed_max_count = 2;
    })
    .await;
    let caller = As::anonymous(&app);
    let mut ids = Vec::new();
    for width in [64, 65, 66, 67] {
        let (id, _) = upload(&app, None, jpeg(width, 48)).await;
        completed(&caller, &id).await;
        ids.push(id);
    }
    eventually(
        Duration::from_secs(10),
        "the two oldest records and their files to go",
        || async {
            caller.get(&format!("/jobs/{}", ids[0])).await.status() == 404
                && caller.get(&format!("/jobs/{}", ids[1])).await.status() == 404
                && variants_of(&app, &ids[0]).is_empty()
                && variants_of(&app, &ids[1]).is_empty()
        },
    )
    .await;
    for id in &ids[2..] {
        assert_eq!(caller.get(&format!("/jobs/{id}")).await.status(), 200);
        assert!(!variants_of(&app, id).is_empty());
    }
    assert_eq!(originals(&app).len(), 2, "the kept jobs' originals stay");
}

/// Stores `bytes` as an upload does (pin, commit, enqueue taking over the pin) for `copies` jobs
/// of `owner`: the content's SHA-256 and the jobs' ids.
async fn store(
    queue: &Queue,
    storage: &Storage,
    owner: &Subject,
    bytes: &[u8],
    copies: usize,
) -> (String, Vec<JobId>) {
    let mut staged = storage.stage().await.unwrap();
    staged.write(bytes).await.unwrap();
    let sha = staged.sha256();
    let pin = queue
        .pin(std::slice::from_ref(&sha), Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    staged.commit(ImageFormat::Png).await.unwrap();
    let jobs: Vec<NewJob> = (0..copies)
        .map(|_| NewJob {
            content: Some(sha.clone()),
            ..NewJob::new(json!({}))
        })
        .collect();
    queue
        .enqueue_as(&jobs, owner, Some(&pin))
        .await
        .unwrap()
        .unwrap();
    (sha, jobs.iter().map(|job| job.id).collect())
}

/// One instance's removal, on `queue`'s Redis and the storage in `dir`.
fn cleanup_on(queue: Queue, dir: &std::path::Path) -> Cleanup {
    let storage = Storage::open(dir).unwrap();
    let prefix = KeyPrefix::parse("pixdrop").unwrap();
    let quotas = Quotas::new(queue.pool().clone(), &prefix, &QuotaSettings::default());
    let settings = StorageSettings::default();
    Cleanup::new(queue, storage, quotas, &settings, Duration::from_secs(5))
}

#[tokio::test]
async fn concurrent_sweeps_of_two_instances_remove_each_file_exactly_once() {
    // Two instances delete the two uploads of each of many contents at the same moment and sweep
    // at once: every file goes, exactly once between them, and nothing fails.
    const CONTENTS: usize = 20;
    let redis = TestRedis::start();
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (
        cleanup_on(redis.queue(), dir.path()),
        cleanup_on(redis.queue(), dir.path()),
    );
    let queue = redis.queue();
    let storage = Storage::open(dir.path()).unwrap();
    let owner = Subject::parse("owner").unwrap();
    let (mut first, mut second) = (Vec::new(), Vec::new());
    for i in 0..CONTENTS {
        let bytes = format!("content {i}");
        let (_, ids) = store(&queue, &storage, &owner, bytes.as_bytes(), 2).await;
        first.push(ids[0]);
        second.push(ids[1]);
    }
    assert_eq!(storage.stored_originals().unwrap().len(), CONTENTS);
    let proof = DeleteProof {
        subject: &owner,
        token_digest: None,
    };
    async fn run(
        cleanup: &Cleanup,
        queue: &Queue,
        ids: Vec<JobId>,
        proof: DeleteProof<'_>,
    ) -> usize {
        for id in &ids {
            let removed = queue
                .delete(id, proof, Duration::from_secs(5))
                .await
                .unwrap();
            assert!(removed.is_some());
        }
        let mut removed = 0;
        for _ in 0..5 {
            let report = cleanup.sweep().await.unwrap();
            assert_eq!(report.failed, 0);
            removed += report.originals_removed;
        }
        removed
    }
    let (a, b) = tokio::join!(
        run(&one, &queue, first, proof),
        run(&two, &queue, second, proof)
    );
    assert_eq!(a + b, CONTENTS, "each original removed once ({a} + {b})");
    assert!(storage.stored_originals().unwrap().is_empty());
    assert_eq!(queue.garbage_depth().await.unwrap(), 0);
}

#[tokio::test]
async fn an_upload_of_the_same_bytes_during_a_sweep_keeps_its_original_even_if_the_sweep_dies() {
    // The worst moment: a sweep claimed the content while nothing referenced it; an upload of the
    // same bytes stored it and enqueued its job; the sweep set that file aside. Asked last, Redis
    // says keep, and the file goes back. And had the sweep died right after setting it aside, the
    // next one, once the lease ran out, puts it back.
    let redis = TestRedis::start();
    let clock = ManualClock::new(1_000_000_000_000);
    let queue = redis.queue().with_clock(clock.clone());
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path()).unwrap();
    let owner = Subject::parse("owner").unwrap();
    let proof = DeleteProof {
        subject: &owner,
        token_digest: None,
    };
    for dies in [false, true] {
        let (sha, old) = store(&queue, &storage, &owner, b"the same bytes", 1).await;
        queue
            .delete(&old[0], proof, Duration::from_secs(5))
            .await
            .unwrap()
            .unwrap();
        let claimed = queue
            .claim_garbage(Duration::from_secs(60), 10, &[])
            .await
            .unwrap();
        assert!(
            claimed
                .iter()
                .any(|c| c.garbage == Garbage::Content(sha.clone()) && !c.referenced)
        );

        let (_, new) = store(&queue, &storage, &owner, b"the same bytes", 1).await;
        let aside = storage
            .set_aside_original(&sha)
            .unwrap()
            .expect("the file was there");
        if dies {
            drop(aside);
            assert!(!storage.has_original(&sha));
            clock.advance_ms(61_000);
            let report = cleanup_on(queue.clone(), dir.path()).sweep().await.unwrap();
            assert_eq!((report.originals_kept, report.originals_removed), (1, 0));
        } else {
            assert!(
                queue.is_referenced(&sha).await.unwrap(),
                "asked last, Redis says keep"
            );
            aside.put_back().unwrap();
            // The old job's outputs were claimed with it; there are none on disk.
            for entry in &claimed {
                queue.finish_garbage(&entry.garbage).await.unwrap();
            }
        }
        assert!(storage.has_original(&sha), "the new job finds its original");
        assert!(storage.stored_tombs().unwrap().is_empty());
        assert_eq!(queue.garbage_depth().await.unwrap(), 0);

        // Once the new job goes too, the file goes with it.
        queue
            .delete(&new[0], proof, Duration::from_secs(5))
            .await
            .unwrap()
            .unwrap();
        let report = cleanup_on(queue.clone(), dir.path()).sweep().await.unwrap();
        assert_eq!(report.originals_removed, 1);
        assert!(!storage.has_original(&sha));
    }
}

#[tokio::test]
async fn records_of_an_earlier_version_keep_their_shared_original() {
    // A record written before contents were counted names its original only in its payload.
    // Adopted at start-up, it keeps the file when a newer upload of the same bytes is deleted.
    let mut app = TestApp::spawn(Role::HttpOnly).await;
    app.stop().await;
    let photo = jpeg(64, 48);
    let sha = sha256_hex(&photo);
    let key = format!("originals/{}/{sha}.jpg", &sha[..2]);
    std::fs::create_dir_all(app.storage.path().join(&key).parent().unwrap()).unwrap();
    std::fs::write(app.storage.path().join(&key), &photo).unwrap();
    let payload = json!({
        "original": key, "filename": "old.jpg", "bytes": photo.len(), "sha256": sha,
        "format": "jpeg"
    });
    let queue = app.redis.queue();
    let earlier = queue.enqueue(&payload).await.unwrap();

    app.start(Role::HttpOnly).await;
    let (newer, token) = upload(&app, None, photo).await;
    let response = app
        .client
        .delete(app.url(&format!("/uploads/{newer}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert!(
        app.storage.path().join(&key).is_file(),
        "the earlier record still needs it"
    );
    assert!(queue.job(&earlier).await.unwrap().is_some());
}
