//! The command hook: runs a program with the notification as JSON on stdin — the place for
//! automated remediation (a restart, a scale-out).

use std::io::ErrorKind;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command as Process;

use super::{Channel, Delivery, DeliveryError};
use crate::alert::model::{Event, Notification};

/// How many bytes of the program's stderr (its end) go into the error message.
const STDERR_TAIL: usize = 1024;

/// Runs a program once per notification.
#[derive(Debug)]
pub struct Command {
    name: String,
    program: PathBuf,
    args: Vec<String>,
    timeout: Duration,
}

impl Command {
    /// A command channel running `program args…`, killed after `timeout`.
    pub(crate) fn new(name: &str, program: PathBuf, args: Vec<String>, timeout: Duration) -> Self {
        Self {
            name: name.to_owned(),
            program,
            args,
            timeout,
        }
    }
}

/// The value of `HEADLIGHT_EVENT`.
fn event_name(event: Event) -> &'static str {
    match event {
        Event::Firing => "firing",
        Event::Renotify => "renotify",
        Event::Resolved => "resolved",
    }
}

impl Channel for Command {
    fn name(&self) -> &str {
        &self.name
    }

    /// Spawns the program with the notification's JSON on stdin and `HEADLIGHT_ALERT_KEY`,
    /// `HEADLIGHT_EVENT` and `HEADLIGHT_DELIVERY_ID` added to the collector's environment;
    /// stdout is discarded, the last 1 KiB of stderr kept. Exit 0 is delivered; a non-zero
    /// exit, a signal or the timeout (the program is then killed) is retryable; a program
    /// that is missing or not executable is permanent.
    fn deliver<'a>(&'a self, notification: &'a Notification) -> Delivery<'a> {
        Box::pin(async move {
            let input = serde_json::to_vec(notification).map_err(|e| {
                DeliveryError::Permanent(format!("cannot encode the notification: {e}"))
            })?;
            let mut child = Process::new(&self.program)
                .args(&self.args)
                .env("HEADLIGHT_ALERT_KEY", &notification.alert.key)
                .env("HEADLIGHT_EVENT", event_name(notification.event))
                .env("HEADLIGHT_DELIVERY_ID", &notification.delivery_id)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| spawn_error(&self.program, &e))?;

            let mut stdin = child.stdin.take();
            let mut stderr = child.stderr.take();
            // Read stderr while the program runs, keeping its tail: a chatty program must not
            // block on a full pipe, and memory stays bounded.
            let stderr_task = tokio::spawn(async move {
                let mut tail = Vec::new();
                let mut buf = [0u8; 4096];
                if let Some(stderr) = stderr.as_mut() {
                    while let Ok(n) = stderr.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        tail.extend_from_slice(&buf[..n]);
                        if tail.len() > STDERR_TAIL {
                            tail.drain(..tail.len() - STDERR_TAIL);
                        }
                    }
                }
                tail
            });

            let run = async {
                if let Some(mut stdin) = stdin.take() {
                    // A program that exits without reading its input is not an error.
                    let _ = stdin.write_all(&input).await;
                    drop(stdin);
                }
                child.wait().await
            };
            let outcome = tokio::time::timeout(self.timeout, run).await;
            let status = match outcome {
                Ok(Ok(status)) => status,
                Ok(Err(e)) => {
                    stderr_task.abort();
                    return Err(DeliveryError::Retryable(format!(
                        "waiting for the program: {e}"
                    )));
                }
                Err(_) => {
                    // Kill the program; processes it started itself are not ours to kill and
                    // may keep stderr open, so the tail is not waited for.
                    let _ = child.kill().await;
                    stderr_task.abort();
                    return Err(DeliveryError::Retryable(format!(
                        "{} timed out after {} s and was killed",
                        self.program.display(),
                        self.timeout.as_secs_f64()
                    )));
                }
            };
            if status.success() {
                stderr_task.abort();
                return Ok(());
            }
            // The program has exited; its stderr closes with it unless a child of its own
            // holds it, so wait only briefly for the tail.
            let tail = match tokio::time::timeout(Duration::from_millis(200), stderr_task).await {
                Ok(Ok(tail)) => String::from_utf8_lossy(&tail).trim().to_owned(),
                _ => String::new(),
            };
            let how = match status.code() {
                Some(code) => format!("exited with status {code}"),
                None => "was killed by a signal".to_owned(),
            };
            let message = if tail.is_empty() {
                format!("{} {how}", self.program.display())
            } else {
                format!("{} {how}: {tail}", self.program.display())
            };
            Err(DeliveryError::Retryable(message))
        })
    }
}

/// A program that does not exist or may not be run is permanent; other spawn failures (too
/// many processes, out of memory) may pass.
fn spawn_error(program: &std::path::Path, error: &std::io::Error) -> DeliveryError {
    let message = format!("cannot run {}: {error}", program.display());
    match error.kind() {
        ErrorKind::NotFound | ErrorKind::PermissionDenied => DeliveryError::Permanent(message),
        _ => DeliveryError::Retryable(message),
    }
}
