"""`acpbuild report`: a static HTML gallery, read back with the standard library's HTML parser."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from PIL import Image

import acpbuild
from acpbuild.cli import main
from acpbuild.report import charts, make_report
from acpbuild.store import layout

ROOT = Path(__file__).resolve().parent.parent
_VOID = {"img", "meta", "br", "hr", "input", "link", "source", "wbr", "col", "area", "base", "embed", "track"}


# -- reading the page back -------------------------------------------------------------------
@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def walk(self) -> list[Node]:
        return [self, *(n for c in self.children for n in c.walk())]

    def find(self, tag: str, cls: str | None = None) -> list[Node]:
        return [n for n in self.walk() if n.tag == tag and (cls is None or cls in n.classes)]

    def one(self, tag: str, cls: str | None = None) -> Node:
        found = self.find(tag, cls)
        assert len(found) == 1, (tag, cls, len(found))
        return found[0]

    @property
    def text(self) -> str:
        return "".join([*self.texts, *(c.text for c in self.children)])


class _Tree(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in _VOID:
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID:
            return
        assert self.stack[-1].tag == tag, f"</{tag}> closes <{self.stack[-1].tag}>"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        # text nodes kept in order with the children is not needed: each test reads one element's text
        self.stack[-1].children.append(Node("#text", {}, texts=[data]))


def parse(index: Path) -> Node:
    tree = _Tree()
    tree.feed(index.read_text(encoding="utf-8"))
    tree.close()
    assert len(tree.stack) == 1, "every element is closed"
    return tree.root


def cards(page: Node) -> dict[str, Node]:
    return {unquote(n.attrs["id"]).removeprefix("step-"): n for n in page.find("article", "card")}


def status(card: Node) -> str:
    return card.one("span", "status").text


def links_are_local(page: Node, report: Path) -> list[str]:
    """Every src, href and poster: relative, inside the report, and an existing file (or a fragment on the page)."""
    ids = {n.attrs["id"] for n in page.walk() if "id" in n.attrs}
    seen = []
    for node in page.walk():
        for attr in ("src", "href", "poster"):
            value = node.attrs.get(attr)
            if value is None:
                continue
            if value.startswith("#"):
                assert value[1:] in ids, value
                continue
            parsed = urlparse(value)
            assert not parsed.scheme and not parsed.netloc and not value.startswith("/"), value
            target = (report / value).resolve()
            assert target.is_relative_to(report.resolve()) and target.is_file(), value
            seen.append(value)
    return seen


# -- recipes -------------------------------------------------------------------------------
def quickstart(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "recipes", tmp_path / "recipes", ignore=shutil.ignore_patterns(".acpbuild", "report"))
    (tmp_path / ".git").mkdir(exist_ok=True)  # a checkout: recipes/ write to ../out, at its root
    return tmp_path / "recipes" / "quickstart.toml"


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "acpbuild.toml"
    path.write_text(body, encoding="utf-8")
    return path


# -- the quickstart ----------------------------------------------------------------------
def test_quickstart_report_shows_every_step_with_its_media(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = quickstart(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["run", "recipes/quickstart.toml", "--yes"]) == 0
    capsys.readouterr()
    assert main(["report", "recipes/quickstart.toml"]) == 0
    # media: the script's text, the narration, the cover, and two videos each with a poster
    assert capsys.readouterr().out.strip() == "report: recipes/report/index.html (5 steps, 7 media files)"
    report = tmp_path / "recipes" / "report"
    page = parse(report / "index.html")
    found = cards(page)
    assert list(found) == ["script", "narration", "cover", "clip", "final"]

    assert found["script"].one("pre", "text").text == (tmp_path / "out/quickstart/script.txt").read_text()
    audio = found["narration"].one("audio")
    assert "controls" in audio.attrs and audio.attrs["preload"] == "metadata"
    assert found["cover"].one("img").attrs["src"].endswith(".png")
    for name in ("clip", "final"):
        video = found[name].one("video")
        assert video.attrs["preload"] == "metadata" and "controls" in video.attrs
        with Image.open(report / video.attrs["poster"]) as poster:
            assert poster.size == (640, 360)  # a real frame of the video
    assert len(links_are_local(page, report)) == 6  # the script is short: shown inline, not linked

    # the prompt as sent, after ${topic} was put in
    assert found["cover"].one("p", "prompt").text == "a lighthouse at dawn, golden light, 35mm"
    assert found["script"].one("p", "prompt").text == "Narrate a lighthouse at dawn for a short film"
    params = {r.one("th").text: r.one("td").text for r in found["cover"].one("table", "params").find("tr")}
    assert params == {"image_size": "landscape_16_9", "prompt": "a lighthouse at dawn, golden light, 35mm", "seed": "7"}
    facts = found["cover"].one("dl", "facts").text
    assert "local/pillow" in facts and "$0.00" in facts
    assert found["cover"].one("time").attrs["datetime"].endswith("+00:00")
    assert {status(c) for c in found.values()} == {"ran"}

    # lineage both ways: the final video's inputs, and who uses the narration
    lineage = found["final"].one("p", "lineage")
    assert {a.attrs["href"] for a in lineage.find("a")} == {"#step-clip", "#step-narration"}
    assert "#step-final" in {a.attrs["href"] for a in found["narration"].one("p", "lineage").find("a")}

    # spend: a bar per step and per provider, each labelled; nothing spent on any day
    by_step = page.one("figure", "by-step").one("svg")
    assert by_step.attrs["role"] == "img" and by_step.find("title")[0].text == "Spend per step of quickstart"
    assert [g.one("title").text for g in by_step.find("g", "bar")] == [
        f"{n}: $0.00" for n in ("script", "narration", "cover", "clip", "final")
    ]
    assert len(page.one("figure", "by-provider").find("g", "bar")) == 1
    assert charts.NOTHING in page.one("figure", "by-day").text

    # a second run finds everything up to date, and the report says so
    assert main(["run", "recipes/quickstart.toml", "--yes"]) == 0
    assert main(["report", str(recipe)]) == 0
    assert {status(c) for c in cards(parse(report / "index.html")).values()} == {"up to date"}


def test_run_report_writes_the_gallery_with_that_runs_statuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    quickstart(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["run", "recipes/quickstart.toml", "--yes", "--report"]) == 0
    assert "report: recipes/report/index.html (5 steps, 7 media files)" in capsys.readouterr().out
    assert {status(c) for c in cards(parse(tmp_path / "recipes/report/index.html")).values()} == {"ran"}
    # nothing changed: the no-op fast path answers, and the report still comes
    assert main(["run", "recipes/quickstart.toml", "--yes", "--report-dir", "gallery"]) == 0
    assert {status(c) for c in cards(parse(tmp_path / "gallery/index.html")).values()} == {"up to date"}


def test_a_recipe_never_run_is_not_built(tmp_path: Path) -> None:
    recipe = quickstart(tmp_path)
    written = make_report(recipe, env={})
    page = parse(written.index)
    assert {status(c) for c in cards(page).values()} == {"not built"}
    assert len(page.find("p", "not-built")) == 5 and written.media == 0
    # the prompt as the recipe writes it, since none was sent yet
    assert cards(page)["cover"].one("p", "prompt").text == "a lighthouse at dawn, golden light, 35mm"
    assert charts.NOTHING in page.one("figure", "by-step").text


def test_the_last_run_is_kept_in_the_store_without_temporary_files(tmp_path: Path) -> None:
    recipe = quickstart(tmp_path)
    acpbuild.run(recipe, env={})
    store = tmp_path / "recipes" / ".acpbuild"
    assert layout.last_run(store, "quickstart").is_file()
    assert not list(store.glob("last-run-*.tmp"))


def test_a_last_run_that_cannot_be_kept_is_a_warning_naming_the_file(tmp_path: Path) -> None:
    recipe = quickstart(tmp_path)
    kept = layout.last_run(tmp_path / "recipes" / ".acpbuild", "quickstart")
    kept.mkdir(parents=True)  # something else holds the name: the record cannot be written
    result = acpbuild.run(recipe, env={})
    assert result.success  # the build is done; only its summary for the report is lost
    assert [w for w in result.warnings if "cannot write" in w] == [f"cannot write {kept}: Is a directory"]


def test_a_kept_last_run_that_is_not_a_run_is_ignored_and_the_plan_shows(tmp_path: Path) -> None:
    recipe = quickstart(tmp_path)
    assert acpbuild.run(recipe, env={}).success
    kept = layout.last_run(tmp_path / "recipes" / ".acpbuild", "quickstart")
    # cut short, another program's JSON, or nothing at all: the report falls back to the plan
    for text in ('{"recipe": "quickstart", "steps": [', '["ran", "ran"]', '"ran"', "null"):
        kept.write_text(text, encoding="utf-8")
        page = parse(make_report(recipe, env={}).index)
        assert {status(c) for c in cards(page).values()} == {"up to date"}, text


def test_writing_twice_replaces_the_report_and_leaves_nothing_behind(tmp_path: Path) -> None:
    recipe = quickstart(tmp_path)
    acpbuild.run(recipe, env={})
    first = make_report(recipe, tmp_path / "site", env={})
    stray = tmp_path / "site" / "media" / "stray.png"
    stray.write_bytes(b"old")
    second = make_report(recipe, tmp_path / "site", env={})
    assert first.index == second.index and not stray.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".git", "out", "recipes", "site"]
    assert len(list((tmp_path / "site" / "media").iterdir())) == second.media == 7


def test_a_folder_that_is_not_a_report_is_never_replaced(tmp_path: Path) -> None:
    recipe = quickstart(tmp_path)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    with pytest.raises(acpbuild.AcpbuildError, match="is not a report"):
        make_report(recipe, tmp_path / "notes", env={})
    assert (tmp_path / "notes" / "todo.txt").read_text() == "keep me"


# -- what users write stays text -----------------------------------------------------------------
def test_markup_in_prompts_and_item_fields_stays_text(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[steps.say]
kind = "text"
prompt = "<script>alert(1)</script> & \\"quotes\\""
sentences = 1
output = "say.txt"

[steps.each]
kind = "text"
foreach = [{ id = "a", title = "<img src=x onerror=alert(1)>" }, { id = "b", title = "plain" }]
prompt = "${item.title}"
sentences = 1
output = "each/${item.id}.txt"
""",
    )
    assert acpbuild.run(path, env={}).success
    written = make_report(path, env={})
    page = parse(written.index)
    assert page.find("script") == [] and all(img.attrs.get("src") != "x" for img in page.find("img"))
    assert cards(page)["say"].one("p", "prompt").text == '<script>alert(1)</script> & "quotes"'
    assert "<script>" not in written.index.read_text().replace("&lt;script&gt;", "")
    assert cards(page)["each[a]"].one("table", "item").text.endswith("<img src=x onerror=alert(1)>")


# -- foreach and groups -------------------------------------------------------------------------
def test_a_foreach_step_is_one_section_with_a_card_per_item(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[steps.card]
kind = "text_to_image"
foreach = [{ id = "a", words = "first" }, { id = "b", words = "second" }, { id = "c", words = "third" }]
prompt = "${item.words}"
width = 64
height = 48
output = "cards/${item.id}.png"
""",
    )
    assert acpbuild.run(path, env={}).success
    page = parse(make_report(path, env={}).index)
    section = page.one("section", "foreach")
    assert section.attrs["id"] == "step-card"
    grid = section.one("div", "grid")
    items = grid.find("article", "card")
    assert [c.one("h3").text for c in items] == ["a", "b", "c"]
    assert [c.one("p", "prompt").text for c in items] == ["first", "second", "third"]
    assert all(len(c.find("img")) == 1 for c in items)
    fields = {r.one("th").text: r.one("td").text for r in items[1].one("table", "item").find("tr")}
    assert fields == {"id": "b", "words": "second"}


def test_a_first_success_group_marks_the_member_that_succeeded(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[steps.fancy]
kind = "text_to_speech"
text = "Hello from the harbour."
voice = "no-such-voice"
output = "fancy.wav"

[steps.plain]
kind = "text_to_speech"
text = "Hello from the harbour."
output = "plain.wav"

[groups.voice]
steps = ["fancy", "plain"]
merge = "first_success"
output = "voice.wav"
""",
    )
    acpbuild.run(path, env={})
    page = parse(make_report(path, env={}).index)
    group = page.one("section", "group")
    assert group.attrs["id"] == "step-voice" and "first_success" in group.text
    members = cards(group)
    assert list(members) == ["fancy", "plain"]
    assert "chosen" in members["plain"].classes and members["plain"].one("span", "badge").text == "chosen"
    assert "chosen" not in members["fancy"].classes and status(members["fancy"]) == "failed"
    assert "no-such-voice" in members["fancy"].one("pre", "error").text


IMAGES = """
[defaults.text_to_image]
prompt = "harbour"

[steps.small]
kind = "text_to_image"
width = 64
height = 48
output = "small.png"

[steps.large]
kind = "text_to_image"
width = 128
height = 96
output = "large.png"

[groups.cover]
steps = ["small", "large"]
merge = "best_quality"
output = "cover.png"
{scorer}
"""


@pytest.mark.parametrize(
    ("scorer", "chosen", "scores"),
    [
        # a built-in metric: each member shows its value
        ('score = "resolution"', "large", {"small": "resolution 3072", "large": "resolution 12288"}),
        # a judge: the chosen one says who named it
        ('judge = "pick"\n[steps.pick]\nkind = "text"\nprompt = "small"\nsentences = 1\noutput = "pick.txt"\n',
         "small", {"small": "named by pick"}),
    ],
)
def test_a_best_quality_group_marks_its_choice_and_scores(
    tmp_path: Path, scorer: str, chosen: str, scores: dict[str, str]
) -> None:
    path = write(tmp_path, IMAGES.format(scorer=scorer))
    assert acpbuild.run(path, env={}).success
    page = parse(make_report(path, env={}).index)
    members = cards(page.one("section", "group"))
    assert [n for n, c in members.items() if "chosen" in c.classes] == [chosen]
    assert {n: c.one("span", "score").text for n, c in members.items() if c.find("span", "score")} == scores
    # the group's copy and the chosen member's output are the same bytes: one file
    assert len({img.attrs["src"] for img in page.find("img")}) == 2


# -- history ------------------------------------------------------------------------------------
def test_history_shows_earlier_generations_and_what_the_edit_changed(tmp_path: Path) -> None:
    body = '[steps.cover]\nkind = "text_to_image"\nprompt = "{prompt}"\nwidth = 64\nheight = 48\noutput = "cover.png"\n'
    path = write(tmp_path, body.format(prompt="harbour"))
    acpbuild.run(path, env={})
    path.write_text(body.format(prompt="harbour at night"))
    acpbuild.run(path, env={})
    plain = parse(make_report(path, env={}).index)
    assert plain.find("details", "history") == []
    page = parse(make_report(path, history=True, env={}).index)
    card = cards(page)["cover"]
    assert card.one("p", "prompt").text == "harbour at night"
    history = card.one("details", "history")
    assert history.one("summary").text == "1 earlier generation in the store"
    earlier = history.one("ol").find("li")[0]
    assert earlier.one("ul", "changes").text == "prompt: 'harbour' → 'harbour at night'"
    assert len(earlier.find("img")) == 1
    assert len(links_are_local(page, tmp_path / "report")) == 2


# -- charts -------------------------------------------------------------------------------------
def test_bar_lengths_follow_the_amounts_and_an_empty_chart_says_so() -> None:
    page = _svg(charts.bars("c", "Spend", [("cover", 0.04), ("clip", 0.5)]))
    widths = [float(g.one("rect").attrs["width"]) for g in page.find("g", "bar")]
    assert widths[1] > widths[0] > 0 and widths[0] / widths[1] == pytest.approx(0.08, abs=0.01)
    assert [g.one("title").text for g in page.find("g", "bar")] == ["cover: $0.04", "clip: $0.50"]
    assert charts.NOTHING not in page.text
    for empty in (charts.bars("c", "Spend", []), charts.columns("d", "Per day", [])):
        assert charts.NOTHING in _svg(empty).text
    days = _svg(charts.columns("d", "Per day", [("2026-01-01", 1.0), ("2026-01-03", 2.5)]))
    assert [g.one("title").text for g in days.find("g", "bar")] == ["2026-01-01: $1.00", "2026-01-03: $2.50"]


def _svg(markup: str) -> Node:
    tree = _Tree()
    tree.feed(markup)
    return tree.root.one("svg")


# -- the catalog templates ----------------------------------------------------------------------
def _template_names() -> list[str]:
    from acpbuild.cli import scaffold

    return [t.name for t in scaffold.templates()]


@pytest.mark.slow
@pytest.mark.parametrize("name", _template_names())
def test_every_template_runs_offline_into_a_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["init", "proj", "--template", name]) == 0
    assert main(["run", "proj/acpbuild.toml", "--yes"]) == 0
    recipe = acpbuild.load_recipe(tmp_path / "proj" / "acpbuild.toml", env={})
    capsys.readouterr()
    assert main(["report", "proj/acpbuild.toml"]) == 0
    assert capsys.readouterr().out.startswith("report: proj/report/index.html")
    page = parse(tmp_path / "proj" / "report" / "index.html")
    found = cards(page)
    assert sorted(found) == sorted(recipe.steps)
    assert all(status(c) == "ran" for c in found.values())
    assert page.find("p", "not-built") == []
    links_are_local(page, tmp_path / "proj" / "report")
