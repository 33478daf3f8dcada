"""The numeric core, free of Django: networks, preprocessing, sliding-window inference, post-processing,
uncertainty, training loops. Uses CUDA when present, the CPU otherwise, with the same code."""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from monai.inferers import sliding_window_inference
from monai.losses import DiceCELoss
from monai.networks.nets import DenseNet121, SegResNet, UNet
from monai.transforms import (
    Compose,
    RandFlipd,
    RandRotate90d,
    RandScaleIntensityd,
    RandShiftIntensityd,
    RandSpatialCropd,
    Resize,
    ScaleIntensityRange,
    SpatialPadd,
)
from scipy import ndimage

DEFAULT_PREPROCESSING: dict[str, Any] = {
    "orientation": "axial",
    # Target voxel spacing (slice, row, column) in mm; null keeps the series' own grid.
    "spacing": None,
    # CT lung-window normalisation: HU in [a_min, a_max] to [b_min, b_max].
    "intensity": {"a_min": -1000.0, "a_max": 400.0, "b_min": 0.0, "b_max": 1.0, "clip": True},
    "roi_size": [32, 64, 64],
    # Classification models see the whole volume resized to this.
    "input_size": [32, 64, 64],
}
DEFAULT_ARCHITECTURE_PARAMS: dict[str, dict[str, Any]] = {
    "unet": {"channels": [16, 32, 64, 128], "strides": [2, 2, 2], "num_res_units": 1, "dropout": 0.1},
    "segresnet": {"init_filters": 8, "dropout": 0.1},
    "densenet121": {"spatial_dims": 3, "dropout": 0.1},
}
DEFAULT_POSTPROCESSING: dict[str, Any] = {"threshold": 0.5, "min_voxels": 8, "max_components": 10}
DEFAULT_TRAINING: dict[str, Any] = {
    "epochs": 20,
    "learning_rate": 1e-3,
    "batch_size": 2,
    "patch_size": [16, 32, 32],
    "samples_per_case": 4,
    "validation_fraction": 0.25,
    "augment": True,
}


def pick_device() -> tuple[torch.device, str]:
    """The device and the sentence the job shows about it."""
    if torch.cuda.is_available():
        return torch.device("cuda"), f"ran on GPU {torch.cuda.get_device_name(0)}"
    return torch.device("cpu"), "no GPU: ran on CPU"


# --- Networks ------------------------------------------------------------------------------------------


def build_network(architecture: str, params: dict[str, Any], *, out_channels: int = 2) -> torch.nn.Module:
    merged = {**DEFAULT_ARCHITECTURE_PARAMS.get(architecture, {}), **params}
    if architecture == "unet":
        channels = tuple(int(c) for c in merged["channels"])
        strides = tuple(int(s) for s in merged.get("strides") or [2] * (len(channels) - 1))
        return UNet(
            spatial_dims=3,
            in_channels=int(merged.get("in_channels", 1)),  # 3 for an interactive model: image + guidance
            out_channels=out_channels,
            channels=channels,
            strides=strides,
            num_res_units=int(merged["num_res_units"]),
            dropout=float(merged["dropout"]),
        )
    if architecture == "segresnet":
        return SegResNet(
            spatial_dims=3,
            in_channels=1,
            out_channels=out_channels,
            init_filters=int(merged["init_filters"]),
            dropout_prob=float(merged["dropout"]),
        )
    if architecture == "densenet121":
        # Width and depth are parameters too, so that tests and CPU demos can run a narrow DenseNet.
        extra: dict[str, Any] = {k: merged[k] for k in ("init_features", "growth_rate") if k in merged}
        if "block_config" in merged:
            extra["block_config"] = tuple(int(n) for n in merged["block_config"])
        return DenseNet121(
            spatial_dims=int(merged["spatial_dims"]),
            in_channels=1,
            out_channels=out_channels,
            dropout_prob=float(merged["dropout"]),
            **extra,
        )
    raise ValueError(f"unknown architecture {architecture!r}")


def weights_to_bytes(model: torch.nn.Module) -> bytes:
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
    return buffer.getvalue()


def weights_from_bytes(model: torch.nn.Module, data: bytes) -> torch.nn.Module:
    state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model


# --- Preprocessing -------------------------------------------------------------------------------------


def preprocessing_spec(spec: dict[str, Any] | None) -> dict[str, Any]:
    merged = {**DEFAULT_PREPROCESSING, **(spec or {})}
    merged["intensity"] = {**DEFAULT_PREPROCESSING["intensity"], **(spec or {}).get("intensity", {})}
    return merged


def resampled_shape(shape: Sequence[int], spacing: Sequence[float], spec: dict[str, Any]) -> tuple[int, int, int]:
    target = spec.get("spacing")
    if not target:
        return (int(shape[0]), int(shape[1]), int(shape[2]))
    a, b, c = (max(1, round(n * s / t)) for n, s, t in zip(shape, spacing, target, strict=True))
    return (a, b, c)


def preprocess(array: np.ndarray, spacing: Sequence[float], spec: dict[str, Any]) -> torch.Tensor:
    """(slices, rows, columns) modality units -> (1, D, H, W) float tensor, as the model saw in training."""
    intensity = spec["intensity"]
    steps: list[Any] = [
        ScaleIntensityRange(
            a_min=intensity["a_min"],
            a_max=intensity["a_max"],
            b_min=intensity["b_min"],
            b_max=intensity["b_max"],
            clip=intensity["clip"],
        )
    ]
    shape = resampled_shape(array.shape, spacing, spec)
    if shape != tuple(array.shape):
        steps.append(Resize(spatial_size=shape, mode="trilinear"))
    out = Compose(steps)(torch.as_tensor(array[None], dtype=torch.float32))
    return torch.as_tensor(out, dtype=torch.float32)


def restore_shape(prob: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Resample a (C, D, H, W) probability map back onto the series' own grid."""
    if tuple(prob.shape[1:]) == tuple(shape):
        return prob
    return torch.as_tensor(Resize(spatial_size=tuple(shape), mode="trilinear")(prob))


# --- Segmentation inference and post-processing ----------------------------------------------------------


def _pad_roi(roi: Sequence[int], shape: Sequence[int]) -> tuple[int, ...]:
    return tuple(int(min(r, s)) if s >= 8 else int(r) for r, s in zip(roi, shape, strict=True))


def segment(
    model: torch.nn.Module,
    image: torch.Tensor,
    *,
    roi_size: Sequence[int],
    device: torch.device,
    overlap: float = 0.25,
    sw_batch_size: int = 4,
    dropout: bool = False,
) -> torch.Tensor:
    """Softmax probabilities (C, D, H, W) by MONAI sliding-window inference."""
    model.eval()
    if dropout:  # Monte Carlo dropout: dropout layers sample, everything else is in inference mode
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout | torch.nn.Dropout3d | torch.nn.AlphaDropout):
                module.train()
    with torch.no_grad():
        logits = sliding_window_inference(
            image[None].to(device),
            roi_size=tuple(int(r) for r in roi_size),
            sw_batch_size=sw_batch_size,
            predictor=model,
            overlap=overlap,
            mode="gaussian",
        )
        assert isinstance(logits, torch.Tensor)
        return torch.softmax(logits[0], dim=0).cpu()


@dataclass
class Component:
    label: int
    voxels: int
    volume_mm3: float
    bbox: tuple[int, int, int, int, int, int]  # z0, y0, x0, z1, y1, x1 (end-exclusive)
    largest_slice: int
    box2d: dict[str, int]  # x, y, width, height on the largest slice
    diameter_mm: float
    score: float


@dataclass
class Segmentation:
    mask: np.ndarray  # uint8, the segment value where kept
    components: list[Component] = field(default_factory=list)
    max_probability: float = 0.0


def postprocess(
    prob: np.ndarray, *, spacing: Sequence[float], segment_value: int = 1, options: dict[str, Any] | None = None
) -> Segmentation:
    """Threshold, drop components smaller than ``min_voxels``, keep the ``max_components`` largest."""
    opts = {**DEFAULT_POSTPROCESSING, **(options or {})}
    binary = prob >= float(opts["threshold"])
    labels, count = ndimage.label(binary)
    mask = np.zeros(prob.shape, dtype=np.uint8)
    if count == 0:
        return Segmentation(mask=mask, max_probability=float(prob.max(initial=0.0)))
    sizes = ndimage.sum_labels(binary, labels, index=np.arange(1, count + 1))
    order = [int(i) + 1 for i in np.argsort(-sizes) if sizes[i] >= int(opts["min_voxels"])]
    order = order[: int(opts["max_components"])]
    voxel_mm3 = float(np.prod(spacing))
    slices = ndimage.find_objects(labels)
    components = []
    for number in order:
        sl = slices[number - 1]
        assert sl is not None
        region = labels[sl] == number
        mask[sl][region] = segment_value
        per_slice = region.reshape(region.shape[0], -1).sum(axis=1)
        z_local = int(np.argmax(per_slice))
        plane = region[z_local]
        ys, xs = np.nonzero(plane)
        y0, x0 = int(ys.min()) + sl[1].start, int(xs.min()) + sl[2].start
        height, width = int(ys.max() - ys.min() + 1), int(xs.max() - xs.min() + 1)
        diameter = math.hypot(height * float(spacing[1]), width * float(spacing[2]))
        components.append(
            Component(
                label=number,
                voxels=int(region.sum()),
                volume_mm3=float(region.sum()) * voxel_mm3,
                bbox=(sl[0].start, sl[1].start, sl[2].start, sl[0].stop, sl[1].stop, sl[2].stop),
                largest_slice=z_local + sl[0].start,
                box2d={"x": x0, "y": y0, "width": width, "height": height},
                diameter_mm=round(min(diameter, float(np.hypot(*plane.shape)) * max(spacing[1:])), 2),
                score=float(prob[sl][region].mean()),
            )
        )
    return Segmentation(mask=mask, components=components, max_probability=float(prob.max(initial=0.0)))


# --- Uncertainty -------------------------------------------------------------------------------------------


def binary_entropy(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return -(p * np.log(p) + (1 - p) * np.log(1 - p))


@dataclass
class Uncertainty:
    score: float  # what the strategy ranks by: mean entropy of the mean foreground probability, top voxels
    variance: float  # mean variance across passes over the same voxels
    method: str
    mean_probability: np.ndarray


def uncertainty(
    model: torch.nn.Module,
    image: torch.Tensor,
    *,
    roi_size: Sequence[int],
    device: torch.device,
    passes: int = 4,
    method: str = "mc_dropout",
    top_fraction: float = 0.01,
) -> Uncertainty:
    """Monte Carlo dropout (dropout sampled at inference) or test-time augmentation by flips.

    The score averages the entropy over the ``top_fraction`` most uncertain voxels, so a large easy
    background does not dilute the doubt about one lesion."""
    samples = []
    for k in range(passes):
        if method == "tta":
            axes = [a + 1 for a in range(3) if (k >> a) & 1]
            flipped = torch.flip(image, dims=axes) if axes else image
            prob = segment(model, flipped, roi_size=roi_size, device=device)[1]
            samples.append((torch.flip(prob, dims=[a - 1 for a in axes]) if axes else prob).numpy())
        else:
            samples.append(segment(model, image, roi_size=roi_size, device=device, dropout=True)[1].numpy())
    stack = np.stack(samples)
    mean = stack.mean(axis=0)
    entropy = binary_entropy(mean).ravel()
    k = max(1, int(entropy.size * top_fraction))
    top = np.argpartition(entropy, -k)[-k:]
    variance = stack.reshape(passes, -1)[:, top].var(axis=0).mean()
    return Uncertainty(score=float(entropy[top].mean()), variance=float(variance), method=method, mean_probability=mean)


# --- Metrics -----------------------------------------------------------------------------------------------


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """Dice of two binary masks; 1.0 when both are empty (a correct 'no lesion')."""
    p, t = pred.astype(bool), truth.astype(bool)
    denominator = int(p.sum()) + int(t.sum())
    if denominator == 0:
        return 1.0
    return 2.0 * float(np.logical_and(p, t).sum()) / denominator


# --- Training ----------------------------------------------------------------------------------------------


@dataclass
class Example:
    case_id: int
    image: torch.Tensor  # (1, D, H, W), preprocessed
    target: np.ndarray  # segmentation: (D, H, W) 0/1 on the preprocessed grid; classification: shape ()
    spacing: tuple[float, float, float] | None = None  # mm between voxels of ``image`` (z, y, x), when known


def _augment(patch_size: Sequence[int], enabled: bool) -> Compose:
    steps: list[Any] = [
        SpatialPadd(keys=["image", "label"], spatial_size=tuple(patch_size)),
        RandSpatialCropd(keys=["image", "label"], roi_size=tuple(patch_size), random_size=False),
    ]
    if enabled:
        steps += [
            RandFlipd(keys=["image", "label"], prob=0.5, spatial_axis=2),
            RandFlipd(keys=["image", "label"], prob=0.5, spatial_axis=1),
            RandRotate90d(keys=["image", "label"], prob=0.5, spatial_axes=(1, 2)),
            RandScaleIntensityd(keys=["image"], factors=0.1, prob=0.5),
            RandShiftIntensityd(keys=["image"], offsets=0.05, prob=0.5),
        ]
    return Compose(steps)


def _foreground_biased_crops(example: Example, patch: Sequence[int], count: int, rng: np.random.Generator) -> list[Any]:
    """Half of the crops centred on a lesion voxel (when there is one), half anywhere: lesions are small."""
    label = torch.as_tensor(example.target[None].astype(np.float32))
    crops = []
    foreground = np.argwhere(example.target > 0)
    shape = example.image.shape[1:]
    for k in range(count):
        if len(foreground) and k % 2 == 0:
            centre = foreground[rng.integers(len(foreground))]
            start = [int(np.clip(c - p // 2, 0, max(s - p, 0))) for c, p, s in zip(centre, patch, shape, strict=True)]
            sl = tuple(slice(s, s + p) for s, p in zip(start, patch, strict=True))
            crops.append({"image": example.image[(slice(None), *sl)], "label": label[(slice(None), *sl)]})
        else:
            crops.append({"image": example.image, "label": label})
    return crops


ProgressFn = Callable[[dict[str, Any]], None]


def train_segmentation(
    model: torch.nn.Module,
    train: list[Example],
    validation: list[Example],
    *,
    params: dict[str, Any],
    roi_size: Sequence[int],
    device: torch.device,
    seed: int,
    on_epoch: ProgressFn | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Train with Dice+CE on patches; after each epoch, validation Dice with sliding-window inference.
    Returns the per-epoch history and the weights of the best epoch (by validation Dice)."""
    opts = {**DEFAULT_TRAINING, **params}
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    augment = _augment(opts["patch_size"], bool(opts["augment"]))
    augment.set_random_state(seed=seed)
    model.to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=float(opts["learning_rate"]))
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    history: list[dict[str, Any]] = []
    best_state: dict[str, Any] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    best = -1.0
    batch = int(opts["batch_size"])
    for epoch in range(1, int(opts["epochs"]) + 1):
        model.train()
        samples = []
        for example in train:
            for crop in _foreground_biased_crops(example, opts["patch_size"], int(opts["samples_per_case"]), rng):
                samples.append(augment(crop))
        order = rng.permutation(len(samples))
        losses = []
        for start in range(0, len(order), batch):
            chunk = [samples[i] for i in order[start : start + batch]]
            images = torch.stack([torch.as_tensor(c["image"]) for c in chunk]).to(device)
            labels = torch.stack([torch.as_tensor(c["label"]) for c in chunk]).to(device)
            optimiser.zero_grad()
            loss = loss_fn(model(images), labels)
            loss.backward()
            optimiser.step()
            losses.append(float(loss.item()))
        metric = evaluate_segmentation(model, validation, roi_size=roi_size, device=device) if validation else None
        row = {"epoch": epoch, "loss": round(float(np.mean(losses)) if losses else 0.0, 5)}
        if metric is not None:
            row["val_dice"] = round(metric["dice"], 5)
        history.append(row)
        score = metric["dice"] if metric is not None else -float(row["loss"])
        if score > best:
            best = score
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        if on_epoch is not None:
            on_epoch(row)
    model.load_state_dict(best_state)
    return history, best_state


def evaluate_segmentation(
    model: torch.nn.Module,
    examples: list[Example],
    *,
    roi_size: Sequence[int],
    device: torch.device,
    postprocessing: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Mean Dice (post-processed, per case) and per-case values."""
    per_case = {}
    for example in examples:
        prob = segment(model, example.image, roi_size=roi_size, device=device)[1].numpy()
        seg = postprocess(prob, spacing=(1.0, 1.0, 1.0), options=postprocessing)
        per_case[str(example.case_id)] = round(dice(seg.mask > 0, example.target > 0), 5)
    values = list(per_case.values())
    return {"dice": float(np.mean(values)) if values else 0.0, "cases": len(values), "per_case": per_case}


# --- Classification ------------------------------------------------------------------------------------------


def classify_input(image: torch.Tensor, spec: dict[str, Any]) -> torch.Tensor:
    return torch.as_tensor(Resize(spatial_size=tuple(spec["input_size"]), mode="trilinear")(image))


def train_classification(
    model: torch.nn.Module,
    train: list[Example],
    validation: list[Example],
    *,
    params: dict[str, Any],
    device: torch.device,
    seed: int,
    on_epoch: ProgressFn | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    opts = {**DEFAULT_TRAINING, **params}
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model.to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=float(opts["learning_rate"]))
    loss_fn = torch.nn.CrossEntropyLoss()
    history: list[dict[str, Any]] = []
    best, best_state = -1.0, {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    for epoch in range(1, int(opts["epochs"]) + 1):
        model.train()
        losses = []
        for index in rng.permutation(len(train)):
            example = train[index]
            image = example.image[None].to(device)
            if opts["augment"] and rng.random() < 0.5:
                image = torch.flip(image, dims=[4])
            optimiser.zero_grad()
            loss = loss_fn(model(image), torch.as_tensor([int(example.target)], device=device))
            loss.backward()
            optimiser.step()
            losses.append(float(loss.item()))
        metric = evaluate_classification(model, validation, device=device) if validation else None
        row = {"epoch": epoch, "loss": round(float(np.mean(losses)) if losses else 0.0, 5)}
        if metric is not None:
            row["val_accuracy"] = round(metric["accuracy"], 5)
        history.append(row)
        score = metric["accuracy"] if metric is not None else -float(row["loss"])
        if score > best:
            best, best_state = score, {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        if on_epoch is not None:
            on_epoch(row)
    model.load_state_dict(best_state)
    return history, best_state


def evaluate_classification(model: torch.nn.Module, examples: list[Example], *, device: torch.device) -> dict[str, Any]:
    model.eval()
    per_case = {}
    with torch.no_grad():
        for example in examples:
            predicted = int(torch.argmax(model(example.image[None].to(device)), dim=1).item())
            per_case[str(example.case_id)] = float(predicted == int(example.target))
    values = list(per_case.values())
    return {"accuracy": float(np.mean(values)) if values else 0.0, "cases": len(values), "per_case": per_case}


def saliency(model: torch.nn.Module, image: torch.Tensor, *, class_index: int, device: torch.device) -> np.ndarray:
    """Grad-CAM of a DenseNet121 for ``class_index``, on the model's input grid, scaled to [0, 1]."""
    from monai.visualize import GradCAM

    model.eval()
    cam = GradCAM(nn_module=model, target_layers="class_layers.relu")
    heat = cam(x=image[None].to(device), class_idx=class_index)
    array = heat[0, 0].detach().cpu().numpy().astype(np.float32)
    span = float(array.max() - array.min())
    return (array - array.min()) / span if span > 0 else np.zeros_like(array)
