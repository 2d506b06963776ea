"""The console in headless chromium: sign in with a key; a call the test ingests is in the
list; its page shows every turn; the recording loads and plays, clicking a turn seeks to it and
the turn being spoken is marked; at phone width the list still shows the call; a wrong key
stays on the sign-in page; sign-out ends the session."""

from __future__ import annotations

import io
import math
import struct
import wave

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


def sign_in(browser, server: Server, key: str) -> None:
    browser.get(server.url + "/console/sign-in")
    field = browser.find_element(By.NAME, "api_key")
    field.send_keys(key)
    field.send_keys(Keys.ENTER)


def test_sign_in_find_the_call_play_and_seek(server: Server, browser) -> None:
    client = earshot.Earshot(api_key=server.api_key, base_url=server.url, project=server.project_id)
    client.ingest_conversations(
        conversations=[earshot.Conversation(
            call_id="browser-call-1",
            transcript=[earshot.Turn(role, text, start, end) for role, text, start, end in TURNS],
            audio=earshot.Audio.from_bytes(tone()),
            tags=["vip"],
        )]
    )  # fmt: skip
    client.wait_for_datapoint("browser-call-1")
    wait = WebDriverWait(browser, 30)

    sign_in(browser, server, "es_not_a_key")
    assert "not valid" in browser.find_element(By.CSS_SELECTOR, "[role=alert]").text
    sign_in(browser, server, server.api_key)
    wait.until(lambda driver: driver.current_url.endswith("/console/calls"))
    link = browser.find_element(By.LINK_TEXT, "browser-call-1")
    row = link.find_element(By.XPATH, "./ancestor::tr")
    assert "vip" in row.text and "none" in row.text

    link.click()
    wait.until(lambda driver: "/console/calls/" in driver.current_url)
    turns = browser.find_elements(By.CSS_SELECTOR, ".turn")
    assert [turn.find_element(By.CSS_SELECTOR, "div").text for turn in turns] == [text for _, text, _, _ in TURNS]
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
    # By keyboard too: focus the first turn, press Enter.
    browser.execute_script("arguments[0].focus()", turns[0])
    turns[0].send_keys(Keys.ENTER)
    wait.until(lambda driver: driver.execute_script("return arguments[0].currentTime", player) < 2.5)

    # At phone width the list still shows the call (the wide columns fold away).
    browser.set_window_size(390, 844)
    browser.get(server.url + "/console/calls")
    assert browser.find_element(By.LINK_TEXT, "browser-call-1").is_displayed()
    assert not browser.find_element(By.CSS_SELECTOR, "th.wide").is_displayed()

    browser.find_element(By.XPATH, "//button[text()='Sign out']").click()
    wait.until(lambda driver: driver.current_url.endswith("/console/sign-in"))
    browser.get(server.url + "/console/calls")
    assert browser.current_url.endswith("/console/sign-in")
