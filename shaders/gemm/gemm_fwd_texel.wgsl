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

@compute @workgroup_size(WG)
fn main(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let n4 = N / 4u;
    let col_blocks = (n4 + 3u) / 4u;
    let g = linear_id(gid, nwg) / 8u;
    // Uniform across the subgroup: no lane leaves a shuffle early.
    if (g >= col_blocks * ((M + 15u) / 16u)) {
        return;
    }
    let c4 = (g % col_blocks) * 4u;
    let row0 = (g / col_blocks) * 16u + lane;
    let r0 = min(row0, M - 1u);
    let r1 = min(row0 + 8u, M - 1u);
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
    for (var i = 0u; i < 2u; i++) {
        let row = row0 + 8u * i;
        if (row >= M) {
            break;
        }
        var acc = acc0;
        if (i == 1u) {
            acc = acc1;
        }
        for (var c = 0u; c < 4u; c++) {
            if (c4 + c >= n4) {
                break;
            }
            var v = acc[c];
            if (HAS_BIAS == 1u) {
                v += bias[c4 + c];
            }
            v = act4(v);
            let o = row * n4 + c4 + c;
            if (HAS_RESIDUAL == 1u) {
                v += residual[o];
            }
            out[o] = v;
        }
    }
}
