"""A local HTTP server for the tests that fetch (weight files, images): 127.0.0.1 on a free port, served
from a daemon thread, quiet about the requests and about clients that hang up mid-answer."""

from __future__ import annotations

import contextlib
import http.server
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any


class QuietFiles(http.server.SimpleHTTPRequestHandler):
    """Serves a directory's files (``functools.partial(QuietFiles, directory=...)``) without a log line
    per request."""

    def log_message(self, *args: Any) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        # A download a test ends early (a full disk) hangs up while the handler still writes: socketserver
        # printed that to standard error, outside any test's captured output.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@contextlib.contextmanager
def serving(handler: Callable[..., http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """``handler`` served on 127.0.0.1; yields the server's address (``http://127.0.0.1:PORT``) and shuts
    the server down after."""
    httpd = _Server(("127.0.0.1", 0), handler)
    # shutdown() waits for the loop's next look at its flag: every 0.5 s by default, half a second a test.
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        httpd.server_close()
