//! The `headlight` binary as a user runs it: `--help`, a refused config, and `serve` from start
//! to a graceful stop on SIGTERM.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_headlight");

#[test]
fn the_client_commands_document_their_flags_and_refuse_bad_ones() {
    for (command, flags) in [
        (
            "deploy",
            &[
                "--service",
                "--version",
                "--env",
                "--commit",
                "--time",
                "--url",
            ][..],
        ),
        (
            "compare",
            &[
                "--deploy",
                "--baseline-version",
                "--canary-version",
                "--before",
                "--after",
                "--offset",
                "--json",
            ][..],
        ),
        ("gate", &["--deploy", "--timeout", "--url"][..]),
    ] {
        let out = Command::new(BIN)
            .args([command, "--help"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{command} --help");
        let help = String::from_utf8_lossy(&out.stdout);
        for flag in flags {
            assert!(help.contains(flag), "{flag} in {command} --help: {help}");
        }
    }
    // Usage errors exit 2 (clap), never 3 or 4, which a gate would read as a verdict.
    for args in [
        &["compare"][..],
        &["compare", "--deploy", "x", "--service", "y"],
        &["deploy", "--service", "x"],
        &["gate"],
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
    }
    // Bad values are errors (exit 1) naming the flag, before any request is made.
    let out = Command::new(BIN)
        .args([
            "gate",
            "--deploy",
            "x",
            "--timeout",
            "soon",
            "--url",
            "http://127.0.0.1:9",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--timeout \"soon\""),
        "{out:?}"
    );
    let out = Command::new(BIN)
        .args([
            "deploy",
            "--service",
            "x",
            "--version",
            "1",
            "--url",
            "ftp://example.invalid",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not an http:// or https:// URL"),
        "{out:?}"
    );
    // A collector that is down is an error, not a verdict.
    let out = Command::new(BIN)
        .args(["compare", "--deploy", "x", "--url", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot reach the collector"),
        "{out:?}"
    );
}

#[test]
fn help_lists_serve_and_its_flags() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("serve"));
    let out = Command::new(BIN)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--config",
        "--data-dir",
        "--otlp-grpc",
        "--otlp-http",
        "--http",
    ] {
        assert!(help.contains(flag), "{flag} in {help}");
    }
}

#[test]
fn serve_refuses_a_config_with_an_unknown_key_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("headlight.toml");
    std::fs::write(&path, "[aggregation]\nwindow_seconds = 10\n").unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("window_seconds"), "{stderr}");
}

#[test]
fn serve_starts_answers_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--otlp-grpc",
            "127.0.0.1:0",
            "--otlp-http",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    let http = loop {
        assert!(Instant::now() < deadline, "no 'listening' line within 30 s");
        let line = lines.next().expect("stderr open").unwrap();
        if let Some(rest) = line.split(" http=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    let mut stream = std::net::TcpStream::connect(&http).unwrap();
    use std::io::{Read as _, Write as _};
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "serve did not stop within 30 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit:?}");
    assert!(dir.path().join("headlight.db").exists());
}
