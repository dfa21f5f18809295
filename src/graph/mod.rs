//! Graphs recorded once and replayed: the recorder hands out activation buffers by liveness and
//! collects the dispatches of one forward or training step.

pub mod recorder;

pub use recorder::{record_planned, MemoryPlan, Recorder};
