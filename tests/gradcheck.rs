//! Every CPU-twin backward (`src/cpu_ref`) against central finite differences of its forward twin.
//! Convention: a scalar loss L = sum_i r_i * y_i with fixed random r, accumulated in f64; inputs of
//! order 1 perturbed by h in f32. Each module states its h and tolerance.

mod common;

#[path = "gradcheck/bn_act.rs"]
mod bn_act;
#[path = "gradcheck/conv.rs"]
mod conv;
#[path = "gradcheck/gemm.rs"]
mod gemm;
