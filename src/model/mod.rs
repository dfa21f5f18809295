//! Model description: configs from the compound-scaling rules, weights in PyTorch naming, and the
//! network assembled on the GPU.

pub mod config;
pub mod efficientnet;
pub mod labels;
pub mod weights;

pub use config::*;
pub use efficientnet::*;
pub use labels::imagenet_label;
pub use weights::*;
