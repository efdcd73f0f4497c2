//! Privacy smoke test: what P1 receives has the same distribution whatever P0's secret input is.
//!
//! P0 holds its secret in the clear as its share (P1's share is 0), runs ReLU and a linear
//! layer, and P1 records every word it receives. A two-sample chi-square test on the top bits
//! of those words must not tell two very different secrets apart — and, as a control that the
//! test can fail, it must tell them apart when applied to the secrets themselves (what a
//! protocol that forgot the mask would send).

use std::sync::{Arc, Mutex};

use masq_mpc::dealer::{CmpMode, Dealer, LinearKind, Request};
use masq_mpc::protocols::{self, Ctx};
use masq_mpc::share::{Party, Share};
use masq_mpc::transport::{Transport, mem_pair};
use masq_mpc::{FixedPoint, Result};
use ndarray::{ArrayD, IxDyn};

/// A transport that records the payloads it receives.
struct Recording<T> {
    inner: T,
    seen: Arc<Mutex<Vec<u64>>>,
}

impl<T: Transport> Transport for Recording<T> {
    fn send(&mut self, p: &[u8]) -> Result<()> {
        self.inner.send(p)
    }
    fn recv(&mut self) -> Result<Vec<u8>> {
        let b = self.inner.recv()?;
        self.seen.lock().unwrap().extend(b.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())));
        Ok(b)
    }
    fn flush(&mut self) -> Result<()> {
        self.inner.flush()
    }
}

const N: usize = 4096;

/// Runs ReLU then a 1x1 "linear" layer with P0's secret `x` and weight `w`; returns P1's view.
fn p1_view(x: u64, w: u64, seed: u64, mode: CmpMode) -> Vec<u64> {
    let fp = FixedPoint::default();
    let kind = LinearKind::MatMul { k: 1, n: 1 };
    let mut dealer = Dealer::new(seed);
    let (m0, m1) = dealer.setup_model(&[(0, kind)]).unwrap();
    let (p0, p1) = dealer
        .deal(&[Request::Cmp { n: N, bits: 64, mode }, Request::Linear { layer: 0, input_shape: vec![N, 1] }])
        .unwrap();
    let (t0, t1) = mem_pair();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let t1 = Recording { inner: t1, seen: seen.clone() };
    std::thread::scope(|s| {
        s.spawn(move || {
            let mut c = Ctx::new(Party::P1, t1, p1, fp).unwrap();
            protocols::setup_layers(&mut c, m1, vec![(0, Share::zeros(Party::P1, &[1, 1]))]).unwrap();
            let y = protocols::relu(&mut c, &Share::zeros(Party::P1, &[N, 1]), 64, mode).unwrap();
            let _ = protocols::linear(&mut c, 0, &y).unwrap();
        });
        let mut c = Ctx::new(Party::P0, t0, p0, fp).unwrap();
        let wv = ArrayD::from_shape_vec(IxDyn(&[1, 1]), vec![w]).unwrap();
        protocols::setup_layers(&mut c, m0, vec![(0, Share::new(Party::P0, wv))]).unwrap();
        let xs = ArrayD::from_elem(IxDyn(&[N, 1]), x);
        let y = protocols::relu(&mut c, &Share::new(Party::P0, xs), 64, mode).unwrap();
        let _ = protocols::linear(&mut c, 0, &y).unwrap();
    });
    Arc::try_unwrap(seen).unwrap().into_inner().unwrap()
}

/// Two-sample chi-square statistic on the top 3 bits (8 bins).
fn chi_square(a: &[u64], b: &[u64]) -> f64 {
    let hist = |v: &[u64]| {
        let mut h = [0f64; 8];
        for &x in v {
            h[(x >> 61) as usize] += 1.0;
        }
        h
    };
    let (ha, hb) = (hist(a), hist(b));
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let mut chi = 0.0;
    for i in 0..8 {
        let tot = ha[i] + hb[i];
        if tot == 0.0 {
            continue;
        }
        let ea = tot * na / (na + nb);
        let eb = tot * nb / (na + nb);
        chi += (ha[i] - ea).powi(2) / ea + (hb[i] - eb).powi(2) / eb;
    }
    chi
}

#[test]
fn p1_view_does_not_depend_on_p0_secret() {
    let fp = FixedPoint::default();
    let (xa, xb) = (fp.encode(3.5), fp.encode(-1000.25));
    let (wa, wb) = (fp.encode(0.5), fp.encode(-7.0));
    for mode in CmpMode::ALL {
        let va = p1_view(xa, wa, 1, mode);
        let vb = p1_view(xb, wb, 2, mode);
        assert_eq!(va.len(), vb.len());
        assert!(va.len() > N, "P1 received the ReLU opening and the linear layer's openings");
        // chi-square with 7 degrees of freedom: 24.3 is the 0.1% critical value.
        let chi = chi_square(&va, &vb);
        assert!(chi < 24.3, "{mode}: P1's view depends on P0's secret: chi2 = {chi}");
        // Control: the unmasked secrets are told apart at once.
        let ra = vec![xa; va.len()];
        let rb = vec![xb; vb.len()];
        assert!(chi_square(&ra, &rb) > 1000.0, "the test has power");
    }
}
