#!/usr/bin/env python3
"""Fails if a cargo command the README or a developer runs would compile a dependency again.

Cargo resolves a dependency's features from what a command builds, so `cargo build -p floe-client`
can give tokio fewer features than `cargo test --workspace --all-targets`, and then recompiles tokio
and everything above it, DataFusion included (25 minutes on two cores). `workspace-hack/` pins the
union; this check proves it is enough. It runs after `.ci/run`'s test build, asks each command below
for its build with `--message-format=json`, and fails at the first artifact cargo reports as not
fresh (stopping cargo there, so a failure costs one small compile). Features do not depend on the
profile, so the release build and the benches agree with each other in the same way.
"""

import json
import os
import signal
import subprocess
import sys

PACKAGES = [
    "floe-common",
    "floe-proto",
    "floe-shuffle",
    "floe-sql",
    "floe-iceberg",
    "floe-core",
    "floe-scheduler", "floe-executor", "floe-client", "floe-tpcds"]

COMMANDS = (
    [["build"], ["build", "--workspace"], ["test", "--workspace", "--no-run"]]
    # The README's first command (`cargo run -p floe-client --bin floe`) builds exactly this.
    + [["build", "-p", "floe-client", "--bin", "floe"]]
    + [["build", "-p", package] for package in PACKAGES]
    + [["test", "-p", package, "--no-run"] for package in PACKAGES]
)


def first_recompiled(args):
    """The first artifact `cargo <args>` would compile again, or None if all are fresh."""
    # Its own process group, so that stopping it early stops the rustc it started as well.
    cargo = subprocess.Popen(
        ["cargo", *args, "--locked", "--message-format=json-render-diagnostics"],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    for line in cargo.stdout:
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            continue
        if message.get("reason") == "compiler-artifact" and not message.get("fresh", True):
            os.killpg(cargo.pid, signal.SIGTERM)
            cargo.wait()
            return message
    cargo.wait()
    if cargo.returncode != 0:
        sys.exit(f"feature sets: `cargo {' '.join(args)}` failed (exit {cargo.returncode})")
    return None


def main():
    for args in COMMANDS:
        artifact = first_recompiled(args)
        if artifact is None:
            continue
        # A package id ends in `#name@version` (or `#version` for a path whose last part is the name).
        package = artifact["package_id"].rsplit("#", 1)[-1].replace("@", " ")
        features = ",".join(artifact.get("features", [])) or "(none)"
        sys.exit(
            f"feature sets differ: `cargo {' '.join(args)}` compiles {package} again "
            f"(features: {features}) after .ci/run's test build compiled it.\n"
            "Pin the features that build resolves for it in workspace-hack/Cargo.toml; "
            "`cargo tree -e features -i <crate>` shows who asks for which."
        )
    print(f"feature sets: {len(COMMANDS)} cargo commands reuse the test build's dependencies")


if __name__ == "__main__":
    main()
