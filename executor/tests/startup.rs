//! Starts the real `floe-executor` binary with start-up mistakes and checks the
//! error names them, and checks what start-up removes from a shared work dir. (Cargo builds a package's binaries for its integration
//! tests, so this file also makes `cargo test --workspace` build the executor
//! the client's cluster tests start.)
#![allow(clippy::unwrap_used, missing_docs)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use floe_executor::work_dir::{LOCK_FILE, MARKER_FILE};

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

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An executor on `work`. Its scheduler is not there, so it keeps trying to register (for
/// `REGISTER_TIMEOUT`) after setting up its work directory, which is all this test needs.
fn start_executor(work: &Path) -> Killed {
    Killed(
        Command::new(EXECUTOR)
            .args(["--scheduler", "127.0.0.1:1", "--bind", "127.0.0.1:0"])
            .arg("--work-dir")
            .arg(work)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// Waits for a marked executor directory in `work` other than `known` ones (the marker is
/// written last, so by then the executor has cleaned up at start-up).
fn new_executor_dir(work: &Path, known: &[&PathBuf]) -> PathBuf {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found = std::fs::read_dir(work)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .find(|dir| dir.join(MARKER_FILE).is_file() && !known.contains(&dir));
        if let Some(dir) = found {
            return dir;
        }
        assert!(
            Instant::now() < deadline,
            "no executor dir in {}",
            work.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn start_up_removes_only_the_directories_of_stopped_executors() {
    let root = tempfile::tempdir().unwrap();
    let work = root.path();
    // Not Floe's: a user's directory and file in the same work dir.
    std::fs::create_dir(work.join("photos")).unwrap();
    std::fs::write(work.join("photos/cat.jpg"), b"meow").unwrap();
    std::fs::write(work.join("notes.txt"), b"keep me").unwrap();
    // A crashed executor's directory: marked, its lock free.
    let crashed = work.join("crashed");
    std::fs::create_dir_all(crashed.join("job-1/1/0")).unwrap();
    std::fs::write(crashed.join("job-1/1/0/0.arrow"), b"old rows").unwrap();
    std::fs::write(crashed.join(LOCK_FILE), b"").unwrap();
    std::fs::write(crashed.join(MARKER_FILE), b"").unwrap();

    let first = start_executor(work);
    let first_dir = new_executor_dir(work, &[&crashed]);
    assert!(!crashed.exists(), "a stopped executor's files were kept");
    let second = start_executor(work);
    let second_dir = new_executor_dir(work, &[&crashed, &first_dir]);
    // The first executor is alive (its lock is held): its directory stays.
    assert!(first_dir.join(MARKER_FILE).is_file());

    // The first one crashes; the next executor on this work dir removes its directory, and
    // only that.
    drop(first);
    let _third = start_executor(work);
    new_executor_dir(work, &[&crashed, &first_dir, &second_dir]);
    assert!(
        !first_dir.exists(),
        "a crashed executor's directory was kept"
    );
    assert!(
        second_dir.join(MARKER_FILE).is_file(),
        "a live executor's directory was removed"
    );
    assert_eq!(std::fs::read(work.join("photos/cat.jpg")).unwrap(), b"meow");
    assert_eq!(std::fs::read(work.join("notes.txt")).unwrap(), b"keep me");
    drop(second);
}
