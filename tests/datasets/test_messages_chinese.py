"""The export's and the import's refusals and left-out reasons in the reader's language (zh-Hans or English):
an import refused during the request comes back translated; a case left out of a format by the worker is stored
as a message (English template and parameters) and shown by the export API in the language of whoever reads it,
while the snapshot's own snapshot.json keeps the English text."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
from django.contrib.auth.models import User
from django.test import Client
from django.utils import translation
from django.utils.translation import gettext, pgettext
from pydicom.dataset import FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from accounts.models import Profile
from annotation.models import AnnotationRevision, Case
from datasets.models import Export, LabelImport
from datasets.services import export_create
from imaging.models import Instance
from jobs.models import JobStatus
from tests.annotation.conftest import case_series, chest_values
from tests.datasets.conftest import adjudicate, other_values, run_export, zip_files
from tests.test_server_translations import ROOT, messages_of

MODULES = (
    "datasets/build.py",
    "datasets/label_import.py",
    "datasets/services.py",
    "datasets/volumes.py",
    "datasets/api/views.py",
)
BODY = {
    "formats": ["monai", "csv"],
    "filters": {"min_qa_level": "adjudicated"},
    "split": {"train": 1.0, "validation": 0.0, "test": 0.0},
}


def test_every_export_and_import_message_has_a_chinese_translation() -> None:
    found = sorted({m for module in MODULES for m in messages_of(Path(ROOT) / module)}, key=str)
    assert len(found) > 70  # the extraction finds them
    with translation.override("zh-hans"):
        untranslated = [m for c, m in found if (pgettext(c, m) if c else gettext(m)) == m]
    assert untranslated == []


def ct_file() -> bytes:
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.Modality = "CT"
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_a_refused_import_comes_back_in_the_readers_language_and_stores_nothing(
    adjudicated_cases: list[tuple[Case, AnnotationRevision]], users: dict[str, User]
) -> None:
    slug = adjudicated_cases[0][0].project.slug
    before = AnnotationRevision.objects.count()
    details = {}
    for language in ("zh-hans", "en"):
        client = Client(HTTP_ACCEPT_LANGUAGE=language)
        client.force_login(users["manager"])
        for name, data in (("ct.dcm", ct_file()), ("notes.txt", b"not dicom at all")):
            upload = io.BytesIO(data)
            upload.name = name
            response = client.post(f"/api/v1/projects/{slug}/label-imports/", {"file": upload})
            assert response.status_code == 400, response.content
            assert response.json()["code"] == "label_import_refused"
            details[language, name] = response.json()["detail"]
    assert details["zh-hans", "ct.dcm"] == "只有 DICOM SEG、RTSTRUCT 和 SR（TID 1500）可以作为标注导入；此文件为 CT"
    assert details["en", "ct.dcm"] == (
        "only DICOM SEG, RTSTRUCT and SR (TID 1500) can be imported as labels; this file is CT"
    )
    assert details["zh-hans", "notes.txt"].startswith("不是 DICOM 文件：")
    assert details["en", "notes.txt"].startswith("not a DICOM file: ")
    assert AnnotationRevision.objects.count() == before and LabelImport.objects.count() == 0


def test_an_export_left_out_reason_comes_back_in_the_readers_language(
    adjudicated_cases: list[tuple[Case, AnnotationRevision]],
    users: dict[str, User],
    client_for: Callable[[User | None], Client],
) -> None:
    manager = users["manager"]
    slug = adjudicated_cases[0][0].project.slug
    _, (lost, _), _ = adjudicated_cases
    english = client_for(manager)
    response = english.post(f"/api/v1/projects/{slug}/exports/", data=BODY, content_type="application/json")
    assert response.status_code == 202, response.content
    # After the request, one case's images lose their positions: the worker leaves it out of monai.
    Instance.objects.filter(series__study_id=lost.study_id).update(image_position=None)
    export = run_export(Export.objects.get(pk=response.json()["id"]), expect=JobStatus.PARTIAL)
    (row,) = export.left_out
    assert (row["case_id"], row["format"]) == (lost.pk, "monai")

    # The manager's saved language, whatever the browser says.
    Profile.objects.update_or_create(user=manager, defaults={"language": "zh-hans"})
    chinese = Client(HTTP_ACCEPT_LANGUAGE="en")
    chinese.force_login(manager)
    (shown,) = chinese.get(f"/api/v1/projects/{slug}/exports/{export.pk}/").json()["left_out"]
    assert shown["reason"].startswith("没有可用于放置掩膜的几何信息：序列 ")
    assert "幅图像缺少位置、方向或像素间距，无法在患者坐标空间中放置标注" in shown["reason"]
    assert set(shown) == {"case", "case_id", "format", "reason"}

    Profile.objects.filter(user=manager).update(language="en")
    (shown,) = chinese.get(f"/api/v1/projects/{slug}/exports/{export.pk}/").json()["left_out"]
    assert shown["reason"] == row["reason"]
    assert shown["reason"].startswith("no geometry to place the mask: series ")
    # The snapshot itself says it in English, without the stored message.
    snapshot = json.loads(zip_files(export)["snapshot.json"])
    assert snapshot["left_out"] == [{k: v for k, v in row.items() if k != "message"}]


def test_an_export_refused_at_request_time_is_in_the_readers_language(
    adjudicated_cases: list[tuple[Case, AnnotationRevision]], users: dict[str, User]
) -> None:
    slug = adjudicated_cases[0][0].project.slug
    client = Client(HTTP_ACCEPT_LANGUAGE="zh-hans")
    client.force_login(users["manager"])
    body = {**BODY, "split": {"train": 0.5, "validation": 0.1, "test": 0.1}}
    response = client.post(f"/api/v1/projects/{slug}/exports/", data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["detail"] == "split：train + validation + test 之和必须为 1，实际为 0.7"
    reader = Client(HTTP_ACCEPT_LANGUAGE="zh-hans")
    reader.force_login(users["annotator"])
    response = reader.get(f"/api/v1/projects/{slug}/exports/")
    assert response.status_code == 403
    assert response.json()["detail"] == "只有项目 'nodules' 的管理员可以导出其数据"
    assert Export.objects.count() == 0


def test_a_case_whose_mask_is_empty_is_left_out_of_the_seg_in_the_readers_language(
    reading_cases: list[Case], users: dict[str, User]
) -> None:
    case = reading_cases[0]
    series = case_series(case)
    empty = np.zeros((series.number_of_slices, series.rows or 0, series.columns or 0), dtype=np.uint8)
    adjudicate(case, users, chest_values(case, mask=empty), other_values(case))
    export = run_export(
        export_create(
            project=case.project,
            created_by=users["manager"],
            formats=["dicom_seg"],
            filters={"min_qa_level": "adjudicated"},
            enqueue=False,
        ),
        expect=JobStatus.PARTIAL,
    )
    (row,) = export.left_out
    assert (row["format"], row["reason"]) == ("dicom_seg", "DICOM SEG could not be made: the mask is empty")
    client = Client(HTTP_ACCEPT_LANGUAGE="zh-hans")
    client.force_login(users["manager"])
    (shown,) = client.get(f"/api/v1/projects/{case.project.slug}/exports/{export.pk}/").json()["left_out"]
    assert shown["reason"] == "无法生成 DICOM SEG：掩膜为空"
