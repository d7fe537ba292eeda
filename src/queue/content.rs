//! Contents jobs read, counted by reference, so that what storage holds for them is removed
//! exactly when nothing refers to it any more, even with several instances at once.
//!
//! A content is an opaque name the producer chooses (pixdrop's uploads use the SHA-256 of the
//! bytes, which two uploads of the same photo share). Its references are a sorted set: the jobs
//! naming it (scored +inf), added and removed by the same scripts that create and remove the jobs,
//! and the *pins* of uploads about to name it (scored by when they lapse). An upload pins its
//! content before it moves the file into place, and its enqueue turns the pin into the jobs' own
//! references.
//!
//! What storage must remove goes on the *garbage schedule*, by the scripts that make it garbage:
//! the outputs of a removed job, a content left without references. A sweep claims due entries
//! (each for a lease, so two sweeps never hold the same one and a dead sweep's entry comes back),
//! sets a free content's file aside, asks once more whether anything references it, removes it or
//! puts it back, and only then *finishes* the entry. Records change first and files follow, so no
//! record ever names a missing file; a crash anywhere leaves the entry, and the set-aside file, for
//! the next sweep.

use std::time::Duration;

use redis::AsyncCommands;

use super::client::{BlockedContent, Queue, QueueError, QueueResult};
use super::job::JobId;

/// An upload's hold on contents it is storing, until its enqueue takes over or it lapses.
#[derive(Debug, Clone)]
pub struct Pin {
    pub(super) name: String,
    contents: Vec<String>,
}

/// One entry of the garbage schedule.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Garbage {
    /// What a removed job produced.
    Outputs(JobId),
    /// A content no job references.
    Content(String),
}

impl Garbage {
    /// The entry as the scripts write it, or `None` for one this version does not know.
    pub fn parse(entry: &str) -> Option<Self> {
        match entry.split_once(':')? {
            ("outputs", id) => id.parse().ok().map(Self::Outputs),
            ("content", content) if !content.is_empty() => Some(Self::Content(content.to_owned())),
            _ => None,
        }
    }

    fn entry(&self) -> String {
        match self {
            Self::Outputs(id) => format!("outputs:{id}"),
            Self::Content(content) => format!("content:{content}"),
        }
    }
}

/// An entry a sweep holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedGarbage {
    pub garbage: Garbage,
    /// A content referenced again when claimed (an upload of the same bytes): its files stay, and
    /// one a sweep set aside goes back.
    pub referenced: bool,
}

/// A job's record, as the orphan sweep reads it.
#[derive(Debug, Clone)]
pub struct StoredJob {
    pub id: JobId,
    pub content: Option<String>,
    pub payload: Option<String>,
}

impl Queue {
    /// Pins `contents` until `lapse` from now, or until the enqueue of the jobs naming them.
    /// `Err` names the first blocked content; nothing is pinned then.
    pub async fn pin(
        &self,
        contents: &[String],
        lapse: Duration,
    ) -> QueueResult<Result<Pin, BlockedContent>> {
        let pin = Pin {
            name: format!("pin:{}", uuid::Uuid::now_v7().simple()),
            contents: contents.to_vec(),
        };
        if contents.is_empty() {
            return Ok(Ok(pin));
        }
        let keys = self.keys();
        let mut invocation = self.inner.scripts.pin.prepare_invoke();
        let now = self.now();
        invocation
            .key(keys.blocked())
            .arg(&pin.name)
            .arg(now + lapse.as_millis() as u64)
            .arg(now);
        for content in contents {
            invocation.key(keys.content_refs(content)).arg(content);
        }
        let mut conn = self.conn().await?;
        let blocked: usize = invocation.invoke_async(&mut conn).await?;
        Ok(match blocked {
            0 => Ok(pin),
            i => Err(BlockedContent { index: i - 1 }),
        })
    }

    /// Lets go of a pin whose jobs will not be enqueued; a content left unreferenced becomes
    /// garbage.
    pub async fn unpin(&self, pin: &Pin) -> QueueResult<()> {
        if pin.contents.is_empty() {
            return Ok(());
        }
        let keys = self.keys();
        let mut invocation = self.inner.scripts.unpin.prepare_invoke();
        invocation
            .key(keys.garbage())
            .arg(&pin.name)
            .arg(self.now());
        for content in &pin.contents {
            invocation.key(keys.content_refs(content)).arg(content);
        }
        let mut conn = self.conn().await?;
        let _: i64 = invocation.invoke_async(&mut conn).await?;
        Ok(())
    }

    /// Whether a job or a live pin references `content`.
    pub async fn is_referenced(&self, content: &str) -> QueueResult<bool> {
        let key = self.keys().content_refs(content);
        let now = self.now();
        let mut conn = self.conn().await?;
        let live: u64 = conn.zcount(key, now, "+inf").await?;
        Ok(live > 0)
    }

    /// Takes up to `limit` due entries of the garbage schedule for `lease`, or, when `only` names
    /// some, those of them that are due. Entries this version cannot read are dropped from the
    /// schedule.
    pub async fn claim_garbage(
        &self,
        lease: Duration,
        limit: usize,
        only: &[Garbage],
    ) -> QueueResult<Vec<ClaimedGarbage>> {
        let keys = self.keys();
        let mut invocation = self.inner.scripts.garbage_claim.prepare_invoke();
        invocation
            .key(keys.garbage())
            .arg(self.now())
            .arg(lease.as_millis() as u64)
            .arg(limit)
            .arg(keys.tag());
        for garbage in only {
            invocation.arg(garbage.entry());
        }
        let mut conn = self.conn().await?;
        let taken: Vec<String> = invocation.invoke_async(&mut conn).await?;
        let mut claimed = Vec::with_capacity(taken.len() / 2);
        for pair in taken.chunks(2) {
            let [entry, status] = pair else {
                return Err(QueueError::Protocol(format!(
                    "garbage_claim answered {taken:?}"
                )));
            };
            match Garbage::parse(entry) {
                Some(garbage) => claimed.push(ClaimedGarbage {
                    garbage,
                    referenced: status == "referenced",
                }),
                None => {
                    tracing::warn!(%entry, "dropping an unknown garbage entry");
                    let _: i64 = conn.zrem(keys.garbage(), entry).await?;
                }
            }
        }
        Ok(claimed)
    }

    /// Ends a claimed entry, once its files are removed or put back.
    pub async fn finish_garbage(&self, garbage: &Garbage) -> QueueResult<()> {
        let mut conn = self.conn().await?;
        let _: i64 = conn.zrem(self.keys().garbage(), garbage.entry()).await?;
        Ok(())
    }

    /// Puts entries on the garbage schedule, due now, unless they are there already (the orphan
    /// sweep's finds: the claim checks a content's references again).
    pub async fn schedule_garbage(&self, garbage: &[Garbage]) -> QueueResult<()> {
        if garbage.is_empty() {
            return Ok(());
        }
        let now = self.now();
        let mut cmd = redis::cmd("ZADD");
        cmd.arg(self.keys().garbage()).arg("NX");
        for g in garbage {
            cmd.arg(now).arg(g.entry());
        }
        let mut conn = self.conn().await?;
        let _: i64 = cmd.query_async(&mut conn).await?;
        Ok(())
    }

    /// How many entries wait on the garbage schedule, due or not.
    pub async fn garbage_depth(&self) -> QueueResult<u64> {
        let mut conn = self.conn().await?;
        Ok(conn.zcard(self.keys().garbage()).await?)
    }

    /// Blocks `content` (no job may name it again), or lifts the block.
    pub async fn set_blocked(&self, content: &str, blocked: bool) -> QueueResult<bool> {
        let key = self.keys().blocked();
        let mut conn = self.conn().await?;
        let changed: i64 = if blocked {
            conn.sadd(key, content).await?
        } else {
            conn.srem(key, content).await?
        };
        Ok(changed == 1)
    }

    pub async fn is_blocked(&self, content: &str) -> QueueResult<bool> {
        let mut conn = self.conn().await?;
        Ok(conn.sismember(self.keys().blocked(), content).await?)
    }

    /// Gives a record an earlier version wrote its content reference (see `lua/adopt.lua`);
    /// `false` when it has one already, or is gone.
    pub async fn adopt_content(&self, id: &JobId, content: &str) -> QueueResult<bool> {
        let keys = self.keys();
        let mut conn = self.conn().await?;
        let adopted: i64 = self
            .inner
            .scripts
            .adopt
            .key(keys.job(id))
            .key(keys.content_refs(content))
            .key(keys.finished())
            .arg(id.to_string())
            .arg(content)
            .arg(self.now())
            .invoke_async(&mut conn)
            .await?;
        Ok(adopted == 1)
    }

    /// Every job record there is, with the content it names and its payload, read with SCAN in
    /// batches (for the orphan sweep: what it finds no record for is garbage).
    pub async fn stored_jobs(&self) -> QueueResult<Vec<StoredJob>> {
        let prefix = self.keys().job_prefix();
        let pattern = format!("{}*", redis_glob_escape(&prefix));
        let mut conn = self.conn().await?;
        let mut cursor: u64 = 0;
        let mut found = Vec::new();
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await?;
            let ids: Vec<JobId> = batch
                .iter()
                .filter_map(|key| key.strip_prefix(prefix.as_str())?.parse().ok())
                .collect();
            if !ids.is_empty() {
                let mut pipe = redis::pipe();
                for id in &ids {
                    pipe.cmd("HMGET")
                        .arg(self.keys().job(id))
                        .arg("content")
                        .arg("payload");
                }
                let fields: Vec<(Option<String>, Option<String>)> =
                    pipe.query_async(&mut conn).await?;
                found.extend(ids.into_iter().zip(fields).map(|(id, (content, payload))| {
                    StoredJob {
                        id,
                        content,
                        payload,
                    }
                }));
            }
            if next == 0 {
                return Ok(found);
            }
            cursor = next;
        }
    }
}

/// `s` matched literally by a SCAN pattern: the tag's braces and any glob character escaped.
fn redis_glob_escape(s: &str) -> String {
    let mut escaped = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_entries_parse_back_and_unknown_ones_do_not() {
        let id = JobId::new();
        for g in [Garbage::Outputs(id), Garbage::Content("ab12".into())] {
            assert_eq!(Garbage::parse(&g.entry()), Some(g));
        }
        for bad in ["outputs:nope", "content:", "other:x", "nothing"] {
            assert_eq!(Garbage::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn scan_patterns_match_the_prefix_literally() {
        assert_eq!(redis_glob_escape("{a*b}:job:"), "{a\\*b}:job:");
        assert_eq!(redis_glob_escape("{p[1]}:"), "{p\\[1\\]}:");
    }
}
