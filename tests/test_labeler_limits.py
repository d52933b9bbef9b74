"""The labeler's request-size limit over real HTTP (uvicorn on a socket): a
body is read only up to max_upload_bytes, whether or not the request says
how long it is."""
import re
import select
import socket

import httpx
import pytest

from labeler.settings import settings
from tests.helpers.labeler import png_bytes, seeded_store, served

LIMIT = 1 << 20
# Sent at the labeler when it does not stop reading: far more than the limit.
SENT = 64 << 20
CHUNK = 64 << 10
# What the app may read past the limit: the body piece that crossed it
# (uvicorn hands the body over as it arrives, at most a socket read at a time).
READ_SLACK = 1 << 20
# What the client may get to send past the limit before it sees the answer:
# the piece the app read, plus what the kernel's socket buffers on both
# sides (a few MB each on loopback) and uvicorn's own buffer took in.
SEND_SLACK = 16 << 20


@pytest.fixture
def labeler(tmp_path, monkeypatch):
    """(base URL, bytes of request bodies the app has read) of a labeler on
    real HTTP with a max_upload_bytes of LIMIT."""
    from labeler.app import create_app
    monkeypatch.setattr(settings, "max_upload_bytes", LIMIT)
    with seeded_store(tmp_path / "labeler.db") as (path, *_):
        app = create_app(path)
        read = [0]

        async def counting(scope, receive, send):
            async def counted():
                message = await receive()
                read[0] += len(message.get("body", b""))
                return message
            await app(scope, counted, send)
        with served(counting) as url:
            yield url, read


def _chunk(data):
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def _send_chunked_upload(url, pieces):
    """POST /upload as a browser's form with one file made of `pieces`, in
    chunked transfer encoding (no Content-Length); stops sending once the
    server answers or closes. Returns (bytes of the body sent, the answer)."""
    with httpx.Client(base_url=url) as client:
        page = client.get("/capture")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        cookie = client.cookies["labeler_csrf"]
    host, port = url.removeprefix("http://").split(":")
    boundary = "sketchlabboundary"
    head = (f"POST /upload HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Transfer-Encoding: chunked\r\nCookie: labeler_csrf={cookie}\r\n"
            "Connection: close\r\n\r\n").encode()
    preamble = (f'--{boundary}\r\nContent-Disposition: form-data; name="csrf"\r\n\r\n{token}\r\n'
                f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
                'filename="big.png"\r\nContent-Type: image/png\r\n\r\n').encode()
    sent = 0
    with socket.create_connection((host, int(port))) as sock:
        sock.settimeout(30)  # only so that a server that neither reads nor answers fails
        sock.sendall(head + _chunk(preamble))
        sent += len(preamble)
        try:
            for piece in pieces:
                if select.select([sock], [], [], 0)[0]:
                    break
                sock.sendall(_chunk(piece))
                sent += len(piece)
            else:
                sock.sendall(_chunk(f"\r\n--{boundary}--\r\n".encode()) + b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            pass
        answer = b""
        try:
            while block := sock.recv(65536):
                answer += block
        except (ConnectionResetError, socket.timeout):
            pass
    return sent, answer.decode("utf-8", "replace")


def test_a_chunked_upload_without_content_length_is_cut_at_max_upload_bytes(labeler):
    url, read = labeler
    sent, answer = _send_chunked_upload(url, (bytes(CHUNK) for _ in range(SENT // CHUNK)))
    assert answer.startswith("HTTP/1.1 413 "), (read[0], sent, answer[:200])
    assert f"at most {LIMIT // 2**20} MB" in answer
    assert read[0] <= LIMIT + READ_SLACK, read[0]
    assert sent <= LIMIT + SEND_SLACK, sent


def test_a_chunked_upload_within_max_upload_bytes_is_stored(labeler):
    url, _ = labeler
    image = png_bytes("circle", 5, size=256)
    sent, answer = _send_chunked_upload(url, [image[i:i + 1000]
                                              for i in range(0, len(image), 1000)])
    assert sent > len(image)  # and the form fields before it
    assert answer.startswith("HTTP/1.1 303 "), answer[:500]
    with httpx.Client(base_url=url) as client:
        assert client.get("/images?source=upload").text.count('class="tile') == 1
