//! Compiles `proto/floe.proto` (the scheduler/executor control plane) with `protox`, so a build
//! needs no `protoc` on the machine.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/floe.proto");
    let descriptors = protox::compile(["proto/floe.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    Ok(())
}
