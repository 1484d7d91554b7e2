"""Config merge, overrides and the errors a user sees."""
import os
import textwrap

import pytest

import ppmatting  # noqa: F401  (fills the registries)
from ppmatting.cvlibs import manager
from ppmatting.cvlibs.builder import build_component
from ppmatting.cvlibs.config import Config, load_config_dict, merge_config
from ppmatting.utils.errors import ConfigError


def write(path, text):
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_merge_child_wins_and_inherited_false_replaces():
    base = {"a": {"x": 1, "y": 2}, "b": [1, 2], "c": {"keep": 1, "drop": 2}}
    child = {"a": {"y": 3}, "b": [9], "c": {"_inherited_": False, "new": 5}}
    merged = merge_config(base, child)
    assert merged == {"a": {"x": 1, "y": 3}, "b": [9], "c": {"new": 5}}
    assert base["a"]["y"] == 2  # the base is not mutated


def test_base_list_relative_to_file(tmp_path):
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub" / "data.yml", "batch_size: 4\niters: 10\n")
    write(tmp_path / "sub" / "model.yml", "model: {type: Foo, depth: 3, width: 8}\niters: 20\n")
    cfg = write(tmp_path / "top.yml", """
        _base_: [sub/data.yml, sub/model.yml]
        model:
          depth: 5
    """)
    dic = load_config_dict(cfg)
    assert dic["iters"] == 20 and dic["batch_size"] == 4
    assert dic["model"] == {"type": "Foo", "depth": 5, "width": 8}


def test_opts_typed_and_shortcuts(tmp_path):
    cfg = write(tmp_path / "c.yml", """
        batch_size: 2
        iters: 10
        lr_scheduler: {learning_rate: 0.1}
        model: {type: Foo, scale: 1.0, sizes: [1, 2]}
    """)
    config = Config(cfg, opts=["model.scale=1e-5", "model.sizes=[3,4,5]", "model.pretrained=null"],
                    iters=7, learning_rate=0.5)
    assert config.dic["model"]["scale"] == pytest.approx(1e-5)
    assert config.dic["model"]["sizes"] == [3, 4, 5]
    assert config.dic["model"]["pretrained"] is None
    assert config.iters == 7 and config.batch_size == 2
    assert config.learning_rate == 0.5


def test_opts_misspelt_key_names_path_and_suggestion(tmp_path):
    cfg = write(tmp_path / "c.yml", "iters: 10\ntrain_dataset: {type: MattingDataset, dataset_root: x, file_list: y}\n")
    with pytest.raises(ConfigError) as err:
        Config(cfg, opts=["train_datset.dataset_root=z"])
    message = str(err.value)
    assert "train_datset" in message and "train_dataset" in message and "c.yml" in message


def test_unknown_top_level_key_and_bad_value(tmp_path):
    with pytest.raises(ConfigError, match="did you mean 'iters'"):
        Config(write(tmp_path / "a.yml", "iter: 10\n"))
    with pytest.raises(ConfigError, match=r"iters: expected a positive integer, got 'ten'"):
        Config(write(tmp_path / "b.yml", "iters: ten\n"))
    with pytest.raises(ConfigError, match=r"b2.yml: batch_size"):
        Config(write(tmp_path / "b2.yml", "batch_size: -1\n"))
    with pytest.raises(ConfigError, match="learning_rate: expected a non-negative number"):
        Config(write(tmp_path / "c.yml", "lr_scheduler: {learning_rate: fast}\n"))


def test_missing_base_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="_base_ file 'nope.yml' not found"):
        Config(write(tmp_path / "a.yml", "_base_: nope.yml\n"))
    with pytest.raises(ConfigError, match=r"invalid YAML at line \d+"):
        Config(write(tmp_path / "b.yml", "iters: 1\nmodel: [unclosed\n"))
    with pytest.raises(ConfigError, match="config file not found"):
        Config(str(tmp_path / "missing.yml"))


def test_registry_unknown_type_lists_nearest():
    with pytest.raises(ConfigError) as err:
        build_component({"type": "RandomHorizontalFlp"}, manager.TRANSFORMS, "cfg.yml: transforms[0]")
    assert "RandomHorizontalFlip" in str(err.value) and "cfg.yml: transforms[0]" in str(err.value)


def test_component_misspelt_and_missing_argument():
    with pytest.raises(ConfigError, match=r"transforms\[1\]\.prb: unknown key .*did you mean 'prob'"):
        build_component({"type": "RandomHorizontalFlip", "prb": 0.5}, manager.TRANSFORMS, "transforms[1]")
    with pytest.raises(ConfigError, match=r"dataset\.file_list: missing key"):
        build_component({"type": "MattingDataset", "dataset_root": "."}, manager.DATASETS, "dataset")


def test_registry_rejects_double_registration():
    registry = manager.ComponentRegistry("thing")

    @registry.add_component
    class Thing:
        pass

    class Other:
        pass

    with pytest.raises(KeyError):
        registry.add_component(Other, name="Thing")


def test_shipped_base_builds_from_another_directory(tmp_path, repo_root, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the tools must not depend on the working directory
    config = Config(os.path.join(repo_root, "configs", "_base_", "matting_demo.yml"))
    train = config.train_dataset
    val = config.val_dataset
    assert len(train) == 10 and len(val) == 4
    batch = train[0]
    assert batch["img"].shape == (3, 320, 320) and batch["trimap"].shape == (1, 320, 320)


def test_optimizer_and_scheduler_by_paddle_name(tmp_path):
    import paddle
    cfg = Config(write(tmp_path / "c.yml", """
        optimizer: {type: Adam, beta1: 0.9}
        lr_scheduler: {type: PolynomialDecay, learning_rate: 0.01, decay_steps: 100}
    """))
    layer = paddle.nn.Linear(2, 2)
    optimizer = cfg.optimizer(layer.parameters())
    assert isinstance(optimizer, paddle.optimizer.Adam)
    assert isinstance(cfg.lr_scheduler(), paddle.optimizer.lr.PolynomialDecay)
    with pytest.raises(ConfigError, match="did you mean Adam"):
        Config(write(tmp_path / "d.yml", "optimizer: {type: Adan}\n")).optimizer(layer.parameters())


def test_normalize_takes_the_models_mean_and_std(tmp_path, repo_root):
    base = os.path.join(repo_root, "configs", "_base_", "matting_demo.yml")
    cfg = Config(write(tmp_path / "c.yml", f"""
        _base_: {base}
        model: {{type: Foo, input_mean: [0.5, 0.5, 0.5], input_std: [0.25, 0.5, 0.5]}}
    """))
    normalize = [t for t in cfg.train_dataset.transforms.transforms if type(t).__name__ == "Normalize"][0]
    assert normalize.mean.ravel().tolist() == [0.5, 0.5, 0.5]
    assert normalize.std.ravel().tolist() == [0.25, 0.5, 0.5]
