//! Model description: configs from the compound-scaling rules, the network described once as a
//! list of units (`network`), weights in PyTorch naming, and the inference lowering of the network
//! onto the GPU (`efficientnet`).

pub mod config;
pub mod efficientnet;
pub mod labels;
pub mod layout;
pub mod network;
pub mod weights;

pub use config::*;
pub use efficientnet::*;
pub use labels::imagenet_label;
pub use network::{ConvKind, FeatureLevel, Network, Op, Unit, ValueId};
pub use weights::*;
