// sum_partials: the second stage of every deterministic two-stage reduction (weight gradients,
// BN statistics, loss means): out[i] (+)= SCALE * sum_{s < PARTS} partial[s * LEN + i], the parts
// added one after another in the order s = 0, 1, 2, ... so the result is bit-identical run to run.
//
// Bindings: 0 partial (PARTS, LEN)
//           1 out     (LEN)            read too when ACCUMULATE = 1 (out += ...)
// Thread: 4 consecutive elements, so each loop iteration issues 4 independent loads (amortising
// the loop overhead, which lavapipe pays per iteration) and a warp on a discrete GPU still reads
// whole contiguous cache lines. Tail indices are clamped for loads and never stored. The parts
// loop is unrolled x2 with the additions kept in order.

override PARTS: u32;
override LEN: u32;
override SCALE: f32 = 1.0;
override ACCUMULATE: u32 = 0u;

@group(0) @binding(0) var<storage, read> partial: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

const ELEMS: u32 = 4u;

fn load4(s: u32, i: vec4<u32>) -> vec4<f32> {
    let b = s * LEN;
    return vec4<f32>(partial[b + i.x], partial[b + i.y], partial[b + i.z], partial[b + i.w]);
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    let i0 = t * ELEMS;
    if (i0 >= LEN) {
        return;
    }
    let i = min(vec4<u32>(i0, i0 + 1u, i0 + 2u, i0 + 3u), vec4<u32>(LEN - 1u));
    var acc = vec4<f32>(0.0);
    let pairs = PARTS / 2u;
    for (var k = 0u; k < pairs; k++) {
        let a = load4(2u * k, i);
        let b = load4(2u * k + 1u, i);
        acc += a;
        acc += b;
    }
    if (PARTS % 2u == 1u) {
        acc += load4(PARTS - 1u, i);
    }
    let v = acc * SCALE;
    for (var j = 0u; j < ELEMS; j++) {
        let idx = i0 + j;
        if (idx < LEN) {
            if (ACCUMULATE == 1u) {
                out[idx] = out[idx] + v[j];
            } else {
                out[idx] = v[j];
            }
        }
    }
}
