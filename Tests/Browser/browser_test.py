#!/usr/bin/env python3
"""Ferry in a real browser: headless Chromium (Debian's chromium and chromium-driver) driven by
selenium, against a running Ferry whose Frontend is at --url.

A new researcher registers, logs out and in again, uploads a project through the upload page (file
input, progress, redirect), sees it succeed on the results page without reloading, downloads the
result and checks its content, previews the result's files, runs a sweep from the upload page and
watches, sorts and opens its runs, sees a bad bundle's error next to the form, starts a long job and
cancels it from its page, and looks at settings; the administrator looks at the admin page. Every
step saves a screenshot to --artifacts. Exit status 0 only when every step did what a user expects.

Run by the Swift test BrowserTests (scripts/test), which starts the stack.
"""
import argparse
import json
import os
import sys
import tempfile
import time
import uuid
import zipfile

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

PASSWORD = "a long enough password"
NEW_PASSWORD = "another long password"


class Browser:
    def __init__(self, base, artifacts, downloads):
        self.base = base.rstrip("/")
        self.artifacts = artifacts
        options = webdriver.ChromeOptions()
        options.binary_location = os.environ.get("FERRY_TEST_CHROMIUM", "/usr/bin/chromium")
        for argument in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900",
                         "--force-device-scale-factor=1", "--lang=en-US"]:
            options.add_argument(argument)
        options.add_experimental_option("prefs", {
            "download.default_directory": downloads, "download.prompt_for_download": False, "safebrowsing.enabled": False,
        })
        service = Service(executable_path=os.environ.get("FERRY_TEST_CHROMEDRIVER", "/usr/bin/chromedriver"))
        self.driver = webdriver.Chrome(options=options, service=service)
        self.driver.set_page_load_timeout(30)
        self.shots = 0

    def go(self, path):
        self.driver.get(self.base + path)

    def find(self, css, seconds=10):
        return WebDriverWait(self.driver, seconds).until(EC.presence_of_element_located((By.CSS_SELECTOR, css)))

    def visible(self, css, seconds=10):
        return WebDriverWait(self.driver, seconds).until(EC.visibility_of_element_located((By.CSS_SELECTOR, css)))

    def wait(self, what, condition, seconds=60):
        # The pages redraw their live parts while they are read: an element replaced between being
        # found and being read is looked for again at the next poll.
        try:
            return WebDriverWait(self.driver, seconds, poll_frequency=0.2, ignored_exceptions=[StaleElementReferenceException]).until(lambda _: condition())
        except TimeoutException:
            self.shot("timeout-" + what.replace(" ", "-"))
            raise AssertionError(f"timed out after {seconds} s waiting for: {what} (on {self.driver.current_url})")

    def settled(self, action, tries=10):
        """`action`'s answer, done again when the page redrew what it found (a live table's rows)."""
        for attempt in range(tries):
            try:
                return action()
            except StaleElementReferenceException:
                if attempt == tries - 1:
                    raise
                time.sleep(0.2)

    def path(self):
        return self.driver.current_url[len(self.base):]

    def shot(self, name):
        self.shots += 1
        height = self.driver.execute_script("return Math.max(document.body.scrollHeight, 600)")
        width = self.driver.get_window_size()["width"]
        self.driver.set_window_size(width, min(height + 120, 4000))
        path = os.path.join(self.artifacts, f"{self.shots:02d}-{name}.png")
        self.driver.save_screenshot(path)
        self.driver.set_window_size(width, 900)
        print(f"screenshot: {path}")

    def submit_account_form(self, path, username):
        self.go(path)
        self.find("#username").send_keys(username)
        self.find("#password").send_keys(PASSWORD)
        self.find("form[action='%s'] button[type=submit]" % path).click()


# A 320 x 200 plot, drawn by the job with the standard library only (a PNG written by hand).
PLOT_PNG = (
    "rows = b''.join(b'\\x00' + b''.join(bytes([40 + x * 180 // 320, 90, 200 - y * 150 // 200]) if (x - 160) ** 2 + (y - 100) ** 2 > 3000\n"
    "                else b'\\xff\\xcc\\x00' for x in range(320)) for y in range(200))\n"
    "chunk = lambda kind, data: struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))\n"
    "open('output/plot.png', 'wb').write(b'\\x89PNG\\r\\n\\x1a\\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', 320, 200, 8, 2, 0, 0, 0))\n"
    "    + chunk(b'IDAT', zlib.compress(rows)) + chunk(b'IEND', b''))\n"
)


def expect(condition, message):
    if not condition:
        raise AssertionError(message)


def make_bundle(folder, name, code):
    path = os.path.join(folder, name + ".zip")
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(name + "/code.py", code)
    return path


def badge_text(browser, row_css):
    def read():
        rows = browser.driver.find_elements(By.CSS_SELECTOR, row_css)
        return rows[0].find_element(By.CSS_SELECTOR, ".badge").text if rows else None
    return browser.settled(read)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--artifacts", required=True)
    parser.add_argument("--setup-token", required=True, help="the Backend's one-time token for the first administrator")
    arguments = parser.parse_args()
    os.makedirs(arguments.artifacts, exist_ok=True)
    work = tempfile.mkdtemp(prefix="ferry-browser-")
    downloads = os.path.join(work, "downloads")
    os.makedirs(downloads)
    browser = Browser(arguments.url, arguments.artifacts, downloads)
    driver = browser.driver
    try:
        # Home, then a new account through the form; it lands on the upload page, logged in.
        browser.go("/")
        expect("Run your Python analysis" in driver.page_source, "the home page explains Ferry")
        expect(driver.find_element(By.CSS_SELECTOR, "a[href='/static/example-bundle.zip']"), "the home page offers the example bundle")
        browser.shot("home")
        username = "researcher-" + uuid.uuid4().hex[:6]
        browser.go("/register")
        browser.shot("register")
        browser.submit_account_form("/register", username)
        browser.wait("the upload page after registering", lambda: browser.path().startswith("/upload"))
        expect(username in driver.page_source, "the navigation names the logged-in user")

        # A page that needs a session sends a logged-out browser to log in, then back.
        driver.find_element(By.CSS_SELECTOR, "header form[action='/logout'] button").click()
        browser.wait("the login page after logging out", lambda: browser.path().startswith("/login"))
        browser.go("/results")
        browser.wait("a redirect to log in", lambda: browser.path().startswith("/login?next="))
        browser.find("#username").send_keys(username)
        browser.find("#password").send_keys("not the password")
        browser.find("form[action='/login'] button").click()
        error = browser.visible(".error")
        expect("wrong" in error.text, f"a wrong password is explained, got {error.text!r}")
        browser.find("#username").clear()
        browser.find("#username").send_keys(username)
        browser.find("#password").send_keys(PASSWORD)
        browser.find("form[action='/login'] button").click()
        browser.wait("the results page after logging in", lambda: browser.path().startswith("/results"))

        # A bad bundle: the server's message appears next to the form.
        bad = os.path.join(work, "no-code.zip")
        with zipfile.ZipFile(bad, "w") as archive:
            archive.writestr("no-code/main.py", "print('hello')\n")
        browser.go("/upload")
        browser.find("#bundle").send_keys(bad)
        browser.find("#upload-button").click()
        message = browser.visible("#upload-error", 30)
        expect("code.py" in message.text, f"the bundle error names code.py, got {message.text!r}")
        browser.shot("upload-error")

        # A real project through the upload page; the results page shows it succeed by itself.
        project = "analysis-" + uuid.uuid4().hex[:4]
        good = make_bundle(work, project, "import json, struct, sys, zlib\nprint('mean is', sum([1, 2, 3]) / 3)\n"
                           "json.dump({'mean': 2.0, 'seed': 12345678901234567891, 'python': sys.version.split()[0]}, open('output/summary.json', 'w'))\n"
                           + PLOT_PNG)
        browser.go("/upload")
        browser.find("#bundle").send_keys(good)
        browser.find("#timeLimit").send_keys("120")
        browser.shot("upload")
        browser.find("#upload-button").click()
        browser.wait("the results page after uploading", lambda: browser.path().startswith("/results"), 60)
        row = f"tr[data-job-id]"
        browser.find(row, 20)
        browser.wait("the new job in the list", lambda: project in browser.find("#jobs tbody").text, 20)
        loaded_at = driver.execute_script("return performance.timeOrigin")
        browser.wait("the job to succeed on the results page", lambda: badge_text(browser, f"tr[data-job-id]") == "Succeeded", 120)
        expect(driver.execute_script("return performance.timeOrigin") == loaded_at, "the page updated without a reload")
        browser.shot("results")

        # Download the result with one click and look inside.
        browser.settled(lambda: driver.find_element(By.CSS_SELECTOR, "tr[data-job-id] a[download]").click())
        browser.wait("the result download", lambda: any(name.endswith(".zip") for name in os.listdir(downloads)), 30)
        result = os.path.join(downloads, next(name for name in os.listdir(downloads) if name.endswith(".zip")))
        with zipfile.ZipFile(result) as archive:
            summary = archive.read("summary.json").decode()
        expect('"mean": 2.0' in summary, f"the downloaded result holds the job's output, got {summary!r}")

        # The job's page: output, history, manifest.
        browser.settled(lambda: driver.find_element(By.CSS_SELECTOR, "tr[data-job-id] td a").click())
        browser.wait("the job page", lambda: browser.path().startswith("/jobs/"))
        browser.wait("stdout on the job page", lambda: "mean is 2.0" in browser.find("#log").text, 20)
        browser.wait("the manifest on the job page", lambda: "Python" in browser.find("#manifest").text, 20)
        expect("Succeeded" in browser.find("#history").text, "the history shows the final status")
        browser.shot("job-succeeded")
        # A finished job's empty stream says nothing was written, not "yet".
        driver.find_element(By.ID, "tab-stderr").click()
        browser.wait("the empty stderr of a finished job", lambda: driver.execute_script(
            "return getComputedStyle(document.getElementById('log'), '::before').content") == '"Nothing was written."', 20)
        driver.find_element(By.ID, "tab-stdout").click()
        browser.wait("stdout again", lambda: "mean is 2.0" in browser.find("#log").text, 20)

        # The result's files on the job page, previewed without a download: the JSON pretty, the plot as an image.
        browser.wait("the result's files", lambda: "summary.json" in browser.find("#files").text and "plot.png" in browser.find("#files").text, 20)
        def preview(name):
            def click():
                row = next(r for r in driver.find_elements(By.CSS_SELECTOR, "#files tr") if r.find_element(By.CSS_SELECTOR, ".file-name").text == name)
                row.find_element(By.CSS_SELECTOR, "button").click()
            browser.settled(click)
        preview("summary.json")
        # As written: 2.0 stays 2.0 and a 20-digit integer is not rounded.
        browser.wait("the JSON preview", lambda: '"mean": 2.0,\n  "seed": 12345678901234567891' in browser.find("#preview").text, 20)
        preview("plot.png")
        browser.wait("the image preview", lambda: driver.execute_script(
            "const i = document.querySelector('#preview img'); return !!i && i.complete && i.naturalWidth === 320"), 20)
        driver.execute_script("document.getElementById('files-card').scrollIntoView()")
        browser.shot("job-files")

        # A sweep from the upload page: the grid's run count before anything is sent, then the sweep's
        # table filling in by itself, sorted by a number from summary.json, and one run's plot.
        sweep_project = "sweep-" + uuid.uuid4().hex[:4]
        sweep_bundle = make_bundle(work, sweep_project, "import json, struct, time, zlib\nparams = json.load(open('params.json'))\ntime.sleep(1)\n"
                                   "json.dump({'accuracy': round(params['cutoff'] * 0.05 + params['seed'] * 0.01, 2), 'loss': 1 / params['cutoff']}, open('output/summary.json', 'w'))\n"
                                   + PLOT_PNG)
        browser.go("/upload")
        browser.find("#bundle").send_keys(sweep_bundle)
        browser.find("#mode-sweep").click()
        browser.visible("#grid").send_keys("cutoff=8,10,12\nseed=1..")
        browser.wait("the grid's error", lambda: "not a range" in browser.find("#grid-preview").text or "empty value" in browser.find("#grid-preview").text, 10)
        browser.find("#grid").send_keys("2")
        browser.wait("the grid's run count", lambda: browser.find("#grid-preview").text.startswith("6 runs"), 10)
        browser.find("#throttle").send_keys("2")
        browser.shot("upload-sweep")
        browser.find("#upload-button").click()
        browser.wait("the sweep's page after uploading", lambda: browser.path().startswith("/sweeps/"), 60)
        loaded_at = driver.execute_script("return performance.timeOrigin")
        browser.find("#runs tbody tr", 20)
        browser.wait("every run to succeed on the sweep's page", lambda: len(driver.find_elements(By.CSS_SELECTOR, "#runs tbody tr[data-status=succeeded]")) == 6, 120)
        expect(driver.execute_script("return performance.timeOrigin") == loaded_at, "the sweep's table filled in without a reload")
        expect("6 of 6 runs ended" in browser.find("#sweep-summary").text, "the summary counts the runs")
        header = browser.settled(lambda: [th.text for th in driver.find_elements(By.CSS_SELECTOR, "#runs thead th")])
        expect(header[:5] == ["Run ▲", "cutoff", "seed", "Status", "Run time"] and "accuracy" in header and "loss" in header, f"the table's columns, got {header}")
        browser.shot("sweep")
        accuracy = header.index("accuracy")
        browser.settled(lambda: next(b for b in driver.find_elements(By.CSS_SELECTOR, "#runs thead th button") if b.text.startswith("accuracy")).click())
        values = browser.settled(lambda: [row.find_elements(By.CSS_SELECTOR, "td")[accuracy].text for row in driver.find_elements(By.CSS_SELECTOR, "#runs tbody tr")])
        expect(values == ["0.62", "0.61", "0.52", "0.51", "0.42", "0.41"], f"sorted by accuracy, best first, got {values}")
        browser.shot("sweep-sorted")
        browser.settled(lambda: driver.find_element(By.CSS_SELECTOR, "#runs tbody tr td a").click())
        browser.wait("the best run's page", lambda: browser.path().startswith("/jobs/"))
        browser.wait("the run's parameters", lambda: "cutoff = 12, seed = 2" in browser.find("#facts").text, 20)
        browser.wait("the run's files", lambda: "plot.png" in browser.find("#files").text, 20)
        preview("plot.png")
        browser.wait("the run's plot", lambda: driver.execute_script(
            "const i = document.querySelector('#preview img'); return !!i && i.complete && i.naturalWidth === 320"), 20)
        browser.shot("sweep-run")

        # A project that declares its parameters: the upload page reads parameters.json from the chosen
        # zip (deflated, as zip tools write it) and renders a field for each, checks the values before
        # sending, and the run is given them.
        declared_project = "filter-" + uuid.uuid4().hex[:4]
        declared_bundle = os.path.join(work, declared_project + ".zip")
        with zipfile.ZipFile(declared_bundle, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(declared_project + "/code.py", "import json\np = json.load(open('params.json'))\n"
                             "open('output/used.txt', 'w').write(f\"{p['cutoff']} {p['method']}\")\n")
            archive.writestr(declared_project + "/parameters.json", json.dumps([
                {"name": "cutoff", "type": "int", "min": 1, "max": 20, "default": 10, "help": "Low-pass cut-off in Hz."},
                {"name": "method", "choices": ["fast", "exact"], "default": "fast", "help": "exact is slower but does not approximate."},
            ]))
        browser.go("/upload")
        browser.find("#bundle").send_keys(declared_bundle)
        browser.wait("the declared parameters' form", lambda: browser.find("#declared").is_displayed() and len(driver.find_elements(By.CSS_SELECTOR, "#param-cutoff")) == 1, 10)
        expect(browser.find("#param-cutoff").get_attribute("value") == "10", "the default is filled in")
        expect(browser.find("#param-method").tag_name == "select", "a parameter with choices is a list to pick from")
        expect(not browser.find("#grid").is_displayed(), "the free grid gives way to the form")
        cutoff = browser.find("#param-cutoff")
        cutoff.clear()
        cutoff.send_keys("30")
        browser.find("#upload-button").click()
        message = browser.visible("#upload-error", 10)
        expect("above its maximum, 20" in message.text, f"the value is checked before anything is sent, got {message.text!r}")
        browser.shot("upload-declared")
        cutoff.clear()
        cutoff.send_keys("12")
        Select(browser.find("#param-method")).select_by_value("exact")
        browser.find("#upload-button").click()
        browser.wait("the run's page after uploading", lambda: browser.path().startswith("/jobs/"), 60)
        browser.wait("the run's parameters on its page", lambda: "cutoff = 12, method = exact" in browser.find("#facts").text, 20)
        browser.wait("the run to succeed", lambda: browser.find("#status").text == "Succeeded", 120)
        browser.wait("the run's output", lambda: "used.txt" in browser.find("#files").text, 20)

        # A long job: watch it run, then cancel it from its page.
        sleeper = make_bundle(work, "long-simulation", "import time\nfor step in range(600):\n    print('step', step, flush=True)\n    time.sleep(1)\n")
        browser.go("/upload")
        browser.find("#bundle").send_keys(sleeper)
        browser.find("#upload-button").click()
        browser.wait("the results page", lambda: browser.path().startswith("/results"), 60)
        browser.wait("the long job in the list", lambda: "long-simulation" in browser.find("#jobs tbody").text, 20)
        browser.settled(lambda: next(a for a in driver.find_elements(By.CSS_SELECTOR, "#jobs tbody td a") if a.text == "long-simulation").click())
        browser.wait("the long job to run", lambda: browser.find("#status").text == "Running", 60)
        browser.wait("its live output", lambda: "step 2" in browser.find("#log").text, 30)
        browser.shot("job-running")
        browser.visible("#cancel").click()
        WebDriverWait(driver, 5).until(EC.alert_is_present()).accept()
        browser.wait("the job to be canceled", lambda: browser.find("#status").text == "Canceled", 30)
        expect("while it ran" in browser.find("#reason").text, "the reason says it was canceled while running")
        browser.shot("job-canceled")

        # Settings: a token and a curl example that uses it; then a new password, which revokes the token.
        browser.go("/settings")
        browser.find("#new-token").click()
        token = browser.visible("#token-box input").get_attribute("value")
        expect(len(token) == 64 and token in browser.find("#curl-example").text, "the curl example shows the new token")
        browser.shot("settings")
        browser.find("#current-password").send_keys(PASSWORD)
        browser.find("#new-password").send_keys(NEW_PASSWORD)
        browser.find("#password-form button").click()
        notice = browser.visible("#password-notice", 20)
        expect("changed" in notice.text, f"the password change is confirmed, got {notice.text!r}")
        browser.go("/results")
        expect(browser.path().startswith("/results"), "this browser stays logged in after changing the password")

        # A small screen: the results page stays readable.
        driver.set_window_size(390, 844)
        browser.go("/results")
        browser.find("tr[data-job-id]", 20)
        width = driver.execute_script("return document.documentElement.scrollWidth")
        expect(width <= 390, f"the results page fits a phone's width, it is {width} px wide")
        browser.driver.save_screenshot(os.path.join(arguments.artifacts, "small-screen-results.png"))
        driver.set_window_size(1280, 900)

        # The first administrator comes from the operator's setup link, not from registering first.
        expect("/admin" not in [a.get_attribute("href").replace(arguments.url, "") for a in driver.find_elements(By.CSS_SELECTOR, "header a")],
               "a researcher who registered first is not an administrator")
        driver.find_element(By.CSS_SELECTOR, "header form[action='/logout'] button").click()
        browser.wait("logged out", lambda: browser.path().startswith("/login"))
        browser.go("/setup?token=" + arguments.setup_token)
        expect(browser.find("#token").get_attribute("value") == arguments.setup_token, "the setup link fills in its token")
        browser.find("#username").send_keys("lab-admin")
        browser.find("#password").send_keys(PASSWORD)
        browser.shot("setup")
        browser.find("form[action='/setup'] button").click()
        browser.wait("the admin page after the setup", lambda: browser.path().startswith("/admin"), 20)
        browser.wait("the admin page's figures", lambda: "Waiting in the queue" in browser.find("#stats").text, 20)
        browser.wait("everyone's jobs", lambda: "long-simulation" in browser.find("#all-jobs").text, 20)
        expect(username in browser.find("#users").text, "the accounts list the researcher")
        browser.find("#new-invite").click()
        link = browser.visible("#invite-box input").get_attribute("value")
        expect("/register?invite=" in link, f"an invitation link is shown, got {link!r}")
        browser.wait("the invitation in the list", lambda: "not yet" in browser.find("#invites").text, 20)
        browser.shot("admin")
        print("browser test: every step passed")
        return 0
    except Exception as error:  # noqa: BLE001 - report any failure with a screenshot
        try:
            browser.shot("failure")
        except Exception:  # noqa: BLE001
            pass
        print(f"browser test FAILED: {error}", file=sys.stderr)
        return 1
    finally:
        driver.quit()


if __name__ == "__main__":
    sys.exit(main())
