//! A release `pixdrop` process for the load benches (soak, fan-out, upload memory), with its own
//! storage and the Redis it starts and owns, stopped with SIGTERM when dropped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Resident and peak resident bytes of process `pid` (VmRSS, VmHWM).
pub fn memory_of(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

pub async fn ready(address: &str) -> bool {
    reqwest::get(format!("{address}/readyz"))
        .await
        .is_ok_and(|r| r.status() == 200)
}

/// The pixdrop process under test.
pub struct Server {
    pub child: Child,
    pub address: String,
}

impl Server {
    /// Starts `target/release/pixdrop` (or `$PIXDROP_BIN`) in `dir` with `settings` as
    /// `PIXDROP__…` variables, and waits until it is ready. Every client of a bench is one
    /// address, so the per-client caps are raised.
    pub async fn start(dir: &Path, settings: &[(&str, String)]) -> Self {
        Self::start_with_args(dir, settings, &[]).await
    }

    /// [`Self::start`] with command-line arguments (`serve --no-workers`, say).
    pub async fn start_with_args(dir: &Path, settings: &[(&str, String)], args: &[&str]) -> Self {
        let binary = std::env::var_os("PIXDROP_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/pixdrop")
            });
        assert!(
            binary.is_file(),
            "{} is missing: `cargo build --release` first",
            binary.display()
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(dir.join("pixdrop.log")).unwrap();
        let mut command = Command::new(binary);
        command
            .args(args)
            .current_dir(dir)
            .env("PIXDROP__SERVER__BIND", format!("127.0.0.1:{port}"))
            .env("PIXDROP__STORAGE__DIR", dir.join("uploads"))
            .env("PIXDROP__UPLOADS__MAX_CONCURRENT_PER_CLIENT", "64")
            .env("PIXDROP__WEBSOCKET__MAX_SOCKETS_PER_CLIENT", "100000")
            .env("RUST_LOG", "warn");
        for (name, value) in settings {
            command.env(name, value);
        }
        let child = command.stdout(Stdio::null()).stderr(log).spawn().unwrap();
        let server = Self {
            child,
            address: format!("http://127.0.0.1:{port}"),
        };
        let mut up = false;
        for _ in 0..300 {
            up = ready(&server.address).await;
            if up {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            up,
            "pixdrop did not become ready; see {}",
            dir.join("pixdrop.log").display()
        );
        server
    }

    /// The embedded redis-server: pixdrop's child (started by one of its threads).
    pub fn redis_pid(&self) -> Option<u32> {
        let pid = self.child.id();
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
        tasks.flatten().find_map(|task| {
            let children = std::fs::read_to_string(task.path().join("children")).ok()?;
            children.split_whitespace().next()?.parse().ok()
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM: pixdrop stops its workers and its Redis.
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}
