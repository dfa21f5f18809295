//! Training across processes: the collective operations a data-parallel step needs, and their
//! MPI implementation (cargo feature `mpi`; OpenMPI or any MPI with `mpirun`). Every rank runs
//! one replica on its own device; each step the ranks exchange their gradients (an all-gather,
//! so that every rank sums them in the same rank order and the parameters stay bit-identical).

use crate::error::{Error, Result};

/// What a data-parallel step asks of the processes training together. Every rank must make
/// the same calls in the same order (they are collective).
pub trait Collective: Send {
    /// This process's rank, 0-based.
    fn rank(&self) -> usize;
    /// Processes in the run.
    fn size(&self) -> usize;
    /// Every rank's `values` (each the same length), in rank order.
    fn all_gather(&self, values: &[f32]) -> Result<Vec<Vec<f32>>>;
    /// Every rank's `value`, in rank order.
    fn all_gather_u64(&self, value: u64) -> Result<Vec<u64>>;
}

/// FNV-1a, for comparing configurations between ranks.
pub(crate) fn fingerprint(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

/// An error unless every rank's `fingerprint` of `what` is this rank's.
pub(crate) fn check_agreement(c: &dyn Collective, what: &str, text: &str) -> Result<()> {
    let all = c.all_gather_u64(fingerprint(text))?;
    let differ: Vec<usize> = (0..all.len()).filter(|&r| all[r] != all[c.rank()]).collect();
    if differ.is_empty() {
        return Ok(());
    }
    Err(Error::invalid(format!(
        "rank {} of {}: ranks {differ:?} have another {what}; start every rank with the same model, data and \
         training flags (and the same world size when resuming)",
        c.rank(),
        c.size()
    )))
}

#[cfg(feature = "mpi")]
pub use self::mpi_impl::Mpi;

#[cfg(feature = "mpi")]
mod mpi_impl {
    use mpi::traits::{Communicator, CommunicatorCollectives};

    use super::Collective;
    use crate::error::{Error, Result};

    /// MPI's world communicator. `Mpi::init` once per process, under `mpirun -np K`.
    pub struct Mpi {
        // The universe finalises MPI when dropped; the world is its communicator.
        _universe: mpi::environment::Universe,
        world: mpi::topology::SimpleCommunicator,
    }

    impl Mpi {
        /// Initialises MPI with calls allowed from any thread, one at a time (an error if it is
        /// already initialised, or the library cannot serialise calls).
        pub fn init() -> Result<Mpi> {
            let (universe, level) = mpi::initialize_with_threading(mpi::Threading::Serialized)
                .ok_or_else(|| Error::invalid("MPI could not be initialised (it already was in this process)"))?;
            if !matches!(level, mpi::Threading::Serialized | mpi::Threading::Multiple) {
                return Err(Error::invalid(format!(
                    "the MPI library offers thread level {level:?}; the trainer needs Serialized"
                )));
            }
            let world = universe.world();
            Ok(Mpi { _universe: universe, world })
        }
    }

    impl Collective for Mpi {
        fn rank(&self) -> usize {
            self.world.rank() as usize
        }

        fn size(&self) -> usize {
            self.world.size() as usize
        }

        fn all_gather(&self, values: &[f32]) -> Result<Vec<Vec<f32>>> {
            let mut all = vec![0f32; values.len() * self.size()];
            self.world.all_gather_into(values, &mut all[..]);
            Ok(all.chunks(values.len().max(1)).map(<[f32]>::to_vec).collect())
        }

        fn all_gather_u64(&self, value: u64) -> Result<Vec<u64>> {
            let mut all = vec![0u64; self.size()];
            self.world.all_gather_into(&value, &mut all[..]);
            Ok(all)
        }
    }

    // SAFETY: MPI runs at MPI_THREAD_SERIALIZED (checked in `init`): any thread may call it, one
    // at a time. The handle is not `Sync`, so calls through it cannot overlap; moving it to
    // another thread is what that level allows.
    unsafe impl Send for Mpi {}
}
