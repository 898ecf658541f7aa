"""OpenMP's wait policy for worker processes: idle threads sleep instead of spinning.

torch's OpenMP runtime (libgomp) spins threads that wait at a barrier. On a machine that
other processes share, or under a cgroup CPU quota, a spinning thread takes the core its
partner needs, and busy neighbours can slow a 2-thread pass many times over
(benchmarks/cpu-shared.md). ``OMP_WAIT_POLICY=PASSIVE`` makes them sleep.

libgomp reads the variable once, when it loads, that is when torch is first imported. A
TorchServe worker imports torch at start (``ts/protocol/otf_message_handler.py``), before
it loads the handler, so the variable must be in the worker's environment before that:
every launcher of this project sets it, and an archive's ``sitecustomize.py`` (on the
worker's ``PYTHONPATH``) sets it at interpreter start. A value already set is kept.
Standard library only, Python 3.9: it runs before anything else in the worker.
"""

import os

VARIABLE = "OMP_WAIT_POLICY"
DEFAULT = "PASSIVE"


def sleep_while_waiting() -> None:
    """Set the default policy for this process, unless the environment chose one."""
    os.environ.setdefault(VARIABLE, DEFAULT)


def describe() -> str:
    """The policy libgomp took at load, for the worker's start-up line."""
    if threads_sleep():
        return f"{VARIABLE}=PASSIVE: waiting OpenMP threads sleep"
    return f"{VARIABLE}={os.environ.get(VARIABLE) or 'unset'}: waiting OpenMP threads spin"


def threads_sleep() -> bool:
    """Whether waiting threads are to sleep: ONNX Runtime's own pool follows the same rule."""
    return os.environ.get(VARIABLE, "").strip().upper() == "PASSIVE"
