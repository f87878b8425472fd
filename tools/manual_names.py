"""Extract every name of the component manual into ``docs/manual_names.json``.

The manual is not part of this repository; its names are (they are the
public interface we map).  Run from the project root after the manual
changes::

    python tools/manual_names.py ../shared/reference/tcpserver-component-manual.txt

``tests/test_docs.py`` checks that every name in the JSON appears in the
built documentation next to its Python spelling, and (when the manual is
at hand) that the JSON is current.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "docs" / "manual_names.json"

_MEMBER = re.compile(r"^TCPServer\.(\w+) (Property|Method|Event)$")
_TYPE = re.compile(r"^(\w+) Type$")
_FIELD_TYPES = re.compile(r"^(string|number|boolean|Uint8Array|CertStoreTypes)( \(read-only\))?$")
_SETTING = re.compile(r"^(\w+):\s{2,}")
_EVENT_FIELD = re.compile(r"(?:readonly )?(\w+): ")
_ERROR = re.compile(r"^(\d{3,5})\s+")


def extract(text: str) -> dict[str, object]:
    lines = text.splitlines()
    names: dict[str, object] = {
        "properties": [],
        "methods": [],
        "events": {},
        "types": {},
        "config": [],
        "errors": [],
    }
    kinds = {"Property": "properties", "Method": "methods"}
    current_type = None
    in_fields = False
    in_settings = False
    for index, line in enumerate(lines):
        line = line.rstrip()
        match = _MEMBER.match(line)
        if match:
            name, kind = match.groups()
            if kind == "Event":
                syntax = next(
                    (s for s in lines[index + 1 : index + 12] if s.startswith("tcpserver.on(")), ""
                )
                fields = _EVENT_FIELD.findall(syntax.split("(e: {", 1)[-1])
                names["events"][name] = fields  # type: ignore[index]
            else:
                # (method headings are camelCase; the manual's lists use CamelCase)
                names[kinds[kind]].append(name[0].upper() + name[1:])  # type: ignore[attr-defined]
            continue
        match = _TYPE.match(line)
        if match:
            current_type = match.group(1)
            names["types"][current_type] = []  # type: ignore[index]
            in_fields = False
            continue
        if current_type and line == "Fields":
            in_fields = True
            continue
        if in_fields and line == "Constructors":
            in_fields = False
            current_type = None
            continue
        if in_fields and re.fullmatch(r"[A-Z]\w*", line):
            following = lines[index + 1].strip() if index + 1 < len(lines) else ""
            if following and _FIELD_TYPES.match(following):
                names["types"][current_type].append(line)  # type: ignore[index]
            continue
        if line.startswith("Config Settings (class"):
            in_settings = True
            continue
        if in_settings:
            match = _SETTING.match(line)
            if match and match.group(1) not in names["config"]:  # type: ignore[operator]
                names["config"].append(match.group(1))  # type: ignore[union-attr]
        match = _ERROR.match(line)
        if match and "Errors" in "".join(lines[max(0, index - 200) : index]):
            code = int(match.group(1))
            if code not in names["errors"]:  # type: ignore[operator]
                names["errors"].append(code)  # type: ignore[union-attr]
    return names


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    names = extract(Path(argv[1]).read_text(encoding="utf-8"))
    OUT.write_text(json.dumps(names, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {OUT}: " + ", ".join(f"{len(v)} {k}" for k, v in names.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
