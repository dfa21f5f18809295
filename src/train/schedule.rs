//! Learning-rate schedules: linear warm-up, then exponential staircase (the paper's x0.97 every
//! 2.4 epochs), cosine, or constant.

/// The shape after warm-up.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Schedule {
    /// The base learning rate throughout.
    Constant,
    /// lr * rate^floor(epoch / every_epochs).
    ExponentialStaircase {
        /// Factor applied at each stair (0.97 in the paper).
        rate: f32,
        /// Epochs per stair, counted from step 0 with the warm-up included (2.4 in the paper).
        every_epochs: f32,
    },
    /// Half a cosine from lr down to 0 at the last step.
    Cosine,
}

/// The learning rate as a function of the step: linear warm-up to `base_lr`, then `schedule`.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LrSchedule {
    /// Peak learning rate, reached at the end of the warm-up.
    pub base_lr: f32,
    /// Steps of linear warm-up: step s (0-based) gets base_lr * (s + 1) / warmup_steps (0 = none).
    pub warmup_steps: u64,
    /// Steps of the whole run: the cosine schedule reaches 0 there (the other shapes ignore it).
    pub total_steps: u64,
    /// Optimizer steps per epoch, which turn the staircase's epochs into steps.
    pub steps_per_epoch: u64,
    /// The shape after warm-up.
    pub schedule: Schedule,
}

impl LrSchedule {
    /// The paper's: warm-up, then x0.97 every 2.4 epochs.
    pub fn paper(base_lr: f32, warmup_steps: u64, total_steps: u64, steps_per_epoch: u64) -> Self {
        LrSchedule {
            base_lr,
            warmup_steps,
            total_steps,
            steps_per_epoch,
            schedule: Schedule::ExponentialStaircase { rate: 0.97, every_epochs: 2.4 },
        }
    }

    /// The learning rate of step `step` (0-based).
    pub fn lr(&self, step: u64) -> f32 {
        if step < self.warmup_steps {
            return self.base_lr * (step + 1) as f32 / self.warmup_steps as f32;
        }
        let after = (step - self.warmup_steps) as f64;
        match self.schedule {
            Schedule::Constant => self.base_lr,
            Schedule::ExponentialStaircase { rate, every_epochs } => {
                // The f32 2.4 is 2.4000000954: round it back to its decimal value so the stairs
                // fall on the steps the user meant.
                let every = (every_epochs as f64 * 1e6).round() / 1e6;
                let stairs = step as f64 / (every * self.steps_per_epoch.max(1) as f64);
                self.base_lr * rate.powi((stairs + 1e-12).floor() as i32)
            }
            Schedule::Cosine => {
                let span = self.total_steps.saturating_sub(self.warmup_steps).max(1) as f64;
                let t = (after / span).min(1.0);
                (self.base_lr as f64 * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())) as f32
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_shapes() {
        let s = LrSchedule {
            base_lr: 1.0,
            warmup_steps: 4,
            total_steps: 104,
            steps_per_epoch: 10,
            schedule: Schedule::Cosine,
        };
        assert_eq!(s.lr(0), 0.25);
        assert_eq!(s.lr(3), 1.0);
        assert!((s.lr(54) - 0.5).abs() < 1e-6);
        assert!(s.lr(103) < 1e-3);
        let p = LrSchedule::paper(1.0, 0, 100, 10);
        assert_eq!(p.lr(23), 1.0);
        assert_eq!(p.lr(24), 0.97);
        assert!((p.lr(48) - 0.97 * 0.97).abs() < 1e-6);
    }
}
