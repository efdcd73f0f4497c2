//! Authentication comes first: without the shared key, no protocol message (no hello, no public
//! model) is sent by either side, and nothing is spent.

use masq_deploy::DeployError;
use masq_mpc::MpcError;
use masq_mpc::transport::Transport;
use masq_runtime::secure::SecureConfig;

use crate::common::{Dealt, Frames, Record, against, deal, image, key, model, pair, session, wire};

fn variants(frames: &Frames) -> Vec<u32> {
    frames.lock().unwrap().iter().map(|f| wire::variant(f)).collect()
}

/// Whether a frame holds the model's hash (a hello does).
fn mentions(frames: &Frames, hash: &[u8; 32]) -> bool {
    frames.lock().unwrap().iter().any(|f| f.windows(32).any(|w| w == hash))
}

/// Runs a session with the server's and the client's keys, recording what each side sends.
fn recorded(
    d: &Dealt,
    server_key: Option<&str>,
    client_key: Option<&str>,
) -> (DeployResult, DeployResult, Frames, Frames, [u8; 32]) {
    let g = model();
    let (sk, ck) = (server_key.map(key), client_key.map(key));
    let mut server = d.server(&g, sk.as_ref());
    let mut client = d.client(ck.as_ref());
    let hash = server.public_model().hash;
    let (ts, tc) = pair();
    let ((ts, by_server), (tc, by_client)) = (Record::new(ts), Record::new(tc));
    let (report, result) = session(&mut server, ts, &mut client, tc, &image());
    (report.map(|r| r.index), result.map(|r| r.index), by_server, by_client, hash)
}

type DeployResult = Result<u64, DeployError>;

#[test]
fn a_wrong_key_fails_authentication_before_any_protocol_message() {
    let d = deal(&model(), &SecureConfig::default(), 1, 2);
    let (report, result, by_server, by_client, hash) = recorded(&d, Some("server"), Some("client"));
    let e = report.unwrap_err();
    assert!(matches!(&e, DeployError::Auth { reason } if reason.contains("wrong key")), "{e:?}");
    let e = result.unwrap_err();
    assert!(matches!(&e, DeployError::Auth { reason } if reason.contains("wrong key")), "{e:?}");
    assert!(e.to_string().starts_with("authentication failed"), "{e}");
    // The server greeted, checked the client's proof and refused; no hello went either way.
    assert_eq!(variants(&by_server), [wire::AUTH, wire::REFUSE]);
    assert_eq!(variants(&by_client), [wire::PROOF]);
    assert!(!mentions(&by_server, &hash) && !mentions(&by_client, &hash));
    assert_eq!(d.spent(), (vec![false, false], vec![false, false]));

    // Control: with the same key the same recording sees both hellos, and the session runs.
    let (report, result, by_server, by_client, hash) = recorded(&d, Some("same"), Some("same"));
    assert_eq!((report.unwrap(), result.unwrap()), (0, 0));
    assert_eq!(variants(&by_server)[..4], [wire::AUTH, wire::SERVER_PROOF, wire::HELLO, wire::GO]);
    assert_eq!(variants(&by_client)[..2], [wire::PROOF, wire::HELLO]);
    assert!(mentions(&by_server, &hash) && mentions(&by_client, &hash));
    assert_eq!(d.spent(), (vec![true, false], vec![true, false]));
}

#[test]
fn a_client_without_the_key_is_refused_before_any_protocol_message() {
    let d = deal(&model(), &SecureConfig::default(), 1, 1);
    let (report, result, by_server, by_client, hash) = recorded(&d, Some("server"), None);
    let e = result.unwrap_err();
    assert!(matches!(&e, DeployError::Auth { reason } if reason.contains("requires authentication")), "{e:?}");
    let e = report.unwrap_err();
    assert!(matches!(&e, DeployError::Refused { reason } if reason.contains("requires authentication")), "{e:?}");
    assert_eq!(variants(&by_server), [wire::AUTH]);
    assert_eq!(variants(&by_client), [wire::REFUSE]);
    assert!(!mentions(&by_server, &hash));
    assert_eq!(d.spent(), (vec![false], vec![false]));
}

#[test]
fn a_client_with_a_key_refuses_a_server_without_one() {
    let d = deal(&model(), &SecureConfig::default(), 1, 1);
    let (report, result, _, by_client, hash) = recorded(&d, None, Some("client"));
    let e = result.unwrap_err();
    assert!(matches!(&e, DeployError::Auth { reason } if reason.contains("does not authenticate")), "{e:?}");
    // The server sends its hello without waiting, so it hears the refusal or finds the client gone.
    let e = report.unwrap_err();
    assert!(
        matches!(&e, DeployError::Refused { reason } if reason.contains("does not authenticate"))
            || matches!(&e, DeployError::Mpc { source: MpcError::PeerDisconnected { .. }, .. }),
        "{e:?}"
    );
    assert_eq!(variants(&by_client), [wire::REFUSE]);
    assert!(!mentions(&by_client, &hash));
    assert_eq!(d.spent(), (vec![false], vec![false]));
}

#[test]
fn a_server_that_does_not_know_the_key_is_refused_by_the_client() {
    let d = deal(&model(), &SecureConfig::default(), 1, 1);
    let k = key("client");
    let mut client = d.client(Some(&k));
    let (frames, result) = against(
        |mut t| {
            t.send(&wire::auth_required()).unwrap();
            let proof = t.recv().unwrap();
            // An answer the server cannot compute without the key.
            t.send(&wire::server_proof([3; 32])).unwrap();
            (proof, t.recv().unwrap())
        },
        |t| client.query_over(t, &image(), |_| {}),
    );
    let e = result.unwrap_err();
    assert!(matches!(&e, DeployError::Auth { reason } if reason.contains("server's answer does not verify")), "{e:?}");
    let (proof, refusal) = frames;
    assert_eq!(wire::variant(&proof), wire::PROOF);
    assert!(wire::refusal(&refusal).contains("does not verify"));
    assert_eq!(d.spent().1, vec![false]);
}
