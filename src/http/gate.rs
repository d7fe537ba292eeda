//! How many of something run at once, in all and from one client address: uploads in progress
//! (`uploads.max_concurrent`, `max_concurrent_per_client`) and open websockets
//! (`websocket.max_sockets`, `max_sockets_per_client`). Each holds a socket, and an upload a file
//! too, for as long as the client likes, so a few hundred slow clients could otherwise exhaust
//! the process's descriptors and break decoding and Redis with them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why a place cannot be had now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    /// The server holds as many as it takes.
    Server,
    /// This client holds as many as one client may.
    Client,
}

/// Shared by every holder of the process.
#[derive(Debug, Clone)]
pub struct Gate {
    all: Arc<Semaphore>,
    per_client: Arc<Mutex<HashMap<IpAddr, usize>>>,
    per_client_max: usize,
}

/// A place; dropping it frees the place.
#[derive(Debug)]
pub struct Pass {
    _all: OwnedSemaphorePermit,
    client: Option<IpAddr>,
    per_client: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Gate {
    pub fn new(max: usize, per_client_max: usize) -> Self {
        Self {
            all: Arc::new(Semaphore::new(max)),
            per_client: Arc::default(),
            per_client_max,
        }
    }

    /// A place for `client` (unknown: counted in all only), or why not.
    pub fn enter(&self, client: Option<IpAddr>) -> Result<Pass, Busy> {
        let all = self
            .all
            .clone()
            .try_acquire_owned()
            .map_err(|_| Busy::Server)?;
        if let Some(ip) = client {
            // No await while the lock is held: a std mutex is the right tool.
            let mut counts = self
                .per_client
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let count = counts.entry(ip).or_insert(0);
            if *count >= self.per_client_max {
                return Err(Busy::Client);
            }
            *count += 1;
        }
        Ok(Pass {
            _all: all,
            client,
            per_client: self.per_client.clone(),
        })
    }
}

impl Drop for Pass {
    fn drop(&mut self) {
        let Some(ip) = self.client else { return };
        let mut counts = self
            .per_client
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_client_is_held_to_its_share_and_the_server_to_its_total() {
        // Proves both caps, that leaving frees the place, and that no entry outlives its uploads.
        let gate = Gate::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = gate.enter(Some(a)).unwrap();
        let _second = gate.enter(Some(a)).unwrap();
        assert_eq!(gate.enter(Some(a)).unwrap_err(), Busy::Client);
        let _third = gate.enter(Some(b)).unwrap();
        assert_eq!(gate.enter(Some(b)).unwrap_err(), Busy::Server);
        drop(first);
        let _again = gate.enter(Some(a)).unwrap();
        drop((_second, _third, _again));
        assert!(gate.per_client.lock().unwrap().is_empty());
    }
}
