"""The Triton supervisor (``mmocr_serve_tools.triton.supervise``) on a stand-in server (a
sleeping process) and scripted stub listings: what counts as a dead model process."""

import ast
import os
import signal
import sys
import threading

from clis import ROOT
from mmocr_serve_tools.triton import INPUT, OUTPUT, supervise

SERVER = [sys.executable, "-c", "import time; time.sleep(30)"]


def scripted(*polls):
    """``stub_states`` answering ``polls`` in turn, then the last one for ever."""
    answers = list(polls)
    return lambda pid: answers.pop(0) if len(answers) > 1 else answers[0]


def run(states, **kwargs) -> int:
    return supervise(SERVER, dict(os.environ), poll_s=0.01, grace_polls=3, states=states, **kwargs)


def test_a_model_that_loses_its_stub_stops_the_server_with_1():
    assert run(scripted([(7, "m/1/model.py", "S")], [(7, "m/1/model.py", "S")], [])) == 1


def test_an_unreaped_dead_stub_stops_the_server_with_1():
    assert run(scripted([(7, "a model", "Z")])) == 1


def test_one_of_two_instances_lost_stops_the_server():
    two = [(7, "m", "S"), (8, "m", "S")]
    assert run(scripted(two, two, [(7, "m", "S")])) == 1


def test_the_stub_that_ends_at_load_and_a_short_gap_are_not_deaths():
    """At load a model's config stub exits before its own starts: a gap shorter than the
    grace; the server then ends by itself, and its status is the supervisor's."""
    quick = [sys.executable, "-c", "import time; time.sleep(1); raise SystemExit(3)"]
    states = scripted([(7, "m", "S")], [], [], [(9, "m", "S")])
    assert supervise(quick, dict(os.environ), poll_s=0.01, grace_polls=3, states=states) == 3


def test_stubs_that_end_after_sigterm_are_not_deaths_and_handlers_are_restored():
    before = signal.getsignal(signal.SIGTERM)
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    code = run(lambda pid: [] if timer.finished.is_set() else [(7, "m", "S")])  # gone at stop
    assert code == -signal.SIGTERM  # the server's own status: it was asked to stop
    assert signal.getsignal(signal.SIGTERM) == before


def test_the_front_end_and_the_tools_name_the_same_tensors():
    """triton_model.py (which imports only inside Triton) and config.pbtxt's writer."""
    tree = ast.parse((ROOT / "triton_model.py").read_text())
    (names,) = [ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
                and ast.unparse(node.targets[0]) == "(INPUT, OUTPUT)"]
    assert names == (INPUT, OUTPUT)
