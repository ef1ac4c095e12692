//! Drains the ring buffer whenever the kernel signals data, and hands each
//! decoded event to a handler on the same task. The ring buffer itself is the
//! bounded queue between the kernel and the agent (its overflows are counted
//! by the kernel programs), so records are decoded in place, never copied.
use std::sync::Arc;

use aya::maps::{MapData, RingBuf};
use tokio::io::{Interest, unix::AsyncFd};

use super::decode::{Event, decode};
use crate::stats::Stats;

/// How often the ring buffer is drained when the kernel has not woken the
/// reader: the most a span waits in the kernel.
const DRAIN_EVERY: std::time::Duration = std::time::Duration::from_millis(10);

pub trait EventHandler {
    fn handle(&mut self, event: Event<'_>);
    /// Called after each drained burst: a place for cheap periodic work.
    fn after_burst(&mut self) {}
}

/// Runs until `shutdown` resolves; then drains what is left once.
pub async fn run(
    ring: RingBuf<MapData>,
    stats: Arc<Stats>,
    handler: &mut impl EventHandler,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    // SAFETY: the ring buffer's fd stays open for as long as `fd` lives (it
    // owns the RingBuf), and only this task reads it.
    let mut fd = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }?;
    // Events other than execs do not wake the reader until a batch has
    // piled up (see the kernel's `wake_flags`; a wake-up costs the program
    // that makes it about 17 µs here): a timer drains whatever is there.
    let mut tick = tokio::time::interval(DRAIN_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            guard = fd.readable_mut() => {
                let mut guard = guard?;
                drain(guard.get_inner_mut(), &stats, handler);
                guard.clear_ready();
                handler.after_burst();
            }
            _ = tick.tick() => {
                drain(fd.get_mut(), &stats, handler);
                handler.after_burst();
            }
            () = &mut shutdown => break,
        }
    }
    drain(fd.get_mut(), &stats, handler);
    handler.after_burst();
    Ok(())
}

fn drain(ring: &mut RingBuf<MapData>, stats: &Stats, handler: &mut impl EventHandler) {
    // What one drain finds is how full the buffer was: its records and
    // their 8-byte headers, each rounded up to 8 bytes as the kernel lays
    // them out.
    let mut backlog = 0u64;
    while let Some(item) = ring.next() {
        Stats::inc(&stats.events_read);
        backlog += (item.len() as u64 + 8).next_multiple_of(8);
        match decode(&item) {
            Ok(event) => handler.handle(event),
            Err(e) => {
                Stats::inc(&stats.events_malformed);
                log::debug!("malformed ring-buffer record: {e}");
            }
        }
    }
    Stats::add(&stats.ringbuf_bytes_read, backlog);
    stats
        .ringbuf_backlog_max_bytes
        .fetch_max(backlog, std::sync::atomic::Ordering::Relaxed);
}
