"""The pages people open from an email, in a real headless Chromium with JavaScript off, at 375 px.

Driven over the DevTools protocol (Debian's chromium, no browser download): the page is opened,
its DOM read, and its buttons clicked with mouse events, so each form posts as a person's click would.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from websockets.sync.client import connect

from domain.signups.signup import Purpose, State
from runtime import System
from runtime.settings import Settings
from tests.conftest import SLUG, free_port
from tests.e2e.test_report_page import CHROMIUM
from tests.e2e.test_serve import Server

CONSULTATION = "Help Shape Our Global Community Code of Conduct"
EARLY, LATE = "Working session on the draft Code of Conduct (13:00 UTC)", "Working session on the draft Code of Conduct (18:00 UTC)"


class Browser:
    """One tab of a headless Chromium, scripts disabled, the size of a small phone."""

    def __init__(self, profile: Path) -> None:
        assert Path(CHROMIUM).exists(), "Chromium is needed: apt-get install chromium (.ci/run does)"
        port = free_port()
        self.process = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--remote-debugging-port={port}", f"--user-data-dir={profile}",
             "--window-size=375,812", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                targets = httpx.get(f"http://127.0.0.1:{port}/json/list").json()
                tab = next(t for t in targets if t["type"] == "page")
                break
            except (httpx.TransportError, StopIteration):
                assert time.monotonic() < deadline, "chromium did not start"
                time.sleep(0.1)
        self.stack = contextlib.ExitStack()
        self.ws = self.stack.enter_context(connect(tab["webSocketDebuggerUrl"], max_size=None))
        self.ids = 0
        self.events: list[dict[str, Any]] = []
        self.call("Page.enable")
        self.call("Network.enable")
        self.call("Emulation.setScriptExecutionDisabled", value=True)
        self.call("Emulation.setDeviceMetricsOverride", width=375, height=812, deviceScaleFactor=1, mobile=True)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.ids += 1
        self.ws.send(json.dumps({"id": self.ids, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=30))
            if message.get("id") == self.ids:
                assert "error" not in message, message
                return message["result"]
            self.events.append(message)

    def _loaded(self) -> int:
        """Waits for the page to load; the status of its document."""
        while not any(e["method"] == "Page.loadEventFired" for e in self.events):
            self.events.append(json.loads(self.ws.recv(timeout=30)))
        status = [e["params"]["response"]["status"] for e in self.events
                  if e["method"] == "Network.responseReceived" and e["params"]["type"] == "Document"][-1]
        self.events.clear()
        return status

    def open(self, url: str) -> int:
        self.events.clear()
        self.call("Page.navigate", url=url)
        return self._loaded()

    def html(self) -> str:
        root = self.call("DOM.getDocument")["root"]["nodeId"]
        return self.call("DOM.getOuterHTML", nodeId=root)["outerHTML"]

    def boxes(self, selector: str) -> list[tuple[float, float, float, float]]:
        """(x, y, width, height) of each element matching `selector`, as laid out."""
        root = self.call("DOM.getDocument")["root"]["nodeId"]
        found = []
        for node in self.call("DOM.querySelectorAll", nodeId=root, selector=selector)["nodeIds"]:
            model = self.call("DOM.getBoxModel", nodeId=node)["model"]
            xs, ys = model["border"][0::2], model["border"][1::2]
            found.append((min(xs), min(ys), model["width"], model["height"]))
        return found

    def click(self, label: str) -> int:
        """Clicks the button with this text, as a mouse would; the status of the page it leads to."""
        root = self.call("DOM.getDocument")["root"]["nodeId"]
        nodes = self.call("DOM.querySelectorAll", nodeId=root, selector="button")["nodeIds"]
        labels = [re.sub(r"<[^>]+>", "", self.call("DOM.getOuterHTML", nodeId=n)["outerHTML"]) for n in nodes]
        node = nodes[labels.index(label)]
        self.call("DOM.scrollIntoViewIfNeeded", nodeId=node)
        model = self.call("DOM.getBoxModel", nodeId=node)["model"]["content"]
        x, y = sum(model[0::2]) / 4, sum(model[1::2]) / 4
        self.events.clear()
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)
        return self._loaded()

    def screenshot(self, path: Path) -> None:
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))

    def close(self) -> None:
        self.stack.close()
        self.process.terminate()
        self.process.wait(timeout=30)


def heading(html: str) -> str:
    (h1,) = re.findall(r"<h1>(.*?)</h1>", html)
    return h1


def accessible(browser: Browser) -> str:
    """The rules every page keeps, checked on the DOM as laid out; returns its title."""
    html = browser.html()
    assert '<html lang="en">' in html and len(re.findall(r"<h1>", html)) == 1
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert ":focus-visible{outline:3px solid" in html and "<script" not in html
    assert not re.search(r'(src|href)="(https?:)?//', html)  # nothing loaded from elsewhere
    for label in re.findall(r"<button[^>]*>(.*?)</button>", html):
        assert label.strip(), "a button without a label"
    for _, _, width, height in browser.boxes("button") + browser.boxes("ul.links a"):
        assert width >= 44 and height >= 44, (width, height)
    for x, _, width, _ in browser.boxes("button, h1, p"):
        assert x >= 0 and x + width <= 375, "wider than the phone's screen"
    return re.search(r"<title>(.*?)</title>", html).group(1)


@pytest.fixture
def served(tmp_path: Path) -> Any:
    browser = Browser(tmp_path / "profile")  # first: without Chromium, no server is left running
    try:
        server = Server(tmp_path / "var", extra={"AGORA_SIGNUP_RATE_LIMIT_PER_MINUTE": "12"})
    except BaseException:
        browser.close()
        raise
    try:
        yield server, browser
    finally:
        browser.close()
        output = server.interrupt()
        assert server.process.returncode == 0 and "Traceback" not in output, output


def test_confirm_alternative_cancel_and_erase_in_a_browser_without_javascript(served: Any, tmp_path: Path) -> None:
    server, browser = served
    with System(Settings(data_dir=str(server.data_dir))) as system:
        # A consultation whose 13:00 session has one seat, already taken.
        now = datetime.now(UTC).replace(microsecond=0)
        seed = system.consultations.get(SLUG).definition
        sessions = tuple(msgspec.structs.replace(s, starts_at=now + timedelta(days=3 + i), capacity=1) for i, s in enumerate(seed.sessions))
        system.consultations.load(msgspec.structs.replace(seed, slug="pages", sessions=sessions))
        first = system.signups.request("pages", "session_1300", "First", "first@example.org", True)
        system.signups.confirm(first, system.signups.links.token(Purpose.CONFIRM, first, 1))
        me = system.signups.request("pages", "session_1300", "Zoë", "zoe@example.org", True)
        confirm = f"{server.url}/signups/{me}/confirm?token={system.signups.links.token(Purpose.CONFIRM, me, 1)}"
        manage = system.signups.links.token(Purpose.MANAGE, me)
        titles = set()

        # The confirm link: the session is full, which the page says before any click, offering the other one.
        assert browser.open(confirm) == 409
        html = browser.html()
        assert heading(html) == "This session is full" and EARLY in html
        titles.add(accessible(browser))
        browser.screenshot(tmp_path / "full.png")
        label = next(b for b in re.findall(r"<button[^>]*>(.*?)</button>", html) if LATE in b)
        assert browser.click(label) == 200
        html = browser.html()
        assert heading(html) == "Your seat is confirmed" and CONSULTATION in html and LATE in html
        assert f"You asked for “{EARLY}”; your seat is in this session instead." in html
        assert re.search(r'<time datetime="[0-9T:+-]+">\w+day \d{1,2} \w+ \d{4}, \d\d:\d\d–\d\d:\d\d UTC</time>', html)
        titles.add(accessible(browser))

        # Cancel: the page names the session and says what follows; the click does it.
        assert browser.open(f"{server.url}/signups/{me}/cancel?token={manage}") == 200
        html = browser.html()
        assert heading(html) == "Cancel your seat" and LATE in html and "calendar cancellation" in html
        titles.add(accessible(browser))
        assert browser.click("Cancel my seat") == 200
        assert heading(browser.html()) == "Your signup is cancelled"
        titles.add(accessible(browser))

        # The used confirm link is explained on GET, with how to sign up again.
        assert browser.open(confirm) == 404
        html = browser.html()
        assert heading(html) == "This link does not work" and "You cancelled this signup" in html and "<button" not in html
        titles.add(accessible(browser))

        # Erase, then every link of it says so.
        assert browser.open(f"{server.url}/signups/{me}/erase?token={manage}") == 200
        assert "Erasure is final" in browser.html()
        titles.add(accessible(browser))
        assert browser.click("Erase my name and email") == 200
        assert heading(browser.html()) == "Your name and email are erased"
        assert browser.open(f"{server.url}/signups/{me}/cancel?token={manage}") == 404
        assert "You erased this signup" in browser.html()

        # A confirmed seat is warned about before erasing; the served mailer sends its calendar cancellation, then erases.
        token = system.signups.links.token(Purpose.MANAGE, first)
        assert browser.open(f"{server.url}/signups/{first}/erase?token={token}") == 200
        html = browser.html()
        assert "Before you go on:" in html and "you hold a seat in this session" in html and "calendar cancellation" in html
        titles.add(accessible(browser))
        assert browser.click("Erase my name and email") == 200
        assert heading(browser.html()) == "Your seat is given up; your name and email are being erased"
        titles.add(accessible(browser))
        deadline = time.monotonic() + 30
        while system.signups.get(first).state is not State.ERASED:
            assert time.monotonic() < deadline, "the mailer did not finish the erasure"
            time.sleep(0.1)
        assert system.signups.contact(system.signups.get(first)) is None \
            and any(m.startswith("<erased.") for m in system.signups.get(first).sent)  # its cancellation went first
        assert browser.open(f"{server.url}/signups/{first}/erase?token={token}") == 404
        assert "You erased this signup" in browser.html()
        other = system.signups.request("pages", "session_1300", "Other", "other@example.org", True)
        token = system.signups.links.token(Purpose.MANAGE, other)

    # Errors are pages: a link cut before its token, an id that is not one, and too many clicks.
    assert browser.open(f"{server.url}/signups/{me}/confirm") == 400
    assert heading(browser.html()) == "This link is incomplete"
    titles.add(accessible(browser))
    assert browser.open(f"{server.url}/signups/not-an-id/confirm?token=x") == 404
    assert heading(browser.html()) == "This is not a link we sent"
    assert browser.open(f"{server.url}/signups/{other}/cancel?token={token}") == 200
    for _ in range(1000):  # until the signups' rate limit answers
        if httpx.post(f"{server.url}/signups/{other}/confirm", params={"token": "x"}).status_code == 429:
            break
    else:
        pytest.fail("a thousand clicks were never rate-limited")
    assert browser.click("Cancel my signup") == 429
    html = browser.html()
    assert heading(html) == "Please wait a moment" and re.search(r"Wait (a second|\d+ seconds|\d+ minutes), then try again", html)
    titles.add(accessible(browser))
    browser.screenshot(tmp_path / "rate-limited.png")
    assert len(titles) >= 8  # every situation has a title of its own
    assert httpx.get(f"{server.url}/favicon.ico").status_code == 200
