//! Device limits are respected, not assumed: a device with a small storage-binding limit (made the
//! way a desktop app would share its own device) runs big batches in slices with identical results,
//! and an input that cannot fit is an error naming the limit. A forward plan reports the device
//! memory it holds, and recordings are re-planned into less of it.

mod common;
use common::*;

use efficientnet_wgpu::graph::{record_planned, Recorder};
use efficientnet_wgpu::model::{Config, EfficientNet, Weights};
use efficientnet_wgpu::Error;

#[test]
#[ignore = "needs the full-size PyTorch fixtures ($EFFNET_FIXTURES, default ../shared/fixtures); scripts/test.sh includes it when they exist"]
fn batches_beyond_the_binding_limit_run_in_slices_with_identical_logits() {
    let config = Config::b0(1000);
    let (weights, _) = Weights::load(fixture("torchvision-b0/tv_b0.safetensors"), &config, None).unwrap();
    let input = rand_vec(3 * 3 * 224 * 224, 70);

    let reference = EfficientNet::new(gpu().clone(), config.clone(), &weights).unwrap();
    let want = reference.forward(&input, 3, 224, 224).unwrap();

    // 8 MiB bindings: B0's largest activation at 224 px is 96x112x112 f32 = 4.6 MiB per image.
    let small = small_binding_gpu(8 << 20);
    let model = EfficientNet::new(std::sync::Arc::new(small), config, &weights).unwrap();
    assert_eq!(model.max_batch(224, 224).unwrap(), 1);
    let got = model.forward(&input, 3, 224, 224).unwrap();
    assert_eq!(got.logits, want.logits, "sliced batch must equal the whole batch bit for bit");
    assert_eq!(got.features, want.features);

    // 448 px needs 18.4 MiB for one image: an error that says what and by how much.
    let big = rand_vec(3 * 448 * 448, 71);
    match model.forward(&big, 1, 448, 448) {
        Err(e @ Error::ExceedsDeviceLimit { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("max_storage_buffer_binding_size") && msg.contains("448x448"), "{msg}");
        }
        other => panic!("expected ExceedsDeviceLimit, got {:?}", other.map(|o| o.logits.len())),
    }
}

#[test]
fn bad_input_shapes_are_errors_not_panics() {
    let config = Config::b0(10);
    let weights = Weights::init_random(&config, 1);
    let model = EfficientNet::new(gpu().clone(), config, &weights).unwrap();
    assert!(matches!(model.forward(&[0.0; 10], 1, 32, 32), Err(Error::Shape { .. })));
    assert!(matches!(model.forward(&[], 0, 32, 32), Err(Error::InvalidArgument(_))));
    // Tiny inputs are fine: every stride-2 layer still produces at least one pixel.
    let out = model.forward(&rand_vec(2 * 3 * 5 * 3, 72), 2, 5, 3).unwrap();
    assert_eq!(out.logits.len(), 20);
    assert!(out.logits.iter().all(|v| v.is_finite()));
}

#[test]
fn a_forward_plan_reports_the_memory_it_holds() {
    let config = Config::b0(1000);
    let weights = Weights::init_random(&config, 0);
    let model = EfficientNet::new(gpu().clone(), config.clone(), &weights).unwrap();
    // BN folded: each BN's gamma and beta (two trainable parameters per channel) become one bias.
    let bn_channels: usize = config.stem_channels()
        + config.head_channels()
        + config
            .blocks()
            .iter()
            .map(|b| if b.has_expand() { 2 * b.expanded_ch } else { b.expanded_ch } + b.out_ch)
            .sum::<usize>();
    assert_eq!(model.weight_bytes(), 4 * (config.param_count() - bn_channels) as u64);

    // The activations: at least the input and the largest tensor; fewer bytes than the pass's
    // kernels move (each tensor is written once and read at least once), as buffers are reused
    // once their tensors die.
    let (n, res) = (2, 224);
    let plan = model.plan(n, res, res, &[]).unwrap();
    let floor = 4 * n * (3 * res * res + config.largest_activation(res, res));
    assert!(plan.activation_bytes >= floor as u64, "{} < {floor}", plan.activation_bytes);
    let all: u64 = plan.dispatches.iter().map(|d| d.bytes).sum();
    assert!(plan.activation_bytes < all, "{} >= {all} (no reuse?)", plan.activation_bytes);
}

#[test]
fn a_recording_is_replanned_where_greedy_reuse_wastes_memory() {
    // A (100 KiB) is released, then B (30 KiB) takes A's buffer under greedy reuse (it is within
    // 4x), so C (100 KiB, alive with B) needs a second 100 KiB buffer. The plan puts A and C in
    // one buffer and B in its own.
    let (big, small) = (25_600, 7_680);
    let mut passes = Vec::new();
    let bytes = record_planned(gpu(), |mut r: Recorder| {
        let a = r.alloc(big)?;
        r.release(a);
        let b = r.alloc(small)?;
        let c = r.alloc(big)?;
        assert!(!b.same_buffer(&c), "two live tensors in one buffer");
        r.release(b);
        r.release(c);
        passes.push(r.allocated_bytes);
        Ok((r.allocated_bytes, r))
    })
    .unwrap();
    assert_eq!(passes, vec![2 * 4 * big as u64, 4 * (big + small) as u64]);
    assert_eq!(bytes, passes[1]);

    // A second pass that asks for other sizes than the first is an error, not a wrong buffer.
    let mut first = Recorder::new(gpu());
    let a = first.alloc(big).unwrap();
    first.release(a);
    let mut second = Recorder::planned(gpu(), first.plan().unwrap()).unwrap();
    let e = second.alloc(small).expect_err("a diverging recording");
    assert!(e.to_string().contains("diverged"), "{e}");
}
