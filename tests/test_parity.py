"""The tie-robust parity criterion: a near-tie flip passes, a real difference fails."""
import os

import numpy as np
import pytest

from ppmatting.deploy.parity import compare_alphas


def _alpha(seed=0, size=(1, 1, 128, 128)):
    return np.random.default_rng(seed).random(size).astype(np.float32)


def test_identical_and_rounding_noise_pass():
    a = _alpha()
    assert compare_alphas(a, a).ok
    noisy = a + np.random.default_rng(1).normal(0, 1e-5, a.shape).astype(np.float32)
    result = compare_alphas(a, noisy)
    assert result.ok and result.share_within == 1.0 and result.max_diff < 1e-4


def test_a_near_tie_flip_passes_but_a_real_difference_fails():
    a = np.clip(_alpha(), 0.0, 0.6)
    flip = a.copy()
    # a max-pool flip spread by the decoder, like the worst one measured (docs/deploy.md section
    # 7): a 20x20 patch (2.4% of 16384 pixels) moved by about 0.02, its centre by up to 0.38
    flip[0, 0, 40:60, 60:80] += 0.02
    flip[0, 0, 49:52, 69:72] += 0.36
    result = compare_alphas(a, flip)
    assert result.ok, result.describe()
    assert result.max_diff == pytest.approx(0.38, abs=1e-6) and result.share_within < 0.99
    shifted = np.clip(a + 0.01, 0, 1)  # every pixel off by 2.5/255: another network
    assert not compare_alphas(a, shifted).ok
    slightly = a + 0.9 / 255  # every pixel within 1/255, but all of them off: mean too large
    result = compare_alphas(a, slightly)
    assert result.share_within == 1.0 and not result.ok, result.describe()
    border = a.copy()
    border[..., :, :8] += 0.05  # a border band wrong (6% of the pixels): e.g. another padding
    assert not compare_alphas(a, border).ok
    spike = a.copy()
    spike[0, 0, 5, 5] += 0.5  # a bound on the maximum, when asked for
    assert compare_alphas(a, spike).ok and not compare_alphas(a, spike, max_diff=0.1).ok


def test_mask_restricts_the_comparison_and_shapes_must_agree():
    a = _alpha()
    b = a.copy()
    b[..., :64] += 0.2
    mask = np.zeros(a.shape, bool)
    mask[..., 64:] = True
    assert compare_alphas(a, b, mask=mask).ok
    assert not compare_alphas(a, b).ok
    with pytest.raises(ValueError):
        compare_alphas(a, b[..., :10])
    with pytest.raises(ValueError):
        compare_alphas(a, b, mask=np.zeros(a.shape, bool))


def test_nan_fails():
    a = _alpha()
    b = a.copy()
    b[0, 0, 0, 0] = np.nan
    assert not compare_alphas(a, b).ok


# ---- the check the exporter and the export cache run ---------------------------------------------
@pytest.fixture(scope="module")
def exported_dim(tmp_path_factory):
    import paddle

    from ppmatting.deploy.export import export_static
    from ppmatting.deploy.info import build_deploy_dict, load_deploy_info, write_deploy_yaml
    from ppmatting.deploy.predictor import MattingPredictor
    from ppmatting.models.dim import dim_vgg16

    paddle.seed(8)
    model = dim_vgg16()
    model.eval()
    folder = str(tmp_path_factory.mktemp("parity_export"))
    write_deploy_yaml(folder, build_deploy_dict(model, export_static(model, folder), None))
    return model, MattingPredictor(load_deploy_info(folder)), folder


def test_check_parity_accepts_a_tie_flip_and_names_a_real_difference(exported_dim):
    from ppmatting.deploy.export import check_parity, parity_failure

    model, predictor, _ = exported_dim
    shapes = [(1, 96, 96)]
    [(shape, parity)] = check_parity(model, predictor.run, shapes)
    assert parity.ok and parity.max_diff < 1e-4 and shape == (1, 96, 96)

    def flipped(img, trimap):  # a max-pool near-tie resolved the other way: a few pixels move
        alpha = predictor.run(img, trimap).copy()
        alpha[0, 0, 40:42, 50:53] = np.clip(alpha[0, 0, 40:42, 50:53] + 0.06, 0, 1)
        return alpha

    results = check_parity(model, flipped, shapes)
    assert results[0][1].ok and parity_failure("export", results) is None

    def other_network(img, trimap):  # e.g. weights not loaded, or another padding
        return np.clip(predictor.run(img, trimap) + 0.02, 0, 1)

    results = check_parity(model, other_network, shapes)
    message = parity_failure("the exported graph", results)
    assert message.startswith("the exported graph differs from the dynamic graph at 1x3x96x96: ")
    assert "0.0000% of 9216 pixels within 1/255 (need 95.00%)" in message


def test_export_cache_is_safe_when_two_processes_race(exported_dim, tmp_path, monkeypatch):
    import shutil
    import threading

    from ppmatting.deploy import export_cache

    _, _, source = exported_dim
    monkeypatch.setenv(export_cache.CACHE_ENV, str(tmp_path / "cache"))
    started = threading.Barrier(2)
    results = []

    def build(folder):
        started.wait()  # both builds run at once, then both try to move into place
        for name in os.listdir(source):
            shutil.copy(os.path.join(source, name), folder)

    threads = [threading.Thread(target=lambda: results.append(export_cache.store("k1", build)))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results[0] == results[1] == export_cache.lookup("k1")
    assert os.listdir(export_cache.exports_dir()) == ["k1"]  # no temporary folder left

    def failing(folder):
        raise RuntimeError("export failed")

    with pytest.raises(RuntimeError):
        export_cache.store("k2", failing)
    assert export_cache.lookup("k2") is None
    assert os.listdir(export_cache.exports_dir()) == ["k1"]
