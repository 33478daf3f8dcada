"""Page-object helpers of the manager's workspace (issue 16): create a project, manage its members, bring data in
(upload a zip, search and import from the PACS) and create cases, each through the screens as a manager would.

Each helper takes a Playwright ``Page`` already signed in on the app (``panel_helpers.Browsers.page_for``), opens
the screen it needs, acts, and waits until the screen shows that the server took the action; checking the
database is the caller's part. Labels are the English UI's: sign the page in with ``language="en"`` (the
default), or pass the Chinese labels yourself."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import Locator, Page, expect

# Ingest of a zip on 2 shared cores, with a worker starting up, can take a while.
JOB_TIMEOUT_MS = 120_000


def open_screen(page: Page, path: str) -> Page:
    """Open ``path`` of the app on the page's own server."""
    parts = urlsplit(page.url)
    if parts.scheme not in ("http", "https"):
        raise AssertionError(f"open the app on the page first (it is at {page.url!r})")
    page.goto(f"{parts.scheme}://{parts.netloc}{path}")
    return page


def create_project(
    page: Page,
    *,
    slug: str,
    name: str,
    modality: str = "CT",
    description: str = "",
    pacs_source: str | None = None,
    readers_per_case: int = 2,
) -> Locator:
    """Create a project on the projects screen (administrators); returns its card."""
    open_screen(page, "/")
    page.get_by_role("button", name="New project").click()
    form = page.get_by_role("form", name="New project")
    form.get_by_label("Name", exact=True).fill(name)
    form.get_by_label("Short name (in URLs)").fill(slug)
    form.get_by_label("Modality").select_option(modality)
    if pacs_source is not None:
        form.get_by_label("PACS source").select_option(pacs_source)
    form.get_by_label("Readers per case").fill(str(readers_per_case))
    if description:
        form.get_by_label("Description").fill(description)
    form.get_by_role("button", name="Create project").click()
    card = page.get_by_test_id(f"project-{slug}")
    expect(card).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text(f"Project {name} created")
    return card


def open_members(page: Page, slug: str) -> Page:
    open_screen(page, f"/projects/{slug}/members")
    expect(page.get_by_role("heading", name=f"Members: {slug}")).to_be_visible()
    return page


def add_member(page: Page, slug: str, username: str, role: str) -> Locator:
    """Add an existing user to the project in ``role`` (annotator, reviewer, expert, manager); returns the row."""
    open_members(page, slug)
    form = page.get_by_role("form", name="Add a member")
    form.get_by_label("User name").fill(username)
    form.get_by_label("Role").select_option(role)
    form.get_by_role("button", name="Add").click()
    row = page.get_by_test_id(f"member-{username}-{role}")
    expect(row).to_be_visible()
    return row


def change_role(page: Page, slug: str, username: str, from_role: str, to_role: str) -> Locator:
    """Change one of a member's roles on the members screen; returns the row in its new role."""
    open_members(page, slug)
    page.get_by_test_id(f"member-{username}-{from_role}").get_by_role("combobox").select_option(to_role)
    row = page.get_by_test_id(f"member-{username}-{to_role}")
    expect(row).to_be_visible()
    return row


def remove_member(page: Page, slug: str, username: str, role: str) -> None:
    open_members(page, slug)
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_test_id(f"member-{username}-{role}").get_by_role("button", name="Remove").click()


def create_user(
    page: Page, slug: str, username: str, password: str, *, first_name: str = "", last_name: str = ""
) -> None:
    """Create a user on the members screen (administrators only: others do not see the form)."""
    open_members(page, slug)
    form = page.get_by_role("form", name="Create a user (administrators)")
    form.get_by_label("User name").fill(username)
    form.get_by_label("Password").fill(password)
    if first_name:
        form.get_by_label("First name").fill(first_name)
    if last_name:
        form.get_by_label("Last name").fill(last_name)
    form.get_by_role("button", name="Create user").click()
    expect(page.get_by_role("status")).to_contain_text(f"User {username} created")


# Records every state the upload's progress bar goes through ("uploading:37", ..., "done:100") in
# window.__uploadProgress, so that a test can tell the bytes' progress (XMLHttpRequest upload events) from the job's.
RECORD_PROGRESS = """() => {
    const seen = [];
    window.__uploadProgress = seen;
    const note = () => {
        const bar = document.querySelector("[data-testid=upload-progress]");
        if (!bar) return;
        const state = `${bar.getAttribute("data-phase")}:${bar.getAttribute("value")}`;
        if (seen[seen.length - 1] !== state) seen.push(state);
    };
    new MutationObserver(note).observe(document.body, {subtree: true, childList: true, attributes: true});
}"""


def progress_history(page: Page) -> list[str]:
    """The states the upload's progress bar went through in the last ``upload_zip`` ("phase:percent")."""
    return list(page.evaluate("() => window.__uploadProgress || []"))


def open_data(page: Page, slug: str) -> Page:
    open_screen(page, f"/projects/{slug}/data")
    expect(page.get_by_role("heading", name=f"Data in: {slug}")).to_be_visible()
    return page


def upload_zip(page: Page, slug: str, *files: Path, drop: bool = False) -> Locator:
    """Upload files (zips of DICOM, or DICOM files) on the data-in screen and wait for the ingest job to finish
    with the progress bar at 100 %; returns the per-file report. ``drop=True`` drops them on the drop zone (as a
    drag from the desktop would) instead of choosing them."""
    open_data(page, slug)
    if drop:
        payload = [{"name": path.name, "data": list(path.read_bytes())} for path in files]
        transfer = page.evaluate_handle(
            """(files) => {
                const transfer = new DataTransfer();
                for (const f of files) transfer.items.add(new File([new Uint8Array(f.data)], f.name));
                return transfer;
            }""",
            payload,
        )
        page.get_by_test_id("dropzone").dispatch_event("drop", {"dataTransfer": transfer})
    else:
        page.get_by_label("Choose files or zips").set_input_files([str(path) for path in files])
    expect(page.get_by_test_id("selected")).to_contain_text(f"{len(files)} file(s) selected")
    page.evaluate(RECORD_PROGRESS)
    page.get_by_role("button", name="Upload", exact=True).click()
    progress = page.get_by_test_id("upload-progress")
    expect(progress).to_have_attribute("data-phase", "done", timeout=JOB_TIMEOUT_MS)
    expect(progress).to_have_attribute("value", "100")
    expect(page.get_by_test_id("upload-progress-text")).to_have_text("Storing: 100 %")
    report = page.get_by_test_id("upload-report")
    expect(report).to_be_visible()
    return report


def create_cases(page: Page, within: Locator | None = None) -> int:
    """Press "Create cases" under an upload or import report; returns the number of cases the screen says."""
    scope = within if within is not None else page.get_by_test_id("upload-report")
    scope.get_by_role("button", name="Create cases").click()
    said = scope.get_by_test_id("cases-created")
    expect(said).to_contain_text("case(s) created")
    match = re.search(r"(\d+) case", said.inner_text())
    assert match is not None
    return int(match.group(1))


def search_pacs(page: Page, slug: str, *, patient: str = "", accession: str = "", modality: str = "") -> Locator:
    """Search the project's PACS on the data-in screen; returns the results table."""
    open_data(page, slug)
    form = page.get_by_role("form", name="Import from PACS")
    if patient:
        form.get_by_label("Patient (ID or name)").fill(patient)
    if accession:
        form.get_by_label("Accession number").fill(accession)
    if modality:
        form.get_by_label("Modality").fill(modality)
    form.get_by_role("button", name="Search").click()
    expect(form.get_by_role("status").first).to_contain_text("studies found")
    return form.get_by_role("table")


def import_studies(page: Page, study_uids: list[str]) -> Locator:
    """Pick studies among the search results and import them; waits for the import job; returns its report."""
    form = page.get_by_role("form", name="Import from PACS")
    for uid in study_uids:
        form.get_by_label(f"Pick {uid}").check()
    form.get_by_role("button", name=re.compile(r"^Import \d+ studies$")).click()
    report = page.get_by_test_id("import-report")
    expect(report).to_be_visible(timeout=JOB_TIMEOUT_MS)
    return report
