//! Graphs recorded once and replayed: the buffer recorder, the flat parameter store, and the
//! differentiable training graph (forward, loss and backward in one recorded step).

pub mod params;
pub mod recorder;
pub mod train;

pub use params::{ParamEntry, ParamKind, ParamStore};
pub use recorder::{record_planned, MemoryPlan, Recorder};
pub use train::{StepReport, TrainGraph, TrainMemory, TrainOptions, TrainStep};
