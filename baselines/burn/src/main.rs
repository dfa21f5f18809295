//! burn's side of the side-by-side bench: EfficientNet-B0 (torchvision's layout: symmetric
//! padding, BN eps 1e-5, SE reduced from the block's input channels, linear stochastic depth up to
//! 0.2, dropout 0.2) on burn's wgpu backend, timed the way baselines/pytorch.py times PyTorch.
//! One JSON object per measurement on stdout, the fields of pytorch.py's plus
//! `"framework": "burn"`, so `bench --targets --baseline` reads both from one file.
//!
//!     bash baselines/burn.sh                 # builds this, then runs it
//!     burn-baseline --forward 8:224 --train 32:32:10 --iters 5

use std::time::Instant;

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, SgdConfig};
use burn::prelude::*;
use burn::tensor::activation::{sigmoid, silu};
use burn::tensor::Distribution;

/// B0's stages, the paper's Table 1: expand ratio, kernel, stride, output channels, repeats.
const STAGES: [(usize, usize, usize, usize, usize); 7] = [
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
];

/// Convolution + BatchNorm, the conv without bias as BN follows.
#[derive(Module, Debug)]
struct ConvBn {
    conv: Conv2d,
    bn: BatchNorm,
}

impl ConvBn {
    fn new(cin: usize, cout: usize, k: usize, stride: usize, groups: usize, device: &Device) -> Self {
        let p = k / 2;
        let conv = Conv2dConfig::new([cin, cout], [k, k])
            .with_stride([stride, stride])
            .with_groups(groups)
            .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
            .with_bias(false)
            .init(device);
        Self { conv, bn: BatchNormConfig::new(cout).init(device) }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.bn.forward(self.conv.forward(x))
    }
}

#[derive(Module, Debug)]
struct MbConv {
    expand: Option<ConvBn>,
    depthwise: ConvBn,
    se_reduce: Conv2d,
    se_expand: Conv2d,
    project: ConvBn,
    residual: bool,
    drop_rate: f64,
}

impl MbConv {
    fn new(cin: usize, cout: usize, expand: usize, k: usize, stride: usize, drop_rate: f64, device: &Device) -> Self {
        let mid = cin * expand;
        let squeezed = (cin / 4).max(1);
        Self {
            expand: (expand != 1).then(|| ConvBn::new(cin, mid, 1, 1, 1, device)),
            depthwise: ConvBn::new(mid, mid, k, stride, mid, device),
            se_reduce: Conv2dConfig::new([mid, squeezed], [1, 1]).init(device),
            se_expand: Conv2dConfig::new([squeezed, mid], [1, 1]).init(device),
            project: ConvBn::new(mid, cout, 1, 1, 1, device),
            residual: stride == 1 && cin == cout,
            drop_rate,
        }
    }

    fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        let mut x = input.clone();
        if let Some(e) = &self.expand {
            x = silu(e.forward(x));
        }
        x = silu(self.depthwise.forward(x));
        let s = x.clone().mean_dims(&[2, 3]);
        let s = sigmoid(self.se_expand.forward(silu(self.se_reduce.forward(s))));
        x = self.project.forward(x * s);
        if !self.residual {
            return x;
        }
        // Stochastic depth ("row" mode): a whole sample's branch dropped, the survivors scaled.
        if x.device().is_autodiff() && self.drop_rate > 0.0 {
            let keep = 1.0 - self.drop_rate;
            let [b, ..] = x.dims();
            let mask = Tensor::<4>::random([b, 1, 1, 1], Distribution::Bernoulli(keep), &x.device());
            x = x * mask.div_scalar(keep);
        }
        x + input
    }
}

#[derive(Module, Debug)]
struct EfficientNetB0 {
    stem: ConvBn,
    blocks: Vec<MbConv>,
    head: ConvBn,
    dropout: Dropout,
    classifier: Linear,
}

impl EfficientNetB0 {
    fn new(classes: usize, device: &Device) -> Self {
        let total: usize = STAGES.iter().map(|s| s.4).sum();
        let mut blocks = Vec::new();
        let mut cin = 32;
        for &(expand, k, stride, cout, repeats) in &STAGES {
            for r in 0..repeats {
                let drop_rate = 0.2 * blocks.len() as f64 / total as f64;
                let s = if r == 0 { stride } else { 1 };
                blocks.push(MbConv::new(cin, cout, expand, k, s, drop_rate, device));
                cin = cout;
            }
        }
        Self {
            stem: ConvBn::new(3, 32, 3, 2, 1, device),
            blocks,
            head: ConvBn::new(320, 1280, 1, 1, 1, device),
            dropout: DropoutConfig::new(0.2).init(),
            classifier: LinearConfig::new(1280, classes).init(device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = silu(self.stem.forward(x));
        for b in &self.blocks {
            x = b.forward(x);
        }
        let x = silu(self.head.forward(x)).mean_dims(&[2, 3]).flatten::<2>(1, 3);
        self.classifier.forward(self.dropout.forward(x))
    }
}

/// The median of `iters` timed calls after three warm-up calls; `f` returns once the device is
/// done. Three, not PyTorch's one: burn compiles and autotunes its kernels over the first calls
/// (one warm-up call left training at a third of its settled speed on lavapipe).
fn timed(iters: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..3 {
        f();
    }
    let mut times: Vec<f64> = (0..iters.max(1))
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn forward(device: &Device, batch: usize, res: usize, iters: usize) -> serde_json::Value {
    let model = EfficientNetB0::new(1000, device);
    let x = Tensor::<4>::random([batch, 3, res, res], Distribution::Normal(0.0, 1.0), device);
    let s = timed(iters, || {
        // Reading one logit back waits for the whole forward, as PyTorch's synchronize does.
        let _: f32 = model.forward(x.clone()).slice([0..1, 0..1]).into_scalar();
    });
    serde_json::json!({"framework": "burn", "what": "forward", "device": "wgpu", "batch": batch,
        "resolution": res, "seconds": s, "images_per_s": batch as f64 / s})
}

fn train(device: &Device, batch: usize, res: usize, classes: usize, iters: usize) -> serde_json::Value {
    let device = device.clone().autodiff();
    let mut model = Some(EfficientNetB0::new(classes, &device));
    let mut optim = SgdConfig::new().with_momentum(Some(MomentumConfig::new().with_momentum(0.9))).init();
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let x = Tensor::<4>::random([batch, 3, res, res], Distribution::Normal(0.0, 1.0), &device);
    let y = Tensor::<1, Int>::random([batch], Distribution::Uniform(0.0, classes as f64), &device);
    let s = timed(iters, || {
        let m = model.take().expect("the model is put back after every step");
        let loss = loss_fn.forward(m.forward(x.clone()), y.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &m);
        let m = optim.step(0.01, m, grads);
        // The loss read back, as our bench reads ours: the step has run.
        let _: f32 = loss.into_scalar();
        model = Some(m);
    });
    serde_json::json!({"framework": "burn", "what": "train", "device": "wgpu", "batch": batch,
        "resolution": res, "classes": classes, "seconds": s, "images_per_s": batch as f64 / s})
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut fwd, mut trn, mut iters) = (Vec::new(), Vec::new(), 5usize);
    let usage = "usage: burn-baseline [--forward BATCH:RES]... [--train BATCH:RES:CLASSES]... [--iters N]";
    let nums = |s: String| -> Vec<usize> {
        s.split(':').map(|v| v.parse().unwrap_or_else(|_| panic!("{v:?} is not a number; {usage}"))).collect()
    };
    while let Some(a) = args.next() {
        let v = args.next().unwrap_or_else(|| panic!("{a} needs a value; {usage}"));
        match a.as_str() {
            "--forward" => fwd.push(nums(v)),
            "--train" => trn.push(nums(v)),
            "--iters" => iters = nums(v)[0],
            _ => panic!("unknown argument {a}; {usage}"),
        }
    }
    if fwd.is_empty() && trn.is_empty() {
        fwd = vec![vec![1, 224], vec![8, 224]];
        trn = vec![vec![32, 32, 10]];
    }
    let device = Device::wgpu(DeviceKind::DefaultDevice);
    println!("{}", serde_json::json!({"burn": "0.22.1", "backend": "wgpu"}));
    for f in &fwd {
        println!("{}", forward(&device, f[0], f[1], iters));
    }
    for t in &trn {
        println!("{}", train(&device, t[0], t[1], t[2], iters));
    }
}
