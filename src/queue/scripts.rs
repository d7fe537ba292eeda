//! The Lua scripts, one per state transition (`lua/*.lua`, each opening with its KEYS/ARGV
//! contract), loaded once with the shared prelude prepended. `redis::Script` runs them by SHA and
//! re-sends the body when a restarted Redis answers NOSCRIPT.

use redis::Script;

const PRELUDE: &str = include_str!("lua/prelude.lua");

fn load(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}\n{body}"))
}

pub(super) struct Scripts {
    pub enqueue: Script,
    pub activate: Script,
    pub progress: Script,
    pub ack: Script,
    pub retry: Script,
    pub fail: Script,
    pub hand_back: Script,
    pub cancel: Script,
    pub resubmit: Script,
    pub promote: Script,
    pub recover: Script,
    pub forget_worker: Script,
    pub pin: Script,
    pub unpin: Script,
    pub delete: Script,
    pub purge: Script,
    pub expire: Script,
    pub garbage_claim: Script,
    pub adopt: Script,
    pub stats: Script,
    pub clean: Script,
    pub repeat: Script,
}

impl Scripts {
    pub fn load() -> Self {
        Self {
            enqueue: load(include_str!("lua/enqueue.lua")),
            activate: load(include_str!("lua/activate.lua")),
            progress: load(include_str!("lua/progress.lua")),
            ack: load(include_str!("lua/ack.lua")),
            retry: load(include_str!("lua/retry.lua")),
            fail: load(include_str!("lua/fail.lua")),
            hand_back: load(include_str!("lua/hand_back.lua")),
            cancel: load(include_str!("lua/cancel.lua")),
            resubmit: load(include_str!("lua/resubmit.lua")),
            promote: load(include_str!("lua/promote.lua")),
            recover: load(include_str!("lua/recover.lua")),
            forget_worker: load(include_str!("lua/forget_worker.lua")),
            pin: load(include_str!("lua/pin.lua")),
            unpin: load(include_str!("lua/unpin.lua")),
            delete: load(include_str!("lua/delete.lua")),
            purge: load(include_str!("lua/purge.lua")),
            expire: load(include_str!("lua/expire.lua")),
            garbage_claim: load(include_str!("lua/garbage_claim.lua")),
            adopt: load(include_str!("lua/adopt.lua")),
            stats: load(include_str!("lua/stats.lua")),
            clean: load(include_str!("lua/clean.lua")),
            repeat: load(include_str!("lua/repeat.lua")),
        }
    }
}
