//! Ring and share laws, generated per law by a macro.

use masq_mpc::FixedPoint;
use masq_mpc::share::{Party, Share, reconstruct, share};
use ndarray::{ArrayD, IxDyn};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;

fn arr(v: &[u64]) -> ArrayD<u64> {
    ArrayD::from_shape_vec(IxDyn(&[v.len()]), v.to_vec()).unwrap()
}

fn split(x: &ArrayD<u64>, seed: u64) -> (Share, Share) {
    share(x, &mut ChaCha12Rng::seed_from_u64(seed))
}

/// `law!(name, |x, y, c| secure_expression_on_shares => plaintext_expression)`: the shares of
/// both parties go through the same local operation, and reconstruction must equal plaintext.
macro_rules! law {
    ($name:ident, |$x:ident, $y:ident, $c:ident| $secure:expr => $plain:expr) => {
        proptest! {
            #[test]
            #[allow(unused_variables)]
            fn $name(pairs in prop::collection::vec((any::<u64>(), any::<u64>()), 1..64), $c in any::<u64>(), seed in any::<u64>()) {
                let xs: Vec<u64> = pairs.iter().map(|p| p.0).collect();
                let ys: Vec<u64> = pairs.iter().map(|p| p.1).collect();
                let (x0, x1) = split(&arr(&xs), seed);
                let (y0, y1) = split(&arr(&ys), seed ^ 1);
                let out0 = { let ($x, $y) = (&x0, &y0); $secure };
                let out1 = { let ($x, $y) = (&x1, &y1); $secure };
                let got = reconstruct(&out0, &out1).unwrap();
                let want: Vec<u64> = xs.iter().zip(&ys).map(|(&$x, &$y)| $plain).collect();
                prop_assert_eq!(got.iter().copied().collect::<Vec<_>>(), want);
            }
        }
    };
}

law!(share_plus_share, |x, y, c| x.add(y).unwrap() => x.wrapping_add(y));
law!(share_minus_share, |x, y, c| x.sub(y).unwrap() => x.wrapping_sub(y));
law!(share_times_public, |x, y, c| x.mul_scalar(c) => x.wrapping_mul(c));
law!(share_times_public_tensor, |x, y, c| {
    let _ = y;
    x.mul_public(&arr(&vec![c; x.len()])).unwrap()
} => x.wrapping_mul(c));
law!(share_plus_public, |x, y, c| x.add_public(&arr(&vec![c; x.len()])).unwrap() => x.wrapping_add(c));
law!(negation, |x, y, c| x.neg() => x.wrapping_neg());
law!(distributive, |x, y, c| x.add(y).unwrap().mul_scalar(c) => x.wrapping_add(y).wrapping_mul(c));
law!(commutative, |x, y, c| y.add(x).unwrap() => x.wrapping_add(y));

proptest! {
    #[test]
    fn shares_reconstruct_and_each_share_alone_is_independent_of_x(v in any::<u64>(), seed in any::<u64>()) {
        let (a0, a1) = split(&arr(&[v]), seed);
        let (b0, _) = split(&arr(&[v ^ 0xdead_beef]), seed);
        prop_assert_eq!(reconstruct(&a0, &a1).unwrap(), arr(&[v]));
        // The same randomness gives P0 the same share whatever x is: a share alone carries no x.
        prop_assert_eq!(a0.data(), b0.data());
    }

    #[test]
    fn fixed_point_encoding_is_a_ring_homomorphism_for_addition(a in -1e6f64..1e6, b in -1e6f64..1e6, f in 8u32..24) {
        let fp = FixedPoint::new(f).unwrap();
        let sum = fp.encode(a).wrapping_add(fp.encode(b));
        prop_assert!((fp.decode(sum) - (a + b)).abs() <= 1.0 / fp.scale());
    }

    #[test]
    fn fixed_point_product_truncates_to_within_one_ulp(a in -1e3f64..1e3, b in -1e3f64..1e3) {
        let fp = FixedPoint::default();
        let p = fp.truncate_plain(fp.encode(a).wrapping_mul(fp.encode(b)));
        let exact = fp.decode(fp.encode(a)) * fp.decode(fp.encode(b));
        prop_assert!((fp.decode(p) - exact).abs() <= 1.0 / fp.scale());
    }
}

#[test]
fn mixing_parties_is_refused() {
    let (x0, x1) = split(&arr(&[1, 2]), 1);
    assert!(x0.add(&x1).is_err());
    assert!(reconstruct(&x1, &x0).is_err());
    assert!(x0.add(&Share::zeros(Party::P0, &[3])).is_err());
}
