//! A subject's jobs, newest first, a page at a time: what `GET /jobs` shows. Pages follow an
//! opaque cursor (the last id a page looked at), so a job uploaded meanwhile never shifts a page
//! or shows twice.

use std::collections::HashMap;

use super::client::{Queue, QueueResult};
use super::job::{JobId, JobRecord, JobState};
use super::subject::Subject;

/// Index entries one `list` call reads at most, however few of them pass its filter: a request
/// for a rare state costs Redis a bounded amount, and the caller follows the cursor for more.
const MAX_SCANNED: usize = 1000;

/// One page of a subject's jobs.
#[derive(Debug, Clone, PartialEq)]
pub struct JobPage {
    /// Newest first; at most the limit asked for (fewer when the scan stopped at its bound).
    pub jobs: Vec<JobRecord>,
    /// Where the next page starts; `None` when every job was seen.
    pub next: Option<JobId>,
}

impl Queue {
    /// Up to `limit` of `subject`'s jobs older than `before` (all, without it), newest first, in
    /// one of `states` (any, when empty). Ids whose record expired leave the index on the way.
    pub async fn list(
        &self,
        subject: &Subject,
        before: Option<JobId>,
        limit: usize,
        states: &[JobState],
    ) -> QueueResult<JobPage> {
        let index = self.inner.keys.uploads_of(subject);
        let batch = limit.clamp(1, 100);
        let mut jobs = Vec::with_capacity(limit);
        let mut cursor = before;
        let mut scanned = 0;
        let mut conn = self.conn().await?;
        while jobs.len() < limit && scanned < MAX_SCANNED {
            let max = cursor.map_or_else(|| "+".to_owned(), |id| format!("({id}"));
            let ids: Vec<String> = redis::cmd("ZRANGE")
                .arg(&index)
                .arg(max)
                .arg("-")
                .arg("BYLEX")
                .arg("REV")
                .arg("LIMIT")
                .arg(0)
                .arg(batch)
                .query_async(&mut *conn)
                .await?;
            let ids: Vec<JobId> = ids.iter().filter_map(|id| id.parse().ok()).collect();
            if ids.is_empty() {
                return Ok(JobPage { jobs, next: None });
            }
            let mut read = redis::pipe();
            for id in &ids {
                read.hgetall(self.inner.keys.job(id));
            }
            let hashes: Vec<HashMap<String, String>> = read.query_async(&mut *conn).await?;
            let mut expired = Vec::new();
            let mut seen = 0;
            for (id, hash) in ids.iter().zip(hashes) {
                seen += 1;
                scanned += 1;
                cursor = Some(*id);
                match JobRecord::from_hash(*id, hash) {
                    None => expired.push(id.to_string()),
                    Some(record) if states.is_empty() || states.contains(&record.state) => {
                        jobs.push(record);
                        if jobs.len() == limit {
                            break;
                        }
                    }
                    Some(_) => {}
                }
            }
            if !expired.is_empty() {
                let () = redis::cmd("ZREM")
                    .arg(&index)
                    .arg(expired)
                    .query_async(&mut *conn)
                    .await?;
            }
            // A short batch read to its end was the index's last: no page follows.
            if ids.len() < batch && seen == ids.len() {
                return Ok(JobPage { jobs, next: None });
            }
        }
        Ok(JobPage { jobs, next: cursor })
    }
}
