"""Purpose-built TorchScript models for queueing and failure tests, and a repository writer.

`GatedModel` is a real TorchScript model whose forward pass counts its entries and then waits
until a gate (a byte in a shared file that the test process flips) is open, so a test can hold
the batcher's worker and see requests queue up. A row holding the sentinel value makes it raise.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from torch import nn

from modelrepo import torchscript as jit
from modelrepo.card import ModelCard
from modelrepo.layout import sha256_of

SENTINEL = -999.0
GATED_FEATURES, GATED_CLASSES = 4, 3
GATED_WEIGHTS = (
    np.arange(GATED_FEATURES * GATED_CLASSES, dtype=np.float32).reshape(
        GATED_FEATURES, GATED_CLASSES
    )
    / 10.0
)


class GatedModel(nn.Module):
    def __init__(self, gate_path: str) -> None:
        super().__init__()
        self.gate_path = gate_path
        self.register_buffer("weights", torch.from_numpy(GATED_WEIGHTS.copy()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.from_file(self.gate_path, shared=True, size=2, dtype=torch.int64)
        gate[1] += 1  # entries, for the test to see that a batch is in the model
        while int(gate[0]) == 0:
            pass
        if bool((x == -999.0).any()):
            raise RuntimeError("sentinel value -999 in the input")
        return torch.softmax(x @ self.weights, dim=1)


def gated_expected(rows: np.ndarray) -> np.ndarray:
    """What GatedModel answers for `rows`, computed without it (the unbatched truth)."""
    logits = rows.astype(np.float32) @ GATED_WEIGHTS
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


class Gate:
    """The test side of GatedModel's gate: a 16-byte file of two int64s (open flag, entries)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.write_bytes(np.array([1, 0], dtype=np.int64).tobytes())

    def _values(self) -> np.ndarray:
        return np.frombuffer(self.path.read_bytes(), dtype=np.int64)

    def close(self) -> None:
        with self.path.open("r+b") as file:
            file.write(np.int64(0).tobytes())

    def open(self) -> None:
        with self.path.open("r+b") as file:
            file.write(np.int64(1).tobytes())

    @property
    def entries(self) -> int:
        return int(self._values()[1])


def card_for(name: str, version: int, sha256: str, features: int, classes: int) -> ModelCard:
    return ModelCard.model_validate(
        {
            "name": name,
            "version": version,
            "task": "classification",
            "description": f"test fixture {name}",
            "input": {"shape": [-1, features]},
            "output": {"shape": [-1, classes], "class_names": [f"c{i}" for i in range(classes)]},
            "metrics": {},
            "bars": [],
            "dataset": {"description": "none", "sizes": {}},
            "training": {
                "seed": 0,
                "epochs": 0,
                "epochs_run": 0,
                "optimizer": "none",
                "lr": 0.0,
                "weight_decay": 0.0,
                "batch_size": 0,
                "device": "cpu",
                "wall_time_s": 0.0,
            },
            "sha256": sha256,
            "torch_version": torch.__version__,
            "created_at": datetime.now(UTC).isoformat(),
        }
    )


def write_config(model_dir: Path, max_batch_size: int, delay_us: int) -> None:
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "config.pbtxt").write_text(
        f'name: "{model_dir.name}"\nplatform: "pytorch_libtorch"\n'
        f"max_batch_size: {max_batch_size}\n"
        f"dynamic_batching {{ max_queue_delay_microseconds: {delay_us} }}\n"
    )


def write_scripted(version_dir: Path, module: nn.Module, features: int, classes: int) -> Path:
    version_dir.mkdir(parents=True)
    path = version_dir / "model.pt"
    jit.save(jit.script(module.eval()), path)
    card = card_for(
        version_dir.parent.name, int(version_dir.name), sha256_of(path), features, classes
    )
    (version_dir / "card.json").write_text(card.model_dump_json(indent=2))
    return path


def write_gated_model(root: Path, gate: Gate, max_batch_size: int) -> None:
    """`<root>/gated/1`: the GatedModel behind `gate`, with batching and no queue delay."""
    write_config(root / "gated", max_batch_size=max_batch_size, delay_us=0)
    write_scripted(root / "gated" / "1", GatedModel(str(gate.path)), GATED_FEATURES, GATED_CLASSES)


def build_test_repository(root: Path, gate: Gate) -> None:
    """Beside the bundled models in `root` (iris among them): the gated model and three broken
    ones, each broken differently."""
    write_gated_model(root, gate, max_batch_size=8)

    def broken(name: str) -> Path:
        source = root / "iris" / "1"
        target = root / name / "1"
        shutil.copytree(source, target)
        shutil.copy(root / "iris" / "config.pbtxt", root / name / "config.pbtxt")
        card = json.loads((target / "card.json").read_text())
        card["name"] = name
        (target / "card.json").write_text(json.dumps(card))
        return target

    corrupt = broken("corrupt")  # a model.pt that is not TorchScript, with a matching hash
    (corrupt / "model.pt").write_bytes(b"this is not a zip archive" * 10)
    card = json.loads((corrupt / "card.json").read_text())
    card["sha256"] = sha256_of(corrupt / "model.pt")
    (corrupt / "card.json").write_text(json.dumps(card))

    tampered = broken("tampered")  # a model.pt replaced after its card was written
    (tampered / "model.pt").write_bytes((tampered / "model.pt").read_bytes() + b"\0")

    badcard = broken("badcard")  # a card that fails validation
    card = json.loads((badcard / "card.json").read_text())
    card["task"] = "astrology"
    (badcard / "card.json").write_text(json.dumps(card))
