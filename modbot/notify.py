"""systemd notification protocol (sd_notify) over ``$NOTIFY_SOCKET``: READY, WATCHDOG, STOPPING.

The protocol is one datagram of ``KEY=VALUE`` lines to the AF_UNIX socket named by
``$NOTIFY_SOCKET`` (``@`` prefix = abstract namespace); see sd_notify(3). Outside systemd
(no ``$NOTIFY_SOCKET``) every call is a no-op returning False.
"""

from __future__ import annotations

import os
import socket
import time


def sd_notify(state: str, *, env: dict[str, str] | None = None) -> bool:
    """Send ``state`` (e.g. ``"READY=1"``) to systemd. Returns True if a datagram was sent.

    Errors talking to the socket are swallowed (returns False): notification must never stop
    the daemon.
    """
    addr = (env if env is not None else os.environ).get("NOTIFY_SOCKET")
    if not addr:
        return False
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(addr)
            sock.sendall(state.encode("utf-8"))
    except OSError:
        return False
    return True


class Notifier:
    """READY/STATUS/STOPPING messages and watchdog pings, rate-limited to half of
    ``$WATCHDOG_USEC`` (microseconds, set by systemd from ``WatchdogSec=``)."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.env = dict(os.environ) if env is None else env
        usec = self.env.get("WATCHDOG_USEC")
        pid = self.env.get("WATCHDOG_PID")
        enabled = bool(usec) and (not pid or pid == str(os.getpid()))
        self.watchdog_interval_s = int(usec) / 2e6 if enabled and usec else None
        self._last_ping = 0.0

    def ready(self, status: str = "streaming") -> bool:
        """Tell systemd start-up is complete (``Type=notify``)."""
        return sd_notify(f"READY=1\nSTATUS={status}", env=self.env)

    def status(self, text: str) -> bool:
        """Set the one-line status shown by ``systemctl status``."""
        return sd_notify(f"STATUS={text}", env=self.env)

    def watchdog(self) -> bool:
        """Ping the watchdog if half its interval has passed since the last ping."""
        if self.watchdog_interval_s is None:
            return False
        now = time.monotonic()
        if now - self._last_ping < self.watchdog_interval_s:
            return False
        self._last_ping = now
        return sd_notify("WATCHDOG=1", env=self.env)

    def stopping(self) -> bool:
        """Tell systemd the service is shutting down."""
        return sd_notify("STOPPING=1", env=self.env)
