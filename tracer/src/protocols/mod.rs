pub mod http1;
