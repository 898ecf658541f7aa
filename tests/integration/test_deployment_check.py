"""tools/deployment/test_torchserve.py against a real TorchServe: exit codes, table, PNGs."""


import cv2

from clis import check
from conftest import DET_CONFIG, RECOG_CONFIG
from mmocr_serve_tools.server import free_port
from mmocr_serve_tools.visualize import comparison_size


def addr(server) -> str:
    return server.inference_url.replace("http://", "")


def table_row(stdout: str, image: str) -> str:
    return next(line for line in stdout.splitlines() if line.startswith(image + " "))


def test_detection_matches_and_draws_pngs(torchserve, image_files, rendered, det_checkpoint,
                                          tmp_path):
    out = tmp_path / "pngs"
    result = check(image_files["scene.jpg"], image_files["scene.png"], DET_CONFIG,
                   det_checkpoint, "dbnet", "--inference-addr", addr(torchserve),
                   "--out-dir", out)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 of 2 images match" in result.stdout
    assert "boxes served/expected" in result.stdout
    for name in ("scene.jpg", "scene.png"):  # every rendered word found, served and expected
        count = len(rendered[name].words)
        assert f" {count}/{count} " in table_row(result.stdout, name)
    for name in ("scene.jpg", "scene.png"):
        source = cv2.imread(str(image_files[name]))
        picture = cv2.imread(str(out / f"{name}.png"))
        assert picture is not None
        assert (picture.shape[1], picture.shape[0]) == comparison_size(source.shape[1],
                                                                      source.shape[0])


def test_recognition_folder_matches(torchserve, image_files, rendered, recog_checkpoint,
                                    reference_model, tmp_path):
    from mmocr.apis import model_inference

    folder = tmp_path / "words"
    folder.mkdir()
    for name in ("word.png", "word.jpg"):
        (folder / name).write_bytes(image_files[name].read_bytes())
        raw = model_inference(reference_model(RECOG_CONFIG, recog_checkpoint), str(folder / name))
        assert raw["text"] == rendered[name]  # the comparison below is of real words
    result = check(folder, RECOG_CONFIG, recog_checkpoint, "crnn", "--inference-addr",
                   addr(torchserve), "--out-dir", tmp_path / "pngs")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 of 2 images match" in result.stdout and "text equal" in result.stdout
    assert sorted(p.name for p in (tmp_path / "pngs").iterdir()) == ["word.jpg.png",
                                                                     "word.png.png"]


def test_different_checkpoint_is_a_mismatch(torchserve, image_files, tmp_path):
    from mmocr_serve.loading import save_random_checkpoint

    other = save_random_checkpoint(RECOG_CONFIG, tmp_path / "other.pth", seed=1)
    result = check(image_files["word.png"], RECOG_CONFIG, other, "crnn", "--inference-addr",
                   addr(torchserve))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "MISMATCH" in result.stdout


def test_stopped_server_is_exit_2(image_files, recog_checkpoint):
    result = check(image_files["word.png"], RECOG_CONFIG, recog_checkpoint, "crnn",
                   "--inference-addr", f"127.0.0.1:{free_port()}", "--timeout", "10")
    assert result.returncode == 2
    assert "cannot reach" in result.stdout


def test_server_error_is_exit_2_with_its_message(torchserve, image_files, recog_checkpoint):
    result = check(image_files["word.png"], RECOG_CONFIG, recog_checkpoint, "no-such-model",
                   "--inference-addr", addr(torchserve))
    assert result.returncode == 2
    assert "HTTP 404" in result.stdout


def test_end_to_end_archive_matches_readtext(torchserve, image_files, rendered, det_checkpoint,
                                             recog_checkpoint, tmp_path):
    result = check(image_files["scene.jpg"], DET_CONFIG, det_checkpoint, "ocr",
                   "--recog-config", RECOG_CONFIG, "--recog-checkpoint", recog_checkpoint,
                   "--inference-addr", addr(torchserve), "--out-dir", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 of 1 images match" in result.stdout
    count = len(rendered["scene.jpg"].words)
    assert f" {count}/{count} " in table_row(result.stdout, "scene.jpg")
    assert " yes " in table_row(result.stdout, "scene.jpg")  # texts equal
    assert (tmp_path / "scene.jpg.png").is_file()
