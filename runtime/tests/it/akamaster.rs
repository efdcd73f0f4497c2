//! The akamaster CIFAR ResNet checkpoints load into the zoo graphs by name.
//! Needs MASQ_MODELS_DIR (e.g. ../shared/models); skips with a message when it is unset.

use masq_ir::{weights::read_safetensors, zoo};
use masq_runtime::plain;

#[test]
fn checkpoints_load_into_zoo_graphs() {
    let Some(dir) = std::env::var_os("MASQ_MODELS_DIR") else {
        eprintln!("skipping: MASQ_MODELS_DIR is unset (set it to ../shared/models to run this test)");
        return;
    };
    let dir = std::path::PathBuf::from(dir).join("akamaster");
    for (name, file) in [("resnet20", "resnet20-12fca82f"), ("resnet56", "resnet56-4bfd9763")] {
        let w = read_safetensors(dir.join(format!("{file}.safetensors"))).unwrap();
        let mut g = zoo::build(name, None, 0).unwrap();
        let before = g.initializers["layer1.0.conv1.weight"].clone();
        zoo::apply_weights(&mut g, &w).unwrap();
        assert_eq!(g.initializers["layer1.0.conv1.weight"], w["module.layer1.0.conv1.weight"]);
        assert_ne!(g.initializers["layer1.0.conv1.weight"], before);
        let y = plain::run_single(&g, ndarray::ArrayD::from_elem(vec![1, 3, 32, 32], 0.1f32)).unwrap();
        assert!(y.iter().all(|v| v.is_finite()));
    }
    // Wrong architecture: a ResNet-20 checkpoint does not fit ResNet-32.
    let w = read_safetensors(dir.join("resnet20-12fca82f.safetensors")).unwrap();
    let mut g = zoo::build("resnet32", None, 0).unwrap();
    assert!(zoo::apply_weights(&mut g, &w).is_err());
}
