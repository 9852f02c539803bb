"""Progress and logs: one helper for every long command, -v/-q and --log FILE, progress lines off a terminal."""

from __future__ import annotations

import logging
import re
import time

from molmovie import __version__
from molmovie.cli._progress import configure, progress_bar, teardown

from _fixtures import assert_one_line_error, cs2_positions, run_cli, write_sharc

#: "molmovie: reading: 1/2 trajectories, 0s, about 0s left"
LINE = re.compile(r"^molmovie: reading: (\d)/2 trajectories, \d+s(, about \d+s left)?$")


def _runs(tmp_path):
    write_sharc(tmp_path / "runs" / "TRAJ_00001", cs2_positions(11, seed=1))
    write_sharc(tmp_path / "runs" / "TRAJ_00002", cs2_positions(9, seed=2))
    return tmp_path / "runs"


def test_off_a_terminal_progress_is_lines_and_quiet_silences_them(tmp_path, capsys, monkeypatch):
    runs = _runs(tmp_path)
    monkeypatch.setenv("MOLMOVIE_PROGRESS_INTERVAL", "0")  # a line at every report (default: one every 30 s)
    code, out, err = run_cli(["import", runs, "-o", tmp_path / "a.h5", "--dt", "1"], capsys)
    assert code == 0, err
    lines = err.splitlines()
    assert [LINE.match(line).group(1) for line in lines] == ["1", "2"], err  # the last one says it is done
    code, out, err = run_cli(["-q", "import", runs, "-o", tmp_path / "b.h5", "--dt", "1"], capsys)
    assert code == 0 and err == "" and out.startswith(f"{tmp_path / 'b.h5'}: 2 trajectories")
    # the default interval: a short job writes no line
    monkeypatch.delenv("MOLMOVIE_PROGRESS_INTERVAL")
    code, out, err = run_cli(["import", runs, "-o", tmp_path / "c.h5", "--dt", "1"], capsys)
    assert code == 0 and err == ""


def test_verbose_and_the_log_file(tmp_path, capsys):
    runs = _runs(tmp_path)
    log = tmp_path / "run.log"
    out = tmp_path / "a.h5"
    code, _, err = run_cli(["-v", "--log", log, "import", runs, "-o", out, "--dt", "1"], capsys)
    assert code == 0, err
    command = f"molmovie -v --log {log} import {runs} -o {out} --dt 1"
    assert err.splitlines()[0] == f"molmovie: {command} (molmovie {__version__})"
    assert re.match(r"molmovie: reading: 2/2 trajectories, \d+s$", err.splitlines()[-1])  # the end, at -v
    text = log.read_text()
    assert f"INFO {command} (molmovie {__version__})" in text and "INFO reading: 2/2 trajectories" in text
    # an error goes to the log file too (and stays one line on stderr); the log is appended to
    code, _, err = run_cli(["--log", log, "import", runs, "-o", out, "--dt", "1"], capsys)
    assert_one_line_error(code, err, "exists; use --force")
    assert text in log.read_text() and f"ERROR {err.strip()}" in log.read_text()


def test_a_command_leaves_the_molmovie_logger_as_it_found_it(tmp_path, capsys, caplog):
    logger = logging.getLogger("molmovie")
    before = (logger.propagate, logger.level, list(logger.handlers))
    code, _, err = run_cli(
        ["--log", tmp_path / "run.log", "import", _runs(tmp_path), "-o", tmp_path / "a.h5", "--dt", "1"], capsys
    )
    assert code == 0, err
    assert (logger.propagate, logger.level, list(logger.handlers)) == before
    with caplog.at_level(logging.INFO, logger="molmovie"):
        logging.getLogger("molmovie.study").info("after a command")  # reaches the root logger's handlers again
    assert caplog.messages == ["after a command"]


def test_bad_log_options_are_one_line(tmp_path, capsys):
    assert_one_line_error(*run_cli(["-v", "-q", "info", tmp_path / "x.h5"], capsys)[::2], match="give -v or -q, not both")
    code, _, err = run_cli(["--log", tmp_path / "no" / "such" / "dir.log", "info", tmp_path / "x.h5"], capsys)
    assert_one_line_error(code, err, match="--log .*dir.log: cannot append to it")


def test_a_long_single_step_still_writes_lines(tmp_path, monkeypatch):
    """One long call without reports (one predict over every series): the heartbeat says the job runs."""
    monkeypatch.setenv("MOLMOVIE_PROGRESS_INTERVAL", "0.05")
    log = tmp_path / "run.log"
    configure(log=log)
    try:
        with progress_bar("inverting (vrnn): 8 series", 1, unit="predictions") as update:
            time.sleep(0.5)
            update(completed=1)
    finally:
        teardown()
    lines = [line for line in log.read_text().splitlines() if "inverting" in line]
    assert len(lines) >= 3, lines
    assert all(" PROGRESS inverting (vrnn): 8 series: 0/1 predictions, " in line for line in lines[:-1])
    assert " PROGRESS inverting (vrnn): 8 series: 1/1 predictions, " in lines[-1]
