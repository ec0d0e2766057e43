// glibc's allocator spends a third of replay and ingest time consolidating
// arenas when one thread frees what another allocated (reader → folder,
// handler → writer); mimalloc does not.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

// mimalloc's own options and calls (the `mimalloc` crate exposes none of
// them without a feature that pulls in one more crate; the symbols are in
// the library it links). The option numbers are those of `mi_option_e` in
// mimalloc.h.
unsafe extern "C" {
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
    fn mi_option_get(option: std::ffi::c_int) -> std::ffi::c_long;
    fn mi_collect(force: bool);
}
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

// Transparent huge pages off for the whole process (`prctl(2)`,
// `PR_SET_THP_DISABLE`).
#[cfg(target_os = "linux")]
unsafe extern "C" {
    fn prctl(option: std::ffi::c_int, ...) -> std::ffi::c_int;
}
#[cfg(target_os = "linux")]
const PR_SET_THP_DISABLE: std::ffi::c_int = 41;

// SQLite allocates with the C library's malloc, not the global allocator.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
unsafe extern "C" {
    fn malloc_trim(pad: usize) -> std::ffi::c_int;
}

/// Memory freed after a burst (an ingest burst, a snapshot's text) goes
/// back to the OS at once, not after mimalloc's default delay of 1 s:
/// mimalloc runs a delayed purge only when the thread that freed the
/// memory allocates again, so memory freed by a thread that then idles
/// (a tokio worker after a burst, the snapshot thread) stayed resident.
/// Measured with 100,000 alerts in 20,000 groups: RSS 20–30 MiB lower once
/// settled (README, Memory). For `serve` only, and unless
/// `MIMALLOC_PURGE_DELAY` says otherwise.
fn purge_freed_memory_at_once() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets a process-wide option, read by mimalloc whenever it
        // schedules a purge; any value is valid.
        unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
        debug_assert_eq!(unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) }, 0);
    }
}

/// No transparent huge pages: mimalloc asks for them on its arenas
/// (`madvise(MADV_HUGEPAGE)`), and a 2 MiB huge page is resident whole as
/// long as one of its 64 KiB allocator pages holds a live block, and is
/// not given back by a purge of part of it. After loading 100,000 alerts
/// 47 MiB of the 160 MiB arena were huge pages, most of the anonymous
/// memory beyond the live heap; without them the server settled ~15 MiB
/// lower (README, Memory). Disabled for the process, not by mimalloc's
/// option, because that is read once at its start-up, before `main`, and
/// the kernel's `always` mode would use huge pages without being asked.
/// Unless `MIMALLOC_ALLOW_THP` says otherwise.
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // SAFETY: sets a flag of this process the kernel reads when it
        // backs memory; fails harmlessly on a kernel without it.
        // (Variadic: the arguments go as the kernel's `unsigned long`s.)
        let (disable, unused): (std::ffi::c_ulong, std::ffi::c_ulong) = (1, 0);
        unsafe { prctl(PR_SET_THP_DISABLE, disable, unused, unused, unused) };
    }
}

/// The hook `fenghuo::memory` calls on a quiet thread (see there for when
/// and why). `mi_collect` takes back the blocks other threads freed into
/// this thread's pages and returns the pages left empty; forced (the
/// writer gone idle), it also purges what exited threads left and every
/// arena's freed ranges, and the C allocator's free memory (SQLite's
/// caches) is trimmed.
fn release_freed_memory(thorough: bool) {
    // SAFETY: both only walk the allocators' own free lists.
    unsafe { mi_collect(thorough) };
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if thorough {
        unsafe { malloc_trim(0) };
    }
}

fn main() {
    no_transparent_huge_pages();
    let cli = <fenghuo::cli::Cli as clap::Parser>::parse();
    // Only the server: purging at once made a million-event `backtest`
    // ~10% slower (page faults and zeroing: 5.7–5.9 s against 5.1 s),
    // and a batch command's memory goes back when it exits.
    if cli.serves() {
        purge_freed_memory_at_once();
    }
    fenghuo::memory::set_release_hook(release_freed_memory);
    if let Err(e) = fenghuo::cli::run(cli) {
        eprintln!("fenghuo: {e:#}");
        std::process::exit(1);
    }
}
