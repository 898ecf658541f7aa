"""The converter and test_torchserve.py print only their own output: the notices that
importing the stack prints here do not reach it."""

import subprocess
import sys

from clis import check, convert
from conftest import DET_CONFIG

NOTICES = ("MMCV will release v2.0.0", "No CUDA runtime is found")


def test_the_clis_print_only_their_own_output(tmp_path, det_checkpoint, torchserve, image_files):
    """The notices that importing the stack prints here do not reach the CLIs' output."""
    bare = subprocess.run([sys.executable, "-c", "import mmcv.ops"], capture_output=True,
                          text=True, timeout=300)
    assert NOTICES[0] in bare.stderr  # the stack itself still prints them
    converted = convert(DET_CONFIG, det_checkpoint, "--output-folder", tmp_path, "--model-name", "d")
    assert converted.returncode == 0, converted.stderr
    assert converted.stdout.strip() == f"wrote {tmp_path / 'd.mar'}"
    checked = check(image_files["scene.jpg"], DET_CONFIG, det_checkpoint, "dbnet",
                    "--inference-addr", torchserve.inference_url.split("//")[1])
    assert checked.returncode == 0, checked.stdout + checked.stderr
    for run in (converted, checked):
        assert not any(n in run.stdout + run.stderr for n in NOTICES), run.stdout + run.stderr
