//! Waiting for and ending the soak's child processes.

use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

/// Waits at most `timeout` for `child` to exit; kills it and returns `None` when it did not.
pub fn wait_or_kill(child: &mut Child, timeout: Duration) -> std::io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() > deadline {
            kill(child);
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Kills `child` with SIGKILL and reaps it, if it still runs (for `Drop`).
pub fn kill(child: &mut Child) {
    if matches!(child.try_wait(), Ok(None)) {
        let _ = child.kill();
        let _ = child.wait();
    }
}
