"""Export a model version: TorchScript, ONNX, and a MONAI-bundle-style folder (as a zip)."""

from __future__ import annotations

import io
import json
import warnings
import zipfile
from typing import TYPE_CHECKING, Any

from inference import registry
from inference.models import ModelVersion, TaskType

if TYPE_CHECKING:
    import torch

# torch and MONAI load inside the functions (see inference.services): the API views import this module.

EXPORT_FORMATS = ("bundle", "torchscript", "onnx")


def _example_input(version: ModelVersion) -> torch.Tensor:
    import torch

    from inference import engine

    spec = engine.preprocessing_spec(version.preprocessing)
    size = spec["input_size"] if version.task_type == TaskType.CLASSIFICATION else spec["roi_size"]
    return torch.zeros((1, 1, *[int(n) for n in size]))


def torchscript_bytes(version: ModelVersion, model: torch.nn.Module) -> bytes:
    import torch

    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, _example_input(version))
    buffer = io.BytesIO()
    torch.jit.save(traced, buffer)
    return buffer.getvalue()


def onnx_bytes(version: ModelVersion, model: torch.nn.Module) -> bytes:
    import torch

    model.eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (_example_input(version),),
            buffer,  # type: ignore[arg-type]
            dynamo=False,
            input_names=["image"],
            output_names=["logits"],
        )
    return buffer.getvalue()


def bundle_metadata(version: ModelVersion) -> dict[str, Any]:
    import torch

    return {
        "name": f"{version.project.slug}-v{version.number}",
        "version": str(version.number),
        "task": version.task_type,
        "monai_version": __import__("monai").__version__,
        "pytorch_version": torch.__version__,
        "network_data_format": {
            "inputs": {
                "image": {"type": "image", "num_channels": 1, "spatial_shape": "sliding window", "dtype": "float32"}
            },
            "outputs": {"pred": {"type": "probabilities", "num_channels": registry.out_channels(version)}},
        },
        "weights_sha256": version.weights_sha256,
        "metrics": {k: v for k, v in version.metrics.items() if k != "per_case"},
        "training_snapshot": version.training_snapshot,
        "label_map": version.label_map,
    }


def inference_config(version: ModelVersion) -> dict[str, Any]:
    from inference import engine

    spec = engine.preprocessing_spec(version.preprocessing)
    intensity = spec["intensity"]
    network_name = {"unet": "UNet", "segresnet": "SegResNet", "densenet121": "DenseNet121"}[version.architecture]
    return {
        "network_def": {"_target_": network_name, **version.architecture_params},
        "preprocessing": {
            "_target_": "Compose",
            "transforms": [
                {"_target_": "EnsureChannelFirst"},
                {"_target_": "ScaleIntensityRange", **intensity},
                *([{"_target_": "Spacing", "pixdim": spec["spacing"]}] if spec.get("spacing") else []),
            ],
        },
        "inferer": {
            "_target_": "SlidingWindowInferer",
            "roi_size": spec["roi_size"],
            "overlap": 0.25,
            "mode": "gaussian",
        },
        "postprocessing": {**engine.DEFAULT_POSTPROCESSING, **version.training_params.get("postprocessing", {})},
        "orientation": spec["orientation"],
    }


def export_version(version: ModelVersion, fmt: str) -> tuple[bytes, str, str]:
    """(content, file name, media type). Loading checks the weights' SHA-256 first."""
    from inference import engine

    model = registry.load_network(version)
    stem = f"{version.project.slug}-v{version.number}"
    if fmt == "torchscript":
        return torchscript_bytes(version, model), f"{stem}.ts", "application/octet-stream"
    if fmt == "onnx":
        return onnx_bytes(version, model), f"{stem}.onnx", "application/octet-stream"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{stem}/configs/metadata.json", json.dumps(bundle_metadata(version), indent=2))
        archive.writestr(f"{stem}/configs/inference.json", json.dumps(inference_config(version), indent=2))
        archive.writestr(f"{stem}/models/model.pt", engine.weights_to_bytes(model))
        archive.writestr(f"{stem}/models/model.ts", torchscript_bytes(version, model))
        archive.writestr(f"{stem}/models/model.onnx", onnx_bytes(version, model))
        archive.writestr(
            f"{stem}/docs/README.md",
            f"# {stem}\n\nExported from MedLabel QA. Weights SHA-256 {version.weights_sha256}.\n",
        )
    return buffer.getvalue(), f"{stem}.zip", "application/zip"
