"""Prometheus metrics at ``GET /metrics``: requests by route template and status, latency
histogram, and refusals by problem code. Counters are per process; each replica is scraped
on its own, as Prometheus expects."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from litestar import Controller, Response, get
from litestar.types import ASGIApp, Message, Receive, Scope, Send

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.latency_counts: dict[str, list[int]] = defaultdict(lambda: [0] * (len(BUCKETS) + 1))
        self.latency_sum: dict[str, float] = defaultdict(float)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests[(method, route, status)] += 1
        counts = self.latency_counts[route]
        for i, bound in enumerate(BUCKETS):
            if seconds <= bound:
                counts[i] += 1
        counts[-1] += 1
        self.latency_sum[route] += seconds

    def render(self) -> str:
        lines = ["# HELP authserver_http_requests_total HTTP requests by route template and status.",
                 "# TYPE authserver_http_requests_total counter"]
        for (method, route, status), n in sorted(self.requests.items()):
            lines.append(f'authserver_http_requests_total{{method="{method}",route="{_esc(route)}",'
                         f'status="{status}"}} {n}')
        lines += ["# HELP authserver_http_request_seconds Request latency by route template.",
                  "# TYPE authserver_http_request_seconds histogram"]
        for route, counts in sorted(self.latency_counts.items()):
            for bound, n in zip(BUCKETS, counts, strict=False):
                lines.append(f'authserver_http_request_seconds_bucket{{route="{_esc(route)}",le="{bound}"}} {n}')
            lines.append(f'authserver_http_request_seconds_bucket{{route="{_esc(route)}",le="+Inf"}} {counts[-1]}')
            lines.append(f'authserver_http_request_seconds_sum{{route="{_esc(route)}"}} {self.latency_sum[route]:.6f}')
            lines.append(f'authserver_http_request_seconds_count{{route="{_esc(route)}"}} {counts[-1]}')
        return "\n".join(lines) + "\n"


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def metrics_middleware(metrics: Metrics) -> Any:
    def factory(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":  # type: ignore[comparison-overlap]
                await app(scope, receive, send)
                return
            started = time.perf_counter()
            status = 500

            async def capture(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = int(message["status"])
                await send(message)

            try:
                await app(scope, receive, capture)
            finally:
                route = str(scope.get("path_template") or "unmatched")  # type: ignore[typeddict-item]
                metrics.observe(str(scope.get("method", "")), route, status, time.perf_counter() - started)

        return middleware

    return factory


class MetricsController(Controller):
    path = "/"
    include_in_schema = False

    @get("/metrics", media_type="text/plain; version=0.0.4")
    async def metrics(self, metrics: Any) -> Response[str]:
        return Response(content=metrics.render(), media_type="text/plain; version=0.0.4")
