//! Training: the differentiable network (the training lowering of `model::network`), parameters
//! in flat GPU buffers, learning-rate schedules, the GPU optimizer, checkpoints, and the `Trainer`
//! that ties a recorded training step, an optimizer update and evaluation together.

mod checkpoint;
pub mod dist;
pub mod graph;
mod optimizer;
pub mod params;
pub mod report;
mod schedule;
mod trainer;

pub use checkpoint::{load_checkpoint, Checkpoint};
pub use graph::{StepReport, TrainGraph, TrainMemory, TrainOptions, TrainStep};
pub use optimizer::Optimizer;
pub use params::{ParamEntry, ParamKind, ParamStore};
pub use schedule::{LrSchedule, Schedule};
pub use trainer::{argmax, Evaluation, Exchange, TrainConfig, Trainer};
