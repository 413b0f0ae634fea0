"""A sweep on a SLURM allocation: the sbatch script ``sweep slurm`` writes (and submits).

The script only brings a Ray cluster up over the allocation and runs ``sweep run`` on it, as
``cluster.yaml`` does on AWS: ``ray start --block`` under ``srun`` on every node (the head on
the first, where the driver runs), the driver, then those steps stopped. The sweep, its resume
and its store are the same everywhere.

Why not ``ray symmetric-run`` (which does the same in one command): it refuses to start on a
node where any Ray already runs (another user's job sharing the node, a second job of one's
own) and ends with ``ray stop``, which stops every Ray of the user on the node. Steps of the
job's own, each stopping only its node's Ray, are what a shared node needs.

What a cluster shared with other users needs, and the script does:
- Ray's ports come from the job id (a block of 100 from 20000 up): two jobs on one node do not
  try the same ports, and Ray's temporary files go to a folder of the job's own.
- Preemption and the time limit lose nothing: the job is requeueable (``--requeue``), SLURM
  sends the batch shell USR1 some minutes before the limit, and the shell requeues the job; a
  requeued run (``SLURM_RESTART_COUNT`` > 0) adds ``--resume``, which skips complete studies,
  runs the missing trials and resumes the trials in flight from their checkpoints.
- Every run of the job appends to one log (``--open-mode=append``), beside the results.

Example::

    >>> script = sbatch_script(["sweep", "run", "--grid", "demo", "--results", "/shared/r"],
    ...                        SlurmJob(nodes=2, cpus_per_node=16, gpus_per_node=4, time="08:00:00"),
    ...                        env_setup="source /shared/venv/bin/activate", log_dir="/shared/r/slurm", name="demo")
    >>> "#SBATCH --nodes=2" in script and "ray start --head" in script
    True
"""

from __future__ import annotations

import re
import shlex
import subprocess
from dataclasses import dataclass
from typing import Optional

from trainables.errors import UserError

PORT_FIRST, PORT_BLOCKS, PORT_BLOCK = 20000, 400, 100  # ports 20000..59999, 100 a job
TIME = re.compile(r"^(?:(\d+)-)?(\d{1,2}):(\d{2}):(\d{2})$")


class SlurmError(UserError):
    """An sbatch option that cannot be used, or a submission sbatch refused."""


def time_seconds(text: str) -> int:
    """``HH:MM:SS`` or ``D-HH:MM:SS`` in seconds (``--time``)."""
    match = TIME.match(text.strip())
    if not match or int(match.group(3)) > 59 or int(match.group(4)) > 59:
        raise SlurmError(f"--time {text!r}: expected HH:MM:SS or D-HH:MM:SS, e.g. 08:00:00")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    total = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    if total <= 0:
        raise SlurmError(f"--time {text!r}: the job needs more than no time")
    return total


@dataclass(frozen=True)
class SlurmJob:
    nodes: int
    cpus_per_node: int
    gpus_per_node: int
    time: str  # HH:MM:SS or D-HH:MM:SS
    partition: Optional[str] = None
    account: Optional[str] = None
    # Seconds before the time limit at which the job is requeued (the driver needs a moment to
    # be killed cleanly; its trials lose at most the epochs since their last checkpoint).
    signal_before_s: Optional[int] = None

    def __post_init__(self) -> None:
        if self.nodes < 1 or self.cpus_per_node < 1 or self.gpus_per_node < 0:
            raise SlurmError("--nodes and --cpus-per-node must be at least 1, --gpus-per-node at least 0")
        time_seconds(self.time)

    @property
    def signal_seconds(self) -> int:
        """USR1 this many seconds before the limit: --signal-before, else 5 minutes, or a fifth
        of a job shorter than 25 minutes."""
        if self.signal_before_s is not None:
            return self.signal_before_s
        return min(300, time_seconds(self.time) // 5)


def _sbatch_lines(job: SlurmJob, name: str, log_dir: str) -> list[str]:
    lines = [
        f"#SBATCH --job-name=medsweep-{name}",
        f"#SBATCH --nodes={job.nodes}",
        "#SBATCH --ntasks-per-node=1                 # one Ray node per machine; Ray packs the trials",
        f"#SBATCH --cpus-per-task={job.cpus_per_node}",
    ]
    if job.gpus_per_node:
        lines.append(f"#SBATCH --gpus-per-node={job.gpus_per_node}")
    lines.append(f"#SBATCH --time={job.time}")
    if job.partition:
        lines.append(f"#SBATCH --partition={job.partition}")
    if job.account:
        lines.append(f"#SBATCH --account={job.account}")
    lines += [
        "#SBATCH --requeue                           # preempted or out of time: back in the queue, then resumed",
        f"#SBATCH --signal=B:USR1@{job.signal_seconds:<13d}# the batch shell hears of the time limit first",
        "#SBATCH --open-mode=append                  # every run of the job appends to one log",
        f"#SBATCH --output={log_dir}/%x-%j.log",
    ]
    return lines


def sbatch_script(run_command: list[str], job: SlurmJob, env_setup: Optional[str], log_dir: str, name: str) -> str:
    """The commented sbatch script that runs ``run_command`` (``sweep run ...`` without
    ``--address`` and ``--resume``, which the script adds) on a Ray cluster over the job."""
    run = shlex.join(run_command)
    resources = f"--num-cpus={job.cpus_per_node} --num-gpus={job.gpus_per_node}"
    setup = env_setup or "true  # no --env-setup: sweep and ray are on PATH already"
    workers = job.nodes - 1
    lines = [
        "#!/bin/bash",
        f"# medsweep on SLURM, written by `sweep slurm`: {run}",
        "#   submit:  sbatch THIS_FILE        (or sweep slurm ... --submit)",
        "#   watch:   squeue -j JOBID; tail -f THE_LOG_BELOW (the run's progress line every 30 s)",
        "#   resume:  after the job ended unfinished (cancelled, failed), SWEEP_RESUME=1 sbatch THIS_FILE:",
        "#            sweep run --resume picks up every unfinished trial",
        *_sbatch_lines(job, name, log_dir),
        "",
        "set -uo pipefail",
        setup,
        "",
        "# Ray's ports from the job id: two jobs sharing a node never try the same ones (Ray's",
        "# defaults would), and its temporary files in a folder of the job's own.",
        f"PORT=$(( {PORT_FIRST} + (SLURM_JOB_ID % {PORT_BLOCKS}) * {PORT_BLOCK} ))",
        'RAY_TMP="/tmp/ray-medsweep-$SLURM_JOB_ID"',
        'RAY_PORTS="--node-manager-port=$((PORT + 1)) --object-manager-port=$((PORT + 2))'
        ' --dashboard-port=$((PORT + 4))'
        ' --dashboard-agent-grpc-port=$((PORT + 5)) --dashboard-agent-listen-port=$((PORT + 6))'
        ' --metrics-export-port=$((PORT + 7)) --runtime-env-agent-port=$((PORT + 8))'
        f' --min-worker-port=$((PORT + 10)) --max-worker-port=$((PORT + {PORT_BLOCK - 1})) --temp-dir=$RAY_TMP"',
        "# The batch shell runs on the allocation's first node, the head: the address Ray itself",
        "# would give it (its route out, not 127.0.0.1).",
        'HEAD_NODE=$(hostname)',
        "HEAD_IP=$(python -c 'import ray._private.services as s; print(s.get_node_ip_address())')",
        'ADDRESS="$HEAD_IP:$PORT"',
        "# A token of this run's own: only its own steps and driver (which inherit the environment)",
        "# reach its Ray, not another user's code on a shared node (nor ~/.ray/auth_token's).",
        "export RAY_AUTH_MODE=token",
        "RAY_AUTH_TOKEN=$(python -c 'import secrets; print(secrets.token_hex(32))'); export RAY_AUTH_TOKEN",
        "",
        "# A requeued run (preempted, or requeued before the time limit) resumes: complete studies",
        "# are skipped, trials in flight resume from their checkpoints, none is recorded twice.",
        'RESUME=""',
        'if [ "${SLURM_RESTART_COUNT:-0}" -gt 0 ] || [ -n "${SWEEP_RESUME:-}" ]; then RESUME="--resume"; fi',
        'echo "medsweep: job $SLURM_JOB_ID run ${SLURM_RESTART_COUNT:-0} on $SLURM_JOB_NODELIST, Ray at $ADDRESS $RESUME"',
        "",
        "# This job's Ray steps, stopped at the end (each `ray start --block` then stops its node's",
        "# Ray, and only that: `ray stop` would stop every Ray of the user on the node).",
        'STEPS=""',
        'stop_ray() { [ -n "$STEPS" ] && kill $STEPS 2>/dev/null; wait $STEPS 2>/dev/null; rm -rf "$RAY_TMP"; }',
        "# Near the time limit SLURM sends USR1 (--signal): requeue, so the next run resumes.",
        'trap \'echo "medsweep: time limit near, requeueing job $SLURM_JOB_ID"; scontrol requeue "$SLURM_JOB_ID"\' USR1',
        "",
        "# Ray's head on this node, then (once it answers: workers that wait too long for a head",
        "# give up) Ray on every other node, joining it.",
        f'srun --nodes=1 --ntasks=1 -w "$HEAD_NODE" ray start --head --node-ip-address="$HEAD_IP" --port="$PORT" '
        f'{resources} $RAY_PORTS --block &',
        'STEPS="$!"',
        'python -m sweep.launch.nodes "$ADDRESS" 1 300 $STEPS || { stop_ray; exit 1; }',
    ]
    if workers:
        lines += [
            f'srun --nodes={workers} --ntasks={workers} --ntasks-per-node=1 --exclude="$HEAD_NODE" '
            f'ray start --address="$ADDRESS" {resources} $RAY_PORTS --block &',
            'STEPS="$STEPS $!"',
            f'python -m sweep.launch.nodes "$ADDRESS" {job.nodes} 600 $STEPS || {{ stop_ray; exit 1; }}',
        ]
    lines += [
        "",
        "# The driver, here on the head: the sweep, its store and its resume as on any cluster.",
        f'{run} --address "$ADDRESS" $RESUME &',
        "DRIVER=$!",
        "# wait returns early when USR1 comes: wait again until the driver itself ends.",
        'wait "$DRIVER"; status=$?',
        'while kill -0 "$DRIVER" 2>/dev/null; do wait "$DRIVER"; status=$?; done',
        "stop_ray",
        'exit "$status"',
        "",
    ]
    return "\n".join(lines)


def submit(path: str) -> str:
    """sbatch ``path``; the job id."""
    try:
        done = subprocess.run(["sbatch", "--parsable", path], capture_output=True, text=True)
    except FileNotFoundError:
        raise SlurmError("sbatch is not on PATH: submit from a SLURM login node, or leave --submit out and "
                         f"run sbatch {path} there") from None
    if done.returncode != 0:
        raise SlurmError(f"sbatch {path} refused it: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip().split(";")[0]
