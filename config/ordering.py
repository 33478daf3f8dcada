"""The API's ``?ordering=`` with a tie-breaker: DRF's OrderingFilter replaces a queryset's order with the
requested columns only, and rows equal on them (every new case has priority 0) come in whatever order each
page's query happens to produce, so limit/offset pages repeat some rows and skip others. The primary key,
appended last, makes every page a slice of one total order."""

from __future__ import annotations

from typing import Any

from rest_framework.filters import OrderingFilter


class StableOrderingFilter(OrderingFilter):
    def get_ordering(self, request: Any, queryset: Any, view: Any) -> Any:
        ordering = super().get_ordering(request, queryset, view)
        if not ordering:
            return ordering
        if any(field.lstrip("-") in {"pk", "id"} for field in ordering):
            return ordering
        return [*ordering, "pk"]
