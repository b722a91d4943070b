"""The viewer as a server: driven through gradio_client, files outside RUNS_DIR refused, loopback only."""

from __future__ import annotations

import socket
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")

from PIL import Image  # noqa: E402

from attnscope.app.server import serve  # noqa: E402
from attnscope.render.synthetic import make_synthetic_run  # noqa: E402

BLOBS = {"circle": (2, 3, 4), "square": (2, 12, 11)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def non_loopback_ip() -> str | None:
    """This machine's address on a real interface (hostname -I, else the UDP-socket route trick)."""
    try:
        out = subprocess.run(["hostname", "-I"], capture_output=True, text=True, timeout=5).stdout.split()
        for ip in out:
            if ":" not in ip and not ip.startswith("127."):
                return ip
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # no packet is sent; the kernel picks the outgoing interface
            ip = s.getsockname()[0]
        return None if ip.startswith("127.") else ip
    except OSError:
        return None


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    make_synthetic_run(root / "blobs", grid=(5, 16, 16), words=tuple(BLOBS), blobs=BLOBS)
    port = free_port()
    demo, url = serve(root, port=port, block=False, quiet=True)
    yield root, url, port
    demo.close()


def get_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_api_drives_the_explore_controls(server):
    root, url, _ = server
    client = gradio_client.Client(url, verbose=False)
    cards, picker, _ = client.predict(None, api_name="/refresh")
    assert "blobs" in cards and picker["value"] == "blobs"
    opened = client.predict("blobs", api_name="/open")
    assert opened[0]["value"] == "circle" and opened[1]["maximum"] == 3
    controls = ["circle", 3, False, "", 1, False, "", 0, True, "", "inferno", "frame", 1.0, 8, "raw", False]
    images = {}
    for word in BLOBS:
        path, caption, card = client.predict("blobs", word, *controls[1:], api_name="/still")
        assert card == "" and caption.startswith(word)
        images[word] = np.asarray(Image.open(path).convert("RGB"))
    for word, (_, by, bx) in BLOBS.items():
        y, x = np.unravel_index(images[word].astype(float).sum(-1).argmax(), images[word].shape[:2])
        assert abs(y // 16 - by) <= 1 and abs(x // 16 - bx) <= 1
    path, _, _ = client.predict("blobs", *controls[:10], "viridis", *controls[11:], api_name="/still")
    assert np.abs(np.asarray(Image.open(path)).astype(int) - images["circle"].astype(int)).mean() > 10
    video, card = client.predict("blobs", *controls, api_name="/overlay_video")
    assert card == "" and Path(video["video"] if isinstance(video, dict) else video).stat().st_size > 1000


def test_files_outside_runs_dir_are_refused(server, tmp_path):
    root, url, _ = server
    outside = tmp_path / "secret.txt"
    outside.write_text("private")
    for path in ("/etc/passwd", str(outside), str(Path.cwd() / "pyproject.toml"), f"{root}/../{tmp_path.name}"):
        assert get_status(f"{url}gradio_api/file={path}") in (403, 404), path
    assert get_status(f"{url}gradio_api/file={root}/blobs/video.mp4") == 200  # the runs folder is served


def test_not_reachable_beyond_loopback(server):
    _, _, port = server
    ip = non_loopback_ip()
    if ip is None:
        pytest.skip("this machine has no non-loopback IPv4 address to test against")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((ip, port), timeout=5).close()
    socket.create_connection(("127.0.0.1", port), timeout=5).close()
