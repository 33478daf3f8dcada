"""The published OHIF Viewer build served by the platform, under /ohif/.

OHIF's npm package (@ohif/app) ships a viewer built for the root of a site: its index.html, style sheets and
webpack runtimes name their files as "/...". Served under /ohif/ the same files must name "/ohif/...": the
few files that carry the site root are rewritten as they are served (and kept in memory), the rest are
served as published. Which DICOMweb root the viewer talks to is its app-config (window.config), which the
platform writes: /dicomweb (every study the user may see) or /dicomweb/projects/<slug> (one project's).
"""

from __future__ import annotations

import json
import mimetypes
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from django.conf import settings

PREFIX = "/ohif/"
# The site root as the published build writes it, and what it becomes under PREFIX.
_WEBPACK_PUBLIC_PATH = b'__webpack_require__.p = "/";'
_ROOT_ATTRIBUTE = re.compile(r'\b(href|src)="/(?!/)')
_CSS_ROOT_URL = re.compile(rb"url\(/(?!/)")
_MEDIA_TYPES = {".wasm": "application/wasm", ".js": "text/javascript", ".mjs": "text/javascript"}


@dataclass(frozen=True)
class Asset:
    body: bytes | None  # rewritten content, or None to serve the file as published
    path: Path
    content_type: str


def project_viewer_url(slug: str) -> str | None:
    """Where "Open in OHIF" leads for a project: OHIF on that project's DICOMweb root; None when the viewer
    is not enabled on this server (MEDLABEL_OHIF_ENABLED), so that the browser shows no link."""
    return f"{PREFIX}projects/{slug}/" if settings.OHIF_ENABLED else None


def app_config(*, dicomweb_root: str, router_basename: str, friendly_name: str) -> dict[str, Any]:
    """OHIF's window.config with one DICOMweb data source, the platform's, at ``dicomweb_root``.

    The options are those of OHIF 3.13's own default config, for a server that (unlike a static store)
    answers QIDO-RS with includefield and serves frames, metadata and bulk data per PS3.18.
    """
    root = dicomweb_root.rstrip("/")
    return {
        "routerBasename": router_basename,
        "extensions": [],
        "modes": [],
        "customizationService": {},
        "showStudyList": True,
        "maxNumberOfWebWorkers": 3,
        # The platform does not send the cross-origin isolation headers; OHIF then decodes without
        # SharedArrayBuffer and would say so in a notice on every page.
        "showWarningMessageForCrossOrigin": False,
        "showCPUFallbackMessage": True,
        "showLoadingIndicator": True,
        "strictZSpacingForVolumeViewport": True,
        # OHIF's "investigational use only" notice: once confirmed, hidden for 30 days in that browser.
        "investigationalUseDialog": {"option": "configure", "days": 30},
        "defaultDataSourceName": "medlabel",
        "dataSources": [
            {
                "namespace": "@ohif/extension-default.dataSourcesModule.dicomweb",
                "sourceName": "medlabel",
                "configuration": {
                    "friendlyName": friendly_name,
                    "name": "medlabel",
                    "wadoUriRoot": root,
                    "qidoRoot": root,
                    "wadoRoot": root,
                    "qidoSupportsIncludeField": True,
                    "imageRendering": "wadors",
                    "thumbnailRendering": "wadors",
                    "enableStudyLazyLoad": True,
                    "supportsFuzzyMatching": False,
                    "supportsWildcard": True,
                    "omitQuotationForMultipartRequest": True,
                    "bulkDataURI": {"enabled": True},
                },
            }
        ],
    }


def app_config_js(config: dict[str, Any]) -> str:
    return f"window.config = {json.dumps(config, indent=1)};\n"


def index_html(dist: Path, *, config_url: str) -> str:
    """The viewer's index.html with its files under PREFIX and its app-config at ``config_url``."""
    html = _read_text(dist / "index.html", _mtime(dist / "index.html"))
    html = html.replace('window.PUBLIC_URL="/"', f'window.PUBLIC_URL="{PREFIX}"')
    html = _ROOT_ATTRIBUTE.sub(lambda m: f'{m.group(1)}="{PREFIX}', html)
    return html.replace(f'src="{PREFIX}app-config.js"', f'src="{config_url}"')


def asset(dist: Path, relative: str) -> Asset | None:
    """A file of the build by its path under PREFIX, or None if the build has no such file (a client route
    of the viewer, answered with index.html). Paths that leave the build's folder are None too."""
    root = dist.resolve()
    try:
        path = (root / relative).resolve()
    except (OSError, ValueError):
        return None
    if not relative or not path.is_relative_to(root) or not path.is_file():
        return None
    content_type = _MEDIA_TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if path.suffix in (".js", ".css") and path.parent == root:
        return Asset(_rewritten(path, _mtime(path)), path, content_type)
    return Asset(None, path, content_type)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


@lru_cache(maxsize=4)
def _read_text(path: Path, mtime: float) -> str:
    return path.read_text(encoding="utf-8")


@lru_cache(maxsize=512)
def _rewritten(path: Path, mtime: float) -> bytes | None:
    """The file with the site root moved to PREFIX, or None if it names no root (served as published).
    Cached per file and modification time: the main bundle is 17 MB."""
    data = path.read_bytes()
    if path.suffix == ".css":
        changed = _CSS_ROOT_URL.sub(b"url(" + PREFIX.encode(), data)
    else:
        changed = data.replace(_WEBPACK_PUBLIC_PATH, b'__webpack_require__.p = "' + PREFIX.encode() + b'";')
    return None if changed == data else changed
