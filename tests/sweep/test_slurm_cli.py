"""`sweep slurm` without a SLURM: the script it writes, and the options it refuses before
writing anything (tests/test_slurm.py submits the script to a real SLURM)."""

from __future__ import annotations

import os
import re
import subprocess

import pytest
from click.testing import CliRunner

from sweep.cli import main
from sweep.launch.slurm import SlurmError, SlurmJob, time_seconds

ALLOCATION = ["--nodes", "3", "--gpus-per-node", "4", "--cpus-per-node", "32", "--time", "1-12:00:00"]


def _write(tmp_path, *extra):
    out = tmp_path / "job.sbatch"
    result = CliRunner().invoke(main, ["slurm", "--grid", "demo", "--results", str(tmp_path / "r"), *ALLOCATION,
                                       "--out", str(out), *extra])
    return result, out


def test_the_script_runs_sweep_run_with_the_options_given_on_ray_over_the_allocation(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result, out = _write(tmp_path, "--where", "mode=linear", "--gpus-per-trial", "linear=0.1", "--data",
                         "digits=rel/data", "--checkpoint-every", "off", "--partition", "gpu", "--account", "lab",
                         "--env-setup", "module load cuda; source /shared/venv/bin/activate")
    assert result.exit_code == 0, result.output
    script = out.read_text()
    header = [line.split("#", 2)[1].strip() for line in script.splitlines() if line.startswith("#SBATCH")]
    assert {"SBATCH --nodes=3", "SBATCH --ntasks-per-node=1", "SBATCH --cpus-per-task=32", "SBATCH --gpus-per-node=4",
            "SBATCH --time=1-12:00:00", "SBATCH --partition=gpu", "SBATCH --account=lab", "SBATCH --requeue",
            "SBATCH --signal=B:USR1@300", "SBATCH --open-mode=append"} <= set(header)
    assert f"SBATCH --output={tmp_path / 'r' / 'slurm'}/%x-%j.log" in header and (tmp_path / "r" / "slurm").is_dir()
    assert "module load cuda; source /shared/venv/bin/activate" in script
    # The sweep as given, paths absolute for the nodes, the address and the resume the script's.
    run = next(line for line in script.splitlines() if line.startswith("sweep run "))
    assert run == (f"sweep run --grid demo --where mode=linear --results {tmp_path / 'r'} --data "
                   f"digits={tmp_path / 'rel' / 'data'} --gpus-per-trial linear=0.1 --checkpoint-every off "
                   f'--address "$ADDRESS" $RESUME &')
    # The head here, two workers elsewhere, each with the job's ports and resources.
    assert 'srun --nodes=1 --ntasks=1 -w "$HEAD_NODE" ray start --head' in script
    assert 'srun --nodes=2 --ntasks=2 --ntasks-per-node=1 --exclude="$HEAD_NODE" ray start --address="$ADDRESS"' in script
    assert script.count("--num-cpus=32 --num-gpus=4 $RAY_PORTS --block &") == 2
    assert 'python -m sweep.launch.nodes "$ADDRESS" 3 600' in script
    assert 'if [ "${SLURM_RESTART_COUNT:-0}" -gt 0 ]' in script and 'scontrol requeue "$SLURM_JOB_ID"' in script


def test_the_script_is_valid_bash_and_its_ports_come_from_the_job_id(tmp_path):
    result, out = _write(tmp_path)
    assert result.exit_code == 0, result.output
    assert subprocess.run(["bash", "-n", str(out)]).returncode == 0
    port_line = next(line for line in out.read_text().splitlines() if line.startswith("PORT="))
    ports = {}
    for job_id in (1234, 1235, 1634):
        ports[job_id] = int(subprocess.run(["bash", "-c", f"SLURM_JOB_ID={job_id}; {port_line}; echo $PORT"],
                                           capture_output=True, text=True).stdout)
    # Neighbouring jobs get disjoint blocks of 100 ports, all below 65,536.
    assert ports[1235] - ports[1234] == 100 and all(20000 <= p <= 65535 - 100 for p in ports.values())


@pytest.mark.parametrize("extra,expected", [
    (["--address", "auto"], "--address: the script starts Ray over the allocation and joins it itself"),
    (["--where", "mode=nope"], "nope"),
    (["--gpus-per-trial", "linear=3.5"], "--gpus-per-trial"),
    (["--checkpoint-every", "soon"], "neither a number of seconds"),
])
def test_options_sweep_run_would_refuse_are_refused_before_anything_is_written(tmp_path, extra, expected):
    result, out = _write(tmp_path, *extra)
    assert result.exit_code == 2 and expected in result.output and not out.exists()


def test_a_time_limit_is_hh_mm_ss_or_days():
    assert time_seconds("00:30:00") == 1800 and time_seconds("2-00:00:01") == 172801
    for bad in ("30", "1:70:00", "00:00:00", "tomorrow"):
        with pytest.raises(SlurmError, match="--time"):
            time_seconds(bad)
    assert SlurmJob(nodes=1, cpus_per_node=2, gpus_per_node=0, time="00:10:00").signal_seconds == 120
    result = CliRunner().invoke(main, ["slurm", "--nodes", "1", "--gpus-per-node", "0", "--cpus-per-node", "2",
                                       "--time", "90", "--out", os.devnull])
    assert result.exit_code == 2 and "--time '90': expected HH:MM:SS" in result.output


def test_submit_without_sbatch_says_where_to_run_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    result, out = _write(tmp_path, "--submit")
    assert result.exit_code == 2 and out.exists()
    assert re.search(r"sbatch is not on PATH: submit from a SLURM login node, or .* run sbatch .*job.sbatch",
                     result.output)


def test_help_shows_an_example():
    result = CliRunner().invoke(main, ["slurm", "--help"])
    assert result.exit_code == 0 and "Example:" in result.output and "sweep slurm --grid paper" in result.output
