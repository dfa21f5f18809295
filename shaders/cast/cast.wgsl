// cast: the f16 inference path's conversions at its edges. `to_f16` rounds the f32 network input
// to f16 (to a neighbouring f16 value; beyond ±65504 it saturates, see `to_store`); `to_f32`
// widens the f16 logits for the f32 softmax and readback. Compiled with Store = f16.
//
// to_f16: 0 x (LEN) f32   1 y (LEN) f16
// to_f32: 0 h (LEN) f16   1 z (LEN) f32
// Thread: one element.

override LEN: u32;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<Store>;
@group(0) @binding(0) var<storage, read> h: array<Store>;
@group(0) @binding(1) var<storage, read_write> z: array<f32>;

@compute @workgroup_size(WG)
fn to_f16(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    if (t < LEN) {
        y[t] = to_store(x[t]);
    }
}

@compute @workgroup_size(WG)
fn to_f32(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    if (t < LEN) {
        z[t] = f32(h[t]);
    }
}
