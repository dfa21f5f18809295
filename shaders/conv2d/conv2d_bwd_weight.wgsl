// conv2d_bwd_weight, first stage of the deterministic weight gradient of a direct convolution
// (any kernel, stride, padding, groups; dy is the gradient before any bias/activation):
//   partial[s, ky, kx, ci, co] = sum over output rows (n, oy) of chunk s, and all ox, of
//       x[n, oy * SH + ky - PT, ox * SW + kx - PL, g(co) * cin_g + ci] * dy[n, oy, ox, co]
// with g(co) = co / cout_g. Chunk s covers the ROWS rows s * ROWS .. of the N * OH output rows (the
// last may be shorter); `sum_partials` adds the chunks in order into dw (KH, KW, CIN / GROUPS, COUT).
//
// Bindings: 0 x       (N, H, W, CIN), or (N, CIN, H, W) when IN_NCHW = 1
//           1 dy      (N, OH, OW, COUT)
//           2 partial (ceil(N * OH / ROWS), KH, KW, CIN / GROUPS, COUT)
// Thread: one chunk x one tap (ky, kx) x a 4 x 4 tile (4 input channels of the group x 4 output
// channels, output channels fastest, contiguous in dy and in the partial). Per output pixel it
// loads 4 dy and 4 x values (16 with GROUPS > 1, where the tile's output channels may belong to
// different groups) for 16 multiply-adds. The ox range whose tap lands inside the input is
// computed up front, so the inner loop has no branch.

override N: u32;
override H: u32;
override W: u32;
override CIN: u32;
override COUT: u32;
override KH: u32;
override KW: u32;
override SH: u32;
override SW: u32;
override PT: u32;
override PL: u32;
override OH: u32;
override OW: u32;
override GROUPS: u32 = 1u;
override IN_NCHW: u32 = 0u;
override ROWS: u32;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> partial: array<f32>;

fn x_index(n: u32, c: u32, iy: u32, ix: u32) -> u32 {
    if (IN_NCHW == 1u) {
        return ((n * CIN + c) * H + iy) * W + ix;
    }
    return ((n * H + iy) * W + ix) * CIN + c;
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    let cin_g = CIN / GROUPS;
    let cout_g = COUT / GROUPS;
    let cob = (COUT + 3u) / 4u;
    let cib = (cin_g + 3u) / 4u;
    let rows = N * OH;
    let chunks = (rows + ROWS - 1u) / ROWS;
    if (t >= chunks * KH * KW * cib * cob) {
        return;
    }
    let co0 = (t % cob) * 4u;
    let q = t / cob;
    let ci0 = (q % cib) * 4u;
    let q2 = q / cib;
    let kx = q2 % KW;
    let ky = (q2 / KW) % KH;
    let s = q2 / (KW * KH);
    // Channels past the ends are clamped for loads and never stored.
    let co = min(vec4<u32>(co0, co0 + 1u, co0 + 2u, co0 + 3u), vec4<u32>(COUT - 1u));
    let ci = min(vec4<u32>(ci0, ci0 + 1u, ci0 + 2u, ci0 + 3u), vec4<u32>(cin_g - 1u));
    let cbase = (co / cout_g) * cin_g;

    // Output columns whose tap kx reads inside the input: 0 <= ox * SW + kx - PL < W.
    let lo_num = i32(PL) - i32(kx);
    let ox_lo = u32(max(lo_num + i32(SW) - 1, 0)) / SW;
    let hi_num = i32(W) - 1 + i32(PL) - i32(kx);
    var ox_hi = 0u;
    if (hi_num >= 0) {
        ox_hi = min(u32(hi_num) / SW + 1u, OW);
    }

    var acc = array<vec4<f32>, 4>(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
    let r_end = min(s * ROWS + ROWS, rows);
    for (var r = s * ROWS; r < r_end; r++) {
        let oy = r % OH;
        let n = r / OH;
        let iy = i32(oy * SH + ky) - i32(PT);
        if (iy < 0 || iy >= i32(H)) {
            continue;
        }
        for (var ox = ox_lo; ox < ox_hi; ox++) {
            let ix = ox * SW + kx - PL;
            let o = (r * OW + ox) * COUT;
            let dv = vec4<f32>(dy[o + co.x], dy[o + co.y], dy[o + co.z], dy[o + co.w]);
            if (GROUPS == 1u) {
                let xv = vec4<f32>(
                    x[x_index(n, ci.x, u32(iy), ix)],
                    x[x_index(n, ci.y, u32(iy), ix)],
                    x[x_index(n, ci.z, u32(iy), ix)],
                    x[x_index(n, ci.w, u32(iy), ix)]);
                acc[0] += xv.x * dv;
                acc[1] += xv.y * dv;
                acc[2] += xv.z * dv;
                acc[3] += xv.w * dv;
            } else {
                for (var j = 0u; j < 4u; j++) {
                    let xv = vec4<f32>(
                        x[x_index(n, cbase.x + ci[j], u32(iy), ix)],
                        x[x_index(n, cbase.y + ci[j], u32(iy), ix)],
                        x[x_index(n, cbase.z + ci[j], u32(iy), ix)],
                        x[x_index(n, cbase.w + ci[j], u32(iy), ix)]);
                    acc[j] += xv * dv;
                }
            }
        }
    }
    for (var j = 0u; j < 4u; j++) {
        if (ci0 + j >= cin_g) {
            break;
        }
        let base = (((s * KH + ky) * KW + kx) * cin_g + ci0 + j) * COUT;
        for (var k = 0u; k < 4u; k++) {
            if (co0 + k < COUT) {
                partial[base + co0 + k] = acc[j][k];
            }
        }
    }
}
