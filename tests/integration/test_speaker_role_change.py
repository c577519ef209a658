"""The speaker over loopback TCP to a peer driven by our own sans-IO session, on a frozen clock.

The clock never moves unless a test moves it, so "a role change is on the wire within 100 ms"
is checked as a protocol deadline: the UPDATE arrives with less than 0.1 s of fake time gone.
"""

from __future__ import annotations

import ipaddress
import random

import trio
import trio.testing

from appliance.config.model import (
    Bgp,
    BgpPeer,
    Config,
    Endpoint,
    GracefulRestart,
    Ha,
    HaGroup,
    Node,
    Service,
)
from appliance.controller import IntentController
from appliance.intent import HaRole, role_key
from appliance.keys import RUNNING_CONFIG
from appliance.state import StateStore
from bgp.codec.update import Update
from bgp.fsm import SessionEstablished, UpdateReceived
from bgp.session import BgpSession, SessionConfig
from bgp.speaker import BgpSpeaker

LOOPBACK = ipaddress.IPv4Address("127.0.0.1")
VIP = ipaddress.IPv4Address("198.51.100.10")


class RouterPeer:
    """The far end: a passive BgpSession on a loopback listener, fed by this test."""

    def __init__(self) -> None:
        self.session = BgpSession(
            SessionConfig(
                local_asn=65101,
                local_router_id=ipaddress.IPv4Address("10.255.0.2"),
                peer_address=LOOPBACK,
                peer_asn=65100,
                passive=True,
            ),
            rng=random.Random(1),
        )
        self.updates: list[Update] = []
        self.established = trio.Event()
        self.changed = trio.Event()

    async def serve(self, listener: trio.SocketListener) -> None:
        stream = await listener.accept()
        now = trio.current_time()
        self.session.start(now, passive=True)
        self.session.connection_made(now)
        async with stream:
            while True:
                out = self.session.data_to_send()
                if out:
                    await stream.send_all(out)
                data = await stream.receive_some(65536)
                if not data:
                    return
                self.session.receive_data(data, trio.current_time())
                for event in self.session.events():
                    if isinstance(event, SessionEstablished):
                        self.established.set()
                    elif isinstance(event, UpdateReceived):
                        self.updates.append(event.update)
                        self.changed.set()


def config(port: int) -> Config:
    return Config(
        node=Node("node1", 1, ipaddress.IPv4Address("10.255.0.1")),
        services=(Service("web", 80, (Endpoint(ipaddress.ip_address("10.1.0.1"), 8080),), VIP),),
        ha=Ha((HaGroup(1, "eth0", (VIP,)),)),
        bgp=Bgp(
            asn=65100,
            router_id=ipaddress.IPv4Address("10.255.0.1"),
            listen_port=0,
            peers=(BgpPeer(LOOPBACK, 65101, port=port),),
            graceful_restart=GracefulRestart(enabled=False),
        ),
    )


async def _next_update(router: RouterPeer) -> Update:
    while not router.updates:
        router.changed = trio.Event()
        await router.changed.wait()
    return router.updates.pop(0)


async def test_role_change_is_on_the_wire_without_time_passing(
    mock_clock: trio.testing.MockClock,
) -> None:
    # frozen unless the whole run is blocked for a real second: then the clock jumps to the
    # next deadline (a fail_after below, or a session timer), so a hang fails instead of hanging
    mock_clock.autojump_threshold = 1.0
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    store = StateStore()
    store.publish(RUNNING_CONFIG, config(port))
    store.publish(role_key(1), HaRole.ACTIVE)
    router = RouterPeer()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(router.serve, listeners[0])
        await nursery.start(IntentController(store).run)
        await nursery.start(BgpSpeaker(config(port).bgp, store).run)  # type: ignore[arg-type]
        with trio.fail_after(5):
            await router.established.wait()
            first = await _next_update(router)
        assert first.nlri == (ipaddress.IPv4Network(f"{VIP}/32"),)
        assert first.attributes.med == 10
        assert first.attributes.as_path is not None
        assert list(first.attributes.as_path.asns()) == [65100]

        before = trio.current_time()
        store.publish(role_key(1), HaRole.BACKUP)
        with trio.fail_after(5):
            update = await _next_update(router)
            while not update.nlri:  # skip End-of-RIB
                update = await _next_update(router)
        assert trio.current_time() - before < 0.1
        assert update.attributes.med == 20
        assert update.attributes.as_path is not None
        assert list(update.attributes.as_path.asns()) == [65100] * 4

        store.publish(role_key(1), HaRole.FAULT)  # a faulted node withdraws
        with trio.fail_after(5):
            withdrawal = await _next_update(router)
        assert withdrawal.withdrawn == (ipaddress.IPv4Network(f"{VIP}/32"),)
        nursery.cancel_scope.cancel()
