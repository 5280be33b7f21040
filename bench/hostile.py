"""Hostile and odd posts through the real daemon (issue 12): does every post get recorded with a
reason, without crashes, hangs, doubled actions or runaway memory?

The real ``modbot run`` (shipped LiteRT model, actions ON: report and comment against the
sandbox, every disagreement flagged) streams a set of posts from the sandbox on 127.0.0.1:
broken and hostile images (truncated JPEG, HTML served as JPEG, a 363 KB 9400² RGBA PNG, a
16-bit PNG, a decompression bomb, a 20-image gallery of 9000² JPEGs, an image server on
loopback that trickles its body one byte at a time, a 404, a redirect to a private address),
odd text (lone surrogates, control characters, rich markup, a 40 KB title, a non-string flair,
``created_utc = 10**400``), posts already removed, videos and self posts, and controls with a
good image. Measured: every post's final status and reason, the daemon's exit code and restarts,
posts still unrecorded after the deadline (hangs), actions per (post, kind) received by the
sandbox (duplicates), and the daemon's peak RSS (``VmHWM``).

Usage: ``python bench/hostile.py [--json]``. Last line with ``--json``: one JSON object with
``posts``, ``recorded_with_reason``, ``crashes``, ``hangs``, ``duplicate_actions``,
``max_rss_mb`` (goal: every post recorded, 0 crashes, 0 hangs, 0 duplicates, RSS ≤ 300 MB).
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from PIL import Image
from pipeline import Daemon, db_rows, wait_recorded

from modbot.sandbox.harness import TrickleServer
from modbot.sandbox.server import SandboxServer

ALL_MEDIA = ("digital", "painting", "drawing", "photography", "sculpture")


def jpeg(size: tuple[int, int], quality: int = 60) -> bytes:
    """A JPEG of ``size`` pixels with some structure (gradient), as bytes."""
    im = Image.linear_gradient("L").resize(size).convert("RGB")
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG", optimize=False)
    return buf.getvalue()


def hostile_images() -> dict[str, bytes]:
    """The image files the sandbox serves under ``/i/<name>``."""
    good = jpeg((800, 600))
    return {
        "good.jpg": good,
        "truncated.jpg": good[: len(good) // 3],
        "html.jpg": b"<html><body>502 Bad Gateway</body></html>",
        "rgba_9400.png": png(Image.new("RGBA", (9400, 9400), (200, 30, 30, 128))),
        "grey16.png": png(Image.new("I;16", (6000, 6000), 40000)),
        "bomb.png": png(Image.new("1", (20000, 20000))),
        "huge_9000.jpg": jpeg((9000, 9000), 40),
    }


def post(pid: str, url: str, *, title: str = "Dusk, me, oil on canvas, 2020", **extra: Any) -> dict[str, Any]:
    data = {"id": pid, "name": f"t3_{pid}", "title": title, "author": f"author_{pid}",
            "subreddit": "Art", "url": url, "domain": "i.redd.it", "post_hint": "image",
            "is_self": False, "is_video": False, "link_flair_text": None,
            "permalink": f"/r/Art/comments/{pid}/x/"}
    data.update(extra)
    return data


def gallery(pid: str, urls: list[str]) -> dict[str, Any]:
    items = [{"media_id": f"m{i}", "id": i} for i in range(len(urls))]
    meta = {f"m{i}": {"status": "valid", "e": "Image", "m": "image/jpeg", "s": {"u": u, "x": 9000, "y": 9000}}
            for i, u in enumerate(urls)}
    return post(pid, f"https://www.reddit.com/gallery/{pid}", title="Twenty, me, digital, 2024",
                is_gallery=True, gallery_data={"items": items}, media_metadata=meta, domain="reddit.com",
                post_hint=None)


def hostile_posts(base: str, trickle_url: str) -> list[dict[str, Any]]:
    """The posts, each an r/Art-style submission; ``{base}`` is the sandbox's URL."""
    i = f"{base}/i/"
    posts = [
        post("ctl001", i + "good.jpg"), post("ctl002", i + "good.jpg", title="Rain, me, digital, 2021"),
        post("trunc01", i + "truncated.jpg"), post("html001", i + "html.jpg"),
        post("rgba001", i + "rgba_9400.png"), post("grey001", i + "grey16.png"),
        post("bomb001", i + "bomb.png"), post("miss001", i + "nosuch.jpg"),
        post("slow001", trickle_url), post("priv001", "http://10.0.0.1/x.jpg"),
        post("meta001", "http://169.254.169.254/latest/meta-data/x.jpg"),
        post("surr001", i + "good.jpg", title="Dusk\udc80, me, oil on canvas, 2020", author="a\ud800"),
        post("ctrl001", i + "good.jpg", title="\x1b[31mRed\x1b[0m, [/bold]me[bold], oil, 2020"),
        post("long001", i + "good.jpg", title="Long, me, oil, 2020 " + "x" * 40_000),
        post("flair01", i + "good.jpg", link_flair_text={"text": "Digital"}),
        post("time001", i + "good.jpg", created_utc="HUGE"),
        post("remv001", i + "good.jpg", removed_by_category="moderator"),
        post("vid0001", "https://v.redd.it/abc", is_video=True, domain="v.redd.it", post_hint="hosted:video"),
        post("self001", "https://www.reddit.com/r/Art/comments/self001/x/", is_self=True, post_hint="self",
             domain="self.Art", selftext="hello"),
        gallery("gal0020", [i + "huge_9000.jpg"] * 20),
    ]
    return posts


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (``VmHWM``, MB), or 0.0 when unreadable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def run(work: Path, timeout_s: float) -> dict[str, Any]:
    """Run the scenario in ``work``; returns the figures."""
    trickle = TrickleServer()
    try:
        with SandboxServer(hostile_posts("{base}", trickle.url), hostile_images(),
                           released=0) as server:
            server.release_all()  # known to the sandbox (/comments/<id> answers), ...
            posts = hostile_posts(server.url, trickle.url)  # ... listed as sent below
            raw = json.dumps({"kind": "Listing", "data": {"after": None, "before": None, "children": [
                {"kind": "t3", "data": p} for p in reversed(posts)]}})
            raw = raw.replace('"HUGE"', "1" + "0" * 400)
            server.add_fault(r"/r/Art/new", 200, body=raw, headers={"content-type": "application/json"},
                             times=1)
            daemon = Daemon(work, server, 0.5, act=True, judge={"thresholds": dict.fromkeys(ALL_MEDIA, 0.5)},
                            images={"total_timeout": 5.0, "read_timeout": 2.0},
                            daemon={"retry_base_s": 1.0, "max_attempts": 2})
            daemon.start()
            started = time.monotonic()
            hangs = wait_recorded(work / "modbot.db", [p["name"] for p in posts], timeout_s)
            elapsed = time.monotonic() - started
            exit_code = daemon.proc.poll() if daemon.proc else None
            hwm = peak_rss_mb(daemon.proc.pid) if exit_code is None else 0.0
            daemon.stop()
            writes = Counter((w.kind, w.fullname) for w in server.writes if w.kind in ("report", "comment"))
    finally:
        trickle.close()
    rows = db_rows(work / "modbot.db", "SELECT fullname, status, reason FROM submissions")
    peak = max([hwm, *(r for _, r in daemon.rss_mb)])
    status_of = {f: (s, r) for f, s, r in rows}
    with_reason = sum(1 for p in posts if p["name"] in status_of
                      and (status_of[p["name"]][0] == "done" or status_of[p["name"]][1]))
    return {
        "posts": len(posts), "recorded": len(status_of), "recorded_with_reason": with_reason,
        "crashes": int(exit_code is not None), "hangs": hangs,
        "duplicate_actions": sum(n - 1 for n in writes.values() if n > 1),
        "max_rss_mb": round(peak, 1), "seconds": round(elapsed, 1),
        "statuses": {p["name"]: status_of.get(p["name"], ("missing", None)) for p in posts},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="end with one JSON object")
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds to wait for every post")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="modbot-hostile-") as tmp:
        result = run(Path(tmp), args.timeout)
    print(f"{'post':10} {'status':10} reason")
    for name, (status, reason) in result["statuses"].items():
        print(f"{name[3:]:10} {status:10} {str(reason)[:70]}")
    print(f"\n{result['recorded_with_reason']}/{result['posts']} recorded with a reason; crashes "
          f"{result['crashes']}, hangs {result['hangs']}, duplicate actions {result['duplicate_actions']}, "
          f"peak RSS {result['max_rss_mb']} MB, {result['seconds']} s")
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if k != "statuses"}))


if __name__ == "__main__":
    main()
