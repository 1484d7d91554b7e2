"""The web app as its users meet it: ``tools/web_app.py`` running in its own process, driven through
its API by ``gradio_client`` and through its page by a real headless Chromium (selenium).

Screenshots: every run saves them in pytest's temporary folder; to refresh the ones in the docs,

    PPMATTING_WEB_SCREENSHOTS=docs/images python -m pytest tests/test_web_app_server.py -q

writes ``web_paint.png`` (a trimap painted in the browser) and ``web_result.png`` (the result
panel) into docs/images/.
"""
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

import cv2
import numpy as np
import pytest

pytest.importorskip("gradio")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(ROOT, "data", "matting_demo", "demo")
PHOTO = os.path.join(DEMO, "demo.png")
TRIMAP = os.path.join(DEMO, "demo_trimap.png")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
STARTUP_SECONDS = 240  # a fresh machine compiles numba's kernels during the warm-up


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _listing(folder, skip_pycache=False):
    """{relative path: (size, mtime)} of everything below ``folder`` (empty if absent)."""
    found = {}
    for base, dirs, files in os.walk(folder):
        if skip_pycache and "__pycache__" in dirs:
            dirs.remove("__pycache__")  # numba's kernel cache lives there, for every tool
        for name in files:
            path = os.path.join(base, name)
            try:
                stat = os.stat(path)
            except OSError:
                continue
            found[os.path.relpath(path, folder)] = (stat.st_size, stat.st_mtime)
    return found


class Server:
    def __init__(self, proc, url, temp_dir, work_dir, lines):
        self.proc, self.url, self.temp_dir, self.work_dir, self.lines = (
            proc, url, temp_dir, work_dir, lines)

    def log(self):
        return "".join(self.lines[-40:])


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``tools/web_app.py`` on a free port, as a user starts it (its own temporary folder, made
    inside a fresh system temp dir here), in a fresh working directory; stopped by its pid after
    the module's tests, and then its temporary folder must be gone."""
    base = tmp_path_factory.mktemp("web_app")
    system_tmp, work_dir = base / "system_tmp", base / "cwd"
    system_tmp.mkdir()
    work_dir.mkdir()
    env = dict(os.environ, TMPDIR=str(system_tmp))
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("GRADIO_TEMP_DIR", None)
    proc = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "tools", "web_app.py"), "--port", str(_free_port())],
        cwd=str(work_dir), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")),
                     daemon=True).start()
    ready = None
    deadline = time.time() + STARTUP_SECONDS
    while time.time() < deadline and ready is None and proc.poll() is None:
        ready = next((line for line in list(lines) if line.startswith("ppmatting web app: ")),
                     None)
        time.sleep(0.2)
    try:
        if ready is None:
            pytest.fail(f"the web app did not start:\n{''.join(lines)}")
        # "ppmatting web app: URL (temporary files in FOLDER; Ctrl+C stops it)"
        url = ready.split()[3]
        temp_dir = ready.split("temporary files in ")[1].split(";")[0]
        assert os.path.dirname(temp_dir) == str(system_tmp)
        yield Server(proc, url, pathlib.Path(temp_dir), work_dir, lines)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    # a stopped app leaves nothing behind in the system's temp dir
    assert os.listdir(system_tmp) == [], "".join(lines)


@pytest.fixture(scope="module")
def predicted_alpha(tmp_path_factory):
    """The demo photo's alpha as ``tools/predict.py`` writes it (uint8 H x W); its ``main`` runs
    in this process, which saves a second interpreter start beside the server's."""
    from script_loader import load_script

    out = tmp_path_factory.mktemp("predict")
    tool = load_script("tools/predict.py")
    assert tool.main(["--config", os.path.join(ROOT, "configs", "ml", "closed_form.yml"),
                      "--image_path", PHOTO, "--trimap_path", TRIMAP, "--save_dir", str(out),
                      "--no_rgba", "--quiet"]) == 0
    return cv2.imread(str(out / "demo_alpha.png"), cv2.IMREAD_UNCHANGED)


@pytest.fixture(scope="module")
def default_gradio_dir_before():
    """What the app must not touch, before the server starts: Gradio's own default temp folder and
    the code (Gradio writes .pyi stubs beside component subclasses, for one)."""
    folder = os.path.join(tempfile.gettempdir(), "gradio")
    code = os.path.join(ROOT, "ppmatting")
    return folder, _listing(folder), code, _listing(code, skip_pycache=True)


@pytest.fixture
def client(server, tmp_path):
    from gradio_client import Client

    return Client(server.url, verbose=False, download_files=str(tmp_path),
                  analytics_enabled=False)


def _matte_api(client, photo, trimap, model="closed-form", background="dodgerblue"):
    from gradio_client import handle_file

    return client.predict(handle_file(photo), handle_file(trimap), model, background,
                          api_name="/matte")


# ---- the API --------------------------------------------------------------------------------------
def test_api_gives_the_alpha_of_tools_predict(default_gradio_dir_before, server, client,
                                              predicted_alpha):
    alpha_path, rgba_path, composite_path, summary = _matte_api(client, PHOTO, TRIMAP)
    alpha = cv2.imread(alpha_path, cv2.IMREAD_UNCHANGED)
    assert alpha.shape == predicted_alpha.shape == (360, 400) and alpha.dtype == np.uint8
    assert np.abs(alpha.astype(int) - predicted_alpha).max() <= 1
    rgba = cv2.imread(rgba_path, cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(rgba[:, :, 3], alpha)
    trimap = cv2.imread(TRIMAP, cv2.IMREAD_GRAYSCALE)
    composite = cv2.imread(composite_path)[:, :, ::-1]
    assert (composite[trimap == 0] == (30, 144, 255)).all()  # dodgerblue where surely background
    assert summary.startswith("400 x 360 px, ClosedFormMatting")
    # the upload went into the app's own temporary folder
    uploads = _listing(server.temp_dir / "gradio")
    assert any(path.endswith("demo_trimap.png") for path in uploads)


def test_api_errors_are_one_line_and_the_server_keeps_serving(server, client, tmp_path,
                                                              predicted_alpha):
    from gradio_client.exceptions import AppError

    other_size = os.path.join(ROOT, "data", "matting_demo", "val", "trimap", "00_furry.png")
    with pytest.raises(AppError, match=r"error: size mismatch: the photo is 400x360 \(WxH\) but "
                                       r"00_furry.png is 320x320"):
        _matte_api(client, PHOTO, other_size)
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(AppError, match=r"error: notes.png: not a readable image"):
        _matte_api(client, str(text), TRIMAP)
    gray = tmp_path / "gray.png"
    cv2.imwrite(str(gray), np.full((360, 400), 128, np.uint8))
    with pytest.raises(AppError, match=r"gray.png has no known pixels"):
        _matte_api(client, PHOTO, str(gray))
    # a model the page does not list (Gradio's dropdown check words this one)
    with pytest.raises(AppError, match=r"DIM is not in the list of choices: \['closed-form'"):
        _matte_api(client, PHOTO, TRIMAP, model="DIM")
    alpha_path = _matte_api(client, PHOTO, TRIMAP)[0]
    assert np.abs(cv2.imread(alpha_path, cv2.IMREAD_UNCHANGED).astype(int)
                  - predicted_alpha).max() <= 1


# ---- the page, in a real browser ------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.skip("chromium and chromedriver are not installed (Debian: apt-get install "
                    "chromium chromium-driver; .ci/run installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tmp_path_factory.mktemp("chromium_profile")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                 "--window-size=1400,2200", "--force-device-scale-factor=1"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def screenshot_dir(tmp_path_factory):
    folder = os.environ.get("PPMATTING_WEB_SCREENSHOTS")
    if folder:
        os.makedirs(folder, exist_ok=True)
        return folder
    return str(tmp_path_factory.mktemp("screenshots"))


def _wait(condition, seconds, what):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


def _open_page(driver, server):
    from selenium.webdriver.common.by import By

    driver.get(server.url)
    _wait(lambda: driver.find_elements(By.CSS_SELECTOR, "#photo input[type=file]"), 30,
          "the page to load")


def _upload(driver, elem_id, path):
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, f"#{elem_id} input[type=file]").send_keys(path)


def _displayed_image(driver, elem_id, seconds=90):
    """The picture an output image shows, fetched from its ``src`` (uint8, as served)."""
    from selenium.webdriver.common.by import By

    def src():
        images = driver.find_elements(By.CSS_SELECTOR, f"#{elem_id} img")
        return images[0].get_attribute("src") if images else None

    url = _wait(src, seconds, f"the {elem_id} image")
    with urllib.request.urlopen(url, timeout=30) as response:
        data = np.frombuffer(response.read(), np.uint8)
    return cv2.imdecode(data, cv2.IMREAD_UNCHANGED)


def _status(driver):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, "status").text


def _requested_hosts(driver):
    """Host of every http(s) request the page made (from Chromium's performance log)."""
    hosts = set()
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            url = message["params"]["request"]["url"]
            if url.startswith(("http:", "https:", "ws:", "wss:")):
                hosts.add(urllib.parse.urlsplit(url).hostname)
    return hosts


def test_browser_uploads_photo_and_trimap_and_shows_the_alpha(server, browser, predicted_alpha,
                                                              screenshot_dir):
    from selenium.webdriver.common.by import By

    browser.get_log("performance")  # start the network record with this page
    _open_page(browser, server)
    _upload(browser, "photo", PHOTO)
    _upload(browser, "trimap_file", TRIMAP)
    _wait(lambda: "400 x 360 px" in _status(browser), 30, "the photo's size in the status")
    browser.find_element(By.ID, "matte").click()
    alpha = _displayed_image(browser, "alpha_out")
    assert alpha.shape[:2] == (360, 400)
    alpha = alpha if alpha.ndim == 2 else alpha[:, :, 0]
    assert np.abs(alpha.astype(int) - predicted_alpha).max() <= 1
    _wait(lambda: "ClosedFormMatting" in _status(browser), 30, "the summary")
    assert _status(browser).startswith("400 x 360 px")
    composite = _displayed_image(browser, "composite_out")
    assert composite.shape[:2] == (360, 400)
    for elem_id in ("alpha_download", "rgba_download", "composite_download"):
        assert browser.find_element(By.ID, elem_id).is_displayed()
    time.sleep(0.5)  # let the last pictures paint before the screenshot
    browser.find_element(By.ID, "results").screenshot(os.path.join(screenshot_dir,
                                                                    "web_result.png"))
    # everything the page loaded came from the app itself: no CDN, fonts or analytics
    assert _requested_hosts(browser) == {"127.0.0.1"}


def _stable_zoom(editor):
    """The editor's zoom (1.0 = one image pixel per screen pixel) once it stops changing."""
    from selenium.webdriver.common.by import By

    seen = []

    def settled():
        seen.append(editor.find_element(By.CSS_SELECTOR, ".zoom-number span").text)
        return len(seen) >= 4 and len(set(seen[-4:])) == 1 and seen[-1]

    return float(_wait(settled, 20, "the editor's zoom").strip("%")) / 100.0


def _paint(driver, editor, strokes, size_wh):
    """Draw ``strokes`` = [(swatch index, [(x, y), ...] in image pixels)] on an ImageEditor."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    zoom = _stable_zoom(editor)
    canvas = editor.find_elements(By.CSS_SELECTOR, "canvas")[0]
    width, height = size_wh

    def offset(x, y):  # selenium offsets are from the element's centre; the image is centred
        return int(round((x - width / 2) * zoom)), int(round((y - height / 2) * zoom))

    for swatch, points in strokes:
        editor.find_element(By.CSS_SELECTOR, "button[aria-label='Color']").click()
        _wait(lambda: editor.find_elements(By.CSS_SELECTOR, "menu.swatch button.color"), 10,
              "the colour swatches")[swatch].click()
        chain = ActionChains(driver, duration=50)
        chain.move_to_element_with_offset(canvas, *offset(*points[0]))
        chain.click_and_hold()
        last = offset(*points[0])
        for point in points[1:]:
            here = offset(*point)
            chain.move_by_offset(here[0] - last[0], here[1] - last[1])
            last = here
        chain.release().perform()
        time.sleep(0.2)


def test_browser_painted_trimap_mattes_the_subject(server, browser, screenshot_dir):
    from selenium.webdriver.common.by import By

    _open_page(browser, server)
    _upload(browser, "photo", PHOTO)
    _wait(lambda: "400 x 360 px" in _status(browser), 30, "the photo's size in the status")
    tab = next(t for t in browser.find_elements(By.CSS_SELECTOR, "#trimap_tabs button[role=tab]")
               if t.text == "Paint a trimap")
    tab.click()
    editor = _wait(lambda: browser.find_elements(By.ID, "paint_editor"), 10, "the editor")[0]
    _wait(lambda: editor.find_elements(By.CSS_SELECTOR, "canvas"), 20, "the canvas")
    white, black, gray = 0, 1, 2  # the swatches, in the order of the brush colours
    subject = [(195, 170), (275, 170), (275, 210), (195, 210), (195, 180)]
    fur = [(340, 120), (360, 191), (340, 260)]
    border = [(15, 345), (15, 15), (385, 15), (385, 60)]
    lower_right = [(150, 345), (385, 345), (385, 290)]
    _paint(browser, editor, [(white, subject), (gray, fur), (black, border),
                             (black, lower_right)], (400, 360))
    next(label for label in browser.find_elements(By.CSS_SELECTOR, "label")
         if label.text.strip() == "unknown").click()
    editor.screenshot(os.path.join(screenshot_dir, "web_paint.png"))
    browser.find_element(By.ID, "matte").click()
    alpha = _displayed_image(browser, "alpha_out")
    alpha = alpha if alpha.ndim == 2 else alpha[:, :, 0]
    status = _status(browser)
    assert status.startswith("400 x 360 px"), status
    assert alpha.shape == (360, 400)
    # painted subject and background are forced; the rest is solved from them
    assert alpha[190, 235] == 255 and alpha[15, 60] == 0 and alpha[345, 340] == 0
    # four strokes already give a usable matte: the same strokes drawn with OpenCV give a mean
    # error of 0.080 against the ground truth (0.125 without the long border stroke)
    truth = cv2.imread(os.path.join(DEMO, "demo_alpha.png"), cv2.IMREAD_GRAYSCALE)
    error = np.abs(alpha.astype(float) - truth) / 255.0
    assert error.mean() < 0.09, error.mean()


def test_browser_shows_a_bad_upload_in_the_page(server, browser):
    _open_page(browser, server)
    with tempfile.TemporaryDirectory() as folder:
        text = os.path.join(folder, "notes.png")
        with open(text, "w") as handle:
            handle.write("not an image")
        _upload(browser, "photo", text)
        _wait(lambda: "notes.png: not a readable image" in _status(browser), 30,
              "the error in the status box")


def test_nothing_written_outside_the_apps_temp_folder(default_gradio_dir_before, server):
    folder, before, code, code_before = default_gradio_dir_before
    assert server.proc.poll() is None, server.log()  # still serving after every error above
    assert _listing(folder) == before
    assert _listing(code, skip_pycache=True) == code_before
    assert os.listdir(server.work_dir) == []
    results = _listing(server.temp_dir / "results")
    assert any(path.endswith("demo_alpha.png") for path in results)
