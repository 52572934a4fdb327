"""The fault-injection proxy on real loopback sockets: pass-through fidelity, each fault, the schedule, clean stop."""

from __future__ import annotations

import json
import os
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from pytest_shopflow_perf.faults.proxy import FaultProxy
from pytest_shopflow_perf.faults.spec import Fault, bandwidth, errors, latency, outage, resets, timeouts

PROXY_THREAD = "shopflow-perf fault proxy"
BIG = 400_000


class Upstream(BaseHTTPRequestHandler):
    """What the delay server cannot do: large, chunked and close-delimited bodies, and echoes of the request."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # quiet
        pass

    def read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b""):
                pass
            return b"".join(parts)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_GET(self):
        self.serve(b"")

    def do_HEAD(self):
        self.serve(b"")

    def do_POST(self):
        self.serve(self.read_body())

    def serve(self, body: bytes) -> None:
        if self.path == "/upgrade":  # 101, then an upper-casing echo on the raw connection
            self.send_response(101)
            self.send_header("Upgrade", "shout")
            self.send_header("Connection", "Upgrade")
            self.end_headers()
            self.wfile.flush()
            while data := self.rfile.read1(65536):
                self.wfile.write(data.upper())
                self.wfile.flush()
            self.close_connection = True
        elif self.path.startswith("/big/"):
            size = int(self.path.rsplit("/", 1)[1])
            payload = (bytes(range(256)) * (size // 256 + 1))[:size]
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
        elif self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"alpha,", b"beta" * 30_000, b",gamma"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == "/eof":  # no length: the body ends when the connection does
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"until the end")
        else:
            echo = json.dumps(
                {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body.decode()}
            ).encode()
            self.send_response(201)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(echo)))
            self.send_header("X-Echo", "yes")
            if self.path == "/close":
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(echo)


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def proxy(delay_server: str) -> Iterator[FaultProxy]:
    with FaultProxy(delay_server, seed=1) as running:
        yield running


@pytest.fixture
def client(proxy: FaultProxy) -> Iterator[httpx.Client]:
    assert proxy.url is not None
    with httpx.Client(base_url=proxy.url, trust_env=False, timeout=5) as http:
        yield http


def timed(http: httpx.Client, path: str) -> float:
    started = time.perf_counter()
    http.get(path).raise_for_status()
    return time.perf_counter() - started


# -- fault descriptions --------------------------------------------------------------------------------------------


def test_fault_helpers_read_durations_and_describe_themselves() -> None:
    fault = latency("300ms", jitter="50ms", at="10s", until="20s", path="/api/cart")
    assert (fault.kind, fault.at, fault.until, fault.path) == ("latency", 10.0, 20.0, "/api/cart")
    assert fault.params == {"delay_s": 0.3, "jitter_s": 0.05}
    assert fault.to_dict() == {
        "name": "latency 300ms +-50ms on /api/cart",
        "kind": "latency",
        "start_s": 10.0,
        "end_s": 20.0,
        "path": "/api/cart",
        "delay_s": 0.3,
        "jitter_s": 0.05,
    }
    json.dumps(fault.to_dict())
    assert [fault.active(t) for t in (9.99, 10.0, 19.99, 20.0)] == [False, True, True, False]
    assert fault.matches("/api/cart")
    assert fault.matches("/api/cart/7")
    assert not fault.matches("/api/cartoon")

    assert errors("5%", status=500, at=2, duration="1.5s").until == 3.5
    assert errors(0.05).to_dict()["end_s"] is None
    assert errors(0.05).params == {"ratio": 0.05, "status": 503}
    assert resets().params == {"ratio": 1.0}
    assert timeouts(0.5).params == {"ratio": 0.5}
    assert bandwidth(1000).params == {"bytes_per_second": 1000.0}
    assert outage(at="30s", duration="5s", name="db down").to_dict() == {
        "name": "db down",
        "kind": "outage",
        "start_s": 30.0,
        "end_s": 35.0,
        "path": None,
    }
    assert hash(errors(0.1)) == hash(errors(0.1))  # frozen: usable in sets and as keys


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: latency("fast"), r"latency\(\): delay='fast' is not a duration"),
        (lambda: latency(-1), "non-negative"),
        (lambda: latency(0.1, until=2, duration=1), "either until= or duration="),
        (lambda: latency(0.1, at=5, until=4), "must end after it starts"),
        (lambda: errors(1.5), r"errors\(\): ratio=1.5 must lie between 0 and 100 %"),
        (lambda: errors(0.1, status=200), "must be an HTTP error status"),
        (lambda: resets(path="api"), "must be a path prefix starting with '/'"),
        (lambda: bandwidth(0), "must be a positive number"),
        (lambda: outage(at=1), "give duration= or until="),
        (lambda: Fault(kind="lag"), "unknown fault kind"),
    ],
)
def test_bad_fault_descriptions_are_refused_with_a_clear_message(build, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def test_the_proxy_refuses_a_bad_upstream_and_non_faults() -> None:
    with pytest.raises(ValueError, match="is not an http:// or https:// URL"):
        FaultProxy("127.0.0.1:8000")
    with pytest.raises(TypeError, match="is not a Fault"):
        FaultProxy("http://127.0.0.1:1").set_faults(["latency"])  # type: ignore[list-item]


# -- pass-through --------------------------------------------------------------------------------------------------


def test_pass_through_keeps_status_headers_and_body_on_one_keep_alive_connection(
    proxy: FaultProxy, client: httpx.Client, delay_server: str
) -> None:
    direct = httpx.get(f"{delay_server}/status/404?x=1", trust_env=False)
    via = client.get("/status/404?x=1")
    assert via.status_code == 404
    assert via.json() == direct.json() == {"items": [{"id": 1}, {"id": 2}], "path": "/status/404?x=1"}
    assert via.headers["content-type"] == "application/json"
    assert "x-service-time-us" in via.headers
    for _ in range(20):
        assert client.get("/delay/0").status_code == 200
    stats = proxy.stats
    assert stats["connections"] == 1
    assert stats["upstream_connections"] == 1
    assert stats["requests"] == stats["forwarded"] == 21
    assert stats["upstream_errors"] == stats["proxy_errors"] == 0


def test_request_bodies_and_headers_reach_the_upstream(upstream: str) -> None:
    with FaultProxy(upstream) as proxy, httpx.Client(base_url=proxy.url or "", trust_env=False) as http:
        sent = http.post("/echo?q=1", content=b"x" * 5000, headers={"X-Custom": "kept"})
        assert sent.status_code == 201
        assert sent.headers["x-echo"] == "yes"
        echo = sent.json()
        assert (echo["method"], echo["path"], echo["body"]) == ("POST", "/echo?q=1", "x" * 5000)
        assert echo["headers"]["X-Custom"] == "kept"
        assert echo["headers"]["Host"] == upstream.removeprefix("http://")  # the upstream's name, not the proxy's

        def parts() -> Iterator[bytes]:
            yield b"chunked "
            yield b"request " * 20_000
            yield b"body"

        echo = http.post("/echo", content=parts()).json()  # a generator body goes out chunked
        assert echo["headers"]["Transfer-Encoding"] == "chunked"
        assert echo["body"] == "chunked " + "request " * 20_000 + "body"

        chunked = http.get("/chunked")
        assert chunked.headers["transfer-encoding"] == "chunked"
        assert chunked.content == b"alpha," + b"beta" * 30_000 + b",gamma"

        big = http.get(f"/big/{BIG}")
        assert big.content == (bytes(range(256)) * (BIG // 256 + 1))[:BIG]
        head = http.head(f"/big/{BIG}")  # a length but no body: the proxy must not wait for one
        assert head.headers["content-length"] == str(BIG)
        assert head.content == b""
        assert http.get("/after-head").status_code == 201
        assert proxy.stats["connections"] == 1


def test_connection_close_and_close_delimited_bodies(upstream: str) -> None:
    with FaultProxy(upstream) as proxy, httpx.Client(base_url=proxy.url or "", trust_env=False) as http:
        assert http.get("/echo", headers={"Connection": "close"}).status_code == 201
        assert http.get("/echo").status_code == 201
        assert proxy.stats["connections"] == 2  # the client's close was honoured

        closing = http.get("/close")
        assert closing.status_code == 201
        assert closing.headers["connection"] == "close"
        assert http.get("/eof").content == b"until the end"
        last = http.get(f"/big/{BIG}", headers={"Connection": "close"})  # closing must not cut the body short
        assert len(last.content) == BIG
        assert http.get("/echo").status_code == 201
        stats = proxy.stats
        assert stats["connections"] == 5
        assert stats["forwarded"] == 6
        assert stats["upstream_errors"] == 0


def raw_exchange(url: str, data: bytes, *, until: bytes = b"") -> bytes:
    """What a hand-written client gets back: for what httpx never sends."""
    sock = socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=5)
    with sock:
        sock.sendall(data)
        received = b""
        while (not until or until not in received) and (chunk := sock.recv(65536)):
            received += chunk
        return received


def test_http10_expect_continue_upgrade_and_garbage(upstream: str) -> None:
    with FaultProxy(upstream) as proxy:
        url = proxy.url or ""
        answer = raw_exchange(url, b"GET /echo HTTP/1.0\r\n\r\n")  # no Host, no keep-alive: closed after
        assert answer.startswith(b"HTTP/1.1 201")  # and the connection closed: raw_exchange read to EOF
        assert json.loads(answer.partition(b"\r\n\r\n")[2])["headers"]["Host"] == upstream.removeprefix("http://")

        sock = socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=5)
        with sock:
            sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
            assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"  # the body is only sent after this
            sock.sendall(b"hello")
            received = b""
            while b'"body": "hello"' not in received:
                received += sock.recv(65536)
            assert b"Expect" not in received  # the proxy answered it; the upstream never saw it

            sock.sendall(b"GET /upgrade HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: shout\r\n\r\n")
            head = b""
            while b"\r\n\r\n" not in head:
                head += sock.recv(65536)
            assert head.startswith(b"HTTP/1.1 101")
            sock.sendall(b"tunnelled")
            assert sock.recv(100) == b"TUNNELLED"

        assert raw_exchange(url, b"NONSENSE\r\n\r\n").startswith(b"HTTP/1.1 400 Bad Request")
        assert proxy.stats["proxy_errors"] == 0


BAD_LENGTHS = [
    b"Content-Length: 1_0",
    b"Content-Length: +10",
    b"Content-Length: -1",
    b"Content-Length: 1 0",
    b"Content-Length: 0x0a",
    b"Content-Length: ",
    b"Content-Length: 10, 11",
    b"Content-Length: 10\r\nContent-Length: 11",
    b"Content-Length: 10\r\nContent-Length: 010",
    b"Content-Length: " + b"1" * 21,
    b"Content-Length: 10\r\nTransfer-Encoding: chunked",  # ambiguous framing: the classic smuggling pair
    b"Transfer-Encoding: gzip, chunked",
    b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
]


@pytest.mark.parametrize("header", BAD_LENGTHS)
def test_a_request_with_a_bad_content_length_gets_400_and_is_closed(upstream: str, header: bytes) -> None:
    """Strict as h11: a lenient ``int()`` frames the body differently from a strict upstream (smuggling)."""
    with FaultProxy(upstream) as proxy:
        answer = raw_exchange(proxy.url or "", b"POST /echo HTTP/1.1\r\nHost: x\r\n" + header + b"\r\n\r\n0123456789")
        assert answer.startswith(b"HTTP/1.1 400 Bad Request")  # and closed: raw_exchange read to EOF
        assert b"Connection: close" in answer
        assert proxy.stats["forwarded"] == 0


@pytest.mark.parametrize(
    "header", [b"Content-Length: 10", b"Content-Length:  10 ", b"Content-Length: 10\r\ncontent-length: 10"]
)
def test_valid_content_lengths_still_pass(upstream: str, header: bytes) -> None:
    with FaultProxy(upstream) as proxy:
        request = b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + header + b"\r\n\r\n0123456789"
        answer = raw_exchange(proxy.url or "", request)
        assert answer.startswith(b"HTTP/1.1 201")
        assert b'"body": "0123456789"' in answer


def test_an_upstream_answer_with_a_bad_content_length_becomes_502() -> None:
    from support.hostile import raw_server

    with (
        raw_server(lambda head: b"HTTP/1.1 200 OK\r\nContent-Length: 1_0\r\n\r\n0123456789") as bad,
        FaultProxy(bad.url) as proxy,
        httpx.Client(base_url=proxy.url or "", trust_env=False, timeout=5) as c,
    ):
        answer = c.get("/")
        assert answer.status_code == 502
        assert "Content-Length" in answer.json()["detail"]
        assert proxy.stats["upstream_errors"] == 1


def test_an_unreachable_upstream_is_answered_with_502() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with FaultProxy(dead) as proxy, httpx.Client(base_url=proxy.url or "", trust_env=False) as http:
        answer = http.get("/anything")
        assert answer.status_code == 502
        assert answer.json()["error"] == "bad gateway"
        assert http.get("/again").status_code == 502  # the client connection survives
        assert proxy.stats["upstream_errors"] == 2
        assert proxy.stats["connections"] == 1


# -- faults --------------------------------------------------------------------------------------------------------


def test_injected_latency_shows_within_ten_milliseconds(proxy: FaultProxy, client: httpx.Client) -> None:
    base = statistics.median(timed(client, "/delay/0") for _ in range(30))
    proxy.set_faults([latency("100ms")])
    slow = statistics.median(timed(client, "/delay/0") for _ in range(9))
    assert 0.090 <= slow - base <= 0.110, f"added {1000 * (slow - base):.1f} ms"

    proxy.set_faults([latency("40ms", jitter="20ms")])
    spread = [timed(client, "/delay/0") - base for _ in range(20)]
    assert min(spread) >= 0.015
    assert max(spread) <= 0.070
    assert max(spread) - min(spread) > 0.015
    proxy.set_faults([])
    assert timed(client, "/delay/0") < 0.05
    assert proxy.stats["latency"] == 29


def test_error_ratio_is_measured_within_one_point_over_3000_requests(proxy: FaultProxy, client: httpx.Client) -> None:
    proxy.set_faults([errors(0.05)])
    failed = 0
    for _ in range(3000):
        answer = client.get("/delay/0")
        if answer.status_code != 200:
            assert answer.status_code == 503
            assert answer.headers["x-fault-injected"] == "errors"
            assert answer.json() == {"error": "injected fault", "fault": "errors 5% (503)", "status": 503}
            failed += 1
    assert abs(failed / 3000 - 0.05) <= 0.01
    stats = proxy.stats
    assert stats["errors"] == failed
    assert stats["forwarded"] == 3000 - failed
    assert stats["connections"] == 1


def test_ratio_decisions_repeat_for_the_same_seed(delay_server: str) -> None:
    def pattern() -> list[int]:
        with FaultProxy(delay_server, seed=7) as proxy, httpx.Client(base_url=proxy.url or "", trust_env=False) as c:
            proxy.begin([errors(0.3, status=500)])
            return [c.get("/delay/0").status_code for _ in range(100)]

    first = pattern()
    assert first == pattern()
    assert 10 < first.count(500) < 50


def test_resets_abort_the_connection(proxy: FaultProxy, client: httpx.Client) -> None:
    proxy.set_faults([resets()])
    for _ in range(3):
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            client.get("/delay/0")
    proxy.set_faults([])
    assert client.get("/delay/0").status_code == 200
    assert proxy.stats["resets"] == 3
    assert proxy.stats["connections"] == 4


def test_timeouts_hang_until_the_client_gives_up_or_the_fault_ends(proxy: FaultProxy, client: httpx.Client) -> None:
    proxy.set_faults([timeouts()])
    started = time.perf_counter()
    with pytest.raises(httpx.ReadTimeout):
        client.get("/delay/0", timeout=0.3)
    assert 0.29 <= time.perf_counter() - started < 0.5

    proxy.begin([timeouts(until=0.3)])  # a held request goes through late when its fault ends
    started = time.perf_counter()
    assert client.get("/delay/0").status_code == 200
    assert 0.28 <= time.perf_counter() - started < 0.4
    assert proxy.stats["timeouts"] == 2


def test_an_outage_resets_everything_at_once_then_recovers(proxy: FaultProxy, delay_server: str) -> None:
    url = proxy.url or ""
    with (
        httpx.Client(base_url=url, trust_env=False, timeout=5) as busy,
        httpx.Client(base_url=url, trust_env=False, timeout=5) as idle,
        ThreadPoolExecutor(1) as pool,
    ):
        assert idle.get("/delay/0").status_code == 200  # a keep-alive connection, idle when the outage starts
        start = time.perf_counter()
        proxy.begin([outage(at=0.3, duration=0.4)], start=start)

        def in_flight_request() -> float:
            with pytest.raises(httpx.TransportError):
                busy.get("/delay/2000")  # still waiting for its answer at 0.3 s
            return time.perf_counter() - start

        in_flight = pool.submit(in_flight_request)
        outcomes: list[tuple[float, bool]] = []
        while (now := time.perf_counter() - start) < 1.0:
            try:
                ok = idle.get("/delay/0").status_code == 200
            except httpx.TransportError:
                ok = False
            outcomes.append((now, ok))
            time.sleep(0.01)
        assert 0.29 <= in_flight.result() <= 0.36  # reset when the outage began, not answered at 2 s
    assert all(ok for t, ok in outcomes if t < 0.28)
    assert not any(ok for t, ok in outcomes if 0.32 <= t < 0.68)
    assert all(ok for t, ok in outcomes if t >= 0.72)
    assert proxy.stats["outage"] >= 10


def test_path_scoping_on_segment_boundaries(proxy: FaultProxy, client: httpx.Client) -> None:
    proxy.set_faults([errors(1.0, status=500, path="/status"), resets(path="/hang")])
    assert client.get("/status/200").status_code == 500
    assert client.get("/status").status_code == 500
    assert client.get("/statusx").status_code == 200  # another segment
    assert client.get("/delay/0?path=/status").status_code == 200  # the query is not the path
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        client.get("/hang")


def test_scheduled_faults_switch_on_and_off_on_the_run_clock(proxy: FaultProxy, client: httpx.Client) -> None:
    # the newest active fault wins: 503 inside the 500 window, then 500 again until it ends
    start = time.perf_counter()
    proxy.begin(
        [errors(1.0, status=500, at=0.2, until=0.6, path="/delay"), errors(1.0, status=503, at=0.3, until=0.45)],
        start=start,
    )
    seen: list[tuple[float, int]] = []
    while (now := time.perf_counter() - start) < 0.8:
        seen.append((now, client.get("/delay/0").status_code))
        time.sleep(0.003)

    def switches(status: int) -> tuple[float, float]:
        times = [t for t, s in seen if s == status]
        return times[0], times[-1]

    first_500, last_500 = switches(500)
    first_503, last_503 = switches(503)
    for measured, expected in ((first_500, 0.2), (first_503, 0.3), (last_503, 0.45), (last_500, 0.6)):
        assert abs(measured - expected) <= 0.05, f"switched at {measured:.3f} s, expected {expected} s"
    assert [s for t, s in seen if 0.33 < t < 0.42]
    assert {s for t, s in seen if 0.33 < t < 0.42} == {503}
    assert {s for t, s in seen if 0.48 < t < 0.57} == {500}
    assert {s for t, s in seen if t < 0.18 or t > 0.65} == {200}


def test_bandwidth_limit_slows_a_large_body(upstream: str) -> None:
    with FaultProxy(upstream) as proxy, httpx.Client(base_url=proxy.url or "", trust_env=False) as http:
        fast = timed(http, f"/big/{BIG}")
        proxy.set_faults([bandwidth(2_000_000)])  # 400 kB at 2 MB/s: 0.2 s
        started = time.perf_counter()
        body = http.get(f"/big/{BIG}").content
        slow = time.perf_counter() - started
        assert len(body) == BIG
        assert fast < 0.1
        assert 0.18 <= slow <= 0.26, f"{BIG} bytes took {slow:.3f} s"
        assert proxy.stats["bandwidth"] == 1


# -- life cycle ----------------------------------------------------------------------------------------------------


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors through /proc")
def test_stop_closes_every_socket_and_the_thread_even_mid_request(delay_server: str) -> None:
    httpx.get(f"{delay_server}/delay/0", trust_env=False)  # warm imports and lazily opened descriptors
    before = open_fds()
    proxy = FaultProxy(delay_server)
    url = proxy.start()
    assert url.startswith("http://127.0.0.1:")
    assert proxy.start() == url
    assert [t for t in threading.enumerate() if t.name == PROXY_THREAD]
    with httpx.Client(base_url=url, trust_env=False, timeout=5) as http, ThreadPoolExecutor(2) as pool:
        assert http.get("/delay/0").status_code == 200
        proxy.set_faults([timeouts(path="/held")])
        held = pool.submit(http.get, "/held")  # hung by the proxy
        upstream_busy = pool.submit(http.get, "/delay/3000")  # waiting for the upstream
        time.sleep(0.2)
        started = time.perf_counter()
        proxy.stop()
        assert time.perf_counter() - started < 1.0
        for future in (held, upstream_busy):
            with pytest.raises(httpx.TransportError):
                future.result()
    proxy.stop()  # idempotent
    assert proxy.url is None
    assert not [t for t in threading.enumerate() if t.name == PROXY_THREAD]
    assert open_fds() == before
