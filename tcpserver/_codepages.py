"""The manual's numeric code pages (``CodePage`` setting) -> Python codecs.

Pure lookup, no I/O.  Windows code page numbers that Python knows as
``cp<number>`` need no entry; the table lists only the ones whose Python
name differs.  A code page with no Python codec is refused when it is set,
never at first use.
"""

from __future__ import annotations

import codecs

__all__ = ["codec_for_code_page"]

_NAMED = {
    1200: "utf-16-le",
    1201: "utf-16-be",
    1361: "johab",
    10000: "mac-roman",
    10006: "mac-greek",
    10007: "mac-cyrillic",
    10029: "mac-latin2",
    10079: "mac-iceland",
    10081: "mac-turkish",
    12000: "utf-32-le",
    12001: "utf-32-be",
    20127: "ascii",
    20866: "koi8-r",
    20932: "euc-jp",
    20936: "gb2312",
    21866: "koi8-u",
    28591: "latin-1",
    28592: "iso8859-2",
    28593: "iso8859-3",
    28594: "iso8859-4",
    28595: "iso8859-5",
    28596: "iso8859-6",
    28597: "iso8859-7",
    28598: "iso8859-8",
    28599: "iso8859-9",
    28605: "iso8859-15",
    38598: "iso8859-8",
    50220: "iso2022-jp",
    50221: "iso2022-jp-ext",
    50222: "iso2022-jp",
    50225: "iso2022-kr",
    51932: "euc-jp",
    51936: "gb2312",
    51949: "euc-kr",
    52936: "hz",
    54936: "gb18030",
    65000: "utf-7",
    65001: "utf-8",
}


def codec_for_code_page(code_page: int) -> str:
    """
    The Python codec name for one of the manual's code page numbers.

    :param code_page: e.g. ``65001`` (UTF-8), ``1252``, ``28591``.
    :returns: a name :func:`codecs.lookup` accepts.
    :raises LookupError: when Python has no codec for that code page.
    """
    name = _NAMED.get(code_page, f"cp{code_page}")
    return codecs.lookup(name).name
