//! One model shared by several threads: each execution (upload, forward, readback) is atomic, so
//! every result is bit-identical to the same input run alone, whatever runs beside it.

mod common;
use common::*;

use efficientnet_wgpu::model::{Config, EfficientNet, Weights};

#[test]
fn four_threads_of_mixed_batches_get_the_results_of_their_own_inputs() {
    let gpu = gpu();
    let config = Config::custom(0.25, 0.5, 32, 0.2, 10);
    let model = EfficientNet::new(gpu.clone(), config.clone(), &Weights::init_random(&config, 1)).unwrap();
    let (h, w) = (24, 24);
    // 20 calls per thread, batch sizes 1 to 3 (same-sized calls share a cached plan), each input
    // distinct; the answer of each run alone first.
    let calls: Vec<Vec<(usize, Vec<f32>)>> = (0..4)
        .map(|t| {
            (0..20).map(|c| (1 + (t + c) % 3, rand_vec((1 + (t + c) % 3) * 3 * h * w, (100 * t + c) as u64))).collect()
        })
        .collect();
    let alone: Vec<Vec<Vec<f32>>> = calls
        .iter()
        .map(|thread| thread.iter().map(|(n, x)| model.forward(x, *n, h, w).unwrap().logits).collect())
        .collect();
    let together: Vec<Vec<Vec<f32>>> = std::thread::scope(|s| {
        let handles: Vec<_> = calls
            .iter()
            .map(|thread| {
                let model = &model;
                s.spawn(move || thread.iter().map(|(n, x)| model.forward(x, *n, h, w).unwrap().logits).collect())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (t, (a, b)) in alone.iter().zip(&together).enumerate() {
        for (c, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(x == y, "thread {t}, call {c}: logits differ from the same input run alone");
        }
    }
}

#[test]
fn the_plan_cache_keeps_the_most_recently_used_plans_within_its_budget() {
    let gpu = gpu();
    let config = Config::custom(0.25, 0.5, 32, 0.2, 10);
    let model = EfficientNet::new(gpu.clone(), config.clone(), &Weights::init_random(&config, 2)).unwrap();
    let run = |n: usize| model.forward(&rand_vec(n * 3 * 24 * 24, n as u64), n, 24, 24).unwrap().logits;
    let first = run(1);
    run(2);
    run(3);
    let held = model.cached_plans();
    assert_eq!(held.iter().map(|p| p.0 .0).collect::<Vec<_>>(), [3, 2, 1], "every plan fits the default budget");
    // A budget for about two plans of these sizes keeps the two most recently used.
    let budget = held[0].1 + held[1].1;
    let model = model.with_plan_budget(budget);
    assert_eq!(model.cached_plans().iter().map(|p| p.0 .0).collect::<Vec<_>>(), [3, 2]);
    let run = |n: usize| model.forward(&rand_vec(n * 3 * 24 * 24, n as u64), n, 24, 24).unwrap().logits;
    // Batch 1 is recorded again (the same result), and the least recently used, batch 2, goes.
    assert_eq!(run(1), first);
    assert_eq!(model.cached_plans().iter().map(|p| p.0 .0).collect::<Vec<_>>(), [1, 3]);
    assert!(model.cached_plans().iter().map(|p| p.1).sum::<u64>() <= budget);
}
