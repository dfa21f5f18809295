//! One error type for the whole library. Every variant says what was wrong and, where the user can
//! act on it, how to fix it; errors from other crates are kept as the `source`.

use std::path::PathBuf;

/// `std::result::Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A cause from another crate (wgpu, safetensors, image), kept for `Error::source`.
pub type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong, by what the user can do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// wgpu found no adapter at all.
    #[error(
        "no GPU adapter found{detail}. Install a Vulkan driver (on Debian: `apt-get install -y mesa-vulkan-drivers` \
         gives lavapipe, a CPU Vulkan driver), or set WGPU_BACKEND=vulkan|metal|dx12|gl"
    )]
    NoAdapter {
        /// What was searched, where it helps.
        detail: String,
    },

    /// `WGPU_ADAPTER_NAME` names no adapter.
    #[error("no adapter matches WGPU_ADAPTER_NAME={wanted:?}; adapters found: {found}")]
    AdapterNotFound {
        /// The name asked for.
        wanted: String,
        /// The adapters there are.
        found: String,
    },

    /// The adapter refused to open a device.
    #[error("could not open the GPU device: {source}")]
    RequestDevice {
        /// wgpu's reason.
        #[source]
        source: wgpu::RequestDeviceError,
    },

    /// The device failed while doing something.
    #[error("GPU error while {context}: {source}")]
    Gpu {
        /// What it was doing.
        context: String,
        /// wgpu's reason.
        #[source]
        source: Source,
    },

    /// The device could not allocate memory for something this library asked for.
    #[error(
        "out of GPU memory: {what} ({bytes} bytes) could not be allocated on {adapter}; use a smaller \
         batch, input size or variant, or free memory the app holds on this device"
    )]
    OutOfMemory {
        /// What was being allocated.
        what: String,
        /// The bytes asked for.
        bytes: u64,
        /// The adapter's name.
        adapter: String,
        /// wgpu's report.
        #[source]
        source: Source,
    },

    /// The device is lost (driver reset, removal, or `Device::destroy`): nothing more runs on it.
    #[error(
        "the GPU device on {adapter} is lost ({reason}); open a new one (Gpu::new, or the app's own device \
         through Gpu::from_device) and load the model again"
    )]
    DeviceLost {
        /// The adapter's name.
        adapter: String,
        /// The driver's or wgpu's reason.
        reason: String,
    },

    /// wgpu refused a call as invalid: a bug in this library or in what the host did to the device.
    #[error("GPU validation error while {context} on {adapter}: {description}")]
    GpuValidation {
        /// What this library was doing.
        context: String,
        /// The adapter's name.
        adapter: String,
        /// wgpu's description.
        description: String,
    },

    /// A tensor or dispatch is larger than a device limit allows.
    #[error(
        "{what} needs {needed} bytes but the device allows at most {limit} bytes ({limit_name}); \
         {hint}"
    )]
    ExceedsDeviceLimit {
        /// What was too large.
        what: String,
        /// What it needs.
        needed: u64,
        /// What the device allows.
        limit: u64,
        /// The wgpu limit's name.
        limit_name: &'static str,
        /// What to change.
        hint: String,
    },

    /// A tensor has the wrong number of elements or the wrong shape.
    #[error("shape mismatch for {what}: expected {expected:?}, got {got:?}")]
    Shape {
        /// Which tensor.
        what: String,
        /// The shape (or length) it must have.
        expected: Vec<usize>,
        /// The shape (or length) it has.
        got: Vec<usize>,
    },

    /// The adapter lacks a feature this needs.
    #[error("{what} is not supported on {adapter}: {hint}")]
    Unsupported {
        /// What was asked for.
        what: String,
        /// The adapter.
        adapter: String,
        /// What to do instead.
        hint: String,
    },

    /// An argument or option is out of range or inconsistent.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// A model name that is none of the variants.
    #[error(
        "unknown model {0:?}; expected one of b0..b7, lite0..lite4 (optionally prefixed efficientnet-/efficientnet_)"
    )]
    UnknownModel(String),

    /// A file whose content is wrong for what it is used as.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },

    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },

    /// A file that is not valid safetensors.
    #[error("{path}: not a valid safetensors file: {source}")]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// What the parser found.
        #[source]
        source: Source,
    },

    /// A tensor stored in an element type that cannot be read as floats.
    #[error("{path}: tensor {name:?} has dtype {dtype}; expected F32, F16 or BF16")]
    DType {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// Its element type.
        dtype: String,
    },

    /// A weights file that does not fit the model asked for.
    #[error("{path}: weights do not fit {model}: {details}")]
    WeightsMismatch {
        /// The file.
        path: PathBuf,
        /// The model.
        model: String,
        /// What differs and what to pass instead.
        details: String,
    },

    /// An image file that does not decode.
    #[error("{path}: image could not be decoded: {source}")]
    Image {
        /// The file.
        path: PathBuf,
        /// The decoder's reason.
        #[source]
        source: image::ImageError,
    },
}

impl Error {
    /// `Error::Io` for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
    /// `Error::File` for `path`.
    pub fn file(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::File { path: path.into(), message: message.into() }
    }
    /// `Error::InvalidArgument`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidArgument(message.into())
    }
    /// `Error::Gpu`: the device failed while doing `context`.
    pub fn gpu(context: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Gpu { context: context.into(), source: Box::new(source) }
    }
    /// `Error::InvalidArgument` unless `value` is a finite number in `range`: the error names the
    /// option, the value and the range.
    pub fn check_number(
        option: &str,
        value: f64,
        range: impl std::ops::RangeBounds<f64> + std::fmt::Debug,
    ) -> Result<()> {
        if value.is_finite() && range.contains(&value) {
            return Ok(());
        }
        let bound = |b: std::ops::Bound<&f64>, open: &str, closed: &str| match b {
            std::ops::Bound::Included(v) => format!("{closed}{v}"),
            std::ops::Bound::Excluded(v) => format!("{open}{v}"),
            std::ops::Bound::Unbounded => String::new(),
        };
        let lo = bound(range.start_bound(), "> ", "≥ ");
        let hi = bound(range.end_bound(), "< ", "≤ ");
        let want = [lo, hi].into_iter().filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" and ");
        Err(Error::invalid(format!("{option} is {value}; it must be a finite number {want}")))
    }

    /// `Error::Safetensors` for `path`, with the parser's error or a description of what is wrong.
    pub fn safetensors(path: impl Into<PathBuf>, source: impl Into<Source>) -> Self {
        Error::Safetensors { path: path.into(), source: source.into() }
    }
}
