//! A `redis-server` child process that pixdrop starts and owns: the embedded default when no
//! `redis.url` is configured, and every test's private Redis. It keeps its data and append-only
//! file in a directory we choose, and can be stopped, killed, paused and started again on the same
//! address and data, which is how tests inject Redis faults.
//!
//! The embedded server listens on a unix socket only, inside its directory made private (0700):
//! another local user can neither connect to it nor, through `CONFIG SET dir`, write files as
//! pixdrop's user. Tests' servers listen on a free loopback port, so a test can put a proxy in
//! front of one.
//!
//! Every server runs in a session of its own, so a terminal's Ctrl-C (sent to its foreground
//! process group) reaches pixdrop, which stops the server last, and never the server first.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Where a server listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    /// A free port on 127.0.0.1.
    LoopbackPort,
    /// Only `redis.sock` in the server's directory, which is made private to this user.
    PrivateSocket,
}

/// The longest a server may take to load its data before it answers.
pub const LOADING_PATIENCE: Duration = Duration::from_secs(600);

/// The longest unix socket path the kernel takes (`sun_path` holds 108 bytes with its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// How a server is started.
#[derive(Debug, Clone)]
pub struct RedisServerOptions {
    pub listen: Listen,
    /// The binary, looked up on PATH when it has no slash.
    pub binary: String,
    /// Holds the AOF, the RDB snapshot and the log.
    pub dir: PathBuf,
    /// `always` trades throughput for not losing the last second on a machine crash.
    pub appendfsync: &'static str,
    /// A descriptor the server inherits and holds open for its life: the data directory's lock,
    /// so the lock outlives its starter for as long as the server runs.
    pub inherit_fd: Option<RawFd>,
}

/// A running (or stopped) child `redis-server`. Dropping it stops the server.
pub struct RedisServer {
    options: RedisServerOptions,
    /// The TCP port, or 0 when it listens on its socket only.
    port: u16,
    /// `None` while stopped; the process is ours to signal and reap.
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server and waits until it answers PING.
    pub fn start(mut options: RedisServerOptions) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&options.dir)
            .with_context(|| format!("failed to create {}", options.dir.display()))?;
        // Absolute, so the socket's URL holds wherever the process runs from.
        options.dir = options
            .dir
            .canonicalize()
            .with_context(|| format!("failed to resolve {}", options.dir.display()))?;
        if options.listen == Listen::PrivateSocket {
            make_private(&options.dir)?;
            let mut server = Self {
                options,
                port: 0,
                child: None,
            };
            server.spawn()?;
            return Ok(server);
        }
        // Another process may grab the port between our probe and redis's bind: try a few.
        let mut last_error = None;
        for _ in 0..5 {
            let port = free_port()?;
            let mut server = Self {
                options: options.clone(),
                port,
                child: None,
            };
            match server.spawn() {
                Ok(()) => return Ok(server),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("redis-server did not start")))
    }

    /// Whether the server process is running (started, and not stopped nor found exited).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The server's exit status once it has exited by itself (it is then stopped: `restart`
    /// starts it again); `None` while it runs.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        self.child = None;
        Some(status)
    }

    /// The loopback port, when it listens on one.
    pub fn port(&self) -> Option<u16> {
        (self.options.listen == Listen::LoopbackPort).then_some(self.port)
    }

    pub fn url(&self) -> String {
        match self.options.listen {
            Listen::LoopbackPort => format!("redis://127.0.0.1:{}", self.port),
            Listen::PrivateSocket => socket_url(&self.options.dir),
        }
    }

    fn socket(&self) -> PathBuf {
        socket_in(&self.options.dir)
    }

    /// Where it listens, for messages.
    fn address(&self) -> String {
        match self.options.listen {
            Listen::LoopbackPort => format!("port {}", self.port),
            Listen::PrivateSocket => self.socket().display().to_string(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.options.dir
    }

    /// Stops the server gracefully (SIGTERM: it flushes the AOF) and waits for it to exit.
    pub fn stop(&mut self) {
        self.signal_and_reap(libc::SIGTERM);
    }

    /// Kills the server without warning, as a crash or an OOM killer would.
    pub fn kill(&mut self) {
        self.signal_and_reap(libc::SIGKILL);
    }

    /// Freezes the server (SIGSTOP): connections stay open and nothing is answered, as with a
    /// server stuck in a long fork or a network partition. For fault tests.
    pub fn pause(&mut self) {
        self.signal(libc::SIGSTOP);
    }

    /// Lets a paused server run again (SIGCONT); it answers what queued up meanwhile.
    pub fn resume(&mut self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, signal: libc::c_int) {
        if let Some(child) = &self.child
            && let Ok(pid) = libc::pid_t::try_from(child.id())
        {
            // SAFETY: `pid` is our own child, not yet reaped, so it names no other process.
            unsafe { libc::kill(pid, signal) };
        }
    }

    /// Starts the server again on the same port and data directory; the AOF brings the data back.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        self.spawn()
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let mut command = Command::new(&self.options.binary);
        command.current_dir(&self.options.dir);
        match self.options.listen {
            Listen::LoopbackPort => command.args(["--port", &self.port.to_string()]).args([
                "--bind",
                "127.0.0.1",
                "--protected-mode",
                "yes",
            ]),
            Listen::PrivateSocket => command
                .args(["--port", "0", "--unixsocket"])
                .arg(self.socket())
                .args(["--unixsocketperm", "700"]),
        };
        command
            .args(["--dir", "."])
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                self.options.appendfsync,
            ])
            .args(["--save", "", "--maxmemory-policy", "noeviction"])
            .args(["--logfile", "redis.log", "--daemonize", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let inherit_fd = self.options.inherit_fd;
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: between fork and exec only async-signal-safe calls (setsid, sigprocmask, prctl,
        // getppid, fcntl).
        unsafe {
            use std::os::unix::process::CommandExt;
            command.pre_exec(move || {
                // A session of its own: no terminal's signals reach it.
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // No signal blocked, whatever mask the starting thread has (pixdrop's threads
                // block SIGINT and SIGTERM for its signal thread): SIGTERM must stop the server.
                let mut none = std::mem::zeroed::<libc::sigset_t>();
                libc::sigemptyset(&mut none);
                if libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut()) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // If the thread that started it dies without running destructors (kill -9 of
                // pixdrop), the kernel stops the server too (SIGTERM: it flushes its AOF).
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // Died between the fork and the line above: no signal will come, so stop here.
                if libc::getppid() != parent {
                    return Err(std::io::ErrorKind::Interrupted.into());
                }
                if let Some(fd) = inherit_fd
                    && libc::fcntl(fd, libc::F_SETFD, 0) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        if self.options.listen == Listen::PrivateSocket && self.answers() != Answer::Nothing {
            // Ours would unlink its socket and take over, beside it, the same data.
            bail!(
                "a redis-server pixdrop did not start already listens on {}; stop it first",
                self.address()
            );
        }
        let mut child = command.spawn().with_context(|| {
            format!(
                "could not start `{}`: install Redis (e.g. `apt-get install redis-server`) or set redis.url",
                self.options.binary
            )
        })?;
        match self.until_ready(&mut child) {
            Ok(()) => {
                self.child = Some(child);
                Ok(())
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(e)
            }
        }
    }

    /// Waits until the new server answers PING: 10 s to start listening, then while it is loading
    /// its data (a big AOF takes a while, and it answers LOADING meanwhile), up to
    /// `LOADING_PATIENCE` in all.
    fn until_ready(&self, child: &mut Child) -> anyhow::Result<()> {
        let started = Instant::now();
        let deadline = started + Duration::from_secs(10);
        loop {
            let answer = self.answers();
            if answer == Answer::Ready {
                return Ok(());
            }
            if let Some(status) = child.try_wait()? {
                let mut stderr = String::new();
                if let Some(mut pipe) = child.stderr.take() {
                    let _ = pipe.read_to_string(&mut stderr);
                }
                let log =
                    std::fs::read_to_string(self.options.dir.join("redis.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(3).collect();
                bail!(
                    "redis-server exited ({status}) on {}: {} {}",
                    self.address(),
                    stderr.trim(),
                    tail.join(" | ")
                );
            }
            if answer == Answer::Nothing && Instant::now() > deadline {
                bail!(
                    "redis-server did not answer PING within 10 s on {}",
                    self.address()
                );
            }
            if started.elapsed() > LOADING_PATIENCE {
                bail!(
                    "redis-server was still loading its data after {} s on {}",
                    LOADING_PATIENCE.as_secs(),
                    self.address()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal_and_reap(&mut self, signal: libc::c_int) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let Ok(pid) = libc::pid_t::try_from(child.id()) else {
            return;
        };
        // Safe: the pid is our own un-reaped child, so it cannot have been recycled. SIGCONT
        // after it, so a paused server acts on the signal too.
        unsafe {
            libc::kill(pid, signal);
            libc::kill(pid, libc::SIGCONT);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port the OS says is free right now.
fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("no free loopback port")?;
    Ok(listener.local_addr()?.port())
}

/// What a server says to PING.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// PONG: ready.
    Ready,
    /// Up, but still loading its data.
    Loading,
    /// No answer: not listening, or not a Redis.
    Nothing,
}

impl RedisServer {
    fn answers(&self) -> Answer {
        match self.options.listen {
            Listen::LoopbackPort => TcpStream::connect(("127.0.0.1", self.port)).map_or(
                Answer::Nothing,
                |mut stream| {
                    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
                    ping(&mut stream)
                },
            ),
            Listen::PrivateSocket => socket_answers(&self.options.dir),
        }
    }
}

/// Makes `dir` private to this user (0700) and checks its socket's path fits the kernel's limit.
pub fn make_private(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("failed to make {} private", dir.display()))?;
    let socket = socket_in(dir);
    if socket.as_os_str().len() > MAX_SOCKET_PATH {
        bail!(
            "the embedded Redis's socket path {} is longer than {MAX_SOCKET_PATH} bytes; \
             use a shorter storage.dir",
            socket.display()
        );
    }
    Ok(())
}

/// The socket a private server in `dir` listens on.
pub fn socket_in(dir: &Path) -> PathBuf {
    dir.join("redis.sock")
}

/// The URL of the private server in `dir`.
pub fn socket_url(dir: &Path) -> String {
    format!("redis+unix://{}", socket_in(dir).display())
}

/// What the server on the socket in `dir` says to PING.
pub fn socket_answers(dir: &Path) -> Answer {
    std::os::unix::net::UnixStream::connect(socket_in(dir)).map_or(Answer::Nothing, |mut stream| {
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        ping(&mut stream)
    })
}

fn ping(stream: &mut (impl Read + Write)) -> Answer {
    if stream.write_all(b"PING\r\n").is_err() {
        return Answer::Nothing;
    }
    let mut reply = [0u8; 8];
    match stream.read(&mut reply) {
        Ok(n) if reply[..n].starts_with(b"+PONG") => Answer::Ready,
        Ok(n) if reply[..n].starts_with(b"-LOADING") => Answer::Loading,
        _ => Answer::Nothing,
    }
}
