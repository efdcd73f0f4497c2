//! Rotated ReLU: per-channel slopes, thresholding, folding (docs/ALGORITHMS.md §6).
