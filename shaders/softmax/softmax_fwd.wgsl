// softmax_fwd: row-wise softmax with the max subtracted first (no overflow for any logits).
//
// Bindings: 0 x (ROWS, COLS), 1 y (ROWS, COLS). Thread: one row (rows are images: few and short).

override ROWS: u32;
override COLS: u32;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = linear_id(gid, nwg);
    if (r >= ROWS) {
        return;
    }
    let base = r * COLS;
    var m = x[base];
    for (var i = 1u; i < COLS; i++) {
        m = max(m, x[base + i]);
    }
    var s = 0.0;
    for (var i = 0u; i < COLS; i++) {
        s += exp(x[base + i] - m);
    }
    let inv = 1.0 / s;
    for (var i = 0u; i < COLS; i++) {
        y[base + i] = exp(x[base + i] - m) * inv;
    }
}
