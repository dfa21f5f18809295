// resample_image_h: the horizontal pass of the preprocessing's separable resize, reading an
// image texture the host already has (a rendered or uploaded frame). For each channel and each
// source row the vertical pass needs (Y0 .. Y0 + ROWS), every output column is the weighted sum
// of its taps (PIL's `precompute_coeffs`, computed on the host), on the 0-255 scale; rounded to
// 8 bits when ROUND = 1, as PIL does between its passes.
//
// Texels are read as the 8-bit levels a decoded file would give: sRGB formats (SRGB = 1) are
// encoded back from the linear values textureLoad returns, and every format is rounded to 1/255.
//
// Bindings: 0 taps (a header K, ROWS, Y0, 0, then RES x (1 + K): first source column, then K
// weights), 1 across (3, ROWS, RES), 2 image (texture_2d, any float format).
// The numbers that change with the image's size are read from the header, not overrides: one
// pipeline serves every image (a compile per photo size would cost more than the resize).
// Thread: one output element.

override RES: u32;
override SRGB: u32 = 0u;
override ROUND: u32 = 1u;

@group(0) @binding(0) var<storage, read> taps: array<f32>;
@group(0) @binding(1) var<storage, read_write> across: array<f32>;
@group(0) @binding(2) var image: texture_2d<f32>;

// The sRGB transfer function (IEC 61966-2-1), inverting the decode textureLoad applied.
fn srgb_encode(linear: vec3<f32>) -> vec3<f32> {
    let lo = linear * 12.92;
    let hi = 1.055 * pow(max(linear, vec3<f32>(0.0)), vec3<f32>(1.0 / 2.4)) - 0.055;
    return select(hi, lo, linear <= vec3<f32>(0.0031308));
}

fn level(x: u32, y: u32) -> vec3<f32> {
    var v = textureLoad(image, vec2<u32>(x, y), 0).rgb;
    if (SRGB == 1u) {
        v = srgb_encode(v);
    }
    return round(clamp(v, vec3<f32>(0.0), vec3<f32>(1.0)) * 255.0);
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    let K = u32(taps[0]);
    let ROWS = u32(taps[1]);
    let Y0 = u32(taps[2]);
    if (t >= ROWS * RES) {
        return;
    }
    let ox = t % RES;
    let r = t / RES;
    let base = 4u + ox * (1u + K);
    let first = u32(taps[base]);
    let width = textureDimensions(image).x;
    var sum = vec3<f32>(0.0);
    for (var k = 0u; k < K; k++) {
        // Padding taps have weight 0; their column is clamped to stay inside the image.
        sum += taps[base + 1u + k] * level(min(first + k, width - 1u), Y0 + r);
    }
    if (ROUND == 1u) {
        sum = clamp(floor(sum + 0.5), vec3<f32>(0.0), vec3<f32>(255.0));
    }
    for (var c = 0u; c < 3u; c++) {
        across[(c * ROWS + r) * RES + ox] = sum[c];
    }
}
