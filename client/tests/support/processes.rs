//! Test support shared by the tests that need a real cluster: a `floe-scheduler` and two
//! `floe-executor` processes on loopback, started from the binaries of this workspace with
//! port 0 and their bound address read back from their first line of output.
//!
//! Also the Python that runs the independent clients (PyIceberg, the ADBC Flight SQL driver).
//!
//! Included with `#[path]` by the tests in `client/tests/` and `benchmarks/tpcds/tests/`.
#![allow(clippy::unwrap_used, dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use tempfile::TempDir;

/// A binary of this workspace, next to the test executable's `deps` directory.
pub fn workspace_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} not built; run `cargo test --workspace` (or `cargo build --workspace`)",
        path.display()
    );
    path
}

/// A child process killed when the test ends.
pub struct Process {
    pub child: Child,
    pub address: String,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `binary` and reads the address from its `listening on ADDR` line.
pub fn start(binary: &str, args: &[&str], dir: &Path) -> Process {
    let mut command = Command::new(workspace_binary(binary));
    command
        .args(args)
        .current_dir(dir)
        .env_remove("FLOE_CONFIG")
        .env(
            "RUST_LOG",
            std::env::var("FLOE_TEST_LOG").unwrap_or_else(|_| "warn".into()),
        );
    start_listening(command)
}

/// Starts the server `client/tests/interop/{script}` with `envs`; reads its address as
/// [`start`] does. Its further output lines are printed to the test's output.
pub fn start_interop_server(script: &str, args: &[&str], envs: &[(&str, &str)]) -> Process {
    let mut command = Command::new(test_python());
    command
        .arg(interop_script(script))
        .args(args)
        .envs(envs.iter().copied());
    start_listening(command)
}

fn start_listening(mut command: Command) -> Process {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines.next().unwrap().unwrap();
    let address = line
        .rsplit("listening on ")
        .next()
        .unwrap()
        .trim()
        .to_string();
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            println!("{line}");
        }
    });
    Process { child, address }
}

pub struct Cluster {
    pub dir: TempDir,
    pub scheduler: Process,
    pub executors: Vec<Process>,
}

/// A scheduler and two executors in a fresh directory, on the default catalog (SQLite, in
/// `floe-warehouse/` of [`Cluster::dir`]).
pub fn start_cluster() -> Cluster {
    start_cluster_with_config(None)
}

/// [`start_cluster`] with the scheduler reading its catalogs from `floe.toml` text `config`.
pub fn start_cluster_with_config(config: Option<&str>) -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["--bind", "127.0.0.1:0"];
    let config_path = dir.path().join("floe.toml");
    if let Some(config) = config {
        std::fs::write(&config_path, config).unwrap();
        args.extend(["--config", config_path.to_str().unwrap()]);
    }
    let scheduler = start("floe-scheduler", &args, dir.path());
    let executors = (0..2)
        .map(|i| {
            let work = dir.path().join(format!("work-{i}"));
            start(
                "floe-executor",
                &[
                    "--scheduler",
                    &scheduler.address,
                    "--bind",
                    "127.0.0.1:0",
                    "--work-dir",
                    work.to_str().unwrap(),
                    "--slots",
                    "2",
                ],
                dir.path(),
            )
        })
        .collect();
    Cluster {
        dir,
        scheduler,
        executors,
    }
}

/// The Python with PyIceberg and the ADBC Flight SQL driver: `$FLOE_TEST_PYTHON` (set by
/// `.ci/run`), else the venv `.ci/run` makes.
pub fn test_python() -> PathBuf {
    if let Some(path) = std::env::var_os("FLOE_TEST_PYTHON") {
        return PathBuf::from(path);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|dir| dir.join(".ci/venv/bin/python"))
        .find(|python| python.exists());
    venv.expect(
        "PyIceberg and adbc-driver-flightsql are needed: run `bash .ci/run`, or set \
         FLOE_TEST_PYTHON to a python that has them",
    )
}

/// Runs `client/tests/interop/{script}` with [`test_python`]; its standard output, after
/// asserting that it succeeded.
pub fn run_interop_script(script: &str, args: &[&str]) -> String {
    run_interop_script_with_env(script, args, &[])
}

/// [`run_interop_script`] with `envs` set for the script.
pub fn run_interop_script_with_env(script: &str, args: &[&str], envs: &[(&str, &str)]) -> String {
    let output = Command::new(test_python())
        .arg(interop_script(script))
        .args(args)
        .envs(envs.iter().copied())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{script} {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The path of `client/tests/interop/{script}`.
fn interop_script(script: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|dir| dir.join("client/tests/interop").join(script))
        .find(|path| path.exists())
        .unwrap()
}
