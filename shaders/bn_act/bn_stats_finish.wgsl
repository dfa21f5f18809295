// bn_stats_finish: second stage of training-mode BatchNorm statistics. Merges the per-chunk
// (mean, M2) of bn_stats_partial in chunk order with Chan et al.'s parallel formula
//     n = na + nb, delta = mean_b - mean_a, mean = mean_a + delta * nb / n,
//     M2 = M2_a + M2_b + delta^2 * na * nb / n
// (chunk sizes follow from CHUNK and M), in a frame shifted by chunk 0's mean so that the running
// mean and the deltas are small numbers (with a large common offset, a running mean near the
// offset would round at every step), then writes everything the forward and backward need:
//     var = M2 / M (biased, used to normalise), invstd = 1 / sqrt(var + EPS),
//     scale = gamma * invstd, shift = beta - mean * scale,
// and, when UPDATE_RUNNING = 1, PyTorch's running-statistics update with the unbiased variance:
//     running_mean = (1 - MOMENTUM) * running_mean + MOMENTUM * mean
//     running_var  = (1 - MOMENTUM) * running_var  + MOMENTUM * M2 / (M - 1)
//
// Bindings: 0 partial      (S, 2, C)  from bn_stats_partial, a GEMM epilogue (gemm_fwd_bn_stats_*)
//                                     or merge below; S = ceil(M / CHUNK)
//           1 gamma_beta   (2C)       gamma then beta
//           2 running      (2C)       running mean then running var, updated in place
//           3 stats        (2C)       batch mean then invstd (saved for the backward)
//           4 scale_shift  (2C)       scale then shift (bn_act_fwd's input)
// Thread: one channel. The loop over S chunks is sequential and in a fixed order: deterministic.

override M: u32;
override C: u32;
override CHUNK: u32;
override EPS: f32;
override MOMENTUM: f32 = 0.1;
override UPDATE_RUNNING: u32 = 0u;

@group(0) @binding(0) var<storage, read> partial: array<f32>;
@group(0) @binding(1) var<storage, read> gamma_beta: array<f32>;
@group(0) @binding(2) var<storage, read_write> running: array<f32>;
@group(0) @binding(3) var<storage, read_write> stats: array<f32>;
@group(0) @binding(4) var<storage, read_write> scale_shift: array<f32>;

// Chan's merge, in chunk order, of chunks s0 .. s1 - 1 of channel c (CHUNK rows each, the last
// chunk of all ending at row M): their (mean, M2).
fn merge_chunks(c: u32, s0: u32, s1: u32) -> vec2<f32> {
    let shift = partial[(s0 * 2u) * C + c];
    var n = f32(min(CHUNK, M - s0 * CHUNK));
    var mean_rel = 0.0; // mean - shift
    var m2 = partial[(s0 * 2u + 1u) * C + c];
    for (var s = s0 + 1u; s < s1; s++) {
        let nb = f32(min(CHUNK, M - s * CHUNK));
        let mean_b = partial[(s * 2u) * C + c] - shift;
        let m2_b = partial[(s * 2u + 1u) * C + c];
        let total = n + nb;
        let delta = mean_b - mean_rel;
        let wb = nb / total;
        mean_rel += delta * wb;
        m2 += m2_b + delta * delta * n * wb;
        n = total;
    }
    return vec2<f32>(shift + mean_rel, m2);
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let c = linear_id(gid, nwg);
    if (c >= C) {
        return;
    }
    let merged = merge_chunks(c, 0u, (M + CHUNK - 1u) / CHUNK);
    let mean = merged.x;
    let m2 = merged.y;
    let variance = m2 / f32(M);
    let invstd = 1.0 / sqrt(variance + EPS);
    stats[c] = mean;
    stats[C + c] = invstd;
    let scale = gamma_beta[c] * invstd;
    scale_shift[c] = scale;
    scale_shift[C + c] = gamma_beta[C + c] - mean * scale;
    if (UPDATE_RUNNING == 1u) {
        // The host rejects M < 2 (the unbiased variance is undefined); max() keeps this finite.
        let unbiased = m2 / f32(max(M, 2u) - 1u);
        running[c] = (1.0 - MOMENTUM) * running[c] + MOMENTUM * mean;
        running[C + c] = (1.0 - MOMENTUM) * running[C + c] + MOMENTUM * unbiased;
    }
}

// merge: a middle stage where the partials are too many for one sequential merge per channel
// (the GEMM epilogue's partials: one per 16 or 64 rows). Merges GROUP consecutive chunks into
// one, in chunk order: `merged` is the partial layout with chunks of GROUP * CHUNK rows.
// Bindings: 0 partial (S, 2, C)   1 merged (ceil(S / GROUP), 2, C)
// Thread: one (merged chunk, channel), channels fastest.
override GROUP: u32 = 1u;

@group(0) @binding(1) var<storage, read_write> merged: array<f32>;

@compute @workgroup_size(WG)
fn merge(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    let chunks = (M + CHUNK - 1u) / CHUNK;
    let groups = (chunks + GROUP - 1u) / GROUP;
    if (t >= groups * C) {
        return;
    }
    let c = t % C;
    let s = t / C;
    let r = merge_chunks(c, s * GROUP, min(s * GROUP + GROUP, chunks));
    merged[(s * 2u) * C + c] = r.x;
    merged[(s * 2u + 1u) * C + c] = r.y;
}
