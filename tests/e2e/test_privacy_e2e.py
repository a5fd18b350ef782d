"""Privacy through the real server: a DICOM series with patient tags goes in, no tag comes out.

One `streamlit run app.py` with a fresh HOME, TMPDIR and MRI_HOME of its own, its stdout and
stderr in a file. Chromium uploads a DICOM series whose files carry a patient's name, ID, birth
date, address, institution, referring physician and accession number (`tests/scans.py`
SECRET_TAGS, on real slices), reads it on Diagnose, scans all slices, downloads the PDF report
(with Grad-CAM, Grad-CAM++ and Score-CAM); uploads a zip of the same files on Batch (its
uploader takes images and zips only), downloads the CSV and the heatmap zip, opens one on
Diagnose and downloads that report too; downloads the model zip on Models. Then, with the
server stopped: no identifying string (nor a variant of it: the name's parts, the birth date
written other ways) is in any page's HTML, any websocket message the server sent, the server's
output, any file under that HOME, TMPDIR or MRI_HOME, or any download (zips opened, PDF text
extracted, raw bytes too). The reading log the pages wrote under MRI_HOME holds the readings with
their fixed columns only: no file name either. And the server's output over the whole flow has no
traceback, no warning and no progress bar.
"""

from __future__ import annotations

import base64
import binascii
import csv
import gzip
import io
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from e2e.browser import PLOT, UPLOAD_INPUT
from scans import SECRET_TAGS, dicom_bytes, stack_of

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

SLICES = 4
STUDY, SERIES = "MR BRAIN W/WO", "AX T1 POST"  # the only DICOM tags a page may show

# Every identifying value, and the ways a program could print it. Text (page HTML, the server's
# output, PDF text) is searched case-insensitively; raw bytes exactly, as ASCII and as UTF-16.
SECRETS = sorted({
    *SECRET_TAGS.values(),
    "Secretname", "Jane", "Secretname Jane", "Jane Secretname", "Secretname, Jane",
    "PID-77341", "77341-SECRET",
    "1961-04-23", "23.04.1961", "04/23/1961", "23/04/1961", "1961/04/23", "April 23, 1961",
    "23 April 1961", "Apr 23, 1961", "23 Apr 1961",
    "12 Hidden Lane", "Hidden Lane", "Privateville",
    "Confidential General", "Undisclosed", "Doctor Undisclosed",
    "99887766", "OTHER-ID-5521",
})

# The server's output over the whole flow: any of these is noise (or worse) to fix at its cause.
NOISE = re.compile(r"Traceback|Stack \(most recent call last\)|WARNING|Warning:|\b[WE]\d{4} \d\d:\d\d|━|/step\b")
# Streamlit's own log lines carry no level unless asked: this server names it, so a warning shows.
LOG_FORMAT = {"STREAMLIT_LOGGER_MESSAGE_FORMAT": "%(asctime)s %(levelname)s %(name)s: %(message)s"}


def secrets_in_text(text: str) -> list[str]:
    folded = text.casefold()
    return [s for s in SECRETS if s.casefold() in folded]


def secrets_in_bytes(data: bytes) -> list[str]:
    return [s for s in SECRETS if s.encode() in data or s.encode("utf-16-le") in data]


DATA_URI = re.compile(r"data:[\w/+.-]*(?:;[\w=.-]+)*;base64,([A-Za-z0-9+/=]+)")


def secrets_in_html(html: str) -> list[str]:
    """The page's text case-insensitively; an embedded base64 image (a `data:` URI) decoded and its
    bytes searched exactly, as a file's are: base64 read as text spells "jAnE" now and then."""
    hits = set(secrets_in_text(DATA_URI.sub("data:", html)))
    for encoded in DATA_URI.findall(html):
        try:
            hits.update(secrets_in_bytes(base64.b64decode(encoded)))
        except (binascii.Error, ValueError):
            hits.update(secrets_in_text(encoded))  # not base64 after all: read it as text
    return sorted(hits)


def readable_parts(name: str, data: bytes, depth: int = 0):
    """(name, bytes) -> (label, bytes or str) for the file and everything readable inside it: zip
    members (and zips in zips, as a Keras archive in a model zip), gzip, a PDF's text and metadata."""
    yield name, data
    if depth > 3:
        return
    if data[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for member in archive.namelist():
                yield f"{name}!{member} (name)", member
                yield from readable_parts(f"{name}!{member}", archive.read(member), depth + 1)
    elif data[:2] == b"\x1f\x8b":
        yield from readable_parts(f"{name} (gunzipped)", gzip.decompress(data), depth + 1)
    elif data[:5] == b"%PDF-":
        from pypdf import PdfReader

        reader = PdfReader(io.BytesIO(data))
        yield f"{name} (text)", "\n".join(page.extract_text() or "" for page in reader.pages)
        yield f"{name} (metadata)", repr(dict(reader.metadata or {}))


def leaks_in(name: str, data: bytes) -> dict[str, list[str]]:
    found = {}
    for label, part in readable_parts(name, data):
        hits = secrets_in_text(part) if isinstance(part, str) else secrets_in_bytes(part)
        if hits:
            found[label] = hits
    return found


@dataclass
class Flow:
    """What one run through the pages left behind."""

    html: dict[str, str] = field(default_factory=dict)  # step -> page.content()
    sent: list[bytes] = field(default_factory=list)  # every websocket message the server sent the browser
    downloads: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # step -> (file name, bytes)
    server_output: str = ""
    folders: dict[str, Path] = field(default_factory=dict)  # HOME, TMPDIR, MRI_HOME
    uploads: list[tuple[str, bytes]] = field(default_factory=list)  # the series' files, as uploaded


def series_files(typed_dir: Path) -> list[tuple[str, bytes]]:
    """SLICES real glioma slices as a DICOM series, every file carrying SECRET_TAGS."""
    stack = stack_of(sorted((typed_dir / "glioma").iterdir())[:SLICES], size=224)
    return [(f"IM{i + 1:04d}.dcm", dicom_bytes(stack[i], position=5.0 * i, instance=i + 1, StudyDescription=STUDY,
                                                SeriesDescription=SERIES, **SECRET_TAGS))
            for i in range(SLICES)]


def zip_of(files: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files:
            archive.writestr(f"series/{name}", data)
    return buffer.getvalue()


def wait_until_idle(page) -> None:
    """The script run that a click or upload started has ended: no running icon, no stale element."""
    page.wait_for_timeout(300)
    page.wait_for_function("""() => !document.querySelector('[data-testid="stStatusWidgetRunningIcon"]')
                                    && !document.querySelector('[data-stale="true"]')""")


def choose(page, label: str, option: str) -> None:
    box = page.get_by_role("combobox", name=label)
    box.click()
    box.press_sequentially(option)  # opens the list if the click only focused the box, and filters it
    page.get_by_role("option", name=option, exact=True).click()


def download(page, flow: Flow, step: str, button: str) -> bytes:
    with page.expect_download() as event:
        page.get_by_role("button", name=button).click()
    data = Path(event.value.path()).read_bytes()
    assert data, f"{step}: {button} gave an empty file"
    flow.downloads[step] = (event.value.suggested_filename, data)
    wait_until_idle(page)  # a download button's click reruns the page
    return data


def diagnose_series(page, flow: Flow, files: list[tuple[str, bytes]]) -> None:
    page.get_by_text("Upload one axial brain MRI slice").wait_for()
    page.locator(UPLOAD_INPUT).set_input_files(
        files=[{"name": name, "mimeType": "application/dicom", "buffer": data} for name, data in files])
    page.get_by_text("Tumor probability", exact=True).wait_for()
    page.get_by_text(f"{STUDY} · {SERIES} · {SLICES} axial slice(s)").wait_for()  # what may be shown, is
    wait_until_idle(page)
    flow.html["diagnose: series read"] = page.content()

    page.get_by_role("button", name="Scan all slices").click()
    page.locator(PLOT).filter(has_text="Tumor probability per slice").wait_for()
    wait_until_idle(page)
    flow.html["diagnose: all slices scanned"] = page.content()
    pdf = download(page, flow, "diagnose: report of the series", "Download report (PDF)")
    assert pdf.startswith(b"%PDF-")
    for method in ("Grad-CAM++", "Score-CAM"):  # tf-keras-vis's methods: their own code path
        choose(page, "Heatmap method", method)
        page.locator('[data-testid="stImage"]').filter(has_text=method).wait_for()
        wait_until_idle(page)
        flow.html[f"diagnose: {method}"] = page.content()
        download(page, flow, f"diagnose: report with {method}", "Download report (PDF)")


def batch_zip(page, flow: Flow, app_url: str, files: list[tuple[str, bytes]]) -> None:
    page.goto(f"{app_url}/batch")
    page.get_by_text("Upload several slices").wait_for()
    page.locator(UPLOAD_INPUT).set_input_files(
        files=[{"name": "series.zip", "mimeType": "application/zip", "buffer": zip_of(files)}])
    page.get_by_role("button", name="Table (CSV)").wait_for()  # the table is complete
    wait_until_idle(page)
    flow.html["batch: zip read"] = page.content()
    rows = list(csv.DictReader(io.StringIO(download(page, flow, "batch: table", "Table (CSV)").decode())))
    assert rows and all(row["file"].startswith("series.zip") for row in rows)  # the series, however many slices read
    with zipfile.ZipFile(io.BytesIO(download(page, flow, "batch: heatmaps", "Heatmaps (zip)"))) as heatmaps:
        names = heatmaps.namelist()
    heatmap_names = [n for n in names if not n.startswith("masks/")]
    assert len(heatmap_names) == len(rows)  # and a segmenting model's masks under masks/, named alike
    assert set(names) - set(heatmap_names) <= {f"masks/{n}" for n in heatmap_names}

    page.get_by_role("button", name="Open on Diagnose").click()  # the file, in memory, to Diagnose
    page.locator('[data-testid="stMetric"]').filter(has_text="Tumor probability").wait_for()
    wait_until_idle(page)
    flow.html["diagnose: opened from batch"] = page.content()
    download(page, flow, "diagnose: report of the file opened from batch", "Download report (PDF)")


def models_zip(page, flow: Flow, app_url: str) -> None:
    page.goto(f"{app_url}/models")
    page.get_by_role("button", name="Download as zip").wait_for()
    wait_until_idle(page)
    flow.html["models"] = page.content()
    download(page, flow, "models: model package", "Download as zip")


@pytest.fixture(scope="module")
def flow(browser, start_app, typed_dir, tmp_path_factory) -> Flow:
    """The whole flow through one fresh server, stopped before anything is checked."""
    root = tmp_path_factory.mktemp("privacy")
    folders = {name: root / name.lower() for name in ("HOME", "TMPDIR", "MRI_HOME")}
    for folder in folders.values():
        folder.mkdir()
    log_path = root / "server.log"  # outside the three folders: it holds what the server printed
    files = series_files(typed_dir)
    result = Flow(folders=folders, uploads=files)
    with start_app(log_path, {**LOG_FORMAT, **{name: str(path) for name, path in folders.items()}}) as app_url:
        context = browser.new_context(viewport={"width": 1280, "height": 1000}, accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(120_000)  # the first model load imports TensorFlow
        # Tables are drawn on a canvas, so the HTML misses their cells: keep what the server sent.
        page.on("websocket", lambda socket: socket.on(
            "framereceived", lambda frame: result.sent.append(frame if isinstance(frame, bytes) else frame.encode())))
        try:
            page.goto(app_url)
            diagnose_series(page, result, files)
            batch_zip(page, result, app_url, files)
            models_zip(page, result, app_url)
        finally:
            context.close()
    result.server_output = log_path.read_text(errors="replace")
    return result


def test_the_search_finds_every_tag_in_the_uploaded_files(typed_dir):
    """The checks below can see a leak: each identifying value is in every uploaded file's bytes."""
    for name, data in series_files(typed_dir):
        assert set(SECRET_TAGS.values()) <= set(secrets_in_bytes(data)), name
    assert set(leaks_in("series.zip", zip_of(series_files(typed_dir)))) >= {"series.zip!series/IM0001.dcm"}


def test_the_page_search_reads_embedded_images_as_bytes():
    """A base64 image whose letters spell a name by chance is no leak; a name in its bytes, or in the
    page's text, is."""
    chance = base64.b64encode(b"\x8d\xa9\xdeXYZ").decode()  # "janeWFla": no name in these bytes
    assert "jane" in chance.casefold()
    assert secrets_in_html(f'<img src="data:image/png;base64,{chance}">') == []
    named = base64.b64encode(b"\x89PNG tEXt Author Secretname").decode()
    assert secrets_in_html(f'<img src="data:image/png;base64,{named}">') == ["Secretname"]
    assert secrets_in_html("<p>jane</p>") == ["Jane"]


def test_the_flow_offered_every_download(flow):
    names = {step: name for step, (name, _) in flow.downloads.items()}
    assert names == {"diagnose: report of the series": "mri-reading-report.pdf",
                     "diagnose: report with Grad-CAM++": "mri-reading-report.pdf",
                     "diagnose: report with Score-CAM": "mri-reading-report.pdf",
                     "batch: table": "batch_readings.csv", "batch: heatmaps": "batch_heatmaps.zip",
                     "diagnose: report of the file opened from batch": "mri-reading-report.pdf",
                     "models: model package": names["models: model package"]}
    assert names["models: model package"].endswith(".zip")
    report_text = dict(readable_parts("report", flow.downloads["diagnose: report of the series"][1]))["report (text)"]
    assert "probability" in report_text.casefold()  # the PDF's text is read, so a name in it would be found
    assert any(b"series.zip" in message for message in flow.sent)  # the table's cells are seen


def test_no_identifying_tag_in_any_page(flow):
    leaks = {step: hits for step, html in flow.html.items() if (hits := secrets_in_html(html))}
    assert not leaks


def test_no_identifying_tag_in_anything_the_server_sent_the_browser(flow):
    leaks = [hits for message in flow.sent if (hits := secrets_in_bytes(message))]
    assert flow.sent and not leaks


def test_no_identifying_tag_in_any_download(flow):
    leaks = {}
    for step, (name, data) in flow.downloads.items():
        leaks.update(leaks_in(f"{step}: {name}", data))
    assert not leaks


def test_no_identifying_tag_in_the_server_output(flow):
    assert not secrets_in_text(flow.server_output)


def test_no_identifying_tag_in_any_file_the_server_wrote(flow):
    leaks, seen = {}, 0
    for name, folder in flow.folders.items():
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()):
            seen += 1
            leaks.update(leaks_in(f"{name}/{path.relative_to(folder)}", path.read_bytes()))
    assert seen, "the server wrote no file at all under its HOME (Keras's keras.json, at least): was it used?"
    assert not leaks


def test_the_reading_log_holds_the_readings_and_no_file_name(flow):
    """The one file the pages write from an upload (DESIGN.md, "Errors"): the SHA-256 of the files, never
    their names, the series' folder or the zip's name; only the log's own columns."""
    from mri_core.present import reading_log

    log = reading_log.log_path(flow.folders["MRI_HOME"])
    text = log.read_text()
    rows = list(csv.DictReader(io.StringIO(text)))
    readings = [row for row in rows if row["event"] == "reading"]
    assert len(readings) >= 3, "the series read, its most suspicious slice after the scan, the file from Batch"
    assert tuple(rows[0]) == reading_log.COLUMNS
    series_sha = reading_log.image_sha256(data for _, data in flow.uploads)  # every file, in upload order
    assert readings[0]["image_sha256"] == series_sha and readings[0]["slice_number"] == str(SLICES // 2 + 1)
    for name in ("IM0001", ".dcm", "series.zip", "series/", "series-"):
        assert name not in text, name


def test_server_output_has_no_traceback_warning_or_progress_bar(flow):
    noise = [line for line in flow.server_output.splitlines() if NOISE.search(line)]
    assert not noise, "\n".join(noise[:40])
