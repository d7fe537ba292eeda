//! Removing for good, so that disk and Redis shrink together and nothing is orphaned: deletions
//! by an upload's owner and an administrator's purges, the expiry of finished records, the sweep
//! that removes files once Redis says they are garbage, and the orphan sweep that finds files no
//! record names.
//!
//! Redis always changes first (`queue::removal`, one script per removal, which also schedules the
//! garbage), files after, so a record never names a missing file. Every process runs the loop
//! ([`Cleanup::spawn`]): it sweeps the garbage schedule every `storage.sweep_interval_ms`, at once
//! when woken. Two chores repeat on the queue's schedule (`queue::repeat`), each occurrence run by
//! one instance: the retention (`expire-finished`: finished records past their retention or their
//! cap by count, files and all), every `storage.sweep_interval_ms`, and the orphan sweep, every
//! `storage.orphan_sweep_interval_secs`. A sweep that dies mid-way leaves
//! its entries to come back after their lease; a file that is set aside is removed only if Redis,
//! asked after, still finds no reference (see `storage::removal`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{Notify, watch};

use crate::auth::quotas::Quotas;
use crate::image_job::ImageJob;
use crate::queue::{
    ClaimedGarbage, DeleteProof, Garbage, JobId, JobState, Queue, QueueError, QueueResult,
    ReconnectDelay, Removed, StoredJob, Subject,
};
use crate::storage::{SetAside, Storage, StorageSettings, Stored};

/// How long a sweep holds the entries it claimed: one that died comes back after this.
const SWEEP_LEASE: Duration = Duration::from_secs(300);
/// Entries claimed at a time.
const SWEEP_BATCH: usize = 100;
/// An active job's worker may write outputs until its job times out; its outputs are swept once
/// more this long after that.
const OUTPUTS_MARGIN: Duration = Duration::from_secs(60);

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    /// Originals removed: the last reference to them went.
    pub originals_removed: usize,
    /// Originals set aside and put back: an upload of the same bytes came in meanwhile.
    pub originals_kept: usize,
    /// Jobs whose outputs were removed.
    pub outputs_removed: usize,
    /// Entries that failed (left for a later sweep).
    pub failed: usize,
}

/// What one orphan sweep found (and scheduled for removal).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct OrphanReport {
    pub originals: usize,
    pub outputs: usize,
    /// Records of an earlier version given their content reference.
    pub adopted: usize,
    /// Set-aside originals no sweep finished with (restored or removed as Redis says).
    pub tombs: usize,
    /// Bytes whose variants were kept for reuse though nothing references them.
    pub made: usize,
}

/// Removal for one process; cheap to share.
pub struct Cleanup {
    queue: Queue,
    storage: Storage,
    quotas: Quotas,
    settings: StorageSettings,
    /// How long after an active job's removal its outputs are swept again.
    outputs_delay: Duration,
    wake: Notify,
    /// Names this process in the repeatable tasks' records.
    runner: String,
}

/// The repeatable tasks' names in the queue's schedule.
const RETENTION_TASK: &str = "expire-finished";
const ORPHAN_SWEEP_TASK: &str = "orphan-sweep";

impl Cleanup {
    pub fn new(
        queue: Queue,
        storage: Storage,
        quotas: Quotas,
        settings: &StorageSettings,
        job_timeout: Duration,
    ) -> Self {
        Self {
            queue,
            storage,
            quotas,
            settings: settings.clone(),
            outputs_delay: job_timeout + OUTPUTS_MARGIN,
            wake: Notify::new(),
            // Several processes may share a machine and, in tests, a pid.
            runner: format!(
                "{}/{}-{}",
                hostname(),
                std::process::id(),
                &uuid::Uuid::now_v7().simple().to_string()[24..]
            ),
        }
    }

    /// Deletes a job if `proof` allows it (`None` otherwise, or when there is none), gives back
    /// its subject's stored bytes, and removes its files before returning: what Redis no longer
    /// names, storage no longer serves.
    pub async fn delete(&self, id: &JobId, proof: DeleteProof<'_>) -> QueueResult<Option<Removed>> {
        let removed = self.queue.delete(id, proof, self.outputs_delay).await?;
        if let Some(removed) = &removed {
            self.after_removal(std::slice::from_ref(removed)).await;
        }
        Ok(removed)
    }

    /// Deletes a job whoever owns it (an administrator's delete), then as `delete` does.
    pub async fn delete_any(&self, id: &JobId) -> QueueResult<Option<Removed>> {
        let removed = self.queue.delete_any(id, self.outputs_delay).await?;
        if let Some(removed) = &removed {
            self.after_removal(std::slice::from_ref(removed)).await;
        }
        Ok(removed)
    }

    /// Removes the finished jobs in `state` older than `older_than`, and their files; how many.
    pub async fn clean(&self, state: JobState, older_than: Duration) -> QueueResult<usize> {
        let before = self.queue.finished_before(older_than);
        let removed = self
            .queue
            .clean_finished(state, before, self.outputs_delay)
            .await?;
        self.after_removal(&removed).await;
        Ok(removed.len())
    }

    /// Removes every upload of the original with this SHA-256, and blocks it when `block` says so.
    pub async fn purge(&self, sha256: &str, block: bool) -> QueueResult<Vec<Removed>> {
        let removed = self.queue.purge(sha256, block, self.outputs_delay).await?;
        self.after_removal(&removed).await;
        Ok(removed)
    }

    /// Runs the retention when its occurrence is due and this process takes it (see
    /// `queue::repeat`): `None` when it is not this process's turn.
    pub async fn expire_when_due(&self) -> QueueResult<Option<usize>> {
        let every = self.settings.sweep_interval();
        if !self
            .queue
            .take_due(RETENTION_TASK, every, &self.runner)
            .await?
        {
            return Ok(None);
        }
        self.expire().await.map(Some)
    }

    /// Removes the finished records whose retention is over, then the oldest beyond the caps by
    /// count, and then their files.
    pub async fn expire(&self) -> QueueResult<usize> {
        let expired = self.queue.expire_due().await?;
        if !expired.is_empty() {
            tracing::info!(jobs = expired.len(), "expired finished jobs");
            self.after_removal(&expired).await;
        }
        // Then the caps by count, oldest first; each removal's quotas and files are seen to
        // before the next step can fail.
        let mut total = expired.len();
        let settings = self.queue.settings();
        for (state, cap) in [
            (JobState::Completed, settings.completed_max_count),
            (JobState::Failed, settings.failed_max_count),
            (JobState::Cancelled, settings.failed_max_count),
        ] {
            if cap > 0 {
                let trimmed = self
                    .queue
                    .trim_finished(state, cap, self.outputs_delay)
                    .await?;
                if !trimmed.is_empty() {
                    tracing::info!(jobs = trimmed.len(), %state, cap, "finished jobs over the cap removed");
                    self.after_removal(&trimmed).await;
                }
                total += trimmed.len();
            }
        }
        Ok(total)
    }

    /// Gives back quotas, removes what active jobs wrote so far (their outputs are swept again
    /// later, in case their workers write more), and sweeps what the removal scheduled (only
    /// that: a backlog is the loop's). Failures are logged: the records are gone, and the garbage
    /// schedule still holds the files.
    async fn after_removal(&self, removed: &[Removed]) {
        // One give-back per subject, however many of its jobs went (a purge, an expiry batch).
        let mut released: HashMap<&Subject, u64> = HashMap::new();
        for job in removed.iter().filter(|job| job.subject.name().is_some()) {
            let bytes = serde_json::from_str::<ImageJob>(&job.payload).map_or(0, |p| p.bytes);
            *released.entry(&job.subject).or_default() += bytes;
        }
        for (subject, bytes) in released {
            if let Err(e) = self.quotas.release_stored(subject, bytes).await {
                tracing::warn!(error = %e, %subject, "could not give back stored bytes");
            }
        }
        // A cancelled job's worker may still be writing too, until its lease is refused.
        let active: Vec<JobId> = removed
            .iter()
            .filter(|job| matches!(job.state, JobState::Active | JobState::Cancelled))
            .map(|job| job.id)
            .collect();
        if !active.is_empty() {
            let storage = self.storage.clone();
            let removed = tokio::task::spawn_blocking(move || {
                active
                    .iter()
                    .try_for_each(|id| storage.remove_outputs(id).map(drop))
            })
            .await;
            if let Ok(Err(e)) = removed {
                tracing::warn!(error = %e, "could not remove a deleted job's outputs yet");
            }
        }
        let scheduled: Vec<Garbage> = removed
            .iter()
            .flat_map(|job| {
                let content = job.content.clone().map(Garbage::Content);
                std::iter::once(Garbage::Outputs(job.id)).chain(content)
            })
            .collect();
        for batch in scheduled.chunks(SWEEP_BATCH) {
            if let Err(e) = self.sweep_only(batch).await {
                tracing::warn!(error = %e, "sweep failed; the garbage schedule keeps what is left");
                return;
            }
        }
    }

    /// Takes the due garbage and removes it, until none is due.
    pub async fn sweep(&self) -> QueueResult<SweepReport> {
        self.sweep_only(&[]).await
    }

    /// Removes those of `only` that are due (all that is due when empty).
    async fn sweep_only(&self, only: &[Garbage]) -> QueueResult<SweepReport> {
        let mut report = SweepReport::default();
        loop {
            let claimed = self
                .queue
                .claim_garbage(SWEEP_LEASE, SWEEP_BATCH, only)
                .await?;
            let more = only.is_empty() && claimed.len() == SWEEP_BATCH;
            for entry in claimed {
                self.remove(entry, &mut report).await;
            }
            if !more {
                return Ok(report);
            }
        }
    }

    /// Deals with one claimed entry's files, then finishes the entry. Anything that fails leaves
    /// the entry claimed, due again when its lease ends, and its files as they are: a set-aside
    /// original stays set aside, where the next sweep finds it.
    async fn remove(&self, claimed: ClaimedGarbage, report: &mut SweepReport) {
        let storage = self.storage.clone();
        let done = match &claimed.garbage {
            Garbage::Outputs(id) => {
                let id = *id;
                blocking(move || storage.remove_outputs(&id))
                    .await
                    .map(|_| report.outputs_removed += 1)
            }
            Garbage::Content(sha) if claimed.referenced => {
                // Not garbage any more; a sweep that died holding it may have set it aside.
                let content = sha.clone();
                blocking(move || storage.restore_original(&content))
                    .await
                    .map(|restored| report.originals_kept += usize::from(restored))
            }
            Garbage::Content(sha) => self.remove_original(sha, report).await,
        };
        let finished = match done {
            Ok(()) => self.queue.finish_garbage(&claimed.garbage).await,
            Err(e) => {
                report.failed += 1;
                tracing::error!(error = %e, garbage = ?claimed.garbage, "could not remove; retrying after the lease");
                return;
            }
        };
        if let Err(e) = finished {
            // The files are dealt with; the entry comes back after its lease and finds so.
            tracing::warn!(error = %e, garbage = ?claimed.garbage, "could not finish a garbage entry");
        }
    }

    /// The contents among `found` older than `before` that no record references, by the records
    /// listed (`referenced`) and by Redis's count.
    async fn unreferenced(
        &self,
        found: Vec<Stored<String>>,
        before: SystemTime,
        referenced: &HashSet<String>,
    ) -> QueueResult<Vec<String>> {
        let mut unreferenced = Vec::new();
        for stored in found {
            if stored.modified < before
                && !referenced.contains(&stored.what)
                && !self.queue.is_referenced(&stored.what).await?
            {
                unreferenced.push(stored.what);
            }
        }
        Ok(unreferenced)
    }

    /// Sets an unreferenced original aside, asks Redis once more, and removes it (with the
    /// variants kept for reuse of those bytes) or puts it back.
    async fn remove_original(&self, sha: &str, report: &mut SweepReport) -> std::io::Result<()> {
        let (storage, content) = (self.storage.clone(), sha.to_owned());
        // `None` when there is no original: an orphan sweep found only kept variants.
        let aside = blocking(move || storage.set_aside_original(&content)).await?;
        match (self.queue.is_referenced(sha).await, aside) {
            (Ok(false), aside) => {
                let removed_original = aside.is_some();
                let (storage, content) = (self.storage.clone(), sha.to_owned());
                blocking(move || {
                    aside.map(SetAside::remove).transpose()?;
                    storage.remove_made(&content)
                })
                .await?;
                report.originals_removed += usize::from(removed_original);
                Ok(())
            }
            (Ok(true), None) => Ok(()),
            (Ok(true), Some(aside)) => {
                blocking(move || aside.put_back()).await?;
                report.originals_kept += 1;
                Ok(())
            }
            (Err(e), aside) => {
                // Unknown whether it is still garbage: keep it, and ask again after the lease.
                if let Some(aside) = aside {
                    blocking(move || aside.put_back()).await?;
                }
                Err(std::io::Error::other(format!(
                    "could not ask whether it is referenced: {e}"
                )))
            }
        }
    }

    /// Gives every record an earlier version wrote (without a content reference) its reference,
    /// before anything is removed: until then a deletion of a newer upload of the same bytes
    /// would take their original. Run at start-up, before serving; the orphan sweep does it again
    /// for any that came later. Returns how many were adopted.
    pub async fn adopt_earlier_records(&self) -> QueueResult<usize> {
        let jobs = self.queue.stored_jobs().await?;
        let adopted = self.adopt(&jobs).await?;
        if adopted > 0 {
            tracing::info!(
                adopted,
                "records of an earlier version given their content reference"
            );
        }
        Ok(adopted)
    }

    async fn adopt(&self, jobs: &[StoredJob]) -> QueueResult<usize> {
        let mut adopted = 0;
        for job in jobs.iter().filter(|job| job.content.is_none()) {
            if let Some(sha) = sha256_of(job) {
                adopted += usize::from(self.queue.adopt_content(&job.id, &sha).await?);
            }
        }
        Ok(adopted)
    }

    /// Finds what storage holds and no record names, older than `storage.orphan_min_age_secs`
    /// (younger files may belong to uploads under way), and schedules it as garbage, then
    /// sweeps; the claim asks Redis again, so a content referenced since is kept. Originals a
    /// sweep set aside and never finished with are scheduled too: the claim puts them back if they
    /// are referenced, and removes them if not. `None` when the sweep is not due or another
    /// instance took its occurrence (see `queue::repeat`), unless `forced` (at start-up: a
    /// restart after a crash sweeps at once; two sweeps at the same time are only wasteful,
    /// since every removal is claimed).
    pub async fn find_orphans(&self, forced: bool) -> QueueResult<Option<OrphanReport>> {
        let interval = self.settings.orphan_sweep_interval();
        let taken = self
            .queue
            .take_due(ORPHAN_SWEEP_TASK, interval, &self.runner)
            .await?;
        if !taken && !forced {
            return Ok(None);
        }
        let before = SystemTime::now() - self.settings.orphan_min_age();
        let jobs = self.queue.stored_jobs().await?;
        let mut report = OrphanReport {
            adopted: self.adopt(&jobs).await?,
            ..OrphanReport::default()
        };
        let live: HashSet<JobId> = jobs.iter().map(|job| job.id).collect();
        let referenced: HashSet<String> = jobs
            .iter()
            .filter_map(|job| job.content.clone().or_else(|| sha256_of(job)))
            .collect();
        let storage = self.storage.clone();
        let (originals, outputs, tombs, made) = blocking(move || {
            Ok((
                storage.stored_originals()?,
                storage.stored_outputs()?,
                storage.stored_tombs()?,
                storage.stored_made()?,
            ))
        })
        .await
        .map_err(|e| QueueError::Protocol(format!("cannot list storage: {e}")))?;
        let mut garbage = Vec::new();
        let unreferenced_originals = self.unreferenced(originals, before, &referenced).await?;
        report.originals = unreferenced_originals.len();
        // Variants kept for reuse of bytes nothing references (their original already gone).
        let unreferenced_made = self.unreferenced(made, before, &referenced).await?;
        report.made = unreferenced_made.len();
        garbage.extend(
            unreferenced_originals
                .into_iter()
                .chain(unreferenced_made)
                .map(Garbage::Content),
        );
        for tomb in tombs.into_iter().filter(|t| t.modified < before) {
            garbage.push(Garbage::Content(tomb.what));
            report.tombs += 1;
        }
        let candidates: Vec<JobId> = outputs
            .into_iter()
            .filter(|o| o.modified < before && !live.contains(&o.what))
            .map(|o| o.what)
            .collect();
        if !candidates.is_empty() {
            for (id, exists) in candidates.iter().zip(self.queue.exist(&candidates).await?) {
                if !exists {
                    garbage.push(Garbage::Outputs(*id));
                    report.outputs += 1;
                }
            }
        }
        if report != OrphanReport::default() {
            tracing::info!(?report, "orphan sweep");
        }
        self.queue.schedule_garbage(&garbage).await?;
        self.sweep().await?;
        Ok(Some(report))
    }

    /// Sweeps soon, without waiting for the next interval.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Runs the loop until `stop` turns true: the sweep, and the retention when due, every
    /// `storage.sweep_interval_ms` (or when woken); the orphan sweep at start and when due.
    pub fn spawn(self: Arc<Self>, mut stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut sweep = tokio::time::interval(self.settings.sweep_interval());
            let mut orphans = tokio::time::interval(self.settings.orphan_sweep_interval());
            sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            orphans.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut delay = ReconnectDelay::new();
            let mut first_orphan_sweep = true;
            loop {
                let orphan_sweep = tokio::select! {
                    _ = stop.wait_for(|s| *s) => return,
                    _ = sweep.tick() => false,
                    () = self.wake.notified() => false,
                    _ = orphans.tick() => true,
                };
                let result = if orphan_sweep {
                    let forced = std::mem::take(&mut first_orphan_sweep);
                    self.find_orphans(forced).await.map(drop)
                } else {
                    match self.expire_when_due().await {
                        Ok(_) => self.sweep().await.map(drop),
                        Err(e) => Err(e),
                    }
                };
                match result {
                    Ok(()) => delay.reset(),
                    Err(e) => {
                        tracing::warn!(error = %e, "cleanup failed; retrying");
                        if !delay.wait(&mut stop).await {
                            return;
                        }
                    }
                }
            }
        })
    }
}

/// The machine's name, for the repeatable tasks' records (`unknown` when it cannot be read).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The SHA-256 of the original a record's payload names (records of an earlier version name their
/// content only there).
fn sha256_of(job: &StoredJob) -> Option<String> {
    let payload = serde_json::from_str::<ImageJob>(job.payload.as_deref()?).ok()?;
    Some(payload.sha256)
}

/// Runs file work off the async executor.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(std::io::Error::other)?
}
