"""The review workflow's append-only event log. (Agreement, panel votes and policies: the review issue.)"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from annotation.models import Case


class CaseEvent(models.Model):
    """One transition of a case's status: who, from, to, why, with what numbers, when. Never updated."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="events")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT)
    from_status = models.CharField(max_length=32)
    to_status = models.CharField(max_length=32)
    reason = models.TextField(blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["case_id", "created_at", "pk"]

    def __str__(self) -> str:
        return f"case {self.case_id}: {self.from_status} -> {self.to_status}"


class ReviewPolicy(models.Model):
    """How a project's cases are cross-verified and adjudicated."""

    class Mode(models.TextChoices):
        BLIND_DOUBLE = "blind_double", "Blind double reading"
        VERIFICATION = "verification", "Verification of the first reading"

    class MaskRule(models.TextChoices):
        UNION = "union", "Union"
        INTERSECTION = "intersection", "Intersection"
        MAJORITY = "majority", "Majority (at least half the readers)"
        SHAPE_AVERAGE = "shape_average", "Shape-based average (mean of the readers' signed distance maps)"

    project = models.OneToOneField("annotation.Project", on_delete=models.CASCADE, related_name="review_policy")
    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.BLIND_DOUBLE)
    # Share of cases that get a second reader; the rest are final after one reading.
    second_read_share = models.FloatField(default=1.0)
    # Agreement thresholds per label kind. Masks: Dice; boxes: IoU for a lesion match (counts must be
    # equal too); ordinal: largest grade distance still agreeing; number: largest absolute difference;
    # points: largest distance in pixels for a match.
    mask_dice = models.FloatField(default=0.8)
    box_iou = models.FloatField(default=0.5)
    ordinal_distance = models.PositiveSmallIntegerField(default=0)
    number_tolerance = models.FloatField(default=0.0)
    point_distance = models.FloatField(default=10.0)
    # Two readers' masks are combined by this rule; three or more by STAPLE. The shape average is the default: in
    # the simulated QA study it kept less of the two readers' boundary errors than the union or intersection.
    mask_rule = models.CharField(max_length=16, choices=MaskRule.choices, default=MaskRule.SHAPE_AVERAGE)
    # The AI proposal (an annotation of role "ai") as a third opinion on agreed readings: a lesion or mask on
    # which the AI disagrees with the agreed readers sends the case to the panel (e.g. a lesion both missed).
    ai_third_opinion = models.BooleanField(default=False)
    panel_size = models.PositiveSmallIntegerField(default=3)
    quorum = models.PositiveSmallIntegerField(default=2)
    chair = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Hours a case may stay in panel before a tie no longer waits for the seated experts who have not voted: the
    # chair's (or the senior expert's) casting vote then decides among the votes cast. Null: no deadline.
    panel_deadline_hours = models.PositiveIntegerField(null=True, blank=True)
    sampling_seed = models.PositiveIntegerField(default=0)
    # Gold-standard cases (review.gold): the share of a reader's served cases that are gold, mixed into "next";
    # and whether a reader is shown their score against the reference once they submitted a gold reading.
    gold_rate = models.FloatField(default=0.0)
    gold_feedback = models.BooleanField(default=False)
    # Adaptive second reading (review.adaptive): after the first reading, a single reading is accepted when the AI
    # proposal agrees with it within the thresholds above and the reader's gold and peer records reach the bar;
    # otherwise a second reading follows (and the panel on disagreement). Replaces second_read_share's sampling.
    adaptive_second_read = models.BooleanField(default=False)
    # The bar: the reader's exact agreement with gold references once they read ``adaptive_min_record_cases`` gold
    # cases; until then their share of double-read cases agreed with a peer, once they have as many of those.
    adaptive_min_agreement = models.FloatField(default=0.8)
    adaptive_min_record_cases = models.PositiveIntegerField(default=5)
    # The budget: the share of first readings that get a second one. Cases that fail a check always do; cases that
    # pass are sent to a second reader too while the share so far is under the target, so it holds over a batch.
    second_read_target = models.FloatField(default=0.4)
    # Whether the target is also a ceiling. Off (quality first): a case that fails a check always gets its second
    # reading, whatever the share. On (a budget): once the share reaches the target, a case that fails a check is
    # accepted on its single reading, and the routing event says the budget was spent.
    second_read_cap = models.BooleanField(default=False)
    # When a single reading is accepted because the AI proposal agrees with it, its final label is the consensus of
    # the reading and the proposal by the project's consensus rules (as for two readers: masks by the mask rule,
    # boxes averaged), instead of the reading as drawn. Off: the reader's own label is final.
    adaptive_ai_consensus = models.BooleanField(default=False)
    # Where a first reading that fails a check goes. Off: to a second reader (and the panel on disagreement). On:
    # straight to the panel, which judges the reading against the AI proposal (with panel_size 1 and quorum 1, a
    # single adjudicator): one expert reading instead of a second reading and, on the usual disagreement, three
    # votes. bench_review --part policies measures both.
    adaptive_adjudicate = models.BooleanField(default=False)
    # The Dice the routing's AI check asks of the reading's mask against the AI proposal's; null: the project's
    # mask_dice. Two careful outlines of a small lesion often differ by more than the agreement bar, so a case
    # whose lesions both found (the counts, boxes, types and answers agreeing) may be accepted on a looser outline
    # bar, its mask then the consensus of the two (adaptive_ai_consensus).
    adaptive_mask_dice = models.FloatField(null=True, blank=True)
    # Likewise the tolerance (in the label's unit) the AI check allows between the reading's numbers and the AI
    # proposal's (a diameter); null: the project's number_tolerance.
    adaptive_number_tolerance = models.FloatField(null=True, blank=True)
    # What the panel's experts submit. Off: a vote for a reading, the AI proposal or a colleague's correction, or a
    # corrected label. On: a corrected label (made in the reader editor or given whole, usually from a reading on the
    # table, whose parts' provenance it keeps) or the endorsement of a colleague's; a vote for a reading or the AI
    # proposal is refused. A vote picks one hand's outline, with that hand's misses and boundary noise; with a
    # single adjudicator (panel_size 1) this makes the adjudicated label the expert's own reading of the case.
    # bench_review --part policies measures both (adaptive_adjudicator_loose and adaptive_adjudicator_corrects).
    adjudicator_corrects = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"review policy of {self.project_id}"


class AgreementResult(models.Model):
    """The agreement computed when a case's readings were in. Appended, never updated."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="agreement_results")
    revisions = models.ManyToManyField("annotation.AnnotationRevision", related_name="+")
    agreed = models.BooleanField()
    labels = models.JSONField(help_text="Per label: kind, metric values, agreed, reason")
    reasons = models.JSONField(default=list, help_text="Why the case is disputed, for people")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["case_id", "-created_at"]

    def __str__(self) -> str:
        return f"agreement of case {self.case_id}: {'agreed' if self.agreed else 'disputed'}"


class PanelVote(models.Model):
    """One expert's vote on a disputed case: for one of the readings, or for a corrected label."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="panel_votes")
    expert = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="panel_votes")
    voted_for = models.ForeignKey(
        "annotation.AnnotationRevision", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    corrected = models.ForeignKey(
        "annotation.AnnotationRevision", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    rationale = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["case", "expert"], name="one_vote_per_expert"),
            models.CheckConstraint(
                condition=models.Q(voted_for__isnull=False) | models.Q(corrected__isnull=False),
                name="vote_has_a_choice",
            ),
        ]
        ordering = ["case_id", "created_at"]

    def __str__(self) -> str:
        return f"vote of {self.expert_id} on case {self.case_id}"


class CaseSummary(models.Model):
    """What the managers' dashboards need of one case, precomputed (review.dashboards).

    Recomputed when the case has changed since (a transition writes its ``updated_at``) by the worker that
    refreshes the dashboards after the transition, or by the dashboards' next read, and rebuilt for a whole
    project by ``manage.py rebuild_dashboards``; the dashboards then read one small row per case
    instead of every reading, revision and agreement result. Derived data: it may be rebuilt at any time.
    """

    case = models.OneToOneField(Case, on_delete=models.CASCADE, primary_key=True, related_name="summary")
    project = models.ForeignKey("annotation.Project", on_delete=models.CASCADE, related_name="+")
    data = models.JSONField(default=dict)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"dashboard summary of case {self.case_id}"


class Correction(models.Model):
    """An expert's corrected label of a case in panel: their own full reading (role panel_member), seeded from one
    of the case's readings, with lesions copied in from the others.

    The reading itself is the expert's annotation (a chain of immutable revisions, validated by the schema like any
    reading). This row keeps what the revisions cannot say: where each lesion came from (``origins``), and, once
    the correction is submitted as the expert's vote, which part of it came from whom (``provenance``)."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="corrections")
    expert = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="corrections")
    annotation = models.OneToOneField("annotation.Annotation", on_delete=models.PROTECT, related_name="correction")
    # The reading it started from; null for a correction given whole with a vote.
    seed = models.ForeignKey(
        "annotation.AnnotationRevision", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # Region id in the correction -> {"revision": the source revision, "annotation": its annotation, "id": the
    # region's id there}.
    origins = models.JSONField(default=dict, blank=True)
    submitted_revision = models.OneToOneField(
        "annotation.AnnotationRevision", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # Frozen at submission (see review.corrections.correction_provenance).
    provenance = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    submitted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["case", "expert"], name="one_correction_per_expert")]
        ordering = ["case_id", "created_at", "pk"]

    def __str__(self) -> str:
        return f"correction of case {self.case_id} by {self.expert_id}"


class GoldCase(models.Model):
    """A case with a reference label that readers are measured against (review.gold).

    Served to readers like any other case (each reader reads it once, as many readers as come); their readings
    are scored against ``reference`` and never move the case: it stays in the reading phase, never goes to the
    panel, and is left out of exports unless an export asks for gold cases."""

    class Source(models.TextChoices):
        ADJUDICATED = "adjudicated", "The case's adjudicated label"
        CONSENSUS = "consensus", "The case's agreed (consensus) label"
        POSTED = "posted", "A reference reading posted by a manager"
        IMPORTED = "imported", "A label imported from a DICOM SEG or RTSTRUCT (its LabelImport says which)"

    case = models.OneToOneField(Case, on_delete=models.CASCADE, related_name="gold")
    reference = models.ForeignKey("annotation.AnnotationRevision", on_delete=models.PROTECT, related_name="+")
    source = models.CharField(max_length=16, choices=Source.choices)
    marked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"gold case {self.case_id}"


class GoldScore(models.Model):
    """One reader's submitted reading of a gold case scored against its reference. Appended, never updated."""

    gold_case = models.ForeignKey(GoldCase, on_delete=models.CASCADE, related_name="scores")
    reader = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="gold_scores")
    revision = models.OneToOneField("annotation.AnnotationRevision", on_delete=models.PROTECT, related_name="+")
    # Per label: kind, status (agreed / disagreed / not compared), metrics; values of choice labels (for kappa),
    # Dice of masks, lesion counts (tp, fp, fn) of boxes and regions.
    labels = models.JSONField(default=list)
    labels_agreed = models.PositiveIntegerField(default=0)
    labels_compared = models.PositiveIntegerField(default=0)
    dice = models.FloatField(null=True, blank=True)  # mean over the mask labels compared
    lesions_tp = models.PositiveIntegerField(default=0)
    lesions_fp = models.PositiveIntegerField(default=0)
    lesions_fn = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["gold_case", "reader"], name="one_gold_score_per_reader")]
        ordering = ["reader_id", "created_at", "pk"]

    def __str__(self) -> str:
        return f"gold score of {self.reader_id} on case {self.gold_case.case_id}"
