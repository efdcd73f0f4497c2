//! SIGINT / SIGTERM as a request to stop: long-running services (`masq serve`, `masq dealer`)
//! poll [`stop_requested`] between connections and let the work in flight finish.

use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Replaces the default disposition of SIGINT and SIGTERM with setting the stop flag.
pub fn install() {
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: `on_signal` only stores to an atomic, which is async-signal-safe; `signal`
        // replaces the default disposition of a catchable signal and touches no other state.
        unsafe {
            libc::signal(sig, handler);
        }
    }
}

/// Whether a signal asked the process to stop.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}
