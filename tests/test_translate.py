"""The translate command: streaming line by line, N-best TSV, empty and bad lines, a compilation cache.

One tiny run is trained once for the session (``tiny_workdir`` in conftest.py; accuracy does not matter); the
tests that use it are marked slow. Most tests call ``translate.main`` in-process with the compilation
cache off; the pipe and the cache are tested on the real command in subprocesses.
"""

import functools
import os
import select
import subprocess
import sys
import time

import hypothesis
import ml_collections
import numpy as np
import pytest
from absl import flags
from hypothesis import strategies as st

from seq2seq_jax import cli
from seq2seq_jax import inference
from seq2seq_jax import train
from seq2seq_jax import translate
from seq2seq_jax import workdir as workdir_lib
from seq2seq_jax.configs import tiny

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def workdir(tiny_workdir):
    return tiny_workdir


@pytest.fixture(autouse=True)
def fresh_flags(monkeypatch):
    """Each test parses its own flags from defaults, with the persistent compilation cache off (JAX's cache
    is set once a process); FLAGS is left as the test found it."""
    monkeypatch.setenv("SEQ2SEQ_JAX_CACHE_DIR", "off")
    was_parsed = flags.FLAGS.is_parsed()
    flags.FLAGS.unparse_flags()
    yield
    flags.FLAGS.unparse_flags()
    if was_parsed:
        flags.FLAGS.mark_as_parsed()


def run(*args):
    """``translate.main`` as ``app.run`` calls it: flags parsed first."""
    return translate.main(flags.FLAGS(["translate", *args]))


def fails_with(*args) -> str:
    with pytest.raises(SystemExit) as exit_info:
        run(*args)
    message = str(exit_info.value.code)
    assert message.startswith("error: ")
    return message


def translate_file(workdir, tmp_path, content: bytes, *args) -> list[str]:
    source, output = tmp_path / "in.txt", tmp_path / "out.txt"
    source.write_bytes(content)
    run(f"--workdir={workdir}", f"--input={source}", f"--output={output}", "--batch_size=4", *args)
    text = output.read_text(encoding="utf-8")
    assert text.endswith("\n") or not text
    return text.split("\n")[:-1]


@pytest.mark.slow
def test_one_output_line_per_input_line_and_attention_plots(workdir, tmp_path):
    lines = ["abc", "", "zyx\u00e9\u20ac", "hello world", "q"]
    plots = tmp_path / "plots"
    out = translate_file(workdir, tmp_path, ("\n".join(lines) + "\n").encode(), f"--attention_plots={plots}")
    assert len(out) == len(lines)
    assert out[1] == ""  # an empty line stays empty
    assert all(out[i] for i in (0, 3, 4))
    # The empty line has no source token to attend to: no plot for line 1.
    assert sorted(os.listdir(plots)) == ["0000.png", "0002.png", "0003.png", "0004.png"]
    assert all(os.path.getsize(plots / name) > 0 for name in os.listdir(plots))
    assert not (tmp_path / "out.txt.tmp").exists()


@pytest.mark.slow
def test_outputs_are_the_beams_best_in_input_order(workdir, tmp_path):
    """Chunks, length sorting and padding change nothing: each line is what the beam gives it alone."""
    lines = ["abcdefghijkl", "b", "", "cab", "abcabcabcabc", "ba", "a"]
    out = translate_file(workdir, tmp_path, "\r\n".join(lines).encode(), "--beam_size=3", "--length_penalty=0.6")
    config, model, params, source_vocab, target_vocab = workdir_lib.load_trained(workdir)
    for line, got in zip(lines, out):
        alone, = inference.translate_lines(model, params, source_vocab, target_vocab, [line], config.eval,
                                           batch_size=1, beam_size=3, alpha=0.6)
        assert got == alone.hypotheses[0]
    assert len(out) == len(lines)  # CRLF and no final newline


@pytest.mark.slow
def test_nbest_writes_ranked_rows_with_the_beams_scores(workdir, tmp_path):
    lines = ["abc", "", "cbad"]
    rows = [row.split("\t") for row in
            translate_file(workdir, tmp_path, ("\n".join(lines) + "\n").encode(), "--beam_size=4", "--nbest=3")]
    assert [(r[0], r[1]) for r in rows] == [("1", "1"), ("1", "2"), ("1", "3"), ("2", "1"),
                                            ("3", "1"), ("3", "2"), ("3", "3")]
    assert rows[3][2:] == ["", ""]  # the empty line: one row, no score, no hypothesis
    config, model, params, source_vocab, target_vocab = workdir_lib.load_trained(workdir)
    want = inference.translate_lines(model, params, source_vocab, target_vocab, lines, config.eval, batch_size=4,
                                     beam_size=4, nbest=3)
    for line_rows, t in ((rows[0:3], want[0]), (rows[4:7], want[2])):
        scores = [float(r[2]) for r in line_rows]
        assert [r[3] for r in line_rows] == t.hypotheses and len(set(t.hypotheses)) == 3
        np.testing.assert_allclose(scores, t.scores, rtol=1e-6)
        assert scores == sorted(scores, reverse=True)


@pytest.mark.slow
def test_bad_bytes_unknown_characters_and_a_byte_order_mark(workdir, tmp_path, caplog):
    content = b"\xef\xbb\xbfabc\n\xff\xfe\x00garbage\n\xe2\x82\xac\xe2\x80\xa8x\x0c\n\n"
    out = translate_file(workdir, tmp_path, content)
    assert len(out) == 4 and out[3] == ""
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("line 2: not UTF-8") for m in messages)
    assert any(m.startswith("line 3:") and "unknown to the source vocabulary" in m for m in messages)
    assert not any(m.startswith("line 1:") for m in messages)  # the BOM is not read as a character


@pytest.mark.slow
def test_an_over_long_line_is_cut_with_a_warning(workdir, tmp_path, caplog, monkeypatch):
    start = time.monotonic()
    out = translate_file(workdir, tmp_path, b"abc\n" + b"ab" * 50_000 + b"\nba\n")
    assert len(out) == 3 and time.monotonic() - start < 120  # bounded, not a hang
    assert "line 2: 100000 tokens, cut to the first 1024 (the run's data.max_source_length)" in caplog.text


def test_a_run_saved_without_a_source_limit_gets_translates_default():
    old_run = ml_collections.ConfigDict({"data": {"dataset": "synthetic/reverse"}})  # config.json of an older run
    assert translate.max_source_length(old_run) == (
        translate.DEFAULT_MAX_SOURCE_LENGTH, "translate's default for a run without data.max_source_length")


@pytest.fixture
def load_once(monkeypatch):
    """The trained run read once for a test that translates many times."""
    monkeypatch.setattr(workdir_lib, "load_trained", functools.cache(workdir_lib.load_trained))


@pytest.mark.slow
@hypothesis.settings(max_examples=15, deadline=None, suppress_health_check=list(hypothesis.HealthCheck))
@hypothesis.given(st.lists(st.binary(max_size=12).map(lambda b: b.replace(b"\n", b"")), min_size=1, max_size=6))
def test_any_bytes_give_one_output_line_per_input_line(workdir, tmp_path_factory, load_once, lines):
    flags.FLAGS.unparse_flags()
    tmp_path = tmp_path_factory.mktemp("fuzz")
    out = translate_file(workdir, tmp_path, b"\n".join(lines) + b"\n")
    assert len(out) == len(lines)
    for raw, got in zip(lines, out):
        if raw in (b"", b"\r"):
            assert got == ""


@pytest.mark.slow
def test_a_failed_run_leaves_an_existing_output_as_it_was(workdir, tmp_path, monkeypatch):
    output = tmp_path / "out.txt"
    output.write_text("precious\n")
    (tmp_path / "in.txt").write_text("abc\nbca\ncab\n")
    calls = []

    def fail_on_second_chunk(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("decoding failed")
        return inference.translate_lines(*args, **kwargs)

    monkeypatch.setattr(translate, "CHUNK_BATCHES", 1)
    monkeypatch.setattr(inference, "translate_lines", fail_on_second_chunk)
    with pytest.raises(RuntimeError, match="decoding failed"):
        run(f"--workdir={workdir}", f"--input={tmp_path / 'in.txt'}", f"--output={output}", "--batch_size=1")
    assert output.read_text() == "precious\n" and sorted(os.listdir(tmp_path)) == ["in.txt", "out.txt"]


@pytest.mark.slow
def test_bad_requests_are_one_clear_error(workdir, tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("abc\n")
    message = fails_with(f"--workdir={workdir}", f"--input={tmp_path / 'nope.txt'}")
    assert "nope.txt" in message and "does not exist" in message
    missing = tmp_path / "nope"
    assert "does not exist" in fails_with(f"--workdir={missing}", f"--input={source}")
    assert "--nbest=3 needs a beam at least as wide: --beam_size=2" in fails_with(
        f"--workdir={workdir}", f"--input={source}", "--nbest=3", "--beam_size=2")
    assert "does not exist" in fails_with(f"--workdir={workdir}", f"--input={source}",
                                          f"--output={tmp_path / 'no' / 'out.txt'}")
    assert sorted(os.listdir(tmp_path)) == ["in.txt"]


def test_an_output_that_is_the_input_file_is_refused_before_anything_is_read(tmp_path):
    """However the two paths are spelt: the same name, another spelling, a symbolic or hard link, or the
    output's temporary file. The workdir does not exist: the request is refused before it is looked at."""
    (tmp_path / "sub").mkdir()
    source = tmp_path / "in.txt"
    source.write_text("abc\n")
    os.symlink(source, tmp_path / "link.txt")
    os.link(source, tmp_path / "hard.txt")
    before = sorted(os.listdir(tmp_path))
    same = "are the same file: the translation would replace its source; write it to another file"
    for input_path, output_path in [(source, source), (source, tmp_path / "sub" / ".." / "in.txt"),
                                    (source, tmp_path / "link.txt"), (tmp_path / "link.txt", source),
                                    (tmp_path / "hard.txt", source)]:
        message = fails_with(f"--workdir={tmp_path / 'nope'}", f"--input={input_path}", f"--output={output_path}")
        assert message == f"error: --input={str(input_path)!r} and --output={str(output_path)!r} {same}"
    pending = tmp_path / "out.txt.tmp"  # translate writes OUTPUT.tmp first
    pending.write_text("cab\n")
    message = fails_with(f"--workdir={tmp_path / 'nope'}", f"--input={pending}", f"--output={tmp_path / 'out.txt'}")
    assert message == f"error: --input={str(pending)!r} is {str(pending)!r}, the temporary file of --output: " \
                      "rename it or write elsewhere"
    assert sorted(os.listdir(tmp_path)) == sorted([*before, "out.txt.tmp"])
    assert source.read_text() == "abc\n" and pending.read_text() == "cab\n"


def test_attention_plots_where_a_file_is_is_refused_before_anything_is_read(tmp_path):
    source, a_file = tmp_path / "in.txt", tmp_path / "plots.png"
    source.write_text("abc\n")
    a_file.write_text("not a folder\n")
    before = sorted(os.listdir(tmp_path))
    args = (f"--workdir={tmp_path / 'nope'}", f"--input={source}", f"--output={tmp_path / 'out.txt'}")
    assert fails_with(*args, f"--attention_plots={a_file}") == \
        f"error: --attention_plots={str(a_file)!r} is a file, not a folder"
    assert fails_with(*args, f"--attention_plots={a_file / 'plots'}") == \
        f"error: --attention_plots={str(a_file / 'plots')!r} cannot be a folder: {str(a_file)!r} is a file"
    assert sorted(os.listdir(tmp_path)) == before


@pytest.fixture(scope="module")
def bottleneck_workdir(tmp_path_factory):
    """A run with the bottleneck decoder, trained for one step (what it translates to does not matter)."""
    config = tiny.get_config()
    config.model.decoder, config.model.hidden_size, config.model.embedding_size = "bottleneck", 16, 8
    config.data.data_dir = str(tmp_path_factory.mktemp("tfds"))
    config.data.num_train, config.data.num_validation, config.data.num_test = 64, 8, 8
    config.data.num_buckets, config.train.batch_size, config.train.num_steps = 1, 16, 1
    path = str(tmp_path_factory.mktemp("bottleneck"))
    train.train_and_evaluate(config, path)
    return path


@pytest.mark.slow
def test_a_bottleneck_run_is_translated_with_one_warning_and_no_plots(bottleneck_workdir, tmp_path, caplog):
    """Its decoder has no attention (the model's weights are all zero): no black heat maps, the translation
    as asked."""
    plots = tmp_path / "plots"
    out = translate_file(bottleneck_workdir, tmp_path, b"abc\ncab\n\n", f"--attention_plots={plots}")
    warnings = [r.getMessage() for r in caplog.records if "--attention_plots" in r.getMessage()]
    assert warnings == [f"--attention_plots: the run in {bottleneck_workdir} has a bottleneck decoder, which has "
                        "no attention; translating without plots"]
    assert not plots.exists()
    assert out == translate_file(bottleneck_workdir, tmp_path, b"abc\ncab\n\n") and len(out) == 3


# Counts the XLA compilations of the command: backend compiles minus persistent-cache hits (jax 0.10).
COUNTING = """
import atexit, runpy, sys
import jax
from jax._src import dispatch
count = {"compiles": 0, "hits": 0}
def on_duration(event, duration, **kwargs):
    count["compiles"] += event == dispatch.BACKEND_COMPILE_EVENT
def on_event(event, **kwargs):
    count["hits"] += event == "/jax/compilation_cache/cache_hits"
jax.monitoring.register_event_duration_secs_listener(on_duration)
jax.monitoring.register_event_listener(on_event)
atexit.register(lambda: print(f"XLA compilations: {count['compiles'] - count['hits']}", file=sys.stderr))
sys.argv = ["translate", *sys.argv[1:]]
runpy.run_module("seq2seq_jax.translate", run_name="__main__")
"""


def read_line(stream, timeout: float) -> str:
    ready, _, _ = select.select([stream], [], [], timeout)
    assert ready, f"no output within {timeout} s"
    return stream.readline()


@pytest.mark.slow
def test_a_pipe_is_answered_line_by_line_and_a_second_call_compiles_nothing(workdir, tmp_path):
    """Two calls on one workdir and cache; the second one's reader also goes away after the first line."""
    env = {**os.environ, "PYTHONPATH": REPO, "JAX_PLATFORMS": "cpu", "SEQ2SEQ_JAX_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("JAX_COMPILATION_CACHE_DIR")  # the tool's own cache, not the session's (conftest.py)
    compilations = []
    for call in range(2):
        process = subprocess.Popen([sys.executable, "-c", COUNTING, f"--workdir={workdir}", "--beam_size=2"],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True, env=env, cwd=REPO)
        try:
            process.stdin.write("abc\n")
            process.stdin.flush()
            first = read_line(process.stdout, timeout=120)  # answered while the input is still open
            assert first.endswith("\n") and first.strip()
            if call == 1:
                process.stdout.close()  # as `| head -1` does
            process.stdin.write("\ncab\n")
            process.stdin.close()
            rest = process.stdout.read() if call == 0 else ""
            stderr = process.stderr.read()
            assert process.wait(timeout=60) == call, stderr  # 1: the output was closed
        finally:
            process.kill()
        if call == 0:
            assert rest.count("\n") == 2 and rest.split("\n")[0] == "" and rest.split("\n")[1]  # "", "cab"'s
        assert "Traceback" not in stderr and "Exception ignored" not in stderr
        compilations.append(int(stderr.split("XLA compilations: ")[1].split()[0]))
    assert compilations[0] > 0 and compilations[1] == 0
    assert os.listdir(tmp_path / "cache")


def test_the_compilation_cache_directory_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("SEQ2SEQ_JAX_CACHE_DIR", "/some/where")
    assert cli.compilation_cache_dir() == "/some/where"
    monkeypatch.setenv("SEQ2SEQ_JAX_CACHE_DIR", "off")
    assert cli.compilation_cache_dir() is None and cli.enable_compilation_cache() is None
    monkeypatch.delenv("SEQ2SEQ_JAX_CACHE_DIR")
    assert cli.compilation_cache_dir() == os.path.expanduser("~/.cache/seq2seq_jax/jax_cache")
