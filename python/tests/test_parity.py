"""run_with_cache against transformers' hidden states (output_hidden_states and the
TransformerLens-named hooks of tools/reference/gen_model_fixtures.py), through the committed
goldens. Tolerance as the C tests: max|diff| <= 1e-4 * max|ref| per hook."""
import numpy as np
import pytest

import reprshift
from conftest import fixture_model, write_png

TOL = 1e-4


def close(ref, got, what):
    assert ref.shape == got.shape, "%s: shape %s vs %s" % (what, got.shape, ref.shape)
    err = float(np.abs(ref.astype(np.float64) - got).max())
    scale = float(np.abs(ref).max())
    assert err <= TOL * scale, "%s: max|diff| %.3g > %.1g * max|ref| %.3g" % (what, err, TOL, scale)


@pytest.mark.parametrize("name", ["gemma2-tiny-f32", "gemma2-tiny-bf16"])
def test_gemma2_every_hook_matches_transformers(name):
    g, meta = reprshift.load_safetensors(fixture_model(name) + "/golden.safetensors", with_metadata=True)
    n = int(meta["n_prompts"])
    ids = [g["p%d.ids" % p] for p in range(n)]
    m = reprshift.Model(fixture_model(name))
    assert m.info["type"] == "gemma2"
    cache = m.run_with_cache(ids=ids, hooks=m.hooks, progress=False)
    assert set(cache) == set(m.hooks)
    np.testing.assert_array_equal(cache.token_ids, np.concatenate(ids))
    np.testing.assert_array_equal(cache.offsets, np.cumsum([0] + [len(i) for i in ids]))
    for h in m.hooks:
        for p in range(n):
            o0, o1 = cache.offsets[p], cache.offsets[p + 1]
            close(g["p%d.%s" % (p, h)], cache[h][o0:o1], "%s p%d %s" % (name, p, h))
    # transformers' output_hidden_states[l + 1] is blocks.l.hook_resid_post (the last one after the final norm)
    L = m.info["n_layers"]
    for p in range(n):
        o0, o1 = cache.offsets[p], cache.offsets[p + 1]
        close(g["p%d.blocks.0.hook_resid_pre" % p], cache["blocks.0.hook_resid_pre"][o0:o1], "hidden_states[0]")
        close(g["p%d.ln_final.hook_out" % p], cache["ln_final.hook_out"][o0:o1], "hidden_states[%d]" % L)


def test_gemma2_pooled_mean_and_last():
    g, meta = reprshift.load_safetensors(fixture_model("gemma2-tiny-f32") + "/golden.safetensors",
                                         with_metadata=True)
    ids = [g["p%d.ids" % p] for p in range(int(meta["n_prompts"]))]
    ids = [i for i in ids if len(i) > 1]
    m = reprshift.Model(fixture_model("gemma2-tiny-f32"))
    h = "blocks.2.hook_resid_post"
    last = m.run_with_cache(ids=ids, hooks=[h], pool="last", progress=False)
    mean = m.run_with_cache(ids=ids, hooks=[h], pool="mean", pool_special=True, progress=False)
    assert last[h].shape == (len(ids), 64) and last.pool == "last"
    for k, seq in enumerate(ids):
        ref = [p for p in range(int(meta["n_prompts"])) if np.array_equal(g["p%d.ids" % p], seq)][0]
        close(g["p%d.%s" % (ref, h)][-1], last[h][k], "last")
        close(g["p%d.%s" % (ref, h)].mean(0), mean[h][k], "mean")


def test_paligemma_image_and_text_inputs(tmp_path):
    name = "paligemma-tiny-f32"
    g, meta = reprshift.load_safetensors(fixture_model(name) + "/golden.safetensors", with_metadata=True)
    m = reprshift.Model(fixture_model(name))
    N = m.info["n_image_tokens"]
    assert m.info["type"] == "paligemma" and N == int(meta["num_image_tokens"])
    ids0 = g["p0.ids"]
    assert int(g["p0.prefix_len"][0]) == len(ids0)  # image + bos + prompt + "\n", no suffix
    png = tmp_path / "p0.png"
    write_png(str(png), g["p0.pixels_u8"])  # already the processor's size: decoded and scaled as the golden's
    hooks = ["blocks.1.hook_resid_post", "blocks.0.attn.hook_z", "ln_final.hook_out", "vision.ln_post",
             "vision.blocks.1.hook_resid_post", "projector.hook_out"]
    cache = m.run_with_cache(images=[str(png)], prompt_ids=ids0[N + 1:-1], ids=[g["t0.ids"]], hooks=hooks,
                             progress=False)
    T0 = len(ids0)
    np.testing.assert_array_equal(cache.token_ids[:T0], ids0)
    assert list(cache.token_kinds[:T0]) == [1] * N + [2] + [3] * (T0 - N - 2) + [4]
    np.testing.assert_array_equal(cache.vision_offsets, [0, N, N])
    for h in hooks:
        rows = cache[h][:N] if h.startswith(("vision", "projector")) else cache[h][:T0]
        close(g["p0.%s" % h], rows, "image input %s" % h)
    for h in ("blocks.1.hook_resid_post", "blocks.0.attn.hook_z", "ln_final.hook_out"):
        close(g["t0.%s" % h], cache[h][T0:], "text input %s" % h)
