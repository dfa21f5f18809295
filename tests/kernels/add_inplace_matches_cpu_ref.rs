use crate::common::*;
use efficientnet_wgpu::cpu_ref;
use efficientnet_wgpu::ops::add_inplace;

/// One f32 addition per element: the GPU result must equal the twin's bit for bit.
fn check(total: usize, y_len: usize, seed: u64) {
    let x = rand_vec(total, seed);
    let y0 = rand_vec(y_len, seed + 1);
    let mut want = y0.clone();
    cpu_ref::add_inplace(total, &x, &mut want);
    let (xg, yg) = (upload(&x), upload(&y0));
    let got = run_and_read(&[add_inplace(gpu(), total, &xg, &yg).unwrap()], &yg);
    assert_close(&format!("total {total}"), &got, &want, 0.0, 0.0);
    // Elements past `total` untouched.
    assert_eq!(&got[total..], &y0[total..]);
}

#[test]
fn multiple_of_4_tail_and_tiny() {
    check(1024, 1024, 200);
    check(1003, 1003, 201);
    check(3, 3, 202);
    check(1, 1, 203);
}

#[test]
fn leaves_the_rest_of_a_longer_buffer() {
    check(257, 300, 210);
}

#[test]
fn rejects_short_buffers_and_aliasing() {
    let y = empty(10);
    assert!(add_inplace(gpu(), 10, &empty(9), &y).is_err());
    assert!(add_inplace(gpu(), 11, &empty(11), &y).is_err());
    assert!(add_inplace(gpu(), 5, &y.slice(0, 5), &y).is_err());
}
