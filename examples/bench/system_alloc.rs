//! `fenghuo` with the system allocator instead of mimalloc, for heap
//! profilers that interpose malloc (heaptrack): the server's own binary
//! (`src/main.rs`) allocates through mimalloc, which they cannot see.
//! Same command line as `fenghuo`:
//!
//! ```sh
//! cargo build --release --example system_alloc
//! heaptrack target/release/examples/system_alloc serve --config … --data-dir …
//! ```
//!
//! Not for production: glibc's allocator is slower under this workload
//! (see `src/main.rs`).

fn main() {
    if let Err(e) = fenghuo::cli::main() {
        eprintln!("fenghuo: {e:#}");
        std::process::exit(1);
    }
}
