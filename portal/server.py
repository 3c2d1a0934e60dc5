"""The portal under gunicorn: one app per worker process, gthread workers that no guest can hold up, each
response in one TCP segment, the start-up objects kept out of the garbage collector's walks."""

from __future__ import annotations

import contextlib
import gc
import logging
import resource
import shutil
import socket
import struct
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gunicorn.workers.gthread import _DEFER, ThreadWorker  # type: ignore[attr-defined]  # private: not in the stub

from portal import PortalSettings, create_app
from rlm_hotspot.metrics import count_in_files, serve_workers, worker_exited
from rlm_hotspot.services.portal import PortalHotspot
from rlm_hotspot.web import GunicornServer

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment


KEEPALIVE_MARGIN_S = 15  # a heartbeat a little late (a busy phone) still finds its connection open
CONNECTIONS_PER_WORKER = 10_000  # an idle keep-alive connection costs a file descriptor and a few kB
OTHER_FILES = 100  # the database pool, log files, the listening socket


def _room_for_connections(workers: int) -> int:
    """Connections per worker, within the open-file limit (raised up to its hard limit if lower)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = CONNECTIONS_PER_WORKER + OTHER_FILES
    if soft != resource.RLIM_INFINITY and soft < wanted:
        soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return CONNECTIONS_PER_WORKER
    room = max(1, soft - OTHER_FILES)
    print(
        f"warning: the open-file limit ({soft}) leaves room for {room} connections per worker, "
        f"{room * workers} guests online in all; raise it (LimitNOFILE= in the systemd unit)",
        file=sys.stderr,
    )
    return room


log = logging.getLogger("rlm_hotspot.portal")

REQUEST_TIMEOUT_S = 2  # a request, once begun, must arrive within this (a lost segment is resent in < 2 s)
YOUNG_OBJECTS_BEFORE_COLLECTION = 10_000  # Python's default is 700


def spare_startup_objects_from_gc() -> None:
    """Keep the garbage collector off the objects a worker holds for life, and make it run less often.

    A worker's app, templates and libraries are ~100,000 objects that are never garbage, and Python's
    full collection walked them all: 80-170 ms (on this VM) during which the worker's every guest
    waited — three times in 45 s at 1,000 requests/s. Frozen after start-up, they are left out; with
    fewer young collections, fewer objects are promoted to the old generation and full collections
    become rare (once in 45 s, 13-26 ms). Memory: at most ~10,000 young objects await a collection.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_OBJECTS_BEFORE_COLLECTION, *gc.get_threshold()[1:])


class PortalWorker(ThreadWorker):
    """gunicorn's gthread worker, never left waiting on one guest (gunicorn 27's internals: pinned).

    gthread waits in a request thread: up to 5 s for the first bytes of each new connection (a browser's
    preconnect sends none), and with no limit at all for the rest of a request whose first bytes came (a
    phone that left the Wi-Fi halfway). A worker has one or two such threads: meanwhile its other guests
    wait, or all of them do. Here a new connection without data waits in the poller like an idle
    keep-alive one, and a begun request must arrive within REQUEST_TIMEOUT_S, or its connection is closed
    (a warning, not a traceback).
    """

    def init_process(self) -> None:
        self.log.error_log.addFilter(_StalledRequests())
        super().init_process()

    def load_wsgi(self) -> None:
        super().load_wsgi()
        spare_startup_objects_from_gc()

    def handle(self, conn: Any) -> Any:
        if not conn.initialized:
            if not conn.wait_for_data(0):
                return _DEFER  # to the poller, which hands it back when its first bytes arrive
            deadline = struct.pack("ll", REQUEST_TIMEOUT_S, 0)
            conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, deadline)
            conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, deadline)
        return super().handle(conn)


class _StalledRequests(logging.Filter):
    """gthread logs a socket timeout with a traceback, as if it were a bug: one line says what happened."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, BlockingIOError):
            record.msg, record.args, record.exc_info, record.exc_text = (
                "closed a connection whose request stalled for %d s (the client went away?)",
                (REQUEST_TIMEOUT_S,),
                None,
                None,
            )
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


class OneSegmentResponses:
    """Each HTTP/1 response leaves in one TCP segment instead of two.

    gunicorn sends a response's head and its body with a `send` each, and with TCP_NODELAY (its default)
    each is a packet of its own: two wake-ups of the guest's side, twice the per-packet work for the
    kernel — and on a hotspot's air, where every frame waits its turn. Corking the socket while the
    response is written, and uncorking it when gunicorn closes the body, sends both at once; a heartbeat's
    whole reply fits one packet. (A static file then goes out by iteration rather than sendfile(): the
    portal's are a few kB.)
    """

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        sock = environ.get("gunicorn.socket")
        if sock is None or not str(environ.get("SERVER_PROTOCOL", "")).startswith("HTTP/1"):
            return self.app(environ, start_response)
        _cork(sock, True)
        try:
            body = self.app(environ, start_response)
        except BaseException:
            _cork(sock, False)
            raise
        return _UncorkedOnClose(body, sock)


class _UncorkedOnClose:
    """A response body that uncorks the socket when gunicorn closes it (after the last byte, always)."""

    def __init__(self, body: Iterable[bytes], sock: socket.socket) -> None:
        self.body = body
        self.sock = sock

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.body)

    def close(self) -> None:
        try:
            if hasattr(self.body, "close"):
                self.body.close()
        finally:
            _cork(self.sock, False)


def _cork(sock: socket.socket, on: bool) -> None:
    with contextlib.suppress(OSError):  # the guest went away meanwhile: gunicorn finds out on its next send
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, int(on))


def serve(
    settings: PortalSettings,
    hotspot: PortalHotspot,
    *,
    bind: str,
    workers: int,
    threads: int,
    access_log: bool,
    metrics_port: int | None,
    metrics_address: str,
) -> None:
    """Serve the portal of `hotspot` with gunicorn until stopped (SIGTERM finishes the requests in flight)."""
    connections = _room_for_connections(workers)
    options: dict[str, object] = {
        "bind": bind,
        "workers": workers,
        "threads": threads,
        "worker_class": f"{__name__}.PortalWorker",
        # A listening socket per worker: the kernel spreads new connections evenly. On one shared socket
        # whichever worker wakes first takes most of them, and a browser's keep-alive connection (its
        # heartbeats) stays where it landed: one worker saturates while the other idles.
        "reuse_port": True,
        "proc_name": f"hotspot-portal-{hotspot.name}",
        "errorlog": "-",
        "accesslog": "-" if access_log else None,
        "logger_class": "rlm_hotspot.web.GunicornLogs",  # its lines in the process's --log-format
        "graceful_timeout": 10,
        # A status page keeps its connection between heartbeats (gunicorn's default keep-alive, 2 s, made
        # every heartbeat a new connection: at 1,000 heartbeats/s p99 232-271 ms instead of 28-40 ms), so
        # each guest online holds an idle connection: room for them all, or a worker stops accepting. The
        # hotspot's heartbeat timeout is read at start: a restart applies a changed one here.
        "keepalive": settings.heartbeat_interval(hotspot.heartbeat_timeout) + KEEPALIVE_MARGIN_S,
        "worker_connections": connections,
        # gunicorn's control socket is one path per user ($XDG_RUNTIME_DIR or ~/.gunicorn): a second portal
        # (another hotspot, the tests beside `make demo`) would take it over. Nothing here uses it.
        "control_socket_disable": True,
    }
    if metrics_port is None:
        GunicornServer(lambda: OneSegmentResponses(create_app(settings)), options).run()
        return
    counts = Path(tempfile.mkdtemp(prefix=f"hotspot-portal-{hotspot.name}-metrics-"))
    count_in_files(counts)
    options["when_ready"] = lambda _arbiter: _serve_metrics(counts, metrics_port, metrics_address)
    options["child_exit"] = lambda _arbiter, child: worker_exited(counts, child.pid)
    try:
        GunicornServer(lambda: OneSegmentResponses(create_app(settings)), options).run()
    finally:
        shutil.rmtree(counts, ignore_errors=True)


def _serve_metrics(counts: Path, port: int, address: str) -> None:
    """In gunicorn's master once it is ready: a taken port costs the metrics, never the portal."""
    try:
        serve_workers(counts, port, address)
    except OSError as exc:
        log.error("metrics not served on %s:%d: %s", address, port, exc.strerror or exc)
