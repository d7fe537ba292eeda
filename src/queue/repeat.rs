//! Repeatable tasks: chores that run every so often on behalf of the whole queue (the expiry of
//! finished jobs, the orphan sweep), each occurrence taken by exactly one instance however many
//! ask (see `lua/repeat.lua`). The schedule and what each task did live in Redis, so they survive
//! restarts and every process reports the same.
//!
//! A task's run is the taker's to finish: one that dies mid-way leaves its work to the next
//! occurrence, so tasks are written to pick up whatever is left.

use std::collections::HashMap;
use std::time::Duration;

use super::client::{Queue, QueueError, QueueResult};

/// One repeatable task as the schedule has it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RepeatingTask {
    pub name: String,
    /// Occurrences run so far, by every instance together.
    pub runs: u64,
    /// When the last occurrence was taken (ms since the epoch), and by which instance.
    pub last_run: Option<u64>,
    pub last_runner: Option<String>,
    /// When the next occurrence is due (ms since the epoch).
    pub next_due: u64,
}

impl Queue {
    /// Takes the occurrence of the task `name` (repeating every `every`) that is due now: `true`
    /// for exactly one caller across all instances per occurrence, who then runs it. `runner`
    /// names the caller in the task's record.
    pub async fn take_due(&self, name: &str, every: Duration, runner: &str) -> QueueResult<bool> {
        let keys = self.keys();
        let mut conn = self.conn().await?;
        let answer: Vec<redis::Value> = self
            .inner
            .scripts
            .repeat
            .key(keys.repeat_schedule())
            .key(keys.repeat_runs())
            .arg(name)
            .arg(self.now())
            .arg(every.as_millis().max(1) as u64)
            .arg(runner)
            .invoke_async(&mut conn)
            .await?;
        match answer.first() {
            Some(redis::Value::Int(taken)) => Ok(*taken == 1),
            _ => Err(QueueError::Protocol(format!("repeat answered {answer:?}"))),
        }
    }

    /// Every repeatable task that has run, by name.
    pub async fn repeating(&self) -> QueueResult<Vec<RepeatingTask>> {
        let keys = self.keys();
        let mut conn = self.conn().await?;
        let (schedule, records): (Vec<(String, f64)>, HashMap<String, String>) = redis::pipe()
            .zrange_withscores(keys.repeat_schedule(), 0, -1)
            .hgetall(keys.repeat_runs())
            .query_async(&mut *conn)
            .await?;
        let field = |name: &str, what: &str| records.get(&format!("{name}:{what}")).cloned();
        let mut tasks: Vec<RepeatingTask> = schedule
            .into_iter()
            .map(|(name, due)| RepeatingTask {
                runs: field(&name, "runs")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
                last_run: field(&name, "last_run").and_then(|v| v.parse().ok()),
                last_runner: field(&name, "last_runner"),
                next_due: due as u64,
                name,
            })
            .collect();
        tasks.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(tasks)
    }
}
