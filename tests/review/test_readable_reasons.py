"""Readable reasons in the reader's language (issue 13, item 4), through the API.

The reasons of a disputed case, its events and the panel's decision are stored once and shown in the language of
whoever reads them: a manager with Chinese sees them in Chinese, with the schema's display names (结节类型, 结节包
围框 1), never the internal keys or generated region ids; the same rows read in English give English.
"""

from __future__ import annotations

import pytest
from django.test import Client

from annotation.models import CaseStatus, Project
from tests.annotation.conftest import chest_values
from tests.i18n import assert_chinese, english_left
from tests.review.conftest import API, JSON, case_annotations, case_of, case_status, claim, events, ok, save, set_policy

READERS = ("annotator", "reviewer", "expert", "expert1", "expert2", "expert3", "manager")
INTERNAL = ("nodule_type", "nodule_box", "nodule_present", "diameter", "malignancy", "n1", "items[", "segment 1")


def chinese(client: Client) -> Client:
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "zh-hans"
    return client


def english(client: Client) -> Client:
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client


@pytest.fixture
def disputed(reading_project: Project, clients: dict[str, Client]) -> int:
    """A case where the readers boxed different nodules far apart: every attribute disagreed, in panel."""
    slug = reading_project.slug
    set_policy(clients["manager"], slug, mode="blind_double", box_iou=0.5, panel_size=3, quorum=2)
    annotator, reviewer = clients["annotator"], clients["reviewer"]
    case_id = claim(annotator, slug, "first_reader")
    assert claim(reviewer, slug, "second_reader") == case_id
    case = case_of(case_id)
    near = {"x": 20, "y": 22, "width": 10, "height": 8}
    far = {"x": 44, "y": 44, "width": 8, "height": 8}
    save(annotator, case_id, chest_values(case, geometry=near, nodule_type="solid", diameter=12.0), role="first_reader")
    save(
        reviewer, case_id, chest_values(case, geometry=far, nodule_type="calcified", diameter=8.0), role="second_reader"
    )
    assert case_status(clients["manager"], case_id) == CaseStatus.IN_PANEL
    return case_id


def test_the_english_check_finds_english_and_spares_data() -> None:
    assert english_left("结节类型：lesion found by one reader only（annotator）", ["annotator"]) == [
        "lesion",
        "found",
        "by",
        "one",
        "reader",
        "only",
    ]
    assert english_left("图像 1.2.840.113619.2.1 上的结节：Dice 0.62 < 0.80（annotator 与 reviewer）", READERS) == []
    with pytest.raises(AssertionError):
        assert_chinese(["nodule_type of nodule_box lesion 1"], READERS)


def test_agreement_reasons_come_in_the_readers_language_with_display_names(
    disputed: int, clients: dict[str, Client]
) -> None:
    manager = chinese(clients["manager"])
    body = ok(manager.get(f"{API}/cases/{disputed}/agreement/"))
    assert body["status"] == "disagreed"
    assert_chinese(body["reasons"], READERS)
    labels = {label["key"]: label for label in body["labels"]}
    assert labels["nodule_type"]["reasons"] == [
        "结节包围框 1的结节类型：该病灶仅由一位阅片者发现（annotator）",
        "结节包围框 2的结节类型：该病灶仅由一位阅片者发现（reviewer）",
    ]
    assert "结节包围框：2 个病灶中有" not in " ".join(body["reasons"])  # counts equal: the mismatch is by IoU
    for reason in body["reasons"]:
        assert not any(name in reason for name in INTERNAL), reason
    for label in body["labels"]:
        assert "messages" not in label  # the stored form is the server's; the API gives words

    # The same stored result, read in English.
    english_body = ok(english(clients["manager"]).get(f"{API}/cases/{disputed}/agreement/"))
    english_labels = {label["key"]: label for label in english_body["labels"]}
    assert english_labels["nodule_type"]["reasons"][0] == (
        "Nodule type of Nodule bounding box 1: lesion found by one reader only (annotator)"
    )


def test_case_events_and_the_panel_decision_come_in_the_readers_language(
    disputed: int, clients: dict[str, Client]
) -> None:
    manager = chinese(clients["manager"])
    history = events(manager, disputed)
    assert [e["to_status"] for e in history] == [
        CaseStatus.AWAITING_CROSS_VERIFICATION,
        CaseStatus.CHECKING_AGREEMENT,
        CaseStatus.DISPUTED,
        CaseStatus.IN_PANEL,
    ]
    assert history[0]["reason"] == "annotator 提交了初读"
    assert history[1]["reason"] == "全部 2 份阅片已提交；正在计算一致性"
    assert history[3]["reason"] == "存在分歧：已提交专家组"
    assert "结节包围框 1的长径" in history[2]["reason"]
    assert_chinese([e["reason"] for e in history], READERS)
    assert all("reason_message" not in e["metrics"] for e in history)

    # Two seated experts vote for the first reading: the panel decides by majority, and says so in Chinese.
    seats = ok(manager.get(f"{API}/cases/{disputed}/assignments/"))
    seated = [row["username"] for row in seats if row["role"] == "panel_member"]
    first = next(a for a in case_annotations(clients["manager"], disputed) if a["role"] == "first_reader")
    for name in seated[:2]:
        voter = chinese(clients[name])
        body = {"voted_for_annotation": first["id"], "rationale": "上叶结节可见"}
        vote = ok(voter.post(f"{API}/cases/{disputed}/votes/", body, JSON), 201)
        assert vote["reading"]["description"] == "初读结果"
    assert case_status(manager, disputed) == CaseStatus.ADJUDICATED
    [decision] = [e for e in events(manager, disputed) if e["to_status"] == CaseStatus.ADJUDICATED]
    assert decision["reason"] == "专家组以多数票决定（2，3 位在席成员中 2 位已投票）：初读结果（annotator）"
    assert_chinese([decision["reason"]], READERS)
    # ... and in English for an English reader of the same event.
    [english_decision] = [
        e for e in events(english(clients["manager"]), disputed) if e["to_status"] == CaseStatus.ADJUDICATED
    ]
    assert english_decision["reason"] == (
        "panel decided by majority (2, 2 of 3 seated members voted): first reading (annotator)"
    )

    # A vote refused: the reason in the voter's language.
    late = chinese(clients[seated[2]])
    response = late.post(
        f"{API}/cases/{disputed}/votes/", {"voted_for_annotation": first["id"], "rationale": "x"}, JSON
    )
    assert response.status_code == 409
    assert_chinese([response.json()["detail"]], READERS)


def test_dashboard_notes_come_in_the_managers_language(disputed: int, clients: dict[str, Client]) -> None:
    manager = chinese(clients["manager"])
    slug = case_of(disputed).project.slug
    rows = ok(manager.get(f"{API}/projects/{slug}/dashboard/"))["labels"]
    notes = [row["note"] for row in rows if row.get("note")]
    notes += [row["kappa"]["note"] for row in rows if isinstance(row.get("kappa"), dict) and row["kappa"]["note"]]
    assert notes, rows  # free text and the unmatched lesions' labels leave something unmeasured
    assert_chinese(notes, READERS)
    # In English, the same cached figures keep their English notes.
    english_rows = ok(english(clients["manager"]).get(f"{API}/projects/{slug}/dashboard/"))["labels"]
    assert any(row.get("note") == "not compared" for row in english_rows), english_rows
