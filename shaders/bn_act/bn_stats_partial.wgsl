// bn_stats_partial: first stage of training-mode BatchNorm statistics over the M = N*H*W rows of
// an NHWC tensor. Each invocation summarises one chunk of CHUNK rows of one channel as (chunk mean,
// M2 = sum (z - chunk mean)^2), computed in two passes over the chunk: subtracting the chunk's own
// mean first keeps M2 accurate when the values share a large offset, where E[z^2] - E[z]^2 in f32
// cancels catastrophically. Both passes also work relative to the chunk's first value k (exact
// differences of nearby floats), so the sums hold small numbers and the chunk mean k + sum / n is
// rounded once, not once per row. bn_stats_finish merges the chunks in a fixed order (Chan et
// al.), so the statistics are deterministic without atomics.
//
// Bindings: 0 z        (M, C)      the BatchNorm input
//           1 partial  (S, 2, C)   S = ceil(M / CHUNK); [s][0][c] = chunk mean, [s][1][c] = M2
// Thread: one (chunk s, channel c), channels fastest, so neighbouring invocations read
// neighbouring addresses of each row (coalesced on discrete GPUs). The last chunk may be shorter.

override M: u32;
override C: u32;
override CHUNK: u32;

@group(0) @binding(0) var<storage, read> z: array<f32>;
@group(0) @binding(1) var<storage, read_write> partial: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    let chunks = (M + CHUNK - 1u) / CHUNK;
    if (t >= chunks * C) {
        return;
    }
    let c = t % C;
    let s = t / C;
    let start = s * CHUNK;
    let end = min(start + CHUNK, M);

    let k = z[start * C + c];
    var sum = 0.0;
    for (var r = start; r < end; r++) {
        sum += z[r * C + c] - k;
    }
    let mean_k = sum / f32(end - start); // chunk mean - k
    var m2 = 0.0;
    for (var r = start; r < end; r++) {
        let d = (z[r * C + c] - k) - mean_k;
        m2 += d * d;
    }
    partial[(s * 2u) * C + c] = k + mean_k;
    partial[(s * 2u + 1u) * C + c] = m2;
}

// tiled: the same partials for GPUs, where one invocation per (chunk, channel) leaves too few
// threads to hide memory latency on the big early layers (512 chunks x 16 channels). A workgroup
// takes one chunk and CH consecutive channels; its LANES row lanes read rows start + lane,
// start + lane + LANES, ... (neighbouring threads: neighbouring channels of one row), and the
// lanes' sums meet in workgroup memory in lane order, so the result is still deterministic.
// Same bindings and partial layout: bn_stats_finish is unchanged.
const CH: u32 = 16u;
const LANES: u32 = 4u;
var<workgroup> lane_sums: array<f32, 64>;

// The sum over the 4 lanes of channel lane j, in lane order.
fn lanes_total(j: u32) -> f32 {
    return ((lane_sums[j] + lane_sums[CH + j]) + lane_sums[2u * CH + j]) + lane_sums[3u * CH + j];
}

@compute @workgroup_size(WG)
fn tiled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
    let cblocks = (C + CH - 1u) / CH;
    let chunks = (M + CHUNK - 1u) / CHUNK;
    let g = wid.x + wid.y * nwg.x;
    if (g >= chunks * cblocks) {
        return;
    }
    let s = g / cblocks;
    let j = lid % CH;
    let c = (g % cblocks) * CH + j;
    let cc = min(c, C - 1u); // channels past C load a valid one and store nothing
    let lane = lid / CH;
    let start = s * CHUNK;
    let end = min(start + CHUNK, M);

    let k = z[start * C + cc];
    var sum = 0.0;
    for (var r = start + lane; r < end; r += LANES) {
        sum += z[r * C + cc] - k;
    }
    lane_sums[lid] = sum;
    workgroupBarrier();
    let mean_k = lanes_total(j) / f32(end - start);
    workgroupBarrier();
    var m2 = 0.0;
    for (var r = start + lane; r < end; r += LANES) {
        let d = (z[r * C + cc] - k) - mean_k;
        m2 += d * d;
    }
    lane_sums[lid] = m2;
    workgroupBarrier();
    if (lane == 0u && c < C) {
        partial[(s * 2u) * C + c] = k + mean_k;
        partial[(s * 2u + 1u) * C + c] = lanes_total(j);
    }
}
