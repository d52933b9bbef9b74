"""Generated garbage for every route of a running web app, and the memory a
process takes meanwhile (no tests here)."""
import contextlib
import json
import random
import re
import string

import httpx

PARAMETER = re.compile(r"{([^}:]+)(:[^}]+)?}")
ODD_VALUES = ["0", "-1", "99999999999999999999", "1e309", "../../etc/passwd", "%2e%2e%2f",
              "%00", "null", "true", "[]", "{}", "é€😀", "a" * 3000, "\u202e", " ", ""]
CONTENT_TYPES = ["application/json", "multipart/form-data; boundary=zz",
                 "multipart/form-data", "application/x-www-form-urlencoded",
                 "application/octet-stream", "text/plain", None]


def routes_of(app):
    """(path template, methods) of every route of a Starlette/FastAPI app,
    included routers and mounts too."""
    found = []
    for route in app.routes:
        included = getattr(route, "original_router", None)  # FastAPI's include_router
        if included is not None:
            prefix = getattr(getattr(route, "include_context", None), "prefix", "") or ""
            found += [(prefix + path, methods) for path, methods in routes_of(included)]
        elif getattr(route, "methods", None):
            found.append((route.path, sorted(route.methods)))
        elif hasattr(route, "routes"):  # a Mount
            found += [(route.path + path, methods) for path, methods in routes_of(route)]
        elif getattr(route, "path", None) is not None:
            found.append((route.path, ["GET"]))
    return found


def odd_json(rng, depth=0):
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.choice([0, -1, 2 ** 63, 2 ** 80, -2 ** 70, 999])
    if kind == 2:
        return rng.choice([1e308, -0.0, 3.5])
    if kind in (3, 4, 5):
        return rng.choice(ODD_VALUES)
    if kind == 6:
        return [odd_json(rng, depth + 1) for _ in range(rng.randrange(5))]
    if kind == 7:
        return {"path": rng.choice(ODD_VALUES), "meta": {"_type": "gradio.FileData"},
                "url": rng.choice(["data:image/png;base64,AAAA", "http://127.0.0.1:1/x",
                                   "file:///etc/passwd", None])}
    keys = ["data", "fn_index", "session_hash", "event_id", "component_id", "fn_name",
            "trigger_id", "event_data", "layers", "composite", "label", "csrf_token", "id",
            "".join(rng.choice(string.ascii_letters) for _ in range(5))]
    return {rng.choice(keys): odd_json(rng, depth + 1) for _ in range(rng.randrange(6))}


def odd_body(rng):
    kind = rng.randrange(5)
    if kind == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400)))
    if kind == 1:
        return json.dumps(odd_json(rng)).encode()
    if kind == 2:
        return b"--zz\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a.png\"" \
               b"\r\n\r\n\x89PNG garbage\r\n--zz--\r\n"
    if kind == 3:
        return ("&".join(f"{rng.choice(['label', 'id', 'page', 'csrf_token', 'x'])}="
                         f"{rng.choice(ODD_VALUES)[:50]}" for _ in range(4))).encode()
    return b""


def odd_requests(routes, seed, per_route=4):
    """(method, path, headers, body) for every route and method, `per_route`
    variants each, from a fixed seed (a failure can be rerun)."""
    rng = random.Random(seed)
    for template, methods in routes:
        for method in methods:
            if method == "HEAD":
                continue
            for _ in range(per_route):
                path = PARAMETER.sub(lambda _: rng.choice(ODD_VALUES[:12] + ["x"]), template)
                query = "&".join(f"{k}={rng.choice(ODD_VALUES)[:60]}" for k in
                                 rng.sample(["page", "session_hash", "upload_id", "id", "q",
                                             "label", "split", "sort"], rng.randrange(3)))
                content_type = rng.choice(CONTENT_TYPES)
                headers = {"content-type": content_type} if content_type else {}
                body = odd_body(rng) if method not in ("GET", "DELETE") else b""
                yield method, path + ("?" + query if query else ""), headers, body


def send_all(base, requests, timeout=10, cookies=None):
    """Each request once; [(status or an exception's name, method, path)]. An
    answer's body is not waited for beyond its headers (event streams)."""
    answers = []
    with httpx.Client(base_url=base, timeout=timeout, cookies=cookies) as client:
        for method, path, headers, body in requests:
            try:
                with client.stream(method, path, headers=headers, content=body) as answer:
                    answers.append((answer.status_code, method, path))
            except httpx.HTTPError as error:
                answers.append((type(error).__name__, method, path))
    return answers


def _status_kb(field):
    with open("/proc/self/status") as f:
        return int(re.search(rf"{field}:\s+(\d+)", f.read()).group(1))


@contextlib.contextmanager
def peak_memory_growth():
    """Yields a dict whose "mb" is, on exit, how far this process's peak
    resident memory rose above its resident memory at entry (Linux)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets the peak (VmHWM) to the current size
    before = _status_kb("VmRSS")
    growth = {}
    try:
        yield growth
    finally:
        growth["mb"] = (_status_kb("VmHWM") - before) / 1024
