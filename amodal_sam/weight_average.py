"""One model from several fine-tunes of one head: their weights averaged, tensor by tensor.

Heads fine-tuned from a common ancestor (one trained a few more epochs, or on other data, than
another) lie in one basin of the loss: the straight line between their weights stays where the
loss is low, so their average keeps much of what each learnt (model soups, Wortsman et al. 2022;
WiSE-FT). The demo model is such an average (``checkpoints/train_demo.sh``). Heads on different
frozen SAMs, or of different shapes, cannot be averaged; this refuses them by name.

The average takes the first model's config (its decisions too): calibrate it
(``amodal-sam calibrate``) before use, since its outputs are not any one model's.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path

from amodal_sam.config import read_config_file
from amodal_sam.model_card import AVERAGE_KEY, TRAINING_KEY, short_source
from amodal_sam.model_files import CONFIG_NAME, WEIGHTS_NAME, load_pretrained, save_pretrained
from amodal_sam.sam_weights import read_safetensors


def _checked_weights(weights: Sequence[float] | None, count: int) -> list[float]:
    """``weights`` normalised to sum to 1 (equal ones when None); a ValueError unless there is
    one positive finite number per model."""
    if weights is None:
        return [1.0 / count] * count
    weights = list(weights)
    if len(weights) != count:
        raise ValueError(f"weights must give one number per model ({count}); got {len(weights)}")
    if not all(isinstance(w, int | float) and math.isfinite(w) and w > 0 for w in weights):
        raise ValueError(f"weights must be positive finite numbers; got {weights!r}")
    total = sum(weights)
    return [w / total for w in weights]


def average_models(
    model_dirs: Sequence[str | Path], out_dir: str | Path, weights: Sequence[float] | None = None
) -> Path:
    """Average the trainable heads of local model folders into a new model folder.

    Arguments:
        model_dirs: two or more folders saved by ``save_pretrained`` (``config.json``,
            ``model.safetensors``), whose heads share one frozen SAM (the configs' ``sam_sha256``)
            and one architecture (the same tensor names and shapes).
        out_dir: where the average is saved (``save_pretrained``: atomic files, the model card).
        weights: one positive number per model, normalised to sum to 1; default equal.
    The saved config is the first model's, its ``extra`` training record replaced by the list of
    averaged models and their weights (:data:`AVERAGE_KEY`). Returns the folder.
    """
    folders = [Path(d) for d in model_dirs]
    if len(folders) < 2:
        raise ValueError(f"model_dirs must name at least two model folders to average; got {len(folders)}")
    for folder in folders:
        for name in (CONFIG_NAME, WEIGHTS_NAME):
            if not (folder / name).is_file():
                raise FileNotFoundError(f"model folder {str(folder)!r} has no {name} (a folder of save_pretrained)")
    shares = _checked_weights(weights, len(folders))
    configs = [read_config_file(folder / CONFIG_NAME) for folder in folders]
    for folder, config in zip(folders[1:], configs[1:]):
        if config.sam_sha256 != configs[0].sam_sha256 or config.sam_spec != configs[0].sam_spec:
            raise ValueError(
                f"model {str(folder)!r} was trained on another frozen SAM than {str(folders[0])!r}: "
                "only heads on one SAM can be averaged"
            )
    states = [read_safetensors(folder / WEIGHTS_NAME, "amodal weights") for folder in folders]
    for folder, state in zip(folders[1:], states[1:]):
        shapes = {k: tuple(v.shape) for k, v in state.items()}
        if shapes != {k: tuple(v.shape) for k, v in states[0].items()}:
            raise ValueError(
                f"model {str(folder)!r} has another architecture than {str(folders[0])!r} "
                "(its weights' names or shapes differ): it cannot be averaged with it"
            )
    averaged = {
        key: sum(share * state[key].double() for share, state in zip(shares, states)).to(states[0][key].dtype)
        for key in states[0]
    }
    model = load_pretrained(folders[0])
    model.load_trainable_state_dict(averaged, "the averaged weights")
    record = [
        {"model": short_source(str(folder)), "weight": share, TRAINING_KEY: config.extra.get(TRAINING_KEY)}
        for folder, share, config in zip(folders, shares, configs)
    ]
    model.config = dataclasses.replace(model.config, extra={**model.config.extra, TRAINING_KEY: {AVERAGE_KEY: record}})
    return save_pretrained(model, out_dir)
