"""Accuracy of a trained network on chips with device and circuit effects (hardware-model
section 8): ``group-scissor evaluate``.

    >>> rep = evaluate("lenet", "lenet:group-scissor", "rram_neurosim", seeds=5,
    ...                spec=CrossbarSpec(64, 64, weight_bits=8, cell_bits=2))
    >>> rep["accuracy"]["mean"], rep["accuracy"]["std"], rep["ideal_accuracy"]

The model is mapped once; every chip seed programs a new chip (variation and faults drawn
anew, from seed = the device file's seed + i), calibrates its converters on the same
calibration batch (the first ``calibration_samples`` images of the training split, never the
test set) and classifies the whole test split in batches. Beside it: the ideal chip of the
same mapping (exact; with sliced weights, the quantized weights) and the model in PyTorch.
A device with no random effect (no variation, faults or read noise) gives the same chip for
every seed: it is evaluated once and the report says so (``deterministic``).

``compile`` runs the same evaluation as its stage 7-evaluate when ``[evaluate] device_file`` is
set (``EvaluateConfig``; group_scissor/pipeline.py).
"""

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from common.errors import ConfigError, check_ranges
from mapping import CrossbarSpec, DeviceModel, map_model
from mapping.devices import describe

CALIBRATION_SAMPLES = 256
BATCH = 1000


@dataclass(frozen=True)
class EvaluateConfig:
    """compile's stage 7-evaluate: accuracy of the final network, mapped as 4-map maps it, on
    chips of a device file (the report of ``group-scissor evaluate``). All fields are
    validated; the device file itself is read by ``pipeline.validate`` before any training."""

    device_file: str | None = None
    """Device preset name (ideal, rram_4bit, rram_neurosim: mapping/presets/devices) or a TOML
    device file; None: no device evaluation (the stage is not run and the report says 'not
    evaluated')."""
    seeds: int = 5
    """Chips to program: seeds SEED .. SEED+N-1 (SEED from the device file, default 0)."""
    calibration_samples: int = CALIBRATION_SAMPLES
    """Training images that calibrate the DAC and ADC ranges."""
    test_samples: int | None = None
    """Only the first N test images (a quick look); None: the full test set."""

    def __post_init__(self) -> None:
        if self.device_file is not None and (not isinstance(self.device_file, str)
                                             or not self.device_file.strip()):
            raise ConfigError(f"EvaluateConfig.device_file must be a preset name or a file path, "
                              f"got {self.device_file!r}")
        checks = [("seeds", 1, 10**6), ("calibration_samples", 1, 10**9)]
        if self.test_samples is not None:
            checks.append(("test_samples", 1, 10**9))
        check_ranges("EvaluateConfig", self, checks)


def resolve_model(checkpoint: str, model: str | None) -> str:
    """The model a checkpoint is of: --model, the shipped checkpoint's, or the run's config."""
    from models import pretrained

    if pretrained.is_name(str(checkpoint)):
        shipped = pretrained.entry(str(checkpoint))["model"]
        if model is not None and model.lower() != shipped:
            raise ConfigError(f"shipped checkpoint {checkpoint} is of model {shipped!r}, not "
                              f"{model!r}; drop --model or pass --model {shipped}")
        return shipped
    if model is not None:
        return model
    found = _run_setting(checkpoint, "model")
    if found is None:
        raise ConfigError(f"which model is {checkpoint}? pass --model (e.g. --model lenet); no "
                          f"config.json naming it beside the checkpoint")
    return found


def resolve_dataset(checkpoint: str, model_name: str) -> str:
    """The data set a checkpoint was trained on: its run's config.json (a stage folder writes
    it beside checkpoint.pt), else the model's default (a shipped checkpoint's)."""
    import models

    return _run_setting(checkpoint, "dataset") or models.info(model_name).default_dataset


def _run_setting(checkpoint: str, key: str) -> str | None:
    """Text setting ``key`` of the config.json beside a checkpoint file (None: none)."""
    import json

    from models import pretrained

    if pretrained.is_name(str(checkpoint)):
        return None
    cfg = Path(checkpoint).parent / "config.json"
    try:
        found = json.loads(cfg.read_text()).get(key) if cfg.is_file() else None
    except (OSError, ValueError, AttributeError):
        found = None
    return found if isinstance(found, str) else None


def accuracy(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor,
             batch: int = BATCH) -> float:
    """Share of ``x`` whose argmax of ``fn`` is ``y``, in batches."""
    correct = 0
    with torch.no_grad():
        for i in range(0, len(y), batch):
            correct += int((fn(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum())
    return correct / max(1, len(y))


def summary(values: list[float]) -> dict:
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return {"mean": mean, "std": std, "min": min(values), "max": max(values)}


def chip_accuracies(mapped, device: DeviceModel, seeds: int, x, y, calibration,
                    compute_dtype=torch.float32, log=None,
                    matrices=None) -> tuple[list[float], bool]:
    """Accuracy on (x, y) of ``seeds`` chips of ``device`` (seeds device.seed + i), on every
    matrix or on ``matrices`` only (the others ideal); a device without random effects is
    evaluated once and repeated. Returns (accuracies, deterministic)."""
    deterministic = not device.stochastic
    accs = []
    for i in range(1 if deterministic else seeds):
        start = time.perf_counter()
        dev = dataclasses.replace(device, seed=device.seed + i)
        sim = mapped.simulator(dev, calibration if device.needs_calibration else None,
                               compute_dtype, matrices)
        accs.append(accuracy(sim, x, y))
        if log:
            log(f"  chip seed {dev.seed}: accuracy {accs[-1]:.4f} ({time.perf_counter() - start:.1f} s)")
    return (accs * seeds if deterministic else accs), deterministic


def evaluate(model_name: str | None, checkpoint: str, device_file: str, seeds: int = 5,
             spec: CrossbarSpec | None = None, data_dir=None,
             calibration_samples: int = CALIBRATION_SAMPLES, compute_dtype=torch.float32,
             test_samples: int | None = None, log: Callable[[str], None] | None = None,
             dataset: str | None = None) -> dict:
    """The report of ``group-scissor evaluate`` (see the module docstring); ``dataset``: the
    test and calibration data (default: the checkpoint's, ``resolve_dataset``)."""
    import models
    from group_scissor.data import load_dataset
    from models.checkpoint import load_model

    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"--seeds must be a whole number >= 1, got {seeds!r}")
    if calibration_samples < 1:
        raise ConfigError(f"--calibration-samples must be >= 1, got {calibration_samples}")
    if test_samples is not None and test_samples < 1:
        raise ConfigError(f"--test-samples must be >= 1, got {test_samples}")
    spec = CrossbarSpec() if spec is None else spec
    file = describe(device_file)
    device = DeviceModel.from_dict(file)
    model_name = resolve_model(checkpoint, model_name)
    info = models.info(model_name)
    model = load_model(model_name, checkpoint).eval()
    dataset = resolve_dataset(checkpoint, model_name) if dataset is None else dataset
    data = load_dataset(dataset, data_dir)
    start = time.perf_counter()
    mapped = map_model(model, spec, info.input_shape)
    x, y = data.test.x[:test_samples], data.test.y[:test_samples]
    calib = data.train.x[:calibration_samples]
    torch_acc = accuracy(model, x, y)
    ideal_acc = accuracy(mapped.simulator(), x, y)
    if log:
        log(f"{model_name} ({checkpoint}) on {spec}: {mapped.n_crossbars} crossbars; PyTorch "
            f"{torch_acc:.4f}, ideal chip {ideal_acc:.4f}; {seeds} chip(s) of "
            f"{file.get('name', device_file)}")
    accs, deterministic = chip_accuracies(mapped, device, seeds, x, y, calib, compute_dtype, log)
    return {
        "model": model_name, "checkpoint": str(checkpoint), "dataset": dataset,
        "crossbar": {k: v for k, v in spec.to_dict().items() if k != "tech"} | {"slices": spec.slices},
        "n_crossbars": mapped.n_crossbars,
        "device_file": str(device_file), "device_name": file.get("name"),
        "device_description": file.get("description"), "device": device.to_dict(),
        "sources": file.get("sources", {}),
        "seeds": list(range(device.seed, device.seed + seeds)), "deterministic": deterministic,
        "test_samples": len(y), "full_test_set": len(y) == len(data.test.y),
        "calibration_samples": len(calib),
        "calibration": f"first {len(calib)} images of the {dataset} training split",
        "accuracies": accs, "accuracy": summary(accs),
        "ideal_accuracy": ideal_acc, "pytorch_accuracy": torch_acc,
        "compute_dtype": str(compute_dtype).replace("torch.", ""),
        "seconds": time.perf_counter() - start,
    }


def format_report(rep: dict) -> str:
    a = rep["accuracy"]
    seeds = len(rep["accuracies"])
    how = "one chip stands for all seeds: no random effect" if rep["deterministic"] else \
        f"{seeds} chip seeds"
    return (f"{rep['model']} on {rep['device_name'] or rep['device_file']}: accuracy "
            f"{a['mean']:.4f} +- {a['std']:.4f} (min {a['min']:.4f}, max {a['max']:.4f}; {how}); "
            f"ideal chip {rep['ideal_accuracy']:.4f}, PyTorch {rep['pytorch_accuracy']:.4f}; "
            f"{rep['test_samples']} test images"
            + ("" if rep["full_test_set"] else " (not the full test set)"))
