"""Talking to an upstream DICOMweb PACS through dicomweb-client: proxying reads, forwarding stores,
registering upstream studies in the index, and pulling studies into the local store.

Every call has the source's timeout; a PACS that is down is a 502 and one that is slow a 504, each with
a message naming the PACS, so a reader's request never hangs.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import pydicom
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset

from config.errors import NotFoundError, UpstreamTimeoutError, UpstreamUnavailableError
from imaging.models import DicomSource

T = TypeVar("T")


def client_for(source: DicomSource) -> DICOMwebClient:
    session = requests.Session()
    if source.username:
        session.auth = (source.username, source.password)
    client = DICOMwebClient(url=source.base_url.rstrip("/"), session=session, timeout=source.timeout_seconds)
    # dicomweb-client retries some errors with back-off by default; a proxy must answer promptly instead.
    client.set_http_retry_params(retry=False)
    return client


@contextmanager
def upstream_errors(source: DicomSource) -> Iterator[None]:
    try:
        yield
    except requests.Timeout as exc:
        raise UpstreamTimeoutError(
            f"Upstream PACS {source.name!r} did not answer within {source.timeout_seconds:g} s"
        ) from exc
    except requests.ConnectionError as exc:
        raise UpstreamUnavailableError(
            f"Upstream PACS {source.name!r} is unreachable: {exc.__class__.__name__}"
        ) from exc
    except requests.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else 502
        if status == 404:
            raise NotFoundError(f"Not found on upstream PACS {source.name!r}") from exc
        raise UpstreamUnavailableError(f"Upstream PACS {source.name!r} answered HTTP {status}") from exc


def call(source: DicomSource, operation: Callable[[DICOMwebClient], T]) -> T:
    with upstream_errors(source):
        return operation(client_for(source))


def retrieve_frames(source: DicomSource, study: str, series: str, sop: str, frames: list[int]) -> list[bytes]:
    return call(
        source,
        lambda c: c.retrieve_instance_frames(
            study, series, sop, frame_numbers=frames, media_types=("application/octet-stream",)
        ),
    )


def retrieve_metadata(
    source: DicomSource, study: str, series: str | None = None, sop: str | None = None
) -> list[dict[str, Any]]:
    if sop is not None and series is not None:
        return [call(source, lambda c: c.retrieve_instance_metadata(study, series, sop))]
    if series is not None:
        return call(source, lambda c: c.retrieve_series_metadata(study, series))
    return call(source, lambda c: c.retrieve_study_metadata(study))


def retrieve_instance_bytes(source: DicomSource, study: str, series: str, sop: str) -> bytes:
    dataset = call(source, lambda c: c.retrieve_instance(study, series, sop))
    return dataset_bytes(dataset)


def retrieve_rendered(
    source: DicomSource, study: str, series: str, sop: str, media_type: str, params: dict[str, Any]
) -> bytes:
    return call(
        source,
        lambda c: c.retrieve_instance_rendered(study, series, sop, media_types=(media_type,), params=params),
    )


def store(source: DicomSource, datasets: list[Dataset]) -> Dataset:
    return call(source, lambda c: c.store_instances(datasets))


def iter_study(source: DicomSource, study: str) -> Iterator[bytes]:
    """The study's instances as Part 10 bytes, one at a time."""
    with upstream_errors(source):
        for dataset in client_for(source).iter_study(study):
            yield dataset_bytes(dataset)


def dataset_bytes(dataset: Dataset) -> bytes:
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, dataset, enforce_file_format=True)
    return buffer.getvalue()
