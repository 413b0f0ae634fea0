"""The sweep's console: its own lines on the terminal, a status line in place (or plain lines
now and then where output is no terminal), Ray's and Tune's output in the run's log file."""

import io
import logging
import sys

from sweep.driver import console
from sweep.driver.console import Console, capture
from sweep.driver.extraction_progress import extraction_status
from sweep.driver.progress import SweepProgress


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_counts_trials_and_complete_studies_and_projects_the_time_left():
    clock = Clock()
    progress = SweepProgress({"a": 2, "b": 3}, studies_total=4, complete_before=1, clock=clock)
    assert progress.text() == "trials 0/5, studies 1/4 complete, ETA --, 0s so far"
    clock.now = 60.0
    progress.trial_written({"study_id": "a"})
    progress.trial_written({"study_id": "a"})
    # 2 trials in 60 s: 2.0 a minute, 3 left -> 90 s.
    assert progress.text() == "trials 2/5, studies 2/4 complete, 2.0 trials/min, ETA 1m30s, 1m00s so far"
    clock.now = 7300.0
    for _ in range(3):
        progress.trial_written({"study_id": "b"})
    assert progress.text() == "trials 5/5, studies 3/4 complete, 0.0 trials/min, done in 2h01m"


def test_a_terminal_redraws_the_status_in_place_and_keeps_lines_above_it():
    out = Terminal()
    term = Console(out)
    term.status("trials 1/9")
    term.line("extracted digits x test_vit view 0")
    term.status("trials 2/9")
    term.end_status()
    assert out.getvalue() == ("\r\x1b[Ktrials 1/9" "\r\x1b[Kextracted digits x test_vit view 0\ntrials 1/9"
                              "\r\x1b[Ktrials 2/9\n")


def test_without_a_terminal_the_status_is_a_plain_line_now_and_then():
    out = io.StringIO()
    plain = Console(out, plain_every_s=3600)
    plain.status("trials 1/9")
    plain.status("trials 2/9")  # within the hour: not printed
    plain.status("trials 9/9", force=True)
    plain.line("done")
    assert out.getvalue() == "trials 1/9\ntrials 9/9\ndone\n"


def test_extraction_shows_one_bar_per_running_task():
    text = extraction_status({"digits x test_vit view 0": (450, 1800, 0.5), "digits x test_resnet view 1": (0, 1257, 0.0)},
                             finished=3, total=5)
    assert text == ("extracting: 3/5 done; digits x test_vit view 0 [###.........] 25% 900 img/s | "
                    "digits x test_resnet view 1 [............] 0% 0 img/s")


def test_capture_sends_ray_and_tune_output_to_the_log_and_medsweep_lines_to_the_terminal(tmp_path, capsys):
    log = tmp_path / "logs" / "run.log"
    before = logging.getLogger("ray").handlers[:]
    with capture(str(log)):
        print("Configuration for experiment (Tune's box)")
        print("a warning", file=sys.stderr)
        logging.getLogger("ray.tune.logger").warning("Removed the following hyperparameter values")
        console.echo("extracted digits x test_vit view 0")
    out = capsys.readouterr()
    assert out.out == "extracted digits x test_vit view 0\n" and out.err == ""
    text = log.read_text()
    assert "Configuration for experiment" in text and "a warning" in text
    assert "Removed the following hyperparameter values" in text and "extracted digits" not in text
    assert logging.getLogger("ray").handlers == before and sys.stdout is not None
    console.echo("after")  # no sweep capturing: plain stdout
    assert capsys.readouterr().out == "after\n"
