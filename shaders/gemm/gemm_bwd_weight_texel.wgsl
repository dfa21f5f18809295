// gemm_bwd_weight_texel: gemm_bwd_weight (split-K partials of db (k, n) = (a * a_scale)^T x dc;
// see gemm_bwd_weight.wgsl) for CPU adapters with 8-lane subgroups; see gemm_fwd_texel.wgsl for
// why textures and shuffles. Per 8 rows of the chunk, lane l loads row l of dc's 8 columns and
// the shuffles hand every lane all 8 rows; each lane reads its own 4 columns of a.
//
// Subgroup: 32 rows of db (k) x 8 columns (n), for one chunk of ROWS rows of a and dc; lane l
// owns k = 4l..4l+3 of the tile as two mat4x4 (column i = row 4l + i of db, n 0..3 or 4..7).
// Needs K % 4 == 0, N % 4 == 0.

override M: u32;
override N: u32;
override K: u32;
override ROWS: u32;
override HAS_A_SCALE: u32 = 0u;
override A_SCALE_ROWS: u32 = 1u;

@group(0) @binding(0) var a: texture_storage_2d<rgba32float, read>;
@group(0) @binding(1) var a_scale: texture_storage_2d<rgba32float, read>;
@group(0) @binding(2) var dc: texture_storage_2d<rgba32float, read>;
@group(0) @binding(3) var<storage, read_write> partial: array<vec4<f32>>;

fn outer(x: vec4<f32>, d: vec4<f32>) -> mat4x4<f32> {
    return mat4x4<f32>(x.x * d, x.y * d, x.z * d, x.w * d);
}

@compute @workgroup_size(WG)
fn main(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let n4 = N / 4u;
    let k4 = K / 4u;
    let n_blocks = (n4 + 1u) / 2u;
    let k_blocks = (k4 + 7u) / 8u;
    let chunks = (M + ROWS - 1u) / ROWS;
    let g = linear_id(gid, nwg) / 8u;
    // Uniform across the subgroup: no lane leaves a shuffle early.
    if (g >= n_blocks * k_blocks * chunks) {
        return;
    }
    let nb = (g % n_blocks) * 2u;
    let kq = (g / n_blocks) % k_blocks * 8u + lane;
    let chunk = g / (n_blocks * k_blocks);
    let kc = min(kq, k4 - 1u);
    let n0 = min(nb, n4 - 1u);
    let n1 = min(nb + 1u, n4 - 1u);
    let start = chunk * ROWS;
    let end = min(start + ROWS, M);

    var acc0 = mat4x4<f32>();
    var acc1 = mat4x4<f32>();
    for (var m0 = start; m0 < end; m0 += 8u) {
        // Row m0 + lane of dc, zero past the chunk so the clamped rows of a add nothing.
        let mr = min(m0 + lane, M - 1u);
        let live = m0 + lane < end;
        let e0 = select(vec4<f32>(0.0), textureLoad(dc, texel(mr * n4 + n0)), live);
        let e1 = select(vec4<f32>(0.0), textureLoad(dc, texel(mr * n4 + n1)), live);
        for (var j = 0u; j < 8u; j++) {
            let m = min(m0 + j, M - 1u);
            var x = textureLoad(a, texel(m * k4 + kc));
            if (HAS_A_SCALE == 1u) {
                x *= textureLoad(a_scale, texel((m / A_SCALE_ROWS) * k4 + kc));
            }
            acc0 += outer(x, subgroupShuffle(e0, j));
            acc1 += outer(x, subgroupShuffle(e1, j));
        }
    }
    if (kq >= k4) {
        return;
    }
    let base = (chunk * K + 4u * kq) * n4;
    for (var i = 0u; i < 4u; i++) {
        partial[base + i * n4 + nb] = acc0[i];
        if (nb + 1u < n4) {
            partial[base + i * n4 + nb + 1u] = acc1[i];
        }
    }
}
