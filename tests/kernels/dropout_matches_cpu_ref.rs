use crate::common::*;
use efficientnet_wgpu::cpu_ref;
use efficientnet_wgpu::ops::{dropout_fwd, DropoutParams};

fn run(p: &DropoutParams, x: &[f32], seed: u32) -> Vec<f32> {
    let (xg, y) = (upload(x), empty(x.len()));
    let sg = gpu().upload_u32(&[seed], "seed").unwrap();
    run_and_read(&[dropout_fwd(gpu(), p, &xg, &sg, &y).unwrap()], &y)
}

/// The mask must be bit-identical to the CPU twin's; kept values within atol 0, rtol 1e-6.
fn check(p: &DropoutParams, x: &[f32], seed: u32) -> Vec<f32> {
    let got = run(p, x, seed);
    let want = cpu_ref::dropout_fwd(p, x, seed);
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(*g == 0.0, *w == 0.0, "rate {} element {i}: mask differs ({g} vs {w})", p.rate);
    }
    assert_close(&format!("rate {}", p.rate), &got, &want, 0.0, 1e-6);
    got
}

#[test]
fn mask_matches_cpu_twin_and_is_its_own_backward() {
    let total = 4099;
    let x: Vec<f32> = rand_vec(total, 90).iter().map(|v| v + 2.0).collect(); // never 0
    for rate in [0.1f32, 0.5] {
        let p = DropoutParams { total, rate, salt: 3 };
        let y = check(&p, &x, 12345);
        let dropped = y.iter().filter(|v| **v == 0.0).count() as f32 / total as f32;
        assert!((dropped - rate).abs() < 0.05, "rate {rate}: dropped fraction {dropped}");
        // Backward: the same kernel on dy zeroes the same elements and scales the rest alike.
        let dy: Vec<f32> = rand_vec(total, 91).iter().map(|v| v - 2.0).collect();
        let dx = check(&p, &dy, 12345);
        for i in 0..total {
            assert_eq!(y[i] == 0.0, dx[i] == 0.0, "element {i}");
        }
        // Another seed or salt gives another mask.
        assert_ne!(run(&p, &x, 12346), y);
        assert_ne!(run(&DropoutParams { salt: 4, ..p.clone() }, &x, 12345), y);
    }
    let p = DropoutParams { total, rate: 0.0, salt: 3 };
    assert_eq!(run(&p, &x, 7), x, "rate 0 is the identity");
}

#[test]
fn folded_grid_over_65535_workgroups() {
    // More than 65,535 workgroups of 64: the dispatch is folded into a 2-D grid.
    let total = 65_535 * 64 + 1000;
    let x: Vec<f32> = rand_vec(total, 92).iter().map(|v| v + 2.0).collect();
    check(&DropoutParams { total, rate: 0.25, salt: 9 }, &x, 4242);
}
