//! Model description: configs from the compound-scaling rules, and weights in PyTorch naming.

pub mod config;
pub mod weights;

pub use config::*;
pub use weights::*;
