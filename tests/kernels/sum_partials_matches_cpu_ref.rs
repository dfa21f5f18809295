use crate::common::*;
use efficientnet_wgpu::cpu_ref;
use efficientnet_wgpu::ops::{sum_partials, SumPartialsParams};

/// Runs sum_partials into `out` (initialised with `init`) and checks it against the twin. Each
/// element is a sum of `parts` values in [-1, 1): f32 rounding grows at most ~parts * 6e-8 * |sum|,
/// so atol 1e-6 * sqrt(parts) + rtol 1e-5 leaves a wide margin over that yet catches any missing,
/// doubled or misplaced term (each is ~0.5).
fn check(p: &SumPartialsParams, seed: u64) {
    let partial = rand_vec(p.partial_len(), seed);
    let init = rand_vec(p.len, seed + 1);
    let mut want = cpu_ref::sum_partials(p, &partial);
    if p.accumulate {
        want.iter_mut().zip(&init).for_each(|(w, i)| *w += i);
    }
    let (pg, out) = (upload(&partial), upload(&init));
    let got = run_and_read(&[sum_partials(gpu(), p, &pg, &out).unwrap()], &out);
    let atol = 1e-6 * (p.parts.max(1) as f32).sqrt();
    assert_close(&format!("{p:?}"), &got, &want, atol, 1e-5);
}

#[test]
fn odd_part_counts_and_len_not_multiple_of_4() {
    for (parts, len) in [(1, 1), (2, 5), (7, 1001), (8, 4), (13, 258)] {
        check(&SumPartialsParams::new(parts, len), 100 + parts as u64);
    }
}

#[test]
fn scale_and_accumulate() {
    let p = SumPartialsParams { parts: 9, len: 333, scale: 0.25, accumulate: true };
    check(&p, 110);
    let p = SumPartialsParams { parts: 4, len: 70, scale: -1.0 / 3.0, accumulate: false };
    check(&p, 111);
}

#[test]
fn zero_parts_gives_zero_or_leaves_out_unchanged() {
    check(&SumPartialsParams::new(0, 10), 120);
    check(&SumPartialsParams { parts: 0, len: 10, scale: 1.0, accumulate: true }, 121);
}

#[test]
fn writes_only_its_range_of_a_larger_buffer() {
    // The output is a range of a flat buffer (as parameter gradients are): 64 elements = 256 bytes
    // in, the usual storage offset alignment; the elements around it must stay untouched.
    let p = SumPartialsParams { parts: 3, len: 61, scale: 2.0, accumulate: true };
    let partial = rand_vec(p.partial_len(), 130);
    let init = rand_vec(200, 131);
    let flat = upload(&init);
    let out = flat.slice(64, p.len);
    let pg = upload(&partial);
    let got = run_and_read(&[sum_partials(gpu(), &p, &pg, &out).unwrap()], &flat);
    let mut want = init.clone();
    for (i, v) in cpu_ref::sum_partials(&p, &partial).into_iter().enumerate() {
        want[64 + i] += v;
    }
    assert_close("sliced output", &got, &want, 1e-6, 1e-5);
    assert_eq!(&got[..64], &init[..64]);
    assert_eq!(&got[64 + p.len..], &init[64 + p.len..]);
}

#[test]
fn adds_parts_in_a_fixed_order_bit_identically() {
    let p = SumPartialsParams::new(31, 517);
    let partial = rand_vec(p.partial_len(), 140);
    let pg = upload(&partial);
    let (a, b) = (empty(p.len), empty(p.len));
    let ra = run_and_read(&[sum_partials(gpu(), &p, &pg, &a).unwrap()], &a);
    let rb = run_and_read(&[sum_partials(gpu(), &p, &pg, &b).unwrap()], &b);
    assert!(ra.iter().zip(&rb).all(|(x, y)| x.to_bits() == y.to_bits()));
    // In order s = 0, 1, ... in f32, as the kernel documents.
    let seq: Vec<f32> = (0..p.len).map(|i| (0..p.parts).fold(0f32, |acc, s| acc + partial[s * p.len + i])).collect();
    assert!(ra.iter().zip(&seq).all(|(x, y)| x.to_bits() == y.to_bits()), "not the sequential f32 sum");
}

#[test]
fn rejects_short_buffers_and_aliasing() {
    let p = SumPartialsParams::new(3, 10);
    let (pg, out) = (empty(29), empty(10));
    assert!(sum_partials(gpu(), &p, &pg, &out).is_err());
    let pg = empty(30);
    assert!(sum_partials(gpu(), &p, &pg, &empty(9)).is_err());
    assert!(sum_partials(gpu(), &p, &pg, &pg.slice(0, 10)).is_err());
}
