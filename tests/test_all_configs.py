"""Every text-detection and text-recognition config shipped with mmocr 0.6.3 converts.

For each config: initialise a checkpoint, convert it, and build the engine from the
unpacked archive exactly as a TorchServe worker would (config re-read, checkpoint loaded
with weights_only, referenced files re-pointed).
"""

import zipfile

import pytest

from mmocr_serve.archive import ArchiveSpec, archive_summary, build_archive
from mmocr_serve.loading import load_engine, save_random_checkpoint, shipped_configs_dir

pytestmark = pytest.mark.slow


def shipped_configs():
    root = shipped_configs_dir()
    found = []
    for task in ("textdet", "textrecog"):
        for path in sorted((root / task).rglob("*.py")):
            if "_base_" not in path.parts:
                found.append(str(path.relative_to(root)))
    return found


def test_there_are_39_configs():
    assert len(shipped_configs()) == 39


@pytest.mark.parametrize("config", shipped_configs())
def test_config_converts_and_loads(config, tmp_path):
    options = {}
    if config.endswith("sar_r31_parallel_decoder_chinese.py"):  # its dict is not shipped
        dict_file = tmp_path / "dict.txt"
        dict_file.write_text("\n".join("中文识别0123456789"))
        options = {"model.label_convertor.dict_file": str(dict_file)}
    ckpt = save_random_checkpoint(config, tmp_path / "model.pth", cfg_options=options)
    path = build_archive(ArchiveSpec(config=config, checkpoint=str(ckpt),
                                     output_folder=str(tmp_path / "store"), model_name="m",
                                     cfg_options=options))
    ckpt.unlink()
    summary = archive_summary(path)
    task = summary["manifest"]["task"]
    assert task == ("det" if config.startswith("textdet") else "recog")
    with zipfile.ZipFile(path) as zf:
        zf.extractall(tmp_path / "unpacked")
    engine = load_engine(tmp_path / "unpacked")
    assert engine.task == task
