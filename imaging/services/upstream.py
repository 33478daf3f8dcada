"""Talking to an upstream DICOMweb PACS through dicomweb-client: proxying reads, forwarding stores,
registering upstream studies in the index, and pulling studies into the local store.

Every call has the source's timeout; a PACS that is down is a 502 and one that is slow a 504, each with
a message naming the PACS, so a reader's request never hangs.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast
from urllib.parse import urlencode

import pydicom
import requests
import urllib3
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset

from config.errors import NotFoundError, UpstreamTimeoutError, UpstreamUnavailableError
from imaging.models import DicomSource

T = TypeVar("T")
OCTET_STREAM = "application/octet-stream"
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"


# One session (and so one pool of kept-alive connections) per source and thread: opening a TCP
# connection per proxied frame costs more than the rest of the proxy together.
_local = threading.local()


def _source_key(source: DicomSource) -> tuple[Any, ...]:
    return (source.pk, source.base_url, source.username, source.password, source.timeout_seconds)


def _session_for(source: DicomSource) -> requests.Session:
    sessions: dict[tuple[Any, ...], requests.Session] = _local.__dict__.setdefault("sessions", {})
    key = _source_key(source)
    session = sessions.get(key)
    if session is None:
        session = requests.Session()
        # No compression from the PACS: on a LAN a 512 KiB frame takes 4 ms to send as it is, and Orthanc
        # spends about 13 times longer gzipping it (python-requests asks for gzip by default; issue 19).
        session.headers["Accept-Encoding"] = "identity"
        # The environment's proxy and CA settings are read here, once, not on every request: requests reads
        # every environment variable per request otherwise (a fifth of a proxied frame's CPU; issue 19).
        session.trust_env = False
        session.proxies.update(requests.utils.get_environ_proxies(source.base_url))
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if bundle:
            session.verify = bundle
        if source.username:
            session.auth = (source.username, source.password)
        sessions[key] = session
    return session


def client_for(source: DicomSource) -> DICOMwebClient:
    clients: dict[tuple[Any, ...], DICOMwebClient] = _local.__dict__.setdefault("clients", {})
    key = _source_key(source)
    client = clients.get(key)
    if client is None:
        client = DICOMwebClient(
            url=source.base_url.rstrip("/"), session=_session_for(source), timeout=source.timeout_seconds
        )
        # dicomweb-client retries some errors with back-off by default; a proxy must answer promptly instead.
        client.set_http_retry_params(retry=False)
        clients[key] = client
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
    """Frames decoded to Explicit VR Little Endian by the PACS. The transfer syntax is named: a bare
    octet-stream may get the stored (compressed) bitstream from some PACSs, which the proxy would mislabel."""
    frames_read = call(
        source,
        lambda c: c.retrieve_instance_frames(
            study, series, sop, frame_numbers=frames, media_types=((OCTET_STREAM, EXPLICIT_VR_LITTLE_ENDIAN),)
        ),
    )
    # dicomweb-client hands out bytearrays, which a streamed Django response would write as their repr().
    return [bytes(frame) for frame in frames_read]


FRAMES_ACCEPT = f'multipart/related; type="{OCTET_STREAM}"; transfer-syntax={EXPLICIT_VR_LITTLE_ENDIAN}'
# A 512x512 16-bit frame (512 KiB) in one read and one write: in 64 KiB chunks, each chunk was a read from the
# PACS and a write to the client, eight hand-offs between processes per frame, each a wait on a busy machine.
PASS_THROUGH_CHUNK = 1 << 20
IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
NATIVE_LITTLE_ENDIAN = frozenset({EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN})
NATIVE_LITTLE_ENDIAN_BYTES = frozenset(uid.encode() for uid in NATIVE_LITTLE_ENDIAN)
EXPLICIT_LITTLE_ENDIAN_BYTES = frozenset({EXPLICIT_VR_LITTLE_ENDIAN.encode()})
FRAMES_AS_STORED_ACCEPT = f'multipart/related; type="{OCTET_STREAM}"; transfer-syntax=*'
MAX_PART_HEADER = 1 << 14
# Sources that answered a frame of unknown transfer syntax in a compressed one (see stream_frame).
_CONVERTING_SOURCES: set[int] = set()


def _native_octet_part(headers: bytes, accepted: frozenset[bytes]) -> bool:
    """Whether a part's header lines label it an octet-stream in one of the ``accepted`` transfer syntaxes (Explicit
    VR Little Endian, the default when the part names none)."""
    for line in headers.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-type":
            media, *params = (p.strip() for p in value.lower().split(b";"))
            syntax = EXPLICIT_VR_LITTLE_ENDIAN.encode()
            for param in params:
                key, _, found = param.partition(b"=")
                if key.strip() == b"transfer-syntax":
                    syntax = found.strip().strip(b'"')
            return media == OCTET_STREAM.encode() and syntax in accepted
    return False


def stream_frame(
    source: DicomSource, study: str, series: str, sop: str, frame: int, stored_syntax: str = ""
) -> tuple[str, int, Iterator[bytes]] | None:
    """One frame (what viewers ask for, one request per slice) as the PACS's own multipart/related body, its
    pixel bytes passed through chunk by chunk, never parsed or copied into a new body: (our Content-Type, the
    Content-Length, the body). Only the part's header lines are replaced: PACSs name their own address in
    them (Content-Location) and label the part each in their own way. None when the PACS answers with anything
    else than an octet-stream part in Explicit VR Little Endian; ``retrieve_frames`` then reads it.

    The status is checked before anything is handed on, so a PACS that is down or refuses is a 502/504 (or a
    404) with a message, never a 200 whose body breaks off."""
    url = f"{source.base_url.rstrip('/')}/studies/{study}/series/{series}/instances/{sop}/frames/{frame}"
    unknown = not stored_syntax and source.pk not in _CONVERTING_SOURCES
    as_stored = stored_syntax in NATIVE_LITTLE_ENDIAN or unknown
    response = _open_frame(source, url, FRAMES_AS_STORED_ACCEPT if as_stored else FRAMES_ACCEPT, refusals=unknown)
    if response.status >= 400:  # (only where unknown) Orthanc answers 500 for a big-endian frame asked as stored
        _done_with(response)
        _CONVERTING_SOURCES.add(source.pk)
        return None
    length = response.headers.get("Content-Length")
    multipart = response.headers.get("Content-Type", "").lower().startswith("multipart/related")
    identity = response.headers.get("Content-Encoding", "identity").lower() == "identity"
    if not (multipart and identity and length is not None):
        _done_with(response)
        return None
    with _pool_errors(source):
        chunks = response.stream(PASS_THROUGH_CHUNK, decode_content=False)
        head = b""
        while b"\r\n\r\n" not in head and len(head) < MAX_PART_HEADER:
            chunk = next(chunks, b"")
            if not chunk:
                break
            head += chunk
    end = head.find(b"\r\n\r\n")
    first_line, _, headers = head[: max(end, 0)].partition(b"\r\n")
    accepted = NATIVE_LITTLE_ENDIAN_BYTES if as_stored else EXPLICIT_LITTLE_ENDIAN_BYTES
    if end < 0 or not first_line.startswith(b"--") or not _native_octet_part(headers, accepted):
        if unknown:
            _CONVERTING_SOURCES.add(source.pk)
        _done_with(response)
        return None
    boundary = first_line[2:].decode("ascii")
    ours = f"--{boundary}\r\nContent-Type: {OCTET_STREAM}; transfer-syntax={EXPLICIT_VR_LITTLE_ENDIAN}".encode()
    rest = head[end:]  # from the blank line on: the pixel bytes and what follows, as the PACS sent them

    def body() -> Iterator[bytes]:
        try:
            yield ours + rest
            yield from chunks
        finally:
            _done_with(response)

    content_type = f'multipart/related; type="{OCTET_STREAM}"; boundary={boundary}'
    return content_type, int(length) - end + len(ours), body()


def _open_frame(
    source: DicomSource, url: str, accept: str = FRAMES_ACCEPT, refusals: bool = False
) -> urllib3.BaseHTTPResponse:
    """GET a frame through the source session's own pool of kept-alive connections, without requests' layers
    (preparing the request, merging settings, hooks: a quarter of a proxied frame's CPU; issue 19). Same
    headers, timeout and answers as ``upstream_errors`` gives for requests: 404 a NotFoundError, another error
    status, an unreachable PACS or a broken answer a 502, no answer within the timeout a 504. A source reached
    through an HTTP proxy goes through requests. ``refusals``: an error status other than 404 is returned, not
    raised."""
    session = _session_for(source)
    if session.proxies.get(url.partition(":")[0]) or session.proxies.get("all"):
        with upstream_errors(source):
            via_requests = session.get(url, headers={"Accept": accept}, timeout=source.timeout_seconds, stream=True)
            if not (refusals and via_requests.status_code != 404):
                via_requests.raise_for_status()
            return cast(urllib3.BaseHTTPResponse, via_requests.raw)
    adapter = cast(requests.adapters.HTTPAdapter, session.get_adapter(url))
    headers = {**session.headers, "Accept": accept}
    if source.username:
        headers.update(urllib3.util.make_headers(basic_auth=f"{source.username}:{source.password}"))
    with _pool_errors(source):
        pool = adapter.poolmanager.connection_from_url(url)
        response = pool.urlopen(
            "GET",
            urllib3.util.parse_url(url).request_uri,  # origin-form: PACSs such as Orthanc drop an absolute URL
            headers=headers,
            retries=False,
            redirect=False,
            preload_content=False,
            decode_content=False,
            timeout=urllib3.Timeout(connect=source.timeout_seconds, read=source.timeout_seconds),
        )
    if response.status >= 400 and not (refusals and response.status != 404):
        _done_with(response)
        if response.status == 404:
            raise NotFoundError(f"Not found on upstream PACS {source.name!r}")
        raise UpstreamUnavailableError(f"Upstream PACS {source.name!r} answered HTTP {response.status}")
    return response


@contextmanager
def _pool_errors(source: DicomSource) -> Iterator[None]:
    """``upstream_errors`` for urllib3's own exceptions (a frame read from the pool, or its body's first bytes)."""
    try:
        yield
    except urllib3.exceptions.NewConnectionError as exc:  # refused: a subclass of ConnectTimeoutError in urllib3
        raise UpstreamUnavailableError(
            f"Upstream PACS {source.name!r} is unreachable: {exc.__class__.__name__}"
        ) from exc
    except urllib3.exceptions.TimeoutError as exc:
        raise UpstreamTimeoutError(
            f"Upstream PACS {source.name!r} did not answer within {source.timeout_seconds:g} s"
        ) from exc
    except urllib3.exceptions.HTTPError as exc:
        raise UpstreamUnavailableError(
            f"Upstream PACS {source.name!r} is unreachable: {exc.__class__.__name__}"
        ) from exc


def _done_with(response: urllib3.BaseHTTPResponse) -> None:
    """Close the answer and hand its connection back: one read to its end was already handed back, kept alive;
    one left part-read is closed first, so that no later request reads its rest (as requests' close does)."""
    response.close()
    response.release_conn()


def retrieve_metadata(
    source: DicomSource, study: str, series: str | None = None, sop: str | None = None
) -> list[dict[str, Any]]:
    if sop is not None and series is not None:
        return [call(source, lambda c: c.retrieve_instance_metadata(study, series, sop))]
    if series is not None:
        return call(source, lambda c: c.retrieve_series_metadata(study, series))
    return call(source, lambda c: c.retrieve_study_metadata(study))


# Instances as the PACS stores them: without a transfer syntax in Accept, a PACS may transcode them (Orthanc
# sends a study's compressed instances as Explicit VR Little Endian).
AS_STORED = (("application/dicom", "*"),)


def retrieve_instance_bytes(source: DicomSource, study: str, series: str, sop: str) -> bytes:
    dataset = call(source, lambda c: c.retrieve_instance(study, series, sop, media_types=AS_STORED))
    return dataset_bytes(dataset)


def retrieve_rendered(
    source: DicomSource,
    study: str,
    series: str,
    sop: str,
    media_type: str,
    params: dict[str, Any],
    frame: int | None = None,
) -> bytes:
    """The rendered instance, or with ``frame`` that one rendered frame.

    Asked for with requests itself: dicomweb-client percent-encodes the commas of ``window``, which Orthanc
    then does not split (RFC 3986 allows commas in a query as they are).
    """
    url = f"{source.base_url.rstrip('/')}/studies/{study}/series/{series}/instances/{sop}"
    url += f"/frames/{frame}/rendered" if frame is not None else "/rendered"
    if params:
        url += "?" + urlencode(params, safe=",")
    with upstream_errors(source):
        response = _session_for(source).get(url, headers={"Accept": media_type}, timeout=source.timeout_seconds)
        response.raise_for_status()
        return response.content


def store(source: DicomSource, datasets: list[Dataset]) -> Dataset:
    return call(source, lambda c: c.store_instances(datasets))


def iter_study(source: DicomSource, study: str) -> Iterator[bytes]:
    """The study's instances as Part 10 bytes, one at a time."""
    with upstream_errors(source):
        for dataset in client_for(source).iter_study(study, media_types=AS_STORED):
            yield dataset_bytes(dataset)


def dataset_bytes(dataset: Dataset) -> bytes:
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, dataset, enforce_file_format=True)
    return buffer.getvalue()
