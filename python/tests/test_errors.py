"""Library errors arrive as reprshift.Error subclasses by kind, with the C message."""
import os

import numpy as np
import pytest

import reprshift
from conftest import ROOT, fixture_model


@pytest.fixture(scope="module")
def gemma():
    return reprshift.Model(fixture_model("gemma2-tiny-f32"))


def test_missing_model_folder():
    with pytest.raises(reprshift.Error) as e:
        reprshift.Model("/nonexistent/model-folder")
    assert "/nonexistent/model-folder" in str(e.value)
    assert e.value.kind in ("EIO", "EINVAL", "EFAIL")


def test_model_that_is_not_a_checkpoint(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(reprshift.FormatError) as e:
        reprshift.Model(str(tmp_path))
    assert e.value.kind == "EFORMAT" and "config.json" in e.value.message


def test_unknown_hook_names_the_valid_ones(gemma):
    with pytest.raises(reprshift.InvalidArgumentError) as e:
        gemma.run_with_cache(ids=[[2, 3]], hooks=["blocks.99.hook_resid_post"], progress=False)
    assert "blocks.99.hook_resid_post" in str(e.value) and e.value.kind == "EINVAL"
    assert isinstance(e.value, ValueError)


@pytest.mark.parametrize("kw,words", [
    (dict(pool="median"), "pool"),
    (dict(batch_tokens=0), "batch_tokens"),
    (dict(ids=[[]]), "empty"),
    (dict(ids=[[2, 100000]]), "100000"),
    (dict(texts=["hello"]), "tokenizer"),
])
def test_bad_run_arguments(gemma, kw, words):
    args = dict(ids=[[2, 3]], hooks=["blocks.0.hook_resid_post"], progress=False)
    args.update(kw)
    with pytest.raises(reprshift.Error) as e:
        gemma.run_with_cache(**args)
    assert words in str(e.value)


def test_image_on_gemma(gemma, tmp_path):
    img = os.path.join(ROOT, "tests", "fixtures", "images", "png")
    with pytest.raises(reprshift.InvalidArgumentError) as e:
        gemma.run_with_cache(images=[img], hooks=["blocks.0.hook_resid_post"], progress=False)
    assert "PaliGemma" in str(e.value)


def test_missing_image_file():
    m = reprshift.Model(fixture_model("paligemma-tiny-f32"))
    with pytest.raises(reprshift.FileError) as e:
        m.run_with_cache(images=["/no/such/image.png"], prompt_ids=[9], hooks=["blocks.0.hook_resid_post"],
                         progress=False)
    assert "/no/such/image.png" in str(e.value) and isinstance(e.value, OSError)


def test_sae_errors(tmp_path):
    with pytest.raises(reprshift.Error) as e:
        reprshift.SAE.load(str(tmp_path / "nothing"))
    assert "nothing" in str(e.value)
    sae = reprshift.SAE.load(os.path.join(ROOT, "examples", "quickstart", "models", "sae", "blocks.0.hook_resid_post"))
    with pytest.raises(ValueError):
        sae.encode(np.zeros((2, sae.d_in + 1), np.float32))
    x = np.zeros((2, sae.d_in), np.float32)
    x[1, 3] = np.nan
    with pytest.raises(reprshift.Error) as e:
        sae.encode(x)
    assert "row 1" in str(e.value) or "NaN" in str(e.value) or "finite" in str(e.value)


def test_shift_errors(gemma):
    c = gemma.run_with_cache(ids=[[2, 3, 4]], hooks=["blocks.0.hook_resid_post"], pool="mean", progress=False)
    with pytest.raises(reprshift.InvalidArgumentError) as e:
        reprshift.shift(c, c)
    assert "pooled" in str(e.value)
    with pytest.raises(reprshift.FileError):
        reprshift.shift("/no/a.safetensors", "/no/b.safetensors")
    with pytest.raises(reprshift.InvalidArgumentError) as e:
        reprshift.shift("/no/a.safetensors", "/no/b.safetensors", n_boot=-1)
    assert "n_boot" in str(e.value)


def test_load_run_errors(tmp_path):
    with pytest.raises(reprshift.FileError):
        reprshift.load_run(str(tmp_path / "missing"))
    with pytest.raises(reprshift.FormatError):
        reprshift.load_run(str(tmp_path))


def test_bad_precision_and_closed_model():
    with pytest.raises(reprshift.InvalidArgumentError) as e:
        reprshift.Model(fixture_model("gemma2-tiny-f32"), precision="fp8")
    assert "fp8" in str(e.value)
    m = reprshift.Model(fixture_model("gemma2-tiny-f32"))
    m.close()
    with pytest.raises(ValueError):
        m.run_with_cache(ids=[[2, 3]], hooks=["blocks.0.hook_resid_post"])


def test_bf16_decoder_runs_close_to_fp32():
    ids = [[2, 17, 99, 4, 250, 31, 8]]
    h = "blocks.3.hook_resid_post"
    a = reprshift.Model(fixture_model("gemma2-tiny-f32")).run_with_cache(ids=ids, hooks=[h], progress=False)[h]
    b = reprshift.Model(fixture_model("gemma2-tiny-f32"), precision="bf16").run_with_cache(ids=ids, hooks=[h],
                                                                                          progress=False)[h]
    rel = np.abs(a - b).max() / np.abs(a).max()
    assert 0 < rel < 0.05, rel  # bf16 rounding: different, but close
