// glibc's allocator spends a third of replay and ingest time consolidating
// arenas when one thread frees what another allocated (reader → folder,
// handler → writer); mimalloc does not.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    if let Err(e) = fenghuo::cli::main() {
        eprintln!("fenghuo: {e:#}");
        std::process::exit(1);
    }
}
