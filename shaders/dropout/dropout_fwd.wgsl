// dropout_fwd: inverted dropout, y = x * keep(i) / (1 - RATE), keep(i) = uniform01(seed[0], SALT, i)
// >= RATE. The mask is a pure function of (step seed, layer salt, element index), so nothing is
// stored: the SAME kernel with the same seed and salt, applied to dy, is the backward
// (dx = dy * keep(i) / (1 - RATE)). RATE = 0 gives y = x exactly (uniform01 >= 0 always).
//
// Bindings: 0 x (TOTAL), 1 seed (u32 array, seed[0] = the step's seed), 2 y (TOTAL).
// Thread: one element.

override TOTAL: u32;
override RATE: f32 = 0.0;
override SALT: u32 = 0u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> seed: array<u32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i >= TOTAL) {
        return;
    }
    let keep = uniform01(seed[0], SALT, i) >= RATE;
    y[i] = select(0.0, x[i] / (1.0 - RATE), keep);
}
