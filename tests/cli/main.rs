//! The `pixdrop` binary as a user runs it: its own Redis when none is configured, and one clear
//! line when no Redis can be had.

mod embedded;
mod logs;
#[path = "../support/photo.rs"]
mod photo;
mod processes;
#[path = "../support/mod.rs"]
mod support;

use std::process::Command;

/// The port in pixdrop's `pixdrop is running: http://HOST:PORT/` line, if `line` is that line.
fn announced_port_in(line: &str) -> Option<u16> {
    let address = line.trim().strip_prefix("pixdrop is running: http://")?;
    address
        .trim_end_matches('/')
        .rsplit_once(':')?
        .1
        .parse()
        .ok()
}

/// Uploads `photo` to the pixdrop at `address` (`http://HOST:PORT`): `202`, and the job's id.
async fn upload_photo(address: &str, photo: &[u8]) -> String {
    let part = reqwest::multipart::Part::bytes(photo.to_vec()).file_name("photo.jpg");
    let response = reqwest::Client::new()
        .post(format!("{address}/upload"))
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let body: serde_json::Value = response.json().await.unwrap();
    body["jobs"][0]["id"].as_str().unwrap().to_owned()
}

fn pixdrop(storage: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pixdrop"));
    command
        .current_dir(storage)
        .env_remove("PIXDROP__REDIS__URL")
        .env("PIXDROP__STORAGE__DIR", storage)
        .env("RUST_LOG", "warn");
    command
}

#[test]
fn without_a_redis_url_pixdrop_starts_and_stops_its_own_redis_server() {
    // `check` passes against the embedded server, whose AOF lands under the storage directory.
    let storage = tempfile::tempdir().unwrap();
    let output = pixdrop(storage.path()).arg("check").output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("ok (0 warnings)"), "{stdout}");
    assert!(storage.path().join("redis/appendonlydir").is_dir());
    // It shut its server down gracefully on the way out (SIGTERM, AOF flushed).
    let log = std::fs::read_to_string(storage.path().join("redis/redis.log")).unwrap();
    assert!(log.contains("ready to exit"), "{log}");
}

#[test]
fn with_no_redis_to_reach_or_start_pixdrop_says_what_to_do_in_one_line_and_fails() {
    let storage = tempfile::tempdir().unwrap();
    let output = pixdrop(storage.path())
        .env("PIXDROP__REDIS__SERVER_BINARY", "/nonexistent/redis-server")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains("install Redis") && lines[0].contains("redis.url"),
        "{stderr}"
    );

    let output = pixdrop(storage.path())
        .env("PIXDROP__REDIS__URL", "redis://127.0.0.1:1")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("cannot use the Redis at redis://127.0.0.1:1"),
        "{stderr}"
    );
}

#[test]
fn a_bad_setting_is_refused_with_its_name() {
    let storage = tempfile::tempdir().unwrap();
    let output = pixdrop(storage.path())
        .env("PIXDROP__WORKERS__CONCURRENCY", "many")
        .arg("check")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("concurrency"), "{stderr}");
}

#[test]
fn settings_that_fail_their_checks_stop_serve_and_check_naming_each_one() {
    // Both commands refuse before starting anything (no embedded Redis), with exit status 1 and
    // one line per setting at fault.
    let storage = tempfile::tempdir().unwrap();
    for command in [&["check"][..], &["serve"][..]] {
        let output = pixdrop(storage.path())
            .env("PIXDROP__QUEUE__HEARTBEAT_TTL_MS", "1000")
            .env("PIXDROP__QUEUE__HEARTBEAT_INTERVAL_MS", "2000")
            .env("PIXDROP__REDIS__KEY_PREFIX", "a{b}")
            .args(command)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{command:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(
                "queue.heartbeat_ttl_ms (1000) must be greater than queue.heartbeat_interval_ms (2000)"
            ),
            "{stderr}"
        );
        assert!(
            stderr.contains("redis.key_prefix (\"a{b}\") must not contain '{' or '}'"),
            "{stderr}"
        );
        assert!(
            !storage.path().join("redis").exists(),
            "nothing was started"
        );
    }
}

#[test]
fn the_embedded_redis_listens_only_on_a_socket_in_a_private_directory() {
    // No TCP port another local user could reach; the socket's directory is pixdrop's alone.
    use std::os::unix::fs::PermissionsExt;
    let storage = tempfile::tempdir().unwrap();
    let output = pixdrop(storage.path()).arg("check").output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let dir = storage.path().join("redis");
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    let log = std::fs::read_to_string(dir.join("redis.log")).unwrap();
    assert!(log.contains("unix socket"), "{log}");
    assert!(!log.contains("Running mode=standalone, port=6"), "{log}");
    assert!(log.contains("port=0"), "no TCP port: {log}");
}
