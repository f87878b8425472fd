"""Sphinx directives that render tables straight from tcpserver's code.

``.. tcpserver-settings:: property|config`` renders the settings registry,
so the reference cannot drift from what ``config()`` accepts.
"""

from __future__ import annotations

from typing import Any, ClassVar

from docutils import nodes
from docutils.parsers.rst import Directive, directives

from tcpserver.errors import MESSAGES
from tcpserver.settings import READOUTS, REGISTRY


def _table(headers: list[str], rows: list[list[str]], widths: list[int]) -> nodes.table:
    table = nodes.table()
    group = nodes.tgroup(cols=len(headers))
    table += group
    for width in widths:
        group += nodes.colspec(colwidth=width)
    head = nodes.thead()
    group += head
    head += _row(headers)
    body = nodes.tbody()
    group += body
    for row in rows:
        body += _row(row)
    return table


def _row(cells: list[str]) -> nodes.row:
    row = nodes.row()
    for cell in cells:
        entry = nodes.entry()
        entry += nodes.paragraph(text=cell)
        row += entry
    return row


class SettingsTable(Directive):
    """Every registry entry of one kind, with type, default and meaning."""

    required_arguments = 1
    option_spec: ClassVar[dict[str, Any]] = {"class": directives.class_option}

    def run(self) -> list[Any]:
        kind = self.arguments[0]
        rows = []
        for setting in REGISTRY:
            if setting.kind != kind:
                continue
            default = "" if setting.default is None else setting.format(setting.default)
            when = (
                f"not while listening (error {setting.listening_error})"
                if setting.listening_error
                else ("read-only" if setting.read_only else setting.applies)
            )
            meaning = setting.doc
            if setting.unsupported:
                meaning += f" Non-default values are refused: {setting.unsupported}."
            flag = f"--{setting.flag}" if setting.flag else f"--config {setting.name}=..."
            name = setting.name if not setting.attr else f"{setting.attr} ({setting.name})"
            rows.append([name, setting.type.name, repr(default), when, meaning, flag])
        return [
            _table(
                ["Name", "Type", "Default", "Changes apply", "Meaning", "twistd"],
                rows,
                [22, 8, 12, 16, 40, 18],
            )
        ]


class FlagsTable(Directive):
    """
    Every flag of ``twistd tcpserver`` from the same Options class that
    ``--help`` prints (parameters, switches and ``opt_*`` methods), so the
    table cannot miss one.  Internal ``--worker-*`` flags are left out.
    """

    def run(self) -> list[Any]:
        import inspect

        from tcpserver.tap import Options

        rows: list[tuple[str, list[str]]] = []
        for long, short, default, doc, *_ in Options.optParameters:
            if long.startswith("worker-"):
                continue
            flag = f"--{long} VALUE" + (f", -{short}" if short else "")
            shown = "" if default is None else repr(default)
            rows.append((long, [flag, shown, " ".join(doc.split())]))
        for long, short, doc in Options.optFlags:
            flag = f"--{long}" + (f", -{short}" if short else "")
            rows.append((long, [flag, "off", " ".join(doc.split())]))
        for name, method in inspect.getmembers(Options, inspect.isfunction):
            if not name.startswith("opt_") or len(name) <= 5:
                continue
            long = name[4:].replace("_", "-")
            if long in {"help", "version"} or any(r[0] == long for r in rows):
                continue
            doc = " ".join((method.__doc__ or "").split())
            rows.append((long, [f"--{long} VALUE", "", doc]))
        rows.sort(key=lambda row: row[0])
        return [_table(["Flag", "Default", "Meaning"], [r for _, r in rows], [26, 12, 60])]


class ReadoutsTable(Directive):
    def run(self) -> list[Any]:
        rows = [[name, f'config("{name}[<connection_id>]")'] for name in READOUTS]
        return [_table(["Read-out", "How to read it"], rows, [30, 50])]


class ConfigMapTable(Directive):
    """
    Every config setting (and read-out) by its manual name, how it is
    reached here, and any deviation.  The directive's content holds the
    deviations, one ``Name: note`` per line; a note for a name the registry
    does not have is an error, so the table cannot drift from the code.
    """

    has_content = True

    def run(self) -> list[Any]:
        notes: dict[str, str] = {}
        for line in self.content:
            if line.strip():
                name, _, note = line.partition(":")
                notes[name.strip()] = note.strip()
        rows = []
        for setting in REGISTRY:
            if setting.kind != "config":
                continue
            how = f'config("{setting.name}=...")'
            if setting.read_only:
                how = f'config("{setting.name}") (read-only)'
            if setting.flag:
                how += f", twistd --{setting.flag}"
            note = notes.pop(setting.name, "")
            if setting.unsupported:
                note = (note + " " if note else "") + f"Only the default: {setting.unsupported}."
            rows.append([setting.name, how, note or "as in the manual"])
        for name in READOUTS:
            rows.append(
                [name, f'config("{name}[<connection_id>]")', notes.pop(name, "per connection")]
            )
        if notes:
            raise self.error(f"notes for unknown settings: {', '.join(sorted(notes))}")
        return [_table(["manual", "tcpserver", "notes"], rows, [26, 40, 50])]


class ErrorsTable(Directive):
    def run(self) -> list[Any]:
        rows = [[str(code), text] for code, text in MESSAGES.items() if code]
        return [_table(["Code", "Description"], rows, [10, 70])]


def setup(app: Any) -> dict[str, Any]:
    app.add_directive("tcpserver-settings", SettingsTable)
    app.add_directive("tcpserver-readouts", ReadoutsTable)
    app.add_directive("tcpserver-flags", FlagsTable)
    app.add_directive("tcpserver-errors", ErrorsTable)
    app.add_directive("tcpserver-config-map", ConfigMapTable)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
