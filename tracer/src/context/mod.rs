pub mod forwarded;
pub mod parent;
pub mod propagation;
