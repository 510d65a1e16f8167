//! Starts the real `floe-scheduler` binary: it reports the address it bound,
//! and start-up mistakes name what is wrong. (Cargo builds a package's binaries
//! for its integration tests, so this file also makes `cargo test --workspace`
//! build the scheduler the client's cluster tests start.)
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

const SCHEDULER: &str = env!("CARGO_BIN_EXE_floe-scheduler");

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn binds_port_zero_and_names_a_taken_address_or_missing_config() {
    let mut first = Killed(
        Command::new(SCHEDULER)
            .args(["--bind", "127.0.0.1:0"])
            .env_remove("FLOE_CONFIG")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(first.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let address = line
        .trim()
        .rsplit("listening on ")
        .next()
        .unwrap()
        .to_string();
    assert!(
        address.starts_with("127.0.0.1:") && !address.ends_with(":0"),
        "{line}"
    );

    let taken = Command::new(SCHEDULER)
        .args(["--bind", &address])
        .env_remove("FLOE_CONFIG")
        .output()
        .unwrap();
    assert!(!taken.status.success());
    let stderr = String::from_utf8_lossy(&taken.stderr);
    assert!(stderr.contains(&address), "{stderr}");

    let missing = Command::new(SCHEDULER)
        .args(["--bind", "127.0.0.1:0", "--config", "/no/such/floe.toml"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("/no/such/floe.toml"), "{stderr}");
}
