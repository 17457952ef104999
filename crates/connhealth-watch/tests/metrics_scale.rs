//! A scrape of a large fleet holds little memory at once: families are built and encoded
//! one at a time, never all of them together, and never the whole text.
//!
//! The heap is measured by a counting allocator around the test binary's. The 100k
//! figure, in release mode:
//!
//! ```text
//! cargo test --release -p connhealth-watch --test metrics_scale -- --ignored --nocapture
//! ```

mod http_support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{self, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use connhealth_watch::sinks::metrics::ReloadState;
use connhealth_watch::sinks::metrics::{render, DaemonCounters};
use connhealth_watch::state::Fleet;
use http_support::synthetic_fleet;

/// The system allocator, counting the bytes live now and at most.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed on to the system allocator unchanged; the counters only
// observe the sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() {
            let live = LIVE.fetch_add(new_size - layout.size(), Ordering::Relaxed) + new_size
                - layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        } else {
            LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
        }
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Counts what is written, keeps nothing.
#[derive(Default)]
struct Counted(usize);

impl Write for Counted {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct Scrape {
    text_bytes: usize,
    peak_heap_bytes: usize,
    took: Duration,
}

fn scrape(fleet: &Fleet) -> Scrape {
    let daemon = DaemonCounters {
        late_checks: 0,
        reload: ReloadState {
            successful: true,
            last_success: SystemTime::now(),
        },
        sinks_dropped: Vec::new(),
        alerts: Vec::new(),
        probe_engine: None,
    };
    let mut out = Counted::default();
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let start = Instant::now();
    render(fleet, &daemon, &mut out).unwrap();
    let took = start.elapsed();
    Scrape {
        text_bytes: out.0,
        peak_heap_bytes: PEAK.load(Ordering::Relaxed) - before,
        took,
    }
}

fn report(n: usize, scrape: &Scrape) {
    eprintln!(
        "{n} targets: {:.1} MB of text, peak heap {:.1} MB above the fleet's, {:?}",
        scrape.text_bytes as f64 / 1e6,
        scrape.peak_heap_bytes as f64 / 1e6,
        scrape.took
    );
}

#[test]
fn a_scrape_holds_a_small_part_of_its_text_at_once() {
    let n = 20_000;
    let fleet = synthetic_fleet(n);
    let scrape = scrape(&fleet);
    report(n, &scrape);
    assert!(
        scrape.peak_heap_bytes < scrape.text_bytes / 4,
        "peak {} bytes for {} bytes of text",
        scrape.peak_heap_bytes,
        scrape.text_bytes
    );
}

#[test]
#[ignore = "a measurement: run in release with --ignored --nocapture"]
fn a_scrape_of_100k_targets() {
    let n = 100_000;
    let fleet = synthetic_fleet(n);
    for _ in 0..3 {
        report(n, &scrape(&fleet));
    }
}
