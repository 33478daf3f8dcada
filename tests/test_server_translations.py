"""Every message the server writes for people has its Simplified Chinese translation (issue 13, item 4).

The messages are the gettext calls (gettext, pgettext, gettext_noop ...) of the modules that write them; a
message added without a translation in locale/zh_Hans (compiled to django.mo) fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

from django.utils import translation
from django.utils.translation import gettext, pgettext

ROOT = Path(__file__).resolve().parent.parent
MODULES = (
    "config/messages.py",
    "annotation/labels.py",
    "review/evaluation.py",
    "review/services.py",
    "review/selectors.py",
    "review/notes.py",
    "review/gold.py",
    "review/api/gold_views.py",
    "jobs/messages.py",
    "annotation/services.py",
    "annotation/imports.py",
    "annotation/uploads.py",
    "annotation/api/views.py",
    "annotation/api/permissions.py",
    "annotation/api/import_views.py",
    "accounts/services.py",
    "accounts/api/views.py",
    "inference/messages.py",
)
GETTEXT = {"gettext", "gettext_noop", "gettext_lazy", "_", "_t", "N_"}
# Templates whose Chinese is the same text: nothing but parameters and spaces.
SAME_IN_CHINESE = {"%(label)s %(number)s"}


def messages_of(path: Path) -> list[tuple[str | None, str]]:
    found: list[tuple[str | None, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        texts = [arg.value for arg in node.args if isinstance(arg, ast.Constant) and isinstance(arg.value, str)]
        if name in GETTEXT and len(texts) >= 1 and node.args and isinstance(node.args[0], ast.Constant):
            found.append((None, texts[0]))
        elif name == "pgettext" and len(texts) >= 2:
            found.append((texts[0], texts[1]))
    return found


ALL = sorted({message for module in MODULES for message in messages_of(ROOT / module)}, key=str)


def test_the_modules_have_messages() -> None:
    assert len(ALL) > 150  # the extraction finds them (a broken extraction would pass every check below)


def test_every_server_message_has_a_chinese_translation() -> None:
    with translation.override("zh-hans"):
        untranslated = [
            msgid
            for context, msgid in ALL
            if (pgettext(context, msgid) if context else gettext(msgid)) == msgid and msgid not in SAME_IN_CHINESE
        ]
    assert untranslated == [], "no zh-Hans translation in locale/zh_Hans/LC_MESSAGES/django.po (then msgfmt)"


def test_the_english_of_a_message_is_its_rendering_in_english_whatever_language_is_active() -> None:
    """config.messages.english renders the msgids without activating a translation (issue 19): the same words as
    render(msg, "en"), in an English and in a Chinese request, for nested messages, names, lists and numbers."""
    from config.messages import english, message, names, render
    from review.evaluation import R_AI_THIRD_OPINION
    from review.services import E_DISPUTED, E_FIRST_READ_SINGLE, E_MAJORITY, E_WINNER_BY

    winner = message(E_WINNER_BY, reading="consensus", reader="ann")
    samples = [
        message(E_FIRST_READ_SINGLE, reader="ann", share="20%"),
        message(E_MAJORITY, votes=[2, 1], winner=winner),
        message(E_DISPUTED, reasons=[message(R_AI_THIRD_OPINION, reason="dice 0.41"), winner]),
        message("%(label)s differs by %(d)s mm", label=names({"en": "Diameter", "zh-hans": "直径"}), d=2.5),
        message("no parameters"),
    ]
    for language in ("en", "zh-hans"):
        with translation.override(language):
            for sample in samples:
                assert english(sample) == render(sample, "en"), sample
    with translation.override("zh-hans"):
        assert english(samples[3]) == "Diameter differs by 2.5 mm"
        assert render(samples[0]) != english(samples[0])  # the Chinese request still renders in Chinese
    assert english(None) == "" and english("plain") == "plain"  # type: ignore[arg-type]
