//! The embedded Redis of a storage directory: one `redis-server` per `storage.dir/redis`, shared by
//! every pixdrop command on the host that uses that directory with no `redis.url` set.
//!
//! The first command to find no server running starts one and takes the directory's lock (an
//! `flock` on `redis/` itself, which no clean-up can delete while the data is there). The server inherits the lock's descriptor, so the lock is held for
//! as long as the server or the process that started it lives, and the kernel releases it when
//! both are gone, kill -9 included: a lock is never stale, and two servers never share one AOF.
//! Every later command finds the lock held and joins the running server through its socket.
//!
//! A keeper thread in each process looks after the server. Where it started the server, it
//! restarts one that died (a few times, then it gives up and asks the process to stop); elsewhere
//! it takes the lock once the starter and its server are gone, and starts the server again on the
//! same data. So the workers beside a `serve` keep their Redis when that `serve` stops: after a
//! moment without it, which connections ride out as they ride out any Redis restart (the URL, the
//! socket's path, never changes).
//!
//! The keeper thread is the server's parent: the kernel stops the server when that thread dies
//! (PR_SET_PDEATHSIG), which happens only when the process does.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::sync::watch;

use crate::redis_server::{
    Answer, LOADING_PATIENCE, Listen, RedisServer, RedisServerOptions, make_private,
    socket_answers, socket_url,
};

/// How often the keeper looks at the server (and, in a joined process, at the lock).
const KEEP_EVERY: Duration = Duration::from_millis(250);
/// How long a command waits for a server it found starting (or stopping) to answer.
const JOIN_PATIENCE: Duration = Duration::from_secs(20);
/// Restarts within this window, beyond which the keeper gives up.
const RESTARTS_ALLOWED: usize = 5;
const RESTART_WINDOW: Duration = Duration::from_secs(60);

/// Whether this process started the server or joined one already running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opened {
    Started,
    Joined,
}

/// The embedded Redis as this process uses it. Dropping it stops the keeper, and the server too
/// when this process holds it.
pub struct EmbeddedRedis {
    url: String,
    stop: Option<mpsc::Sender<()>>,
    keeper: Option<JoinHandle<()>>,
    lost: watch::Receiver<bool>,
}

impl EmbeddedRedis {
    /// Joins the server running on the data in `dir`, or starts it (with `binary`) when none runs.
    pub fn open(binary: &str, dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("failed to create {}", dir.display()))?;
        // Absolute, so the socket's URL holds wherever the process runs from.
        let dir = dir
            .canonicalize()
            .with_context(|| format!("failed to resolve {}", dir.display()))?;
        make_private(&dir)?;
        let lock = File::open(&dir).with_context(|| format!("failed to open {}", dir.display()))?;
        let options = RedisServerOptions {
            listen: Listen::PrivateSocket,
            binary: binary.to_owned(),
            dir: dir.clone(),
            // Every write is on disk before Redis answers, so a 202 survives even a power loss.
            // Measured with benches/fsync-cost.sh, this costs the queue a third to two thirds
            // of its no-op throughput (still thousands of jobs a second), and an image job, which
            // spends hundreds of milliseconds decoding and encoding, a few milliseconds.
            appendfsync: "always",
            inherit_fd: Some(lock.as_raw_fd()),
        };
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = mpsc::channel();
        let (lost_tx, lost) = watch::channel(false);
        let keeper = std::thread::Builder::new()
            .name("embedded-redis".into())
            .spawn(move || {
                Keeper {
                    options,
                    lock: Some(lock),
                    lost: lost_tx,
                }
                .run(ready_tx, stop_rx)
            })
            .context("failed to start the embedded Redis's keeper thread")?;
        let opened = match ready_rx.recv() {
            Ok(Ok(opened)) => opened,
            Ok(Err(e)) => {
                let _ = keeper.join();
                return Err(e);
            }
            Err(_) => bail!("the embedded Redis's keeper thread died while starting"),
        };
        let url = socket_url(&dir);
        match opened {
            Opened::Started => tracing::info!(
                %url,
                dir = %dir.display(),
                "no redis.url configured: started the embedded redis-server of this storage.dir"
            ),
            Opened::Joined => tracing::info!(
                %url,
                "no redis.url configured: joined the embedded redis-server another pixdrop runs \
                 for this storage.dir"
            ),
        }
        Ok(Self {
            url,
            stop: Some(stop_tx),
            keeper: Some(keeper),
            lost,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether the server is gone for good: it kept dying and the keeper gave up, or the keeper
    /// itself is gone.
    pub fn is_lost(&self) -> bool {
        *self.lost.borrow() || self.keeper.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Resolves once the server is gone for good (see `is_lost`).
    pub fn lost(&self) -> impl Future<Output = ()> + use<> {
        let mut lost = self.lost.clone();
        async move {
            // An error: the keeper ended, which it does only when told to or when it panicked.
            let _ = lost.wait_for(|lost| *lost).await;
        }
    }
}

impl Drop for EmbeddedRedis {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(keeper) = self.keeper.take() {
            let _ = keeper.join();
        }
    }
}

/// What the keeper thread holds.
struct Keeper {
    options: RedisServerOptions,
    /// The data directory, opened to lock it (locked only while this process holds the server);
    /// closed when the keeper gives up, so the lock goes once every holder is gone.
    lock: Option<File>,
    lost: watch::Sender<bool>,
}

/// The keeper's charge.
enum Charge {
    /// This process holds the lock and runs the server; times of its recent restarts.
    Holding {
        server: RedisServer,
        restarts: Vec<Instant>,
    },
    /// Another process holds the server; this one watches for the lock to come free.
    Watching,
    /// The server kept dying; nothing more is tried.
    GaveUp,
}

impl Keeper {
    fn run(mut self, ready: mpsc::Sender<anyhow::Result<Opened>>, stop: mpsc::Receiver<()>) {
        let mut charge = match self.first_charge() {
            Ok(charge) => charge,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let opened = match charge {
            Charge::Holding { .. } => Opened::Started,
            _ => Opened::Joined,
        };
        let _ = ready.send(Ok(opened));
        // Until the process drops its `EmbeddedRedis` (the sender goes away).
        while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(KEEP_EVERY) {
            charge = self.keep(charge);
        }
        // Dropping a held server stops it (SIGTERM, AOF flushed), then the lock goes with `self`.
        drop(charge);
    }

    /// Starts the server, or finds the one running; waits while one is starting, loading its
    /// data or stopping.
    fn first_charge(&self) -> anyhow::Result<Charge> {
        let started = Instant::now();
        let mut deadline = started + JOIN_PATIENCE;
        loop {
            if self.try_lock()? {
                let server = RedisServer::start(self.options.clone())?;
                return Ok(Charge::Holding {
                    server,
                    restarts: Vec::new(),
                });
            }
            match socket_answers(&self.options.dir) {
                Answer::Ready => return Ok(Charge::Watching),
                Answer::Loading if started.elapsed() < LOADING_PATIENCE => {
                    deadline = Instant::now() + JOIN_PATIENCE;
                }
                Answer::Loading if Instant::now() > deadline => bail!(
                    "the embedded redis-server of {} was still loading its data after {} s",
                    self.options.dir.display(),
                    LOADING_PATIENCE.as_secs()
                ),
                Answer::Loading => {}
                Answer::Nothing if Instant::now() > deadline => bail!(
                    "another process holds {} but no redis-server answers on its socket; stop the \
                     other pixdrop using this storage.dir, or its redis-server",
                    self.options.dir.display()
                ),
                Answer::Nothing => {}
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn keep(&mut self, charge: Charge) -> Charge {
        match charge {
            Charge::Holding {
                mut server,
                mut restarts,
            } => {
                let log = self.options.dir.join("redis.log");
                // Not running: its last restart failed, and this is the next try.
                if server.is_running() {
                    let Some(status) = server.exited() else {
                        return Charge::Holding { server, restarts };
                    };
                    tracing::error!(
                        %status,
                        log = %log.display(),
                        "the embedded redis-server exited unexpectedly; restarting it on the same data"
                    );
                }
                restarts.retain(|at| at.elapsed() < RESTART_WINDOW);
                if restarts.len() >= RESTARTS_ALLOWED {
                    return self.give_up(&format!(
                        "the embedded redis-server died {} times within {} s; giving up (see {})",
                        restarts.len() + 1,
                        RESTART_WINDOW.as_secs(),
                        log.display()
                    ));
                }
                restarts.push(Instant::now());
                if let Err(e) = server.restart() {
                    tracing::error!("could not restart the embedded redis-server: {e:#}");
                }
                Charge::Holding { server, restarts }
            }
            Charge::Watching => match self.try_lock() {
                Ok(false) => Charge::Watching,
                Ok(true) => {
                    tracing::warn!(
                        "the process running the embedded redis-server has stopped; this process \
                         now runs it, on the same data"
                    );
                    match RedisServer::start(self.options.clone()) {
                        Ok(server) => Charge::Holding {
                            server,
                            restarts: Vec::new(),
                        },
                        Err(e) => self.give_up(&format!(
                            "could not take over the embedded redis-server: {e:#}"
                        )),
                    }
                }
                Err(e) => self.give_up(&format!("{e:#}")),
            },
            Charge::GaveUp => Charge::GaveUp,
        }
    }

    fn give_up(&mut self, why: &str) -> Charge {
        tracing::error!("{why}; stopping");
        // Close the directory, so the lock goes once no server holds it either, and the next
        // pixdrop to start may try again.
        self.lock = None;
        let _ = self.lost.send(true);
        Charge::GaveUp
    }

    /// Takes the data directory's lock if it is free: `false` when another process (or a server
    /// it started) holds it.
    fn try_lock(&self) -> anyhow::Result<bool> {
        let Some(lock) = &self.lock else {
            bail!(
                "the keeper gave up the lock of {}",
                self.options.dir.display()
            );
        };
        // SAFETY: flock on a descriptor this struct owns.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(true);
        }
        let error = std::io::Error::last_os_error();
        if error.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Ok(false);
        }
        Err(error).with_context(|| format!("failed to lock {}", self.options.dir.display()))
    }
}
