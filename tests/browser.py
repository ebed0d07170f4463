"""Headless Chromium for the tests: screenshots and DOM dumps of pages, and a blankness check.

A page that builds as text can still render as nothing (a broken SVG, CSS that hides
it all), so the tests look at what a browser draws. Each call runs one bounded
Chromium with its own throw-away profile, so runs never share state or leave one behind.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
SKIP_REASON = "chromium not installed; CI installs it as root"
TIMEOUT = 60.0  # seconds for one browser run, start-up included


def find_chromium() -> str | None:
    """The first Chromium-like browser on PATH, or None."""
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


#: Mark for tests that need the browser: they skip, saying why, where there is none.
needs_chromium = pytest.mark.skipif(find_chromium() is None, reason=SKIP_REASON)


def as_url(target: str | os.PathLike[str]) -> str:
    """A file path as a file:// URL; URLs are passed through."""
    text = os.fspath(target)
    return text if "://" in text else Path(text).resolve().as_uri()


def _run(flags: list[str], target: str | os.PathLike[str], wait_ms: int | None,
         timeout: float) -> subprocess.CompletedProcess[bytes]:
    browser = find_chromium()
    if browser is None:
        pytest.skip(SKIP_REASON)
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        command = [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                   "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                   f"--user-data-dir={profile}", *flags]
        if wait_ms is not None:
            command.append(f"--virtual-time-budget={wait_ms}")
        command.append(as_url(target))
        # Its own process group, so a timeout ends the browser and every helper it started.
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   start_new_session=True)
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise AssertionError(f"chromium took more than {timeout:.0f} s on {as_url(target)}") from None
        return subprocess.CompletedProcess(command, process.returncode, out, err)


def screenshot(target: str | os.PathLike[str], png_path: str | os.PathLike[str], width: int = 1280,
               height: int = 900, wait_ms: int | None = 2000, timeout: float = TIMEOUT) -> Path:
    """Render ``target`` (a file path, file:// or http://127.0.0.1 URL) at width x height
    and write the PNG; raises AssertionError with Chromium's output if none appeared."""
    png = Path(png_path).resolve()
    png.unlink(missing_ok=True)
    done = _run([f"--window-size={width},{height}", f"--screenshot={png}"], target, wait_ms, timeout)
    if not png.is_file() or png.stat().st_size == 0:
        raise AssertionError(f"chromium wrote no screenshot (exit {done.returncode}):\n"
                             f"{done.stderr.decode('utf-8', 'replace')[-2000:]}")
    return png


def dump_dom(target: str | os.PathLike[str], wait_ms: int | None = 2000, timeout: float = TIMEOUT) -> str:
    """The serialized DOM of ``target`` after its scripts ran (for up to ``wait_ms`` of
    virtual time)."""
    done = _run(["--dump-dom"], target, wait_ms, timeout)
    if done.returncode != 0:
        raise AssertionError(f"chromium --dump-dom failed (exit {done.returncode}):\n"
                             f"{done.stderr.decode('utf-8', 'replace')[-2000:]}")
    return done.stdout.decode("utf-8", "replace")


def blankness(png_path: str | os.PathLike[str]) -> tuple[float, int]:
    """(fraction of pixels that differ from the background, number of distinct colours).

    The background is the commonest colour; a blank or one-colour page gives (0.0, 1),
    a real page a good share of ink and many colours.
    """
    import numpy
    from matplotlib.image import imread

    image = imread(os.fspath(png_path))
    rgb = numpy.round(image[..., :3] * 255).astype(numpy.uint8) if image.dtype.kind == "f" else image[..., :3]
    packed = rgb.reshape(-1, 3).astype(numpy.uint32)
    values, counts = numpy.unique(packed[:, 0] << 16 | packed[:, 1] << 8 | packed[:, 2], return_counts=True)
    return float(1 - counts.max() / counts.sum()), len(values)
