//! What the protocol core reports, and the adapter that turns it into a
//! service's callbacks with that connection's state and the loop's
//! counters.
//!
//! The core is generic over [`Events`] so that a stateless service (the
//! echo, in tests, benches and fuzzing) can be driven with no loop around
//! it, while the event loop drives every service through [`Bound`].

use crate::context::Context;
use crate::error::HandshakeError;
use crate::metrics::Metrics;
use crate::service::{Delivery, Message, MessageKind, Request, Service};

/// The core's side of the service interface.
pub trait Events {
    /// A valid upgrade request: may the service take it?
    fn accept(&mut self, req: &Request<'_>) -> Result<(), HandshakeError>;
    /// The upgrade was accepted.
    fn open(&mut self, req: &Request<'_>, cx: &mut Context<'_>);
    /// An upgrade request was refused.
    fn refused(&mut self, err: HandshakeError);
    /// A data message begins.
    fn message(&mut self, kind: MessageKind, cx: &mut Context<'_>) -> Delivery;
    /// `n` payload bytes of the current message were validated (whatever
    /// their delivery); `echoed` when they are also sent back.
    fn payload(&mut self, _n: usize, _echoed: bool) {}
    /// A piece of a streamed or echoed message.
    fn piece(&mut self, data: &[u8], cx: &mut Context<'_>);
    /// A streamed or echoed message ended.
    fn end(&mut self, cx: &mut Context<'_>);
    /// A collected message.
    fn whole(&mut self, msg: Message<'_>, cx: &mut Context<'_>);
    /// Output that waited for the socket has all gone out.
    fn drain(&mut self, cx: &mut Context<'_>);
    /// The connection's timer fired.
    fn timer(&mut self, cx: &mut Context<'_>);
    /// The peer's close frame arrived.
    fn peer_closed(&mut self, code: Option<u16>);
    /// A close frame with `code` was queued.
    fn close_sent(&mut self, _code: u16) {}
    /// A plain HTTP request (no upgrade attempted) was answered.
    fn plain(&mut self, _route: Plain) {}
    /// The page for a plain GET, if any.
    fn page(&self) -> Option<&'static [u8]>;
}

/// What a plain HTTP request (one with no `Upgrade` header) asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plain {
    /// The page.
    Page,
    /// The metrics.
    Metrics,
    /// The health check.
    Health,
    /// A path not served (404).
    NotFound,
}

/// A service with no per-connection state can be driven as it is.
impl<S: Service<State = ()>> Events for S {
    fn accept(&mut self, req: &Request<'_>) -> Result<(), HandshakeError> {
        Service::accept(self, req)
    }
    fn open(&mut self, req: &Request<'_>, cx: &mut Context<'_>) {
        Service::open(self, req, cx)
    }
    fn refused(&mut self, err: HandshakeError) {
        Service::refused(self, err)
    }
    fn message(&mut self, kind: MessageKind, cx: &mut Context<'_>) -> Delivery {
        Service::message(self, &mut (), kind, cx)
    }
    fn piece(&mut self, data: &[u8], cx: &mut Context<'_>) {
        Service::piece(self, &mut (), data, cx)
    }
    fn end(&mut self, cx: &mut Context<'_>) {
        Service::end(self, &mut (), cx)
    }
    fn whole(&mut self, msg: Message<'_>, cx: &mut Context<'_>) {
        Service::whole(self, &mut (), msg, cx)
    }
    fn drain(&mut self, cx: &mut Context<'_>) {
        Service::drain(self, &mut (), cx)
    }
    fn timer(&mut self, cx: &mut Context<'_>) {
        Service::timer(self, &mut (), cx)
    }
    fn peer_closed(&mut self, code: Option<u16>) {
        Service::peer_closed(self, &mut (), code)
    }
    fn page(&self) -> Option<&'static [u8]> {
        Service::page(self)
    }
}

/// A service bound to one connection's state and the loop's counters.
pub struct Bound<'a, S: Service> {
    pub service: &'a mut S,
    /// `None` until the upgrade, and for connections that never upgrade.
    pub state: &'a mut Option<S::State>,
    pub metrics: &'a mut Metrics,
}

impl<S: Service> Events for Bound<'_, S> {
    fn accept(&mut self, req: &Request<'_>) -> Result<(), HandshakeError> {
        self.service.accept(req)
    }

    fn open(&mut self, req: &Request<'_>, cx: &mut Context<'_>) {
        self.metrics.handshakes_accepted += 1;
        *self.state = Some(self.service.open(req, cx));
    }

    fn refused(&mut self, err: HandshakeError) {
        self.metrics.refused(err);
        self.service.refused(err);
    }

    fn plain(&mut self, route: Plain) {
        self.metrics.plain[route as usize] += 1;
    }

    #[inline]
    fn message(&mut self, kind: MessageKind, cx: &mut Context<'_>) -> Delivery {
        self.metrics.messages_in += 1;
        let Some(st) = self.state.as_mut() else {
            return Delivery::Discard;
        };
        let d = self.service.message(st, kind, cx);
        if matches!(d, Delivery::Echo | Delivery::EchoAndStream) {
            self.metrics.messages_out += 1;
        }
        d
    }

    #[inline]
    fn payload(&mut self, n: usize, echoed: bool) {
        self.metrics.payload_in += n as u64;
        if echoed {
            self.metrics.payload_out += n as u64;
        }
    }

    #[inline]
    fn piece(&mut self, data: &[u8], cx: &mut Context<'_>) {
        if let Some(st) = self.state.as_mut() {
            self.service.piece(st, data, cx);
        }
    }

    #[inline]
    fn end(&mut self, cx: &mut Context<'_>) {
        if let Some(st) = self.state.as_mut() {
            self.service.end(st, cx);
        }
    }

    fn whole(&mut self, msg: Message<'_>, cx: &mut Context<'_>) {
        if let Some(st) = self.state.as_mut() {
            self.service.whole(st, msg, cx);
        }
    }

    fn drain(&mut self, cx: &mut Context<'_>) {
        if let Some(st) = self.state.as_mut() {
            self.service.drain(st, cx);
        }
    }

    fn timer(&mut self, cx: &mut Context<'_>) {
        if let Some(st) = self.state.as_mut() {
            self.service.timer(st, cx);
        }
    }

    fn peer_closed(&mut self, code: Option<u16>) {
        self.metrics.close_received[crate::metrics::code_index(code)] += 1;
        if let Some(st) = self.state.as_mut() {
            self.service.peer_closed(st, code);
        }
    }

    fn close_sent(&mut self, code: u16) {
        self.metrics.close_sent[crate::metrics::code_index(Some(code))] += 1;
    }

    fn page(&self) -> Option<&'static [u8]> {
        self.service.page()
    }
}
