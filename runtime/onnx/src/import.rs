//! ONNX import, in visible phases: [`decode`] (protobuf) -> build (a registry of builders, one
//! file per op family, with constant folding of shape arithmetic) -> infer shapes -> fold (identity
//! removal, dead-node pruning) -> validate.
//!
//! Opsets 7 to 24 of the default domain. A model with unknown ops (or fold-only ops on computed
//! values, or ops of other domains) fails with one [`IrError::UnsupportedOps`] listing every such
//! node, grouped by op type with a hint. A graph with a symbolic batch in which a node reads across
//! axis 0 (a ViT's attention moves it) is imported at batch 1 instead.
//!
//! ```no_run
//! let g = masq_onnx::import_file("model.onnx".as_ref()).unwrap();
//! println!("{} nodes", g.nodes.len());
//! ```

use std::collections::{HashMap, HashSet};
use std::path::Path;

use prost::Message;

use crate::builders;
use crate::ctx::{Consumer, Ctx, OnnxNode};
use crate::external::{self, Files};
use crate::fold;
use crate::proto::{self, ModelProto, data_type};
use crate::tensor::decode_tensor;
use masq_ir::{Dim, Graph, Op, ValueInfo};
use masq_ir::{IrError, Result, UnsupportedNode};

/// Lowest and highest supported opset of the default domain. Opsets 22 to 24 changed only the
/// element types of the supported ops (bfloat16, 4-bit and 8-bit floats) and added Cast's
/// `round_mode` for 8-bit floats, which the importer rejects as types anyway.
pub const OPSETS: std::ops::RangeInclusive<i64> = 7..=24;

/// Import an ONNX file.
pub fn import_file(path: &Path) -> Result<Graph> {
    let bytes = std::fs::read(path).map_err(|e| IrError::io(path, e))?;
    import_bytes(&bytes, path)
}

/// Import ONNX bytes; `file` names the model in errors and locates external data.
pub fn import_bytes(bytes: &[u8], file: &Path) -> Result<Graph> {
    import_bytes_with(bytes, file, Files::Disk)
}

/// Import ONNX bytes whose external data comes from `files` (see [`crate::external`]).
pub fn import_bytes_with(bytes: &[u8], file: &Path, files: Files<'_>) -> Result<Graph> {
    Ok(import_keeping(bytes, file, files, &[])?.0)
}

/// The constant values of an import, by ONNX value name: initializers and what the importer folded
/// (a DequantizeLinear of an integer weight is its f32 values), as f32.
pub type Constants = std::collections::BTreeMap<String, ndarray::ArrayD<f32>>;

/// [`import_bytes_with`], also returning the constant values named in `keep` that the model has
/// (so a caller can compare them with another copy of the weights, as the artifact loader does).
pub fn import_keeping(bytes: &[u8], file: &Path, files: Files<'_>, keep: &[String]) -> Result<(Graph, Constants)> {
    let mut model = decode(bytes, file)?;
    external::resolve(&mut model, file, files)?;
    let (mut graph, kept) = build(&model, file, keep)?;
    graph.infer_shapes(1)?;
    fold(&mut graph);
    graph.finalize()?;
    // A batch fixed at export (no dynamic axes) becomes symbolic where every node agrees; a model
    // that mixes its images stays fixed (`masq_ir::batch::diagnose` names the node).
    masq_ir::batch::generalise(&mut graph)?;
    graph.cmp_bits = cmp_bits(&model, file)?;
    graph.cmp_frac_bits = cmp_frac_bits(&model, file)?;
    graph.check_cmp_bits().map_err(|e| IrError::Malformed { file: file.to_path_buf(), reason: e.to_string() })?;
    Ok((graph, kept))
}

/// Key of the calibrated comparison widths in `metadata_props` (a JSON object: node name to bits).
pub const META_CMP_BITS: &str = "masq.cmp_bits";

/// Key of the fractional bits the widths were calibrated at (a decimal number, 1 to 40).
pub const META_CMP_FRAC_BITS: &str = "masq.cmp_frac_bits";

/// The scale of the calibrated widths ([`META_CMP_FRAC_BITS`]); `None` when not recorded.
fn cmp_frac_bits(model: &ModelProto, file: &Path) -> Result<Option<u32>> {
    let Some(p) = model.metadata_props.iter().find(|p| p.key == META_CMP_FRAC_BITS) else {
        return Ok(None);
    };
    match p.value.trim().parse::<u32>() {
        Ok(f) if (1..=40).contains(&f) => Ok(Some(f)),
        _ => Err(IrError::Malformed {
            file: file.to_path_buf(),
            reason: format!("metadata {META_CMP_FRAC_BITS}: expected fractional bits 1 to 40, got {:?}", p.value),
        }),
    }
}

/// The calibrated comparison widths a model records ([`META_CMP_BITS`]); empty when none.
fn cmp_bits(model: &ModelProto, file: &Path) -> Result<std::collections::BTreeMap<String, u32>> {
    let Some(p) = model.metadata_props.iter().find(|p| p.key == META_CMP_BITS) else {
        return Ok(Default::default());
    };
    serde_json::from_str(&p.value).map_err(|e| IrError::Malformed {
        file: file.to_path_buf(),
        reason: format!("metadata {META_CMP_BITS}: expected an object of node names to bits (2 to 64): {e}"),
    })
}

/// Phase 1: decode the protobuf.
pub fn decode(bytes: &[u8], file: &Path) -> Result<ModelProto> {
    ModelProto::decode(bytes)
        .map_err(|e| IrError::Malformed { file: file.to_path_buf(), reason: format!("not an ONNX model: {e}") })
}

fn is_default_domain(d: &str) -> bool {
    d.is_empty() || d == "ai.onnx"
}

/// The opset of the default domain.
pub fn opset(model: &ModelProto, file: &Path) -> Result<i64> {
    model.opset_import.iter().find(|o| is_default_domain(&o.domain)).map(|o| o.version).ok_or_else(|| {
        IrError::Malformed { file: file.to_path_buf(), reason: "no opset for the ai.onnx domain".into() }
    })
}

/// Phase 2: build the IR graph (and keep the constants named in `keep`).
fn build(model: &ModelProto, file: &Path, keep: &[String]) -> Result<(Graph, Constants)> {
    let opset = opset(model, file)?;
    if !OPSETS.contains(&opset) {
        return Err(IrError::Malformed {
            file: file.to_path_buf(),
            reason: format!("opset {opset} is outside the supported range {}..={}", OPSETS.start(), OPSETS.end()),
        });
    }
    let g = model
        .graph
        .as_ref()
        .ok_or_else(|| IrError::Malformed { file: file.to_path_buf(), reason: "no graph".into() })?;
    let registry = builders::registry();

    // Report every unsupported node at once, before any work.
    let unsupported = unsupported_nodes(model, g, &registry, opset);
    if !unsupported.is_empty() {
        return Err(IrError::UnsupportedOps { nodes: unsupported });
    }

    match translate(g, file, opset, &registry, false, keep) {
        // A node that reads across axis 0 of a graph with a symbolic batch: import it at batch 1
        // (fixed inputs), as if exported without dynamic axes.
        (Err(_), true) => translate(g, file, opset, &registry, true, keep).0,
        (result, _) => result,
    }
}

/// Translate the nodes; `fixed` pins a symbolic batch of the inputs to 1. Also returns whether
/// a node refused to read across a symbolic batch axis.
fn translate(
    g: &proto::GraphProto,
    file: &Path,
    opset: i64,
    registry: &HashMap<&'static str, builders::BuildFn>,
    fixed: bool,
    keep: &[String],
) -> (Result<(Graph, Constants)>, bool) {
    let name = if g.name.is_empty() {
        file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
    } else {
        g.name.clone()
    };
    let mut ctx = Ctx::new(file.to_path_buf(), Graph::new(name));
    let result = fill(&mut ctx, g, file, opset, registry, fixed);
    let refused = ctx.batch_refused.get();
    let result = result.map(|()| {
        let kept = keep.iter().filter_map(|k| ctx.consts.get(k).map(|c| (k.clone(), c.to_f32()))).collect();
        (ctx.graph, kept)
    });
    (result, refused)
}

fn fill(
    ctx: &mut Ctx,
    g: &proto::GraphProto,
    file: &Path,
    opset: i64,
    registry: &HashMap<&'static str, builders::BuildFn>,
    fixed: bool,
) -> Result<()> {
    ctx.consumed =
        g.node.iter().flat_map(|n| n.input.iter()).chain(g.output.iter().map(|o| &o.name)).cloned().collect();
    for (i, n) in g.node.iter().enumerate() {
        for input in n.input.iter().filter(|s| !s.is_empty()) {
            let c = Consumer { op: n.op_type.clone(), node: node_name(n, i) };
            ctx.consumers.entry(input.clone()).or_default().push(c);
        }
    }
    for out in &g.output {
        let c = Consumer { op: Consumer::GRAPH_OUTPUT.into(), node: out.name.clone() };
        ctx.consumers.entry(out.name.clone()).or_default().push(c);
    }
    let mut weights = 0usize;
    for t in &g.initializer {
        let mut c = decode_tensor(t, file)?;
        c.quant = crate::qdq::initializer_grid(t, &c, file)?;
        weights = weights.saturating_add(c.data.len());
        ctx.consts.insert(t.name.clone(), c);
    }
    let per_weight = weights.saturating_mul(crate::ctx::FOLD_PER_WEIGHT);
    ctx.fold_budget.set(crate::ctx::FOLD_BASE.saturating_add(per_weight));
    for input in &g.input {
        if ctx.consts.contains_key(&input.name) {
            continue;
        }
        let mut info = input_info(input, file)?;
        if fixed {
            info.shape = info.shape_at(1).into_iter().map(Dim::Fixed).collect();
        }
        masq_ir::shape::check_elements(|| format!("{}: input {}", file.display(), info.name), &info.shape_at(1))?;
        ctx.has_batch |= info.shape.first() == Some(&Dim::Batch);
        ctx.shapes.insert(info.name.clone(), info.shape_at(1));
        ctx.graph.inputs.push(info);
    }
    for (i, proto) in g.node.iter().enumerate() {
        let n = OnnxNode { proto, name: node_name(proto, i), opset };
        if let Some(c) = fold::try_fold(ctx, &n)? {
            ctx.consts.insert(n.output().to_string(), c);
            continue;
        }
        match registry.get(proto.op_type.as_str()) {
            Some(build) => build(ctx, &n)?,
            None => {
                // A fold-only op whose inputs are not constant (or a dangling input).
                for k in 0..proto.input.len() {
                    ctx.shape(&n, k)?;
                }
                return Err(n.unsupported("only supported on constant inputs"));
            }
        }
    }
    for out in &g.output {
        if !ctx.shapes.contains_key(&out.name) {
            if let Some(c) = ctx.consts.get(&out.name) {
                let t = c.to_f32();
                ctx.graph.initializers.insert(out.name.clone(), t);
            } else {
                return Err(IrError::MalformedNode {
                    file: file.to_path_buf(),
                    node: "(graph outputs)".into(),
                    reason: format!("output {:?} is produced by no node", out.name),
                });
            }
        }
        ctx.graph.outputs.push(ValueInfo::new(out.name.clone(), vec![]));
    }
    Ok(())
}

/// Every node the build phase cannot translate: ops outside the default domain, ops without a
/// builder, and fold-only ops whose inputs are not all constants (followed through the graph as
/// the folder would: initializers, `Constant`, `Shape`, and foldable ops on constants).
fn unsupported_nodes(
    model: &ModelProto,
    g: &proto::GraphProto,
    registry: &HashMap<&'static str, builders::BuildFn>,
    opset: i64,
) -> Vec<UnsupportedNode> {
    let mut constant: HashSet<&str> = g.initializer.iter().map(|t| t.name.as_str()).collect();
    let mut out = Vec::new();
    for (i, n) in g.node.iter().enumerate() {
        let op = n.op_type.as_str();
        let default = is_default_domain(&n.domain);
        let inputs_const = n.input.iter().filter(|s| !s.is_empty()).all(|s| constant.contains(s.as_str()));
        let folds = default && fold::FOLDABLE.contains(&op) && (inputs_const || op == "Shape");
        if folds {
            if let Some(o) = n.output.first() {
                constant.insert(o);
            }
            continue;
        }
        let hint = if !default {
            Some(domain_hint(&n.domain))
        } else if fold::FOLDABLE.contains(&op) && !registry.contains_key(op) {
            // Foldable, but no IR op to build on computed inputs.
            Some("only supported when its inputs are constants (folded at import)".to_string())
        } else if !registry.contains_key(op) {
            op_hint(op).map(str::to_string)
        } else {
            continue;
        };
        out.push(UnsupportedNode {
            node: node_name(n, i),
            op_type: n.op_type.clone(),
            domain: n.domain.clone(),
            opset: model.opset_import.iter().find(|o| o.domain == n.domain).map(|o| o.version).unwrap_or(opset),
            hint,
        });
    }
    out
}

fn domain_hint(domain: &str) -> String {
    if domain.starts_with("com.microsoft") {
        "an onnxruntime-specific op: re-export without onnxruntime-specific fusions".into()
    } else if domain == "ai.onnx.ml" {
        "a classical-ML (ai.onnx.ml) op: only neural-network ops of the default domain are supported".into()
    } else {
        format!("custom domain {domain}: re-export with standard ONNX ops only")
    }
}

fn op_hint(op: &str) -> Option<&'static str> {
    Some(match op {
        "Loop" | "If" | "Scan" => "control flow: export with fixed shapes / torch.onnx.export(..., dynamo=True)",
        "Resize" | "Upsample" => "not supported yet",
        "SequenceConstruct" | "SequenceAt" | "SequenceInsert" | "SplitToSequence" | "ConcatFromSequence" => {
            "sequence values are not supported: export with fixed shapes"
        }
        "NonZero" | "NonMaxSuppression" | "TopK" | "Unique" => "a data-dependent output shape",
        "QLinearConv" | "QLinearMatMul" | "ConvInteger" | "MatMulInteger" => {
            "a QOperator-format quantized op: quantize in the QDQ format instead (onnxruntime \
             quantize_static(..., quant_format=QuantFormat.QDQ)), whose QuantizeLinear/DequantizeLinear pairs masq imports"
        }
        "DynamicQuantizeLinear" => "dynamic quantization is not supported: quantize statically in the QDQ format",
        _ => return None,
    })
}

fn node_name(n: &proto::NodeProto, i: usize) -> String {
    if n.name.is_empty() { format!("{}#{i}", n.op_type) } else { n.name.clone() }
}

fn input_info(v: &proto::ValueInfoProto, file: &Path) -> Result<ValueInfo> {
    let bad =
        |reason: String| IrError::Malformed { file: file.to_path_buf(), reason: format!("input {}: {reason}", v.name) };
    let ty = v.r#type.as_ref().ok_or_else(|| bad("no type".into()))?;
    // A sequence, map or optional input (its TypeProto field is not decoded) is a valid model
    // masq cannot compute on.
    let tt = ty.tensor_type.as_ref().ok_or_else(|| IrError::UnsupportedDtype {
        name: v.name.clone(),
        dtype: "a non-tensor type (sequence, map or optional)".into(),
    })?;
    if tt.elem_type != data_type::FLOAT {
        return Err(IrError::UnsupportedDtype { name: v.name.clone(), dtype: format!("ONNX type {}", tt.elem_type) });
    }
    let shape = tt.shape.as_ref().ok_or_else(|| bad("no shape".into()))?;
    let mut dims = Vec::new();
    for (i, d) in shape.dim.iter().enumerate() {
        match d.dim_value {
            Some(v) if v > 0 => {
                dims.push(Dim::Fixed(usize::try_from(v).map_err(|_| bad(format!("dimension {i} is {v}")))?))
            }
            _ if i == 0 => dims.push(Dim::Batch),
            _ => return Err(bad(format!("dimension {i} is symbolic ({:?}); only the batch may be", d.dim_param))),
        }
    }
    Ok(ValueInfo::new(v.name.clone(), dims))
}

/// Phase 4: remove Identity nodes (unless they produce a graph output) and dead nodes.
fn fold(graph: &mut Graph) {
    let outputs: Vec<String> = graph.outputs.iter().map(|o| o.name.clone()).collect();
    let mut rename: HashMap<String, String> = HashMap::new();
    graph.nodes.retain(|node| {
        if matches!(node.op, Op::Identity) && !outputs.contains(&node.outputs[0]) {
            let src = rename.get(&node.inputs[0]).cloned().unwrap_or_else(|| node.inputs[0].clone());
            rename.insert(node.outputs[0].clone(), src);
            false
        } else {
            true
        }
    });
    for node in &mut graph.nodes {
        for input in &mut node.inputs {
            if let Some(src) = rename.get(input) {
                *input = src.clone();
            }
        }
    }
    graph.prune();
}
