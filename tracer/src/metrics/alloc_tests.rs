//! Recording into an existing series allocates nothing: counted by an
//! allocator that wraps the system's for this test binary and tallies, per
//! thread, the allocations made while a test asks it to.
use std::{
    alloc::{GlobalAlloc, Layout, System},
    cell::Cell,
    sync::Arc,
};

use super::{
    Shared,
    fixtures::{ends, exchange, identity, service},
};
use crate::{
    protocols::http1::{Direction, Exchange},
    stats::Stats,
};

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is passed to the system allocator unchanged; the
// thread-locals are const-initialised Cells, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            COUNT.with(|c| c.set(c.get() + 1));
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            COUNT.with(|c| c.set(c.get() + 1));
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocations `f` made on this thread.
fn allocations(f: impl FnOnce()) -> u64 {
    COUNT.with(|c| c.set(0));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    COUNT.with(Cell::get)
}

#[test]
fn recording_into_existing_series_allocates_nothing() {
    let shared = Shared::new(1000, Arc::new(Stats::default()));
    let mut recorder = shared.recorder();
    let ends = ends();
    let front = service(1, "front");
    let back = service(2, "back");
    // Distinct paths, few routes: client and server sides of each call,
    // paired in the service graph, and a root server request.
    let calls: Vec<(Exchange, Exchange)> = (0..2000)
        .map(|i| {
            let path = format!("/users/{i}");
            (
                exchange(Direction::Egress, &path, 200),
                exchange(
                    Direction::Ingress,
                    &path,
                    if i % 10 == 0 { 500 } else { 200 },
                ),
            )
        })
        .collect();
    let root = exchange(Direction::Ingress, "/health", 200);
    // One call every 10 ms: the service graph's expiry queue reaches its
    // working size (5 s of calls) during the warm-up.
    let mut record = |range: std::ops::Range<usize>| {
        for i in range {
            let now = i as u64 * 10_000_000;
            let (client, server) = &calls[i];
            let span = i as u64 + 1;
            recorder.http1(client, &ends, &front, &identity(span, None), now);
            recorder.http1(
                server,
                &ends,
                &back,
                &identity(span + 1_000_000, Some(span)),
                now,
            );
            recorder.http1(&root, &ends, &back, &identity(span + 2_000_000, None), now);
        }
    };
    // The first requests create the series, edges and names, and grow the
    // tables to their working size (growth is amortised, not per request).
    record(0..1000);
    let n = allocations(|| record(1000..2000));
    assert_eq!(n, 0, "allocations while recording 3,000 exchanges");
    let state = shared.lock();
    let total: u64 = state
        .store
        .processes()
        .flat_map(|p| p.series().map(|s| s.duration.count()))
        .sum();
    assert_eq!(total, 6000);
}
