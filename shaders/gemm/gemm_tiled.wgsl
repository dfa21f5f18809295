// gemm_tiled: the three GEMMs of a 1x1 conv for GPUs, tiled through workgroup memory. A workgroup
// of 64 threads owns a 64 x 64 output tile. Per stage it copies a 16-deep slice of both operands
// into workgroup memory (each value is read from global memory once per tile instead of once per
// thread), then every thread accumulates an 8 x 8 block in registers: 4 vec4 workgroup loads per
// 64 FMAs. Entry points, each with the semantics and bindings of its vec4 twin:
//   fwd         out = act((a * a_scale) x b + bias) + residual          (gemm_fwd_vec4.wgsl)
//   fwd_bn_stats  fwd, plus the BatchNorm partials of out per 64-row tile  (bn_stats_partial.wgsl)
//   bwd_data    da (+)= dc x b^T                                         (gemm_bwd_data_vec4.wgsl)
//   bwd_weight  split-K partials of db = (a * a_scale)^T x dc, chunks of ROWS rows of a and dc
//                                                                        (gemm_bwd_weight_vec4.wgsl)
// K and N are multiples of 4. Not for CPU adapters: on lavapipe barriers and workgroup memory at
// variable indices are per-lane loops, slower than no tiling at all (GPU_NOTES.md).
//
// Tensors are stored as `Store` (f32, or f16 on the inference path: the prelude of
// src/gpu/kernels.rs defines it); arithmetic is f32 throughout.

override M: u32;
override N: u32;
override K: u32;
override ACT: u32 = 0u;
override HAS_BIAS: u32 = 0u;
override HAS_RESIDUAL: u32 = 0u;
override HAS_A_SCALE: u32 = 0u;
override A_SCALE_ROWS: u32 = 1u;
override ACCUMULATE: u32 = 0u;
override ROWS: u32 = 1u;

const TILE: u32 = 64u;
const T4: u32 = 16u; // vec4s across a tile
const STEP: u32 = 16u; // reduction depth of one stage

// Stage operands, [STEP][T4] vec4s: lhs along the tile's rows, rhs along its columns.
var<workgroup> lhs: array<vec4<f32>, 256>;
var<workgroup> rhs: array<vec4<f32>, 256>;
// The thread's 8 x 8 block: acc[2 * r + h] is row r, columns 4h .. 4h + 3.
var<private> acc: array<vec4<f32>, 16>;

// fwd
@group(0) @binding(0) var<storage, read> a: array<vec4<Store>>;
@group(0) @binding(1) var<storage, read> b: array<vec4<Store>>;
@group(0) @binding(2) var<storage, read> bias: array<vec4<Store>>;
@group(0) @binding(3) var<storage, read> residual: array<vec4<Store>>;
@group(0) @binding(4) var<storage, read> a_scale: array<vec4<Store>>;
@group(0) @binding(5) var<storage, read_write> out: array<vec4<Store>>;
// bwd_data: dc, b, da
@group(0) @binding(0) var<storage, read> dc_rows: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> b_rows: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> da: array<vec4<f32>>;
// bwd_weight: a, a_scale, dc, partial
@group(0) @binding(0) var<storage, read> a_rows: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> a_scale_rows: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> dc: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> partial: array<vec4<f32>>;

// A vec4 taken along the reduction (4 consecutive depths s of tile row i) stored as 4 scalars
// of the [STEP][TILE] layout: `lhs` when `left`, else `rhs`.
fn stage_transposed(left: bool, i: u32, q: u32, v: vec4<f32>) {
    let at = q * 4u * T4 + i / 4u;
    let c = i % 4u;
    if (left) {
        lhs[at][c] = v.x;
        lhs[at + T4][c] = v.y;
        lhs[at + 2u * T4][c] = v.z;
        lhs[at + 3u * T4][c] = v.w;
    } else {
        rhs[at][c] = v.x;
        rhs[at + T4][c] = v.y;
        rhs[at + 2u * T4][c] = v.z;
        rhs[at + 3u * T4][c] = v.w;
    }
}

// One stage: acc += lhs^T rhs over STEP depths, for the thread's rows ty*8.. and columns tx*8...
fn accumulate_stage(ty: u32, tx: u32) {
    for (var s = 0u; s < STEP; s++) {
        let l0 = lhs[s * T4 + 2u * ty];
        let l1 = lhs[s * T4 + 2u * ty + 1u];
        let r0 = rhs[s * T4 + 2u * tx];
        let r1 = rhs[s * T4 + 2u * tx + 1u];
        let l = array<f32, 8>(l0.x, l0.y, l0.z, l0.w, l1.x, l1.y, l1.z, l1.w);
        for (var r = 0u; r < 8u; r++) {
            acc[2u * r] += l[r] * r0;
            acc[2u * r + 1u] += l[r] * r1;
        }
    }
}

fn clear_acc() {
    for (var i = 0u; i < 16u; i++) {
        acc[i] = vec4<f32>(0.0);
    }
}

// Output tiles of fwd: (M / 64) x (N / 64), rounded up.
fn fwd_tiles() -> u32 {
    return ((N + TILE - 1u) / TILE) * ((M + TILE - 1u) / TILE);
}

// The fwd of one tile: stores it to `out` and leaves the thread's 8 x 8 block of what was stored
// in `acc`.
fn fwd_tile(tile: u32, lid: u32) {
    let k4 = K / 4u;
    let n4 = N / 4u;
    let tiles_n = (N + TILE - 1u) / TILE;
    let m0 = (tile / tiles_n) * TILE;
    let nq0 = (tile % tiles_n) * T4;
    let ty = lid / 8u;
    let tx = lid % 8u;
    clear_acc();
    for (var k0 = 0u; k0 < k4; k0 += STEP / 4u) {
        // a: 64 rows x 4 vec4 along K, stored transposed; b: 16 rows x 16 vec4 along N.
        for (var j = 0u; j < 4u; j++) {
            let i = lid / 4u + 16u * j;
            let q = lid % 4u;
            let row = m0 + i;
            var v = vec4<f32>(0.0);
            if (row < M && k0 + q < k4) {
                v = vec4<f32>(a[row * k4 + k0 + q]);
                if (HAS_A_SCALE == 1u) {
                    v *= vec4<f32>(a_scale[(row / A_SCALE_ROWS) * k4 + k0 + q]);
                }
            }
            stage_transposed(true, i, q, v);
            let kr = lid / 16u + 4u * j;
            let nq = nq0 + lid % 16u;
            var w = vec4<f32>(0.0);
            if (k0 * 4u + kr < K && nq < n4) {
                w = vec4<f32>(b[(k0 * 4u + kr) * n4 + nq]);
            }
            rhs[kr * T4 + lid % 16u] = w;
        }
        workgroupBarrier();
        accumulate_stage(ty, tx);
        workgroupBarrier();
    }
    for (var r = 0u; r < 8u; r++) {
        let row = m0 + ty * 8u + r;
        for (var h = 0u; h < 2u; h++) {
            let nq = nq0 + 2u * tx + h;
            if (row < M && nq < n4) {
                var v = acc[2u * r + h];
                if (HAS_BIAS == 1u) {
                    v += vec4<f32>(bias[nq]);
                }
                v = activate4(v, ACT);
                let o = row * n4 + nq;
                if (HAS_RESIDUAL == 1u) {
                    v += vec4<f32>(residual[o]);
                }
                let stored = to_store4(v);
                out[o] = stored;
                acc[2u * r + h] = vec4<f32>(stored);
            }
        }
    }
}

@compute @workgroup_size(WG)
fn fwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_index) lid: u32) {
    let tile = wid.x + wid.y * nwg.x;
    if (tile < fwd_tiles()) {
        fwd_tile(tile, lid);
    }
}

// fwd_bn_stats: fwd, plus the first stage of training-mode BatchNorm statistics of `out` (see
// bn_stats_partial.wgsl) from the registers that hold it, which saves the statistics a read of
// the whole tensor: per 64-row tile and column, the tile's mean and M2 = sum (z - mean)^2, two
// passes over the thread's block, relative to the tile's first row. The 8 row threads of a column meet in workgroup memory in a
// fixed order: deterministic. bn_stats_finish (after its merge stage where the tiles are many)
// takes the partials with CHUNK = 64.
// Binding 6: bn_partial (ceil(M / 64), 2, N), [s][0][n] = mean, [s][1][n] = M2, as vec4 along N.
@group(0) @binding(6) var<storage, read_write> bn_partial: array<vec4<f32>>;

// The sum over the 8 row threads of vec4 column j of the tile (staged in `lhs`), in order.
fn column_total(j: u32) -> vec4<f32> {
    var t = lhs[j];
    for (var ty = 1u; ty < 8u; ty++) {
        t += lhs[ty * T4 + j];
    }
    return t;
}

@compute @workgroup_size(WG)
fn fwd_bn_stats(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let tile = wid.x + wid.y * nwg.x;
    if (tile >= fwd_tiles()) {
        return;
    }
    fwd_tile(tile, lid); // ends past its last barrier: `lhs` is free
    let n4 = N / 4u;
    let tiles_n = (N + TILE - 1u) / TILE;
    let s = tile / tiles_n;
    let rows = min(TILE, M - s * TILE);
    let ty = lid / 8u;
    let tx = lid % 8u;
    // As bn_stats_partial, relative to the chunk's first value k (the tile's row m0, held by the
    // threads of ty = 0): z - k is exact for nearby values, so near-equal values (BatchNorm over
    // a few rows at 1x1 pixels) keep their spread, where sum(z) / n would round it away.
    if (ty == 0u) {
        lhs[2u * tx] = acc[0];
        lhs[2u * tx + 1u] = acc[1];
    }
    workgroupBarrier();
    let k = array<vec4<f32>, 2>(lhs[2u * tx], lhs[2u * tx + 1u]);
    workgroupBarrier();
    var mean_k = array<vec4<f32>, 2>(); // chunk mean - k, once the first round has it
    for (var round = 0u; round < 2u; round++) {
        for (var h = 0u; h < 2u; h++) {
            var t = vec4<f32>(0.0);
            for (var r = 0u; r < 8u; r++) {
                if (ty * 8u + r < rows) {
                    let d = (acc[2u * r + h] - k[h]) - mean_k[h];
                    t += select(d * d, d, round == 0u);
                }
            }
            lhs[ty * T4 + 2u * tx + h] = t;
        }
        workgroupBarrier();
        if (round == 0u) {
            mean_k[0] = column_total(2u * tx) / f32(rows);
            mean_k[1] = column_total(2u * tx + 1u) / f32(rows);
            workgroupBarrier();
        }
    }
    for (var h = 0u; h < 2u; h++) {
        let nq = (tile % tiles_n) * T4 + 2u * tx + h;
        if (ty == 0u && nq < n4) {
            bn_partial[(s * 2u) * n4 + nq] = k[h] + mean_k[h];
            bn_partial[(s * 2u + 1u) * n4 + nq] = column_total(2u * tx + h);
        }
    }
}

@compute @workgroup_size(WG)
fn bwd_data(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let k4 = K / 4u;
    let n4 = N / 4u;
    let tiles_k = (K + TILE - 1u) / TILE;
    let tile = wid.x + wid.y * nwg.x;
    if (tile >= tiles_k * ((M + TILE - 1u) / TILE)) {
        return;
    }
    let m0 = (tile / tiles_k) * TILE;
    let kr0 = (tile % tiles_k) * TILE;
    let ty = lid / 8u;
    let tx = lid % 8u;
    clear_acc();
    for (var n0 = 0u; n0 < n4; n0 += STEP / 4u) {
        // dc: 64 rows x 4 vec4 along N; b: 64 rows (of K) x 4 vec4 along N; both transposed.
        for (var j = 0u; j < 4u; j++) {
            let i = lid / 4u + 16u * j;
            let q = lid % 4u;
            let row = m0 + i;
            var v = vec4<f32>(0.0);
            if (row < M && n0 + q < n4) {
                v = dc_rows[row * n4 + n0 + q];
            }
            stage_transposed(true, i, q, v);
            let kr = kr0 + i;
            var w = vec4<f32>(0.0);
            if (kr < K && n0 + q < n4) {
                w = b_rows[kr * n4 + n0 + q];
            }
            stage_transposed(false, i, q, w);
        }
        workgroupBarrier();
        accumulate_stage(ty, tx);
        workgroupBarrier();
    }
    for (var r = 0u; r < 8u; r++) {
        let row = m0 + ty * 8u + r;
        for (var h = 0u; h < 2u; h++) {
            let kq = kr0 / 4u + 2u * tx + h;
            if (row < M && kq < k4) {
                let o = row * k4 + kq;
                if (ACCUMULATE == 1u) {
                    da[o] = da[o] + acc[2u * r + h];
                } else {
                    da[o] = acc[2u * r + h];
                }
            }
        }
    }
}

@compute @workgroup_size(WG)
fn bwd_weight(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let k4 = K / 4u;
    let n4 = N / 4u;
    let tiles_n = (N + TILE - 1u) / TILE;
    let tiles = tiles_n * ((K + TILE - 1u) / TILE);
    let chunks = (M + ROWS - 1u) / ROWS;
    let tile = wid.x + wid.y * nwg.x;
    if (tile >= tiles * chunks) {
        return;
    }
    let s = tile / tiles;
    let kq0 = ((tile % tiles) / tiles_n) * T4;
    let nq0 = (tile % tiles_n) * T4;
    let start = s * ROWS;
    let end = min(start + ROWS, M);
    let ty = lid / 8u;
    let tx = lid % 8u;
    clear_acc();
    for (var m0 = start; m0 < end; m0 += STEP) {
        // a and dc: 16 rows x 16 vec4 along K / N, stored as they are.
        for (var j = 0u; j < 4u; j++) {
            let mr = lid / 16u + 4u * j;
            let q = lid % 16u;
            let row = m0 + mr;
            var v = vec4<f32>(0.0);
            var d = vec4<f32>(0.0);
            if (row < end) {
                if (kq0 + q < k4) {
                    v = a_rows[row * k4 + kq0 + q];
                    if (HAS_A_SCALE == 1u) {
                        v *= a_scale_rows[(row / A_SCALE_ROWS) * k4 + kq0 + q];
                    }
                }
                if (nq0 + q < n4) {
                    d = dc[row * n4 + nq0 + q];
                }
            }
            lhs[mr * T4 + q] = v;
            rhs[mr * T4 + q] = d;
        }
        workgroupBarrier();
        accumulate_stage(ty, tx);
        workgroupBarrier();
    }
    // Partial (S, K, N) as vec4 along N: row k of chunk s starts at (s * K + k) * n4.
    for (var r = 0u; r < 8u; r++) {
        let k = kq0 * 4u + ty * 8u + r;
        for (var h = 0u; h < 2u; h++) {
            let nq = nq0 + 2u * tx + h;
            if (k < K && nq < n4) {
                partial[(s * K + k) * n4 + nq] = acc[2u * r + h];
            }
        }
    }
}
