// se_gate_bwd_texel: se_gate_bwd (see se_gate_bwd.wgsl) for CPU adapters, C a multiple of 4:
// d_gated and y are read as texels (vector gathers where the buffer kernel pays a per-lane loop
// per value) and a thread takes 4 channels.
//
// Bindings: 0 d_gated (N, HW, C)   texels
//           1 y       (N, HW, C)   texels
//           2 gate    (N, C)
//           3 dy      (N, HW, C)
//           4 partial (S, N, C), S = ceil(HW / ROWS)
// Thread: 4 channels of one (chunk, image); channel blocks fastest.

override N: u32;
override HW: u32;
override C: u32;
override ROWS: u32;

@group(0) @binding(0) var d_gated: texture_storage_2d<rgba32float, read>;
@group(0) @binding(1) var y: texture_storage_2d<rgba32float, read>;
@group(0) @binding(2) var<storage, read> gate: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> dy: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> partial: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    let c4 = C / 4u;
    let chunks = (HW + ROWS - 1u) / ROWS;
    if (t >= chunks * N * c4) {
        return;
    }
    let q = t % c4;
    let n = (t / c4) % N;
    let s = t / (c4 * N);
    let g = gate[n * c4 + q];
    let start = s * ROWS;
    let end = min(start + ROWS, HW);
    var acc = vec4<f32>(0.0);
    for (var i = start; i < end; i++) {
        let o = (n * HW + i) * c4 + q;
        let d = textureLoad(d_gated, texel(o));
        dy[o] = d * g;
        acc += d * textureLoad(y, texel(o));
    }
    partial[t] = acc;
}
