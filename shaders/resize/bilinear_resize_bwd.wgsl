// bilinear_resize_bwd: the input gradient of bilinear_resize_fwd with ANTIALIAS = 0 (plain bilinear,
// align_corners = False, with its Y0/X0/RATIO window):
//   dx[n, c, iy, ix] = mul[c] * sum over output pixels (oy, ox) whose 2 x 2 taps include (iy, ix)
//                      of dy[n, c, oy, ox] * wy(oy, iy) * wx(ox, ix)
// in gather form: the invocation of input pixel (iy, ix) finds the contiguous ranges of output
// rows/columns that tap it (see out_range) and recomputes their tap weights with the forward's
// formulas, clamping included.
// Deterministic, no atomics.
//
// Bindings: 0 dy     (N, C, OH, OW)
//           1 affine (2 * C: C multipliers then C addends; only the multipliers matter here)
//           2 dx     (N, C, IH, IW)
// Thread: one dx element, ix fastest (contiguous NCHW writes).

override N: u32;
override C: u32;
override IH: u32;
override IW: u32;
override OH: u32;
override OW: u32;
override Y0: f32 = 0.0;
override X0: f32 = 0.0;
override RATIO_H: f32;
override RATIO_W: f32;

@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> affine: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;

// The forward's taps along one axis: (i0, i1, weight of i1), exactly as bilinear_resize_fwd.
fn linear_taps(dst: u32, start: f32, ratio: f32, size: u32) -> vec3<f32> {
    let src = max(start + (f32(dst) + 0.5) * ratio - 0.5, 0.0);
    let i0 = min(u32(floor(src)), size - 1u);
    let i1 = min(i0 + 1u, size - 1u);
    let l1 = min(src - f32(i0), 1.0);
    return vec3<f32>(f32(i0), f32(i1), l1);
}

// Weight of source index i in the taps of one output index (both taps when they coincide).
fn tap_weight(i: u32, taps: vec3<f32>) -> f32 {
    return select(0.0, 1.0 - taps.z, u32(taps.x) == i) + select(0.0, taps.z, u32(taps.y) == i);
}

fn taps_include(i: u32, taps: vec3<f32>) -> bool {
    return u32(taps.x) == i || u32(taps.y) == i;
}

// Output indices [lo, hi) whose taps include source index i. The source coordinate is monotone in
// the output index, so these form one contiguous range: start from the outputs whose coordinate
// src = start + (o + 0.5) * ratio - 0.5 lies in [i - 1, i + 1), widened by a margin against
// rounding (the first and last source indices also take every output clamped onto them), then
// trim the ends with the forward's own taps so that the range is exact.
fn out_range(i: u32, start: f32, ratio: f32, size_in: u32, size_out: u32) -> vec2<u32> {
    let lo_f = (f32(i) - 0.5 - start) / ratio - 0.5;
    let hi_f = (f32(i) + 1.5 - start) / ratio - 0.5;
    var lo = u32(clamp(floor(lo_f) - 1.0, 0.0, f32(size_out)));
    var hi = u32(clamp(floor(hi_f) + 2.0, 0.0, f32(size_out)));
    if (i == 0u) {
        lo = 0u;
    }
    if (i == size_in - 1u) {
        hi = size_out;
    }
    while (lo < hi && !taps_include(i, linear_taps(lo, start, ratio, size_in))) {
        lo++;
    }
    while (hi > lo && !taps_include(i, linear_taps(hi - 1u, start, ratio, size_in))) {
        hi--;
    }
    return vec2<u32>(lo, hi);
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    if (t >= N * C * IH * IW) {
        return;
    }
    let ix = t % IW;
    let iy = (t / IW) % IH;
    let nc = t / (IW * IH);
    let c = nc % C;
    let base = nc * OH * OW;
    let ry = out_range(iy, Y0, RATIO_H, IH, OH);
    let rx = out_range(ix, X0, RATIO_W, IW, OW);
    var v = 0.0;
    for (var oy = ry.x; oy < ry.y; oy++) {
        let wy = tap_weight(iy, linear_taps(oy, Y0, RATIO_H, IH));
        var row = 0.0;
        for (var ox = rx.x; ox < rx.y; ox++) {
            let wx = tap_weight(ix, linear_taps(ox, X0, RATIO_W, IW));
            row += wx * dy[base + oy * OW + ox];
        }
        v += wy * row;
    }
    dx[t] = v * affine[c];
}
