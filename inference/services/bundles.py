"""Import of a MONAI bundle (issue 17): a team's licensed weights in MONAI's bundle format, as a model version.

Administrators only. The zip must match the SHA-256 the administrator gives; its ``configs/metadata.json`` and
inference config are read; the config may instantiate MONAI and torch classes only, because a bundle config is
code: ``_target_`` names any importable callable and ``$`` strings are evaluated as Python. So, before anything
is built:

- every ``_target_`` in the whole config (nested, and followed through ``@`` references) must name a class in
  ``monai.*`` or ``torch.*`` (or a MONAI short name), outside the entry points that load or run other code
  (``torch.hub``, ``torch.jit``, ``monai.bundle``, ``monai.utils`` ...); an expression or a macro as a target is
  refused;
- the network definition, and everything it refers to, may hold no ``$`` expression, ``%`` macro or
  ``_mode_`` other than the default; only ``network_def`` is ever instantiated (the bundle's own workflows,
  pre- and post-processing never run here: the platform's do).

Then the network is built, its weights (``models/model.pt``) loaded without unpickling code, and it runs once on a
synthetic CT volume (a dry run). Only then is a version written, as a candidate a manager may promote; a refused
bundle writes nothing, neither a row nor a file."""

from __future__ import annotations

import hashlib
import io
import json
import time
import zipfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import transaction

from annotation.models import Project
from annotation.services import current_schema
from config.errors import ApplicationError, PermissionDeniedError
from config.types import User
from inference import registry
from inference.models import Architecture, ModelVersion, TaskType
from inference.services.data import default_label_map

if TYPE_CHECKING:
    import torch

MAX_BUNDLE_BYTES = 2 * 1024**3
ALLOWED_ROOTS = ("monai", "torch")
# Inside the allowed packages, the entry points that download, unpickle, compile or import other code.
DENIED_PREFIXES = (
    "torch.hub",
    "torch.jit",
    "torch.package",
    "torch.load",
    "torch.compile",
    "torch.ops",
    "torch.utils.cpp_extension",
    "torch.utils.data",
    "torch.distributed",
    "torch.multiprocessing",
    "torch.classes",
    "monai.bundle",
    "monai.utils",
    "monai.apps",
    "monai.config",
    "monai.data",
    "monai.engines",
    "monai.handlers",
    "monai.fl",
    "monai.auto3dseg",
)
CONFIG_NAMES = ("inference.json", "inference.yaml", "inference.yml", "train.json", "train.yaml")


class BundleRefusedError(ApplicationError):
    code = "bundle_refused"


@dataclass
class Bundle:
    name: str
    metadata: dict[str, Any]
    config: dict[str, Any]
    config_name: str
    weights: bytes


# --- Reading the zip -----------------------------------------------------------------------------------------------


def read_bundle(data: bytes) -> Bundle:
    """The bundle's metadata, inference config and weights, from the zip's bytes (nothing is extracted to disk)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise BundleRefusedError("The file is not a zip archive (a MONAI bundle is a zip)") from exc
    names = [n for n in archive.namelist() if not n.endswith("/")]

    def member(suffix: str) -> str | None:
        found = sorted((n for n in names if n == suffix or n.endswith("/" + suffix)), key=len)
        return found[0] if found else None

    meta_name = member("configs/metadata.json")
    if meta_name is None:
        raise BundleRefusedError("The bundle has no configs/metadata.json")
    try:
        metadata = json.loads(archive.read(meta_name))
    except ValueError as exc:
        raise BundleRefusedError(f"configs/metadata.json is not valid JSON: {exc}") from exc
    if not isinstance(metadata, dict):
        raise BundleRefusedError("configs/metadata.json must hold an object")
    config_name = next((n for c in CONFIG_NAMES if (n := member(f"configs/{c}")) is not None), None)
    if config_name is None:
        raise BundleRefusedError(
            f"The bundle has no inference config (one of configs/{', configs/'.join(CONFIG_NAMES)})"
        )
    config = _parse_config(archive.read(config_name), config_name)
    weights_name = member("models/model.pt")
    if weights_name is None:
        raise BundleRefusedError("The bundle has no weights (models/model.pt)")
    top = meta_name.split("/")[0] if "/" in meta_name.removesuffix("configs/metadata.json") else ""
    name = str(metadata.get("name") or top or "bundle")[:100]
    return Bundle(name, metadata, config, config_name.rsplit("/", 1)[-1], archive.read(weights_name))


def _parse_config(raw: bytes, name: str) -> dict[str, Any]:
    try:
        if name.endswith(".json"):
            parsed = json.loads(raw)
        else:
            import yaml

            parsed = yaml.safe_load(raw)  # safe_load: YAML tags cannot build Python objects either
    except ValueError as exc:
        raise BundleRefusedError(f"{name} cannot be parsed: {exc}") from exc
    except Exception as exc:  # yaml.YAMLError and friends
        raise BundleRefusedError(f"{name} cannot be parsed: {type(exc).__name__}: {exc}") from exc
    if not isinstance(parsed, dict):
        raise BundleRefusedError(f"{name} must hold an object")
    return parsed


# --- Checking the config -----------------------------------------------------------------------------------------


def _resolve_id(config: dict[str, Any], ref: str) -> Any:
    """The value at a MONAI config id ("a::b::0", "a#b" in older bundles)."""
    node: Any = config
    for part in ref.replace("#", "::").split("::"):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise BundleRefusedError(f"The reference @{ref} names nothing in the config")
    return node


def _target_allowed(name: str) -> bool:
    if not name or any(not part.isidentifier() for part in name.split(".")):
        return False
    if "." not in name:  # a MONAI short name, as the bundle parser looks it up
        from monai.bundle.config_item import ComponentLocator

        module = ComponentLocator().get_component_module_name(name)
        modules = [module] if isinstance(module, str) else list(module or [])
        return bool(modules) and all(_target_allowed(f"{m}.{name}") for m in modules)
    if any(part.startswith("_") for part in name.split(".")):
        return False  # private modules and dunders (torch._C, __builtins__ ...)
    root = name.split(".")[0]
    if root not in ALLOWED_ROOTS:
        return False
    return not any(name == p or name.startswith(p + ".") for p in DENIED_PREFIXES)


def _check_target(config: dict[str, Any], value: Any, path: str, seen: tuple[str, ...] = ()) -> None:
    if not isinstance(value, str):
        raise BundleRefusedError(f"{path}: _target_ must name a class, not {type(value).__name__}")
    if value.startswith("@"):
        ref = value[1:]
        if ref in seen:
            raise BundleRefusedError(f"{path}: _target_ reference @{ref} refers to itself")
        _check_target(config, _resolve_id(config, ref), f"{path} -> @{ref}", (*seen, ref))
        return
    if value.startswith(("$", "%")):
        raise BundleRefusedError(
            f"{path}: _target_ {value[:60]!r} is an expression or macro; only MONAI and torch classes"
        )
    if not _target_allowed(value):
        raise BundleRefusedError(
            f"{path}: _target_ {value!r} is not allowed; a bundle may only instantiate MONAI and torch classes"
        )


def check_targets(config: dict[str, Any]) -> int:
    """Every ``_target_`` of the whole config names an allowed class; returns how many were checked."""
    count = 0

    def walk(node: Any, path: str) -> None:
        nonlocal count
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "_target_":
                    count += 1
                    _check_target(config, value, f"{path}::_target_" if path else "_target_")
                else:
                    walk(value, f"{path}::{key}" if path else str(key))
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{path}::{index}")

    walk(config, "")
    return count


def check_network_definition(config: dict[str, Any], root: str = "network_def") -> None:
    """``network_def`` and everything it refers to: no expression, macro or special mode (nothing evaluated)."""
    if root not in config:
        raise BundleRefusedError("The bundle config has no network_def to build")
    visited: set[str] = set()

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            mode = node.get("_mode_", "default")
            if mode != "default":
                raise BundleRefusedError(f"{path}: _mode_ {mode!r} is not allowed in the network definition")
            for key, value in node.items():
                walk(value, f"{path}::{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{path}::{index}")
        elif isinstance(node, str):
            if node.startswith(("$", "%")):
                raise BundleRefusedError(
                    f"{path}: {node[:60]!r} is evaluated as Python or loads another file; the network definition "
                    "may hold plain values and @ references only"
                )
            if node.startswith("@"):
                ref = node[1:]
                if ref not in visited:
                    visited.add(ref)
                    walk(_resolve_id(config, ref), f"@{ref}")

    walk(config[root], root)


def build_network(bundle_config: dict[str, Any]) -> torch.nn.Module:
    """``network_def``, instantiated by MONAI's parser after the checks above (nothing else is evaluated)."""
    import torch
    from monai.bundle import ConfigParser

    check_targets(bundle_config)
    check_network_definition(bundle_config)
    parser = ConfigParser(bundle_config)
    try:
        network = parser.get_parsed_content("network_def", instantiate=True)
    except Exception as exc:
        raise BundleRefusedError(f"network_def does not build: {type(exc).__name__}: {str(exc)[:300]}") from exc
    if not isinstance(network, torch.nn.Module):
        raise BundleRefusedError(f"network_def builds a {type(network).__name__}, not a torch network")
    return network


def load_weights(network: torch.nn.Module, weights: bytes) -> torch.nn.Module:
    import torch

    try:
        state = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)  # tensors only, no code
        if isinstance(state, dict) and isinstance(state.get("model"), dict):
            state = state["model"]  # a checkpoint with the model's state under "model"
        network.load_state_dict(state)
    except Exception as exc:
        raise BundleRefusedError(
            f"models/model.pt does not load into network_def: {type(exc).__name__}: {str(exc)[:300]}"
        ) from exc
    return network


def network_from_bundle_bytes(data: bytes) -> torch.nn.Module:
    """The network of a stored bundle (its SHA-256 is checked by the registry before), checked again as on import."""
    bundle = read_bundle(data)
    return load_weights(build_network(bundle.config), bundle.weights)


# --- Dry run -------------------------------------------------------------------------------------------------------


def _input_channels(metadata: dict[str, Any]) -> int:
    inputs = (metadata.get("network_data_format") or {}).get("inputs") or {}
    first: Any = next(iter(inputs.values()), {}) if isinstance(inputs, dict) else {}
    return int(first.get("num_channels", 1)) if isinstance(first, dict) else 1


def dry_run(network: torch.nn.Module, *, in_channels: int, roi_size: list[int]) -> dict[str, Any]:
    """Run the network once on a synthetic chest CT (lung window), by sliding windows of ``roi_size``: it must
    answer a finite foreground/background map of the input's size."""
    import numpy as np
    import torch
    from monai.inferers import sliding_window_inference

    from imaging.synthetic import generate_ct_study
    from inference import engine

    study = generate_ct_study(seed=0, rows=64, columns=64, slices=16, n_lesions=1)
    image = engine.preprocess(study.hu.astype(np.float32), (1.0, 1.0, 1.0), engine.preprocessing_spec({}))
    net_in = torch.cat([image, torch.zeros((in_channels - 1, *image.shape[1:]))]) if in_channels > 1 else image
    started = time.perf_counter()
    network.eval()
    try:
        with torch.no_grad():
            out = sliding_window_inference(net_in[None], roi_size=tuple(roi_size), sw_batch_size=1, predictor=network)
    except Exception as exc:
        raise BundleRefusedError(
            f"Dry run on a synthetic volume failed: {type(exc).__name__}: {str(exc)[:300]}"
        ) from exc
    assert isinstance(out, torch.Tensor)
    if tuple(out.shape[2:]) != tuple(image.shape[1:]) or out.shape[1] < 2:
        raise BundleRefusedError(
            f"Dry run: the network answered shape {tuple(out.shape)} for input {tuple(net_in[None].shape)}; a "
            "segmentation bundle must answer (1, classes >= 2, D, H, W)"
        )
    if not bool(torch.isfinite(out).all()):
        raise BundleRefusedError("Dry run: the network answered NaN or infinite values")
    return {
        "input_shape": list(net_in[None].shape),
        "output_shape": list(out.shape),
        "seconds": round(time.perf_counter() - started, 3),
        "volume": "synthetic chest CT, seed 0, 64 x 64 x 16",
    }


# --- The service ---------------------------------------------------------------------------------------------------


def bundle_import(
    *, project: Project, actor: User, data: bytes, sha256: str, task_type: str = TaskType.SEGMENTATION
) -> ModelVersion:
    """Check, dry-run and register a bundle as a candidate version (administrators only); nothing on refusal."""
    if not (actor.is_active and actor.is_superuser):
        raise PermissionDeniedError("Only an administrator may import a MONAI bundle")
    if task_type not in (TaskType.SEGMENTATION, TaskType.INTERACTIVE):
        raise ApplicationError(f"A bundle is imported as a segmentation or interactive model, not {task_type!r}")
    if len(data) > MAX_BUNDLE_BYTES:
        raise BundleRefusedError(f"The bundle is larger than {MAX_BUNDLE_BYTES // 1024**2} MiB")
    expected = sha256.strip().lower()
    digest = hashlib.sha256(data).hexdigest()
    if len(expected) != 64 or any(c not in "0123456789abcdef" for c in expected):
        raise ApplicationError("The SHA-256 must be 64 hexadecimal digits", code="bad_checksum")
    if digest != expected:
        raise BundleRefusedError(
            f"The bundle's SHA-256 is {digest}, not the {expected} you gave: refusing it", code="checksum_mismatch"
        )
    label_map = default_label_map(current_schema(project).definition)
    if "mask_label" not in label_map:
        raise ApplicationError(f"The schema of {project.slug!r} has no series mask label for a bundle's masks")
    bundle = read_bundle(data)
    network = load_weights(build_network(bundle.config), bundle.weights)
    in_channels = _input_channels(bundle.metadata)
    if task_type == TaskType.INTERACTIVE and in_channels != 3:
        raise BundleRefusedError(
            f"An interactive bundle takes image + positive + negative guidance (3 channels), not {in_channels}"
        )
    from inference import engine

    shape = ((bundle.metadata.get("network_data_format") or {}).get("inputs") or {}).get("image", {})
    roi = shape.get("spatial_shape") if isinstance(shape, dict) else None
    roi_size = (
        [int(r) for r in roi]
        if isinstance(roi, list) and len(roi) == 3 and all(isinstance(r, int) for r in roi)
        else [16, 64, 64]
    )
    result = dry_run(network, in_channels=in_channels, roi_size=roi_size)
    version_text = bundle.metadata.get("version", "?")
    with transaction.atomic():
        version = registry.model_version_create(
            project=project,
            task_type=task_type,
            architecture=Architecture.MONAI_BUNDLE,
            architecture_params={"bundle": bundle.name, "in_channels": in_channels, "config": bundle.config_name},
            preprocessing=engine.preprocessing_spec({"roi_size": roi_size}),
            label_map=label_map,
            training_params={"patch_size": roi_size} if task_type == TaskType.INTERACTIVE else {},
            parent=None,
            created_by=actor,
        )
        name, stored_digest = registry.store_weights(version, data)
        assert stored_digest == digest
        return registry.model_version_finish_training(
            version=version,
            weights_file=name,
            weights_sha256=digest,
            weights_bytes=len(data),
            snapshot={"source": "imported MONAI bundle", "metadata": bundle.metadata},
            metrics={"metric": None, "value": None, "dry_run": result},
            history=[],
            device="",
            reason=f"imported MONAI bundle {bundle.name!r} (version {version_text}), dry run passed",
            actor=actor,
        )
