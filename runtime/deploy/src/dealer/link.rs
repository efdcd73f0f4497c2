//! A party's side of the dealer protocol: connecting (over TLS when the options carry an
//! identity), asking, and checking the answer.

use masq_mpc::transport::{TcpTransport, Transport};

use super::{DEALER_PROTOCOL_VERSION, Msg, Params};
use crate::session::SessionOptions;
use crate::{DeployError, Result, mpc_err};

/// Where a party's dealer is and how to reach it.
#[derive(Debug, Clone)]
pub struct DealerLink {
    /// `HOST:PORT`.
    pub addr: String,
    /// Timeout, frame limit and TLS identity of the connection.
    pub opts: SessionOptions,
}

/// The dealer's answer to `Open` or `Fetch`: the inference, and the connection its material
/// arrives on (read it with `masq_mpc::dealer::wire::receive_deal`).
#[derive(Debug)]
pub struct Grant {
    pub params: Params,
    pub dealer_id: [u8; 16],
    pub slot: u64,
    pub ticket: [u8; 32],
    pub transport: TcpTransport,
}

impl DealerLink {
    /// A link to the dealer at `addr`.
    pub fn new(addr: &str, opts: SessionOptions) -> DealerLink {
        DealerLink { addr: addr.to_string(), opts }
    }

    fn during(&self) -> String {
        format!("the dealer at {}", self.addr)
    }

    fn connect(&self) -> Result<TcpTransport> {
        let tcp = self.opts.tcp();
        let at = self.during();
        match &self.opts.tls {
            Some(id) => crate::tls::connect(&self.addr, self.opts.timeout, tcp, id, crate::tls::Role::Dealer),
            None => TcpTransport::connect_with(self.addr.as_str(), self.opts.timeout, tcp).map_err(mpc_err(&at)),
        }
    }

    fn ask(&self, m: Msg) -> Result<(Params, [u8; 16], u64, [u8; 32], TcpTransport)> {
        let at = self.during();
        let mut t = self.connect()?;
        t.send_msg(&m).and_then(|_| t.flush()).map_err(mpc_err(&at))?;
        match t.recv_msg::<Msg>("the dealer's answer").map_err(mpc_err(&at))? {
            Msg::Granted { params, dealer_id, slot, ticket } => Ok((params, dealer_id, slot, ticket, t)),
            Msg::Refuse { reason } => Err(DeployError::Refused { reason: format!("{at}: {reason}") }),
            other => Err(DeployError::Protocol {
                during: "asking the dealer",
                reason: format!("{at}: expected Granted, got {}", other.name()),
            }),
        }
    }

    /// What the dealer deals, and its id.
    pub fn info(&self) -> Result<(Params, [u8; 16])> {
        let (params, id, ..) = self.ask(Msg::Info { version: DEALER_PROTOCOL_VERSION })?;
        Ok((params, id))
    }

    /// P0: opens a new inference for `want`.
    pub fn open(&self, want: Params) -> Result<Grant> {
        let (params, dealer_id, slot, ticket, transport) =
            self.ask(Msg::Open { version: DEALER_PROTOCOL_VERSION, want })?;
        params.check(&want)?;
        Ok(Grant { params, dealer_id, slot, ticket, transport })
    }

    /// P1: fetches its half of inference `slot` with the server's `ticket`.
    pub fn fetch(&self, want: Params, slot: u64, ticket: [u8; 32]) -> Result<Grant> {
        let (params, dealer_id, got, _, transport) =
            self.ask(Msg::Fetch { version: DEALER_PROTOCOL_VERSION, want, slot, ticket })?;
        params.check(&want)?;
        if got != slot {
            return Err(DeployError::Protocol {
                during: "fetching preprocessing",
                reason: format!("{}: asked for inference {slot}, granted {got}", self.during()),
            });
        }
        Ok(Grant { params, dealer_id, slot, ticket, transport })
    }
}
