"""MONAI bundle import (issue 17): administrators only, checksum, config allow-list, dry run; refusals store nothing.

The bundles are built here, in memory (a tiny MONAI UNet and its weights); nothing is downloaded."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from django.contrib.auth.models import User
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from monai.networks.nets import UNet

from annotation.models import Case, Project
from inference import registry, services
from inference.models import ModelStatus, ModelVersion, ModelVersionEvent
from jobs.models import JobStatus
from jobs.services import run_job

pytestmark = pytest.mark.django_db

NETWORK = {"spatial_dims": 3, "in_channels": 1, "channels": [4, 8], "strides": [2], "num_res_units": 0}
CONFIG: dict[str, Any] = {
    "num_classes": 2,
    "network_def": {"_target_": "UNet", **NETWORK, "out_channels": "@num_classes"},  # a short name and a reference
    "network": "$@network_def.to(@device)",  # never evaluated: only network_def is built
    "device": "$torch.device('cpu')",
    "inferer": {"_target_": "monai.inferers.SlidingWindowInferer", "roi_size": [16, 32, 32]},
}
METADATA = {
    "name": "tiny_nodule_segmentation",
    "version": "0.1.0",
    "monai_version": "1.6.1",
    "network_data_format": {
        "inputs": {"image": {"type": "image", "num_channels": 1, "spatial_shape": [16, 32, 32]}},
        "outputs": {"pred": {"type": "image", "num_channels": 2}},
    },
}


def make_bundle(
    config: dict[str, Any] | None = None, *, metadata: dict[str, Any] | bool | None = None, out_channels: int = 2
) -> bytes:
    network = UNet(**{**NETWORK, "out_channels": out_channels})  # type: ignore[arg-type]
    weights = io.BytesIO()
    torch.save(network.state_dict(), weights)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        if metadata is not False:
            archive.writestr(
                "tiny_nodule_segmentation/configs/metadata.json",
                json.dumps(metadata if isinstance(metadata, dict) else METADATA),
            )
        archive.writestr("tiny_nodule_segmentation/configs/inference.json", json.dumps(config or CONFIG))
        archive.writestr("tiny_nodule_segmentation/models/model.pt", weights.getvalue())
    return buffer.getvalue()


def upload(client: Client, project: Project, data: bytes, sha256: str | None = None) -> Any:
    return client.post(
        f"/api/v1/projects/{project.slug}/models/import-bundle/",
        {
            "file": SimpleUploadedFile("bundle.zip", data, content_type="application/zip"),
            "sha256": sha256 if sha256 is not None else hashlib.sha256(data).hexdigest(),
            "task_type": "segmentation",
        },
    )


def stored_models(project: Project) -> list[str]:
    folder = f"models/{project.slug}"
    return default_storage.listdir(folder)[1] if default_storage.exists(folder) else []


def test_an_administrator_imports_a_bundle_as_a_candidate_a_manager_promotes_and_it_prelabels(
    tiny_project: Project,
    reading_cases: list[Case],
    admin: User,
    users: dict[str, User],
    client_for: Callable[..., Client],
) -> None:
    data = make_bundle()
    response = upload(client_for(admin), tiny_project, data)
    assert response.status_code == 201, response.json()
    body = response.json()
    version = ModelVersion.objects.get(pk=body["id"])
    assert (version.architecture, version.status, version.task_type) == ("monai_bundle", "candidate", "segmentation")
    assert version.weights_sha256 == hashlib.sha256(data).hexdigest() and not version.demo
    assert version.metrics["dry_run"]["output_shape"] == [1, 2, 16, 64, 64]
    assert version.training_snapshot["metadata"]["name"] == "tiny_nodule_segmentation"
    event = ModelVersionEvent.objects.filter(model_version=version, to_status="candidate").get()
    assert event.actor == admin and "dry run passed" in event.reason
    assert registry.load_network(version) is not None  # checksum and config checked again on load

    promoted = client_for(users["manager"]).post(f"/api/v1/models/{version.pk}/promote/", {}, "application/json")
    assert promoted.status_code == 200 and promoted.json()["status"] == ModelStatus.ACTIVE
    job = services.prelabel_start(project=tiny_project, actor=None, case_ids=[reading_cases[0].pk])
    assert run_job(job.pk, services.prelabel_handler) == JobStatus.SUCCEEDED


def _with(path: list[str | int], value: Any) -> dict[str, Any]:
    config = copy.deepcopy(CONFIG)
    node: Any = config
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return config


REFUSED = {
    "a handler running a shell command": (
        _with(["handlers"], [{"_target_": "os.system", "command": "touch /tmp/learned-bundle-pwned"}]),
        "'os.system' is not allowed",
    ),
    "a target through a reference": (
        {**_with(["handlers"], [{"_target_": "@runner"}]), "runner": "builtins.exec"},
        "-> @runner",
    ),
    "a target as an expression": (
        _with(["inferer", "_target_"], "$__import__('os').system"),
        "is an expression or macro",
    ),
    "torch's code loader": (_with(["loader"], {"_target_": "torch.hub.load", "repo_or_dir": "x/y"}), "torch.hub.load"),
    "monai's importer": (
        _with(["loader"], {"_target_": "monai.utils.optional_import", "module": "os"}),
        "monai.utils.optional_import",
    ),
    "a private torch module": (_with(["loader"], {"_target_": "torch._C._jit_pass_inline"}), "is not allowed"),
    "an expression inside the network": (
        _with(["network_def", "channels"], "$[open('/tmp/learned-bundle-pwned', 'w'), 4][1:]"),
        "evaluated as Python",
    ),
    "an expression the network refers to": (
        {**CONFIG, "num_classes": "$__import__('os').getpid() and 2"},
        "@num_classes",
    ),
    "a debug mode in the network": (_with(["network_def", "_mode_"], "debug"), "_mode_ 'debug'"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_bundle_config_instantiating_anything_but_monai_or_torch_is_refused_and_nothing_stored(
    case: str, tiny_project: Project, admin: User, client_for: Callable[..., Client]
) -> None:
    config, reason = REFUSED[case]
    response = upload(client_for(admin), tiny_project, make_bundle(config))
    assert response.status_code == 400, response.json()
    assert reason in response.json()["detail"] and response.json()["code"] == "bundle_refused"
    assert not ModelVersion.objects.exists() and stored_models(tiny_project) == []
    assert not Path("/tmp/learned-bundle-pwned").exists()


def test_a_wrong_checksum_a_reader_or_a_manager_and_a_broken_bundle_are_refused_with_nothing_stored(
    tiny_project: Project, admin: User, users: dict[str, User], client_for: Callable[..., Client]
) -> None:
    data = make_bundle()
    wrong = upload(client_for(admin), tiny_project, data, sha256="0" * 64)
    assert wrong.status_code == 400 and wrong.json()["code"] == "checksum_mismatch"
    assert hashlib.sha256(data).hexdigest() in wrong.json()["detail"]
    malformed = upload(client_for(admin), tiny_project, data, sha256="not-a-checksum")
    assert malformed.status_code == 400
    assert malformed.json()["sha256"] == ["The SHA-256 must be 64 hexadecimal digits"]
    for user in (users["manager"], users["annotator"]):  # managers promote; only administrators import
        denied = upload(client_for(user), tiny_project, data)
        assert denied.status_code == 403 and "administrator" in denied.json()["detail"]
    assert upload(client_for(users["outsider"]), tiny_project, data).status_code == 404
    no_metadata = upload(client_for(admin), tiny_project, make_bundle(metadata=False))
    assert no_metadata.status_code == 400 and "metadata.json" in no_metadata.json()["detail"]
    one_class = upload(client_for(admin), tiny_project, make_bundle(_with(["num_classes"], 1), out_channels=1))
    assert one_class.status_code == 400 and "Dry run" in one_class.json()["detail"]
    not_zip = upload(client_for(admin), tiny_project, b"plain text")
    assert not_zip.status_code == 400 and "not a zip" in not_zip.json()["detail"]
    assert not ModelVersion.objects.exists() and stored_models(tiny_project) == []
