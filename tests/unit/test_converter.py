"""The converter CLI: what it packs, what it refuses, and that it never half-writes."""

import ast
import os
import pickle
import zipfile
from pathlib import Path

import pytest
import yaml

from clis import ROOT, convert
from conftest import DET_CONFIG, RECOG_CHECKPOINT, RECOG_CONFIG
from mmocr_serve_tools.archive import RUNTIME_MODULES, archive_summary


def listing(folder: Path) -> list:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_archive_contents(model_store):
    summary = archive_summary(model_store / "dbnet.mar")
    files = set(summary["files"])
    assert {"mmocr_handler.py", "det_config.py", "det.pth", "mmocr-serve.json",
            "model-config.yaml", "mmocr_serve/engine.py", "mmocr_serve/decode.py",
            "MAR-INF/MANIFEST.json"} <= files
    assert summary["mar_manifest"]["model"]["handler"] == "mmocr_handler.py"
    assert summary["mar_manifest"]["model"]["modelName"] == "dbnet"
    assert summary["manifest"]["task"] == "det"
    with zipfile.ZipFile(model_store / "dbnet.mar") as zf:
        config = yaml.safe_load(zf.read("model-config.yaml"))
        merged = zf.read("det_config.py").decode()
    assert config["batchSize"] == 4 and config["minWorkers"] == 1
    assert config["handler"]["cpu_layout"] == "channels_last"
    assert "_base_" not in merged and "DBNet" in merged  # fully merged


@pytest.mark.parametrize("name,model_files", [
    ("crnn.mar", ["recog.pth", "recog_config.py"]),
    ("ocr.mar", ["det.pth", "det_config.py", "recog.pth", "recog_config.py"])])
def test_an_archive_holds_exactly_the_runtime_and_its_models(model_store, name, model_files):
    with zipfile.ZipFile(model_store / name) as zf:
        files = sorted(zf.namelist())
        # stored, not deflated: conversion and a worker's unpacking copy the weights
        assert {info.compress_type for info in zf.infolist()} == {zipfile.ZIP_STORED}
    runtime = [f"mmocr_serve/{module}.py" for module in RUNTIME_MODULES]
    assert files == sorted(["MAR-INF/MANIFEST.json", "mmocr-serve.json", "mmocr_handler.py",
                            "model-config.yaml", "sitecustomize.py", *runtime, *model_files])


def package_imports(path: Path) -> set:
    """The mmocr_serve modules ``path`` imports, at its top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            found.update([node.module.split(".")[0]] if node.module
                         else [alias.name for alias in node.names])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mmocr_serve."):
            found.add(node.module.split(".")[1])
    return found


@pytest.mark.parametrize("front_end", ["mmocr_handler.py", "triton_model.py"])
def test_the_runtime_is_what_the_front_end_imports_and_imports_no_tool(front_end):
    """Every module the TorchServe handler (or Triton's model.py) reaches is packed, and
    nothing else is; no runtime module (nor a front end) imports a tool
    (``mmocr_serve_tools``)."""
    package = ROOT / "mmocr_serve"
    reached, todo = set(), package_imports(ROOT / front_end)
    while todo:
        module = todo.pop()
        reached.add(module)
        todo |= package_imports(package / f"{module}.py") - reached
    assert reached | {"__init__"} == set(RUNTIME_MODULES)
    for path in [*package.glob("*.py"), ROOT / "mmocr_handler.py", ROOT / "wrapper.py",
                 ROOT / "triton_model.py"]:
        tools = [node for node in ast.walk(ast.parse(path.read_text()))
                 if isinstance(node, (ast.Import, ast.ImportFrom))
                 and "mmocr_serve_tools" in ast.dump(node)]
        assert not tools, f"{path.name} imports a tool"


def test_checkpoint_in_archive_loads_with_weights_only(det_model_dir):
    import torch

    ckpt = torch.load(det_model_dir / "det.pth", weights_only=True)
    assert set(ckpt) == {"state_dict", "meta"}


def test_cli_relative_output_folder_and_force(tmp_path, det_checkpoint):
    result = convert(DET_CONFIG, det_checkpoint, "--output-folder", "out", "--model-name", "det1",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "det1.mar").is_file()
    again = convert(DET_CONFIG, det_checkpoint, "--output-folder", "out", "--model-name", "det1",
                    cwd=tmp_path)
    assert again.returncode == 1 and "already exists" in again.stderr
    forced = convert(DET_CONFIG, det_checkpoint, "--output-folder", "out", "--model-name", "det1",
                     "-f", "--batch-size", "8", "--workers", "2", "--device-type", "cpu",
                     "--cpu-layout", "contiguous", "--cpu-precision", "bf16", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    with zipfile.ZipFile(tmp_path / "out" / "det1.mar") as zf:
        config = yaml.safe_load(zf.read("model-config.yaml"))
    assert (config["batchSize"], config["maxWorkers"], config["deviceType"]) == (8, 2, "cpu")
    assert config["handler"]["cpu_layout"] == "contiguous"
    assert config["handler"]["cpu_precision"] == "bf16"
    assert listing(tmp_path / "out") == ["det1.mar"]


def test_default_model_name_is_the_checkpoint_stem(tmp_path, recog_checkpoint):
    result = convert(RECOG_CONFIG, recog_checkpoint, "--output-folder", tmp_path)
    assert result.returncode == 0, result.stderr
    assert listing(tmp_path) == ["crnn_demo.mar"]


@pytest.mark.parametrize("config,reason", [
    ("kie/sdmgr/sdmgr_unet16_60e_wildreceipt.py", "key information extraction"),
    ("ner/bert_softmax/bert_softmax_cluener_18e.py", "named entity recognition"),
])
def test_kie_and_ner_configs_are_refused(tmp_path, det_checkpoint, config, reason):
    result = convert(config, det_checkpoint, "--output-folder", tmp_path)
    assert result.returncode == 1
    assert reason in result.stderr
    assert listing(tmp_path) == []


def test_mismatched_checkpoint_names_missing_and_unexpected_keys(tmp_path):
    from mmocr_serve.loading import save_random_checkpoint

    # the shipped CRNN's VGG shares no key with DBNet's ResNet (the demo pair's backbones
    # share names, and their shapes differ first)
    crnn = save_random_checkpoint("textrecog/crnn/crnn_academic_dataset.py", tmp_path / "c.pth")
    result = convert(DET_CONFIG, crnn, "--output-folder", tmp_path / "out")
    assert result.returncode == 1
    assert "missing keys: " in result.stderr and "unexpected keys: " in result.stderr
    assert listing(tmp_path / "out") == []


@pytest.mark.parametrize("name", ["bad name", "-leading", "a/b", "ünïcode"])
def test_model_names_torchserve_refuses(tmp_path, det_checkpoint, name):
    result = convert(DET_CONFIG, det_checkpoint, "--output-folder", tmp_path, f"--model-name={name}")
    assert result.returncode == 1 and "not accepted by TorchServe" in result.stderr
    assert listing(tmp_path) == []


def test_missing_config_and_checkpoint(tmp_path, det_checkpoint):
    missing_cfg = convert("nope/none.py", det_checkpoint, "--output-folder", tmp_path)
    assert missing_cfg.returncode == 1 and "config not found" in missing_cfg.stderr
    missing_ckpt = convert(DET_CONFIG, tmp_path / "none.pth", "--output-folder", tmp_path)
    assert missing_ckpt.returncode == 1 and "checkpoint not found" in missing_ckpt.stderr


def test_missing_dict_file_is_named_then_packed_when_given(tmp_path):
    from mmocr_serve.loading import save_random_checkpoint

    config = "textrecog/sar/sar_r31_parallel_decoder_chinese.py"
    result = convert(config, tmp_path / "any.pth", "--output-folder", tmp_path / "out")
    assert result.returncode == 1
    assert "model.label_convertor.dict_file=data/chineseocr" in result.stderr

    dict_file = tmp_path / "my_dict.txt"
    dict_file.write_text("\n".join("中文识别0123456789abc"))
    option = f"model.label_convertor.dict_file={dict_file}"
    ckpt = save_random_checkpoint(config, tmp_path / "sar_cn.pth",
                                  cfg_options={"model.label_convertor.dict_file": str(dict_file)})
    result = convert(config, ckpt, "--output-folder", tmp_path / "out", "--cfg-options", option)
    assert result.returncode == 0, result.stderr
    summary = archive_summary(tmp_path / "out" / "sar_cn.mar")
    packed = summary["manifest"]["models"]["recog"]["files"]
    assert packed == {"model.label_convertor.dict_file": "files/recog-0-my_dict.txt"}
    assert "files/recog-0-my_dict.txt" in summary["files"]


class RunsCode:
    """A pickle whose loading would create a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_checkpoint_that_runs_code_is_refused(tmp_path):
    import torch

    marker = tmp_path / "code-ran"
    evil = tmp_path / "evil.pth"
    torch.save({"state_dict": {}, "meta": {"x": RunsCode(marker)}}, evil, pickle_module=pickle)
    result = convert(RECOG_CONFIG, evil, "--output-folder", tmp_path / "out")
    assert result.returncode == 1
    assert "--trust-checkpoint" in result.stderr
    assert not marker.exists()
    assert listing(tmp_path / "out") == []


def test_numpy_metadata_loads_without_trust(tmp_path, recog_checkpoint):
    import numpy as np
    import torch

    ckpt = torch.load(recog_checkpoint, weights_only=True)
    ckpt["meta"]["best_score"] = np.float64(0.87)
    ckpt["meta"]["epoch_array"] = np.arange(3)
    path = tmp_path / "numpy_meta.pth"
    torch.save(ckpt, path)
    result = convert(RECOG_CONFIG, path, "--output-folder", tmp_path)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("field,value,named", [("cpu_layout", "nhwc", "cpu_layout"),
                                               ("cpu_memory", "hoard", "cpu_memory"),
                                               ("cpu_precision", "fp16", "cpu_precision")])
def test_unknown_cpu_settings_are_refused_before_anything_is_written(tmp_path, det_checkpoint,
                                                                     field, value, named):
    from mmocr_serve_tools.archive import ArchiveSpec, build_archive
    from mmocr_serve.errors import ConversionError

    spec = ArchiveSpec.flat(config=DET_CONFIG, checkpoint=str(det_checkpoint),
                            output_folder=str(tmp_path / "out"), **{field: value})
    with pytest.raises(ConversionError, match=f"{named} must be one of .*not '{value}'"):
        build_archive(spec)
    assert listing(tmp_path / "out") == []


@pytest.mark.parametrize("field,named", [("workers", "workers"), ("batch_size", "batch_size"),
                                         ("max_forward_batch", "max_forward_batch")])
def test_a_count_below_one_is_refused_before_anything_is_written(tmp_path, det_checkpoint,
                                                                 field, named):
    from mmocr_serve_tools.archive import ArchiveSpec, build_archive
    from mmocr_serve.errors import ConversionError

    spec = ArchiveSpec.flat(config=DET_CONFIG, checkpoint=str(det_checkpoint),
                            output_folder=str(tmp_path / "out"), **{field: 0})
    with pytest.raises(ConversionError, match=f"^{named} must be a positive integer, not 0$"):
        build_archive(spec)
    assert listing(tmp_path / "out") == []


def test_a_triton_entry_holds_the_same_model_directory_and_its_settings(workdir, model_store):
    """``--format triton``: config.pbtxt from the same flags as model-config.yaml, and the
    .mar's model directory (but TorchServe's handler) as version 1, with model.py."""
    repo = workdir / "unit-triton-repo"
    done = convert(RECOG_CONFIG, RECOG_CHECKPOINT, "--output-folder", repo, "--model-name",
                   "crnn", "--format", "triton", "--batch-size", "4", "--max-batch-delay", "7",
                   "--workers", "2", "--device-type", "cpu", "--cpu-threads", "1",
                   "--cpu-precision", "bf16")
    assert done.returncode == 0, done.stderr
    config = (repo / "crnn" / "config.pbtxt").read_text()
    for line in ('name: "crnn"', 'backend: "python"', "max_batch_size: 4",
                 "max_queue_delay_microseconds: 7000", "count: 2 kind: KIND_CPU",
                 'key: "cpu_threads" value { string_value: "1" }',
                 'key: "cpu_layout" value { string_value: "channels_last" }',
                 'key: "cpu_precision" value { string_value: "bf16" }'):
        assert line in config, (line, config)
    entry = sorted(str(p.relative_to(repo / "crnn" / "1"))
                   for p in (repo / "crnn" / "1").rglob("*") if p.is_file())
    with zipfile.ZipFile(model_store / "crnn.mar") as zf:
        mar = sorted(n for n in zf.namelist() if not n.startswith("MAR-INF")
                     and n not in ("mmocr_handler.py", "model-config.yaml"))
    assert entry == sorted([*mar, "model.py"])
    assert (repo / "crnn" / "1" / "model.py").read_text() == (ROOT / "triton_model.py").read_text()
    again = convert(RECOG_CONFIG, RECOG_CHECKPOINT, "--output-folder", repo, "--model-name",
                    "crnn", "--format", "triton")
    assert again.returncode == 1 and "already exists" in again.stderr
