"""A model's Python backend stub killed under a real tritonserver: while loading, and after.

Triton 2.51's Python backend does not restart a dead stub: after load the model stays ready
and answers 500 from then on; while loading, the server waits on the dead stub forever.
The supervisor (``mmocr_serve_tools.triton.supervise``) stops the server and exits 1 in both
cases, so that whatever runs it restarts it; a restart answers again.
"""

import os
import shutil
import signal
import time

import pytest

from polling import wait_until
from triton_client import infer


@pytest.fixture()
def crnn_repo(triton_repo, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(triton_repo / "crnn", repo / "crnn")
    return repo


def stub_pids(server) -> list:
    """The stubs of the tritonserver that ``server``'s supervisor runs."""
    from mmocr_serve_tools.triton import children, stub_states

    return [pid for child, _, _ in children(server.proc.pid)
            for pid, _, state in stub_states(child) if state != "Z"]


def answers(repo, workdir, word: bytes) -> str:
    from mmocr_serve_tools.triton import TritonProcess

    with TritonProcess(repository=repo, workdir=workdir) as server:
        return infer(server, "crnn", word)["text"]


def test_a_stub_killed_after_load_stops_the_server_and_a_restart_answers(
        crnn_repo, tmp_path, image_files, rendered):
    from tritonclient.utils import InferenceServerException

    from mmocr_serve_tools.triton import TritonProcess

    word = image_files["word.png"].read_bytes()
    server = TritonProcess(repository=crnn_repo, workdir=tmp_path / "first").start()
    try:
        assert infer(server, "crnn", word)["text"] == rendered["word.png"]
        os.kill(stub_pids(server)[0], signal.SIGKILL)
        killed = time.monotonic()
        with pytest.raises(InferenceServerException) as info:  # before the supervisor acts
            infer(server, "crnn", word)
        assert info.value.status() == "500" and "not healthy" in info.value.message()
        assert server.proc.wait(60) == 1
        assert time.monotonic() - killed < 60
        assert "stub of" in server.tail() and "died" in server.tail()
    finally:
        server.stop()
    assert answers(crnn_repo, tmp_path / "second", word) == rendered["word.png"]


def test_a_stub_killed_while_loading_fails_the_start_and_a_restart_answers(
        crnn_repo, tmp_path, image_files, rendered):
    from mmocr_serve_tools.triton import TritonProcess

    server = TritonProcess(repository=crnn_repo, workdir=tmp_path / "first").launch()
    try:
        wait_until(lambda: stub_pids(server), 60, "a stub started")
        os.kill(stub_pids(server)[0], signal.SIGKILL)
        assert server.proc.wait(120) == 1
        assert "stub of" in server.tail() and "died" in server.tail()
    finally:
        server.stop()
    assert answers(crnn_repo, tmp_path / "second", image_files["word.png"].read_bytes()) == \
        rendered["word.png"]
