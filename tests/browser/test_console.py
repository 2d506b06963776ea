"""The console in headless chromium against a real `earshot serve`: sign in by keyboard with a
key; a call the test ingests after signing in is in the list within seconds; its page shows
every turn, the recording loads and plays, clicking a turn seeks to it and the turn being spoken
is marked; filters and issues-only narrow the list; an integration is created with its setup
steps and its URL shown; a refused delivery is replayed from the log; a `read` key cannot reach
the pages that manage, and a form posted with a forged CSRF token changes nothing; sign-out ends
the session. The main pages are saved as screenshots under target/console-screenshots."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import math
import struct
import time
import urllib.error
import urllib.request
import uuid
import wave
from pathlib import Path

from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

import earshot
from server_process import Server

TURNS = [
    ("assistant", "Thanks for calling Acme, how can I help?", 0, 2500),
    ("user", "My parcel never arrived.", 3000, 5000),
    ("assistant", "I am sorry, let me send a new one today.", 5500, 8000),
]

#: How soon a stored call must be in the list ("within seconds").
LIST_DEADLINE_SECONDS = 5.0


def tone(seconds: float = 8.5, rate: int = 8000) -> bytes:
    """A quiet sine tone as 16-bit PCM WAV, which every browser plays."""
    frames = b"".join(
        struct.pack("<h", int(3000 * math.sin(2 * math.pi * 440 * index / rate)))
        for index in range(int(seconds * rate))
    )
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as output:
        output.setnchannels(1)
        output.setsampwidth(2)
        output.setframerate(rate)
        output.writeframes(frames)
    return buffer.getvalue()


def client_of(server: Server) -> earshot.Earshot:
    return earshot.Earshot(api_key=server.api_key, base_url=server.url, project=server.project_id)


def sign_in(browser, server: Server, key: str) -> None:
    """Signs in with the keyboard alone: Tab to the key field, type, Enter."""
    browser.get(server.url + "/console/sign-in")
    ActionChains(browser).send_keys(Keys.TAB).send_keys(key).send_keys(Keys.ENTER).perform()
    # Answered: signed in (another page), or refused (the form again, with why).
    WebDriverWait(browser, 30).until(
        lambda driver: not driver.current_url.endswith("/console/sign-in")
        or driver.find_elements(By.CSS_SELECTOR, "[role=alert]")
    )


def sign_out(browser, wait: WebDriverWait) -> None:
    browser.find_element(By.XPATH, "//button[text()='Sign out']").click()
    wait.until(lambda driver: driver.current_url.endswith("/console/sign-in"))


def listed_call_ids(browser) -> list:
    return [cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "tbody tr td:nth-child(3)")]


def test_sign_in_find_the_call_play_and_seek(server: Server, browser, screenshots: Path) -> None:
    wait = WebDriverWait(browser, 30)
    sign_in(browser, server, "es_not_a_key")
    assert "not valid" in browser.find_element(By.CSS_SELECTOR, "[role=alert]").text
    sign_in(browser, server, server.api_key)
    wait.until(lambda driver: driver.current_url.endswith("/console/calls"))

    # Ingested now: in the list (reloaded as a person would) within seconds of the answer.
    client_of(server).ingest_conversations(
        conversations=[earshot.Conversation(
            call_id="browser-call-1",
            transcript=[earshot.Turn(role, text, start, end) for role, text, start, end in TURNS],
            audio=earshot.Audio.from_bytes(tone()),
            tags=["vip"],
        )]
    )  # fmt: skip
    acknowledged = time.monotonic()

    def listed(driver) -> bool:
        driver.get(server.url + "/console/calls")
        return "browser-call-1" in listed_call_ids(driver)

    WebDriverWait(browser, 30, poll_frequency=0.2).until(listed)
    seconds = time.monotonic() - acknowledged
    assert seconds < LIST_DEADLINE_SECONDS, f"listed after {seconds:.1f} s"
    link = browser.find_element(By.LINK_TEXT, "browser-call-1")
    row = link.find_element(By.XPATH, "./ancestor::tr")
    assert "vip" in row.text and "none" in row.text
    browser.save_screenshot(str(screenshots / "calls.png"))

    link.click()
    wait.until(lambda driver: "/console/calls/" in driver.current_url)
    turns = browser.find_elements(By.CSS_SELECTOR, ".turn")
    assert [turn.find_element(By.CSS_SELECTOR, "div").text for turn in turns] == [text for _, text, _, _ in TURNS]
    assert "sdk" in browser.find_element(By.XPATH, "//h2[text()='How it arrived']/following-sibling::table").text
    player = browser.find_element(By.TAG_NAME, "audio")
    # The recording loads (metadata read through the ranged route) and is the call's length.
    wait.until(lambda driver: driver.execute_script("return arguments[0].readyState", player) >= 1)
    duration = browser.execute_script("return arguments[0].duration", player)
    assert 8.0 < duration < 9.0, duration
    # Selecting the third turn seeks there and plays; the turn being spoken is marked.
    turns[2].click()
    wait.until(lambda driver: driver.execute_script("return arguments[0].currentTime", player) >= 5.5)
    assert not browser.execute_script("return arguments[0].paused", player)
    wait.until(lambda driver: "speaking" in turns[2].get_attribute("class"))
    assert turns[2].get_attribute("aria-current") == "true"
    assert "speaking" not in turns[0].get_attribute("class")
    browser.execute_script("arguments[0].pause()", player)
    browser.save_screenshot(str(screenshots / "call.png"))
    # By keyboard too: focus the first turn, press Enter.
    browser.execute_script("arguments[0].focus()", turns[0])
    turns[0].send_keys(Keys.ENTER)
    wait.until(lambda driver: driver.execute_script("return arguments[0].currentTime", player) < 2.5)

    # At phone width the list still shows the call (the wide columns fold away).
    browser.set_window_size(390, 844)
    browser.get(server.url + "/console/calls")
    assert browser.find_element(By.LINK_TEXT, "browser-call-1").is_displayed()
    assert not browser.find_element(By.CSS_SELECTOR, "th.wide").is_displayed()
    browser.save_screenshot(str(screenshots / "calls-phone.png"))

    sign_out(browser, wait)
    browser.get(server.url + "/console/calls")
    assert browser.current_url.endswith("/console/sign-in")


def test_filters_and_issues_only_narrow_the_list(server: Server, browser, screenshots: Path) -> None:
    client = client_of(server)
    tag = f"filter-{uuid.uuid4().hex[:8]}"
    slow = client.create_check(f"slow answer {tag}", "p95_response_latency_ms", "greater_than", 1500)
    client.create_monitor(f"support {tag}", [slow["id"]], tags=[tag])

    def call(call_id: str, answer_after_ms: int) -> earshot.Conversation:
        return earshot.Conversation(
            call_id=call_id,
            tags=[tag],
            transcript=[
                earshot.Turn("user", "Where is my order?", 0, 1000),
                earshot.Turn("assistant", "Let me check.", 1000 + answer_after_ms, 2000 + answer_after_ms),
            ],
        )

    client.ingest_conversations(conversations=[call(f"{tag}-quick", 200), call(f"{tag}-slow", 3000)])
    for suffix in ["quick", "slow"]:
        client.wait_for_datapoint(f"{tag}-{suffix}", timeout=30)
    wait = WebDriverWait(browser, 30)
    sign_in(browser, server, server.api_key)
    wait.until(lambda driver: driver.current_url.endswith("/console/calls"))

    browser.find_element(By.NAME, "tag").send_keys(tag)
    browser.find_element(By.XPATH, "//button[text()='Filter']").click()
    wait.until(lambda driver: f"tag={tag}" in driver.current_url)
    assert sorted(listed_call_ids(browser)) == [f"{tag}-quick", f"{tag}-slow"]
    browser.find_element(By.NAME, "issues_only").click()
    browser.find_element(By.XPATH, "//button[text()='Filter']").click()
    wait.until(lambda driver: "issues_only=1" in driver.current_url)
    assert listed_call_ids(browser) == [f"{tag}-slow"]
    failed = browser.find_element(By.CSS_SELECTOR, "tbody tr td:nth-child(6)").text
    assert f"slow answer {tag}" in failed and "⚠" in failed
    # The filters stay in the form for the next search.
    assert browser.find_element(By.NAME, "tag").get_attribute("value") == tag

    browser.get(server.url + "/console/monitors")
    browser.find_element(By.LINK_TEXT, f"support {tag}").click()
    wait.until(lambda driver: "/console/monitors/" in driver.current_url)
    assert browser.find_element(By.LINK_TEXT, f"{tag}-slow").is_displayed()
    assert browser.find_elements(By.LINK_TEXT, f"{tag}-quick") == []
    assert browser.find_element(By.CSS_SELECTOR, "svg[role=img]").get_attribute("aria-label").startswith("Issue rate")
    browser.save_screenshot(str(screenshots / "monitor.png"))


def post_bland(url: str, secret: str, body: bytes) -> int:
    """Posts a Bland webhook signed as Bland signs it (hex HMAC-SHA256 of the body)."""
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    request = urllib.request.Request(
        url, data=body, method="POST",
        headers={"content-type": "application/json", "x-webhook-signature": signature},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_an_integration_is_created_and_a_refused_delivery_replayed(
    server: Server, browser, screenshots: Path
) -> None:
    wait = WebDriverWait(browser, 30)
    sign_in(browser, server, server.api_key)
    wait.until(lambda driver: driver.current_url.endswith("/console/calls"))
    browser.find_element(By.LINK_TEXT, "Integrations").click()
    browser.find_element(By.LINK_TEXT, "New integration").click()
    browser.find_element(By.LINK_TEXT, "bland").click()
    wait.until(lambda driver: "provider=bland" in driver.current_url)
    assert "signing secret" in browser.find_element(By.ID, "steps").find_element(By.XPATH, "..").text
    browser.save_screenshot(str(screenshots / "new-integration.png"))
    secret = "bland-browser-secret"
    browser.find_element(By.ID, "display_name").send_keys("Bland from the browser")
    browser.find_element(By.ID, "secret-webhook_secret").send_keys(secret)
    browser.find_element(By.XPATH, "//button[text()='Create']").click()
    wait.until(lambda driver: "created=1" in driver.current_url)
    url = browser.find_element(By.ID, "webhook-url").get_attribute("value")
    assert url.startswith(server.url + "/v0/voice/bland/monitor/pub_"), url
    copy = browser.find_element(By.CSS_SELECTOR, "button[data-copy]")
    copy.click()
    wait.until(lambda driver: copy.text == "Copied")

    # A delivery that authenticated but carries no call id is refused, kept, and replayed.
    assert post_bland(url, secret, json.dumps({"summary": "no call id"}).encode()) == 400
    browser.refresh()
    row = browser.find_element(By.XPATH, "//tbody/tr[1]")
    assert "rejected (400)" in row.text and "call_id" in row.text
    browser.save_screenshot(str(screenshots / "integration.png"))
    row.find_element(By.XPATH, ".//button[text()='Replay']").click()
    wait.until(lambda driver: "replayed=" in driver.current_url)
    assert "Replayed" in browser.find_element(By.CSS_SELECTOR, "[role=status]").text
    rows = browser.find_elements(By.XPATH, "//tbody/tr")
    assert len(rows) == 2 and all("rejected (400)" in row.text for row in rows)

    # A form whose CSRF token is forged changes nothing.
    browser.execute_script(
        "const form = document.querySelector(\"form[action$='/status']\");"
        "form.querySelector('[name=csrf]').value = 'forged'; form.submit();"
    )
    wait.until(lambda driver: "expired" in driver.find_element(By.CSS_SELECTOR, "[role=alert]").text)
    browser.back()
    browser.refresh()
    assert "● active" in browser.find_element(By.TAG_NAME, "main").text

    # A read key sees the integration but reaches no page or button that manages it.
    viewer = client_of(server).create_api_key("console viewer", ["read"])["secret"]
    page = browser.current_url.split("?")[0]
    sign_out(browser, wait)
    sign_in(browser, server, viewer)
    wait.until(lambda driver: driver.current_url.endswith("/console/calls"))
    browser.get(page)
    assert browser.find_element(By.ID, "webhook-url").get_attribute("value") == url
    assert browser.find_elements(By.XPATH, "//button[text()='Replay']") == []
    assert browser.find_elements(By.XPATH, "//summary[text()='Rotate secrets']") == []
    browser.get(server.url + "/console/integrations/new")
    assert "lacks the admin scope" in browser.find_element(By.CSS_SELECTOR, "[role=alert]").text
    browser.get(server.url + "/console/operations")
    assert browser.find_elements(By.XPATH, "//button[text()='Retry']") == []
    browser.save_screenshot(str(screenshots / "operations.png"))
    sign_out(browser, wait)
