"""python -m deploy.serve: N demo processes on one host behind nginx.

    python -m deploy.serve [--workers N] [--host H] [--port P] [--db PATH] [-- DEMO OPTIONS]

`make serve WORKERS=N` runs this (docs/DEPLOY.md). Each process is
`python demo.py` on its own loopback port, on the one SQLite database (WAL
mode: readers never wait for the writer); nginx (the Debian package) listens
on --host:--port and pins each browser to one process (deploy/nginx.conf).
The first process starts alone, so that a fresh database is seeded and its
first model trained once; the others start once it answers. Every process
serves the live version of the database, whoever made it live (the labeler,
`python -m model.train`), without a restart. Options after `--` go to every
demo process (e.g. --auth). Stops everything on Ctrl-C or SIGTERM.
"""
import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = Path(__file__).with_name("nginx.conf")
NGINX_PATHS = ("/usr/sbin/nginx",)
LOOPBACK = "127.0.0.1"
READY_TIMEOUT_S = 300
# Gradio gives up on a start when its own check of the page takes over 3 s,
# which a process loading its model on a loaded machine can take: a process
# that exits before it answers is started again, this many times in all.
START_TRIES = 3
# A white canvas: "draw something" once the model is served, an error before.
BLANK_PNG_SIDE = 64


class ServeError(Exception):
    """A process or the proxy could not be started."""


def nginx_binary():
    """The nginx executable, or None when it is not installed."""
    found = shutil.which("nginx")
    if found:
        return found
    return next((path for path in NGINX_PATHS if os.access(path, os.X_OK)), None)


def nginx_config(listen, ports, folder, max_body):
    """deploy/nginx.conf filled in: nginx on `listen` (host:port) in front of
    the processes on loopback `ports`, writing only under `folder`."""
    servers = "\n".join(f"        server {LOOPBACK}:{port} max_fails=0;" for port in ports)
    fields = {"@USER@": "user root;" if os.geteuid() == 0 else "", "@RUN@": str(folder),
              "@MAX_BODY@": str(max_body), "@SERVERS@": servers, "@LISTEN@": listen}
    text = TEMPLATE.read_text()
    for field, value in fields.items():
        text = text.replace(field, value)
    return text


def free_port():
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def _stop(process):
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def served(workers, host=LOOPBACK, port=None, db=None, app="demo", proxy=None,
           keras_home=None, alpha=None, demo_args=(), folder=None):
    """`workers` processes of `app` ("demo", or a module to run with --port,
    such as bench.ceiling) behind nginx on host:port (a free port by
    default), ready to answer. Without the proxy (`proxy` False; the default
    for one worker) the one process is reached directly. Yields a namespace:
    url, worker_urls, pids (of the app's processes), db, folder, alive()."""
    proxy = workers > 1 if proxy is None else proxy
    if proxy and nginx_binary() is None:
        raise ServeError("nginx is not installed (apt-get install nginx)")
    folder = Path(folder or tempfile.mkdtemp(prefix="sketchlab-serve-"))
    db = Path(db) if db else folder / "sketchlab.db"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1",
           "TF_CPP_MIN_LOG_LEVEL": "3", **({"KERAS_HOME": str(keras_home)} if keras_home else {})}
    ports = [free_port() for _ in range(workers)]
    processes = [None] * workers

    def start(index):
        worker = folder / f"worker-{index}"
        worker.mkdir(exist_ok=True)
        if app == "demo":
            command = [sys.executable, "demo.py", "--db", str(db), "--port", str(ports[index]),
                       *(["--alpha", str(alpha)] if alpha else []),
                       *(["--trusted-proxy", LOOPBACK] if proxy else []), *demo_args]
        else:
            command = [sys.executable, "-m", app, "--port", str(ports[index])]
        log = open(worker / "log.txt", "a")
        processes[index] = subprocess.Popen(
            command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            env={**env, "GRADIO_TEMP_DIR": str(worker / "uploads")})
        log.close()

    def ready(index):
        for attempt in range(1, START_TRIES + 1):
            try:
                return _wait_ready(f"http://{LOOPBACK}:{ports[index]}/", processes[index], app)
            except ServeError:
                if attempt == START_TRIES or processes[index].poll() is None:
                    raise
            start(index)

    nginx = None
    try:
        # The first process alone: it seeds and trains a fresh database once.
        start(0)
        ready(0)
        for index in range(1, workers):
            start(index)
        for index in range(1, workers):
            ready(index)
        if proxy:
            port = port or free_port()
            from demo_handlers import settings
            (folder / "nginx.conf").write_text(nginx_config(
                f"{host}:{port}", ports, folder, settings.upload_bytes + 1_000_000))
            nginx = subprocess.Popen([nginx_binary(), "-p", str(folder), "-c",
                                      str(folder / "nginx.conf"), "-g", "daemon off;"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            shown = LOOPBACK if host in ("0.0.0.0", "::") else host
            url = f"http://{shown}:{port}/"
            _wait_ready(url, nginx, "proxy")
        else:
            url = f"http://{LOOPBACK}:{ports[0]}/"

        def alive():
            return all(p.poll() is None for p in processes + ([nginx] if nginx else []))
        yield types.SimpleNamespace(
            url=url, worker_urls=[f"http://{LOOPBACK}:{p}/" for p in ports],
            pids=[p.pid for p in processes], db=db, folder=folder, alive=alive)
    finally:
        for process in ([nginx] if nginx else []) + [p for p in processes if p]:
            _stop(process)


def _wait_ready(url, process, app):
    """Until `url` answers: for the demo, until it classifies (its model loaded)."""
    import httpx
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            detail = process.stderr.read().decode()[-500:] if process.stderr else ""
            raise ServeError(f"{' '.join(map(str, process.args))[:200]} exited with "
                             f"{process.returncode} {detail}")
        try:
            if (_classifies(url) if app == "demo" else
                    httpx.get(url + "gradio_api/info", timeout=10).status_code == 200):
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise ServeError(f"{url} did not answer within {READY_TIMEOUT_S} s")


def _classifies(url):
    import io
    import httpx
    from PIL import Image
    blank = io.BytesIO()
    Image.new("RGB", (BLANK_PNG_SIDE, BLANK_PNG_SIDE), "white").save(blank, "PNG")
    with httpx.Client(timeout=30) as http:
        uploaded = http.post(url + "gradio_api/upload",
                             files={"files": ("ready.png", blank.getvalue(), "image/png")})
        if uploaded.status_code != 200:
            return False
        value = {"path": uploaded.json()[0], "meta": {"_type": "gradio.FileData"}}
        started = http.post(url + "gradio_api/call/classify_sketch", json={"data": [value]})
        if started.status_code != 200:
            return False
        answer = http.get(url + f"gradio_api/call/classify_sketch/"
                          f"{started.json()['event_id']}").text
        return "event: complete" in answer


def _interrupt(*_):
    raise KeyboardInterrupt


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m deploy.serve", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2, help="demo processes (default: 2)")
    parser.add_argument("--host", default="0.0.0.0",
                        help="address nginx listens on (default: 0.0.0.0, the network)")
    parser.add_argument("--port", type=int, default=8080, help="nginx's port (default: 8080)")
    parser.add_argument("--db", default=None,
                        help="the SQLite database all processes share (default: "
                        "$SKETCHLAB_DB or the demo's default)")
    parser.add_argument("demo_args", nargs="*", metavar="DEMO OPTION",
                        help="after --: options for every demo process (e.g. --auth U:P)")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    from db import default_path
    # SIGTERM ends the with-block as Ctrl-C does, stopping every process.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        with served(args.workers, host=args.host, port=args.port,
                    db=args.db or default_path(), proxy=True,
                    demo_args=args.demo_args) as serving:
            print(f"SketchLab: {args.workers} demo process{'es' if args.workers > 1 else ''} "
                  f"on database {serving.db} behind nginx at {serving.url} "
                  f"(logs in {serving.folder})", flush=True)
            while serving.alive():
                time.sleep(1)
            print("a process stopped; stopping the others", file=sys.stderr)
            return 1
    except KeyboardInterrupt:
        return 0
    except ServeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
