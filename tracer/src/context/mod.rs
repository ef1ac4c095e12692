pub mod propagation;
