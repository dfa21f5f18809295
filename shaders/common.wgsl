// Prepended to every kernel (see src/gpu/kernels.rs): the epilogue activations and the linear
// invocation index of a 1-D dispatch that may be folded into a 2-D grid.

const WG: u32 = 64u;

// ACT values: 0 none, 1 swish (x * sigmoid(x)), 2 ReLU6, 3 sigmoid. ACT is an override constant at
// every call site, so the switch folds away.
fn activate(x: f32, act: u32) -> f32 {
    switch act {
        case 1u: { return x / (1.0 + exp(-x)); }
        case 2u: { return clamp(x, 0.0, 6.0); }
        case 3u: { return 1.0 / (1.0 + exp(-x)); }
        default: { return x; }
    }
}

// Dispatches over 65,535 workgroups are folded into (x, y) grids by the host.
fn linear_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}
