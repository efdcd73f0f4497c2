//! `vit_cifar`: a small vision transformer for 32×32 images (issue #19): 4×4 patches, width 128,
//! 4 pre-norm blocks of 4 heads (head dimension 32) and an MLP of hidden width 256, no class token
//! (the tokens are averaged), a linear head.
//!
//! - `patch_embed.proj`: Conv 3→128, kernel 4, stride 4, with bias; Reshape `[0, 0, -1]` to
//!   `[N, 128, 64]`, Transpose to `[N, 64, 128]` (tokens in row-major patch order); Add of the
//!   learned `pos_embed` `[1, 64, 128]`.
//! - `blocks.{i}`, i = 0..3: `x = x + Attn(LN(x))`, `x = x + MLP(LN(x))`.
//!   - `norm1`, `norm2`: LayerNormalization over the last axis, ε = 1e-5, scale and bias.
//!   - `attn.qkv`: MatMul by a `[128, 384]` weight + bias Add; Slice into Q, K, V (128 each),
//!     Reshape `[0, 0, 4, 32]`, Transpose Q and V to `[N, 4, 64, 32]`, K to `[N, 4, 32, 64]`;
//!     `attn.scores` = MatMul(Q, Kᵀ) (a product of two computed tensors), `attn.scaled` = Div by
//!     the constant `attn.sqrt_head_dim` = √32 (a fixed buffer: the trainer keeps divisors
//!     constant, where a Mul's constant operand would be trained), `attn.softmax` over the last
//!     axis, `attn.context` = MatMul(attention, V), Transpose back and Reshape `[0, 0, 128]`,
//!     `attn.proj` MatMul `[128, 128]` + bias.
//!   - `mlp.fc1` MatMul `[128, 256]` + bias, `mlp.act` exact (erf) Gelu, `mlp.fc2` `[256, 128]` + bias.
//! - `norm` (LayerNormalization), `pool` (ReduceMean over the tokens), `head` Gemm 128→classes.
//!
//! Parameter names follow timm's `VisionTransformer`, but the MatMul weights are stored `[in, out]`
//! (transposed from `nn.Linear.weight`; `head.weight` is a Gemm's `[out, in]`). Initialisation
//! (seeded): linear weights and `pos_embed` truncated normal, std 0.02 (±2σ); the patch conv
//! uniform ±1/√fan_in (PyTorch's Conv2d default); biases 0; LayerNorm scale 1, bias 0.
//!
//! At 3×32×32 with 10 classes: 545,934 parameters (4 of them the √32 divisors), 38,143,232 MACs
//! in the conv, the MatMuls and the head (plus the LayerNorms', Softmaxes' and Gelus' own, see
//! [`crate::cost`]) and no ReLU. Every Reshape keeps the batch axis (`0`), so the graph
//! runs at any batch; `@HxW` changes the token count (and `pos_embed`) to (H/4)·(W/4).

use super::Builder;
use crate::error::Result;
use crate::{
    BinaryConfig, ConvConfig, GeluConfig, GemmConfig, LayerNormConfig, MatMulConfig, Op, ReduceConfig, ReshapeConfig,
    SliceConfig, SoftmaxConfig, TransposeConfig,
};

/// Token width.
pub(crate) const WIDTH: usize = 128;
/// Transformer blocks.
pub(crate) const DEPTH: usize = 4;
/// Attention heads (head dimension `WIDTH / HEADS` = 32).
pub(crate) const HEADS: usize = 4;
/// Hidden width of the MLPs.
pub(crate) const MLP_HIDDEN: usize = 256;
/// Patch side.
pub(crate) const PATCH: usize = 4;
/// Standard deviation of the truncated-normal initialisation.
const STD: f32 = 0.02;

pub(crate) fn build(b: &mut Builder, classes: usize) -> Result<()> {
    let input = b.input.clone();
    let cin = b.shape(&input)[1];
    let fan_in = cin * PATCH * PATCH;
    let bound = 1.0 / (fan_in as f32).sqrt();
    let weight = b.uniform("patch_embed.proj.weight", &[WIDTH, cin, PATCH, PATCH], -bound, bound);
    let bias = b.filled("patch_embed.proj.bias", &[WIDTH], 0.0);
    let conv = ConvConfig {
        weight,
        bias: Some(bias),
        kernel: [PATCH; 2],
        stride: [PATCH; 2],
        padding: [0; 4],
        dilation: [1, 1],
        groups: 1,
    };
    let x = b.push("patch_embed.proj", Op::Conv(conv), &[&input])?;
    let x = b.push("patch_embed.flatten", reshape(&[0, 0, -1]), &[&x])?;
    let x = b.push("patch_embed.transpose", transpose(&[0, 2, 1]), &[&x])?;
    let tokens = b.shape(&x)[1];
    let pos = b.trunc_normal("pos_embed", &[1, tokens, WIDTH], STD);
    let mut x = b.add("pos_embed.add", &x, &pos)?;
    for i in 0..DEPTH {
        x = block(b, &format!("blocks.{i}"), &x)?;
    }
    let x = layer_norm(b, "norm", &x)?;
    let x = b.push("pool", Op::ReduceMean(ReduceConfig { axes: vec![1], keepdims: false }), &[&x])?;
    let weight = b.trunc_normal("head.weight", &[classes, WIDTH], STD);
    let bias = b.filled("head.bias", &[classes], 0.0);
    b.push("head", Op::Gemm(GemmConfig { weight, bias: Some(bias) }), &[&x])?;
    Ok(())
}

fn reshape(shape: &[i64]) -> Op {
    Op::Reshape(ReshapeConfig { shape: shape.to_vec() })
}

fn transpose(perm: &[usize]) -> Op {
    Op::Transpose(TransposeConfig { perm: perm.to_vec() })
}

/// One pre-norm block on `[N, T, WIDTH]` tokens.
fn block(b: &mut Builder, p: &str, x: &str) -> Result<String> {
    let h = layer_norm(b, &format!("{p}.norm1"), x)?;
    let h = attention(b, &format!("{p}.attn"), &h)?;
    let x = b.add(&format!("{p}.add1"), x, &h)?;
    let h = layer_norm(b, &format!("{p}.norm2"), &x)?;
    let h = dense(b, &format!("{p}.mlp.fc1"), &h, MLP_HIDDEN)?;
    let h = b.push(&format!("{p}.mlp.act"), Op::Gelu(GeluConfig { tanh: false }), &[&h])?;
    let h = dense(b, &format!("{p}.mlp.fc2"), &h, WIDTH)?;
    b.add(&format!("{p}.add2"), &x, &h)
}

/// LayerNormalization over the last axis with scale 1 and bias 0 (`NAME.weight`, `NAME.bias`).
fn layer_norm(b: &mut Builder, name: &str, x: &str) -> Result<String> {
    let axis = b.shape(x).len() - 1;
    let width = b.shape(x)[axis];
    let scale = b.filled(&format!("{name}.weight"), &[width], 1.0);
    let bias = b.filled(&format!("{name}.bias"), &[width], 0.0);
    let cfg = LayerNormConfig { axis, epsilon: 1e-5, scale: Some(scale), bias: Some(bias) };
    b.push(name, Op::LayerNorm(cfg), &[x])
}

/// `x · W + b` on the last axis: MatMul `NAME` by `NAME.weight` `[in, out]`, then
/// `NAME.add_bias` of `NAME.bias` `[out]`.
fn dense(b: &mut Builder, name: &str, x: &str, out: usize) -> Result<String> {
    let cin = *b.shape(x).last().expect("a token tensor has a last axis");
    let weight = b.trunc_normal(&format!("{name}.weight"), &[cin, out], STD);
    let bias = b.filled(&format!("{name}.bias"), &[out], 0.0);
    let y = b.push(name, Op::MatMul(MatMulConfig {}), &[x, &weight])?;
    b.add(&format!("{name}.add_bias"), &y, &bias)
}

/// Multi-head self-attention on `[N, T, WIDTH]` tokens.
fn attention(b: &mut Builder, p: &str, x: &str) -> Result<String> {
    let d = WIDTH / HEADS;
    let qkv = dense(b, &format!("{p}.qkv"), x, 3 * WIDTH)?;
    // Slice `which` out of the fused projection and split it into heads: [N, T, HEADS, d], then
    // permuted by `perm`.
    let split = |b: &mut Builder, which: &str, k: usize, perm: &[usize]| -> Result<String> {
        let slice = SliceConfig { axes: vec![2], starts: vec![k * WIDTH], ends: vec![(k + 1) * WIDTH], steps: vec![1] };
        let s = b.push(&format!("{p}.{which}"), Op::Slice(slice), &[&qkv])?;
        let s = b.push(&format!("{p}.{which}.split_heads"), reshape(&[0, 0, HEADS as i64, d as i64]), &[&s])?;
        b.push(&format!("{p}.{which}.transpose"), transpose(perm), &[&s])
    };
    let q = split(b, "q", 0, &[0, 2, 1, 3])?;
    let k = split(b, "k", 1, &[0, 2, 3, 1])?;
    let v = split(b, "v", 2, &[0, 2, 1, 3])?;
    let scores = b.push(&format!("{p}.scores"), Op::MatMul(MatMulConfig {}), &[&q, &k])?;
    let divisor = b.filled(&format!("{p}.sqrt_head_dim"), &[1], (d as f32).sqrt());
    let scores = b.push(&format!("{p}.scaled"), Op::Div(BinaryConfig {}), &[&scores, &divisor])?;
    let attn = b.push(&format!("{p}.softmax"), Op::Softmax(SoftmaxConfig { axis: 3 }), &[&scores])?;
    let ctx = b.push(&format!("{p}.context"), Op::MatMul(MatMulConfig {}), &[&attn, &v])?;
    let ctx = b.push(&format!("{p}.merge.transpose"), transpose(&[0, 2, 1, 3]), &[&ctx])?;
    let ctx = b.push(&format!("{p}.merge_heads"), reshape(&[0, 0, WIDTH as i64]), &[&ctx])?;
    dense(b, &format!("{p}.proj"), &ctx, WIDTH)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zoo;
    use crate::{Dim, report};

    #[test]
    fn shapes_parameters_and_costs() {
        let g = zoo::build("vit_cifar", None, 0).unwrap();
        let shapes = g.infer_shapes(3).unwrap();
        assert_eq!(shapes["patch_embed.transpose"], vec![3, 64, 128]);
        assert_eq!(shapes["blocks.0.attn.q.transpose"], vec![3, 4, 64, 32]);
        assert_eq!(shapes["blocks.0.attn.k.transpose"], vec![3, 4, 32, 64]);
        assert_eq!(shapes["blocks.3.attn.softmax"], vec![3, 4, 64, 64]);
        assert_eq!(shapes["blocks.3.add2"], vec![3, 64, 128]);
        assert_eq!(shapes["pool"], vec![3, 128]);
        assert_eq!(g.outputs[0].shape, vec![Dim::Batch, Dim::Fixed(10)]);
        assert_eq!(g.initializers["blocks.1.attn.qkv.weight"].shape(), &[128, 384]);
        assert_eq!(g.initializers["blocks.2.mlp.fc2.weight"].shape(), &[256, 128]);

        let (w, t, h, c) = (128u64, 64u64, 256u64, 10u64);
        let ln = 2 * w;
        let block = ln + (w * 3 * w + 3 * w) + (w * w + w) + ln + (w * h + h) + (h * w + w) + 1;
        let params = (w * 3 * 16 + w) + t * w + 4 * block + ln + (w * c + c);
        let r = report::report(&g).unwrap();
        assert_eq!(r.params, params);
        assert_eq!(r.params, 545_934);
        // Conv, MatMuls (QKV, Q·Kᵀ, attention·V, projection, fc1, fc2) and the head; the
        // normalisations, Softmax and Gelu cost what `crate::cost` says for their approximations.
        let block_macs = t * w * 3 * w + 2 * HEADS as u64 * t * t * 32 + t * w * w + 2 * t * w * h;
        let linear = t * w * 48 + 4 * block_macs + w * c;
        let is_linear = |op: &str| matches!(op, "Conv" | "MatMul" | "Gemm");
        let got: u64 = r.layers.iter().filter(|l| is_linear(&l.op)).map(|l| l.macs).sum();
        assert_eq!(got, linear);
        assert_eq!(got, 38_143_232);
        assert!(r.macs > linear);
        assert_eq!(r.relu_count, 0);
        assert_eq!(r.maxpool_comparisons + r.clip_comparisons + r.leaky_relu_comparisons, 0);
        assert!(r.supports_batch);
        // A larger input has more tokens.
        let g = zoo::build("vit_cifar", Some((64, 64)), 0).unwrap();
        assert_eq!(g.initializers["pos_embed"].shape(), &[1, 256, 128]);
    }

    #[test]
    fn initialisation_is_seeded_and_transformer_like() {
        let a = zoo::build("vit_cifar", None, 5).unwrap();
        assert_eq!(a, zoo::build("vit_cifar", None, 5).unwrap());
        assert_ne!(a, zoo::build("vit_cifar", None, 6).unwrap());
        let w = &a.initializers["blocks.0.attn.qkv.weight"];
        let n = w.len() as f32;
        let mean = w.iter().sum::<f32>() / n;
        let std = (w.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / n).sqrt();
        assert!(mean.abs() < 1e-3 && (0.016..0.019).contains(&std), "mean {mean}, std {std}");
        assert!(w.iter().all(|v| v.abs() <= 0.04));
        assert!(a.initializers["blocks.0.norm1.weight"].iter().all(|&v| v == 1.0));
        assert!(a.initializers["blocks.0.mlp.fc1.bias"].iter().all(|&v| v == 0.0));
        assert_eq!(a.initializers["blocks.3.attn.sqrt_head_dim"].as_slice().unwrap(), &[32f32.sqrt()]);
    }
}
