// conv2d_bwd_data: the input gradient of a direct convolution with any kernel, stride, padding and
// group count (dy is the gradient of the convolution's output before any bias/activation):
//   dx[n, iy, ix, ci] = sum over taps (ky, kx) with oy * SH + ky - PT = iy, ox * SW + kx - PL = ix,
//                       and the output channels co of ci's group, of dy[n, oy, ox, co] * w[ky, kx, ci % cin_g, co]
// in gather form (one invocation per dx element block, no scatter, no atomics). ACCUMULATE = 1
// adds the result to dx.
//
// Bindings: 0 dy (N, OH, OW, COUT)
//           1 w  (KH, KW, CIN / GROUPS, COUT)   HWIO
//           2 dx (N, H, W, CIN), or (N, CIN, H, W) when IN_NCHW = 1 (the network input's gradient);
//                read too when ACCUMULATE = 1
// Thread: one input pixel x 4 consecutive input channels, the channel block fastest, then the
// columns of a row in residue-major order (see below).
// Only taps with ky = iy + PT (mod SH), kx = ix + PL (mod SW) reach an output pixel: the tap loops
// start there and step by the stride. With GROUPS = 1 the 4 channels share each dy value.

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
override ACCUMULATE: u32 = 0u;

@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;

fn x_index(n: u32, c: u32, iy: u32, ix: u32) -> u32 {
    if (IN_NCHW == 1u) {
        return ((n * CIN + c) * H + iy) * W + ix;
    }
    return ((n * H + iy) * W + ix) * CIN + c;
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    let cib = (CIN + 3u) / 4u;
    // Columns are ordered residue-major (all ix = 0 mod SW, then 1, ...), so neighbouring
    // invocations take the same taps instead of diverging on the column's parity.
    let xs = (W + SW - 1u) / SW;
    if (t >= N * H * xs * SW * cib) {
        return;
    }
    let ci0 = (t % cib) * 4u;
    let p = t / cib;
    let q = p % (xs * SW);
    let ix = (q % xs) * SW + q / xs;
    let iy = (p / (xs * SW)) % H;
    let n = p / (xs * SW * H);
    if (ix >= W) {
        return;
    }
    let cin_g = CIN / GROUPS;
    let cout_g = COUT / GROUPS;
    // Channels past CIN are clamped for loads and never stored.
    let ci = min(vec4<u32>(ci0, ci0 + 1u, ci0 + 2u, ci0 + 3u), vec4<u32>(CIN - 1u));
    let g = ci / cin_g;
    let cil = ci - g * cin_g;
    let cobase = g * cout_g;

    var acc = vec4<f32>(0.0);
    for (var ky = (iy + PT) % SH; ky < KH; ky += SH) {
        let ty = i32(iy + PT) - i32(ky);
        if (ty < 0) {
            break;
        }
        let oy = u32(ty) / SH;
        if (oy >= OH) {
            continue;
        }
        for (var kx = (ix + PL) % SW; kx < KW; kx += SW) {
            let tx = i32(ix + PL) - i32(kx);
            if (tx < 0) {
                break;
            }
            let ox = u32(tx) / SW;
            if (ox >= OW) {
                continue;
            }
            let dyb = ((n * OH + oy) * OW + ox) * COUT;
            // Rows of the 4 channels in the (ky, kx) slice of w.
            let wr = ((ky * KW + kx) * cin_g + cil) * COUT;
            for (var col = 0u; col < cout_g; col++) {
                var dv: vec4<f32>;
                var wv: vec4<f32>;
                if (GROUPS == 1u) {
                    dv = vec4<f32>(dy[dyb + col]);
                    wv = vec4<f32>(w[wr.x + col], w[wr.y + col], w[wr.z + col], w[wr.w + col]);
                } else {
                    let co = cobase + col;
                    dv = vec4<f32>(dy[dyb + co.x], dy[dyb + co.y], dy[dyb + co.z], dy[dyb + co.w]);
                    wv = vec4<f32>(w[wr.x + co.x], w[wr.y + co.y], w[wr.z + co.z], w[wr.w + co.w]);
                }
                acc += dv * wv;
            }
        }
    }
    for (var k = 0u; k < 4u; k++) {
        let c = ci0 + k;
        if (c < CIN) {
            let i = x_index(n, c, iy, ix);
            if (ACCUMULATE == 1u) {
                dx[i] = dx[i] + acc[k];
            } else {
                dx[i] = acc[k];
            }
        }
    }
}
