"""The documentation names every name of the component manual.

``docs/manual_names.json`` holds every property, method, event, event
field, type field, config setting and error code of the manual (made by
``tools/manual_names.py``).  Each must appear in the built name map (a
table row holding the manual's name and its Python spelling), and each
setting and error code in the generated reference too.

The HTML comes from ``tox -e docs`` (``TCPSERVER_DOCS_HTML`` points at
it); the tests environment has no Sphinx, so there the test is skipped
unless ``TCPSERVER_REQUIRE_DOCS`` is set.
"""

from __future__ import annotations

import builtins
import html
import importlib.util
import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NAMES = json.loads((ROOT / "docs" / "manual_names.json").read_text(encoding="utf-8"))
MANUAL = ROOT.parent / "shared" / "reference" / "tcpserver-component-manual.txt"

#: Manual names whose Python spelling is not the mechanical snake_case one.
DEVIATIONS = {
    "EOLB": "eol",
    "TextB": "text",
    "textB": "text",
    "UserDataB": "user_data",
    "CertEncodedB": "cert_encoded",
    "certEncodedB": "cert_encoded",
    "StoreB": "store",
    "certStoreType": "certificate",
    "certStore": "certificate",
    "certPassword": "certificate",
    "certSubject@SSLConnectionRequest": "certificate",
    "EOL": "eol",
    "PrivateKeyContainer": "(none)",  # Windows key containers
}


def snake(name: str) -> str:
    """The mechanical rule: ``DefaultEOL`` -> ``default_eol``, ``startSSL`` -> ``start_ssl``."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name)
    return spaced.lower()


class _Rows(HTMLParser):
    """The text of every table row (and list-table row) of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[str] = []
        self._depth = 0
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self._depth += 1
            self._text = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr" and self._depth:
            self._depth -= 1
            self.rows.append(" ".join("".join(self._text).split()))

    def handle_data(self, data: str) -> None:
        if self._depth:
            self._text.append(data + " ")


def _html_dir() -> Path:
    built = os.environ.get("TCPSERVER_DOCS_HTML")
    if not built:
        if os.environ.get("TCPSERVER_REQUIRE_DOCS"):
            pytest.fail("TCPSERVER_DOCS_HTML is not set: build the docs first (tox -e docs)")
        pytest.skip("the docs are built and checked by tox -e docs")
    path = Path(built)
    assert (path / "namemap.html").exists(), f"no built docs in {path}"
    return path


def _rows(page: str) -> list[str]:
    parser = _Rows()
    parser.feed((_html_dir() / page).read_text(encoding="utf-8"))
    return parser.rows


def _text(page: str) -> str:
    raw = (_html_dir() / page).read_text(encoding="utf-8")
    return html.unescape(re.sub(r"<[^>]+>", " ", raw))


def _has_word(text: str, word: str) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(word)}(?!\w)", text) is not None


def _missing(expected: list[tuple[str, str]], rows: list[str]) -> list[str]:
    return [
        f"{manual} -> {python}"
        for manual, python in expected
        if not any(_has_word(row, manual) and _has_word(row, python) for row in rows)
    ]


def test_every_member_and_field_is_in_the_name_map():
    rows = _rows("namemap.html")
    expected: list[tuple[str, str]] = []
    for name in NAMES["properties"] + NAMES["methods"]:
        expected.append((name, snake(name)))
    for event, fields in NAMES["events"].items():
        expected.append((event, snake(event)))
        for field in fields:
            python = DEVIATIONS.get(f"{field}@{event}") or DEVIATIONS.get(field) or snake(field)
            manual = field[0].upper() + field[1:]
            expected.append((manual, python))
    for fields in NAMES["types"].values():
        for field in fields:
            expected.append((field, DEVIATIONS.get(field) or snake(field)))
    missing = _missing(expected, rows)
    assert not missing, "not in a name-map row: " + ", ".join(missing)


def test_every_setting_is_mapped_and_in_the_reference():
    rows = _rows("namemap.html")
    missing = [name for name in NAMES["config"] if not any(_has_word(r, name) for r in rows)]
    assert not missing, "settings missing from the name map: " + ", ".join(missing)
    reference = _text("reference.html")
    missing = [name for name in NAMES["config"] if not _has_word(reference, name)]
    assert not missing, "settings missing from the reference: " + ", ".join(missing)


def test_every_error_code_is_in_the_reference():
    reference = _text("reference.html")
    missing = [code for code in NAMES["errors"] if not _has_word(reference, str(code))]
    assert not missing, f"error codes missing from the reference: {missing}"


@pytest.mark.skipif(not MANUAL.exists(), reason="the manual is not next to this checkout")
def test_the_name_list_is_current():
    spec = importlib.util.spec_from_file_location(
        "manual_names", ROOT / "tools" / "manual_names.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.extract(MANUAL.read_text(encoding="utf-8")) == NAMES


def _python_blocks() -> list[tuple[str, int, str]]:
    """Every ``.. code-block:: python`` of docs/*.rst and python fence of docs/*.md."""
    blocks = []
    for page in sorted((ROOT / "docs").glob("*.rst")):
        lines = page.read_text(encoding="utf-8").splitlines()
        for index, line in enumerate(lines):
            if line.strip() not in (".. code-block:: python", ".. code-block:: python3"):
                continue
            indent = len(line) - len(line.lstrip()) + 3
            body: list[str] = []
            for following in lines[index + 1 :]:
                if following.strip() and len(following) - len(following.lstrip()) < indent:
                    break
                if following.strip().startswith(":") and not body:
                    continue  # a directive option
                body.append(following[indent:])
            blocks.append((page.name, index + 1, "\n".join(body)))
    for page in sorted((ROOT / "docs").glob("*.md")):
        text = page.read_text(encoding="utf-8")
        for match in re.finditer(r"```python\n(.*?)```", text, re.S):
            blocks.append((page.name, text[: match.start()].count("\n") + 1, match.group(1)))
    return blocks


def test_the_docs_have_python_examples():
    assert len(_python_blocks()) >= 10


@pytest.mark.parametrize(("page", "line", "code"), _python_blocks())
def test_every_python_example_in_the_docs_compiles(page, line, code):
    # (Whole programs are files in examples/, run by test_examples.py.)
    compile(code, f"{page}:{line}", "exec")


def test_flags_and_defaults_in_the_built_html_paste_into_a_shell():
    """No en dash where a flag's '--' was, no curly quotes (Sphinx's smart quotes are off)."""
    bad: list[str] = []
    for page in sorted(_html_dir().glob("*.html")):
        text = _text(page.name)
        bad += [f"{page.name}: {m}" for m in re.findall(r"\u2013[a-z][a-z-]*", text)]
        bad += [f"{page.name}: {m!r}" for m in re.findall(r"[\u201c\u201d\u2018\u2019]\S*", text)]
    assert not bad, bad[:20]


def test_every_internal_link_in_the_built_html_resolves():
    root = _html_dir().resolve()
    ids = {
        page.resolve(): set(re.findall(r'\sid="([^"]+)"', page.read_text(encoding="utf-8")))
        for page in root.rglob("*.html")
    }
    broken: list[str] = []
    for page in sorted(root.glob("*.html")):
        for href in re.findall(r'href="([^"]+)"', page.read_text(encoding="utf-8")):
            if re.match(r"^[a-z][a-z0-9+.-]*://|^mailto:", href):
                continue
            path, _, fragment = href.partition("#")
            path = path.split("?")[0]
            target = (page.parent / path).resolve() if path else page.resolve()
            missing_page = bool(path) and not target.exists()
            missing_anchor = (
                bool(fragment) and target in ids and html.unescape(fragment) not in ids[target]
            )
            if missing_page or missing_anchor:
                broken.append(f"{page.name}: {href}")
    assert not broken, broken


def test_the_api_reference_has_every_public_module():
    text = (_html_dir() / "reference.html").read_text(encoding="utf-8")
    for anchor in (
        "tcpserver.ProxyInfo",
        "tcpserver.testing.MemoryConnection",
        "tcpserver.testing.memory_server",
        "tcpserver.metrics.MetricsService",
        "tcpserver.workers.WorkerPool",
        "tcpserver.TCPServerFactory.stats",
    ):
        assert f'id="{anchor}"' in text, anchor


def test_the_twistd_page_lists_every_flag():
    from tcpserver.tap import Options

    flags = {p[0] for p in Options.optParameters} | {f[0] for f in Options.optFlags}
    flags |= {n[4:].replace("_", "-") for n in dir(Options) if n.startswith("opt_") and len(n) > 5}
    flags -= {"help", "version"}
    text = _text("twistd.html")
    missing = sorted(f for f in flags if not f.startswith("worker-") and f"--{f}" not in text)
    assert not missing, missing


def test_the_documented_certificate_date_format_is_what_the_code_returns(tmp_path):
    """namemap.rst's EffectiveDate format, turned into strftime, formats the dates as the code."""
    from helpers import TLSFiles

    source = (ROOT / "docs" / "namemap.rst").read_text(encoding="utf-8")
    row = re.search(r"- ``effective_date``\s*\n\s*- ``([^`]+)``", source)
    assert row, "no EffectiveDate row with a ``format`` in namemap.rst"
    documented = row.group(1)
    strftime = documented
    for token, directive in (("YYYY", "%Y"), ("Mon", "%b"), ("DD", "%d"), ("HH", "%H"),
                             ("MM", "%M"), ("SS", "%S")):  # fmt: skip
        strftime = strftime.replace(token, directive)
    certificate = TLSFiles(tmp_path).certificate()
    x509 = certificate.to_cryptography()
    for stamp, value in (
        (x509.not_valid_before_utc, certificate.effective_date),
        (x509.not_valid_after_utc, certificate.expiration_date),
    ):
        assert stamp.astimezone().strftime(strftime) == value, (documented, value)


# -- the deviations table ------------------------------------------------------------------


def _deviation_rows() -> list[list[str]]:
    """The rows of docs/namemap.rst's "Deviations from the manual" list-table (its source)."""
    text = (ROOT / "docs" / "namemap.rst").read_text(encoding="utf-8")
    section = text.split("Deviations from the manual\n---", 1)[1].split("\n---", 1)[0]
    rows: list[list[str]] = []
    for line in section.splitlines():
        if line.startswith("   * - "):
            rows.append([line[7:]])
        elif line.startswith("     - ") and rows:
            rows[-1].append(line[7:])
    return rows[1:]  # (the header row)


def _manual_names() -> set[str]:
    names: set[str] = set()
    for key, value in NAMES.items():
        if key == "types":
            names.update(value)
            for fields in value.values():
                names.update(fields)
        elif key != "errors":
            names.update(value)
    for event in NAMES["events"]:  # (and the manual's event fields)
        names.update(_EVENT_FIELDS.get(event, ()))
    return names


_EVENT_FIELDS = {"DataIn": ("Text", "TextB")}
#: names from the manual's Certificate constructors (its configuration string)
_CONSTRUCTOR_WORDS = ("PersistPFXKey", "UseInternalSecurityAPI")


def _exists(literal: str) -> bool:
    """Whether a ``literal`` of a deviation row names something tcpserver has."""
    import tcpserver
    from tcpserver import Certificate, TCPServer, TCPServerError, events
    from tcpserver.connection import Connection
    from tcpserver.settings import lookup

    if re.fullmatch(r"[A-Z][A-Za-z0-9]*=.*", literal):  # Name=Value: a setting
        try:
            lookup(literal.split("=", 1)[0])
        except TCPServerError:
            return False
        return True
    if literal in vars(builtins):  # (``bytes``, ``str``)
        return True
    if re.fullmatch(r"[a-z_][a-z0-9_]*", literal):  # an attribute, an event or a field
        fields = {
            f for cls in vars(events).values() if isinstance(cls, type)
            for f in getattr(cls, "__dataclass_fields__", {})
        }  # fmt: skip
        return any(hasattr(cls, literal) for cls in (TCPServer, Connection, Certificate)) or (
            literal in fields or literal in tcpserver.EVENT_NAMES
        )
    if re.fullmatch(r"[A-Z]\w*(\.\w+)+", literal):  # tcpserver.Class.member
        target: object = tcpserver
        for part in literal.split("."):
            if not hasattr(target, part):
                return False
            target = getattr(target, part)
        return True
    if re.fullmatch(r"[A-Z][A-Za-z0-9]+", literal):  # a setting name
        try:
            lookup(literal)
        except TCPServerError:
            return False
        return True
    return True  # (code examples: checked by the examples tests)


def test_the_deviations_table_names_only_what_exists():
    rows = _deviation_rows()
    assert len(rows) >= 10, rows
    manual = _manual_names()
    for row in rows:
        assert len(row) == 4, row  # manual / tcpserver / why / instead
        said = row[0]
        camel = [
            word
            for word in re.findall(r"\b[A-Z][A-Za-z0-9]*\b", said)
            if word in manual or (re.search("[a-z]", word) and len(re.findall("[A-Z]", word)) >= 2)
        ]  # (the manual's names, and every CamelCase word: they must be the manual's)
        assert camel, f"no manual name in {said!r}"
        unknown = [w for w in camel if w not in manual and w not in _CONSTRUCTOR_WORDS]
        assert not unknown, f"{unknown} in {said!r} are not names of the manual"
        for cell in row[1:]:
            for literal in re.findall(r"``([^`]+)``", cell):
                assert _exists(literal), f"{literal!r} (in {cell!r}) does not exist in tcpserver"


def test_the_deviation_check_catches_a_name_that_does_not_exist():
    assert not _exists("ssl_frobnicate")
    assert not _exists("SSLStartMode.SOMETIMES")
    assert not _exists("NoSuchSetting=1")
    assert _exists("user_data")
    assert _exists("SSLStartMode.DETECT")
    assert _exists("AllowedClients=::1")


def test_the_performance_page_is_for_readers():
    """It starts from the in-project benchmark, dates its figures, and is no work log."""
    text = (ROOT / "docs" / "performance.md").read_text(encoding="utf-8")
    assert text.index("python -m tcpserver.bench run") < text.index("run_all.sh")
    for workload in ("| echo |", "| churn |", "| idle |", "| TLS echo, churn, idle |"):
        assert workload in text
    assert re.search(r"`python -m tcpserver.bench run` .* on\s+20\d\d-\d\d-\d\d", text)
    for log_word in (".bench/results", "/work/", "performance issue", "the lead"):
        assert log_word not in text, log_word


def test_twisted_and_python_names_link_to_their_own_docs():
    """intersphinx (offline inventories, tools/inventories.py): Deferred, bytes... are links."""
    text = (_html_dir() / "reference.html").read_text(encoding="utf-8")
    assert (
        'href="https://docs.twisted.org/en/stable/api/twisted.internet.defer.Deferred.html"' in text
    )
    assert 'href="https://docs.python.org/3/library/stdtypes.html#bytes"' in text
    assert "builtins.html" not in text
