"""Messages for people that are stored now and read later, in the reader's language.

An event reason, an agreement reason or a job's progress line is written once (by a worker, or during another
user's request) and read by people with different languages. So it is stored as a *message*: the English
template, which is also its gettext msgid, and its parameters, ``{"msgid": "...%(label)s...", "params": {...}}``,
and rendered with gettext when it is read (``render``), in the language of the request reading it. The English
text is stored beside it (``english``), so rows written before messages existed, and any reader of the raw
columns, still have words.

Parameters are plain values (names, UIDs, numbers: data, never translated), nested messages, a schema's
bilingual name (``names``: ``{"en": ..., "zh-hans": ...}``, shown in the language, else English), or lists of
those (joined by the language's list separator; a list of messages by its sentence separator).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache
from typing import Any

from django.utils import translation
from django.utils.translation import gettext, pgettext

Message = dict[str, Any]

_NAMES = "names"


def message(msgid: str, **params: Any) -> Message:
    """A message to store: ``msgid`` is the English template, marked for translation where it is written
    (``gettext_noop``)."""
    return {"msgid": msgid, "params": params}


def names(value: Any, fallback: str = "") -> dict[str, Any]:
    """A parameter that is a schema's display name: ``{"en": ..., "zh-hans": ...}`` or a plain string."""
    if isinstance(value, dict) and value:
        return {_NAMES: {str(k): str(v) for k, v in value.items()}}
    if isinstance(value, str) and value:
        return {_NAMES: {"en": value}}
    return {_NAMES: {"en": fallback}}


def is_message(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("msgid"), str)


def _localised(texts: dict[str, str], language: str | None = None) -> str:
    language = (language or translation.get_language() or "en").lower()
    for code in (language, language.split("-")[0]):
        if texts.get(code):
            return texts[code]
    if language.startswith("zh"):
        for code, text in texts.items():
            if code.startswith("zh") and text:
                return text
    return texts.get("en") or next((text for text in texts.values() if text), "")


def localised(value: Any, fallback: str = "") -> str:
    """A schema text (a string, or language code -> text) in the active language, else English."""
    return _localised(names(value, fallback)[_NAMES])


def _param(value: Any, english: bool = False) -> str:
    if is_message(value):
        return _render(value, english)
    if isinstance(value, dict) and isinstance(value.get(_NAMES), dict):
        return _localised(value[_NAMES], "en" if english else None)
    if isinstance(value, list | tuple):
        if value and all(is_message(entry) for entry in value):  # sentences
            separator = "; " if english else pgettext("message separator", "; ")
        else:
            separator = ", " if english else pgettext("list separator", ", ")
        return separator.join(_param(entry, english) for entry in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _render(msg: Message, english: bool = False) -> str:
    """The message in the active language, or ``english``: its msgid and the msgids of its separators, with no
    catalogue looked up (see ``english``)."""
    params = msg.get("params") or {}
    template = msg["msgid"] if english else gettext(msg["msgid"])
    try:
        return template % {name: _param(value, english) for name, value in params.items()} if params else template
    except (KeyError, ValueError, TypeError):
        # A translation that names a parameter the message no longer has: the English template, which does.
        return (
            msg["msgid"] % {name: _param(value, english) for name, value in params.items()} if params else msg["msgid"]
        )


def render(msg: Any, language: str | None = None) -> str:
    """The message in ``language`` (default: the active one, i.e. the request's)."""
    if not is_message(msg):
        return "" if msg is None else str(msg)
    if language is None:
        return _render(msg)
    with translation.override(language):
        return _render(msg)


def english(msg: Message) -> str:
    """The message in English, for the text columns kept beside it.

    The English text is the msgid itself (there is no English catalogue), so it is rendered without activating a
    translation: ``translation.override("en")`` around each of the dozens of reasons an agreement check writes was
    a tenth of its CPU (issue 19). The same words as ``render(msg, "en")`` (tests/test_server_translations.py)."""
    if not is_message(msg):
        return "" if msg is None else str(msg)
    return _render(msg, english=True)


def render_all(messages: list[Any], separator: str | None = None) -> str:
    """Several messages as one text ("; " between them, or the language's equivalent)."""
    sep = separator if separator is not None else pgettext("message separator", "; ")
    return sep.join(render(m) for m in messages)


# --- Lines stored as English text only ---------------------------------------------------------------------------
# Some texts are stored as plain English (a job event's message, a dashboard note) by code that writes from a closed
# set of templates. They are recognised when read and rendered translated, their parameters as given.

_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


@cache
def _pattern(template: str) -> re.Pattern[str]:
    parts = _PLACEHOLDER.split(template)
    # split gives literal, name, literal, name, ...: literals escaped, names as named groups.
    regex = "".join(re.escape(part) if k % 2 == 0 else f"(?P<{part}>.+?)" for k, part in enumerate(parts))
    return re.compile(regex, re.DOTALL)


def render_known(text: Any, templates: Sequence[str]) -> str:
    """A stored English line in the active language when it is one of ``templates`` (tried in order; a parameter
    that is itself such a line is translated too); any other text as stored."""
    if not isinstance(text, str) or not text:
        return "" if text is None else str(text)
    for template in templates:
        match = _pattern(template).fullmatch(text)
        if match is not None:
            params = {name: render_known(value, templates) for name, value in match.groupdict().items()}
            return gettext(template) % params if params else gettext(template)
    return text
