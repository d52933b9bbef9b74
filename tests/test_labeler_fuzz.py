"""Garbage on every route of the labeler, over real HTTP, with and without a
valid CSRF token: no 5xx and bounded memory."""
import re

import httpx

from tests.helpers.fuzz import odd_requests, peak_memory_growth, routes_of, send_all
from tests.helpers.labeler import TRAIN_OPTIONS, seeded_store, served

MEMORY_BOUND_MB = 150


def with_token(requests, token):
    """The requests with the page's CSRF token added to their form bodies, so
    that they reach the handlers instead of the CSRF check."""
    for method, path, headers, body in requests:
        if headers.get("content-type") == "application/x-www-form-urlencoded":
            body = body + b"&csrf=" + token.encode()
        yield method, path, headers, body


def test_garbage_on_every_labeler_route_gets_no_5xx_and_bounded_memory(tmp_path, monkeypatch):
    from labeler.app import create_app
    from service.jobs import Jobs
    started = []
    # Jobs (TensorFlow) are tested on their own; here a job that would start is noted.
    monkeypatch.setattr(Jobs, "start", lambda self, job, target: started.append(job) or True)
    with seeded_store(tmp_path / "labeler.db") as (path, _, train, _):
        app = create_app(path, train_options=TRAIN_OPTIONS)
        routes = routes_of(app)
        assert len(routes) > 25
        with served(app) as base:
            with httpx.Client(base_url=base, timeout=30) as client:
                token = re.search(r'name="csrf" value="([^"]+)"',
                                  client.get("/images").text).group(1)
                cookies = dict(client.cookies)
            requests = list(odd_requests(routes, seed=14)) + list(
                with_token(odd_requests(routes, seed=15), token))
            with peak_memory_growth() as growth:
                answers = send_all(base, requests, cookies=cookies)
            still = httpx.get(f"{base}/images/{train[0]}.png", timeout=30)
    server_errors = [a for a in answers if not isinstance(a[0], int) or a[0] >= 500]
    assert len(answers) > 200 and not server_errors, server_errors[:10]
    # The token made some requests reach the handlers: not every POST was a 403.
    assert any(a[1] == "POST" and a[0] not in (403,) for a in answers[len(answers) // 2:])
    assert growth["mb"] < MEMORY_BOUND_MB, growth
    assert still.status_code == 200
