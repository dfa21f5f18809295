//! A desktop image classifier on eframe: drop images on the window (or name them on the command
//! line, or type a path), and each shows with its top-5 classes as bars. The network runs on
//! eframe's own wgpu device, created with the library's requirements (`Gpu::device_descriptor`);
//! each photo goes to the GPU once as a texture, is preprocessed there and classified through a
//! future that the frame loop polls, so the window stays responsive while the GPU works.
//!
//! cargo run --release --example desktop -- [--weights model.safetensors --variant lite0] [IMAGES...]
//!
//! Without --weights the network has random weights (its classes mean nothing). --screenshot
//! PATH saves the window as a PNG once every image is classified, then closes it (the headless
//! test runs it so under Xvfb).

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use clap::Parser;
use efficientnet_wgpu::gpu::Gpu;
use efficientnet_wgpu::infer::{image_texture, load_image, Classifier, Prediction, Preprocess, RgbPlanes};
use efficientnet_wgpu::model::{Config, EfficientNet, Variant, WeightFormat, Weights};
use eframe::{egui, egui_wgpu};

#[derive(Parser, Clone)]
#[command(about = "Classify images on the GPU in a desktop window")]
struct Args {
    /// Weights (.safetensors from torchvision, timm or lukemelas, or train_b0's).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// The network the weights are for.
    #[arg(long, default_value = "lite0")]
    variant: String,
    /// Seed of the random weights used without --weights.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Save the window as a PNG here once every image is classified, then close.
    #[arg(long)]
    screenshot: Option<PathBuf>,
    /// Images to open at start.
    images: Vec<PathBuf>,
}

type Pending = Pin<Box<dyn Future<Output = efficientnet_wgpu::Result<Vec<Vec<Prediction>>>> + Send>>;

enum Status {
    Decoding,
    Classifying(Pending),
    Done(Vec<Prediction>),
    Failed(String),
}

struct Entry {
    name: String,
    thumbnail: Option<egui::TextureHandle>,
    status: Status,
}

/// A decoded image from the decoding threads: (entry index, image or error).
type Decoded = (usize, Result<image::RgbaImage, String>);

struct App {
    classifier: Classifier,
    weights_note: String,
    entries: Vec<Entry>,
    decoded_tx: Sender<Decoded>,
    decoded_rx: Receiver<Decoded>,
    path_field: String,
    screenshot: Option<PathBuf>,
    screenshot_asked: bool,
}

/// Wakes the UI: a finished readback asks for a repaint, whose frame polls its future.
struct Repaint(egui::Context);

impl Wake for Repaint {
    fn wake(self: Arc<Self>) {
        self.0.request_repaint();
    }
}

impl App {
    fn new(cc: &eframe::CreationContext<'_>, args: Args) -> Result<App, String> {
        let rs = cc.wgpu_render_state.as_ref().ok_or("eframe started without its wgpu renderer")?;
        // The library runs on eframe's own device and queue.
        let gpu = Arc::new(Gpu::from_device(rs.device.clone(), rs.queue.clone()).map_err(|e| e.to_string())?);
        let variant = Variant::parse(&args.variant).map_err(|e| e.to_string())?;
        let (config, weights, format, note) = match &args.weights {
            Some(path) => {
                let classes = Weights::classes_in_file(path).unwrap_or(1000);
                let mut config = Config::new(variant, classes);
                let (weights, format) = Weights::load(path, &config, None).map_err(|e| e.to_string())?;
                // TF-trained weights want TF padding and BN eps.
                format.adjust_config(&mut config);
                let name = path.file_name().unwrap_or_default().to_string_lossy().to_string();
                (config, weights, format, format!("{name} ({format:?})"))
            }
            None => {
                let config = Config::new(variant, 1000);
                let weights = Weights::init_random(&config, args.seed);
                (config, weights, WeightFormat::Timm, "random weights: pass --weights for real classes".to_string())
            }
        };
        let model = EfficientNet::new(gpu, config.clone(), &weights).map_err(|e| e.to_string())?;
        let mut classifier = Classifier::new(model);
        classifier.preprocess = Preprocess::for_weights(format, &config);
        if let Some(path) = &args.weights {
            if let Ok(Some(names)) = Weights::class_names_in_file(path) {
                classifier = classifier.with_labels(names).map_err(|e| e.to_string())?;
            }
        }
        let (decoded_tx, decoded_rx) = channel();
        let mut app = App {
            classifier,
            weights_note: format!("{} · {} · {}", args.variant, note, rs.adapter.get_info().name),
            entries: Vec::new(),
            decoded_tx,
            decoded_rx,
            path_field: String::new(),
            screenshot: args.screenshot,
            screenshot_asked: false,
        };
        for path in args.images {
            app.open(path, &cc.egui_ctx);
        }
        Ok(app)
    }

    /// Decodes `path` on a thread of its own (the UI keeps drawing), then classifies it.
    fn open(&mut self, path: PathBuf, ctx: &egui::Context) {
        let index = self.entries.len();
        let name = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().to_string());
        self.entries.push(Entry { name, thumbnail: None, status: Status::Decoding });
        let (tx, ctx) = (self.decoded_tx.clone(), ctx.clone());
        std::thread::spawn(move || {
            let decoded = load_image(&path).map(|i| i.to_rgba8()).map_err(|e| e.to_string());
            let _ = tx.send((index, decoded));
            ctx.request_repaint();
        });
    }

    /// A decoded image: its thumbnail to egui, the image to the GPU as a texture, and the
    /// classification submitted (images beyond the device's texture size go through the CPU).
    fn classify(&mut self, index: usize, img: image::RgbaImage, ctx: &egui::Context) {
        let thumb = image::imageops::thumbnail(&img, 160, (160 * img.height() / img.width().max(1)).max(1));
        let size = [thumb.width() as usize, thumb.height() as usize];
        let handle = ctx.load_texture(
            format!("thumb{index}"),
            egui::ColorImage::from_rgba_unmultiplied(size, thumb.as_raw()),
            egui::TextureOptions::LINEAR,
        );
        let pending: Pending = match image_texture(self.classifier.gpu(), &img) {
            Ok(texture) => Box::pin(self.classifier.classify_textures_async(&[&texture], 5)),
            Err(_) => {
                let planes = RgbPlanes::from_image(&image::DynamicImage::ImageRgba8(img));
                Box::pin(self.classifier.classify_async(&[planes], 5))
            }
        };
        let entry = &mut self.entries[index];
        entry.thumbnail = Some(handle);
        entry.status = Status::Classifying(pending);
    }

    /// Polls what is in flight: decoded images to classify, classifications to show.
    fn poll(&mut self, ctx: &egui::Context) {
        while let Ok((index, decoded)) = self.decoded_rx.try_recv() {
            match decoded {
                Ok(img) => self.classify(index, img, ctx),
                Err(e) => self.entries[index].status = Status::Failed(e),
            }
        }
        let waker = Waker::from(Arc::new(Repaint(ctx.clone())));
        let mut cx = Context::from_waker(&waker);
        for entry in &mut self.entries {
            if let Status::Classifying(fut) = &mut entry.status {
                match fut.as_mut().poll(&mut cx) {
                    Poll::Pending => {}
                    Poll::Ready(Ok(mut top)) => {
                        let top = top.pop().unwrap_or_default();
                        let line: Vec<String> = top.iter().map(|p| format!("{}:{:.6}", p.class, p.prob)).collect();
                        println!("{}\t{}", entry.name, line.join(" "));
                        entry.status = Status::Done(top);
                    }
                    Poll::Ready(Err(e)) => entry.status = Status::Failed(e.to_string()),
                }
            }
        }
        // The readbacks resolve when the device is polled; the frames poll it while work is out.
        if self.entries.iter().any(|e| matches!(e.status, Status::Decoding | Status::Classifying(_))) {
            ctx.request_repaint_after(std::time::Duration::from_millis(30));
        } else if let (Some(path), false) = (self.screenshot.clone(), self.screenshot_asked) {
            self.screenshot_asked = true;
            let ctx2 = ctx.clone();
            ctx.request_screenshot(move |shot| {
                let [w, h] = shot.size;
                let rgba: Vec<u8> = shot.pixels.iter().flat_map(|c| c.to_array()).collect();
                match image::RgbaImage::from_raw(w as u32, h as u32, rgba).map(|i| i.save(&path)) {
                    Some(Ok(())) => eprintln!("desktop: saved {}", path.display()),
                    other => eprintln!("desktop: could not save {}: {other:?}", path.display()),
                }
                ctx2.send_viewport_cmd(egui::ViewportCommand::Close);
            });
        }
    }
}

impl eframe::App for App {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        let dropped: Vec<PathBuf> = ctx.input(|i| {
            i.raw.dropped_files.iter().map(|f| f.path().to_path_buf()).filter(|p| !p.as_os_str().is_empty()).collect()
        });
        for path in dropped {
            self.open(path, ctx);
        }
        self.poll(ctx);
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        egui::CentralPanel::default().show(ui, |ui| {
            ui.heading("efficientnet-wgpu");
            ui.label(&self.weights_note);
            ui.horizontal(|ui| {
                ui.label("Open:");
                let field = ui.text_edit_singleline(&mut self.path_field);
                let enter = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
                if (ui.button("Classify").clicked() || enter) && !self.path_field.trim().is_empty() {
                    let path = PathBuf::from(self.path_field.trim());
                    self.path_field.clear();
                    self.open(path, ui.ctx());
                }
                ui.label("or drop images on the window");
            });
            ui.separator();
            egui::ScrollArea::vertical().show(ui, |ui| {
                for entry in &self.entries {
                    ui.horizontal(|ui| {
                        match &entry.thumbnail {
                            Some(t) => {
                                ui.add(egui::Image::new(t).max_size(egui::vec2(160.0, 120.0)));
                            }
                            None => {
                                ui.allocate_space(egui::vec2(160.0, 120.0));
                            }
                        }
                        ui.vertical(|ui| {
                            ui.strong(&entry.name);
                            match &entry.status {
                                Status::Decoding => {
                                    ui.spinner();
                                }
                                Status::Classifying(_) => {
                                    ui.horizontal(|ui| {
                                        ui.spinner();
                                        ui.label("classifying on the GPU");
                                    });
                                }
                                Status::Failed(e) => {
                                    ui.colored_label(egui::Color32::RED, e);
                                }
                                Status::Done(top) => {
                                    for p in top {
                                        let name = p.label.clone().unwrap_or_else(|| format!("class {}", p.class));
                                        ui.add(
                                            egui::ProgressBar::new(p.prob)
                                                .desired_width(360.0)
                                                .text(format!("{name}  {:.1}%", 100.0 * p.prob)),
                                        );
                                    }
                                }
                            }
                        });
                    });
                    ui.separator();
                }
            });
        });
    }
}

fn main() -> eframe::Result {
    let args = Args::parse();
    let mut setup = egui_wgpu::WgpuSetupCreateNew::without_display_handle();
    // The device eframe creates asks for what the library can use on the adapter.
    setup.device_descriptor = Arc::new(Gpu::device_descriptor);
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default().with_inner_size([720.0, 600.0]).with_title("efficientnet-wgpu"),
        renderer: eframe::Renderer::Wgpu,
        wgpu_options: egui_wgpu::WgpuConfiguration {
            wgpu_setup: egui_wgpu::WgpuSetup::CreateNew(setup),
            ..Default::default()
        },
        ..Default::default()
    };
    eframe::run_native(
        "efficientnet-wgpu",
        options,
        Box::new(move |cc| Ok(Box::new(App::new(cc, args.clone())?) as Box<dyn eframe::App>)),
    )
}
