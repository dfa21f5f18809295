// gemm_fwd_texel: gemm_fwd (see gemm_fwd.wgsl for the semantics) for CPU adapters with 8-lane
// subgroups, such as lavapipe. There every storage-buffer load is a per-lane loop, while a texel
// load from a read-only storage texture is one vector gather and subgroupShuffle with a constant
// lane is one permute. So A, B and the SE gate arrive as textures (copied in by the host just
// before the dispatch), and each lane loads one row of B per 8 steps of K and shares it with the
// other 7 lanes by shuffles instead of every lane loading all 8.
//
// Subgroup: 16 rows x 16 columns; lane l owns rows l and l + 8 of the tile, and the 16 columns
// as a mat4x4 (column c of the matrix = output columns 4c..4c+3). Needs K % 8 == 0, N % 4 == 0.

override M: u32;
override N: u32;
override K: u32;
override ACT: u32 = 0u;
override HAS_BIAS: u32 = 0u;
override HAS_RESIDUAL: u32 = 0u;
override HAS_A_SCALE: u32 = 0u;
override A_SCALE_ROWS: u32 = 1u;

@group(0) @binding(0) var a: texture_storage_2d<rgba32float, read>;
@group(0) @binding(1) var b: texture_storage_2d<rgba32float, read>;
@group(0) @binding(2) var<storage, read> bias: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> residual: array<vec4<f32>>;
@group(0) @binding(4) var a_scale: texture_storage_2d<rgba32float, read>;
@group(0) @binding(5) var<storage, read_write> out: array<vec4<f32>>;

fn load_a(row: u32, q: u32) -> vec4<f32> {
    var v = textureLoad(a, texel(row * (K / 4u) + q));
    if (HAS_A_SCALE == 1u) {
        v *= textureLoad(a_scale, texel((row / A_SCALE_ROWS) * (K / 4u) + q));
    }
    return v;
}

// Row k0 + j of the B tile, from lane j.
fn b_row(bl: mat4x4<f32>, j: u32) -> mat4x4<f32> {
    return mat4x4<f32>(
        subgroupShuffle(bl[0], j), subgroupShuffle(bl[1], j), subgroupShuffle(bl[2], j), subgroupShuffle(bl[3], j)
    );
}

fn act4(v: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(activate(v.x, ACT), activate(v.y, ACT), activate(v.z, ACT), activate(v.w, ACT));
}

// Rows r0 and r1 of the subgroup's product for the lane (before the epilogue), columns 4 c4 ..
fn product(r0: u32, r1: u32, c4: u32, lane: u32) -> array<mat4x4<f32>, 2> {
    let n4 = N / 4u;
    let cols = min(vec4<u32>(c4, c4 + 1u, c4 + 2u, c4 + 3u), vec4<u32>(n4 - 1u));
    var acc0 = mat4x4<f32>();
    var acc1 = mat4x4<f32>();
    for (var k0 = 0u; k0 < K; k0 += 8u) {
        let bk = (k0 + lane) * n4;
        let bl = mat4x4<f32>(
            textureLoad(b, texel(bk + cols.x)),
            textureLoad(b, texel(bk + cols.y)),
            textureLoad(b, texel(bk + cols.z)),
            textureLoad(b, texel(bk + cols.w)),
        );
        // Written out, not looped: a loop indexing the A texels by its counter ran 8x slower on
        // lavapipe (measured with bench --gemm-sweep).
        let q = k0 / 4u;
        let x0 = load_a(r0, q);
        let y0 = load_a(r0, q + 1u);
        let x1 = load_a(r1, q);
        let y1 = load_a(r1, q + 1u);
        var s = b_row(bl, 0u);
        acc0 += x0.x * s;
        acc1 += x1.x * s;
        s = b_row(bl, 1u);
        acc0 += x0.y * s;
        acc1 += x1.y * s;
        s = b_row(bl, 2u);
        acc0 += x0.z * s;
        acc1 += x1.z * s;
        s = b_row(bl, 3u);
        acc0 += x0.w * s;
        acc1 += x1.w * s;
        s = b_row(bl, 4u);
        acc0 += y0.x * s;
        acc1 += y1.x * s;
        s = b_row(bl, 5u);
        acc0 += y0.y * s;
        acc1 += y1.y * s;
        s = b_row(bl, 6u);
        acc0 += y0.z * s;
        acc1 += y1.z * s;
        s = b_row(bl, 7u);
        acc0 += y0.w * s;
        acc1 += y1.w * s;
    }
    return array<mat4x4<f32>, 2>(acc0, acc1);
}

// The bias of the block's 16 columns (zero without one), loaded once for both of the lane's
// rows: each storage-buffer load is a per-lane loop on lavapipe. Columns past N read column N - 1.
fn bias_cols(c4: u32) -> mat4x4<f32> {
    if (HAS_BIAS == 0u) {
        return mat4x4<f32>();
    }
    let last = N / 4u - 1u;
    return mat4x4<f32>(bias[c4], bias[min(c4 + 1u, last)], bias[min(c4 + 2u, last)], bias[min(c4 + 3u, last)]);
}

// The epilogue of one row's 4 columns: bias, activation, residual. Columns past N read column
// N - 1 (their values are stored nowhere). Written per column with constant indices: a loop
// indexing the matrix by its counter kept it in memory on lavapipe (8% slower).
fn finish_col(v: vec4<f32>, b: vec4<f32>, row: u32, col: u32) -> vec4<f32> {
    var r = v;
    if (HAS_BIAS == 1u) {
        r += b;
    }
    r = act4(r);
    if (HAS_RESIDUAL == 1u) {
        r += residual[row * (N / 4u) + col];
    }
    return r;
}

fn finish_row(acc: mat4x4<f32>, b: mat4x4<f32>, row: u32, c4: u32) -> mat4x4<f32> {
    let last = N / 4u - 1u;
    return mat4x4<f32>(
        finish_col(acc[0], b[0], row, c4),
        finish_col(acc[1], b[1], row, min(c4 + 1u, last)),
        finish_col(acc[2], b[2], row, min(c4 + 2u, last)),
        finish_col(acc[3], b[3], row, min(c4 + 3u, last)),
    );
}

// Stores row `row` (< M) of the block, the columns within N.
fn store_row(v: mat4x4<f32>, row: u32, c4: u32) {
    let n4 = N / 4u;
    let o = row * n4 + c4;
    out[o] = v[0];
    if (c4 + 1u < n4) {
        out[o + 1u] = v[1];
    }
    if (c4 + 2u < n4) {
        out[o + 2u] = v[2];
    }
    if (c4 + 3u < n4) {
        out[o + 3u] = v[3];
    }
}

// The subgroup's block: g / col_blocks is its 16-row block, g % col_blocks its 16-column block.
fn col_blocks() -> u32 {
    return (N / 4u + 3u) / 4u;
}

@compute @workgroup_size(WG)
fn main(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let g = linear_id(gid, nwg) / 8u;
    // Uniform across the subgroup: no lane leaves a shuffle early.
    if (g >= col_blocks() * ((M + 15u) / 16u)) {
        return;
    }
    let c4 = (g % col_blocks()) * 4u;
    let row0 = (g / col_blocks()) * 16u + lane;
    let acc = product(min(row0, M - 1u), min(row0 + 8u, M - 1u), c4, lane);
    let bias_m = bias_cols(c4);
    if (row0 < M) {
        store_row(finish_row(acc[0], bias_m, row0, c4), row0, c4);
    }
    if (row0 + 8u < M) {
        store_row(finish_row(acc[1], bias_m, row0 + 8u, c4), row0 + 8u, c4);
    }
}

// bn_stats: main, plus the first stage of training-mode BatchNorm statistics of `out` (see
// bn_stats_partial.wgsl) from the registers that hold it, which saves the statistics a texel
// copy and a read of the whole tensor: per 16-row block and column, the block's mean and
// M2 = sum (z - mean)^2, two passes relative to the block's first row, summed over the 8 lanes
// by subgroupAdd. bn_stats_finish (after its merge stage where the blocks are many) takes the
// partials with CHUNK = 16.
// Binding 6: bn_partial (ceil(M / 16), 2, N), [s][0][n] = mean, [s][1][n] = M2, as vec4 along N.
@group(0) @binding(6) var<storage, read_write> bn_partial: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn bn_stats(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let g = linear_id(gid, nwg) / 8u;
    if (g >= col_blocks() * ((M + 15u) / 16u)) {
        return;
    }
    let n4 = N / 4u;
    let c4 = (g % col_blocks()) * 4u;
    let s = g / col_blocks();
    let row0 = s * 16u + lane;
    let acc = product(min(row0, M - 1u), min(row0 + 8u, M - 1u), c4, lane);
    // Rows past M hold a copy of row M - 1: they are stored nowhere and count nowhere.
    let in0 = row0 < M;
    let in1 = row0 + 8u < M;
    var z0 = mat4x4<f32>();
    var z1 = mat4x4<f32>();
    let bias_m = bias_cols(c4);
    if (in0) {
        z0 = finish_row(acc[0], bias_m, row0, c4);
        store_row(z0, row0, c4);
    }
    if (in1) {
        z1 = finish_row(acc[1], bias_m, row0 + 8u, c4);
        store_row(z1, row0 + 8u, c4);
    }
    let rows = f32(min(16u, M - s * 16u));
    let zero = vec4<f32>(0.0);
    for (var c = 0u; c < 4u; c++) {
        // Relative to the block's first row (lane 0's, always within M), as bn_stats_partial:
        // near-equal values keep their spread, where sum(z) / n would round it away.
        let k = subgroupShuffle(z0[c], 0u);
        let mean_k = subgroupAdd(select(zero, z0[c] - k, in0) + select(zero, z1[c] - k, in1)) / rows;
        let d0 = select(zero, (z0[c] - k) - mean_k, in0);
        let d1 = select(zero, (z1[c] - k) - mean_k, in1);
        let m2 = subgroupAdd(d0 * d0 + d1 * d1);
        if (lane == 0u && c4 + c < n4) {
            bn_partial[(s * 2u) * n4 + c4 + c] = k + mean_k;
            bn_partial[(s * 2u + 1u) * n4 + c4 + c] = m2;
        }
    }
}
