"""AI-assisted segmentation in the reader (issue 17): one prompt in, a 3D mask proposal out.

Prompts are voxel indices (z, y, x) of the case's series in the order the reader's masks use (z: the slice's index
in geometric order along the slice normal, as the stored masks and the reader's brush masks; y: row; x: column),
so the browser sends exactly what it already uses for its masks, with no world-coordinate round trip."""

from __future__ import annotations

from typing import Any, cast

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.labels import decode_mask
from annotation.models import Assignment, Case, CaseStatus, Role
from annotation.selectors import cases_visible_to, user_roles
from config.errors import ApplicationError, NotFoundError, PermissionDeniedError
from config.types import User
from imaging.models import Instance
from inference.interactive import modelfree, serving
from inference.volumes import case_series

MAX_PROMPTS = 100
MAX_SCRIBBLE_POINTS = 20_000


class PromptInput(serializers.Serializer[dict[str, Any]]):
    kind = serializers.ChoiceField(
        choices=["point", "box", "scribble"],
        help_text="point: one voxel; box: two opposite corners (always positive); scribble: the voxels drawn over",
    )
    points = serializers.ListField(
        child=serializers.ListField(child=serializers.IntegerField(min_value=0), min_length=3, max_length=3),
        min_length=1,
        max_length=MAX_SCRIBBLE_POINTS,
        help_text="Voxels [z, y, x] of the series: z the slice index in the reader's mask order, y the row, "
        "x the column",
    )
    positive = serializers.BooleanField(default=True, help_text="False for a negative point or scribble ('not this')")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        kind, count = attrs["kind"], len(attrs["points"])
        if kind == "point" and count != 1:
            raise serializers.ValidationError({"points": _("a point has exactly one voxel, got %(n)s") % {"n": count}})
        if kind == "box":
            if count != 2:
                raise serializers.ValidationError(
                    {"points": _("a box has exactly two corners, got %(n)s") % {"n": count}}
                )
            if not attrs["positive"]:
                raise serializers.ValidationError({"positive": _("a box is always positive")})
        return attrs


class InteractiveInput(serializers.Serializer[dict[str, Any]]):
    engine = serializers.CharField(
        required=False,
        help_text=(
            "A registered engine: the model-free one or one of this project's learned interactive models (default: its "
            f"active learned model, else {modelfree.NAME!r}); unknown names and other projects' models are refused"
        ),
    )
    prompts = serializers.ListField(
        child=PromptInput(),
        min_length=1,
        max_length=MAX_PROMPTS,
        help_text="Every prompt so far on this segment, oldest first (the engine refines with all of them)",
    )
    previous = serializers.JSONField(
        required=False,
        allow_null=True,
        help_text="The current proposal to refine: a mask payload (rle-base64 or gzip-base64) of the series' shape",
    )
    window = serializers.ListField(
        child=serializers.FloatField(),
        min_length=2,
        max_length=2,
        required=False,
        allow_null=True,
        help_text="[low, high] intensity range of interest (HU); absent: the project's viewer settings' AI window "
        "(viewer.ai_window), else estimated around the seeds",
    )


class MaskOutput(serializers.Serializer[dict[str, Any]]):
    encoding = serializers.CharField(help_text="rle-base64: little-endian uint32 pairs (value, run length), C order")
    shape = serializers.ListField(child=serializers.IntegerField(), help_text="[slices, rows, columns]")
    dtype = serializers.CharField()
    data = serializers.CharField()  # type: ignore[assignment]  # the payload's field, not Serializer.data


class InteractiveOutput(serializers.Serializer[dict[str, Any]]):
    mask = MaskOutput(help_text="The proposal: 1 inside, 0 outside")
    engine = serializers.CharField(help_text="The engine that answered")
    model_version = serializers.CharField(allow_null=True, help_text="Null for a model-free engine")
    prompts = serializers.IntegerField(help_text="Prompts the proposal was made from")
    voxels = serializers.IntegerField()
    seconds = serializers.FloatField(help_text="From the request's arrival to the answer")
    warm = serializers.BooleanField(help_text="True when the reader's prompt context already held the series volume")
    fallback = serializers.BooleanField(help_text="True when no worker answered and the model-free engine did")
    message = serializers.CharField(allow_null=True, help_text="Why the fallback answered, in the reader's language")
    window = serializers.ListField(
        child=serializers.FloatField(),
        allow_null=True,
        help_text="[low, high] HU window the engine kept to (the request's or the project's); null: estimated",
    )


def _case_for_assistance(request: Request, case_id: int) -> Case:
    """The case, if the user reads it (assigned) or sits on its panel; 404 when they cannot see it at all."""
    user = cast(User, request.user)
    case = Case.objects.select_related("project", "study", "series").filter(pk=case_id).first()
    if case is None or not cases_visible_to(user, case.project).filter(pk=case.pk).exists():
        raise NotFoundError(_("No case %(id)s that you can see") % {"id": case_id})
    if Assignment.objects.filter(case=case, user=user).exists():
        return case
    if case.status == CaseStatus.IN_PANEL and Role.EXPERT in user_roles(user, case.project):
        return case
    raise PermissionDeniedError(
        _("Only a reader assigned to case %(id)s, or an expert of its panel, can use AI assistance on it")
        % {"id": case_id}
    )


def _check_request(case: Case, prompts: list[dict[str, Any]], previous: Any) -> None:
    """Voxels inside the series and a previous proposal of its shape: refused here (400), before any queueing."""
    series = case_series(case)
    slices = Instance.objects.filter(series=series, has_pixel_data=True).count()
    shape = (slices, int(series.rows or 0), int(series.columns or 0))
    for i, prompt in enumerate(prompts):
        for point in prompt["points"]:
            if any(v >= n for v, n in zip(point, shape, strict=True)):
                raise ApplicationError(
                    _(
                        "prompts[%(i)s].points: voxel %(voxel)s is outside the series "
                        "(%(shape)s = slices x rows x columns)"
                    )
                    % {"i": i, "voxel": point, "shape": "x".join(map(str, shape))}
                )
    if previous is not None:
        mask = decode_mask(previous, "previous")
        if mask.shape != shape:
            raise ApplicationError(
                _("previous: the mask is %(got)s but the series is %(expected)s (slices x rows x columns)")
                % {"got": "x".join(map(str, mask.shape)), "expected": "x".join(map(str, shape))}
            )


class InteractiveView(APIView):
    @extend_schema(
        request=InteractiveInput,
        responses={200: InteractiveOutput},
        description=(
            "Propose a 3D mask for the active segment from the reader's prompts. Prompts are voxel indices "
            "[z, y, x] of the case's series in the order of the reader's masks. Waits a few seconds for an "
            "``interactive`` worker, then answers with the model-free engine (``fallback`` true, ``message`` says "
            "why). Only a reader assigned to the case, or an expert of its panel, may ask."
        ),
        summary=gettext_lazy("AI-assisted segmentation: prompts to a mask proposal"),
    )
    def post(self, request: Request, case_id: int) -> Response:
        case = _case_for_assistance(request, case_id)
        data = InteractiveInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        engine = serving.engine_for_case(case, values.get("engine"))
        _check_request(case, values["prompts"], values.get("previous"))
        window = values.get("window")
        if window is not None and window[0] >= window[1]:
            raise ApplicationError(_("window: the low end must be below the high end"))
        chosen = (float(window[0]), float(window[1])) if window else serving.project_window(case)
        answer = serving.propose(
            case=case,
            reader_id=cast(User, request.user).pk,
            engine=engine,
            prompts=[dict(p) for p in values["prompts"]],
            previous=values.get("previous"),
            window=chosen,
        )
        return Response(answer)
