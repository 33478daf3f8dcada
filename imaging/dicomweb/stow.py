"""STOW-RS: store instances sent as multipart/related application/dicom, through the ingest service."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt

from config.errors import ApplicationError, PayloadTooLargeError, UnsupportedMediaTypeError
from imaging.access import access_policy
from imaging.dicom import DicomRejected, parse_part10
from imaging.dicomweb.common import dicom_json_response, dicomweb_view, media_type, parse_multipart_related
from imaging.dicomweb.qido import _base_url
from imaging.services.ingest import DUPLICATE, REJECTED, STORED, FileOutcome, IncomingFile, IngestReport
from imaging.services.store import files_store

# Failure reasons of PS3.18 Table 10.6.3-3 (and the C-STORE status for a duplicate SOP instance).
FAILURE_CANNOT_UNDERSTAND = 0xC000
FAILURE_DUPLICATE_SOP_INSTANCE = 0x0111
FAILURE_STUDY_MISMATCH = 0xA900


class LengthRequiredError(ApplicationError):
    status_code = 411
    code = "length_required"


def _read_body(request: HttpRequest) -> bytes:
    length = int(request.META.get("CONTENT_LENGTH") or 0)
    if length > settings.IMAGING_MAX_UPLOAD_BYTES:
        raise PayloadTooLargeError(
            f"Request body of {length} bytes is over the upload limit of {settings.IMAGING_MAX_UPLOAD_BYTES} bytes"
        )
    stream: Any = request
    if not request.META.get("CONTENT_LENGTH") and "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
        # dicomweb-client sends bodies over 1 MB chunked, without a Content-Length, and Django reads no further
        # than Content-Length. A server that decodes the chunks (gunicorn) marks its input as terminated: read
        # that to its end. Any other server would hand over an empty body, so say what is wrong instead.
        if not request.META.get("wsgi.input_terminated"):
            raise LengthRequiredError(
                "This server does not accept chunked request bodies: send a Content-Length "
                "(with dicomweb-client, a chunk_size larger than the request)"
            )
        stream = request.META["wsgi.input"]
    body = stream.read(settings.IMAGING_MAX_UPLOAD_BYTES + 1)
    if len(body) > settings.IMAGING_MAX_UPLOAD_BYTES:
        raise PayloadTooLargeError(
            f"Request body is over the upload limit of {settings.IMAGING_MAX_UPLOAD_BYTES} bytes"
        )
    return body


def _response_body(report: IngestReport, base: str) -> dict[str, Any]:
    referenced, failed = [], []
    for outcome in report.files:
        if outcome.status in (STORED, DUPLICATE):
            url = (
                f"{base}/studies/{outcome.study_instance_uid}/series/{outcome.series_instance_uid}"
                f"/instances/{outcome.sop_instance_uid}"
            )
            item: dict[str, Any] = {
                "00081155": {"vr": "UI", "Value": [outcome.sop_instance_uid]},
                "00081190": {"vr": "UR", "Value": [url]},
            }
            if outcome.warnings:
                item["00000902"] = {"vr": "LO", "Value": ["; ".join(outcome.warnings)[:64]]}
            referenced.append(item)
        else:
            reason = {
                "conflict": FAILURE_DUPLICATE_SOP_INSTANCE,
                "study_mismatch": FAILURE_STUDY_MISMATCH,
                "patient_mismatch": FAILURE_STUDY_MISMATCH,
            }.get(outcome.code, FAILURE_CANNOT_UNDERSTAND)
            failed_item: dict[str, Any] = {
                "00081197": {"vr": "US", "Value": [reason]},
                "00000902": {"vr": "LO", "Value": [outcome.reason[:64]]},
            }
            if outcome.sop_instance_uid:
                failed_item["00081155"] = {"vr": "UI", "Value": [outcome.sop_instance_uid]}
            failed.append(failed_item)
    body: dict[str, Any] = {"00081190": {"vr": "UR", "Value": [f"{base}/studies"]}}
    if referenced:
        body["00081199"] = {"vr": "SQ", "Value": referenced}
    if failed:
        body["00081198"] = {"vr": "SQ", "Value": failed}
    return body


@csrf_exempt
@dicomweb_view
def store_instances(request: HttpRequest, study: str | None = None, scope: str | None = None) -> HttpResponseBase:
    if request.method != "POST":
        raise ApplicationError("Use POST to store instances", code="method_not_allowed")
    content_type = request.META.get("CONTENT_TYPE", "")
    if media_type(content_type) != "multipart/related":
        raise UnsupportedMediaTypeError('STOW-RS takes multipart/related; type="application/dicom"')
    target = access_policy().store_target(request.user, scope)
    body = _read_body(request)
    parts = parse_multipart_related(body, content_type)
    files = []
    for index, (part_type, payload) in enumerate(parts, start=1):
        if media_type(part_type) not in ("application/dicom", ""):
            raise UnsupportedMediaTypeError(f"Part {index} is {part_type!r}; only application/dicom parts are stored")
        files.append(IncomingFile(name=f"part {index}", data=payload))

    mismatched: list[FileOutcome] = []
    if study is not None:
        kept = []
        for incoming in files:
            try:
                parsed = parse_part10(incoming.data)
            except DicomRejected:
                kept.append(incoming)
                continue
            if parsed.study_instance_uid != study:
                mismatched.append(
                    FileOutcome(
                        name=incoming.name,
                        status=REJECTED,
                        sop_instance_uid=parsed.sop_instance_uid,
                        reason=f"Study Instance UID {parsed.study_instance_uid} is not {study} named in the URL",
                        code="study_mismatch",
                        http_status=409,
                    )
                )
            else:
                kept.append(incoming)
        files = kept

    report = files_store(files, store=target.store, source=target.source)
    report.files.extend(mismatched)

    stored_any = any(f.status in (STORED, DUPLICATE) for f in report.files)
    failed_any = any(f.status == REJECTED for f in report.files)
    status = 200 if stored_any and not failed_any else 202 if stored_any else 409
    response = dicom_json_response(_response_body(report, _base_url(request, scope)), status=status)
    reasons = [f"{f.name}: {f.reason}" for f in report.files if f.status == REJECTED]
    if reasons:
        # The human-readable reasons, since FailureReason codes alone do not say what to fix.
        text = " | ".join(reasons)[:2000].replace("\n", " ").encode("ascii", "replace").decode()
        response["Warning"] = f"299 medlabel: {text}"
    return response
