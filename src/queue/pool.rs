//! The worker pool: from `workers.min` to `workers.max` tokio tasks (more while jobs wait and every
//! worker is busy, fewer after they idle), each with its own blocking Redis connection, running
//! a `Handler` on the jobs they claim; plus the instance's heartbeat and upkeep. It survives any Redis
//! error by reconnecting with backoff, and stops gracefully: stop claiming, let running jobs finish
//! until a deadline, then hand the rest back to the waiting list at once.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::client::{Depths, Queue};
use super::job::JobError;
use super::maintenance;
use super::progress::Progress;
use super::reachability::Reachability;
use super::reconnect::ReconnectDelay;
use super::settings::WorkerSettings;
use super::worker_conn::{Claim, Claimed, Settled, WorkerConn};
use crate::telemetry;

/// How often a worker of a paused queue checks whether it was resumed.
const PAUSE_POLL: Duration = Duration::from_millis(250);

/// What the pool runs for each job. The queue knows nothing about what a job means: the handler
/// gets its JSON payload and returns a JSON result, or an error saying whether to retry.
pub trait Handler: Send + Sync + 'static {
    fn handle(
        &self,
        job: &Claimed,
        progress: &Progress,
    ) -> impl Future<Output = Result<Value, JobError>> + Send;
}

pub struct WorkerPool<H> {
    queue: Queue,
    handler: Arc<H>,
    settings: WorkerSettings,
    /// Unique per process start, so a restarted process never mistakes its predecessor's jobs
    /// for its own.
    instance: String,
    size: Arc<PoolSize>,
}

/// How a job's run ended, before it is recorded.
enum Outcome {
    Succeeded(Value),
    Failed(JobError),
    /// The shutdown deadline passed while it ran.
    HandBack,
}

impl<H: Handler> WorkerPool<H> {
    pub fn new(queue: Queue, handler: H, settings: WorkerSettings) -> Self {
        let instance = format!("{}-{}", std::process::id(), uuid::Uuid::now_v7().simple());
        Self {
            queue,
            handler: Arc::new(handler),
            settings,
            instance,
            size: Arc::default(),
        }
    }

    /// Its running and busy workers, as they change (the scaler's view, for tests too).
    pub fn size(&self) -> Arc<PoolSize> {
        self.size.clone()
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Runs until `shutdown` resolves, then stops gracefully (see the module doc).
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let (min, max) = self.settings.bounds();
        // Every slot up to `max` is registered, so the reaper knows each list a worker may use.
        let workers: Vec<String> = (0..max)
            .map(|slot| format!("{}/{slot}", self.instance))
            .collect();
        // `stop`: claim no more jobs. `abort`: the grace period is over, hand running jobs back.
        // `quiet`: the workers are done; the heartbeat and upkeep may end.
        let (stop_tx, stop) = watch::channel(false);
        let (abort_tx, abort) = watch::channel(false);
        let (quiet_tx, quiet) = watch::channel(false);
        let reach = Arc::new(Reachability::new(
            self.queue.settings().heartbeat_stall_limit(),
        ));
        tokio::pin!(shutdown);
        // Registered before any worker claims (see `maintenance::register`).
        let registered = {
            let mut stop = stop.clone();
            let register =
                maintenance::register(&self.queue, &self.instance, &workers, &reach, &mut stop);
            tokio::select! {
                registered = register => registered,
                _ = &mut shutdown => false,
            }
        };
        if !registered {
            tracing::info!(instance = %self.instance, "worker pool stopped before it could register");
            return;
        }
        let beating = tokio::spawn(maintenance::heartbeat(
            self.queue.clone(),
            self.instance.clone(),
            workers.clone(),
            self.size.clone(),
            reach.clone(),
            quiet.clone(),
        ));
        let upkeep = tokio::spawn(maintenance::upkeep(self.queue.clone(), reach, stop.clone()));

        let mut tasks = JoinSet::new();
        // Slots without a worker, the lowest taken first.
        let mut free: Vec<usize> = (0..max).rev().collect();
        // Which slot each task holds, to free it even when the task panicked.
        let mut slots_of: HashMap<tokio::task::Id, usize> = HashMap::new();
        let spawn = |tasks: &mut JoinSet<usize>,
                     free: &mut Vec<usize>,
                     slots_of: &mut HashMap<tokio::task::Id, usize>| {
            let Some(slot) = free.pop() else { return };
            self.size.running.fetch_add(1, Ordering::SeqCst);
            let worker = Worker {
                queue: self.queue.clone(),
                handler: self.handler.clone(),
                settings: self.settings.clone(),
                name: workers[slot].clone(),
                slot,
                size: self.size.clone(),
                stop: stop.clone(),
                abort: abort.clone(),
            };
            slots_of.insert(tasks.spawn(worker.run()).id(), slot);
        };
        for _ in 0..min {
            spawn(&mut tasks, &mut free, &mut slots_of);
        }
        tracing::info!(instance = %self.instance, min, max, "worker pool started");

        // Grows while jobs wait and every worker is busy; workers idle past `workers.idle_secs`
        // retire by themselves, down to `min`.
        let mut scaling = tokio::time::interval(SCALE_INTERVAL);
        scaling.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                Some(ended) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                    let id = match &ended {
                        Ok((id, _)) => *id,
                        Err(e) => {
                            tracing::error!(error = %e, "a worker task ended abnormally");
                            e.id()
                        }
                    };
                    if let Some(slot) = slots_of.remove(&id) {
                        free.push(slot);
                        free.sort_unstable_by(|a, b| b.cmp(a));
                    }
                }
                _ = scaling.tick() => {
                    let running = self.size.running.load(Ordering::SeqCst);
                    // Below the minimum (a worker task failed), or busy with jobs waiting.
                    if running < min {
                        spawn(&mut tasks, &mut free, &mut slots_of);
                    } else if running < max && self.size.busy.load(Ordering::SeqCst) >= running {
                        // Bounded, so a stop is still seen while Redis does not answer.
                        let depths = tokio::time::timeout(SCALE_INTERVAL * 4, self.queue.depths());
                        match depths.await.unwrap_or(Ok(Depths::default())) {
                            Ok(depths) if depths.waiting > 0 => {
                                spawn(&mut tasks, &mut free, &mut slots_of);
                                tracing::debug!(workers = running + 1, waiting = depths.waiting, "worker added");
                            }
                            Ok(_) => {}
                            Err(e) => tracing::debug!(error = %e, "queue depth unknown; not scaling"),
                        }
                    }
                }
            }
        }
        tracing::info!(grace = ?self.settings.shutdown_grace(), "stopping: no new jobs; waiting for running ones");
        let _ = stop_tx.send(true);
        let drain = async { while tasks.join_next().await.is_some() {} };
        tokio::pin!(drain);
        if tokio::time::timeout(self.settings.shutdown_grace(), &mut drain)
            .await
            .is_err()
        {
            tracing::warn!("grace period over: handing unfinished jobs back to the queue");
            let _ = abort_tx.send(true);
            drain.await;
        }
        // A BLMOVE cut short by the stop may still have moved an id into a worker's list.
        for name in &workers {
            let swept = async {
                WorkerConn::open(&self.queue, name)
                    .await?
                    .recover_stranded()
                    .await
            };
            if let Err(e) = swept.await {
                tracing::warn!(worker = %name, error = %e, "could not sweep the processing list; the reaper will");
            }
        }
        if let Err(e) = self.queue.retire(&self.instance, &workers).await {
            tracing::warn!(error = %e, "could not retire the instance; its heartbeat will expire");
        }
        let _ = quiet_tx.send(true);
        let _ = tokio::join!(beating, upkeep);
        tracing::info!(instance = %self.instance, "worker pool stopped");
    }
}

/// How many workers a pool runs and how many of them hold a job, shared by its tasks.
#[derive(Debug, Default)]
pub struct PoolSize {
    pub running: AtomicUsize,
    pub busy: AtomicUsize,
}

/// Counts a worker busy from its making until dropped.
struct BusyGuard(Arc<PoolSize>);

impl BusyGuard {
    fn new(size: &Arc<PoolSize>) -> Self {
        size.busy.fetch_add(1, Ordering::SeqCst);
        Self(size.clone())
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Takes a worker out of the pool's count when its task ends.
struct Leaving {
    size: Arc<PoolSize>,
    /// Already counted out (a retirement decides and counts in one step).
    counted_out: bool,
}

impl Drop for Leaving {
    fn drop(&mut self) {
        if !self.counted_out {
            self.size.running.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// How a worker task ended.
#[derive(Debug, PartialEq, Eq)]
enum Exit {
    Stopped,
    /// Idle past `workers.idle_secs` with more than `workers.min` running.
    Retired,
}

/// How often the pool considers adding a worker.
const SCALE_INTERVAL: Duration = Duration::from_millis(250);

/// One worker task.
struct Worker<H> {
    queue: Queue,
    handler: Arc<H>,
    settings: WorkerSettings,
    name: String,
    /// Its slot, handed back when it retires.
    slot: usize,
    size: Arc<PoolSize>,
    stop: watch::Receiver<bool>,
    abort: watch::Receiver<bool>,
}

impl<H: Handler> Worker<H> {
    /// Works until stopped or retired; its slot, for the pool to hand out again.
    async fn run(mut self) -> usize {
        let _counted = telemetry::Held::new(telemetry::WORKERS);
        // Counts the worker out however it ends, a panic included, unless retiring did.
        let mut leaving = Leaving {
            size: self.size.clone(),
            counted_out: false,
        };
        leaving.counted_out = self.work().await == Exit::Retired;
        self.slot
    }

    /// Retires when idle past `workers.idle_secs` while more than `workers.min` run: counted out
    /// in the same step as the decision, so two idle workers never both retire past the minimum.
    fn may_retire(&self, idle_since: Instant) -> bool {
        idle_since.elapsed() >= self.settings.idle()
            && self
                .size
                .running
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |running| {
                    (running > self.settings.bounds().0).then(|| running - 1)
                })
                .is_ok()
    }

    async fn work(&mut self) -> Exit {
        let mut idle_since = Instant::now();
        let mut delay = ReconnectDelay::new();
        'connect: while !*self.stop.borrow() {
            let mut conn = match self.connect().await {
                Ok(conn) => conn,
                Err(e) => {
                    telemetry::redis_error("worker");
                    tracing::warn!(worker = %self.name, error = %e, "redis unavailable; retrying");
                    if !delay.wait(&mut self.stop).await {
                        return Exit::Stopped;
                    }
                    continue;
                }
            };
            if delay.has_waited() {
                telemetry::redis_reconnect("worker");
            }
            delay.reset();
            // The job the last ack claimed and activated for us, to run without a BLMOVE.
            let mut next: Option<Claim> = None;
            loop {
                let claim = match next.take() {
                    Some(claim) => Ok(claim),
                    None => tokio::select! {
                        biased;
                        _ = self.stop.wait_for(|s| *s) => return Exit::Stopped,
                        claim = conn.claim() => claim,
                    },
                };
                match claim {
                    Ok(Claim::Empty) => {
                        if self.may_retire(idle_since) {
                            // It holds no job; anything in its list goes back before it leaves.
                            if let Err(e) = conn.recover_stranded().await {
                                tracing::warn!(worker = %self.name, error = %e, "retiring with its list unswept; the pool's stop will sweep it");
                            }
                            tracing::debug!(worker = %self.name, "idle worker retired");
                            return Exit::Retired;
                        }
                    }
                    Ok(Claim::Limited { wait }) => {
                        // Never longer than a window, whatever the answer said.
                        let window = self.queue.settings().rate_limit_window();
                        tokio::select! {
                            _ = self.stop.wait_for(|s| *s) => return Exit::Stopped,
                            _ = tokio::time::sleep(wait.min(window)) => {}
                        }
                    }
                    Ok(Claim::Paused) => {
                        if !self.until_resumed().await {
                            return Exit::Stopped;
                        }
                    }
                    Ok(Claim::Skipped { id, state }) => {
                        tracing::debug!(job_id = %id, ?state, "skipped a job that is no longer runnable");
                    }
                    Ok(Claim::Job(job)) => {
                        let ran = self.run_job(&mut conn, job).await;
                        idle_since = Instant::now();
                        match ran {
                            Some(claimed) => next = claimed,
                            None => continue 'connect,
                        }
                    }
                    Err(e) => {
                        telemetry::redis_error("worker");
                        tracing::warn!(worker = %self.name, error = %e, "claim failed; reconnecting");
                        if !delay.wait(&mut self.stop).await {
                            return Exit::Stopped;
                        }
                        continue 'connect;
                    }
                }
            }
        }
        Exit::Stopped
    }

    /// Waits while processing is paused; `false` when the pool stops meanwhile.
    async fn until_resumed(&mut self) -> bool {
        loop {
            tokio::select! {
                _ = self.stop.wait_for(|s| *s) => return false,
                _ = tokio::time::sleep(PAUSE_POLL) => {}
            }
            // An error or no answer ends the wait too: the claim that follows meets it.
            let paused = tokio::time::timeout(PAUSE_POLL * 4, self.queue.is_paused());
            if paused.await.ok().and_then(Result::ok) != Some(true) {
                return true;
            }
        }
    }

    /// A fresh connection, with anything stranded in this worker's list put back first.
    async fn connect(&self) -> super::client::QueueResult<WorkerConn> {
        let mut conn = WorkerConn::open(&self.queue, &self.name).await?;
        conn.recover_stranded().await?;
        Ok(conn)
    }

    /// Runs one job and records how it ended. Returns the next job the ack claimed (if any), or
    /// `None` when the connection had to be replaced, so the caller reconnects (and sweeps).
    #[tracing::instrument(skip_all, fields(job_id = %job.id, attempt = job.attempt))]
    async fn run_job(&mut self, conn: &mut WorkerConn, job: Claimed) -> Option<Option<Claim>> {
        let waited = self.queue.now().saturating_sub(job.queued_at);
        telemetry::job_claimed(Duration::from_millis(waited));
        tracing::info!(worker = %self.name, waited_ms = waited, "job started");
        let _running = telemetry::Held::new(telemetry::JOBS_RUNNING);
        let _busy = BusyGuard::new(&self.size);
        let started = Instant::now();
        let progress = conn.progress_reporter(&job);
        let timeout = self.settings.job_timeout();
        let run = AssertUnwindSafe(self.handler.handle(&job, &progress)).catch_unwind();
        let outcome = tokio::select! {
            ran = tokio::time::timeout(timeout, run) => match ran {
                Ok(Ok(Ok(result))) => Outcome::Succeeded(result),
                Ok(Ok(Err(error))) => Outcome::Failed(error),
                Ok(Err(_panic)) => Outcome::Failed(JobError::transient(
                    "handler-panicked",
                    "processing crashed unexpectedly",
                )),
                Err(_) => Outcome::Failed(JobError::transient(
                    "timeout",
                    format!("processing took longer than {} s", timeout.as_secs()),
                )),
            },
            _ = self.abort.wait_for(|a| *a) => Outcome::HandBack,
        };
        let took = started.elapsed();
        telemetry::job_ran(
            match &outcome {
                Outcome::Succeeded(_) => "completed",
                Outcome::Failed(_) => "failed",
                Outcome::HandBack => "handed-back",
            },
            took,
        );
        self.settle(conn, &job, &outcome, took.as_millis() as u64)
            .await
    }

    /// Records the outcome, retrying through Redis errors until it is recorded or the shutdown
    /// deadline passes (then the job stays in our list for the sweep or the reaper). Returns what
    /// `run_job` does.
    async fn settle(
        &mut self,
        conn: &mut WorkerConn,
        job: &Claimed,
        outcome: &Outcome,
        ms: u64,
    ) -> Option<Option<Claim>> {
        let mut delay = ReconnectDelay::new();
        let mut fresh = true;
        loop {
            let claim_next = fresh && !*self.stop.borrow();
            let mut next = None;
            let recorded = match outcome {
                Outcome::Succeeded(result) if claim_next => conn
                    .ack_and_claim_next(job, result)
                    .await
                    .map(|(settled, claim)| {
                        next = claim;
                        settled
                    }),
                Outcome::Succeeded(result) => conn.ack(job, result).await,
                Outcome::Failed(error) => conn.fail(job, error).await,
                Outcome::HandBack => conn.hand_back(job).await,
            };
            let answer = fresh.then_some(next);
            match recorded {
                Ok(Settled::Done) => {
                    match outcome {
                        Outcome::Succeeded(_) => tracing::info!(ms, "job completed"),
                        Outcome::Failed(e) => {
                            tracing::info!(ms, code = %e.code, detail = %e.detail, "job failed")
                        }
                        Outcome::HandBack => tracing::info!(ms, "job handed back"),
                    }
                    return answer;
                }
                Ok(Settled::LeaseLost { state }) => {
                    tracing::warn!(
                        ?state,
                        "lease lost: the job was cancelled or recovered elsewhere; result discarded"
                    );
                    return answer;
                }
                Err(e) => {
                    telemetry::redis_error("worker");
                    tracing::warn!(error = %e, "could not record the job's outcome; retrying");
                    // The call may have run, its next job claimed with it: retries claim
                    // nothing, and the caller reconnects and sweeps this worker's list.
                    fresh = false;
                    if !delay.wait(&mut self.abort).await {
                        return None;
                    }
                    match WorkerConn::open(&self.queue, &self.name).await {
                        Ok(new) => *conn = new,
                        Err(e) => tracing::warn!(error = %e, "reconnect failed"),
                    }
                }
            }
        }
    }
}
