"""`imageextract extract` (imageextract.extract.cli.main): JSON Lines, --out files, exit status, progress."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from imageextract.extract.cli import main
from tests.extract.webfixtures import LocalServer, build_fixture_site, make_image


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def allow_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGEEXTRACT_SSRF_ALLOW", "127.0.0.0/8")
    monkeypatch.setenv("IMAGEEXTRACT_FETCH_TOTAL_TIMEOUT", "10")


def run_main(argv: list[str], stderr: io.StringIO | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), stderr if stderr is not None else io.StringIO()
    code = main(argv, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_json_lines_one_object_per_source_and_failures_are_data(web_server: LocalServer, allow_loopback, tmp_path: Path) -> None:
    page = build_fixture_site(web_server)
    sources = [page, "http://169.254.169.254/latest/", str(tmp_path / "missing.pdf")]
    code, out, err = run_main(["--json", *sources])
    assert code == 1  # some sources failed
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["source"] for line in lines] == sources
    assert [line["status"] for line in lines] == ["done", "failed", "failed"]
    assert [line["error_code"] for line in lines] == [None, "ssrf_blocked", "unsupported_input"]
    images = lines[0]["images"]
    assert len(images) == 34
    og = next(i for i in images if i["source_url"].endswith("/img/og.jpg")) if images else None
    assert og is not None and (og["width"], og["height"], og["format"], og["construct"]) == (120, 63, "jpeg", "meta")
    assert all("data" not in i and "saved_as" not in i for i in images)
    assert err == ""  # stderr is not a terminal: no progress bar


def test_out_writes_unique_safe_files(web_server: LocalServer, allow_loopback, tmp_path: Path) -> None:
    web_server.add("/a/logo.png", make_image("PNG", (30, 20)), "image/png")
    web_server.add("/b/logo.png", make_image("PNG", (31, 20)), "image/png")
    web_server.add("/page", '<img src="/a/logo.png"><img src="/b/logo.png"><img src="/missing.png">')
    out_dir = tmp_path / "out"
    (out_dir).mkdir()
    (out_dir / "logo.png").write_bytes(b"existing")  # never overwritten
    code, out, _err = run_main(["--json", "--out", str(out_dir), web_server.url("/page"), web_server.url("/a/logo.png")])
    assert code == 0
    first, second = (json.loads(line) for line in out.splitlines())
    saved = [i.get("saved_as") for i in first["images"]]
    assert [i["filename"] for i in first["images"]] == ["logo.png", "logo-2.png", "missing.png"]  # unique per source
    assert [Path(p).name if p else None for p in saved] == ["logo-2.png", "logo-2-2.png", None]  # and per directory
    assert Path(second["images"][0]["saved_as"]).name == "logo-3.png"
    assert (out_dir / "logo.png").read_bytes() == b"existing"
    written = sorted(p.name for p in out_dir.iterdir())
    assert written == ["logo-2-2.png", "logo-2.png", "logo-3.png", "logo.png"]
    assert (out_dir / "logo-2-2.png").read_bytes() == make_image("PNG", (31, 20))


def test_min_size_and_human_summary(web_server: LocalServer, allow_loopback) -> None:
    web_server.add("/big.png", make_image("PNG", (200, 100)), "image/png")
    web_server.add("/small.png", make_image("PNG", (20, 10)), "image/png")
    web_server.add("/page", '<img src="/big.png"><img src="/small.png">')
    code, out, _ = run_main(["--json", "--min-size", "100x50", web_server.url("/page")])
    assert code == 0
    assert [i["width"] for i in json.loads(out)["images"]] == [200]
    code, out, _ = run_main([web_server.url("/page"), "ftp://example.com/"])
    assert code == 1
    assert out.splitlines()[0].startswith(f"done    {web_server.url('/page')}  2 images")
    assert out.splitlines()[1].startswith("failed  ftp://example.com/  ssrf_blocked:")


def test_progress_bar_only_on_a_terminal(web_server: LocalServer, allow_loopback) -> None:
    web_server.add("/page", "<p>no images</p>")
    tty = FakeTTY()
    code, _out, err = run_main(["--json", web_server.url("/page")], stderr=tty)
    assert code == 0
    assert "\r[" in err and "1/1" in err and err.endswith("\n")


@pytest.mark.parametrize("argv", [[], ["--min-size", "big", "http://x.example/"], ["--bogus", "x"]])
def test_usage_errors_exit_2(argv: list[str]) -> None:
    code, out, err = run_main(argv)
    assert code == 2 and out == ""


def test_as_a_module_subprocess(web_server: LocalServer, tmp_path: Path) -> None:
    web_server.add("/i.gif", make_image("GIF", (7, 5), "P"), "image/gif")
    env = {**os.environ, "IMAGEEXTRACT_SSRF_ALLOW": "127.0.0.0/8"}
    proc = subprocess.run(
        [sys.executable, "-m", "imageextract.extract.cli", "--json", "--out", str(tmp_path), web_server.url("/i.gif")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    [line] = proc.stdout.splitlines()
    result = json.loads(line)
    assert result["status"] == "done"
    [image] = result["images"]
    assert (image["construct"], image["format"], image["width"], image["height"], image["filename"]) == ("file", "gif", 7, 5, "i.gif")
    assert (tmp_path / "i.gif").read_bytes() == make_image("GIF", (7, 5), "P")


def test_exit_status_0_all_succeeded_1_some_failed_and_documented(web_server: LocalServer, allow_loopback, tmp_path: Path) -> None:
    web_server.add("/page", "<p>no images</p>")
    assert run_main([web_server.url("/page")])[0] == 0
    assert run_main([web_server.url("/page"), str(tmp_path / "missing.pdf")])[0] == 1
    assert run_main([str(tmp_path / "missing.pdf"), "http://169.254.169.254/"])[0] == 1  # every source failed
    assert run_main(["--no-fetch", str(tmp_path / "missing.html")])[0] == 1


def test_help_documents_the_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--help"])
    assert code == 0
    text = capsys.readouterr().out
    assert "exit status:" in text
    assert "0  every source succeeded" in text and "1  at least one source failed" in text and "2  usage error" in text


SAVED_PAGE = """<!doctype html><html><head>{base}
<style>/* url(/commented.png) */ .hero {{ background: url("img/hero.png") }}
.set {{ background-image: image-set("img/a-1x.png" 1x, "img/a-2x.png" 2x) }}</style></head>
<body><img src="img/photo.jpg" alt="A photo" srcset="img/photo-2x.jpg 2x">
<img src="https://cdn.example.net/abs.png"><img src="data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7">
</body></html>"""


def test_saved_page_no_fetch_lists_discovery_as_json_lines(tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    page.write_text(SAVED_PAGE.format(base=""))
    code, out, _ = run_main(["--no-fetch", str(page)])
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert {r["source"] for r in rows} == {str(page)}
    by_url = {r["url"]: r for r in rows}
    # No base URL and no <base>: relative references are listed as written, flagged unresolved.
    photo = by_url["img/photo-2x.jpg"]  # the best srcset candidate, with its group
    assert photo["resolved"] is False and photo["alt_text"] == "A photo" and photo["construct"] == "srcset"
    assert [v["url"] for v in photo["variants"]] == ["img/photo.jpg"]
    assert by_url["https://cdn.example.net/abs.png"]["resolved"] is True
    assert {"img/hero.png", "img/a-1x.png", "img/a-2x.png"} <= set(by_url)
    assert "/commented.png" not in by_url and not any("commented" in u for u in by_url)
    assert any(u.startswith("data:image/gif") for u in by_url)

    code, out, _ = run_main(["--no-fetch", "--base-url", "https://site.example/news/", str(page)])
    assert code == 0
    urls = [json.loads(line)["url"] for line in out.splitlines()]
    assert "https://site.example/news/img/photo-2x.jpg" in urls and "https://site.example/news/img/hero.png" in urls

    page.write_text(SAVED_PAGE.format(base='<base href="https://own-base.example/x/">'))
    urls = [json.loads(line)["url"] for line in run_main(["--no-fetch", str(page)])[1].splitlines()]
    assert "https://own-base.example/x/img/photo-2x.jpg" in urls
    # --base-url wins over the page's own <base>
    urls = [json.loads(line)["url"] for line in run_main(["--no-fetch", "--base-url", "https://b.example/", str(page)])[1].splitlines()]
    assert "https://b.example/img/photo-2x.jpg" in urls


def test_saved_page_is_extracted_against_base_url(web_server: LocalServer, allow_loopback, tmp_path: Path) -> None:
    web_server.add("/news/img/photo.jpg", make_image("JPEG", (30, 20)), "image/jpeg")
    page = tmp_path / "saved.htm"
    page.write_text('<img src="img/photo.jpg" alt="x"><img src="img/gone.jpg">')
    code, out, _ = run_main(["--json", "--base-url", web_server.url("/news/"), str(page)])
    assert code == 0
    [result] = [json.loads(line) for line in out.splitlines()]
    assert result["status"] == "done"
    ok, gone = result["images"]
    assert (ok["width"], ok["height"], ok["source_url"]) == (30, 20, web_server.url("/news/img/photo.jpg"))
    assert gone["error"] and gone["source_url"] == web_server.url("/news/img/gone.jpg")
    code, out, _ = run_main(["--json", str(page)])  # no base: relative images are reported, not fetched
    [result] = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and all(i["error"].startswith("unsupported_input") for i in result["images"])


def test_base_url_must_be_http(tmp_path: Path) -> None:
    assert run_main(["--base-url", "file:///etc/", str(tmp_path / "p.html")])[0] == 2


def test_no_fetch_on_urls_fetches_only_the_page(web_server: LocalServer, allow_loopback) -> None:
    web_server.add("/i.png", make_image("PNG", (5, 5)), "image/png")
    web_server.add("/page", '<img src="/i.png" alt="x"><img src="/missing.png">')
    code, out, _ = run_main(["--no-fetch", web_server.url("/page"), web_server.url("/i.png")])
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["url"], r["construct"]) for r in rows] == [
        (web_server.url("/i.png"), "img"), (web_server.url("/missing.png"), "img"), (web_server.url("/i.png"), "file")]
    assert web_server.paths() == ["/page", "/i.png"], "no image was downloaded for the page"
