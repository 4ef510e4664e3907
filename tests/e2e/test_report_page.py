"""The seed's journey to its published report, on `agora serve` as a process, and the page in a real headless Chromium."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx

from runtime import System
from runtime.settings import Settings
from domain.staff.member import Role
from tests.conftest import PASSWORD, SLUG
from tests.e2e.test_serve import Server

CHROMIUM = "/usr/bin/chromium"  # Debian's; .ci/run installs it
QUOTED = "The consent section is finally clear."


def agora(data_dir: Path, *args: str) -> str:
    """The `agora` command as an operator runs it beside the server (it finds the embedded Redis by its socket)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_URL", "PERSISTENCE_MODULE", "SQLITE_", "POSTGRES_"))}
    env["AGORA_DATA_DIR"] = str(data_dir)
    done = subprocess.run([str(Path(sys.executable).parent / "agora"), *args], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    assert Path(CHROMIUM).exists(), "Chromium is needed: apt-get install chromium (.ci/run does)"
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0", *args],
        capture_output=True, text=True, timeout=90,
    )


def test_submit_review_close_publish_download_verify_and_open_the_page_in_chromium(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    server = Server(data_dir)
    try:
        url, report = server.url, f"{server.url}/consultations/{SLUG}/report"
        with System(Settings(data_dir=str(data_dir))) as system:
            admin = system.staff.enrol("root@example.org", "Root", PASSWORD, [Role.ADMIN], by=None)
            system.staff.enrol("reviewer@example.org", "Rita", PASSWORD, [Role.REVIEWER], by=admin)
            system.staff.enrol("editor@example.org", "Ed", PASSWORD, [Role.EDITOR], by=admin)
        tokens = {}
        for who in ("reviewer", "editor"):
            r = httpx.post(f"{url}/staff/token", json={"email": f"{who}@example.org", "password": PASSWORD})
            tokens[who] = {"Authorization": f"Bearer {r.json()['token']}"}

        answers = [
            {"familiarity": "read", "works_well": QUOTED, "join_session": True},
            {"familiarity": "know_well", "join_session": False},
            {"familiarity": "read", "works_well": "Buy watches"},
        ]
        for a in answers:
            assert httpx.post(f"{url}/consultations/{SLUG}/responses", json={"answers": a}).status_code == 201
        # Every response read: one quoted and tagged, one reviewed, one excluded as spam.
        for _ in range(3):
            claim = httpx.post(f"{url}/review/consultations/{SLUG}/claim-next", headers=tokens["reviewer"])
            assert claim.status_code == 201, claim.text
            case = f"{url}/review/responses/{claim.json()['response_id']}"
            text = httpx.get(case, headers=tokens["reviewer"]).json()["answers"].get("works_well")
            outcome = {"outcome": "reviewed"}
            if text == QUOTED:
                httpx.post(f"{case}/quotes", json={"question_id": "works_well", "start": 0, "end": len(QUOTED)}, headers=tokens["reviewer"])
                httpx.post(f"{case}/tags", json={"theme_id": "consent"}, headers=tokens["reviewer"])
                quoted = claim.json()["response_id"]
            elif text:
                httpx.post(f"{case}/flags", json={"flag": "spam", "reason": "an advert"}, headers=tokens["reviewer"])
                outcome = {"outcome": "excluded", "reason": "spam"}
            r = httpx.post(f"{case}/complete", json=outcome, headers=tokens["reviewer"])
            assert r.status_code == 201, r.text
        assert "recorded" in agora(data_dir, "consultation", "close", SLUG)

        desk = f"{url}/staff/consultations/{SLUG}/report"
        sections = {"we-asked": "We asked about the draft.", "you-said": "You said *consent* matters.", "we-did": "We rewrote it."}
        for key, text in sections.items():
            assert httpx.put(f"{desk}/sections/{key}", json={"title": key.replace("-", " ").title(), "markdown": text}, headers=tokens["editor"]).status_code == 200
        quote = {"response_id": quoted, "question_id": "works_well", "start": 0, "end": len(QUOTED)}
        assert httpx.post(f"{desk}/quotes", json=quote, headers=tokens["editor"]).status_code == 201
        published = httpx.post(f"{desk}/versions", json={"final": True}, headers=tokens["editor"])
        assert published.status_code == 201, published.text
        position = published.json()["after"]

        document = httpx.get(report, params={"after": position}).json()
        assert (document["final"], document["responses"]["received"], document["responses"]["excluded"]["total"]) == (True, 3, 1)
        data = httpx.get(f"{report}/versions/1/data.zip")
        assert data.status_code == 200
        with zipfile.ZipFile(io.BytesIO(data.content)) as z:
            assert z.read("report.json") == httpx.get(f"{report}/versions/1").content
            assert "familiarity,How familiar are you with the current Code of Conduct?,single_choice,read,I have read it,1,2" in z.read("answers.csv").decode()
            assert QUOTED in z.read("quotes.csv").decode()
        assert agora(data_dir, "report", "verify", SLUG).startswith("ok: version 1")

        # The page in a real browser: it renders, with the counts and the charts, and logs no error.
        page = f"{report}.html"
        dom = chromium("--dump-dom", page)
        assert dom.returncode == 0, dom.stderr
        assert "What we heard: Help Shape Our Global Community Code of Conduct" in dom.stdout
        assert "We received 3 responses, and reviewers completed 3 of them (100.0%)" in dom.stdout and QUOTED in dom.stdout
        assert dom.stdout.count("<svg") >= 3 and dom.stdout.count("<rect") >= 6  # two questions and the themes, a bar per option
        assert "Interim report" not in dom.stdout
        shot = tmp_path / "report.png"
        screenshot = chromium("--window-size=1000,3000", f"--screenshot={shot}", page)
        assert screenshot.returncode == 0 and shot.stat().st_size > 10_000, screenshot.stderr
        # Its "Every version" link opens a page in the browser too, not JSON.
        listing = chromium("--dump-dom", f"{report}/versions.html")
        assert listing.returncode == 0 and "every version of the report" in listing.stdout and f'href="/consultations/{SLUG}/report/versions/1.html"' in listing.stdout
        # A version that is not there is a page too, not the problem's JSON.
        missing = chromium("--dump-dom", f"{report}/versions/9.html")
        assert missing.returncode == 0 and "<h1>No such report version</h1>" in missing.stdout and "There is no version 9" in missing.stdout
        console = [line for line in dom.stderr.splitlines() + screenshot.stderr.splitlines() + listing.stderr.splitlines() if ":CONSOLE" in line]
        assert console == []
    finally:
        output = server.interrupt()
    assert server.process.returncode == 0, output
    assert "Traceback" not in output
