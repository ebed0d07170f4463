"""swarm-report.html: what the page says and draws, that it stands alone, and that a browser shows it.

The swarms here are fabricated -- event sentences fed to PeerProgress as the launcher
does, with sources chosen at random -- so every expectation (who sent which piece,
who is missing what) is known exactly without running peers.
"""
from __future__ import annotations

import random
import re
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest
from browser import blankness, dump_dom, needs_chromium, screenshot
from support import write_config

from twisted_p2p.config import Common, PeerInfo, SwarmConfig, load
from twisted_p2p.eventlog import SENTENCES, TIME_FORMAT, Event
from twisted_p2p.launcher.audit import audit
from twisted_p2p.launcher.progress import PeerProgress
from twisted_p2p.launcher.runpage import PALETTE, REPORT_HTML, SEED_COLOUR, render_html, write_html_report
from twisted_p2p.launcher.runreport import PeerResult, build_report

START = time.mktime(time.strptime("2024-05-01 10:00:00", TIME_FORMAT))


class Fabricated:
    """A finished (or not) swarm: its config, each peer's progress and the report dict."""

    def __init__(self, ids: Sequence[int], seeds: set[int], pieces: int, *, incomplete: Sequence[int] = (),
                 host: str = "127.0.0.1", name: str = "TheFile.dat", seed: int = 1, log_dir: Path | None = None):
        rng = random.Random(seed)
        common = Common(2, 5, 15, name, pieces * 1024 - 100, 1024)
        self.config = SwarmConfig(common, tuple(PeerInfo(i, host, 6000 + n, i in seeds) for n, i in enumerate(ids)))
        self.progress = {i: PeerProgress(i, host, pieces, i in seeds, START) for i in ids}
        #: piece index -> sender, for every downloading peer
        self.sources: dict[int, dict[int, int]] = {}
        logs: dict[int, list[str]] = {i: [] for i in ids}
        for me in ids:
            if me in seeds:
                continue
            order = rng.sample(range(pieces), pieces)
            if me in incomplete:
                order = order[: pieces // 3]
            times = sorted(rng.uniform(0.2, 8.0) for _ in order)
            self.sources[me] = {}
            for count, (index, when) in enumerate(zip(order, times), start=1):
                other = rng.choice([i for i in ids if i != me])
                self.sources[me][index] = other
                self.progress[me].apply(Event(START + when, "downloaded", me, other, (), index, count))
                if log_dir is not None:
                    logs[me].append(self.say(when, "downloaded", me, index=index, other=other, count=count))
            if me not in incomplete:
                self.progress[me].apply(Event(START + times[-1], "complete", me))
                if log_dir is not None:
                    logs[me].append(self.say(times[-1], "complete", me))
        if log_dir is not None:
            write_config(log_dir, self.config)
            for me, lines in logs.items():
                (log_dir / f"log_peer_{me}.log").write_text("".join(line + "\n" for line in lines))
        results = [PeerResult(self.progress[i], 0 if i not in incomplete else 1, i not in incomplete) for i in ids]
        outcome = "failed" if incomplete else "finished"
        info = {"name": name, "size": common.file_size, "pieces": pieces, "sha256": "ab" * 32}
        self.report = build_report(results, outcome, 0 if outcome == "finished" else 1, 8.5, info)

    @staticmethod
    def say(seconds: float, kind: str, me: int, **fields: object) -> str:
        stamp = time.strftime(TIME_FORMAT, time.localtime(START + int(seconds)))
        return f"{stamp}.{round(seconds % 1 * 1000) % 1000:03d}: {SENTENCES[kind].format(me=me, **fields)}"

    def html(self, **kwargs: object) -> str:
        return render_html(self.report, self.progress, self.config, **kwargs)  # type: ignore[arg-type]


IDS = [1001, 1002, 1003, 1004, 1005, 1006]


@pytest.fixture(scope="module")
def small() -> Fabricated:
    return Fabricated(IDS, {1001}, 64, incomplete=[1006])


def piece_maps(page: str) -> dict[int, str]:
    return {int(m[1]): m[2] for m in re.finditer(r'<svg class="piece-map" data-peer="(\d+)".*?>(.*?)</svg>', page)}


def test_every_peer_is_in_the_summary_the_maps_and_the_matrix(small):
    page = small.html()
    for peer_id in IDS:
        assert len(re.findall(rf"\b{peer_id}\b", page)) >= 5, peer_id
    assert set(piece_maps(page)) == set(IDS)
    matrix = page.split('<table class="matrix')[1].split("</table>")[0]
    assert matrix.count("<tr>") == len(IDS) + 1


def test_the_header_tells_the_file_and_the_outcome(small):
    page = small.html()
    header = page.split("<h2>")[0]
    for text in ("TheFile.dat", "65,436 bytes", "64 of 1,024 bytes", "failed", "8.5 s", "ab" * 32):
        assert text in header


def test_the_timeline_has_one_line_per_peer_ending_at_its_pieces(small):
    page = small.html()
    lines = dict(re.findall(r'<path class="peer-line" data-peer="(\d+)" d="([^"]+)"', page))
    assert sorted(map(int, lines)) == IDS
    ys = {int(peer): int(re.findall(r"V(\d+)", d)[-1]) if "V" in d else None for peer, d in lines.items()}
    # the seed is flat at the top; the complete peers climb to the same height; 1006 stops lower
    assert ys[1001] is None and "V" not in lines["1001"]
    assert {ys[i] for i in (1002, 1003, 1004, 1005)} == {int(re.match(r"M\d+ (\d+)", lines["1001"])[1])}
    assert ys[1006] > ys[1002]


def test_piece_map_colours_match_where_the_pieces_came_from(small):
    page = small.html()
    maps = piece_maps(page)
    colour = {peer_id: PALETTE[n] for n, peer_id in enumerate(IDS)}
    assert re.findall(r'stroke="([^"]+)"', maps[1001]) == [SEED_COLOUR]
    for me, sources in small.sources.items():
        drawn = {int(key): paint for key, paint in re.findall(r'data-from="(\d+)" stroke="([^"]+)"', maps[me])}
        assert drawn == {sender: colour[sender] for sender in set(sources.values())}
        # each sender's path covers exactly its pieces: segments' lengths in squares
        size = int(re.search(r'stroke-width="(\d+)"', maps[me])[1])
        for key, d in re.findall(r'data-from="(\w+)" stroke="[^"]+" d="([^"]+)"', maps[me]):
            covered = sum(int(w) for w in re.findall(r"h(\d+)", d)) // size
            expected = Counter(sources.values())[int(key)] if key.isdigit() else 64 - len(sources)
            assert covered == expected, (me, key)
    assert "data-from=\"missing\"" in maps[1006] and "data-from=\"missing\"" not in maps[1002]


def two_peer_page(total: int, logged: Sequence[int], complete: bool) -> str:
    """The page of a seed and one peer that logged the downloads of ``logged`` (all from the seed)."""
    config = SwarmConfig(Common(1, 5, 15, "f", total * 10, 10), (PeerInfo(1, "h", 1, True), PeerInfo(2, "h", 2, False)))
    progress = [PeerProgress(1, "h", total, True, START), PeerProgress(2, "h", total, False, START)]
    for count, index in enumerate(logged, start=1):
        progress[1].apply(Event(START + 1, "downloaded", 2, 1, (), index, count))
    if complete:
        progress[1].apply(Event(START + 2, "complete", 2))
    results = [PeerResult(peer, 0, True) for peer in progress]
    report = build_report(results, "finished", 0, 3.0,
                          {"name": "f", "size": total * 10, "pieces": total, "sha256": None})
    return render_html(report, progress, config)


def test_a_square_of_several_pieces_is_missing_if_any_of_them_is():
    logged = [index for index in range(10_000) if index != 5]
    page = two_peer_page(10_000, logged, complete=False)  # 4 pieces a square: the second one lacks piece 5
    drawn = piece_maps(page)[2]
    assert "Each square stands for 4 consecutive pieces" in page
    size = int(re.search(r'stroke-width="(\d+)"', drawn)[1])
    missing = re.search(r'data-from="missing" stroke="url\(#miss\)" d="([^"]+)"', drawn)[1]
    assert missing == f"M{size} {size // 2}h{size}"
    assert re.search(rf'data-from="1" stroke="[^"]+" d="M0 {size // 2}h{size}M{2 * size} ', drawn)


def test_pieces_of_a_finished_peer_that_were_not_logged_are_unknown_not_missing():
    drawn = piece_maps(two_peer_page(20, range(10), complete=True))[2]
    assert re.findall(r'data-from="(\w+)"', drawn) == ["1", "unknown"]
    drawn = piece_maps(two_peer_page(20, range(10), complete=False))[2]
    assert re.findall(r'data-from="(\w+)"', drawn) == ["1", "missing"]


def test_the_matrix_counts_what_each_receiver_got_from_each_sender(small):
    page = small.html()
    matrix = page.split('<table class="matrix')[1].split("</table>")[0]
    rows = matrix.split("<tr>")[2:]
    for row, receiver in zip(rows, IDS):
        counts = [int(c) if c.strip() else 0 for c in re.findall(r'<td class="n" style="[^"]*">(\d*)</td>', row)]
        senders = [i for i in IDS if i != receiver]
        assert counts == [Counter(small.sources.get(receiver, {}).values())[s] for s in senders], receiver


def test_the_page_stands_alone(small):
    page = small.html()
    assert not re.search(r"https?://", page.replace('xmlns="http://www.w3.org/2000/svg"', ""))
    assert not re.search(r"<(script|link|img|iframe|object|embed)\b", page, re.I)
    assert not re.search(r"\b(src|href)\s*=", page, re.I)
    assert "@import" not in page and "url(" not in page.replace("url(#", "")


def test_text_from_files_is_escaped(tmp_path):
    evil = '<script>alert("x")</script>&'
    swarm = Fabricated([1, 2], {1}, 4, host=evil, name="a<b>&c.dat")
    page = swarm.html()
    assert "<script" not in page and evil not in page and "a<b>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;" in page
    assert "a&lt;b&gt;&amp;c.dat" in page


def test_the_audit_verdict_clean_or_violations(tmp_path):
    swarm = Fabricated(IDS, {1001}, 16, incomplete=[1006], log_dir=tmp_path)
    result = audit(tmp_path, load(tmp_path))
    assert not result.clean  # the fabricated logs lack connections and haves
    section = swarm.html(audit=result).split("Audit of the event logs")[1]
    assert f"{len(result.findings)} violation" in section
    assert "peer 1006:" in section and "violation" in section
    listed = section.split("First 10 findings (")[1].split("</ul>")[0]
    assert listed.count("<li>log_peer_") == 10 < len(result.findings)
    assert f"{len(result.findings) - 10} more" in section
    result.findings.clear()
    clean = swarm.html(audit=result).split("Audit of the event logs")[1]
    assert "clean: 6 peers followed the protocol" in clean and "violation" not in clean
    assert "Not audited" in swarm.html().split("Audit of the event logs")[1]


def test_32_peers_by_10000_pieces_stay_small(tmp_path):
    ids = list(range(1, 33))
    swarm = Fabricated(ids, {1, 2}, 10_000, incomplete=[32])
    path = write_html_report(tmp_path, swarm.report, swarm.progress.values(), swarm.config)
    assert path == tmp_path / REPORT_HTML
    size = path.stat().st_size
    assert size < 2_000_000, size
    page = path.read_text(encoding="utf-8")
    assert len(piece_maps(page)) == 32 and page.count('class="peer-line"') == 32
    assert "Each square stands for 4 consecutive pieces" in page
    # colours past the eighth peer are told apart by a pattern
    assert 'stroke="url(#p1-0)"' in page and 'id="p1-0"' in page


@needs_chromium
def test_a_browser_draws_the_page(small, tmp_path):
    path = write_html_report(tmp_path, small.report, small.progress, small.config)
    png = screenshot(path, tmp_path / "swarm-report.png", width=1280, height=2400)
    ink, colours = blankness(png)
    assert ink > 0.08, ink
    assert colours > 20, colours
    dom = dump_dom(path)
    assert dom.count('class="piece-map"') == len(IDS)


def test_blankness_sees_a_blank_page(tmp_path):
    """The check the browser test relies on says 'blank' for a blank image."""
    import numpy
    from matplotlib.image import imsave

    imsave(tmp_path / "blank.png", numpy.ones((20, 30, 3)))
    assert blankness(tmp_path / "blank.png") == (0.0, 1)
    image = numpy.ones((20, 30, 3))
    image[:10, :15] = (0, 0.45, 0.7)
    imsave(tmp_path / "half.png", image)
    ink, colours = blankness(tmp_path / "half.png")
    assert ink == pytest.approx(0.25) and colours == 2
