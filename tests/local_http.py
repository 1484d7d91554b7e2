"""Test helper: an HTTP server on 127.0.0.1 in a thread, serving fixed routes.

    with serve({"/a.pdparams": Route(body=data)}) as server:
        resolve_weights_path(server.base + "/a.pdparams")

A route gives a status, a body and how the body is sent: ``length`` is the Content-Length header
(None: no header, the body ends when the connection closes), ``location`` makes it a redirect.
Every request path is recorded in ``server.requests``.
"""
import contextlib
import http.server
import threading
from dataclasses import dataclass
from typing import Optional


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    length: Optional[int] = -1       # -1: the body's true length; None: no Content-Length
    location: Optional[str] = None   # redirect target (status 302 unless given)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"    # the connection closes after each response

    def do_GET(self):  # noqa: N802 - http.server's naming
        self.server.requests.append(self.path)
        route = self.server.routes.get(self.path)
        if route is None:
            self.send_error(404)
            return
        if route.location is not None:
            self.send_response(route.status if route.status != 200 else 302)
            self.send_header("Location", route.location)
            self.end_headers()
            return
        self.send_response(route.status)
        length = len(route.body) if route.length == -1 else route.length
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.end_headers()
        try:
            self.wfile.write(route.body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (size cap)
            pass

    def log_message(self, *args):  # keep pytest's output clean
        pass


@contextlib.contextmanager
def serve(routes):
    """Serve ``{path: Route}``; yields the server, whose ``base`` is ``http://127.0.0.1:<port>``
    and whose ``requests`` lists the paths asked for."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.routes = routes
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    server.base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
