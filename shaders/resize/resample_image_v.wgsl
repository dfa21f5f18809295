// resample_image_v: the vertical pass of the preprocessing's separable resize, after
// resample_image_h: each output pixel is the weighted sum of its taps over the horizontal pass's
// rows, rounded to 8 bits, scaled to [0, 1] and normalised per channel (y = v * mul[c] + add[c]).
//
// Bindings: 0 across (3, ROWS, RES), 1 taps (a header K, ROWS, 0, 0, then RES x (1 + K): first
// row relative to the horizontal pass's first, then K weights), 2 affine (3 multipliers, 3
// addends), 3 y (3, RES, RES). K and ROWS come from the header, as in resample_image_h.
// Thread: one output element.

override RES: u32;

@group(0) @binding(0) var<storage, read> across: array<f32>;
@group(0) @binding(1) var<storage, read> taps: array<f32>;
@group(0) @binding(2) var<storage, read> affine: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    if (t >= 3u * RES * RES) {
        return;
    }
    let ox = t % RES;
    let oy = (t / RES) % RES;
    let c = t / (RES * RES);
    let K = u32(taps[0]);
    let ROWS = u32(taps[1]);
    let base = 4u + oy * (1u + K);
    let first = u32(taps[base]);
    var sum = 0.0;
    for (var k = 0u; k < K; k++) {
        // Padding taps have weight 0; their row is clamped to stay inside the pass's rows.
        sum += taps[base + 1u + k] * across[(c * ROWS + min(first + k, ROWS - 1u)) * RES + ox];
    }
    let v = clamp(floor(sum + 0.5), 0.0, 255.0) / 255.0;
    y[t] = v * affine[c] + affine[3u + c];
}
