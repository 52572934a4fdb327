"""Where load may go: the loopback-only target rule, checked per run, per request and per connection.

Never load-test production by accident: any host that is not loopback must be
named with ``--perf-allow-host``.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Iterable
from urllib.parse import urlsplit

from pytest_shopflow_perf._errors import ShopflowPerfError

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}

# check_host verdicts
_REFUSED, _LOOPBACK_IP, _ALLOWED, _RESOLVE = range(4)


class TargetError(ShopflowPerfError):
    """The target is refused or could not be started; the message says how to fix it."""


def _bare(host: str) -> str:
    return host.strip("[]").lower()


def _loopback_ip(host: str) -> bool:
    """127.0.0.0/8 or ::1 written plainly; odd forms (``127.1``, ``0x7f000001``, ``::ffff:127.0.0.1``) are not."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return False  # Python versions disagree on whether a mapped 127.x is loopback: refuse it
    return address.is_loopback


def _localhost_name(host: str) -> bool:
    return host in _LOOPBACK_NAMES or (host.endswith(".localhost") and len(host) > len(".localhost"))


def is_loopback_host(host: str) -> bool:
    """Loopback by its spelling: an IP literal in 127.0.0.0/8 or ::1, or a localhost-family name (unresolved)."""
    host = _bare(host)
    return _localhost_name(host) or _loopback_ip(host)


def refusal_message(host: str) -> str:
    return (
        f"host {host!r} is not loopback (127.0.0.0/8, ::1, localhost) and not allowed: if this is a test "
        f"environment you own, allow it explicitly with `--perf-allow-host {host}` (or ini `perf_allow_hosts`)"
    )


class TargetPolicy:
    """Which hosts load may go to, checked for every request and every connection.

    Loopback IP literals pass; explicitly allowed hosts pass (and are resolved
    normally); localhost-family names pass only if every address they resolve
    to is loopback, and the connection then goes to that checked address (no
    second resolution, so no DNS rebinding); any other name is refused without
    resolving it. Verdicts and resolutions are cached: the check is on the hot path.
    """

    def __init__(self, allowed_hosts: Iterable[str] = ()) -> None:
        self.allowed = frozenset(h.strip().lower() for h in allowed_hosts if h.strip())
        self._verdicts: dict[tuple[str, int | None], int] = {}
        self._resolved: dict[tuple[str, int], tuple[str, ...]] = {}
        self._not_loopback: dict[str, str] = {}  # localhost-family names that resolved elsewhere -> why
        self._lock = threading.Lock()

    def __reduce__(self) -> tuple[type[TargetPolicy], tuple[list[str]]]:
        """A shard gets the rule, not this process's verdicts: it resolves and checks every host itself."""
        return (TargetPolicy, (sorted(self.allowed),))

    def allowing(self, *hosts: str) -> TargetPolicy:
        """A copy that also allows ``hosts`` (the in-process host of an ASGI run, which is never connected to)."""
        return TargetPolicy([*self.allowed, *hosts])

    def _verdict(self, host: str, port: int | None) -> int:
        key = (host, port)
        verdict = self._verdicts.get(key)
        if verdict is None:
            bare = _bare(host)
            if bare in self.allowed or (port is not None and f"{bare}:{port}" in self.allowed):
                verdict = _ALLOWED
            elif _loopback_ip(bare):
                verdict = _LOOPBACK_IP
            elif _localhost_name(bare):
                verdict = _RESOLVE
            else:
                verdict = _REFUSED
            if len(self._verdicts) < 4096:  # journeys that invent hosts must not grow it without end
                self._verdicts[key] = verdict
        return verdict

    def check_host(self, host: str, port: int | None = None) -> bool:
        """Whether a request to ``host`` may be sent (sync, no DNS); localhost names are checked again at connect."""
        verdict = self._verdict(host, port)
        return verdict != _REFUSED and not (verdict == _RESOLVE and _bare(host) in self._not_loopback)

    def resolve_loopback(self, host: str, port: int) -> tuple[str, ...]:
        """Every address of a localhost-family name, all loopback, or ``TargetError`` (blocking: getaddrinfo)."""
        key = (_bare(host), port)
        with self._lock:
            cached = self._resolved.get(key)
            if cached is not None:
                return cached
            if key[0] in self._not_loopback:
                raise TargetError(self._not_loopback[key[0]])
            infos = socket.getaddrinfo(key[0], port, type=socket.SOCK_STREAM)
            addresses = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
            outside = [a for a in addresses if not _loopback_ip(a)]
            if outside or not addresses:
                why = (
                    f"host {host!r} resolves to {', '.join(outside) or 'nothing'}, not only to loopback; "
                    f"if that is a test environment you own, allow it with `--perf-allow-host {_bare(host)}`"
                )
                self._not_loopback[key[0]] = why  # refused from now on, without asking the resolver again
                raise TargetError(why)
            self._resolved[key] = addresses
            return addresses

    async def connect_address(self, host: str, port: int) -> str:
        """The address to connect to for ``host``: checked, so the connection goes where the check looked.

        Raises ``TargetRefused`` (an httpx ``TransportError``) for a refused host.
        """
        verdict = self._verdict(host, port)
        if verdict == _LOOPBACK_IP:
            return _bare(host)
        if verdict == _ALLOWED:
            return host  # the user vouched for it: resolved by the connection as usual
        from pytest_shopflow_perf.target.refused import TargetRefused

        if verdict == _REFUSED:
            raise TargetRefused(_bare(host))
        bare = _bare(host)
        cached = self._resolved.get((bare, port))
        if cached is not None:
            return cached[0]
        if bare in self._not_loopback:
            raise TargetRefused(bare, self._not_loopback[bare])
        import anyio.to_thread

        try:
            return (await anyio.to_thread.run_sync(self.resolve_loopback, host, port))[0]
        except TargetError as exc:
            raise TargetRefused(_bare(host), str(exc)) from None

    def other_addresses(self, host: str, port: int, tried: str) -> tuple[str, ...]:
        """The other checked addresses of a resolved localhost-family name, to try when ``tried`` refuses."""
        return tuple(a for a in self._resolved.get((_bare(host), port), ()) if a != tried)

    def check_url(self, base_url: str) -> None:
        """Set-up check of a base URL (resolves localhost-family names); ``TargetError`` says how to fix it."""
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TargetError(f"target {base_url!r} is not an http:// or https:// URL with a host")
        host = parts.hostname
        try:
            port = parts.port
        except ValueError:
            raise TargetError(f"target {base_url!r} has an invalid port") from None
        verdict = self._verdict(host, port)
        if verdict == _REFUSED:
            raise TargetError(
                f"refusing to load-test {base_url!r}: {refusal_message(host)}. Never point a load test at production."
            )
        if verdict == _RESOLVE:
            try:
                self.resolve_loopback(host, port or (443 if parts.scheme == "https" else 80))
            except OSError as exc:
                why = f"host {host!r} does not resolve ({exc})"
                raise TargetError(f"refusing to load-test {base_url!r}: {why}") from None
            except TargetError as exc:
                raise TargetError(f"refusing to load-test {base_url!r}: {exc}") from None


def check_target(base_url: str, allowed_hosts: Iterable[str]) -> None:
    """Refuse non-loopback hosts unless allowed; localhost-family names must resolve to loopback only."""
    TargetPolicy(allowed_hosts).check_url(base_url)
