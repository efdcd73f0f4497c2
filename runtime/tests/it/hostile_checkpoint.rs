//! Hostile masq checkpoints (issue #18): a `masq.graph` mutated so that the loader would index past
//! a node's outputs or inputs, or holding no nodes at all, must be refused with an error naming the
//! file, never a panic or an acceptance.

use std::path::{Path, PathBuf};

use masq_ir::checkpoint::{Facts, load_checkpoint, save_checkpoint};
use serde_json::Value;

fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("masq-hostile-ckpt-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Rewrite the `masq.graph` JSON of a safetensors checkpoint with `edit` (the tensors are kept:
/// their offsets are relative to the end of the header).
fn mutate_graph(path: &Path, edit: impl FnOnce(&mut Value)) {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let meta = header["__metadata__"].as_object_mut().unwrap();
    let mut graph: Value = serde_json::from_str(meta["masq.graph"].as_str().unwrap()).unwrap();
    edit(&mut graph);
    meta.insert("masq.graph".into(), Value::String(graph.to_string()));
    let mut text = serde_json::to_vec(&header).unwrap();
    while text.len() % 8 != 0 {
        text.push(b' ');
    }
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&text);
    out.extend_from_slice(&bytes[8 + n..]);
    std::fs::write(path, out).unwrap();
}

fn saved(dir: &Path, name: &str) -> PathBuf {
    let g = masq_ir::zoo::build("mnist_cnn", None, 0).unwrap();
    let p = dir.join(name);
    save_checkpoint(&p, &g, &Facts::default()).unwrap();
    assert!(load_checkpoint(&p).is_ok());
    p
}

fn refused(p: &Path) -> String {
    match load_checkpoint(p) {
        Ok((g, _)) => panic!("{}: accepted a mutated checkpoint with {} nodes", p.display(), g.nodes.len()),
        Err(e) => {
            let s = e.to_string();
            assert!(s.contains(&p.display().to_string()), "the error names no file: {s}");
            s
        }
    }
}

#[test]
fn a_node_without_outputs_or_inputs_is_an_error_not_an_index_panic() {
    let d = scratch("index");
    let p = saved(&d, "no_outputs.safetensors");
    mutate_graph(&p, |g| g["nodes"][0]["outputs"] = Value::Array(vec![]));
    let e = refused(&p);
    assert!(e.contains("output"), "{e}");

    let p = saved(&d, "no_inputs.safetensors");
    mutate_graph(&p, |g| {
        let last = g["nodes"].as_array().unwrap().len() - 1;
        g["nodes"][last]["inputs"] = Value::Array(vec![]);
    });
    let e = refused(&p);
    assert!(e.contains("inputs"), "{e}");

    let p = saved(&d, "two_outputs.safetensors");
    mutate_graph(&p, |g| g["nodes"][0]["outputs"].as_array_mut().unwrap().push(Value::from("extra")));
    refused(&p);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_graph_without_nodes_or_outputs_is_refused() {
    let d = scratch("empty");
    let p = saved(&d, "no_nodes.safetensors");
    mutate_graph(&p, |g| g["nodes"] = Value::Array(vec![]));
    let e = refused(&p);
    assert!(e.contains("no nodes"), "{e}");

    let p = saved(&d, "no_outputs.safetensors");
    mutate_graph(&p, |g| g["outputs"] = Value::Array(vec![]));
    let e = refused(&p);
    assert!(e.contains("no outputs"), "{e}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_huge_input_shape_in_the_graph_is_an_error() {
    let d = scratch("shape");
    let p = saved(&d, "huge.safetensors");
    mutate_graph(&p, |g| {
        let dims = g["inputs"][0]["shape"].as_array_mut().unwrap();
        let last = dims.len() - 1;
        dims[last] = serde_json::json!({ "Fixed": 1u64 << 40 });
    });
    let e = refused(&p);
    assert!(e.contains("elements") || e.contains("shape"), "{e}");
    std::fs::remove_dir_all(&d).unwrap();
}
