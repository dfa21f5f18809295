//! How a convolution pads its input, and the output size that follows: shared by the conv kernels'
//! shape checks and the model's shape walk.

use serde::{Deserialize, Serialize};

/// How a convolution pads its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Padding {
    /// `(k-1)/2` on every side: what PyTorch-trained weights (torchvision, timm `efficientnet_*`) expect.
    Symmetric,
    /// TensorFlow "SAME": output `ceil(in/s)`, total padding `max((ceil(in/s)-1)·s + k - in, 0)`
    /// split `total/2` before and the rest after. TF-trained weights (timm `tf_*`, lukemelas) need it.
    TfSame,
}

/// Output size and padding before the input (top or left) of a convolution along one axis.
///
/// `stride` below 1 is treated as 1 so that a bad custom value cannot divide by zero; the padding
/// after the input is implied by `out_size`.
pub fn conv_padding(padding: Padding, in_size: usize, kernel: usize, stride: usize) -> (usize, usize) {
    let stride = stride.max(1);
    match padding {
        Padding::Symmetric => {
            let pad = kernel.saturating_sub(1) / 2;
            let out = (in_size + 2 * pad).saturating_sub(kernel) / stride + 1;
            (out, pad)
        }
        Padding::TfSame => {
            let out = in_size.div_ceil(stride);
            let total = ((out.saturating_sub(1)) * stride + kernel).saturating_sub(in_size);
            (out, total / 2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_padding_matches_pytorch_formula() {
        assert_eq!(conv_padding(Padding::Symmetric, 224, 3, 2), (112, 1));
        assert_eq!(conv_padding(Padding::Symmetric, 15, 5, 2), (8, 2));
        assert_eq!(conv_padding(Padding::Symmetric, 7, 1, 1), (7, 0));
    }

    #[test]
    fn tf_same_padding_is_asymmetric_at_stride_two() {
        // 224, k3, s2: out 112, total pad (111·2 + 3 - 224) = 1 → 0 before, 1 after.
        assert_eq!(conv_padding(Padding::TfSame, 224, 3, 2), (112, 0));
        // 15, k5, s2: out 8, total (7·2 + 5 - 15) = 4 → 2 before.
        assert_eq!(conv_padding(Padding::TfSame, 15, 5, 2), (8, 2));
        // 14, k5, s1: total 4 → 2 before.
        assert_eq!(conv_padding(Padding::TfSame, 14, 5, 1), (14, 2));
        // 113, k3, s2: out 57, total (56·2 + 3 - 113) = 2 → 1 before.
        assert_eq!(conv_padding(Padding::TfSame, 113, 3, 2), (57, 1));
    }
}
