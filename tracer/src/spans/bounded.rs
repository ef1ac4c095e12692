//! A bounded table of values made once and shared by the spans that carry
//! them (peer addresses written out, repeated header values, templated
//! routes): a lookup costs less than making the value again for every span.
//! When full it starts over, so memory stays bounded whatever the traffic.
use std::hash::Hash;

use hashbrown::{Equivalent, HashMap};

pub struct Bounded<K, V> {
    map: HashMap<K, V>,
    max: usize,
}

impl<K: Hash + Eq + Clone, V: Clone> Bounded<K, V> {
    pub fn new(max: usize) -> Self {
        Self {
            map: HashMap::new(),
            max,
        }
    }

    /// The entry for `key`, made by `make` (key and value) when missing.
    pub fn get_or_insert<Q>(&mut self, key: &Q, make: impl FnOnce() -> (K, V)) -> (K, V)
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        if let Some((k, v)) = self.map.get_key_value(key) {
            return (k.clone(), v.clone());
        }
        if self.map.len() >= self.max {
            self.map.clear();
        }
        let (k, v) = make();
        self.map.insert(k.clone(), v.clone());
        (k, v)
    }

    /// The value for `key`, if the table has it; never inserts.
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        self.map.get(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_once_then_shared_and_bounded() {
        let mut table: Bounded<String, usize> = Bounded::new(3);
        let mut made = 0;
        for key in ["a", "b", "a", "c", "a"] {
            table.get_or_insert(key, || {
                made += 1;
                (key.to_owned(), key.len())
            });
        }
        assert_eq!(made, 3, "a repeated key is made once");
        assert_eq!(table.get("a"), Some(&1));
        assert_eq!(table.get("z"), None);
        assert_eq!(
            table.get_or_insert("d", || ("d".to_owned(), 9)),
            ("d".to_owned(), 9)
        );
        assert_eq!(table.get("a"), None, "full: it started over");
        assert_eq!(table.get("d"), Some(&9));
    }
}
