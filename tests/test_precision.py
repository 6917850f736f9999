"""Mixed precision: a run with ``precision="mixed_bfloat16"`` trains its embedding network in
bfloat16 (float32 variables) and is saved and evaluated in float32."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from oneshot.data import load_mnist
from oneshot.experiments import OnlineRun
from oneshot.losses import TripletMarginLoss
from oneshot.miners import BatchHardMiner
from oneshot.training.setup import build_model, in_float32

TINY = dict(dataset="mnist", network="conv4", network_kwargs={"width": 8}, embedding_dim=8,
            steps=6, log_every=3)  # fmt: skip


def tiny_run(**changes) -> OnlineRun:
    loss = TripletMarginLoss(0.2, miner=BatchHardMiner())
    return OnlineRun(name="mixed", loss=loss, classes_per_batch=4, samples_per_class=4,
                     **{**TINY, **changes})  # fmt: skip


def test_precision_is_checked_and_written_only_when_set():
    assert "precision" not in tiny_run().to_dict()  # older runs' config.json unchanged
    mixed = tiny_run(precision="mixed_bfloat16")
    assert mixed.to_dict()["precision"] == "mixed_bfloat16"
    assert OnlineRun.from_dict(json.loads(json.dumps(mixed.to_dict()))) == mixed
    with pytest.raises(ValueError, match="`precision`. Expected one of"):
        tiny_run(precision="float16")


def test_mixed_network_computes_in_bfloat16_and_is_saved_in_float32(data_dir):
    """The embedding network's layers compute in bfloat16 with float32 variables, the model
    hands float32 embeddings to the loss, the global policy is left as it was, and
    ``in_float32`` gives the same weights in a float32 model whose embeddings agree to
    bfloat16's precision."""
    config = tiny_run(precision="mixed_bfloat16")
    model = build_model(config)
    assert keras.config.dtype_policy().name == "float32"
    network = model.get_layer("embedding")
    assert network.get_layer("conv1").compute_dtype == "bfloat16"
    assert {v.dtype for v in network.weights} == {"float32"}
    images = load_mnist("test", data_dir=data_dir).images[:64, ..., None].astype("float32") / 255.0
    mixed = keras.ops.convert_to_numpy(model(images, training=False))
    assert mixed.dtype == np.float32
    exact = in_float32(model, config, None)
    assert exact.get_layer("embedding").get_layer("conv1").compute_dtype == "float32"
    for a, b in zip(exact.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    full = keras.ops.convert_to_numpy(exact(images, training=False))
    np.testing.assert_allclose(full, mixed, atol=0.05)
    assert not np.array_equal(full, mixed)  # the float32 model is not the bfloat16 one
    assert in_float32(model, tiny_run(), None) is model  # float32 runs: the model itself


@pytest.mark.filterwarnings("error:Skipping variable loading for optimizer")
def test_a_mixed_run_trains_and_saves_a_float32_model(tmp_path, data_dir):
    from oneshot.models.saving import load_model
    from oneshot.training.runner import train_run

    config = tiny_run(precision="mixed_bfloat16")
    train_run(config, tmp_path / "run", data_dir)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["precision"] == "mixed_bfloat16"
    losses = [float(line.split(",")[2]) for line in
              (tmp_path / "run" / "history.csv").read_text().splitlines()[1:]]  # fmt: skip
    assert len(losses) == 2 and all(np.isfinite(losses))
    model = load_model(tmp_path / "run" / "model.keras")  # with the optimizer's state
    assert {layer.compute_dtype for layer in model.get_layer("embedding").layers} == {"float32"}
    assert int(model.optimizer.iterations.numpy()) == 6
