//! The start-up check of the Redis server: refuse versions without BLMOVE (< 6.2), and warn loudly
//! about settings that can lose accepted jobs — an eviction policy other than `noeviction`, or no
//! persistence at all.

use std::collections::HashMap;

use super::client::{Queue, QueueError, QueueResult};

/// What the check found. `warnings` are meant for the log, loudly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerReport {
    /// "redis" or "valkey".
    pub server: String,
    pub version: String,
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerCheckError {
    #[error("{server} {version} is too old: pixdrop needs Redis 6.2 or newer (for BLMOVE)")]
    TooOld { server: String, version: String },
    #[error(transparent)]
    Queue(#[from] QueueError),
}

impl Queue {
    pub async fn check_server(&self) -> Result<ServerReport, ServerCheckError> {
        let mut conn = self.conn().await?;
        let info: String = redis::cmd("INFO")
            .arg("server")
            .arg("persistence")
            .query_async(&mut conn)
            .await
            .map_err(QueueError::from)?;
        let fields = parse_info(&info);
        let (server, version) = match fields.get("valkey_version") {
            Some(v) => ("valkey", v.clone()),
            None => (
                "redis",
                fields.get("redis_version").cloned().unwrap_or_default(),
            ),
        };
        // Valkey forked from Redis 7.2 and keeps reporting a compatible redis_version.
        let compatible = fields.get("redis_version").map_or("0", String::as_str);
        if !at_least(compatible, (6, 2)) {
            return Err(ServerCheckError::TooOld {
                server: server.into(),
                version,
            });
        }
        let mut warnings = Vec::new();
        // Managed services often forbid CONFIG; say so rather than fail.
        match config_get(&mut conn, "maxmemory-policy").await {
            Ok(Some(policy)) if policy != "noeviction" => warnings.push(format!(
                "maxmemory-policy is {policy:?}: under memory pressure Redis may evict queued jobs; set it to \"noeviction\""
            )),
            Ok(_) => {}
            Err(e) => warnings.push(format!(
                "could not read maxmemory-policy ({e}); make sure it is \"noeviction\""
            )),
        }
        let aof = fields.get("aof_enabled").is_some_and(|v| v == "1");
        let rdb = match config_get(&mut conn, "save").await {
            Ok(Some(save)) => !save.trim().is_empty(),
            Ok(None) | Err(_) => true,
        };
        if !aof && !rdb {
            warnings.push(
                "persistence is off (no AOF, no RDB snapshots): a Redis restart loses every queued job; enable appendonly".into(),
            );
        } else if !aof {
            warnings.push(
                "appendonly is off: a Redis crash loses jobs accepted since the last snapshot; enable appendonly".into(),
            );
        }
        Ok(ServerReport {
            server: server.into(),
            version,
            warnings,
        })
    }
}

async fn config_get(
    conn: &mut deadpool_redis::Connection,
    name: &str,
) -> QueueResult<Option<String>> {
    let pairs: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg(name)
        .query_async(conn)
        .await?;
    Ok(pairs.into_iter().nth(1))
}

fn parse_info(info: &str) -> HashMap<String, String> {
    info.lines()
        .filter_map(|line| line.trim().split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// True when a dotted version is at least `major.minor`.
fn at_least(version: &str, (major, minor): (u32, u32)) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let found = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    found >= (major, minor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_below_6_2_are_rejected_and_later_ones_accepted() {
        // BLMOVE arrived in 6.2: the check must draw the line exactly there.
        assert!(!at_least("6.0.16", (6, 2)));
        assert!(!at_least("5.0.7", (6, 2)));
        assert!(at_least("6.2.0", (6, 2)));
        assert!(at_least("7.0.15", (6, 2)));
        assert!(at_least("10.0", (6, 2)));
        assert!(!at_least("", (6, 2)));
    }

    #[test]
    fn info_lines_are_parsed_into_fields() {
        // INFO separates sections with comments and uses CRLF.
        let info = "# Server\r\nredis_version:7.0.15\r\n\r\n# Persistence\r\naof_enabled:1\r\n";
        let fields = parse_info(info);
        assert_eq!(fields["redis_version"], "7.0.15");
        assert_eq!(fields["aof_enabled"], "1");
    }
}
