"""Tier 1: the sans-IO framer, with plain pytest and Hypothesis.

Every input is fed three ways (whole, byte by byte, in random cuts), and the
optimised :class:`Framer` is checked against ``helpers.ModelFramer``, a naive
re-statement of the API.md rules that re-derives each frame from the whole
pending buffer.
"""

from __future__ import annotations

import copy
import itertools

import pytest
from helpers import ModelFramer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcpserver import framing
from tcpserver.framing import HOLD_THRESHOLD, LONG_LINE, Framer, split_at

Frame = tuple[bytes, bool]


def drain(framer) -> list[Frame]:
    out = []
    while (frame := framer.next_frame()) is not None:
        out.append(frame)
    return out


def run(framer, chunks) -> list[Frame]:
    """Feed ``chunks``, pulling every frame after each, then flush."""
    out: list[Frame] = []
    for chunk in chunks:
        framer.receive(chunk)
        out += drain(framer)
    rest = framer.flush()
    if rest:
        out.append((rest, False))
    return out


def cuts(data: bytes, sizes: list[int]) -> list[bytes]:
    out, i = [], 0
    for size in sizes:
        if i >= len(data):
            break
        out.append(data[i : i + size])
        i += size
    if i < len(data):
        out.append(data[i:])
    return out


def three_ways(make, data: bytes) -> list[list[Frame]]:
    return [
        run(make(), [data]),
        run(make(), [data[i : i + 1] for i in range(len(data))]),
        run(make(), cuts(data, [3, 1, 7, 2, 64, 5] * 100)),
    ]


# -- examples: one per rule ------------------------------------------------------


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 1000])
def test_eol_lines_any_chunking(size):
    data = b"hello\r\nworld\r\n\r\nlast"
    frames = run(Framer(eol=b"\r\n"), cuts(data, [size] * 100))
    assert frames == [(b"hello", True), (b"world", True), (b"", True), (b"last", False)]


def test_multibyte_eol_split_across_reads():
    framer = Framer(eol=b"END")
    framer.receive(b"abcE")
    assert framer.next_frame() is None
    framer.receive(b"N")
    assert framer.next_frame() is None
    framer.receive(b"Dxyz")
    assert framer.next_frame() == (b"abc", True)
    assert framer.next_frame() is None
    assert framer.flush() == b"xyz"


def test_nul_eol():
    frames = run(Framer(eol=b"\x00"), [b"a\x00b\x00\x00c"])
    assert frames == [(b"a", True), (b"b", True), (b"", True), (b"c", False)]


def test_eol_with_nul_inside():
    frames = run(Framer(eol=b"\x00\xff"), [b"x\x00y\x00\xffz\x00", b"\xff"])
    assert frames == [(b"x\x00y", True), (b"z", True)]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"a\rb\nc\r\nd", [b"a", b"b", b"c"]),
        (b"\r\n\r\n", [b"", b""]),
        (b"\n\r", [b"", b""]),  # LF then CR: two terminators
        (b"\r\r\n", [b"", b""]),
    ],
)
def test_single_line_mode(data, expected):
    for frames in three_ways(lambda: Framer(single_line_mode=True), data):
        lines = [f for f, eol in frames if eol]
        assert lines == expected


def test_single_line_crlf_split_across_reads_is_one_terminator():
    framer = Framer(single_line_mode=True)
    framer.receive(b"one\r")
    assert framer.next_frame() == (b"one", True)  # delivered at once
    framer.receive(b"\ntwo\r\n")
    assert framer.next_frame() == (b"two", True)
    assert framer.next_frame() is None
    assert framer.flush() == b""


def test_single_line_ignores_eol():
    assert run(Framer(eol=b"X", single_line_mode=True), [b"aXb\n"]) == [(b"aXb", True)]


def test_record_length():
    framer = Framer(eol=b"\n", record_length=4)
    frames = run(framer, [b"ab\ncd", b"efghij"])
    assert frames == [(b"ab\nc", True), (b"defg", True), (b"hij", False)]


def test_raw_mode_delivers_chunks_as_received():
    framer = Framer()
    framer.receive(b"abc")
    assert framer.next_frame() == (b"abc", True)
    framer.receive(b"\r\nde")
    assert framer.next_frame() == (b"\r\nde", True)
    assert framer.next_frame() is None


def test_max_line_length_partial_delivery():
    framer = Framer(eol=b"\n", max_line_length=256)
    framer.receive(b"x" * 600 + b"\n")
    assert drain(framer) == [(b"x" * 256, False), (b"x" * 256, False), (b"x" * 88, True)]


def test_line_of_exactly_max_length_is_a_line():
    framer = Framer(eol=b"\r\n", max_line_length=256)
    framer.receive(b"y" * 256 + b"\r")
    assert framer.next_frame() is None  # the CR may start the terminator
    framer.receive(b"\n")
    assert framer.next_frame() == (b"y" * 256, True)


def test_max_line_length_without_terminator_waits_for_certainty():
    framer = Framer(eol=b"\n", max_line_length=256)
    framer.receive(b"z" * 256)
    assert framer.next_frame() is None
    framer.receive(b"z")
    assert framer.next_frame() == (b"z" * 256, False)


def test_single_line_max_length():
    framer = Framer(single_line_mode=True, max_line_length=256)
    framer.receive(b"q" * 257)
    assert framer.next_frame() == (b"q" * 256, False)
    framer.receive(b"\r\n")
    assert framer.next_frame() == (b"q", True)


def test_change_inside_listener_applies_to_next_byte():
    framer = Framer(eol=b"\n")
    framer.receive(b"HEAD\nBODY1234rest\n")
    assert framer.next_frame() == (b"HEAD", True)
    framer.record_length = 8  # as a data_in listener would
    assert framer.next_frame() == (b"BODY1234", True)
    framer.record_length = 0
    assert framer.next_frame() == (b"rest", True)


def test_switch_eol_rescans_buffered_bytes():
    framer = Framer(eol=b"\r\n")
    framer.receive(b"a\nb\r\n")
    framer.eol = b"\n"
    assert drain(framer) == [(b"a", True), (b"b\r", True)]


def test_skip_lf_survives_mode_change():
    # CRLF in one read is one terminator; cut after the CR it must be too,
    # even if the listener switches mode in between.
    framer = Framer(single_line_mode=True)
    framer.receive(b"a\r")
    assert framer.next_frame() == (b"a", True)
    framer.single_line_mode = False
    framer.receive(b"\nxy")
    assert framer.next_frame() == (b"xy", True)


def test_flush_returns_everything_left():
    framer = Framer(eol=b"\n")
    framer.receive(b"one\ntwo\nthr")
    assert framer.buffered == 11
    assert framer.flush() == b"one\ntwo\nthr"
    assert framer.buffered == 0
    assert framer.next_frame() is None


def test_long_partial_frame_is_held_not_copied():
    framer = Framer(eol=b"\r\n", max_line_length=10 * HOLD_THRESHOLD)
    piece = b"p" * (HOLD_THRESHOLD // 2)
    for _ in range(12):
        framer.receive(piece)
        assert framer.next_frame() is None
    # the buffer itself stays small: the bulk sits in held pieces
    assert len(framer._buf) <= HOLD_THRESHOLD + len(piece) + 2
    framer.receive(b"\r")
    assert framer.next_frame() is None
    framer.receive(b"\nnext\r\n")
    assert drain(framer) == [(piece * 12, True), (b"next", True)]


def test_long_record_is_held():
    framer = Framer(record_length=5 * HOLD_THRESHOLD)
    data = bytes(range(256)) * (5 * HOLD_THRESHOLD // 256)
    for chunk in cuts(data + b"tail", [HOLD_THRESHOLD // 3] * 1000):
        framer.receive(chunk)
    assert framer.next_frame() == (data, True)
    assert framer.flush() == b"tail"


def test_scan_is_linear():
    """Each byte is searched once: feeding N one-byte reads costs O(N)."""
    calls = 0

    class CountingBytes(bytes):
        def find(self, *args):
            nonlocal calls
            calls += 1
            return bytes.find(self, *args)

    framer = Framer(eol=b"\n", max_line_length=100_000)
    framer.receive(CountingBytes(b"a" * 50_000))
    assert framer.next_frame() is None
    assert calls == 1
    framer.receive(b"\n")
    assert framer.next_frame() == (b"a" * 50_000, True)


def test_framing_module_does_not_import_twisted():
    with open(framing.__file__) as f:
        code = f.read().split('"""', 2)[2]
    assert "twisted" not in code


# -- properties ----------------------------------------------------------------------

MODES: st.SearchStrategy[dict[str, object]] = st.one_of(
    st.builds(dict, eol=st.sampled_from([b"\n", b"\r\n", b"\x00", b"END", b"ab", b"aab"])),
    st.builds(dict, single_line_mode=st.just(True)),
    st.builds(dict, record_length=st.integers(1, 300)),
)
STREAMS = st.lists(
    st.sampled_from([b"\r", b"\n", b"\r\n", b"a", b"b", b"E", b"N", b"D", b"\x00", b"xyz"]),
    max_size=400,
).map(b"".join)
LIMITS = st.sampled_from([256, 257, 300, 2048])


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(mode=MODES, limit=LIMITS, data=STREAMS, sizes=st.lists(st.integers(1, 40)))
def test_frames_do_not_depend_on_how_the_stream_is_cut(mode, limit, data, sizes):
    whole = run(Framer(max_line_length=limit, **mode), [data])
    cut = run(Framer(max_line_length=limit, **mode), cuts(data, sizes))
    assert cut == whole
    assert whole == run(ModelFramer(max_line_length=limit, **mode), [data])


@settings(max_examples=400)
@given(mode=MODES, limit=LIMITS, data=STREAMS, sizes=st.lists(st.integers(1, 40)))
def test_no_byte_is_lost(mode, limit, data, sizes):
    """Frames plus the stripped terminators rebuild the stream exactly."""
    model = ModelFramer(max_line_length=limit, **mode)
    frames = run(Framer(max_line_length=limit, **mode), cuts(data, sizes))
    rebuilt = b""
    for chunk, eol in frames:
        rebuilt += chunk
        if eol and mode.get("eol") and not mode.get("record_length"):
            rebuilt += mode["eol"]
        elif eol and mode.get("single_line_mode"):
            # the terminator is whatever the stream had there
            rest = data[len(rebuilt) :]
            rebuilt += rest[:2] if rest.startswith(b"\r\n") else rest[:1]
    assert rebuilt == data
    assert frames == run(model, [data])


OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("receive"), STREAMS.filter(bool)),
        st.tuples(st.just("pull"), st.integers(1, 5)),
        st.tuples(st.just("mode"), MODES),
        st.tuples(st.just("limit"), LIMITS),
    ),
    max_size=60,
)


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(ops=OPERATIONS, hold=st.sampled_from([8, 64, HOLD_THRESHOLD]))
def test_matches_model_under_mode_changes_and_pauses(ops, hold):
    """Random receives, partial pulls (a paused consumer) and mode changes."""
    original = framing.HOLD_THRESHOLD
    framing.HOLD_THRESHOLD = hold  # exercise the held-pieces path with small data
    try:
        real, model = Framer(), ModelFramer()
        for op, arg in ops:
            if op == "receive":
                real.receive(arg)
                model.receive(arg)
            elif op == "pull":
                for _ in range(arg):
                    assert real.next_frame() == model.next_frame()
            elif op == "mode":
                for target in (real, model):
                    target.eol = arg.get("eol", b"")
                    target.single_line_mode = arg.get("single_line_mode", False)
                    target.record_length = arg.get("record_length", 0)
            else:
                real.max_line_length = model.max_line_length = arg
            assert real.buffered == len(model.pending)
        assert drain(real) == drain(model)
        assert real.flush() == model.flush()
    finally:
        framing.HOLD_THRESHOLD = original


def test_pending_crlf_lf_is_not_confused_with_held_bytes():
    """A CR ends a read; before anything is pulled, a long record arrives."""
    framer = Framer(single_line_mode=True)
    framer.receive(b"a\r")
    assert framer.next_frame() == (b"a", True)
    framer.record_length = 4
    framer.receive(b"\n" + b"x" * HOLD_THRESHOLD)
    framer.receive(b"\nYYY")
    frames = drain(framer)
    assert b"".join(f for f, _ in frames) + framer.flush() == b"x" * HOLD_THRESHOLD + b"\nYYY"


SPLIT_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("receive"), STREAMS.filter(bool)),
        st.tuples(st.just("split"), st.integers(0, 8)),
        st.tuples(st.just("read"), st.tuples(STREAMS.filter(bool), st.integers(0, 8))),
        st.tuples(st.just("pull"), st.integers(1, 3)),
        st.tuples(st.just("mode"), MODES),
        st.tuples(st.just("limit"), LIMITS),
    ),
    max_size=50,
)


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(ops=SPLIT_OPS)
def test_split_lines_fast_path_matches_model(ops):
    """split_lines + unread: consuming k lines then giving the rest back is
    exactly k frames of the model, even with mode changes in between."""
    real, model = Framer(eol=b"\n"), ModelFramer(eol=b"\n")
    for op, arg in ops:
        if op == "receive":
            real.receive(arg)
            model.receive(arg)
        elif op == "split":
            generation = real.generation
            lines = real.split_lines()
            if lines == []:
                # "no complete frame now" must be true
                assert copy.deepcopy(model).next_frame() is None
            lines = lines or []
            taken = list(itertools.islice(real.batch, arg))
            assert taken == lines[:arg]
            real.settle()
            if lines:
                assert real.batch_done == len(taken)
            assert list(real.batch) == []  # settling ends the iteration
            for line in taken:
                assert model.next_frame() == (line, True)
            assert real.generation == generation
        elif op == "read":  # receive_lines: a read that is whole lines comes as a batch
            data, count = arg
            model.receive(data)
            lines = real.receive_lines(data)
            if lines is not None:
                assert lines
                assert real.eol
                assert not real.single_line_mode
                assert not real.record_length
                taken = list(itertools.islice(real.batch, count))
                real.settle()
                for line in taken:
                    assert model.next_frame() == (line, True)
        elif op == "pull":
            for _ in range(arg):
                assert real.next_frame() == model.next_frame()
        elif op == "mode":
            for target in (real, model):
                target.eol = arg.get("eol", b"")
                target.single_line_mode = arg.get("single_line_mode", False)
                target.record_length = arg.get("record_length", 0)
        else:
            real.max_line_length = model.max_line_length = arg
        assert real.buffered == len(model.pending)
    assert drain(real) == drain(model)
    assert real.flush() == model.flush()


def test_split_lines_declines_long_lines_and_other_modes():
    framer = Framer(eol=b"\n", max_line_length=256)
    framer.receive(b"short\n" + b"y" * 300 + b"\n")
    assert framer.split_lines() is None
    assert framer.next_frame() == (b"short", True)
    framer.single_line_mode = True
    assert framer.split_lines() is None
    generation = framer.generation
    framer.max_line_length = 300
    assert framer.generation == generation + 1


def test_split_lines_tells_when_nothing_is_complete():
    framer = Framer(eol=b"\r\n", max_line_length=8)
    framer.receive(b"abc\r")
    assert framer.split_lines() == []  # a partial line (and terminator)
    framer.receive(b"\n" + b"z" * 10)
    assert framer.split_lines() == [b"abc"]
    assert next(framer.batch) == b"abc"
    framer.settle()
    assert framer.split_lines() is None  # over-long: next_frame() cuts it
    assert framer.next_frame() == (b"z" * 8, False)


def test_a_change_during_a_batch_applies_after_the_current_line():
    framer = Framer(eol=b"\n")
    framer.receive(b"a\nb\nc||d||")
    lines = framer.split_lines()
    assert lines == [b"a", b"b"]
    batch = framer.batch
    assert next(batch) == b"a"  # delivering "a"; its listener switches
    framer.eol = b"||"
    assert list(batch) == []  # the consumer's loop ends
    framer.settle()  # (a no-op now)
    assert drain(framer) == [(b"b\nc", True), (b"d", True)]


def test_flush_during_a_batch_returns_the_undelivered_lines():
    framer = Framer(eol=b"\n")
    framer.receive(b"STARTTLS\nINJECTED\npartial")
    assert framer.split_lines() == [b"STARTTLS", b"INJECTED"]
    assert next(framer.batch) == b"STARTTLS"
    assert framer.flush() == b"INJECTED\npartial"
    framer.settle()
    assert framer.next_frame() is None


def test_split_lines_with_overlapping_terminators():
    framer = Framer(eol=b"||")
    framer.receive(b"|||")
    assert framer.split_lines() == [b""]
    assert next(framer.batch) == b""
    framer.settle()
    assert framer.flush() == b"|"


# -- long lines: split_at() cuts them with find() -------------------------------------

LONG_PIECES = st.lists(
    st.one_of(
        st.sampled_from([b"\n", b"\r\n", b"a", b"b", b"E", b"N", b"D", b"ab", b"aab"]),
        st.integers(LONG_LINE - 2, LONG_LINE * 3).map(lambda n: b"x" * n),
        st.binary(min_size=LONG_LINE, max_size=LONG_LINE * 2),
    ),
    max_size=30,
).map(b"".join)
EOLS = st.sampled_from([b"\n", b"\r\n", b"\x00", b"END", b"ab", b"aab"])


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(data=LONG_PIECES, eol=EOLS, start=st.integers(0, 4000))
def test_split_at_is_bytes_split(data, eol, start):
    start = min(start, len(data))
    assert split_at(data, eol, start) == data[start:].split(eol)


class CountingBytes(bytes):
    """Bytes that count the calls of their ``find`` (in ``CountingBytes.finds``)."""

    finds = 0

    def find(self, *args):
        CountingBytes.finds += 1
        return bytes.find(self, *args)


def test_split_at_takes_the_find_path_for_a_long_first_line():
    CountingBytes.finds = 0
    lines = [b"x" * LONG_LINE, b"y" * 5000, b"z"]
    data = CountingBytes(b"\n".join(lines) + b"\npartial")
    assert split_at(data, b"\n") == [*lines, b"partial"]
    assert CountingBytes.finds == len(lines) + 1  # (one find per line, and the rest)
    CountingBytes.finds = 0
    short = CountingBytes(b"short\n" + b"y" * 5000 + b"\n")
    assert split_at(short, b"\n") == [b"short", b"y" * 5000, b""]
    assert CountingBytes.finds == 1  # (the first line decides: split())


def test_receive_lines_cuts_with_find_after_a_read_of_long_lines():
    """The read before decides: a read of short lines is split with no find first."""

    def read(framer, lines):
        CountingBytes.finds = 0
        got = framer.receive_lines(CountingBytes(b"".join(line + b"\n" for line in lines)))
        assert got == lines
        assert list(framer.batch) == lines
        framer.finish_batch()
        return CountingBytes.finds

    framer = Framer(eol=b"\n", max_line_length=1 << 20)
    short = [b"a" * 63] * 16
    long = [b"x" * LONG_LINE * 8] * 4
    assert read(framer, short) == 0  # bytes.split alone
    assert read(framer, long) == 0  # the first long read: split, once
    assert read(framer, long) == len(long) + 1  # then find: one per line, and the rest
    assert read(framer, short) == 1  # the first find says the lines are short again
    assert read(framer, short) == 0


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(data=LONG_PIECES, eol=EOLS, sizes=st.lists(st.integers(1, 3000)))
def test_long_line_batches_match_the_model(data, eol, sizes):
    """receive_lines() and split_lines() with long lines give the model's frames."""
    limit = LONG_LINE * 4
    real = Framer(eol=eol, max_line_length=limit)
    got: list[Frame] = []
    for chunk in cuts(data, sizes):
        lines = real.receive_lines(chunk)
        if lines is None:
            lines = real.split_lines()
        if lines:
            got += [(line, True) for line in real.batch]
            real.finish_batch()
        got += drain(real)
    rest = real.flush()
    if rest:
        got.append((rest, False))
    assert got == run(ModelFramer(eol=eol, max_line_length=limit), [data])
