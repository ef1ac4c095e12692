pub mod parent;
pub mod propagation;
