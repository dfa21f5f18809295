// Prepended to every kernel (see src/gpu/kernels.rs), after the constants shared with Rust (WG,
// TEXEL_ROW_LOG2, ACT_*): the epilogue activations and the linear invocation index of a 1-D
// dispatch that may be folded into a 2-D grid.

// ACT values: ACT_NONE, ACT_SWISH (x * sigmoid(x)), ACT_RELU6, ACT_SIGMOID. ACT is an override
// constant at every call site, so the switch folds away.
fn activate(x: f32, act: u32) -> f32 {
    switch act {
        case ACT_SWISH: { return x / (1.0 + exp(-x)); }
        case ACT_RELU6: { return clamp(x, 0.0, 6.0); }
        case ACT_SIGMOID: { return 1.0 / (1.0 + exp(-x)); }
        default: { return x; }
    }
}

// Dispatches over 65,535 workgroups are folded into (x, y) grids by the host.
fn linear_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

// d act(x) / dx, for the backward kernels. Swish: s(x) * (1 + x * (1 - s(x))); ReLU6 passes the
// gradient strictly inside (0, 6) as PyTorch's hardtanh does; sigmoid: s * (1 - s).
fn activate_grad(x: f32, act: u32) -> f32 {
    switch act {
        case ACT_SWISH: {
            let s = 1.0 / (1.0 + exp(-x));
            return s * (1.0 + x * (1.0 - s));
        }
        case ACT_RELU6: { return select(0.0, 1.0, x > 0.0 && x < 6.0); }
        case ACT_SIGMOID: {
            let s = 1.0 / (1.0 + exp(-x));
            return s * (1.0 - s);
        }
        default: { return 1.0; }
    }
}

// Counter-based random numbers (dropout, stochastic depth): a pure function of (seed, salt, index),
// so the backward pass regenerates the forward's masks and nothing is stored. Integer-exact, with a
// bit-identical twin in src/ops/rng.rs. lowbias32 by Chris Wellons.
fn hash_u32(v: u32) -> u32 {
    var x = v;
    x ^= x >> 16u;
    x *= 0x7feb352du;
    x ^= x >> 15u;
    x *= 0x846ca68bu;
    x ^= x >> 16u;
    return x;
}

// Uniform in [0, 1) with 24 random bits.
fn uniform01(seed: u32, salt: u32, index: u32) -> f32 {
    return f32(hash_u32(index ^ hash_u32(salt ^ hash_u32(seed))) >> 8u) * (1.0 / 16777216.0);
}

// Gradient clipping by global norm: the factor min(1, max_norm / ||g||), or 1 when max_norm <= 0.
fn clip_scale(max_norm: f32, norm2: f32) -> f32 {
    if (max_norm <= 0.0) {
        return 1.0;
    }
    return min(1.0, max_norm / sqrt(norm2 + 1e-12));
}

// Texel kernels read buffers copied into rgba32float textures 1 << TEXEL_ROW_LOG2 texels wide:
// vec4 number i of the buffer is texel (i % TEXEL_ROW, i / TEXEL_ROW).

fn texel(i: u32) -> vec2<u32> {
    return vec2<u32>(i & ((1u << TEXEL_ROW_LOG2) - 1u), i >> TEXEL_ROW_LOG2);
}

fn activate4(v: vec4<f32>, act: u32) -> vec4<f32> {
    return vec4<f32>(activate(v.x, act), activate(v.y, act), activate(v.z, act), activate(v.w, act));
}

fn activate_grad4(v: vec4<f32>, act: u32) -> vec4<f32> {
    return vec4<f32>(activate_grad(v.x, act), activate_grad(v.y, act), activate_grad(v.z, act), activate_grad(v.w, act));
}
