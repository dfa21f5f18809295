//! One error type for the whole library. Every variant says what was wrong and, where the user can
//! act on it, how to fix it.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "no GPU adapter found{detail}. Install a Vulkan driver (on Debian: `apt-get install -y mesa-vulkan-drivers` \
         gives lavapipe, a CPU Vulkan driver), or set WGPU_BACKEND=vulkan|metal|dx12|gl"
    )]
    NoAdapter { detail: String },

    #[error("no adapter matches WGPU_ADAPTER_NAME={wanted:?}; adapters found: {found}")]
    AdapterNotFound { wanted: String, found: String },

    #[error("could not open the GPU device: {0}")]
    RequestDevice(String),

    #[error("GPU error while {context}: {message}")]
    Gpu { context: String, message: String },

    #[error(
        "{what} needs {needed} bytes but the device allows at most {limit} bytes ({limit_name}); \
         {hint}"
    )]
    ExceedsDeviceLimit { what: String, needed: u64, limit: u64, limit_name: &'static str, hint: String },

    #[error("shape mismatch for {what}: expected {expected:?}, got {got:?}")]
    Shape { what: String, expected: Vec<usize>, got: Vec<usize> },

    #[error("{what} is not supported on {adapter}: {hint}")]
    Unsupported { what: String, adapter: String, hint: String },

    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    #[error(
        "unknown model {0:?}; expected one of b0..b7, lite0..lite4 (optionally prefixed efficientnet-/efficientnet_)"
    )]
    UnknownModel(String),

    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },

    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },

    #[error("{path}: not a valid safetensors file: {message}")]
    Safetensors { path: PathBuf, message: String },

    #[error("{path}: tensor {name:?} has dtype {dtype}; expected F32, F16 or BF16")]
    DType { path: PathBuf, name: String, dtype: String },

    #[error("{path}: weights do not fit {model}: {details}")]
    WeightsMismatch { path: PathBuf, model: String, details: String },

    #[error("{path}: image could not be decoded: {message}")]
    Image { path: PathBuf, message: String },
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
    pub fn file(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::File { path: path.into(), message: message.into() }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidArgument(message.into())
    }
}
