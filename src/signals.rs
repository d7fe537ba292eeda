//! SIGINT (Ctrl-C), SIGTERM and SIGHUP for the `pixdrop` binary, taken by one thread for the whole
//! life of the process. Of SIGINT and SIGTERM, the first starts a graceful stop, a second ends the
//! process at once, whatever else is stopping it and however long stopping takes (handing jobs
//! back, stopping the embedded Redis), even after the async runtime is gone. SIGHUP asks for the
//! settings that can change while running (the API tokens) to be read again.
//!
//! The signals are blocked in every thread and waited for with `sigwait` by that one thread,
//! so no handler runs at an arbitrary point. A child process inherits the mask, so the one pixdrop
//! starts, the embedded `redis-server`, clears it before it runs (`redis_server`).

use tokio::sync::watch;

/// The process's signals. Create it first thing, before any other thread exists, so that every
/// thread inherits the blocked mask.
pub struct Signals {
    first: watch::Receiver<bool>,
    /// Counts the SIGHUPs received.
    hangups: watch::Receiver<u64>,
}

impl Signals {
    pub fn install() -> std::io::Result<Self> {
        let set = stop_set();
        // SAFETY: a valid, initialised signal set; only this thread's mask changes.
        let blocked = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        if blocked != 0 {
            return Err(std::io::Error::from_raw_os_error(blocked));
        }
        let (first_tx, first) = watch::channel(false);
        let (hangups_tx, hangups) = watch::channel(0);
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || wait_for_signals(set, first_tx, hangups_tx))?;
        Ok(Self { first, hangups })
    }

    /// Changes at each SIGHUP.
    pub fn hangups(&self) -> watch::Receiver<u64> {
        self.hangups.clone()
    }

    /// Resolves once the first stop signal has come.
    pub fn first(&self) -> impl Future<Output = ()> + use<> {
        let mut first = self.first.clone();
        async move {
            let _ = first.wait_for(|received| *received).await;
        }
    }
}

fn stop_set() -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set before sigaddset adds to it.
    unsafe {
        let mut set = std::mem::zeroed::<libc::sigset_t>();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGHUP);
        set
    }
}

fn wait_for_signals(set: libc::sigset_t, first: watch::Sender<bool>, hangups: watch::Sender<u64>) {
    let mut received = 0;
    loop {
        let mut signal = 0;
        // SAFETY: `set` is initialised and blocked in every thread; sigwait writes `signal`.
        if unsafe { libc::sigwait(&set, &mut signal) } != 0 {
            continue;
        }
        if signal == libc::SIGHUP {
            hangups.send_modify(|count| *count += 1);
            continue;
        }
        received += 1;
        if received == 1 {
            tracing::info!(
                signal,
                "stop signal: stopping gracefully (send another to stop at once)"
            );
            first.send_replace(true);
        } else {
            eprintln!(
                "pixdrop: second stop signal: exiting now; jobs still running go back to the \
                 queue once their heartbeat lapses"
            );
            std::process::exit(128 + signal);
        }
    }
}
