// gemm_bwd_data_texel: gemm_bwd_data (da (m, k) = dc (m, n) x b^T, optionally accumulated; see
// gemm_bwd_data.wgsl) for CPU adapters with 8-lane subgroups; see gemm_fwd_texel.wgsl for why
// textures and shuffles. The reduction runs over N, one texel (4 values of n) at a time: lane l
// loads rows 2l and 2l + 1 of the 16 rows of B the tile needs, and the shuffles hand every lane
// all 16 rows.
//
// Subgroup: 16 rows of da x 16 of its columns (k); lane l owns rows l and l + 8. Needs
// K % 8 == 0, N % 4 == 0.

override M: u32;
override N: u32;
override K: u32;
override ACCUMULATE: u32 = 0u;

@group(0) @binding(0) var dc: texture_storage_2d<rgba32float, read>;
@group(0) @binding(1) var b: texture_storage_2d<rgba32float, read>;
@group(0) @binding(2) var<storage, read_write> da: array<vec4<f32>>;

// Rows 4c..4c+3 of the B tile (columns 4c..4c+3 of da), from lanes 2c and 2c + 1.
fn b_rows(even: vec4<f32>, odd: vec4<f32>, c: u32) -> mat4x4<f32> {
    return mat4x4<f32>(
        subgroupShuffle(even, 2u * c),
        subgroupShuffle(odd, 2u * c),
        subgroupShuffle(even, 2u * c + 1u),
        subgroupShuffle(odd, 2u * c + 1u),
    );
}

fn dots(d: vec4<f32>, w: mat4x4<f32>) -> vec4<f32> {
    return vec4<f32>(dot(d, w[0]), dot(d, w[1]), dot(d, w[2]), dot(d, w[3]));
}

@compute @workgroup_size(WG)
fn main(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let n4 = N / 4u;
    let k4 = K / 4u;
    let col_blocks = (k4 + 3u) / 4u;
    let g = linear_id(gid, nwg) / 8u;
    // Uniform across the subgroup: no lane leaves a shuffle early.
    if (g >= col_blocks * ((M + 15u) / 16u)) {
        return;
    }
    let c4 = (g % col_blocks) * 4u;
    let row0 = (g / col_blocks) * 16u + lane;
    let r0 = min(row0, M - 1u) * n4;
    let r1 = min(row0 + 8u, M - 1u) * n4;
    let be = min(4u * c4 + 2u * lane, K - 1u) * n4;
    let bo = min(4u * c4 + 2u * lane + 1u, K - 1u) * n4;

    var acc0 = mat4x4<f32>();
    var acc1 = mat4x4<f32>();
    for (var q = 0u; q < n4; q++) {
        let even = textureLoad(b, texel(be + q));
        let odd = textureLoad(b, texel(bo + q));
        let d0 = textureLoad(dc, texel(r0 + q));
        let d1 = textureLoad(dc, texel(r1 + q));
        for (var c = 0u; c < 4u; c++) {
            let w = b_rows(even, odd, c);
            acc0[c] += dots(d0, w);
            acc1[c] += dots(d1, w);
        }
    }
    if (row0 < M) {
        store_row(acc0, row0, c4);
    }
    if (row0 + 8u < M) {
        store_row(acc1, row0 + 8u, c4);
    }
}

// Stores (or adds) row `row` (< M) of the block, the columns within K. Written out with constant
// indices: a loop that leaves early kept the matrix in memory on lavapipe (as in gemm_fwd_texel).
fn store_row(v: mat4x4<f32>, row: u32, c4: u32) {
    let k4 = K / 4u;
    let o = row * k4 + c4;
    store(o, v[0]);
    if (c4 + 1u < k4) {
        store(o + 1u, v[1]);
    }
    if (c4 + 2u < k4) {
        store(o + 2u, v[2]);
    }
    if (c4 + 3u < k4) {
        store(o + 3u, v[3]);
    }
}

fn store(o: u32, v: vec4<f32>) {
    if (ACCUMULATE == 1u) {
        da[o] = da[o] + v;
    } else {
        da[o] = v;
    }
}
