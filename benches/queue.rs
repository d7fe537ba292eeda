//! No-op jobs per second through the queue, at concurrency 1, 8 and 64 worker tasks in one pool.
//! - `queue_noop`: end to end. Enqueue (batches of 500, as BullMQ's `addBulk` bench does) runs while
//!   the workers claim, activate and ack, so its cost is inside the measurement.
//! - `queue_drain`: like BullMQ's `noop-bench.js` `process_per_s`: the jobs are enqueued first, then
//!   the time from starting the pool to the last ack is measured.
//! - `queue_enqueue`: like its `enqueue_per_s`: batches of 500 enqueued, no worker running.
//!
//! Redis: `PIXDROP_BENCH_REDIS_URL` if set (so `benches/compare-bullmq.sh` can measure BullMQ on the
//! same server in the same run), else a private `redis-server` with the AOF on and fsynced every
//! second, as BullMQ's comparison runs it (`PIXDROP_BENCH_APPENDFSYNC=always` fsyncs every write,
//! as pixdrop's embedded server does: `benches/fsync-cost.sh` measures the difference).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use pixdrop::queue::{Claimed, Handler, JobError, Progress, Queue, WorkerPool};
use pixdrop::queue::{KeyPrefix, QueueSettings, WorkerSettings};
use pixdrop::redis_server::{Listen, RedisServer, RedisServerOptions};
use serde_json::{Value, json};
use tokio::sync::Notify;

const JOBS: usize = 5_000;
const BATCH: usize = 500;

/// Jobs done so far, and the count the bench waits for. Only reaching it wakes the bench: a wake-up
/// per job would put the bench's own thread switches into the figures (BullMQ's bench counts its
/// `completed` events on its one thread).
struct Tally {
    done: AtomicUsize,
    goal: AtomicUsize,
    reached: Notify,
}

impl Default for Tally {
    fn default() -> Self {
        Self {
            done: AtomicUsize::new(0),
            goal: AtomicUsize::new(usize::MAX),
            reached: Notify::new(),
        }
    }
}

impl Tally {
    /// Sets the count to wake the bench at (before the jobs go in, so none wakes it early).
    fn expect(&self, count: usize) {
        self.goal.store(count, Ordering::SeqCst);
    }

    /// Waits until `count` jobs are done in all.
    async fn wait_for(&self, count: usize) {
        self.expect(count);
        while self.done.load(Ordering::SeqCst) < count {
            // The timeout covers a goal stored just after the last job looked at it.
            let _ = tokio::time::timeout(Duration::from_millis(5), self.reached.notified()).await;
        }
    }
}

/// Does nothing but count.
struct Noop(Arc<Tally>);

impl Handler for Noop {
    async fn handle(&self, _job: &Claimed, _progress: &Progress) -> Result<Value, JobError> {
        let done = self.0.done.fetch_add(1, Ordering::SeqCst) + 1;
        if done >= self.0.goal.load(Ordering::SeqCst) {
            self.0.reached.notify_one();
        }
        Ok(Value::Null)
    }
}

/// A pool of `Noop` workers running on a runtime, and what the bench watches of it.
struct NoopPool {
    tally: Arc<Tally>,
    stop: tokio::sync::oneshot::Sender<()>,
    running: tokio::task::JoinHandle<()>,
}

impl NoopPool {
    fn start(queue: &Queue, concurrency: usize, runtime: &tokio::runtime::Handle) -> Self {
        let tally = Arc::new(Tally::default());
        let handler = Noop(tally.clone());
        let workers = WorkerSettings {
            concurrency: Some(concurrency),
            ..WorkerSettings::default()
        };
        let pool = WorkerPool::new(queue.clone(), handler, workers);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = runtime.spawn(pool.run(async {
            let _ = stopped.await;
        }));
        Self {
            tally,
            stop,
            running,
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.running.await.expect("pool stops");
    }
}

/// Each sample is a few seconds of real work: few samples, flat sampling, throughput in jobs.
fn configure(group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(15))
        .throughput(Throughput::Elements(JOBS as u64));
}

fn queue_throughput(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let (url, _server) = match std::env::var("PIXDROP_BENCH_REDIS_URL") {
        Ok(url) => (url, None),
        Err(_) => {
            let server = RedisServer::start(RedisServerOptions {
                listen: Listen::LoopbackPort,
                binary: "redis-server".into(),
                dir: dir.path().to_path_buf(),
                appendfsync: match std::env::var("PIXDROP_BENCH_APPENDFSYNC").as_deref() {
                    Ok("always") => "always",
                    _ => "everysec",
                },
                inherit_fd: None,
            })
            .expect("the bench needs redis-server on PATH");
            (server.url(), Some(server))
        }
    };
    let prefix =
        KeyPrefix::parse(&format!("bench-{}", std::process::id())).expect("a valid prefix");
    let settings = QueueSettings {
        // Short-lived records: the bench must not fill the server.
        completed_retention_secs: 60,
        ..QueueSettings::default()
    };
    let queue = Queue::connect(&url, &prefix, 8, &settings).expect("queue");
    let payloads: Vec<Value> = (0..BATCH).map(|i| json!({"i": i})).collect();

    let mut group = c.benchmark_group("queue_noop");
    configure(&mut group);
    for concurrency in [1, 8, 64] {
        let pool = NoopPool::start(&queue, concurrency, runtime.handle());
        let tally = pool.tally.clone();
        group.bench_function(BenchmarkId::from_parameter(concurrency), |b| {
            b.to_async(&runtime).iter_custom(|iters| {
                let (queue, tally, payloads) = (queue.clone(), tally.clone(), payloads.clone());
                async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let target = tally.done.load(Ordering::SeqCst) + JOBS;
                        tally.expect(target);
                        for _ in 0..JOBS / BATCH {
                            queue.enqueue_batch(&payloads).await.expect("enqueue");
                        }
                        tally.wait_for(target).await;
                    }
                    start.elapsed()
                }
            });
        });
        runtime.block_on(pool.stop());
    }
    group.finish();

    let mut group = c.benchmark_group("queue_enqueue");
    configure(&mut group);
    group.bench_function("batches_of_500", |b| {
        b.to_async(&runtime).iter_custom(|iters| {
            let (queue, payloads) = (queue.clone(), payloads.clone());
            async move {
                let start = Instant::now();
                for _ in 0..iters {
                    for _ in 0..JOBS / BATCH {
                        queue.enqueue_batch(&payloads).await.expect("enqueue");
                    }
                }
                let elapsed = start.elapsed();
                // Drained outside the measurement, so the waiting list does not grow run on run.
                let pool = NoopPool::start(&queue, 8, &tokio::runtime::Handle::current());
                pool.tally.wait_for(JOBS * iters as usize).await;
                pool.stop().await;
                elapsed
            }
        });
    });
    group.finish();

    let mut group = c.benchmark_group("queue_drain");
    configure(&mut group);
    for concurrency in [1, 8, 64] {
        group.bench_function(BenchmarkId::from_parameter(concurrency), |b| {
            b.to_async(&runtime).iter_custom(|iters| {
                let (queue, payloads) = (queue.clone(), payloads.clone());
                async move {
                    let mut measured = Duration::ZERO;
                    for _ in 0..iters {
                        for _ in 0..JOBS / BATCH {
                            queue.enqueue_batch(&payloads).await.expect("enqueue");
                        }
                        let start = Instant::now();
                        let pool = NoopPool::start(
                            &queue,
                            concurrency,
                            &tokio::runtime::Handle::current(),
                        );
                        pool.tally.wait_for(JOBS).await;
                        measured += start.elapsed();
                        pool.stop().await;
                    }
                    measured
                }
            });
        });
    }
    group.finish();
}

criterion_group!(benches, queue_throughput);
criterion_main!(benches);
