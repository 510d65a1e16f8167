//! Starts the real `floe-executor` binary with start-up mistakes and checks the
//! error names them. (Cargo builds a package's binaries for its integration
//! tests, so this file also makes `cargo test --workspace` build the executor
//! the client's cluster tests start.)
#![allow(clippy::unwrap_used, missing_docs)]

use std::net::TcpListener;
use std::process::Command;

const EXECUTOR: &str = env!("CARGO_BIN_EXE_floe-executor");

#[test]
fn a_taken_address_or_unusable_work_dir_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let output = Command::new(EXECUTOR)
        .args(["--scheduler", "127.0.0.1:1", "--bind", &address])
        .arg("--work-dir")
        .arg(dir.path().join("work"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("cannot bind {address}")),
        "{stderr}"
    );

    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let output = Command::new(EXECUTOR)
        .args(["--scheduler", "127.0.0.1:1", "--bind", "127.0.0.1:0"])
        .arg("--work-dir")
        .arg(&file)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("a-file"), "{stderr}");
}
