"""Python tests of the real library (ctypes bindings), run by `cargo xtask test-foreign`.

A loopback network from the library's `testing` feature: a TCP echo server, a Braid gateway
in front of it, two emulated paths ("wifi", "cellular") to the gateway.
"""

import asyncio
import hashlib
import random
import threading
import unittest

from braid_ffi import (
    BraidClient,
    BraidConfig,
    BraidError,
    BraidEvent,
    BraidEventListener,
    BraidInterface,
    BraidTlsOptions,
    InterfaceKind,
    ServiceType,
    SwitchReason,
    braid_default_config,
    braid_version,
)
from braid_ffi_testing import BraidTestNetwork


def pattern(n: int) -> bytes:
    # Random, so a misplaced chunk cannot match by accident.
    return random.Random(n).randbytes(n)


def client_for(net: BraidTestNetwork, service: ServiceType) -> BraidClient:
    def iface(kind, path):
        return BraidInterface(kind=kind, local_addr="127.0.0.1", via=net.path_via(path))

    config = BraidConfig(
        service_type=service,
        interfaces=[iface(InterfaceKind.WIFI, "wifi"), iface(InterfaceKind.CELLULAR, "cellular")],
        connect_timeout_ms=5000,
    )
    return BraidClient(config)


async def echo(conn, data: bytes) -> bytes:
    """Writes `data` while reading the echo; returns what came back."""

    async def writer():
        for off in range(0, len(data), 65536):
            await conn.write(data[off : off + 65536])
        conn.finish()

    w = asyncio.ensure_future(writer())
    got = bytearray()
    while True:
        chunk = await conn.read(65536)
        if not chunk:
            break
        got += chunk
    await w
    return bytes(got)


async def echo_round(conn, n: int) -> int:
    w = asyncio.ensure_future(conn.write(pattern(n)))
    got = 0
    while got < n:
        chunk = await conn.read(65536)
        if not chunk:
            raise AssertionError(f"echo ended after {got} of {n} bytes")
        got += len(chunk)
    await w
    return got


class BraidTests(unittest.IsolatedAsyncioTestCase):
    def setUp(self):
        self.net = BraidTestNetwork()

    def tearDown(self):
        del self.net

    async def test_transfer_over_two_paths(self):
        client = client_for(self.net, ServiceType.AGGREGATE)
        conn = await client.connect_via(self.net.gateway(), self.net.echo_target())
        data = pattern(3 << 20)
        got = await asyncio.wait_for(echo(conn, data), 60)
        self.assertEqual(len(got), len(data))
        self.assertEqual(hashlib.sha256(got).digest(), hashlib.sha256(data).digest())
        stats = conn.stats()
        self.assertTrue(stats.mptcp)
        self.assertGreaterEqual(stats.bytes_received, len(data))
        for p in self.net.path_names():
            self.assertGreater(self.net.path_delivered_bytes(p), 0, p)
        self.assertEqual(self.net.relayed_connections(), 1)
        await conn.close()
        with self.assertRaises(BraidError.Closed):
            await conn.read(10)

    async def test_interface_lost_switches_path(self):
        client = client_for(self.net, ServiceType.HANDOVER)
        conn = await client.connect_via(self.net.gateway(), self.net.echo_target())
        wifi = next(e.path_id for e in client.interfaces() if e.interface.kind == InterfaceKind.WIFI)
        events = conn.subscribe()
        self.assertEqual(await echo_round(conn, 200_000), 200_000)
        # WiFi dies and the OS says so (what the platform monitors report).
        self.net.kill_path("wifi")
        client.interface_lost(wifi)
        traffic = asyncio.ensure_future(echo_round(conn, 500_000))
        seen = []
        while True:
            e = await asyncio.wait_for(events.next(), 20)
            self.assertIsNotNone(e, f"stream ended; events: {seen}")
            seen.append(e)
            if e.is_path_switched():
                break
        self.assertEqual(e.from_path, wifi, seen)
        self.assertNotEqual(e.to_path, wifi, seen)
        self.assertEqual(e.reason, SwitchReason.INTERFACE_LOST, seen)
        self.assertEqual(await asyncio.wait_for(traffic, 30), 500_000)
        self.assertEqual([p.kind for p in conn.paths()], [InterfaceKind.CELLULAR])
        events.close()
        self.assertIsNone(await events.next())

    async def test_connect_tls_checks_the_certificate(self):
        client = client_for(self.net, ServiceType.AGGREGATE)
        good = BraidTlsOptions(use_system_roots=False, extra_roots_pem=[self.net.test_ca_pem()], alpn=["h2"])
        conn = await client.connect_tls(self.net.gateway(), self.net.tls_echo_target(), "localhost", good)
        self.assertEqual(conn.alpn_protocol(), "h2")
        data = pattern(100_000)
        self.assertEqual(await echo(conn, data), data)
        await conn.close()
        untrusted = BraidTlsOptions(use_system_roots=False, extra_roots_der=[self.net.wrong_ca_der()])
        with self.assertRaises(BraidError.CertificateRejected) as cm:
            await client.connect_tls(self.net.gateway(), self.net.tls_echo_target(), "localhost", untrusted)
        self.assertIn("UnknownIssuer", str(cm.exception))

    async def test_refused_and_forbidden_targets(self):
        client = client_for(self.net, ServiceType.HANDOVER)
        with self.assertRaises(BraidError.Refused) as cm:
            await client.connect_via(self.net.gateway(), self.net.refused_target())
        self.assertIn(self.net.refused_target(), str(cm.exception))
        with self.assertRaises(BraidError.NotAllowed) as cm:
            await client.connect_via(self.net.gateway(), self.net.forbidden_target())
        self.assertIn("does not allow", str(cm.exception))
        self.assertGreaterEqual(self.net.refused_connections(), 2)

    async def test_listener_gets_events_until_cancelled(self):
        client = client_for(self.net, ServiceType.HANDOVER)
        conn = await client.connect_via(self.net.gateway(), self.net.echo_target())
        got = []
        switched = threading.Event()

        class Listener(BraidEventListener):
            def on_event(self, event):
                got.append(event)
                if event.is_path_switched():
                    switched.set()

        sub = conn.set_listener(Listener())
        wifi = client.interfaces()[0].path_id
        client.interface_lost(wifi)
        ok = await asyncio.get_running_loop().run_in_executor(None, switched.wait, 10)
        self.assertTrue(ok, f"no switch event; got {got}")
        self.assertTrue(any(e.is_path_down() and e.path_id == wifi for e in got), got)
        sub.cancel()
        n = len(got)
        conn.abort()
        await asyncio.sleep(0.2)
        self.assertEqual(len(got), n, "cancelled listener still called")


    async def test_service_type_changes_live(self):
        client = client_for(self.net, ServiceType.HANDOVER)
        conn = await client.connect_via(self.net.gateway(), self.net.echo_target())
        cell = client.interfaces()[1].path_id

        async def cell_path(pred, what):
            for _ in range(200):
                p = next((p for p in conn.paths() if p.path_id == cell), None)
                if p is not None and pred(p):
                    return p
                await asyncio.sleep(0.05)
            self.fail(f"cellular path never {what}: {conn.paths()}")

        self.assertEqual(await echo_round(conn, 100_000), 100_000)
        # Handover keeps cellular as a backup; aggregate puts data on it.
        p = await cell_path(lambda p: p.state == "established", "established")
        self.assertTrue(p.backup, p)
        conn.set_service_type(ServiceType.AGGREGATE)
        await cell_path(lambda p: not p.backup, "left backup")
        self.assertEqual(await echo_round(conn, 100_000), 100_000)
        conn.abort()
        with self.assertRaises(BraidError.Closed):
            conn.set_service_type(ServiceType.HANDOVER)


class ApiTests(unittest.TestCase):
    def test_bad_arguments(self):
        bad = BraidConfig(
            service_type=ServiceType.HANDOVER,
            interfaces=[BraidInterface(kind=InterfaceKind.WIFI, local_addr="not an ip")],
        )
        with self.assertRaises(BraidError.InvalidArgument) as cm:
            BraidClient(bad)
        self.assertIn("not an ip", str(cm.exception))

    def test_defaults_agree(self):
        self.assertEqual(braid_default_config(), BraidConfig(service_type=ServiceType.HANDOVER))
        self.assertTrue(braid_version())



if __name__ == "__main__":
    unittest.main()
