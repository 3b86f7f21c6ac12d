"""Sequential digit classification: images fed pixel by pixel, the class read out at the last step.

``seq_digits`` uses scikit-learn's 8x8 digits (1797 images, no download), a stand-in for sequential
MNIST; give ``path`` to an MNIST file (``.npz`` with ``x_train, y_train, x_test, y_test`` as Keras
ships it, or a folder of the four IDX files) for the real 784-step task.
"""

from __future__ import annotations

import dataclasses
import gzip
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from .base import Task, TaskBatch, register

IDX_NAMES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (optionally gzipped): magic, dims, then unsigned bytes."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 8:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes")
    n_dims = raw[3]
    dims = np.frombuffer(raw, dtype=">u4", count=n_dims, offset=4).astype(int)
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * n_dims)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path} is truncated: expected {int(np.prod(dims))} values, found {data.size}")
    return data.reshape(dims)


def load_mnist(path: str) -> dict[str, np.ndarray]:
    """MNIST from a Keras-style ``.npz`` or a folder of IDX files; pixels scaled to [0, 1]."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"MNIST file not found: {path}")
    if p.is_dir():
        arrays = {}
        for key, stem in IDX_NAMES.items():
            hits = [p / stem, p / (stem + ".gz")]
            found = next((h for h in hits if h.exists()), None)
            if found is None:
                raise FileNotFoundError(f"{path} has no {stem}[.gz]")
            arrays[key] = read_idx(found)
    else:
        try:
            with np.load(p) as z:
                arrays = {k: z[k] for k in IDX_NAMES}
        except KeyError as e:
            raise ValueError(f"{path} lacks array {e}; expected x_train, y_train, x_test, y_test") from None
        except Exception as e:  # zip or pickle errors from a corrupt file
            raise ValueError(f"{path} is not a readable .npz file ({type(e).__name__})") from None
    for k in ("x_train", "x_test"):
        arrays[k] = arrays[k].reshape(len(arrays[k]), -1).astype(np.float32) / 255.0
    for k in ("y_train", "y_test"):
        arrays[k] = arrays[k].astype(np.int64).reshape(-1)
        if len(arrays[k]) != len(arrays["x" + k[1:]]) or arrays[k].min() < 0 or arrays[k].max() > 9:
            raise ValueError(f"{path}: {k} must hold one label in 0..9 per image")
    return arrays


SPLITS = ("train", "validation", "test")


@lru_cache(maxsize=4)
def _dataset(path: str | None, test_fraction: float, validation_fraction: float, seed: int):
    """``{x,y,index}_{train,validation,test}``. ``index`` holds each image's position in its source: the 1797
    images of ``load_digits`` for the 8x8 digits (all three splits in one index space); for MNIST, the source
    file's training images (train and validation) or its test images (test).

    The validation split is carved out of the training split: ``round(validation_fraction · n_train)``
    images, drawn by ``numpy.random.default_rng([seed, 1])``; the training split keeps the rest. The test
    split is the one the task always had (the 8x8 digits: the first ``round(test_fraction · 1797)`` of
    ``default_rng(seed).permutation(1797)``; MNIST: its own test file)."""
    if path is None:
        from sklearn.datasets import load_digits

        d = load_digits()
        x = d.data.astype(np.float32) / 16.0
        y = d.target.astype(np.int64)
        order = np.random.default_rng(seed).permutation(len(y))
        n_test = int(round(test_fraction * len(y)))
        test, train = order[:n_test], order[n_test:]
        arrays = {"x_train": x[train], "y_train": y[train], "x_test": x[test], "y_test": y[test]}
        index = {"train": train, "test": test}
    else:
        arrays = load_mnist(path)
        index = {"train": np.arange(len(arrays["y_train"])), "test": np.arange(len(arrays["y_test"]))}
    n_train = len(arrays["y_train"])
    carve = np.random.default_rng([seed, 1]).permutation(n_train)  # its own stream: the test split is unchanged
    n_validation = int(round(validation_fraction * n_train))
    validation, train = np.sort(carve[:n_validation]), np.sort(carve[n_validation:])
    x_all, y_all = arrays["x_train"], arrays["y_train"]
    arrays.update(x_train=x_all[train], y_train=y_all[train], x_validation=x_all[validation],
                  y_validation=y_all[validation])  # fmt: skip
    index = {"train": index["train"][train], "validation": index["train"][validation], "test": index["test"]}
    arrays.update({f"index_{split}": np.asarray(index[split], dtype=np.int64) for split in SPLITS})
    return {k: torch.from_numpy(np.array(v)) for k, v in arrays.items()}


@register("seq_digits")
@dataclass
class SeqDigits(Task):
    """Pixels (``pixels_per_step`` at a time) on the inputs; 10 class logits, scored at the last step.

    Three disjoint splits: ``train`` (what ``sample`` draws training batches from), ``validation`` (carved out
    of the source's training data, deterministically from ``split_seed``) and ``test``. With the defaults the
    8x8 digits give test 359 of the 1797 images (``test_fraction``), validation 144 (``validation_fraction``
    of the other 1438) and train 1294; MNIST gives test its 10000 test images, validation 6000 and train
    54000 of its 60000 training images. ``validation()`` gives the validation split (training validates and
    early-stops on it); ``held_out()`` gives the test split, which only final scoring touches.

    Allowed: ``path`` None or a file; ``split`` ``train``, ``validation`` or ``test``; ``pixels_per_step`` a
    divisor of the pixels of an image (64 for the 8x8 digits, 784 for MNIST); ``test_fraction`` and
    ``validation_fraction`` in (0, 1), leaving all three splits non-empty; ``split_seed`` >= 0."""

    path: str | None = None
    split: str = "train"
    pixels_per_step: int = 1
    test_fraction: float = 0.2
    validation_fraction: float = 0.1
    split_seed: int = 0
    dt_ms: float = 1.0
    loss_kind: str = field(default="xent", init=False, repr=False)

    def check(self):
        super().check()
        if self.split not in SPLITS:
            raise ValueError(f"split must be 'train', 'validation' or 'test', got {self.split!r}")
        self._require("test_fraction", 0 < self.test_fraction < 1, "in (0, 1)")
        self._require("validation_fraction", 0 < self.validation_fraction < 1, "in (0, 1)")
        self._require("split_seed", self.split_seed >= 0, ">= 0")  # numpy's generator takes no negative seed
        data = self._data()
        n_pixels = data["x_train"].shape[1]
        ok = 1 <= self.pixels_per_step <= n_pixels and n_pixels % self.pixels_per_step == 0
        self._require("pixels_per_step", ok, f"a divisor of the {n_pixels} pixels of an image")
        for split in SPLITS:  # sample() draws from a split, so none may be empty
            if len(data[f"y_{split}"]) == 0:
                source = self.path or "the 8x8 digits"
                raise ValueError(
                    f"the {split} split of {source} is empty (test_fraction = {self.test_fraction}, "
                    f"validation_fraction = {self.validation_fraction})"
                )

    def _data(self):
        return _dataset(self.path, self.test_fraction, self.validation_fraction, self.split_seed)

    def validation(self) -> SeqDigits:
        return dataclasses.replace(self, split="validation")

    def held_out(self) -> SeqDigits:
        return dataclasses.replace(self, split="test")

    @property
    def n_inputs(self):
        return self.pixels_per_step

    @property
    def n_outputs(self):
        return 10

    @property
    def n_steps(self):
        return self._data()["x_train"].shape[1] // self.pixels_per_step

    def n_examples(self) -> int:
        return len(self._data()[f"y_{self.split}"])

    def sample(self, batch_size, generator=None):
        d = self._data()
        x, y = d[f"x_{self.split}"], d[f"y_{self.split}"]
        idx = torch.randint(0, len(y), (batch_size,), generator=generator)
        return self.batch_of(x[idx], y[idx])

    def indices(self) -> torch.Tensor:
        """Each image's position in its source (see ``_dataset``), in the order of ``all_examples``."""
        return self._data()[f"index_{self.split}"]

    def all_examples(self) -> TaskBatch:
        """The whole split, in order (for a full test-set accuracy)."""
        d = self._data()
        return self.batch_of(d[f"x_{self.split}"], d[f"y_{self.split}"])

    def batch_of(self, images: torch.Tensor, labels: torch.Tensor) -> TaskBatch:
        inputs = images.reshape(len(labels), self.n_steps, self.pixels_per_step).float()
        targets = torch.zeros(len(labels), self.n_steps, 10)
        targets[:, -1] = torch.nn.functional.one_hot(labels, 10).float()
        mask = torch.zeros_like(targets)
        mask[:, -1] = 1
        return TaskBatch(inputs, targets, mask, {"label": labels})

    def score(self, outputs, batch):
        return float((outputs[:, -1].argmax(dim=-1) == batch.meta["label"]).float().mean())
