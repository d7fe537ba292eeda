//! One embedded Redis per storage directory: every command on the host with no `redis.url` uses
//! the one server of its `storage.dir`, the server outlives the process that started it while
//! others use it, and a terminal's Ctrl-C stops pixdrop first and its server last.

use std::io::{BufRead, BufReader, Read};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::photo::noisy_jpeg as photo;
use crate::{announced_port_in, pixdrop, upload_photo};

/// A pixdrop process; killed when dropped.
struct Running {
    child: Child,
    port: Option<u16>,
}

/// A `pixdrop serve` started, on a port of the system's choosing, not yet known to be ready.
struct Launched {
    child: Child,
    port: mpsc::Receiver<u16>,
}

impl Launched {
    fn serve(storage: &Path, extra: &[&str]) -> Self {
        let mut child = pixdrop(storage)
            .arg("serve")
            .args(extra)
            .env("PIXDROP__SERVER__BIND", "127.0.0.1:0")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let port = announced_port(child.stdout.take().unwrap());
        Self { child, port }
    }

    /// Once it has said its port and answers `/readyz`.
    async fn ready(self) -> Running {
        let Self { child, port } = self;
        let port = tokio::task::spawn_blocking(move || port.recv_timeout(Duration::from_secs(30)))
            .await
            .unwrap()
            .expect("pixdrop says where it runs");
        let running = Running {
            child,
            port: Some(port),
        };
        running.until_ready().await;
        running
    }
}

/// Reads what pixdrop writes until it says `pixdrop is running: http://HOST:PORT/`, sends the
/// port, then drains the rest so pixdrop never blocks on a full pipe or terminal.
fn announced_port(output: impl Read + Send + 'static) -> mpsc::Receiver<u16> {
    let (port_tx, port) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines() {
            let Ok(line) = line else { break };
            if let Some(port) = announced_port_in(&line) {
                let _ = port_tx.send(port);
            }
        }
    });
    port
}

impl Running {
    /// `pixdrop serve` (with `extra` arguments), once it answers `/readyz`.
    async fn serve(storage: &Path, extra: &[&str]) -> Self {
        Launched::serve(storage, extra).ready().await
    }

    /// `pixdrop worker`, once its instance is registered with the queue.
    async fn worker(storage: &Path) -> Self {
        let before = instances(storage).await;
        let child = pixdrop(storage).arg("worker").spawn().unwrap();
        eventually("the worker to register", || async {
            instances(storage).await > before
        })
        .await;
        Self { child, port: None }
    }

    async fn until_ready(&self) {
        let url = self.url("/readyz");
        eventually("pixdrop to be ready", || async {
            reqwest::get(&url).await.is_ok_and(|r| r.status() == 200)
        })
        .await;
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port.expect("serves HTTP"))
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) on our own child, not yet reaped.
        unsafe { libc::kill(self.pid(), signal) };
    }

    /// Waits up to `limit` for the process to exit.
    async fn exits_within(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// Uploads `photo`; the new job's id.
    async fn upload(&self, photo: &[u8]) -> String {
        upload_photo(self.url("").trim_end_matches('/'), photo).await
    }

    async fn state_of(&self, id: &str) -> String {
        let view: Value = reqwest::get(self.url(&format!("/jobs/{id}")))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        view["state"].as_str().unwrap().to_owned()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The `redis-server` processes running on the data of `storage`, with their parents' pids.
fn redis_servers(storage: &Path) -> Vec<(i32, i32)> {
    let dir = storage.join("redis").canonicalize().unwrap();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cwd = std::fs::read_link(entry.path().join("cwd")).ok();
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // Zombies (state Z) have exited; they only wait to be reaped.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
        let live = fields.first().is_some_and(|state| *state != "Z");
        if live && cmdline.starts_with(b"redis-server") && cwd.as_deref() == Some(dir.as_path()) {
            found.push((pid, fields[1].parse().unwrap_or(0)));
        }
    }
    found
}

/// The queue's registered instances, read straight from the embedded server's socket.
async fn instances(storage: &Path) -> usize {
    let socket = storage.join("redis/redis.sock");
    let Ok(client) = redis::Client::open(format!("redis+unix://{}", socket.display())) else {
        return 0;
    };
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return 0;
    };
    redis::cmd("SCARD")
        .arg("{pixdrop}:workers")
        .query_async(&mut conn)
        .await
        .unwrap_or(0)
}

/// `pixdrop check`'s report line.
fn check(storage: &Path) -> String {
    let output = pixdrop(storage).arg("check").output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test]
async fn serve_worker_and_check_on_one_storage_dir_share_one_redis() {
    let storage = tempfile::tempdir().unwrap();
    let serve = Running::serve(storage.path(), &["--no-workers"]).await;
    let jobs = [
        serve.upload(&photo(64, 48)).await,
        serve.upload(&photo(48, 64)).await,
    ];
    assert!(
        check(storage.path()).contains("2 jobs waiting"),
        "check sees the jobs the serve queued"
    );
    let _worker = Running::worker(storage.path()).await;
    for id in &jobs {
        eventually("the worker to complete the job", || async {
            serve.state_of(id).await == "completed"
        })
        .await;
    }
    assert_eq!(redis_servers(storage.path()).len(), 1);
    assert!(check(storage.path()).contains("0 jobs waiting"));
    assert_eq!(redis_servers(storage.path()).len(), 1);
}

#[tokio::test]
async fn two_serves_on_one_storage_dir_run_one_redis() {
    let storage = tempfile::tempdir().unwrap();
    // Started at the same moment: both race for the lock.
    let (first, second) = (
        Launched::serve(storage.path(), &[]),
        Launched::serve(storage.path(), &[]),
    );
    let (first, second) = (first.ready().await, second.ready().await);
    let servers = redis_servers(storage.path());
    assert_eq!(servers.len(), 1, "{servers:?}");
    assert!(
        [first.pid(), second.pid()].contains(&servers[0].1),
        "one of them started it"
    );
    let id = second.upload(&photo(32, 32)).await;
    eventually("the job to complete", || async {
        first.state_of(&id).await == "completed"
    })
    .await;
}

#[tokio::test]
async fn after_its_starter_is_killed_the_next_command_starts_the_redis_again_with_nothing_lost() {
    let storage = tempfile::tempdir().unwrap();
    let mut serve = Running::serve(storage.path(), &["--no-workers"]).await;
    serve.upload(&photo(40, 30)).await;
    assert_eq!(redis_servers(storage.path()).len(), 1);
    serve.signal(libc::SIGKILL);
    assert!(serve.exits_within(Duration::from_secs(5)).await);
    eventually("the orphaned redis-server to stop", || async {
        redis_servers(storage.path()).is_empty()
    })
    .await;

    assert!(check(storage.path()).contains("1 jobs waiting"));
    assert!(redis_servers(storage.path()).is_empty(), "check stopped it");
}

#[tokio::test]
async fn a_worker_takes_the_redis_over_when_the_serve_that_started_it_stops() {
    let storage = tempfile::tempdir().unwrap();
    let mut serve = Running::serve(storage.path(), &["--no-workers"]).await;
    let worker = Running::worker(storage.path()).await;
    let servers = redis_servers(storage.path());
    assert_eq!(servers.len(), 1);
    assert_eq!(servers[0].1, serve.pid(), "the serve started it");
    serve.signal(libc::SIGTERM);
    assert!(serve.exits_within(Duration::from_secs(30)).await);
    eventually("the worker to run the redis-server", || async {
        redis_servers(storage.path())
            .iter()
            .any(|&(_, parent)| parent == worker.pid())
    })
    .await;

    // A new serve joins the worker's server; the worker, still connected, runs the job.
    let serve = Running::serve(storage.path(), &["--no-workers"]).await;
    let id = serve.upload(&photo(32, 24)).await;
    eventually("the worker to complete the job", || async {
        serve.state_of(&id).await == "completed"
    })
    .await;
    assert_eq!(redis_servers(storage.path()).len(), 1);
}

#[tokio::test]
async fn a_redis_server_killed_under_serve_is_restarted_and_serve_carries_on() {
    let storage = tempfile::tempdir().unwrap();
    let serve = Running::serve(storage.path(), &[]).await;
    let servers = redis_servers(storage.path());
    assert_eq!(servers.len(), 1);
    let (killed, _) = servers[0];
    // SAFETY: kill(2) on the redis-server found above.
    unsafe { libc::kill(killed, libc::SIGKILL) };
    eventually("serve to start its redis-server again", || async {
        redis_servers(storage.path())
            .iter()
            .any(|&(pid, parent)| pid != killed && parent == serve.pid())
    })
    .await;
    serve.until_ready().await;
    let id = serve.upload(&photo(32, 32)).await;
    eventually("the job to complete", || async {
        serve.state_of(&id).await == "completed"
    })
    .await;
}

/// A pseudo-terminal whose session runs one process in the foreground, as a shell runs a
/// command: what is typed on the terminal reaches that process's group.
struct Terminal {
    master: std::fs::File,
}

impl Terminal {
    /// Runs `command` as the session leader on a new terminal; the port it announces there.
    fn run(command: &mut Command) -> (Self, Launched) {
        let (mut master, mut slave) = (0, 0);
        // SAFETY: openpty fills the two descriptors, which we then own.
        let opened = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        assert_eq!(opened, 0, "openpty");
        // SAFETY: fresh descriptors from openpty, owned from here on.
        let (master, slave) =
            unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        command
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave.try_clone().unwrap()));
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            use std::os::unix::process::CommandExt;
            command.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().unwrap();
        drop(slave);
        let master = std::fs::File::from(master);
        let port = announced_port(master.try_clone().unwrap());
        (Self { master }, Launched { child, port })
    }

    /// Types Ctrl-C: the terminal sends SIGINT to its foreground process group.
    fn ctrl_c(&mut self) {
        use std::io::Write;
        self.master.write_all(&[0x03]).unwrap();
    }
}

/// `pixdrop serve` on a terminal, with variants big enough that a job outlasts a second of grace,
/// and a job running. (`scripts/run` execs `cargo run`, which execs pixdrop: the same process on
/// the same terminal.)
async fn serve_on_a_terminal_with_a_job_running(
    storage: &Path,
    grace_secs: u64,
) -> (Terminal, Running) {
    let config = storage.join("slow.toml");
    let variants: String = (0..6)
        .map(|n| {
            format!(
                "[[variants]]\nname = \"v{n}\"\nmax_width = 4000\nmax_height = 4000\n\
                 fit = \"inside\"\nquality = 100.0\neffort = 6\n\n"
            )
        })
        .collect();
    std::fs::write(&config, variants).unwrap();
    let mut command = pixdrop(storage);
    command
        .args(["--config", config.to_str().unwrap(), "serve"])
        .env("PIXDROP__SERVER__BIND", "127.0.0.1:0")
        .env(
            "PIXDROP__WORKERS__SHUTDOWN_GRACE_SECS",
            grace_secs.to_string(),
        );
    let (terminal, launched) = Terminal::run(&mut command);
    let serve = launched.ready().await;
    let id = serve.upload(&photo(4000, 3000)).await;
    eventually("the job to start", || async {
        serve.state_of(&id).await == "active"
    })
    .await;
    assert_eq!(redis_servers(storage).len(), 1);
    (terminal, serve)
}

fn redis_log(storage: &Path) -> String {
    std::fs::read_to_string(storage.join("redis/redis.log")).unwrap()
}

#[tokio::test]
async fn ctrl_c_in_a_terminal_stops_pixdrop_then_its_redis_and_the_running_job_goes_back() {
    let storage = tempfile::tempdir().unwrap();
    let (mut terminal, mut serve) = serve_on_a_terminal_with_a_job_running(storage.path(), 1).await;

    let stopping = Instant::now();
    terminal.ctrl_c();
    assert!(
        serve.exits_within(Duration::from_secs(10)).await,
        "pixdrop exits soon after its one second of grace"
    );
    assert!(stopping.elapsed() < Duration::from_secs(10));
    assert_eq!(serve.child.wait().unwrap().code(), Some(0));
    assert!(
        redis_servers(storage.path()).is_empty(),
        "it stopped its redis-server before exiting"
    );
    let log = redis_log(storage.path());
    assert!(
        !log.contains("SIGINT"),
        "the terminal's Ctrl-C never reached redis-server: {log}"
    );
    assert!(
        log.contains("Received SIGTERM"),
        "pixdrop stopped it: {log}"
    );

    // The job was handed back, and the data is intact for the next start.
    assert!(check(storage.path()).contains("1 jobs waiting"));
}

#[tokio::test]
async fn a_second_ctrl_c_ends_pixdrop_at_once_and_its_redis_with_it() {
    let storage = tempfile::tempdir().unwrap();
    let (mut terminal, mut serve) =
        serve_on_a_terminal_with_a_job_running(storage.path(), 60).await;

    let stopping = Instant::now();
    terminal.ctrl_c();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        serve.child.try_wait().unwrap().is_none(),
        "the first Ctrl-C waits for the running job"
    );
    terminal.ctrl_c();
    assert!(serve.exits_within(Duration::from_secs(5)).await);
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "well inside the grace"
    );
    assert_eq!(serve.child.wait().unwrap().code(), Some(128 + libc::SIGINT));
    eventually("its redis-server to stop with it", || async {
        redis_servers(storage.path()).is_empty()
    })
    .await;
    assert!(!redis_log(storage.path()).contains("SIGINT"));
    check(storage.path());
}

#[tokio::test]
async fn a_redis_server_that_keeps_dying_stops_serve_with_the_reason() {
    let storage = tempfile::tempdir().unwrap();
    let stderr = storage.path().join("stderr.log");
    let mut child = pixdrop(storage.path())
        .arg("serve")
        .env("PIXDROP__SERVER__BIND", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let port = announced_port(child.stdout.take().unwrap());
    let serve = Launched { child, port };
    let mut serve = serve.ready().await;
    let mut killed = Vec::new();
    for _ in 0..6 {
        let pid = loop {
            let current: Vec<i32> = redis_servers(storage.path())
                .into_iter()
                .map(|(pid, _)| pid)
                .filter(|pid| !killed.contains(pid))
                .collect();
            if let Some(&pid) = current.first() {
                break pid;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        // SAFETY: kill(2) on a redis-server found above.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        killed.push(pid);
    }
    assert!(
        serve.exits_within(Duration::from_secs(30)).await,
        "serve stops once its redis-server died six times in a minute"
    );
    assert_ne!(serve.child.wait().unwrap().code(), Some(0));
    let said = std::fs::read_to_string(&stderr).unwrap();
    assert!(
        said.contains("the embedded redis-server could not be kept running"),
        "{said}"
    );
}
