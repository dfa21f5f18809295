// se_gate_bwd: backward of the squeeze-excite gate g applied to y (gated = y * g[n, c], fused into
// the project conv's input read in the forward). Given d_gated, the gradient of the gated tensor
// (gemm_bwd_data's output), it writes dy = d_gated * g and one partial sum per chunk of rows of
// dg = sum over H*W of d_gated * y; sum_partials finishes dg in a fixed order.
//
// Bindings: 0 d_gated (N, HW, C)   1 y (N, HW, C)   2 gate (N, C)
//           3 dy      (N, HW, C)   4 partial (S, N, C), S = ceil(HW / ROWS)
// Thread: one channel of one (chunk, image); channels fastest (contiguous in NHWC).

override N: u32;
override HW: u32;
override C: u32;
override ROWS: u32;

@group(0) @binding(0) var<storage, read> d_gated: array<f32>;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read> gate: array<f32>;
@group(0) @binding(3) var<storage, read_write> dy: array<f32>;
@group(0) @binding(4) var<storage, read_write> partial: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    let chunks = (HW + ROWS - 1u) / ROWS;
    if (t >= chunks * N * C) {
        return;
    }
    let c = t % C;
    let n = (t / C) % N;
    let s = t / (C * N);
    let g = gate[n * C + c];
    let start = s * ROWS;
    let end = min(start + ROWS, HW);
    var acc = 0.0;
    for (var i = start; i < end; i++) {
        let o = (n * HW + i) * C + c;
        let d = d_gated[o];
        dy[o] = d * g;
        acc += d * y[o];
    }
    partial[t] = acc;
}
