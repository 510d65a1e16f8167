//! The client side of Floe: connecting to a cluster over Arrow Flight SQL, or starting an
//! embedded one in this process. The `floe` shell is built on it, and so is the TPC-DS
//! harness, so that benchmarks run queries exactly as a user's shell does.

pub mod remote;
