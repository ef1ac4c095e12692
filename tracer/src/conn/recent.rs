//! A bounded set of recently seen span ids (oldest forgotten first).
use std::collections::{HashSet, VecDeque};

pub struct RecentIds {
    set: HashSet<[u8; 8]>,
    order: VecDeque<[u8; 8]>,
    capacity: usize,
}

impl RecentIds {
    pub fn new(capacity: usize) -> Self {
        Self {
            set: HashSet::with_capacity(capacity),
            order: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    pub fn insert(&mut self, id: [u8; 8]) {
        if self.set.contains(&id) {
            return;
        }
        if self.order.len() == self.capacity
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        self.set.insert(id);
        self.order.push_back(id);
    }

    pub fn contains(&self, id: &[u8; 8]) -> bool {
        self.set.contains(id)
    }
}

#[cfg(test)]
mod tests {
    use super::RecentIds;

    #[test]
    fn forgets_the_oldest() {
        let mut r = RecentIds::new(2);
        r.insert([1; 8]);
        r.insert([2; 8]);
        r.insert([2; 8]);
        r.insert([3; 8]);
        assert!(!r.contains(&[1; 8]));
        assert!(r.contains(&[2; 8]) && r.contains(&[3; 8]));
    }
}
