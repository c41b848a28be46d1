"""Transport isolation: one NATS account per partner on a 3-site JetStream cluster with TLS
(test certificates made now), as `siap up` configures it. A partner's credentials publish only
its own shared subjects and read only what is released to it, wildcards included."""

from __future__ import annotations

import asyncio
import ssl

import pytest
from nodes_support import LocalNetwork

from siap.nodes.network import make_certs
from siap.transport import NatsBus, TransportError

RUN = "iso"


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    net = LocalNetwork(tmp_path_factory.mktemp("iso")).start_servers()
    yield net
    net.close()


def tracks(to: str) -> str:
    return f"siap.run.{RUN}.tracks.{to}"


def plots(of: str) -> str:
    return f"siap.run.{RUN}.plots.{of}"


async def _connect(net: LocalNetwork, partner: str, **kw):
    import nats

    errors: list[str] = []

    async def on_error(exc):
        errors.append(str(exc))

    ctx = ssl.create_default_context(cafile=str(net.net.ca_file))
    nc = await nats.connect(net.site(partner).url, user=partner, password=net.net.passwords[partner], tls=ctx,
                            error_cb=on_error, allow_reconnect=False, connect_timeout=3, **kw)
    return nc, errors


def test_a_release_is_stored_only_in_its_recipients_account(network):
    buses = {p: network.bus(p, durable_prefix="rel") for p in ("AUS", "JPN", "USA")}
    try:
        buses["JPN"].publish(tracks("USA"), b"JPN->USA")
        buses["JPN"].publish(tracks("AUS"), b"JPN->AUS")
        buses["AUS"].publish(tracks("USA"), b"AUS->USA")
        buses["USA"].publish(plots("USA"), b"USA plots")
        assert buses["USA"].drain(tracks("USA"), wait_s=5, min_messages=2) == [b"JPN->USA", b"AUS->USA"]
        assert buses["AUS"].drain(tracks("AUS"), wait_s=5, min_messages=1) == [b"JPN->AUS"]
        assert buses["JPN"].drain(tracks("JPN"), wait_s=0.5) == []
        assert buses["USA"].drain(plots("USA"), wait_s=5, min_messages=1) == [b"USA plots"]
    finally:
        for b in buses.values():
            b.close()


def test_wildcards_cannot_read_another_partners_releases_or_plots(network):
    async def main():
        import nats.errors

        jpn, jpn_errors = await _connect(network, "JPN")
        # core subscription on everything: refused by the server (permissions), and nothing arrives
        got = []

        async def keep(msg):
            got.append(msg.subject)

        sub = await jpn.subscribe("siap.>", cb=keep)
        await jpn.flush()
        usa, _ = await _connect(network, "USA")
        aus, _ = await _connect(network, "AUS")
        js_usa, js_aus = usa.jetstream(), aus.jetstream()
        await js_usa.publish(tracks("AUS"), b"USA->AUS")
        await js_aus.publish(tracks("USA"), b"AUS->USA")
        await js_usa.publish(plots("USA"), b"USA plots")
        await asyncio.sleep(0.5)
        assert got == []
        assert any("permissions violation" in e.lower() and "siap.>" in e for e in jpn_errors), jpn_errors
        await sub.unsubscribe()
        # JetStream: JPN's account holds only what is addressed to JPN, whatever the filter
        js = jpn.jetstream()
        info = await js.stream_info("SIAP")
        assert sorted(info.config.subjects) == sorted(
            ["siap.run.*.tracks.JPN", "siap.run.*.plots.JPN", "siap.run.*.picture.JPN"])
        psub = await js.pull_subscribe(">", durable=None, stream="SIAP")
        try:
            msgs = await psub.fetch(100, timeout=1.0)
        except nats.errors.TimeoutError:
            msgs = []
        assert all(m.subject.endswith(".JPN") for m in msgs)
        assert not any(m.data in (b"USA->AUS", b"AUS->USA", b"USA plots") for m in msgs)
        # another account's stream cannot even be named
        names = [n async for n in _stream_names(js)]
        assert names == ["SIAP"]
        for nc in (jpn, usa, aus):
            await nc.close()

    asyncio.run(main())


async def _stream_names(js):
    for n in await js.streams_info():
        yield n.config.name


def test_a_partner_cannot_publish_another_partners_plots_or_its_own_inbound(network):
    async def main():
        import nats.errors

        jpn, errors = await _connect(network, "JPN")
        js = jpn.jetstream(timeout=1.0)
        for subj in (plots("USA"), f"siap.run.{RUN}.picture.USA"):
            with pytest.raises((nats.errors.TimeoutError, nats.errors.NoRespondersError)):
                await js.publish(subj, b"forged")
        await asyncio.sleep(0.2)
        assert sum("permissions violation for publish" in e.lower() for e in errors) >= 2, errors
        await jpn.close()

    asyncio.run(main())
    usa = network.bus("USA", durable_prefix="forge")
    try:
        assert b"forged" not in usa.drain(plots("USA"), wait_s=1.0)
    finally:
        usa.close()


def test_tls_and_credentials_are_required(network, tmp_path):
    site = network.site("JPN")
    plain = site.url.replace("tls://", "nats://")
    with pytest.raises(TransportError):  # the server insists on TLS; a plain client gets nowhere
        NatsBus(plain, user="JPN", password=network.net.passwords["JPN"], unreachable_timeout_s=2.0,
                connect_timeout_s=1.0)
    other_ca = make_certs(tmp_path / "other").ca_file
    with pytest.raises(TransportError):  # a server certificate from an untrusted CA is refused
        NatsBus(site.url, user="JPN", password=network.net.passwords["JPN"], tls_ca_file=str(other_ca),
                unreachable_timeout_s=2.0, connect_timeout_s=1.0)
    with pytest.raises(TransportError):  # wrong password
        NatsBus(site.url, user="JPN", password="not-the-password", tls_ca_file=str(network.net.ca_file),
                unreachable_timeout_s=2.0, connect_timeout_s=1.0)
