// PLACEHOLDER for conv2d_bwd_data: to be written.
@group(0) @binding(0) var<storage, read> placeholder0: array<f32>;
@group(0) @binding(1) var<storage, read> placeholder1: array<f32>;
@group(0) @binding(2) var<storage, read_write> placeholder2: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    placeholder2[0] = f32(gid.x);
}
