//! The image-file datasets (`folder`, `tiny-imagenet`) on generated JPEG/PNG files: labels,
//! pixels, grayscale conversion, resizing, and errors that name the offending file.

use std::path::{Path, PathBuf};

use image::{ImageFormat, Luma, Rgb};
use masq_trainer::data::{Augment, DatasetKind, Split, load, load_split};

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("masq-imgdata-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A deterministic RGB pattern; `salt` makes images differ.
fn pattern(w: u32, h: u32, salt: u32) -> image::RgbImage {
    image::RgbImage::from_fn(w, h, |x, y| {
        Rgb([
            ((x * 13 + y * 7 + salt * 29) % 256) as u8,
            ((x * y + salt) % 256) as u8,
            ((255 - x * 3 + salt) % 256) as u8,
        ])
    })
}

fn save_png(path: &Path, img: &image::RgbImage) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    img.save_with_format(path, ImageFormat::Png).unwrap();
}

fn save_jpeg(path: &Path, img: &image::DynamicImage) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    img.save_with_format(path, ImageFormat::Jpeg).unwrap();
}

fn flat(w: u32, h: u32, c: [u8; 3]) -> image::DynamicImage {
    image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(w, h, Rgb(c)))
}

/// Image `i` of a dataset as CHW bytes.
fn chw(d: &masq_trainer::data::Dataset, i: usize) -> &[u8] {
    let n = d.image_len();
    &d.images[i * n..(i + 1) * n]
}

fn to_chw(img: &image::RgbImage) -> Vec<u8> {
    (0..3).flat_map(|c| img.pixels().map(move |p| p.0[c])).collect()
}

fn near(a: &[u8], b: &[u8], tol: u8) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.abs_diff(*y) <= tol)
}

#[test]
fn folder_round_trip_labels_follow_sorted_class_names() {
    let d = tmpdir("folder");
    // Created out of order; the classes are the sorted names ant, bee, cat.
    let mut expected = Vec::new();
    for (class, label, n) in [("cat", 2i64, 2u32), ("ant", 0, 3), ("bee", 1, 1)] {
        for k in 0..n {
            let img = pattern(12, 10, label as u32 * 10 + k);
            save_png(&d.join(format!("train/{class}/img{k}.png")), &img);
            expected.push((format!("train/{class}/img{k}.png"), label, img));
        }
    }
    // A nested directory is read too; other files are skipped.
    let nested = pattern(12, 10, 99);
    save_png(&d.join("train/bee/more/deep.PNG"), &nested);
    std::fs::write(d.join("train/bee/notes.txt"), "not an image").unwrap();
    save_png(&d.join("val/cat/v0.png"), &pattern(12, 10, 7));
    save_jpeg(&d.join("val/ant/v1.jpg"), &flat(12, 10, [200, 40, 90]));

    let s = load(DatasetKind::parse("folder").unwrap(), Some(&d)).unwrap();
    assert_eq!((s.train.shape, s.train.classes, s.train.len()), ([3, 10, 12], 3, 7));
    // Files in path order: ant (3), bee (img0, more/deep), cat (2).
    assert_eq!(s.train.labels, vec![0, 0, 0, 1, 1, 2, 2]);
    let by_path = |p: &str| expected.iter().find(|(q, _, _)| q == p).unwrap();
    assert_eq!(chw(&s.train, 0), to_chw(&by_path("train/ant/img0.png").2).as_slice());
    assert_eq!(chw(&s.train, 2), to_chw(&by_path("train/ant/img2.png").2).as_slice());
    assert_eq!(chw(&s.train, 3), to_chw(&by_path("train/bee/img0.png").2).as_slice());
    assert_eq!(chw(&s.train, 4), to_chw(&nested).as_slice());
    assert_eq!(chw(&s.train, 6), to_chw(&by_path("train/cat/img1.png").2).as_slice());
    // The test split: val/, labels by the training classes, JPEG close to the encoded colour.
    assert_eq!((s.test.len(), s.test.classes, s.test.labels.clone()), (2, 3, vec![0, 2]));
    let j = chw(&s.test, 0);
    assert!(near(&j[..120], &[200; 120], 3) && near(&j[120..240], &[40; 120], 3) && near(&j[240..], &[90; 120], 3));
    assert_eq!(chw(&s.test, 1), to_chw(&pattern(12, 10, 7)).as_slice());

    // folder@HxW: centre crop to the aspect ratio, then resize. A 16-wide image whose middle
    // half is green, cropped to 8x8, is all green.
    let r = tmpdir("folder-resize");
    let img =
        image::RgbImage::from_fn(16, 8, |x, _| if (4..12).contains(&x) { Rgb([0, 255, 0]) } else { Rgb([255, 0, 0]) });
    save_png(&r.join("train/a/x.png"), &img);
    save_png(&r.join("train/b/y.png"), &pattern(30, 20, 1));
    save_png(&r.join("test/b/z.png"), &pattern(5, 9, 2));
    let kind = DatasetKind::parse("folder@8").unwrap();
    assert_eq!(kind, DatasetKind::Folder { image_size: Some((8, 8)) });
    let s = load(kind, Some(&r)).unwrap();
    assert_eq!((s.train.shape, s.test.shape, s.test.labels.clone()), ([3, 8, 8], [3, 8, 8], vec![1]));
    let a = chw(&s.train, 0);
    assert!(
        a[..64].iter().all(|&v| v == 0) && a[64..128].iter().all(|&v| v == 255) && a[128..].iter().all(|&v| v == 0)
    );
    let s = load_split(DatasetKind::parse("folder@4x6").unwrap(), Some(&r), Split::Train).unwrap();
    assert_eq!(s.shape, [3, 4, 6]);

    std::fs::remove_dir_all(&d).unwrap();
    std::fs::remove_dir_all(&r).unwrap();
}

/// A Tiny-ImageNet-200 layout with the given WordNet ids, `per` training images per class
/// (constant colours; the second image of the first wnid in wnids.txt is grayscale) and the
/// validation annotations given.
fn tiny(root: &Path, wnids: &[&str], per: u32, val: &[(&str, &str)]) {
    std::fs::create_dir_all(root).unwrap();
    std::fs::write(root.join("wnids.txt"), wnids.join("\n") + "\n").unwrap();
    for (i, w) in wnids.iter().enumerate() {
        for k in 0..per {
            let p = root.join(format!("train/{w}/images/{w}_{k}.JPEG"));
            if i == 0 && k == 1 {
                let g = image::GrayImage::from_pixel(64, 64, Luma([77]));
                save_jpeg(&p, &image::DynamicImage::ImageLuma8(g));
            } else {
                save_jpeg(&p, &flat(64, 64, [10 + 40 * i as u8, 20 * k as u8, 200]));
            }
        }
        std::fs::write(root.join(format!("train/{w}/{w}_boxes.txt")), "ignored\t0\t0\t63\t63\n").unwrap();
    }
    let mut ann = String::new();
    for (k, (file, wnid)) in val.iter().enumerate() {
        let i = wnids.iter().position(|w| w == wnid).unwrap_or(0);
        save_jpeg(&root.join("val/images").join(file), &flat(64, 64, [10 + 40 * i as u8, 5 * k as u8, 100]));
        ann.push_str(&format!("{file}\t{wnid}\t0\t0\t63\t63\n"));
    }
    std::fs::write(root.join("val/val_annotations.txt"), ann).unwrap();
}

#[test]
fn tiny_imagenet_layout_with_annotations_and_grayscale() {
    let d = tmpdir("tiny");
    let root = d.join("tiny-imagenet-200");
    // Sorted: n01 (label 0), n02 (1), n03 (2).
    let wnids = ["n03", "n01", "n02"];
    tiny(&root, &wnids, 2, &[("val_0.JPEG", "n02"), ("val_1.JPEG", "n03"), ("val_2.JPEG", "n01")]);
    let kind = DatasetKind::parse("tiny-imagenet").unwrap();
    assert_eq!(kind.default_augment(), Augment { crop_padding: 8, flip: true });
    assert_eq!(kind.default_norm().mean.len(), 3);
    // The parent directory works too (it holds tiny-imagenet-200/).
    let s = load(kind, Some(&d)).unwrap();
    assert_eq!((s.train.shape, s.train.classes, s.train.len()), ([3, 64, 64], 3, 6));
    assert_eq!(s.train.labels, vec![0, 0, 1, 1, 2, 2]);
    // n03 is first in wnids.txt: its image 1 is the grayscale one, now three equal channels.
    let g = chw(&s.train, 5);
    assert!(near(g, &[77; 3 * 4096], 2), "grayscale image not replicated");
    let n03 = chw(&s.train, 4);
    assert!(near(&n03[..4096], &[10; 4096], 3) && near(&n03[8192..], &[200; 4096], 3));
    let n01 = chw(&s.train, 1);
    assert!(near(&n01[..4096], &[50; 4096], 3) && near(&n01[4096..8192], &[20; 4096], 3));
    assert_eq!((s.test.len(), s.test.labels.clone()), (3, vec![1, 2, 0]));
    assert!(near(&chw(&s.test, 1)[..4096], &[10; 4096], 3));

    // Resized on request.
    let t = load_split(DatasetKind::parse("tiny_imagenet@32").unwrap(), Some(&root), Split::Test).unwrap();
    assert_eq!((t.shape, t.len()), ([3, 32, 32], 3));
    assert_eq!(
        DatasetKind::parse("tiny-imagenet@32").unwrap().default_augment(),
        Augment { crop_padding: 4, flip: true }
    );
    std::fs::remove_dir_all(&d).unwrap();
}

fn err_of<T: std::fmt::Debug>(r: masq_trainer::Result<T>) -> String {
    // The whole chain: Io errors name the path in the outer message, the cause in the source.
    let e = r.unwrap_err();
    let mut s = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(c) = src {
        s.push_str(&format!(": {c}"));
        src = c.source();
    }
    s
}

#[test]
fn errors_name_the_offending_file_or_directory() {
    let folder = DatasetKind::parse("folder").unwrap();
    let d = tmpdir("errors");

    // Bad JPEG bytes.
    save_png(&d.join("f1/train/a/ok.png"), &pattern(8, 8, 0));
    std::fs::create_dir_all(d.join("f1/train/b")).unwrap();
    std::fs::write(d.join("f1/train/b/broken.jpg"), [0xff, 0xd8, 0xff, 0xe0, 1, 2, 3, 4, 5]).unwrap();
    let e = err_of(load_split(folder, Some(&d.join("f1")), Split::Train));
    assert!(e.contains("broken.jpg") && e.contains("decode"), "{e}");

    // Mismatched sizes, without a target size; the error suggests one.
    std::fs::write(d.join("f1/train/b/broken.jpg"), b"").unwrap();
    std::fs::remove_file(d.join("f1/train/b/broken.jpg")).unwrap();
    save_png(&d.join("f1/train/b/big.png"), &pattern(9, 8, 0));
    let e = err_of(load_split(folder, Some(&d.join("f1")), Split::Train));
    assert!(e.contains("big.png") && e.contains("9x8") && e.contains("folder@"), "{e}");
    // ... and resized it loads.
    let s = load_split(DatasetKind::parse("folder@8").unwrap(), Some(&d.join("f1")), Split::Train).unwrap();
    assert_eq!(s.len(), 2);

    // A class directory with no images; a test class unknown to train/; no val/ or test/; no train/.
    std::fs::create_dir_all(d.join("f1/train/c")).unwrap();
    let e = err_of(load_split(folder, Some(&d.join("f1")), Split::Train));
    assert!(e.contains("train/c") && e.contains("no .jpg"), "{e}");
    std::fs::remove_dir(d.join("f1/train/c")).unwrap();
    let e = err_of(load_split(folder, Some(&d.join("f1")), Split::Test));
    assert!(e.contains("no val/ or test/"), "{e}");
    save_png(&d.join("f1/val/zebra/z.png"), &pattern(8, 8, 0));
    let e = err_of(load_split(folder, Some(&d.join("f1")), Split::Test));
    assert!(e.contains("zebra"), "{e}");
    let e = err_of(load_split(folder, Some(&d.join("nowhere")), Split::Train));
    assert!(e.contains("nowhere") && e.contains("train"), "{e}");
    // Train and test of different sizes.
    std::fs::remove_dir_all(d.join("f1/val/zebra")).unwrap();
    save_png(&d.join("f1/train/b/big.png"), &pattern(8, 8, 3));
    save_png(&d.join("f1/val/a/small.png"), &pattern(4, 4, 0));
    let e = err_of(load(folder, Some(&d.join("f1"))));
    assert!(e.contains("test images"), "{e}");

    // Tiny-ImageNet: no wnids.txt, missing annotations, an unknown wnid, a missing class
    // directory, a missing validation image, an image of the wrong size.
    let tiny_kind = DatasetKind::parse("tiny-imagenet").unwrap();
    let t = d.join("t");
    let e = err_of(load_split(tiny_kind, Some(&d.join("f1")), Split::Train));
    assert!(e.contains("wnids.txt"), "{e}");
    tiny(&t, &["n1", "n2"], 1, &[("v0.JPEG", "n1")]);
    assert_eq!(load_split(tiny_kind, Some(&t), Split::Test).unwrap().labels, vec![0]);
    std::fs::remove_file(t.join("val/val_annotations.txt")).unwrap();
    let e = err_of(load_split(tiny_kind, Some(&t), Split::Test));
    assert!(e.contains("val_annotations.txt"), "{e}");
    std::fs::write(t.join("val/val_annotations.txt"), "v0.JPEG\tn9\t0\t0\t1\t1\n").unwrap();
    let e = err_of(load_split(tiny_kind, Some(&t), Split::Test));
    assert!(e.contains("val_annotations.txt") && e.contains("line 1") && e.contains("n9"), "{e}");
    std::fs::write(t.join("val/val_annotations.txt"), "gone.JPEG\tn1\t0\t0\t1\t1\n").unwrap();
    let e = err_of(load_split(tiny_kind, Some(&t), Split::Test));
    assert!(e.contains("gone.JPEG"), "{e}");
    std::fs::write(t.join("val/val_annotations.txt"), "just-a-file-name\n").unwrap();
    assert!(err_of(load_split(tiny_kind, Some(&t), Split::Test)).contains("line 1"));
    save_jpeg(&t.join("train/n2/images/n2_odd.JPEG"), &flat(60, 64, [0, 0, 0]));
    let e = err_of(load_split(tiny_kind, Some(&t), Split::Train));
    assert!(e.contains("n2_odd.JPEG") && e.contains("60x64"), "{e}");
    std::fs::write(t.join("wnids.txt"), "n1\nn2\nn3\n").unwrap();
    let e = err_of(load_split(tiny_kind, Some(&t), Split::Train));
    assert!(e.contains("n3") && e.contains("not a directory"), "{e}");

    // Names.
    for bad in ["folder@0", "folder@64x", "cifar10@32", "imagenet"] {
        assert!(DatasetKind::parse(bad).is_err(), "{bad}");
    }
    assert_eq!(DatasetKind::parse("Tiny-ImageNet@32x48").unwrap().image_size(), Some((32, 48)));
    assert_eq!(
        DatasetKind::parse("folder").unwrap().default_augment_for([3, 96, 128]),
        Augment { crop_padding: 12, flip: true }
    );
    assert_eq!(DatasetKind::Mnist.default_augment_for([1, 28, 28]), Augment::NONE);
    std::fs::remove_dir_all(&d).unwrap();
}
