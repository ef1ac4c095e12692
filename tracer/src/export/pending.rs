//! Spans waiting for the backend. Bounded: when the backend is slow or down
//! the oldest spans go first, since the newest are the ones an operator
//! looking at a live incident wants.
use std::collections::VecDeque;

#[derive(Debug)]
pub struct PendingBuffer<T> {
    items: VecDeque<T>,
    capacity: usize,
    max_batch: usize,
}

impl<T> PendingBuffer<T> {
    /// Both limits are at least one, so a misconfigured zero cannot stall
    /// the exporter.
    pub fn new(capacity: usize, max_batch: usize) -> Self {
        Self {
            // Grows on demand: a quiet agent should not hold the full
            // capacity in memory.
            items: VecDeque::new(),
            capacity: capacity.max(1),
            max_batch: max_batch.max(1),
        }
    }

    /// Adds a span; returns how many old spans were dropped to make room.
    #[must_use]
    pub fn push(&mut self, item: T) -> u64 {
        let mut dropped = 0;
        while self.items.len() >= self.capacity {
            self.items.pop_front();
            dropped += 1;
        }
        self.items.push_back(item);
        dropped
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// A full batch is always ready; a partial one only when the flush
    /// interval has passed (`flush_due`) or on shutdown.
    pub fn has_batch(&self, flush_due: bool) -> bool {
        self.items.len() >= self.max_batch || (flush_due && !self.items.is_empty())
    }

    /// Up to `max_batch` of the oldest spans, or None when
    /// [`Self::has_batch`] says no batch is ready.
    pub fn take_batch(&mut self, flush_due: bool) -> Option<Vec<T>> {
        if !self.has_batch(flush_due) {
            return None;
        }
        let n = self.items.len().min(self.max_batch);
        Some(self.items.drain(..n).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_batch_is_ready_partial_waits_for_the_interval() {
        let mut p = PendingBuffer::new(10, 3);
        for i in 0..2 {
            assert_eq!(p.push(i), 0);
        }
        assert!(!p.has_batch(false));
        assert_eq!(p.take_batch(false), None);
        assert_eq!(p.push(2), 0);
        assert_eq!(p.take_batch(false), Some(vec![0, 1, 2]));

        assert_eq!(p.push(3), 0);
        assert_eq!(p.take_batch(false), None);
        assert_eq!(p.take_batch(true), Some(vec![3]));
        assert_eq!(p.take_batch(true), None);
    }

    #[test]
    fn batches_never_exceed_max_batch() {
        let mut p = PendingBuffer::new(100, 4);
        for i in 0..10 {
            assert_eq!(p.push(i), 0);
        }
        assert_eq!(p.take_batch(true), Some(vec![0, 1, 2, 3]));
        assert_eq!(p.take_batch(true), Some(vec![4, 5, 6, 7]));
        assert_eq!(p.take_batch(true), Some(vec![8, 9]));
        assert!(p.is_empty());
    }

    #[test]
    fn oldest_are_dropped_beyond_capacity() {
        let mut p = PendingBuffer::new(3, 100);
        let dropped: u64 = (0..5).map(|i| p.push(i)).sum();
        assert_eq!(dropped, 2);
        assert_eq!(p.len(), 3);
        assert_eq!(p.take_batch(true), Some(vec![2, 3, 4]));
    }

    #[test]
    fn zero_limits_are_raised_to_one() {
        let mut p = PendingBuffer::new(0, 0);
        assert_eq!(p.push('a'), 0);
        assert_eq!(p.push('b'), 1);
        assert_eq!(p.take_batch(false), Some(vec!['b']));
    }
}
