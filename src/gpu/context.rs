//! The GPU context: adapter choice, device limits and features, and the capabilities that kernels
//! pick their variants by. It can also adopt a host application's own `Device` + `Queue`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::cache::{PersistentCache, PipelineCacheStatus};
use crate::error::{Error, Result};
use crate::gpu::kernels::{BindingKind, Kernel};

/// Which family of kernel variants suits the adapter. CPU adapters (lavapipe, WARP, SwiftShader)
/// want register-blocked kernels without barriers; GPUs want workgroup-memory tiles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum KernelClass {
    /// A CPU adapter (or `EFFNET_KERNELS=cpu`): register-blocked and texel kernels, no tiling.
    Cpu,
    /// A GPU (or `EFFNET_KERNELS=gpu`): tiled kernels through workgroup memory.
    Gpu,
}

/// What the kernels may use on this device.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Capabilities {
    /// The kernel family to prefer: from the adapter's device type unless `EFFNET_KERNELS` forces one.
    pub kernel_class: KernelClass,
    /// Timestamp queries, for per-kernel profiling in the bench.
    pub timestamps: bool,
    /// Timestamps may be written between dispatches of one compute pass.
    pub timestamps_inside_passes: bool,
    /// The device has `shader-f16`, which the f16 inference path needs.
    pub shader_f16: bool,
    /// The device has subgroup operations (the texel GEMMs' `subgroupShuffle`).
    pub subgroups: bool,
    /// The subgroup size when the adapter has exactly one (lavapipe: 8). The texel GEMMs share
    /// weights across 8 lanes with `subgroupShuffle` and need it to be 8.
    pub fixed_subgroup_size: Option<u32>,
    /// The device has wgpu's `IMMEDIATES` feature (immediate data); no kernel uses it so far.
    pub immediates: bool,
}

impl Capabilities {
    /// Whether the CPU-adapter kernels that read through textures and shuffle across 8-lane
    /// subgroups apply (`EFFNET_KERNELS=gpu` turns them off for comparison).
    pub fn texel_kernels(&self) -> bool {
        self.kernel_class == KernelClass::Cpu && self.subgroups && self.fixed_subgroup_size == Some(8)
    }
}

/// A description of one adapter, for `effnet devices`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AdapterReport {
    /// The adapter's name, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)".
    pub name: String,
    /// The wgpu backend, as `Debug` prints it ("Vulkan", "Metal", "Dx12", "Gl").
    pub backend: String,
    /// The device type, as `Debug` prints it ("DiscreteGpu", "Cpu", ...).
    pub device_type: String,
    /// The driver's name.
    pub driver: String,
    /// The driver's version or other details.
    pub driver_info: String,
    /// Largest storage-buffer binding, in bytes.
    pub max_storage_buffer_binding_size: u64,
    /// Largest buffer, in bytes.
    pub max_buffer_size: u64,
    /// Workgroup memory per workgroup, in bytes.
    pub max_compute_workgroup_storage_size: u32,
    /// Invocations per workgroup.
    pub max_compute_invocations_per_workgroup: u32,
    /// Workgroups per dispatch dimension.
    pub max_compute_workgroups_per_dimension: u32,
    /// Storage buffers one shader stage may bind.
    pub max_storage_buffers_per_shader_stage: u32,
    /// The adapter offers timestamp queries.
    pub timestamps: bool,
    /// The adapter offers `shader-f16`.
    pub shader_f16: bool,
    /// The adapter offers subgroup operations.
    pub subgroups: bool,
    /// The adapter offers wgpu's `IMMEDIATES` feature.
    pub immediates: bool,
}

/// Pipelines are keyed by kernel and the values (as f64 bits) of its `override` constants.
type PipelineKey = (Kernel, Vec<(&'static str, u64)>);

/// What the device has reported outside any call's error scopes: whether it is lost, and the
/// errors wgpu would otherwise hand to its default handler (which panics).
#[derive(Default)]
struct Health {
    lost: Arc<Mutex<Option<String>>>,
    uncaptured: Mutex<Vec<String>>,
}

/// Uncaptured errors kept for `Gpu::uncaptured_errors`: the most recent ones.
const KEPT_UNCAPTURED: usize = 16;

/// A device and queue with everything the kernels need to know about them.
///
/// Every resource the library makes and every submission runs inside wgpu error scopes, so that
/// out-of-memory and validation errors come back as [`Error`]s from the call that caused them;
/// a lost device makes every later call return [`Error::DeviceLost`]. `Gpu` installs its own
/// uncaptured-error handler and device-lost callback on the device (replacing any the host set):
/// errors outside its scopes are recorded (`uncaptured_errors`) instead of panicking.
pub struct Gpu {
    /// The device that owns every buffer, texture and pipeline.
    pub device: wgpu::Device,
    /// The device's queue: uploads and submissions.
    pub queue: wgpu::Queue,
    /// The adapter behind the device: name, backend, device type, subgroup sizes.
    pub info: wgpu::AdapterInfo,
    /// The limits the device was created with.
    pub limits: wgpu::Limits,
    /// The features the device was created with.
    pub features: wgpu::Features,
    /// What the kernels may use, derived from `features` and `info`.
    pub caps: Capabilities,
    modules: Mutex<HashMap<Kernel, wgpu::ShaderModule>>,
    layouts: Mutex<HashMap<Kernel, (wgpu::BindGroupLayout, wgpu::PipelineLayout)>>,
    pipelines: Mutex<HashMap<PipelineKey, Arc<wgpu::ComputePipeline>>>,
    /// Scratch textures for `BindingKind::Texels` bindings, by rows: as many of each size as one
    /// dispatch has needed at once.
    textures: Mutex<std::collections::BTreeMap<u32, Vec<Arc<wgpu::Texture>>>>,
    health: Arc<Health>,
    pipeline_cache: Option<PersistentCache>,
    pipeline_cache_status: PipelineCacheStatus,
}

fn device_type_rank(t: wgpu::DeviceType) -> u32 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

fn backend_rank(b: wgpu::Backend) -> u32 {
    // GL is the fallback: it has no timestamps, no subgroups, and older drivers.
    match b {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        _ => 1,
    }
}

fn new_instance() -> wgpu::Instance {
    // Honours WGPU_BACKEND (and wgpu's other instance variables).
    wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env())
}

fn report(adapter: &wgpu::Adapter) -> AdapterReport {
    let info = adapter.get_info();
    let limits = adapter.limits();
    let features = adapter.features();
    AdapterReport {
        name: info.name.clone(),
        backend: format!("{:?}", info.backend),
        device_type: format!("{:?}", info.device_type),
        driver: info.driver.clone(),
        driver_info: info.driver_info.clone(),
        max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
        max_buffer_size: limits.max_buffer_size,
        max_compute_workgroup_storage_size: limits.max_compute_workgroup_storage_size,
        max_compute_invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
        max_compute_workgroups_per_dimension: limits.max_compute_workgroups_per_dimension,
        max_storage_buffers_per_shader_stage: limits.max_storage_buffers_per_shader_stage,
        timestamps: features.contains(wgpu::Features::TIMESTAMP_QUERY),
        shader_f16: features.contains(wgpu::Features::SHADER_F16),
        subgroups: features.contains(wgpu::Features::SUBGROUP),
        immediates: features.contains(wgpu::Features::IMMEDIATES),
    }
}

impl Gpu {
    /// Lists every adapter wgpu can see (after WGPU_BACKEND filtering).
    pub fn adapters() -> Vec<AdapterReport> {
        let instance = new_instance();
        pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all())).iter().map(report).collect()
    }

    /// Opens the best adapter: discrete > integrated > virtual > CPU, Vulkan/Metal/DX12 before GL.
    /// `WGPU_ADAPTER_NAME` (a case-insensitive substring) narrows the choice.
    pub fn new() -> Result<Gpu> {
        pollster::block_on(Self::new_async())
    }

    /// [`Gpu::new`] as a future, for hosts that run their own executor instead of blocking.
    pub async fn new_async() -> Result<Gpu> {
        let instance = new_instance();
        let mut adapters = instance.enumerate_adapters(wgpu::Backends::all()).await;
        if adapters.is_empty() {
            let backend = std::env::var("WGPU_BACKEND").map(|b| format!(" (WGPU_BACKEND={b})")).unwrap_or_default();
            return Err(Error::NoAdapter { detail: backend });
        }
        if let Ok(wanted) = std::env::var("WGPU_ADAPTER_NAME") {
            let found: Vec<String> = adapters.iter().map(|a| a.get_info().name).collect();
            let w = wanted.to_lowercase();
            adapters.retain(|a| a.get_info().name.to_lowercase().contains(&w));
            if adapters.is_empty() {
                return Err(Error::AdapterNotFound { wanted, found: found.join(", ") });
            }
        }
        adapters.sort_by_key(|a| {
            let i = a.get_info();
            (device_type_rank(i.device_type), backend_rank(i.backend))
        });
        let adapter = adapters.swap_remove(0);
        Self::from_adapter(&adapter).await
    }

    /// `n` devices for data-parallel training: one per adapter where the best kind of adapter
    /// (as [`Gpu::new`] ranks them) numbers at least `n`, else `n` devices on the best adapter
    /// (how tests run on lavapipe, and useful to no one else).
    pub fn open_many(n: usize) -> Result<Vec<Gpu>> {
        pollster::block_on(async {
            let same = Self::best_adapters().await?;
            let mut gpus = Vec::with_capacity(n);
            for i in 0..n {
                let adapter = if same.len() >= n { &same[i] } else { &same[0] };
                gpus.push(Self::from_adapter(adapter).await?);
            }
            Ok(gpus)
        })
    }

    /// The device for rank `i` of a distributed run on one machine: the `i`-th adapter of the
    /// best kind, counting round (`WGPU_ADAPTER_NAME` narrows them, as for `new`).
    pub fn open_nth(i: usize) -> Result<Gpu> {
        pollster::block_on(async {
            let same = Self::best_adapters().await?;
            Self::from_adapter(&same[i % same.len()]).await
        })
    }

    /// The adapters of the best kind `new` would choose from, in wgpu's order.
    async fn best_adapters() -> Result<Vec<wgpu::Adapter>> {
        let instance = new_instance();
        let mut adapters = instance.enumerate_adapters(wgpu::Backends::all()).await;
        if let Ok(wanted) = std::env::var("WGPU_ADAPTER_NAME") {
            let w = wanted.to_lowercase();
            adapters.retain(|a| a.get_info().name.to_lowercase().contains(&w));
        }
        let rank = |a: &wgpu::Adapter| {
            let i = a.get_info();
            (device_type_rank(i.device_type), backend_rank(i.backend))
        };
        adapters.sort_by_key(rank);
        let best = adapters.first().map(rank).ok_or(Error::NoAdapter { detail: String::new() })?;
        adapters.retain(|a| rank(a) == best);
        Ok(adapters)
    }

    /// Opens a device on `adapter` with [`Gpu::device_descriptor`].
    pub async fn from_adapter(adapter: &wgpu::Adapter) -> Result<Gpu> {
        let desc = Self::device_descriptor(adapter);
        let (device, queue) = adapter.request_device(&desc).await.map_err(|source| Error::RequestDevice { source })?;
        Self::from_device(device, queue)
    }

    /// Features the library cannot run without: none.
    pub const REQUIRED_FEATURES: wgpu::Features = wgpu::Features::empty();

    /// Features the library uses where the device has them: timestamp queries (the bench's
    /// per-kernel profile), `SHADER_F16` (f16 inference), `SUBGROUP` (the texel GEMMs that CPU
    /// adapters run fastest) and `PIPELINE_CACHE` (compiled pipelines kept between runs). Without
    /// them everything else runs, on other kernel variants.
    pub const OPTIONAL_FEATURES: wgpu::Features = wgpu::Features::TIMESTAMP_QUERY
        .union(wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS)
        .union(wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES)
        .union(wgpu::Features::SHADER_F16)
        .union(wgpu::Features::SUBGROUP)
        .union(wgpu::Features::IMMEDIATES)
        .union(wgpu::Features::PIPELINE_CACHE);

    /// The limits everything runs within: wgpu's defaults (WebGPU's minimums: 8 storage buffers
    /// per stage, 128 MiB storage bindings, 16 KiB of workgroup memory), which is what eframe and
    /// bevy ask for unless told otherwise. Larger limits help: a batch runs in fewer slices when
    /// bindings are larger, and training B6/B7 needs a `max_buffer_size` that holds its
    /// parameters (265 MB for B7).
    pub fn required_limits() -> wgpu::Limits {
        wgpu::Limits::default()
    }

    /// The device a host should create on `adapter` for this library to run at its best: the
    /// optional features the adapter has and the adapter's own limits. Pass it (or merge its
    /// features and limits into your own) to egui's `WgpuSetupCreateNew::device_descriptor` or
    /// bevy's `WgpuSettings`; a device with less still works (see `required_limits`).
    pub fn device_descriptor(adapter: &wgpu::Adapter) -> wgpu::DeviceDescriptor<'static> {
        wgpu::DeviceDescriptor {
            label: Some("efficientnet-wgpu"),
            required_features: Self::REQUIRED_FEATURES | (adapter.features() & Self::OPTIONAL_FEATURES),
            // wgpu's defaults are WebGPU's minimums (128 MiB bindings, 8 storage buffers): ask for all.
            required_limits: adapter.limits(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }
    }

    /// The compute limits of `required_limits` that `limits` falls short of and the kernels
    /// cannot work around: (name, needed, has).
    fn missing_limits(limits: &wgpu::Limits) -> Vec<(&'static str, u64, u64)> {
        let mut missing = Vec::new();
        Self::required_limits().check_limits_with_fail_fn(limits, false, |name, needed, has| {
            let compute = ["max_storage_buffers_per_shader_stage", "max_storage_textures_per_shader_stage"]
                .contains(&name)
                || name.starts_with("max_compute")
                || name.starts_with("max_bind")
                || name.starts_with("min_storage");
            // Binding and buffer sizes are not refused here: batches run in slices that fit, and
            // what cannot fit is an error naming the limit when it is asked for.
            if compute {
                missing.push((name, needed, has));
            }
        });
        missing
    }

    /// Adopts a host application's device and queue (desktop embedding). The kernels are chosen
    /// by the features and limits that device was created with: no `SUBGROUP`, no texel GEMMs;
    /// no `SHADER_F16`, no f16 inference; no timestamps, no profile. An error where the device
    /// has less than `required_limits` of a limit the kernels use, or `EFFNET_KERNELS` holds
    /// something other than `cpu` or `gpu`.
    pub fn from_device(device: wgpu::Device, queue: wgpu::Queue) -> Result<Gpu> {
        let info = device.adapter_info();
        let limits = device.limits();
        let features = device.features();
        let missing = Self::missing_limits(&limits);
        if !missing.is_empty() {
            let list: Vec<String> =
                missing.iter().map(|(name, needed, has)| format!("{name} {has} (needs {needed})")).collect();
            return Err(Error::Unsupported {
                what: "a device with these limits".into(),
                adapter: info.name.clone(),
                hint: format!(
                    "{}; create the device with at least Gpu::required_limits() (wgpu::Limits::default())",
                    list.join(", ")
                ),
            });
        }
        let kernel_class = match std::env::var("EFFNET_KERNELS").as_deref() {
            Ok("gpu") => KernelClass::Gpu,
            Ok("cpu") => KernelClass::Cpu,
            Ok(other) => {
                return Err(Error::invalid(format!(
                    "EFFNET_KERNELS is {other:?}; it must be cpu or gpu (or unset: chosen by the adapter)"
                )))
            }
            Err(_) if info.device_type == wgpu::DeviceType::Cpu => KernelClass::Cpu,
            Err(_) => KernelClass::Gpu,
        };
        let caps = Capabilities {
            kernel_class,
            timestamps: features.contains(wgpu::Features::TIMESTAMP_QUERY),
            timestamps_inside_passes: features.contains(wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES),
            shader_f16: features.contains(wgpu::Features::SHADER_F16),
            subgroups: features.contains(wgpu::Features::SUBGROUP),
            fixed_subgroup_size: (info.subgroup_min_size == info.subgroup_max_size).then_some(info.subgroup_min_size),
            immediates: features.contains(wgpu::Features::IMMEDIATES),
        };
        let health = Arc::new(Health::default());
        let h = health.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let mut kept = h.uncaptured.lock().unwrap_or_else(|e| e.into_inner());
            if kept.len() == KEPT_UNCAPTURED {
                kept.remove(0);
            }
            kept.push(e.to_string());
        }));
        let h = health.clone();
        device.set_device_lost_callback(move |reason, message| {
            *h.lost.lock().unwrap_or_else(|e| e.into_inner()) = Some(format!("{reason:?}: {message}"));
        });
        let (pipeline_cache, pipeline_cache_status) = PersistentCache::open(&device, &info);
        Ok(Gpu {
            pipeline_cache,
            pipeline_cache_status,
            device,
            queue,
            info,
            limits,
            features,
            caps,
            modules: Mutex::new(HashMap::new()),
            layouts: Mutex::new(HashMap::new()),
            pipelines: Mutex::new(HashMap::new()),
            textures: Mutex::new(Default::default()),
            health,
        })
    }

    /// This GPU choosing the kernel families of `class` (what `EFFNET_KERNELS` does from the
    /// environment): tests run the GPU families on lavapipe this way, and apps may force one.
    pub fn with_kernel_class(mut self, class: KernelClass) -> Gpu {
        self.caps.kernel_class = class;
        self
    }

    /// A one-line description: "llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan, Cpu)".
    pub fn describe(&self) -> String {
        format!("{} ({:?}, {:?})", self.info.name, self.info.backend, self.info.device_type)
    }

    /// The largest buffer that one binding may cover.
    pub fn max_binding_bytes(&self) -> u64 {
        self.limits.max_storage_buffer_binding_size.min(self.limits.max_buffer_size)
    }

    /// How many images whose largest tensor takes `per_image` bytes fit one storage binding (a
    /// batch is sliced to this). When not even one does, the error names `what` and says how
    /// small an `h` x `w` input would have to be.
    pub fn images_per_binding(&self, per_image: u64, what: String, h: usize, w: usize) -> Result<usize> {
        let limit = self.max_binding_bytes();
        if per_image > limit {
            let side = |x: usize| ((x as f64) * (limit as f64 / per_image as f64).sqrt()) as usize;
            return Err(Error::ExceedsDeviceLimit {
                what,
                needed: per_image,
                limit,
                limit_name: "max_storage_buffer_binding_size",
                hint: format!(
                    "that is {:.1}x the limit: use an input of at most about {}x{} pixels",
                    per_image as f64 / limit as f64,
                    side(h),
                    side(w)
                ),
            });
        }
        Ok((limit / per_image.max(1)) as usize)
    }

    /// Bind group layout for `kernel` (explicit, so unused bindings are never dropped).
    pub fn bind_group_layout(&self, kernel: Kernel) -> wgpu::BindGroupLayout {
        self.layouts_for(kernel).0
    }

    fn layouts_for(&self, kernel: Kernel) -> (wgpu::BindGroupLayout, wgpu::PipelineLayout) {
        let mut layouts = self.layouts.lock().unwrap_or_else(|e| e.into_inner());
        layouts
            .entry(kernel)
            .or_insert_with(|| {
                let entries: Vec<wgpu::BindGroupLayoutEntry> = kernel
                    .bindings()
                    .iter()
                    .enumerate()
                    .map(|(i, kind)| wgpu::BindGroupLayoutEntry {
                        binding: i as u32,
                        visibility: wgpu::ShaderStages::COMPUTE,
                        ty: match kind {
                            BindingKind::Read | BindingKind::Write => wgpu::BindingType::Buffer {
                                ty: wgpu::BufferBindingType::Storage { read_only: *kind == BindingKind::Read },
                                has_dynamic_offset: false,
                                min_binding_size: None,
                            },
                            BindingKind::Texels => wgpu::BindingType::StorageTexture {
                                access: wgpu::StorageTextureAccess::ReadOnly,
                                format: wgpu::TextureFormat::Rgba32Float,
                                view_dimension: wgpu::TextureViewDimension::D2,
                            },
                            BindingKind::Image => wgpu::BindingType::Texture {
                                sample_type: wgpu::TextureSampleType::Float { filterable: false },
                                view_dimension: wgpu::TextureViewDimension::D2,
                                multisampled: false,
                            },
                        },
                        count: None,
                    })
                    .collect();
                let bgl = self.device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                    label: Some(kernel.name()),
                    entries: &entries,
                });
                let pl = self.device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                    label: Some(kernel.name()),
                    bind_group_layouts: &[Some(&bgl)],
                    immediate_size: 0,
                });
                (bgl, pl)
            })
            .clone()
    }

    /// The pipeline for `kernel` with these `override` constants, built once and cached.
    /// Shapes are passed as overrides because lavapipe recompiles a shader at dispatch time when
    /// a uniform feeds a loop bound, and constant shapes let every compiler unroll.
    pub fn pipeline(&self, kernel: Kernel, constants: &[(&'static str, f64)]) -> Result<Arc<wgpu::ComputePipeline>> {
        let key: PipelineKey = (kernel, constants.iter().map(|&(k, v)| (k, v.to_bits())).collect());
        if let Some(p) = self.pipelines.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok(p.clone());
        }
        let what = format!("the {} pipeline", kernel.name());
        let module = {
            let mut modules = self.modules.lock().unwrap_or_else(|e| e.into_inner());
            match modules.get(&kernel) {
                Some(m) => m.clone(),
                None => {
                    let m = self.scoped(&what, 0, || {
                        self.device.create_shader_module(wgpu::ShaderModuleDescriptor {
                            label: Some(kernel.name()),
                            source: wgpu::ShaderSource::Wgsl(kernel.source().into()),
                        })
                    })?;
                    modules.insert(kernel, m.clone());
                    m
                }
            }
        };
        let (_, layout) = self.layouts_for(kernel);
        let pipeline = Arc::new(self.scoped(&what, 0, || {
            self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(kernel.name()),
                layout: Some(&layout),
                module: &module,
                entry_point: Some(kernel.entry_point()),
                compilation_options: wgpu::PipelineCompilationOptions { constants, ..Default::default() },
                cache: self.pipeline_cache.as_ref().map(|c| &c.cache),
            })
        })?);
        self.pipelines.lock().unwrap_or_else(|e| e.into_inner()).insert(key, pipeline.clone());
        Ok(pipeline)
    }

    /// Runs `f`, which makes resources or submits work on this device, inside error scopes: an
    /// allocation the device cannot satisfy comes back as [`Error::OutOfMemory`] naming `what`
    /// and `bytes`, a validation or internal error as [`Error::GpuValidation`], and a lost device
    /// as [`Error::DeviceLost`]; none reaches the uncaptured-error handler. The scopes are per
    /// thread, so concurrent callers see only their own errors.
    pub fn scoped<T>(&self, what: &str, bytes: u64, f: impl FnOnce() -> T) -> Result<T> {
        self.check_alive()?;
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let internal = self.device.push_error_scope(wgpu::ErrorFilter::Internal);
        let out = f();
        // Popped innermost first; on native wgpu the futures are ready at once.
        let errors = [internal.pop(), validation.pop(), oom.pop()].map(pollster::block_on);
        // An out-of-memory first: it is the one the caller can act on.
        if let Some(e) = errors.into_iter().rev().flatten().next() {
            self.check_alive()?;
            return Err(match e {
                wgpu::Error::OutOfMemory { source } => {
                    Error::OutOfMemory { what: what.to_string(), bytes, adapter: self.info.name.clone(), source }
                }
                wgpu::Error::Validation { description, .. } | wgpu::Error::Internal { description, .. } => {
                    Error::GpuValidation { context: what.to_string(), adapter: self.info.name.clone(), description }
                }
            });
        }
        Ok(out)
    }

    /// `Err(Error::DeviceLost)` once the device is lost; every call that touches the device
    /// checks this first. wgpu reports a loss through the device-lost callback when the device is
    /// next polled (work on a lost device fails silently), so this polls once, without blocking.
    pub fn check_alive(&self) -> Result<()> {
        let _ = self.device.poll(wgpu::PollType::Poll);
        match self.health.lost.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            None => Ok(()),
            Some(reason) => Err(Error::DeviceLost { adapter: self.info.name.clone(), reason: reason.clone() }),
        }
    }

    /// `Error::Gpu` for a failure of wgpu's while `context`, or `Error::DeviceLost` where the
    /// device is lost (which makes every call fail, each in its own way).
    pub fn failure(&self, context: &str, source: impl std::error::Error + Send + Sync + 'static) -> Error {
        match self.check_alive() {
            Err(lost) => lost,
            Ok(()) => Error::gpu(context, source),
        }
    }

    /// The lost-device reason shared with readbacks, which outlive no `Gpu` borrow.
    pub(crate) fn lost_flag(&self) -> Arc<Mutex<Option<String>>> {
        self.health.lost.clone()
    }

    /// The most recent errors (up to 16) that wgpu reported outside this library's error scopes,
    /// e.g. from the host's own use of a shared device; oldest first.
    pub fn uncaptured_errors(&self) -> Vec<String> {
        self.health.uncaptured.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Submits `commands` inside error scopes (`scoped`), returning the submission's index.
    pub fn submit(
        &self,
        what: &str,
        commands: impl IntoIterator<Item = wgpu::CommandBuffer>,
    ) -> Result<wgpu::SubmissionIndex> {
        self.scoped(what, 0, || self.queue.submit(commands))
    }

    /// A scratch `rgba32float` texture of `TEXEL_ROW` x at least `rows` texels for a texel binding,
    /// other than the ones in `taken` (the dispatch's other texel bindings): of the free ones of
    /// the smallest size that is large enough (a kernel reads only its own range), the one whose
    /// content `held` says was copied in longest ago (so that recent copies stay for later readers
    /// to reuse); else a new one with rows rounded up to an eighth of a power of two. Every
    /// dispatch shares them, because each one copies its inputs in just before it runs (queue
    /// order makes the reuse safe); so the textures number about as many as one dispatch binds,
    /// each as large as the largest input it is bound for.
    pub fn scratch_texture(
        &self,
        texels: usize,
        taken: &[Arc<wgpu::Texture>],
        held: &super::TexelResidency,
    ) -> Result<Arc<wgpu::Texture>> {
        // Rows rounded up to a multiple of an eighth of their power of two: few sizes, under 20%
        // of a texture unused.
        let rows = texels.div_ceil(super::TEXEL_ROW as usize).max(1);
        let rows = rows.next_multiple_of((rows.next_power_of_two() / 8).max(1));
        let max = self.limits.max_texture_dimension_2d as usize;
        if rows > max || (super::TEXEL_ROW as usize) > max {
            return Err(Error::ExceedsDeviceLimit {
                what: format!("a texture of {texels} texels"),
                needed: rows as u64,
                limit: max as u64,
                limit_name: "max_texture_dimension_2d",
                hint: "use a smaller batch or input size".into(),
            });
        }
        let mut textures = self.textures.lock().unwrap_or_else(|e| e.into_inner());
        let free = |t: &&Arc<wgpu::Texture>| !taken.iter().any(|u| Arc::ptr_eq(t, u));
        // The smallest size with a free texture, and of those the one copied into longest ago.
        let oldest =
            textures.range(rows as u32..).find_map(|(_, ts)| ts.iter().filter(free).min_by_key(|t| held.age(t)));
        if let Some(t) = oldest {
            return Ok(t.clone());
        }
        let bytes = super::TEXEL_ROW as u64 * rows as u64 * 16;
        let texture = Arc::new(self.scoped("a texel scratch texture", bytes, || {
            self.device.create_texture(&wgpu::TextureDescriptor {
                label: Some("texel scratch"),
                size: wgpu::Extent3d { width: super::TEXEL_ROW, height: rows as u32, depth_or_array_layers: 1 },
                mip_level_count: 1,
                sample_count: 1,
                dimension: wgpu::TextureDimension::D2,
                format: wgpu::TextureFormat::Rgba32Float,
                usage: wgpu::TextureUsages::STORAGE_BINDING | wgpu::TextureUsages::COPY_DST,
                view_formats: &[],
            })
        })?);
        textures.entry(rows as u32).or_default().push(texture.clone());
        Ok(texture)
    }

    /// Bytes of the scratch textures made so far for texel kernels (memory beyond the buffers).
    pub fn scratch_texture_bytes(&self) -> u64 {
        let textures = self.textures.lock().unwrap_or_else(|e| e.into_inner());
        textures.values().flatten().map(|t| t.width() as u64 * t.height() as u64 * 16).sum()
    }

    /// Writes the persistent pipeline cache (see `gpu::PipelineCacheStatus`) when pipelines were
    /// compiled since it was last written; the models call this after building a plan. Returns
    /// whether it wrote.
    pub fn save_pipeline_cache(&self) -> Result<bool> {
        self.pipeline_cache.as_ref().map_or(Ok(false), PersistentCache::save)
    }

    /// Where the pipeline cache lives, what was read from it at start, and why it was ignored or
    /// is off.
    pub fn pipeline_cache_status(&self) -> &PipelineCacheStatus {
        &self.pipeline_cache_status
    }

    /// Number of distinct pipelines built so far (the bench reports it).
    pub fn pipeline_count(&self) -> usize {
        self.pipelines.lock().map(|p| p.len()).unwrap_or(0)
    }
}
