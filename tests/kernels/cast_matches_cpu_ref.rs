use crate::common::*;
use efficientnet_wgpu::cpu_ref;
use efficientnet_wgpu::gpu::{Dtype, Kernel};
use efficientnet_wgpu::ops::cast;

#[test]
fn to_f16_rounds_to_a_neighbour_and_to_f32_is_exact() {
    // Values across f16's range: normal, tiny (subnormal in f16), the largest finite, a tie, and
    // beyond the range (saturating at ±65504 where WGSL's own conversion is indeterminate).
    let mut x: Vec<f32> = rand_vec(1001, 60).iter().map(|v| v * 300.0).collect();
    x.extend([1e-6, -3e-7, 65504.0, -65504.0, 0.0, 1.0 + 1.0 / 2048.0, 70000.0, -1e9, 65519.0]);
    let want = cpu_ref::cast_to_f16(&x);
    let (xg, h) = (upload(&x), empty_f16(x.len()));
    let d = cast(gpu(), &xg, &h).unwrap();
    assert_eq!(d.kernel, Kernel::CastToF16);
    let got = run_and_read(&[d], &h);
    // WGSL lets f32 → f16 round to either neighbour: the result must be an f16 value within one
    // f16 ulp of x, and equal to round-to-nearest-even wherever x is not within an ulp of a tie.
    for (i, ((&g, &w), &v)) in got.iter().zip(&want).zip(&x).enumerate() {
        if v.abs() > 65504.0 {
            assert_eq!(g, 65504f32.copysign(v), "element {i}: {v} must saturate");
            continue;
        }
        let ulp = cpu_ref::f16_ulp(v);
        assert!(g == w || (g.is_finite() && (g - v).abs() < ulp), "element {i}: {v} -> {g}, want {w}");
    }
    // Back to f32: exact.
    let z = gpu().empty(x.len(), "z").unwrap();
    let d = cast(gpu(), &h, &z).unwrap();
    assert_eq!(d.kernel, Kernel::CastToF32);
    assert_eq!(run_and_read(&[d], &z), got);
    assert_eq!(z.dtype, Dtype::F32);
}

#[test]
fn cast_checks_lengths_and_types() {
    let x = upload(&[1.0, 2.0]);
    assert!(cast(gpu(), &x, &empty_f16(3)).is_err(), "length mismatch");
    assert!(cast(gpu(), &x, &empty(2)).is_err(), "f32 to f32 is not a conversion");
}
