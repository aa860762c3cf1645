"""Prometheus metrics of the API's requests, counted by a pure ASGI middleware.

The handler label is the route's path template, read from the scope the router has already matched (Starlette
puts the route there): no second pass over every route per request, which is what made the generic instrumentator
cost a fifth of a predictions page's CPU time.
"""

import time

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED = "none"  # the handler label of a request no route matched (a 404 for an unknown path)


class RequestMetrics:
    """`http_requests_total` (method, handler, status) and `http_request_duration_seconds` (method, handler) in a
    registry of their own, served by `endpoint`."""

    def __init__(self, excluded: frozenset[str]) -> None:
        self.excluded = excluded
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "http_requests_total", "Requests answered.", ["method", "handler", "status"], registry=self.registry
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "Time from the request to the end of its response.",
            ["method", "handler"],
            registry=self.registry,
        )

    def middleware(self, app: ASGIApp) -> ASGIApp:
        """`app` with every HTTP request outside `excluded` counted and timed."""

        async def measured(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            status = [500]  # an app that raises before it answers is a server error

            async def send_watching(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status[0] = message["status"]
                await send(message)

            started = time.perf_counter()
            try:
                await app(scope, receive, send_watching)
            finally:
                route = scope.get("route")
                handler = getattr(route, "path", UNMATCHED)
                if handler not in self.excluded:
                    self.requests.labels(scope["method"], handler, str(status[0])).inc()
                    self.duration.labels(scope["method"], handler).observe(time.perf_counter() - started)

        return measured

    async def endpoint(self, _: Request) -> Response:
        """The metrics in Prometheus's text format."""
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)
