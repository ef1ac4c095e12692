//! Random trace and span ids (never all zero, as W3C requires).
use rand::{Rng as _, SeedableRng as _, rngs::SmallRng};

pub struct IdGenerator {
    rng: SmallRng,
}

impl IdGenerator {
    pub fn new() -> Self {
        Self {
            rng: SmallRng::from_os_rng(),
        }
    }

    pub fn trace_id(&mut self) -> [u8; 16] {
        loop {
            let id: [u8; 16] = self.rng.random();
            if id != [0; 16] {
                return id;
            }
        }
    }

    pub fn span_id(&mut self) -> [u8; 8] {
        loop {
            let id: [u8; 8] = self.rng.random();
            if id != [0; 8] {
                return id;
            }
        }
    }
}

impl Default for IdGenerator {
    fn default() -> Self {
        Self::new()
    }
}
