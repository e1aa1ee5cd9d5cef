"""End to end in a real browser: headless Chromium (Debian's `chromium` and
`chromium-driver`, driven by Selenium) against the real server, started with
`python -m webapp` on 127.0.0.1 with the shipped styles.

Screenshots go to test-output/browser/ (or $TEST_OUTPUT_DIR/browser).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import mido
import pytest

from tests.conftest import poll_until

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or \
    shutil.which("google-chrome")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = [
    pytest.mark.slow,  # a real server and a real browser, minutes in all
    pytest.mark.skipif(
        not (CHROMIUM and CHROMEDRIVER),
        reason="needs Chromium and chromedriver: bash webapp/install_test_browser.sh"),
]

# A training preset small enough for a test: one 16-unit layer, 6 steps.
INSTANCE_CONFIG = """
from training.pipeline import Preset
TRAINING_PRESETS = {
    "quick": Preset("quick", "a test preset: 1x16 LSTM, 6 steps", (16,), 6, 2, 32, 3, 1),
}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def output_dir() -> Path:
    folder = Path(os.environ.get("TEST_OUTPUT_DIR", ROOT / "test-output")) / "browser"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The website on 127.0.0.1, in a process of its own; stopped after the module."""
    instance = tmp_path_factory.mktemp("instance")
    (instance / "config.py").write_text(INSTANCE_CONFIG)
    port = free_port()
    env = dict(os.environ, PERFRNN_INSTANCE=str(instance), PRELOAD_STYLES="0")
    log = (instance / "server.log").open("w")
    process = subprocess.Popen([sys.executable, "-m", "webapp", "--port", str(port)],
                               cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def server_log() -> str:
        return (instance / "server.log").read_text()[-3000:]

    def answers() -> bool:
        try:
            with urllib.request.urlopen(f"{base}/api/v1/styles", timeout=5) as response:
                assert response.status == 200
            return True
        except OSError:
            if process.poll() is not None:
                pytest.fail("the server did not start:\n" + server_log())
            return False

    def give_up() -> str:
        process.kill()
        return "the server did not start:\n" + server_log()

    poll_until(answers, 120, "the server to answer", interval=0.5, on_timeout=give_up)
    yield base
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


@pytest.fixture(scope="module")
def downloads(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(downloads):
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium fetch a driver
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1280,1600", "--autoplay-policy=no-user-gesture-required"):
        options.add_argument(argument)
    options.add_experimental_option("prefs", {
        "download.default_directory": str(downloads),
        "download.prompt_for_download": False,
        "safebrowsing.enabled": False,
    })
    driver = webdriver.Chrome(options=options,
                              service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def find(browser, selector: str):
    from selenium.webdriver.common.by import By

    found = browser.find_elements(By.CSS_SELECTOR, selector)
    return found[0] if found else None


def click_in_view(browser, element) -> None:
    """Scrolls `element` into the window, as a person would, then clicks it
    (the generate form is taller than the test's window)."""
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    poll_until(lambda: browser.execute_script(
        "const r = arguments[0].getBoundingClientRect(); "
        "return r.top >= 0 && r.bottom <= window.innerHeight", element), 10,
        "the button to be in view")
    element.click()


def downloaded(folder: Path, suffix: str) -> Path | None:
    files = [path for path in folder.glob(f"*{suffix}") if path.stat().st_size > 0]
    return max(files, key=lambda path: path.stat().st_mtime) if files else None


def watch_job(browser, timeout: float, shot: str) -> list[float]:
    """Follows the job page's progress bar until a result or an error shows;
    returns the bar's values as seen."""
    from selenium.common.exceptions import StaleElementReferenceException

    seen: list[float] = []

    def result_shows() -> bool:
        try:
            return _job_page_state(browser, seen, shot)
        except StaleElementReferenceException:
            return False  # the page reloaded itself (it does when the job ends)

    def give_up() -> str:
        browser.save_screenshot(str(output_dir() / f"{shot}-timeout.png"))
        return f"progress seen: {seen}"

    poll_until(result_shows, timeout, "a result on the job page", on_timeout=give_up)
    return seen


def _job_page_state(browser, seen: list[float], shot: str) -> bool:
    """Records the progress bar's value; True once a result shows."""
    bar = find(browser, "#progress .progress-bar")
    if bar is not None:
        value = bar.get_attribute("aria-valuenow")
        if value not in (None, "") and (not seen or float(value) != seen[-1]):
            seen.append(float(value))
    error = find(browser, "#job-error")
    if error is not None and error.is_displayed() and error.text.strip():
        browser.save_screenshot(str(output_dir() / f"{shot}-error.png"))
        pytest.fail(f"the job failed: {error.text}")
    return find(browser, "#result .download-midi") is not None or \
            find(browser, "#evaluation") is not None


def check_midi(path: Path, seconds: float) -> mido.MidiFile:
    midi = mido.MidiFile(path)
    assert abs(midi.length - seconds) <= 1.0, f"{path.name} lasts {midi.length:.2f} s"
    notes = [m for track in midi.tracks for m in track if m.type == "note_on" and m.velocity]
    assert notes, "no notes"
    return midi


def test_the_real_server_is_a_production_one_with_the_security_headers(server):
    """`python -m webapp` serves with waitress: no Server header, the security
    headers on every answer, and another site's POST refused."""
    import urllib.error

    with urllib.request.urlopen(f"{server}/", timeout=10) as response:
        assert response.headers.get("Server") is None
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        assert response.headers["X-Frame-Options"] == "DENY"
    request = urllib.request.Request(
        f"{server}/api/v1/generations", method="POST",
        data=json.dumps({"style": "rock", "seconds": 5}).encode(),
        headers={"Content-Type": "application/json", "Origin": "https://evil.example"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 403


def test_generate_rock_listen_see_and_download(server, browser, downloads):
    from selenium.webdriver.support.ui import Select

    browser.get(server + "/")
    assert "rock" in [o.get_attribute("value") for o in
                      Select(find(browser, "#style")).options]
    Select(find(browser, "#style")).select_by_value("rock")
    types = [o.text for o in Select(find(browser, "#type")).options]
    assert any("(GM" in text for text in types), types
    length = find(browser, "#length")
    length.clear()
    length.send_keys("20")
    Select(find(browser, "#unit")).select_by_value("seconds")
    Select(find(browser, "#quality")).select_by_value("best")
    browser.save_screenshot(str(output_dir() / "generate-form.png"))
    click_in_view(browser, find(browser, "#generate-button"))

    progress = watch_job(browser, 240, "generate")
    browser.save_screenshot(str(output_dir() / "generate-result.png"))
    assert progress and progress[-1] == pytest.approx(100, abs=0.5), progress
    audio = find(browser, "#result audio.result-audio")
    assert audio is not None
    # The browser decodes the WAV: its length is the piece's (plus the release tail).
    duration = poll_until(lambda: browser.execute_script(
        "const a = arguments[0]; "
        "if (a.readyState < 1) { a.preload = 'metadata'; a.load(); return 0; } "
        "return a.duration;", audio), 30, "the audio to load")
    assert 20.0 <= duration <= 22.0, duration
    image = find(browser, "#result img.pianoroll")
    poll_until(lambda: browser.execute_script(
        "return arguments[0].complete && arguments[0].naturalWidth", image), 30,
        "the piano roll to load")
    assert find(browser, "#param-seed").text.strip().isdigit()  # shown, to reproduce it
    assert find(browser, "#param-quality").text.strip() == "best"
    # each variation says how well it fits the style, and what each part means
    assert re.fullmatch(r"fits the style \d+%", find(browser, "#result .score-overall").text)
    summary = find(browser, "#result .score-summary")
    assert re.match(r"style \d+% \(real rock music: \d+%\) · on the beat \d+% · in key \d+%",
                    summary.text), summary.text
    summary.click()
    parts = find(browser, "#result .score-parts").text
    browser.save_screenshot(str(output_dir() / "generate-scores.png"))
    assert "Notes that belong to one major or minor scale" in parts
    assert "Longest silence" in parts

    link = find(browser, "#result .download-midi")
    assert link.get_attribute("href").endswith("/midi?variation=0")
    link.click()
    path = poll_until(lambda: downloaded(downloads, ".mid"), 30, "the MIDI download")
    assert path.name.startswith("rock-20s-seed") and path.suffix == ".mid"
    midi = check_midi(path, 20.0)
    channels = {m.channel for track in midi.tracks for m in track if m.type == "note_on"}
    assert 9 in channels and len(channels) >= 2  # a band: drums on channel 10 and more


def test_the_song_fields_follow_the_style(server, browser):
    """Chords, form and key show for a style that follows chords and hide
    (so they are not sent) for one that does not; ticking the seamless loop
    chooses the loop form; an unknown chord is named next to the field."""
    from selenium.webdriver.support.ui import Select

    browser.get(server + "/")
    style = Select(find(browser, "#style"))
    follows = {o.get_attribute("value"): o.get_attribute("data-follows-chords") == "true"
               for o in style.options}
    assert follows.get("piano"), follows  # the piano: its key control, bar by bar
    style.select_by_value("piano")
    group = find(browser, "#song-group")
    assert group.is_displayed() and group.get_attribute("disabled") is None
    assert "C G Am F" in find(browser, "#chords").get_attribute("placeholder")
    form = Select(find(browser, "#form"))
    assert [o.get_attribute("value") for o in form.options] == ["song", "loop"]
    assert form.first_selected_option.get_attribute("value") == "song"
    click_in_view(browser, find(browser, "#loop"))
    assert form.first_selected_option.get_attribute("value") == "loop"
    browser.save_screenshot(str(output_dir() / "generate-song-fields.png"))
    others = [name for name, follows_chords in follows.items() if not follows_chords]
    if others:
        style.select_by_value(others[0])
        assert not group.is_displayed() and group.get_attribute("disabled") is not None

    browser.get(server + "/?style=piano")
    find(browser, "#chords").send_keys("C Hm7 F G")
    click_in_view(browser, find(browser, "#generate-button"))
    error = poll_until(lambda: find(browser, "#error-chords"), 30, "the chords' error")
    assert "'Hm7'" in error.text and "maj7" in error.text
    assert "is-invalid" in find(browser, "#chords").get_attribute("class")
    assert find(browser, "#chords").get_attribute("value") == "C Hm7 F G"


def make_training_files(folder: Path) -> list[Path]:
    """Three short melodies, a few seconds each."""
    paths = []
    for number, root in enumerate((60, 62, 57)):
        midi = mido.MidiFile(ticks_per_beat=480)
        track = mido.MidiTrack()
        midi.tracks.append(track)
        track.append(mido.MetaMessage("set_tempo", tempo=500_000))
        for step in range(24):
            pitch = root + (0, 2, 4, 5, 7, 9, 7, 4)[step % 8]
            track.append(mido.Message("note_on", note=pitch, velocity=70 + step % 3 * 10,
                                      time=0))
            track.append(mido.Message("note_off", note=pitch, velocity=0, time=240))
        path = folder / f"tune{number + 1}.mid"
        midi.save(path)
        paths.append(path)
    return paths


def test_train_a_style_from_three_files_then_generate_with_it(server, browser, downloads,
                                                              tmp_path):
    from selenium.webdriver.support.ui import Select

    files = make_training_files(tmp_path)
    browser.get(server + "/train")
    find(browser, "#name").send_keys("trio")
    find(browser, "#files").send_keys("\n".join(str(path) for path in files))
    preset = find(browser, "#preset")
    if preset.tag_name == "select":
        Select(preset).select_by_value("quick")
    browser.save_screenshot(str(output_dir() / "train-form.png"))
    find(browser, "#train-button").click()

    watch_job(browser, 420, "train")
    poll_until(lambda: find(browser, "#loss-chart") is not None, 10, "the loss chart")
    browser.save_screenshot(str(output_dir() / "train-result.png"))
    with urllib.request.urlopen(f"{server}/api/v1/styles") as response:
        styles = {style["name"]: style for style in json.load(response)["styles"]}
    assert "trio" in styles and styles["trio"]["origin"] == "user"

    browser.get(server + "/?style=trio")
    assert Select(find(browser, "#style")).first_selected_option.get_attribute("value") \
        == "trio"
    length = find(browser, "#length")
    length.clear()
    length.send_keys("5")
    click_in_view(browser, find(browser, "#generate-button"))
    watch_job(browser, 120, "trio")
    before = {path.name for path in downloads.glob("*.mid")}
    find(browser, "#result .download-midi").click()
    path = poll_until(lambda: next((p for p in downloads.glob("trio-*.mid")
                                  if p.name not in before and p.stat().st_size), None),
                    30, "the trio MIDI download")
    check_midi(path, 5.0)


def test_the_radio_plays_and_its_tempo_slider_changes_it(server, browser):
    from selenium.webdriver.support.ui import Select

    browser.get(server + "/radio")
    Select(find(browser, "#radio-style")).select_by_value("drums")
    click_in_view(browser, find(browser, "#radio-play"))
    audio = find(browser, "#radio-audio")
    poll_until(lambda: browser.execute_script("return arguments[0].currentTime", audio) > 3.0,
               90, "the radio to play three seconds")
    stream_url = browser.execute_script("return arguments[0].src", audio).rsplit("/audio", 1)[0]

    def stream() -> dict:
        with urllib.request.urlopen(stream_url, timeout=10) as response:
            return json.loads(response.read())

    assert stream()["listeners"] == 1
    browser.execute_script("const s = arguments[0]; s.value = 150; "
                           "s.dispatchEvent(new Event('input'))", find(browser, "#radio-bpm"))
    poll_until(lambda: stream()["bpm"] == 150, 10, "the tempo to reach the server")
    played = browser.execute_script("return arguments[0].currentTime", audio)
    poll_until(lambda: browser.execute_script("return arguments[0].currentTime", audio)
               > played + 2.0, 30, "the radio to play on at the new tempo")
    browser.save_screenshot(str(output_dir() / "radio.png"))
    midi = find(browser, "#radio-midi")
    assert midi.get_attribute("href").endswith("/midi")
    click_in_view(browser, find(browser, "#radio-stop"))

    def gone() -> bool:
        try:
            stream()
        except urllib.error.HTTPError as error:
            return error.code == 404
        return False

    poll_until(gone, 15, "the stopped stream to be freed")


def test_follow_my_pace_glides_the_tempo_towards_the_steps(server, browser):
    """Steps at 160 a minute from the motion sensor (synthetic events) move
    the tempo up smoothly, and the stream follows."""
    from selenium.webdriver.support.ui import Select

    browser.get(server + "/radio")
    Select(find(browser, "#radio-style")).select_by_value("drums")
    start = int(find(browser, "#radio-bpm").get_attribute("value"))
    click_in_view(browser, find(browser, "#radio-play"))
    audio = find(browser, "#radio-audio")
    poll_until(lambda: browser.execute_script("return arguments[0].src", audio), 30,
               "the stream to start")
    stream_url = browser.execute_script("return arguments[0].src", audio).rsplit("/audio", 1)[0]
    click_in_view(browser, find(browser, "#radio-pace"))
    browser.execute_script("""
        const shake = (z) => window.dispatchEvent(new DeviceMotionEvent('devicemotion',
            {accelerationIncludingGravity: {x: 0, y: 0, z: z}}));
        window.paceTimer = setInterval(() => { shake(15); setTimeout(() => shake(9.8), 100); },
                                       375);  // 160 steps a minute""")
    tempos = []

    def risen() -> bool:
        tempos.append(int(find(browser, "#radio-bpm").get_attribute("value")))
        return tempos[-1] >= start + 10

    poll_until(risen, 20, "the tempo to follow the steps")
    browser.execute_script("clearInterval(window.paceTimer)")
    assert max(b - a for a, b in zip(tempos, tempos[1:])) <= 8  # it glides, no jump
    assert tempos[-1] < 160  # smoothed: still on its way after a few seconds

    def followed() -> bool:
        with urllib.request.urlopen(stream_url, timeout=10) as response:
            return json.loads(response.read())["bpm"] >= start + 8

    poll_until(followed, 10, "the stream to take the new tempo")
    click_in_view(browser, find(browser, "#radio-stop"))
