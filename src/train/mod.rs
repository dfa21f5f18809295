//! Training: learning-rate schedules, the GPU optimizer, checkpoints, and the `Trainer` that ties a
//! recorded training step, an optimizer update and evaluation together.

mod checkpoint;
mod optimizer;
pub mod report;
mod schedule;
mod trainer;

pub use checkpoint::{load_checkpoint, Checkpoint};
pub use optimizer::Optimizer;
pub use schedule::{LrSchedule, Schedule};
pub use trainer::{argmax, Evaluation, TrainConfig, Trainer};
