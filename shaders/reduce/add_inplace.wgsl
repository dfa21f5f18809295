// add_inplace: y[i] += x[i] for i < TOTAL (accumulates a gradient into one that already holds
// another branch's contribution).
//
// Bindings: 0 x (TOTAL)
//           1 y (TOTAL)   read and written
// Thread: 4 consecutive elements (fewer invocations, 4 independent loads in flight; contiguous
// per warp on discrete GPUs). Tail elements past TOTAL are skipped.

override TOTAL: u32;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;

const ELEMS: u32 = 4u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    let i0 = t * ELEMS;
    if (i0 + ELEMS <= TOTAL) {
        let xv = vec4<f32>(x[i0], x[i0 + 1u], x[i0 + 2u], x[i0 + 3u]);
        let yv = vec4<f32>(y[i0], y[i0 + 1u], y[i0 + 2u], y[i0 + 3u]);
        let s = yv + xv;
        y[i0] = s.x;
        y[i0 + 1u] = s.y;
        y[i0 + 2u] = s.z;
        y[i0 + 3u] = s.w;
        return;
    }
    for (var i = i0; i < TOTAL; i++) {
        y[i] = y[i] + x[i];
    }
}
