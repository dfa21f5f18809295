// PLACEHOLDER for bn_act_bwd_reduce: to be written.
@group(0) @binding(0) var<storage, read> placeholder0: array<f32>;
@group(0) @binding(1) var<storage, read> placeholder1: array<f32>;
@group(0) @binding(2) var<storage, read> placeholder2: array<f32>;
@group(0) @binding(3) var<storage, read> placeholder3: array<f32>;
@group(0) @binding(4) var<storage, read> placeholder4: array<f32>;
@group(0) @binding(5) var<storage, read> placeholder5: array<f32>;
@group(0) @binding(6) var<storage, read_write> placeholder6: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    placeholder6[0] = f32(gid.x);
}
