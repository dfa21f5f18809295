// bilinear_resize_fwd: resamples a window of an NCHW image to OH x OW with PyTorch's bilinear
// semantics (align_corners = False), then applies a per-channel affine y = y * mul[c] + add[c]
// (ImageNet mean/std normalisation, or identity).
//
// The window starts at (Y0, X0) source pixels and covers RATIO_H x RATIO_W source pixels per
// output pixel, so one kernel does `F.interpolate(scale_factor=s)` (ratio 1/s), a resize to a size
// (ratio in/out), and the center crop of the preprocessing (a window offset).
// ANTIALIAS = 1 widens the triangle filter to the downscale ratio when shrinking (PyTorch's
// `antialias=True`, PIL's bilinear), so photos shrunk by large factors do not alias.
//
// Bindings: 0 x (N, C, IH, IW), 1 affine (2 * C: C multipliers then C addends), 2 y (N, C, OH, OW)
// Thread: one output element.

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
override ANTIALIAS: u32 = 0u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> affine: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

// Plain bilinear: the two nearest source samples and their weights along one axis.
fn linear_taps(dst: u32, start: f32, ratio: f32, size: u32) -> vec3<f32> {
    let src = max(start + (f32(dst) + 0.5) * ratio - 0.5, 0.0);
    let i0 = min(u32(floor(src)), size - 1u);
    let i1 = min(i0 + 1u, size - 1u);
    let l1 = min(src - f32(i0), 1.0);
    return vec3<f32>(f32(i0), f32(i1), l1);
}

// Antialiased: triangle filter of half-width max(ratio, 1) around the output pixel's center.
fn aa_weight(i: u32, center: f32, inv_scale: f32) -> f32 {
    let d = abs((f32(i) - center + 0.5) * inv_scale);
    return max(0.0, 1.0 - d);
}

fn aa_range(dst: u32, start: f32, ratio: f32, size: u32) -> vec2<u32> {
    let support = max(ratio, 1.0);
    let center = start + (f32(dst) + 0.5) * ratio;
    let lo = u32(max(center - support + 0.5, 0.0));
    let hi = min(u32(max(center + support + 0.5, 0.0)), size);
    return vec2<u32>(lo, max(hi, lo + 1u));
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    if (t >= N * C * OH * OW) {
        return;
    }
    let ox = t % OW;
    let oy = (t / OW) % OH;
    let nc = t / (OW * OH);
    let c = nc % C;
    let base = nc * IH * IW;
    var v = 0.0;
    if (ANTIALIAS == 1u && (RATIO_H > 1.0 || RATIO_W > 1.0)) {
        let ry = aa_range(oy, Y0, RATIO_H, IH);
        let rx = aa_range(ox, X0, RATIO_W, IW);
        let cy = Y0 + (f32(oy) + 0.5) * RATIO_H;
        let cx = X0 + (f32(ox) + 0.5) * RATIO_W;
        let isy = 1.0 / max(RATIO_H, 1.0);
        let isx = 1.0 / max(RATIO_W, 1.0);
        var wsum_x = 0.0;
        for (var ix = rx.x; ix < rx.y; ix++) {
            wsum_x += aa_weight(ix, cx, isx);
        }
        var wsum_y = 0.0;
        for (var iy = ry.x; iy < ry.y; iy++) {
            let wy = aa_weight(iy, cy, isy);
            wsum_y += wy;
            var row = 0.0;
            for (var ix = rx.x; ix < rx.y; ix++) {
                row += aa_weight(ix, cx, isx) * x[base + iy * IW + ix];
            }
            v += wy * row;
        }
        v = v / (wsum_x * wsum_y);
    } else {
        let ty = linear_taps(oy, Y0, RATIO_H, IH);
        let tx = linear_taps(ox, X0, RATIO_W, IW);
        let y0 = u32(ty.x) * IW;
        let y1 = u32(ty.y) * IW;
        let x0 = u32(tx.x);
        let x1 = u32(tx.y);
        let top = x[base + y0 + x0] * (1.0 - tx.z) + x[base + y0 + x1] * tx.z;
        let bottom = x[base + y1 + x0] * (1.0 - tx.z) + x[base + y1 + x1] * tx.z;
        v = top * (1.0 - ty.z) + bottom * ty.z;
    }
    y[t] = v * affine[c] + affine[C + c];
}
