//! The texel copies a replay encodes (`gpu::encode_dispatches`): a recording (`graph::Recorder`)
//! binds each texel input from the texture that holds it after the dispatches before it, so a copy
//! is skipped where its texture still holds the range, and never once a dispatch has written the
//! buffer since.

use crate::common::*;
use efficientnet_wgpu::gpu::{encoded_copies, submit};
use efficientnet_wgpu::graph::Recorder;
use efficientnet_wgpu::ops::{add_inplace, bn_act_fwd, BnParams, KernelVariant};

#[test]
fn a_copy_is_skipped_only_while_its_texture_holds_the_unchanged_range() {
    // y = x (BN with scale 1, shift 0, read as texels), then x += 1, then y = x twice more.
    let (m, c) = (37, 8);
    let x0 = rand_vec(m * c, 120);
    let mut p = BnParams::new(m, c, m);
    p.variant = KernelVariant::Texel;
    let ss: Vec<f32> = (0..2 * c).map(|i| if i < c { 1.0 } else { 0.0 }).collect();
    let (x, ones, ssg) = (upload(&x0), upload(&vec![1.0; m * c]), upload(&ss));
    let ys = [empty(m * c), empty(m * c), empty(m * c)];
    let mut r = Recorder::new(gpu());
    for d in [
        bn_act_fwd(gpu(), &p, &x, &ssg, None, &x, &ys[0]).unwrap(),
        add_inplace(gpu(), m * c, &ones, &x).unwrap(),
        bn_act_fwd(gpu(), &p, &x, &ssg, None, &x, &ys[1]).unwrap(),
        bn_act_fwd(gpu(), &p, &x, &ssg, None, &x, &ys[2]).unwrap(),
    ] {
        r.push(d, "texel copies").unwrap();
    }
    let ds = r.dispatches;
    // Every read of x binds the texture that held it when recorded; the replay copies x before
    // the first read and after the write, not before the last read.
    assert!(ds.iter().filter(|d| d.kernel.name().starts_with("bn_act")).all(|d| d.copies.len() == 1));
    assert!(std::sync::Arc::ptr_eq(&ds[2].copies[0].texture, &ds[3].copies[0].texture));
    let encoded = encoded_copies(&ds);
    assert_eq!(encoded.len(), 2, "copies encoded");
    assert!(std::ptr::eq(encoded[0], &ds[0].copies[0]) && std::ptr::eq(encoded[1], &ds[2].copies[0]));
    submit(gpu(), &ds).unwrap();
    let got = gpu().read_many(&[&ys[0], &ys[1], &ys[2]]).unwrap();
    let x1: Vec<f32> = x0.iter().map(|v| v + 1.0).collect();
    assert_eq!(got[0], x0, "before the write");
    assert_eq!(got[1], x1, "after the write: copied again");
    assert_eq!(got[2], x1, "copy skipped: the texture still holds x + 1");
}
