"""Checks that a text meant for a Chinese reader holds no English.

Shared by the API tests (tests/review, tests/annotation, tests/jobs) and the browser test of the zh-Hans reader
and panel (tests/browser). Data is allowed: user names, UIDs, numbers and the words of the schema's own data
given by the test, plus units and the names of metrics and formats that stay Latin in Chinese too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# A word: an ASCII letter, then letters or digits, perhaps with an apostrophe or hyphen inside ("reader's",
# "re-queued", "n1", "F1"). UIDs and numbers start with a digit: they are not words.
ASCII_WORD = re.compile(r"(?<![A-Za-z0-9])[A-Za-z][A-Za-z0-9]*(?:['\-][A-Za-z0-9]+)*")
# Latin in Chinese text too: metric, unit and format names, axes.
TECHNICAL = frozenset(
    {"AI", "Dice", "IoU", "F1", "HD95", "ASSD", "kappa", "px", "mm", "h", "s", "GPU", "CPU", "UID", "DICOM", "gzip"}
    | {"base64", "uint8", "uint16", "x", "y", "z", "CT", "MR", "ID"}
)


def english_left(text: str, data: Iterable[str] = ()) -> list[str]:
    """The ASCII words of ``text`` that are neither data nor technical names: English left in a Chinese text."""
    allowed = set(TECHNICAL)
    for value in data:
        allowed.update(ASCII_WORD.findall(value))
    return [word for word in ASCII_WORD.findall(text) if word not in allowed]


def assert_chinese(texts: Iterable[str], data: Iterable[str] = ()) -> None:
    """Every text has Chinese in it and no English outside ``data``."""
    data = list(data)
    texts = list(texts)
    assert texts, "nothing to check"
    for text in texts:
        assert re.search(r"[\u4e00-\u9fff]", text), f"no Chinese in {text!r}"
        left = english_left(text, data)
        assert not left, f"English {left} in {text!r}"
