//! ImageNet-1k class names in torchvision's order (from torchvision's `_meta.py`, BSD-3-Clause).
const IMAGENET_CLASSES: &str = include_str!("imagenet_classes.txt");
/// Name of ImageNet-1k class `index`, or `None` past 999.
pub fn imagenet_label(index: usize) -> Option<&'static str> {
    IMAGENET_CLASSES.lines().nth(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn has_1000_classes_in_torchvision_order() {
        assert_eq!(IMAGENET_CLASSES.lines().count(), 1000);
        assert_eq!(imagenet_label(0), Some("tench"));
        assert_eq!(imagenet_label(1), Some("goldfish"));
        assert_eq!(imagenet_label(999), Some("toilet tissue"));
        assert_eq!(imagenet_label(1000), None);
    }
}
