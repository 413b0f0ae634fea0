"""The ``sweep`` command: parses options and calls the library; nothing else lives here."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import sys

import click

from sweep.store.formatting import FORMATS, render, render_table
from sweep.grids import grid_name_of, grid_names, load_grid, select_studies_where, with_embedding_options
from sweep.plan.planning import check_studies, summarize
from sweep.store.queries import aggregate_cells, epoch_rows, select_studies
from sweep.spec import EMBEDDING_DTYPES, MODES, cpus_problem, gpus_problem
from sweep.store.store import ResultsStore
from trainables.data.dataset_types import counts_line
from trainables.errors import UserError, did_you_mean
from trainables.gcfreeze import freeze_at_exit

# trainables/cache/device_decode.py's DECODE_CHOICES, spelled here: importing it loads torch,
# which every `sweep` command would then wait for (a test keeps the two equal).
DECODE_CHOICES = ("auto", "workers", "device")

# Input that cannot be used (a file, field or value, named): one line on stderr, exit 2, as
# click's own usage errors; a check that finds problems (store check, data check, plan --data,
# weights check) exits 1. Anything else is a bug and keeps its traceback.
USER_ERRORS = (UserError,)
USER_ERROR_EXIT = 2
NOT_READ = "files of a suffix no reader takes, left out"  # and sweep run's line


class UserErrorExit(click.ClickException):
    exit_code = USER_ERROR_EXIT
DEFAULT_RESULTS = "sweep-results"


def _pairs(values: tuple[str, ...], option: str, value_type=str) -> dict:
    out = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise click.BadParameter(f"{item!r}: expected NAME=VALUE", param_hint=option)
        try:
            out[name] = value_type(value)
        except ValueError as exc:  # the converter's own words: what was expected
            raise click.BadParameter(f"{item!r}: {value!r}: {exc}", param_hint=option) from None
    return out


def _number(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ValueError("expected a number") from None


def _resource(problem_of):
    """A converter of ``--cpus-per-trial``/``--gpus-per-trial`` values: a number that
    ``problem_of`` (trainables/study.py's rule for grids too) finds no problem with."""
    def convert(value: str) -> float:
        number = _number(value)
        problem = problem_of(number)
        if problem:
            raise ValueError(problem)
        return number

    return convert


_cpus, _gpus = _resource(cpus_problem), _resource(gpus_problem)


def _where(values: tuple[str, ...]) -> dict:
    out: dict = {}
    for name, value in _pairs(values, "--where").items():
        out.setdefault(name, []).extend(v.strip() for v in value.split(","))
    return out


WHERE_HELP = "Only the grid's studies whose FIELD is VALUE (repeatable; VALUE may be a,b), e.g. --where dataset=pneumonia."
VIEWS_HELP = (
    "Frozen heads (linear, dvme; the probes fit on view 0): train on K augmented views of each training image, cached once (epoch e "
    "reads view e mod K); validation and test use the evaluation transform. Default: the grid's (1 = "
    "no augmentation, the evaluation transform only)."
)


def _option_group(*options):
    """A group of click options as one decorator."""
    def apply(f):
        for option in reversed(options):
            f = option(f)
        return f
    return apply


# --grid, --where, --views, --embedding-dtype: which studies, shared by run and plan.
_study_options = _option_group(
    click.option("--grid", "grid_name", default="demo", show_default=True,
                 help="Grid: a packaged one (sweep grids lists them) or a grid file PATH.py anywhere (sweep grid new writes one)."),
    click.option("--where", "where", multiple=True, metavar="FIELD=VALUE", help=WHERE_HELP),
    click.option("--views", type=click.IntRange(min=1), metavar="K", help=VIEWS_HELP),
    click.option("--embedding-dtype", type=click.Choice(EMBEDDING_DTYPES),
                 help="Stored dtype of cached embeddings for frozen modes (float16: half the disk and page cache) [default: the grid's, float32]."),
)


def _studies(grid_name: str, where: tuple, views, embedding_dtype) -> list:
    studies = load_grid(grid_name)
    if where:
        studies = select_studies_where(studies, _where(where))
    return with_embedding_options(studies, views, embedding_dtype)


def _modes(values: dict, option: str) -> dict:
    """Keys MODE or MODE:BACKBONE (e.g. finetune:dino)."""
    unknown = sorted(k for k in values if k.split(":", 1)[0] not in MODES)
    if unknown:
        mode = unknown[0].split(":", 1)[0]
        raise click.BadParameter(
            f"unknown mode {mode!r}{did_you_mean(mode, MODES)}; valid: MODE or MODE:BACKBONE with MODE one of "
            f"{', '.join(MODES)}", param_hint=option,
        )
    return values


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except USER_ERRORS as exc:
            raise UserErrorExit(str(exc)) from exc


@click.group(cls=_Group)
@click.version_option(package_name="medsweep")
def main() -> None:
    """medsweep: which pretrained backbone, used how, is best for a small labelled data set.

    Sweeps (dataset x backbone x mode x subset size x fold) studies as one Ray Tune
    experiment: Optuna searches each study's learning rate, ASHA prunes within each study,
    and every trial lands in a Parquet results store that `sweep results` queries.

    Start with `sweep run --grid demo` (a few minutes on 2 CPU cores, no download).
    """
    # The process ends after its one command: what is alive then needs no garbage collection.
    # Python's exit collects every object torch, timm and Ray made (a full pass, 0.9 s after
    # `sweep run --grid demo` on 2 cores); frozen first, the exit takes 0.3 s. Exit handlers
    # that run after it (Ray's shutdown) are unaffected: the collector only skips what is frozen.
    freeze_at_exit()


class CheckpointEvery(click.ParamType):
    """Seconds (>= 0) or ``off`` (None)."""

    name = "seconds"

    def convert(self, value, param, ctx):
        if value is None or isinstance(value, (int, float)):
            return value
        if str(value).strip().lower() == "off":
            return None
        try:
            seconds = float(value)
        except ValueError:
            seconds = -1.0
        if not seconds >= 0:
            self.fail(f"{value!r} is neither a number of seconds (0 or more) nor 'off'", param, ctx)
        return seconds


_store_options = _option_group(
    click.option("--results", default=DEFAULT_RESULTS, show_default=True, help="Results store: a directory or a URI (s3://bucket/prefix, file:///...)."),
    click.option("--cache", help="Embedding cache: a folder or a URI [default: RESULTS/cache]; share one between sweeps."),
    click.option("--resume", is_flag=True, help="Continue a sweep in --results: studies complete there are skipped."),
    click.option("--allow-other-grid", is_flag=True, help="Add to a results directory that holds another grid's results."),
    click.option("--mlflow", metavar="URI", help="Also log every trial as an MLflow run there (sqlite:///mlruns.db, http://host:5000): study fields and lr as parameters, per-epoch losses and scores, study and cell ids as tags. Needs pip install -e '.[mlflow]'."),
)
_input_options = _option_group(
    click.option("--data", "data", multiple=True, metavar="NAME=ROOT", help="Folder of a dataset (repeatable)."),
    click.option("--weights", "weights", multiple=True, metavar="NAME=PATH", help="Weight file of a backbone (repeatable)."),
    click.option("--trust-remote-code", "trust_remote_code", multiple=True, metavar="NAME", help="Let backbone NAME's hub repo run the Python code it ships to build the model (hibou-b's does; read it first). Without it such a backbone is refused (repeatable)."),
    click.option("--holdout", type=click.FloatRange(0, 0.5, min_open=True), help="Score on a labelled test set carved from the training pool (this fraction, stratified, grouped by patient) instead of the dataset's own; for test labels hidden on Kaggle."),
    click.option("--skip-unreadable", is_flag=True, help="Leave out images that do not decode and rows with missing files or bad labels, each recorded in RESULTS/skipped/; without it any such problem stops the sweep before it starts."),
)
_resource_options = _option_group(
    click.option("--gpus-per-trial", multiple=True, metavar="MODE=FRACTION", help="GPU fraction a trial takes, by MODE or MODE:BACKBONE, e.g. linear=0.1, finetune:dino=1, linear=0 for CPU-only heads (repeatable; overrides the grid's). Ignored without GPUs."),
    click.option("--cpus-per-trial", multiple=True, metavar="MODE=CPUS", help="CPUs a trial takes, by MODE or MODE:BACKBONE, e.g. finetune=4 (repeatable)."),
    click.option("--max-concurrent", type=click.IntRange(min=1), help="Most trials running at once [default: as many as the CPUs and GPUs hold, with as many more waiting so that a finished trial's process goes straight to the next; with N, none wait and more trials start a process of their own]."),
    click.option("--extract-cpus", type=click.IntRange(min=1), help="CPUs of one embedding-extraction task; all but one decode images [default: beside a GPU its share of the node's CPUs, at most 9; else 1]."),
    click.option("--decode", type=click.Choice(DECODE_CHOICES), default="auto", show_default=True, help="Where extraction decodes JPEG files: device (nvJPEG on the GPU, resized there; workers only read them), workers (CPU DataLoader workers, Pillow), auto (device on a GPU, else workers). Other formats are always decoded by the workers."),
    click.option("--address", help="Join a running Ray cluster (auto or HOST:PORT); without it a local Ray starts."),
)
_policy_options = _option_group(
    click.option("--max-failures", type=click.IntRange(min=0), default=2, show_default=True, help="Failures of a trial on faults of the machine (a killed worker, a lost spot node, an out-of-memory kill) before it is recorded as an error; errors of the trial itself (a NaN loss) are recorded at once."),
    click.option("--checkpoint-every", type=CheckpointEvery(), default="120", show_default=True, metavar="SECONDS|off", help="A trial saves a checkpoint at the end of an epoch once this many seconds have passed since its last one (0: every epoch; off: never); a killed trial, or one in flight when the driver died, resumes from it."),
)


# Every option of sweep run: sweep slurm takes them all and writes them into its script.
_sweep_run_options = _option_group(
    _study_options, _store_options, _input_options, _resource_options, _policy_options,
    click.option("--quiet", is_flag=True, help="No extraction bars and no progress line: the table and the answer only."),
    click.option("-v", "--verbose", is_flag=True, help="Also a line per finished trial (study, lr, epochs, scores), and the time of each stage of the sweep at the end."),
)


def _trusted(names: tuple) -> tuple:
    """--trust-remote-code names, each a known backbone (an unknown one: the registry's error)."""
    from trainables.models.backbones import get_backbone_info

    for name in names:
        get_backbone_info(name)
    return tuple(sorted(set(names)))


def _run_options(given: dict, verbose: int):
    """The four option groups of ``sweep run`` (sweep/options.py) from the parsed options."""
    from sweep.options import Inputs, Resources, RunOptions, StoreOptions, TrialPolicy

    return RunOptions(
        inputs=Inputs(data_roots=_pairs(given["data"], "--data"), weights=_pairs(given["weights"], "--weights"),
                      holdout=given["holdout"], skip_unreadable=given["skip_unreadable"],
                      trust_remote_code=_trusted(given["trust_remote_code"])),
        resources=Resources(
            gpus_per_trial=_modes(_pairs(given["gpus_per_trial"], "--gpus-per-trial", _gpus), "--gpus-per-trial"),
            cpus_per_trial=_modes(_pairs(given["cpus_per_trial"], "--cpus-per-trial", _cpus), "--cpus-per-trial"),
            max_concurrent=given["max_concurrent"], extract_cpus=given["extract_cpus"], decode=given["decode"],
            address=given["address"]),
        store=StoreOptions(results=given["results"], cache=given["cache"], resume=given["resume"],
                           allow_other_grid=given["allow_other_grid"], mlflow=given["mlflow"]),
        policy=TrialPolicy(max_failures=given["max_failures"], checkpoint_every_s=given["checkpoint_every"]),
        verbose=verbose,
    )


# Options whose values are paths: sweep slurm makes local ones absolute (the job runs elsewhere).
_PATH_OPTIONS = {"results", "cache"}
_PATH_PAIRS = {"data", "weights"}


def _absolute(value: str) -> str:
    from trainables import storage

    return value if storage.is_uri(value) else os.path.abspath(os.path.expanduser(value))


def _run_argv(ctx: click.Context, skip: set) -> list[str]:
    """``sweep run`` with the options of ``ctx`` that ``run`` takes (but ``skip``), as a
    command line: values as given, local paths made absolute, defaults left out."""
    argv = ["sweep", "run"]
    for param in run.params:
        if not isinstance(param, click.Option) or param.name in skip:
            continue
        value = ctx.params.get(param.name)
        if param.name == "checkpoint_every" and value is None:
            value = "off"  # None is the option's "off", not its absence
        if param.name != "grid_name" and (value is None or value == () or value is False or value == param.default):
            continue
        flag = param.opts[-1] if param.opts[-1].startswith("--") else param.opts[0]
        if param.is_flag:
            argv.append(flag)
            continue
        for item in value if param.multiple else (value,):
            item = str(item)
            if param.name in _PATH_OPTIONS:
                item = _absolute(item)
            elif param.name in _PATH_PAIRS and "=" in item:
                name, _, path = item.partition("=")
                item = f"{name}={_absolute(path)}"
            elif param.name == "grid_name" and item.endswith(".py"):
                item = _absolute(item)
            argv += [flag, item]
    if "--results" not in argv:  # the default, as a path every node reads
        argv += ["--results", _absolute(DEFAULT_RESULTS)]
    return argv


@main.command()
@_sweep_run_options
@click.option("--nodes", type=click.IntRange(min=1), required=True, help="Machines of the allocation; one Ray node each.")
@click.option("--gpus-per-node", type=click.IntRange(min=0), required=True, help="GPUs SLURM gives each node (0: CPU only).")
@click.option("--cpus-per-node", type=click.IntRange(min=1), required=True, help="CPUs SLURM gives each node, all Ray's.")
@click.option("--time", "time_limit", required=True, metavar="HH:MM:SS", help="The job's time limit (D-HH:MM:SS for days); near it the job requeues itself and resumes.")
@click.option("--partition", help="SLURM partition.")
@click.option("--account", help="SLURM account.")
@click.option("--env-setup", metavar="CMD", help="Shell line that puts sweep and ray on PATH on every node, e.g. 'source /shared/medsweep/.venv/bin/activate' or 'module load ...' [default: activate the virtualenv this sweep runs from].")
@click.option("--signal-before", type=click.IntRange(min=10), metavar="SECONDS", help="Requeue this long before the time limit [default: 300, a fifth of a shorter job].")
@click.option("--out", "out", required=True, metavar="FILE.sbatch", help="Where the sbatch script goes.")
@click.option("--submit", is_flag=True, help="Also submit it with sbatch and print the job id.")
@click.pass_context
def slurm(ctx, grid_name, where, views, embedding_dtype, quiet, verbose, nodes, gpus_per_node, cpus_per_node,
          time_limit, partition, account, env_setup, signal_before, out, submit, **given):
    """Write an sbatch script that runs a sweep on a SLURM allocation (and submit it).

    Ray starts on every node (ray start under srun, ports from the job id), the driver runs on
    the first, the results go to --results on storage every node shares. The job
    requeues itself before its time limit (and when preempted) and resumes into the same store.

    \b
    Example:
      sweep slurm --grid paper --data patchcam=/shared/pcam --results /shared/sweep-results \\
        --nodes 4 --gpus-per-node 4 --cpus-per-node 32 --time 24:00:00 --partition gpu \\
        --gpus-per-trial linear=0.1 --out paper.sbatch --submit
      squeue --me; tail -f /shared/sweep-results/slurm/medsweep-paper-JOBID.log
    """
    from sweep.launch.slurm import SlurmJob, sbatch_script, submit as sbatch_submit

    if given["address"]:
        raise click.UsageError("--address: the script starts Ray over the allocation and joins it itself")
    # Checked exactly as sweep run checks them, before anything is written.
    options = _run_options(given, 0 if quiet else 2 if verbose else 1)
    studies = _studies(grid_name, where, views, embedding_dtype)
    check_studies(studies)
    from trainables import storage

    results = _absolute(options.store.results)
    # sbatch opens the log before anything runs: beside local results, else (results at a URI)
    # in a folder here, which must be shared too.
    log_dir = os.path.join(results, "slurm") if storage.is_local(results) else os.path.abspath("slurm-logs")
    os.makedirs(log_dir, exist_ok=True)
    if env_setup is None and sys.prefix != sys.base_prefix:
        env_setup = f"source {shlex.quote(os.path.join(sys.prefix, 'bin', 'activate'))}"
    job = SlurmJob(nodes=nodes, cpus_per_node=cpus_per_node, gpus_per_node=gpus_per_node, time=time_limit,
                   partition=partition, account=account, signal_before_s=signal_before)
    argv = _run_argv(ctx, skip={"address", "resume"})
    if given["resume"]:
        argv.append("--resume")
    name = re.sub(r"[^A-Za-z0-9._-]", "_", grid_name_of(grid_name))
    with open(out, "w") as f:
        f.write(sbatch_script(argv, job, env_setup, log_dir, name))
    os.chmod(out, 0o755)
    click.echo(f"wrote {out}: {len(studies)} studies on {nodes} node(s) x {cpus_per_node} CPUs, {gpus_per_node} GPUs, "
               f"time {time_limit}; log {log_dir}/medsweep-{name}-JOBID.log")
    if submit:
        job_id = sbatch_submit(out)
        click.echo(f"submitted job {job_id}: squeue -j {job_id}; tail -f {log_dir}/medsweep-{name}-{job_id}.log")


@main.command()
@_sweep_run_options
def run(grid_name, where, views, embedding_dtype, quiet, verbose, **given):
    """Run a grid's studies and print the mean ± std table of its cells.

    \b
    Example:
      sweep run --grid demo --results ./sweep-results
    """
    from sweep.driver.runner import run_sweep

    options = _run_options(given, 0 if quiet else 2 if verbose else 1)  # every option checked first
    studies = _studies(grid_name, where, views, embedding_dtype)
    summary = run_sweep(studies, options)
    outcome = summary.outcome(ResultsStore(summary.results))
    click.echo("\n" + render(outcome["cells"], "table", "cells"))
    if outcome["answers"]:
        click.echo("\nThe answer, per dataset and training-set size:")
        for answer in outcome["answers"]:
            click.echo(f"  {answer['sentence']}")
    click.echo(
        f"\n{len(outcome['cells'])} cells, {summary.studies} studies ({summary.skipped} already complete), "
        f"{outcome['trials']} trials ({outcome['stopped']} stopped early by ASHA, {outcome['failed']} failed), "
        f"{summary.wall_s:.0f} s"
    )
    if verbose and summary.phases:
        click.echo(f"stages: {summary.phase_line()}")
    click.echo(f"results: {summary.results}  (query: sweep results --results {summary.results} --level cells)")
    if summary.submissions:
        click.echo(
            f"Kaggle submissions (test labels hidden): {summary.submissions} files under "
            f"{summary.results}/submissions; score them with sweep kaggle-score"
        )


@main.command()
@_study_options
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--estimate", is_flag=True, help="Also estimate device-hours per mode: a short calibration on this machine's device (about a minute on a CPU), unless --costs is given.")
@click.option("--costs", "costs_file", type=click.Path(dir_okay=False), help="With --estimate: per-image costs saved by --save-costs (e.g. on a GPU node) instead of calibrating here.")
@click.option("--save-costs", type=click.Path(dir_okay=False), help="With --estimate: write the calibrated costs to this JSON file.")
@click.option("--results", help="With --estimate: use the costs measured by this store's trials and cache where they cover the grid.")
@click.option("--data", "data", multiple=True, metavar="NAME=ROOT", help="Check the studies against this dataset as it is (repeatable): the whole pool (F) counted, sizes and folds checked.")
@click.option("--weights", "weights", multiple=True, metavar="NAME=PATH", help="Check that this weight file loads whole (repeatable); files in $MEDSWEEP_WEIGHTS are checked too.")
@click.option("--holdout", type=click.FloatRange(0, 0.5, min_open=True), help="As sweep run --holdout: the pool the checks count is the rest.")
@click.option("--studies", "list_studies", is_flag=True, help="List every study with all its fields (the whole-pool sizes resolved).")
def plan(grid_name, where, views, embedding_dtype, fmt, estimate, costs_file, save_costs, results, data, weights,
         holdout, list_studies):
    """Print a grid's studies and trials per dataset and mode, without running anything.

    With --data / --weights it is a pre-flight: every study checked against the data and
    weight files as they are (exit 1 on any problem); nothing is written.

    \b
    Examples:
      sweep plan --grid paper --format json
      sweep plan --grid paper --where dataset=nih --data nih=/data/nih --format json --studies
    """
    from sweep.plan.preflight import preflight

    studies = _studies(grid_name, where, views, embedding_dtype)
    check_studies(studies)
    if (costs_file or save_costs or results) and not estimate:
        raise click.UsageError("--costs, --save-costs and --results go with --estimate")
    studies, checks = preflight(studies, _pairs(data, "--data"), _pairs(weights, "--weights"), holdout)
    summary = summarize(grid_name_of(grid_name), studies)
    summary["preflight"] = checks
    if list_studies:
        summary["study_list"] = [{**dataclasses.asdict(s), "study_id": s.study_id, "cell_id": s.cell_id}
                                 for s in studies]
    if estimate:
        summary["estimate"] = _estimate(studies, costs_file, save_costs, results, quiet=fmt == "json")
    if fmt == "json":
        click.echo(json.dumps(summary, indent=1))
        sys.exit(1 if checks["problems"] else 0)
    from sweep.store.formatting import render_table

    click.echo(render_table(summary["by_dataset_mode"], ("dataset", "mode", "studies", "trials")))
    click.echo(
        f"\ngrid {summary['grid']}: {summary['studies']} studies, {summary['trials']} trials, "
        f"{summary['cells']} cells; backbones {', '.join(summary['backbones'])}"
    )
    if list_studies:
        click.echo("")
        click.echo(render_table(summary["study_list"], ("study_id", "subset", "n_train", "n_trials", "max_epochs",
                                                        "views", "attention_form", "qkv_bias", "no_attention_head", "gpus")))
    for name, report in checks["datasets"].items():
        if report["ok"]:
            click.echo(f"{name}: {report['root']}: pool {report['pool']:,} {report['pool_classes']}, test {report['test']:,}"
                       f"{'' if report['test_labels'] else ' (labels hidden)'}")
            if report["not_read"]:
                click.echo(f"{name}: {NOT_READ}: {counts_line(report['not_read'])}")
    for name, report in checks["weights"].items():
        if report["ok"]:
            click.echo(f"{name}: {report['file']} loads whole ({report['format']}, dim {report['dim']})")
    for problem in checks["problems"]:
        click.echo(f"problem: {problem}", err=True)
    if estimate:
        est = summary["estimate"]
        click.echo(f"\nestimated device-hours on {est['device']} (every trial at max_epochs, one at a time):")
        click.echo(render_table(est["parts"], ("part", "count", "unit", "device_hours", "source")))
        click.echo(f"total: {est['total_hours']:.2f} device-hours")
        if est.get("models"):
            click.echo("foundation models (costed by their FLOPs at the seconds per FLOP a ViT takes here):")
            click.echo(render_table(est["models"], ("backbone", "input", "params_m", "gflops_per_image")))
        images = sum(e["images"] for e in est["extractions"])
        click.echo(f"extraction: {len(est['extractions'])} (dataset, backbone, view) keys, {images:,} images "
                   f"(the rows the studies draw, and view 0's test set; --format json lists them)")
    if checks["problems"]:
        sys.exit(1)


def _estimate(studies, costs_file, save_costs, results, quiet) -> dict:
    from sweep.plan.estimate import calibrate, estimate, load_costs, measured_costs, save_costs as write_costs

    if costs_file:
        costs, source = load_costs(costs_file), f"costs file {costs_file}"
    else:
        costs, source = calibrate(studies, echo=None if quiet else lambda line: click.echo(line, err=True)), "calibration"
    if save_costs:
        write_costs(costs, save_costs)
    measured = None
    if results:
        from trainables.cache.embeddings import list_cache

        store = ResultsStore(results).require()
        measured = measured_costs(store.read_trials().to_pylist(), list_cache(store.cache_dir))
    return estimate(studies, costs, measured, source)


@main.command()
@click.option("--results", default=DEFAULT_RESULTS, show_default=True, help="Results store: a directory or a URI (s3://bucket/prefix, file:///...).")
@click.option("--level", type=click.Choice(["trials", "studies", "cells", "epochs"]), default="cells", show_default=True,
              help="trials: every trial; studies: each study's selected trial (best validation score); cells: mean ± std over folds; epochs: every epoch of the trials --where selects.")
@click.option("--where", "where", multiple=True, metavar="FIELD=VALUE",
              help="Only rows whose FIELD is VALUE (a,b for several; LO..HI for a numeric range), repeatable: --where dataset=aptos --where n_train=100..1000 --where status=error. At level epochs, FIELD is a trials field.")
@click.option("--sort", "sort", multiple=True, metavar="FIELD", help="Sort by FIELD (-FIELD: descending), repeatable.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), help="Write to this file (required for parquet).")
@click.option("--kaggle-scores", type=click.Path(dir_okay=False, exists=True), help="kaggle_scores.csv (from sweep report) with private and public filled in: studies and cells of Kaggle-scored data sets take the fold models' alpha-weighted scores as test scores.")
def results(results, level, where, sort, fmt, out, kaggle_scores):
    """Query the results store at one of four levels.

    \b
    Examples:
      sweep results --level cells --format csv --out cells.csv
      sweep results --level trials --where status=error
      sweep results --level studies --where dataset=aptos --where mode=linear --sort -test_score
    """
    from sweep.store.queries import filter_rows, sort_rows

    store = ResultsStore(results).require()
    rows = store.read_trials().to_pylist()
    if level in ("studies", "cells"):
        rows = select_studies(rows)
        if kaggle_scores:
            from sweep.report.kaggle import read_kaggle_scores, with_kaggle_scores

            rows = with_kaggle_scores(rows, read_kaggle_scores(kaggle_scores), kaggle_scores)
    elif kaggle_scores:
        raise click.UsageError("--kaggle-scores goes with --level studies or cells")
    if level == "cells":
        from sweep.store.intervals import cell_intervals

        rows = aggregate_cells(rows, cell_intervals(store.root, rows))
    rows = filter_rows(rows, _where(where))
    if level == "epochs":
        rows = epoch_rows(store, rows)
    rows = sort_rows(rows, list(sort))
    text = render(rows, fmt, level, out)
    if text is not None:
        click.echo(text)
    elif out:
        click.echo(f"wrote {len(rows)} rows to {out}", err=True)


@main.command()
@click.option("--results", default=DEFAULT_RESULTS, show_default=True, help="Results store: a directory or a URI.")
@click.option("--out", "out_dir", default="report", show_default=True, type=click.Path(file_okay=False), help="Folder for the report, its plots and CSV exports.")
@click.option("--format", "fmt", type=click.Choice(["md", "html"]), default="md", show_default=True)
@click.option("--cache", help="Embedding cache for the t-SNE plots [default: RESULTS/cache].")
@click.option("--kaggle-scores", type=click.Path(dir_okay=False, exists=True), help="kaggle_scores.csv with private and public filled in: adds the alpha-weighted final scores.")
@click.option("--tsne-points", type=click.IntRange(min=10), default=1000, show_default=True, help="Points per t-SNE panel.")
def report(results, out_dir, fmt, cache, kaggle_scores, tsne_points):
    """Write the paper's tables beside the paper's numbers, paired statistics and plots.

    \b
    Example:
      sweep report --results sweep-results --out report --format html
    """
    from sweep.report.report import write_report

    store = ResultsStore(results).require()
    path, answered = write_report(store, out_dir, fmt, cache=cache, kaggle_scores=kaggle_scores,
                                  tsne_points=tsne_points, with_answers=True)
    for answer in answered:
        click.echo(answer["sentence"])
    click.echo(f"wrote {path} (plots in {os.path.join(out_dir, 'plots')}, tables as CSV beside it)")


@main.group()
def store():
    """Inspect a results store."""


@store.command("check")
@click.option("--results", default=DEFAULT_RESULTS, show_default=True, help="Results store: a directory or a URI.")
@click.option("--json", "as_json", is_flag=True, help="Print the problems as one JSON list.")
def store_check(results, as_json):
    """List every problem in a results store: unreadable trial or history files, rows without
    their history or fold manifest, orphan checkpoints. Exit status 1 when there is any.

    \b
    Example:
      sweep store check --results sweep-results
    """
    from sweep.store.storecheck import check_store

    found = ResultsStore(results, warn=lambda message: None).require()
    problems = check_store(found)
    if as_json:
        click.echo(json.dumps(problems, indent=1))
    elif problems:
        click.echo(render_table(problems, ["kind", "path", "detail"]))
        click.echo(f"{len(problems)} problem(s)")
    else:
        click.echo(f"{found.root}: no problems ({found.read_trials().num_rows} trials)")
    if problems:
        sys.exit(1)


@main.group()
def data():
    """Inspect datasets in their public layouts."""


@data.command("check")
@click.argument("name")
@click.option("--root", type=click.Path(), help="The dataset's folder (or .npz) [default: $MEDSWEEP_DATA/NAME].")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def data_check(name, root, as_json):
    """Read NAME's layout, decode every image once, report counts and every problem.

    Exit status 1 when the data cannot be used as it is.

    \b
    Example:
      sweep data check pneumonia --root /data/chest_xray --json
    """
    from sweep.plan.datacheck import check_dataset
    from trainables.data.datasets import get_dataset_info, resolve_root

    get_dataset_info(name)
    report = check_dataset(name, resolve_root(name, {name: root} if root else None))
    if as_json:
        click.echo(json.dumps(report, indent=1))
    else:
        click.echo(f"{name} at {report['root']}")
        click.echo(f"  training pool: {report['train']}  " + ", ".join(f"{k}: {v}" for k, v in report["train_classes"].items()))
        click.echo(f"  test set: {report['test']} ({'labelled' if report['test_labels'] else 'labels hidden'})")
        click.echo(f"  patients: {report['groups'] if report['groups'] is not None else '-'}")
        for reason, count in report.get("excluded", {}).items():
            click.echo(f"  left out by the protocol: {count} rows, {reason}")
        if report.get("not_read"):
            click.echo(f"  {NOT_READ}: {counts_line(report['not_read'])}")
        click.echo(f"  problems: {len(report['problems'])}")
        for problem in report["problems"][:50]:
            click.echo(f"    {problem}")
        if len(report["problems"]) > 50:
            click.echo(f"    ... and {len(report['problems']) - 50} more (--json lists all)")
        for line in report.get("where_to_get", []):
            if not any(line in problem for problem in report["problems"]):  # not said already
                click.echo(f"  get it: {line}")
    if not report["usable"]:
        sys.exit(1)


@main.group()
def weights():
    """Inspect published weight files."""


@weights.command("check")
@click.argument("name")
@click.option("--file", "path", type=click.Path(), help="The weight file [default: its published name in $MEDSWEEP_WEIGHTS].")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--trust-remote-code", is_flag=True, help="Let NAME's hub repo run the code it ships to build the model (hibou-b's does).")
def weights_check(name, path, as_json, trust_remote_code):
    """Detect NAME's weight-file layout, convert, load, run one forward pass, report.

    Exit status 1 when the file does not load whole.

    \b
    Example:
      sweep weights check dino --file dino_deitsmall8_pretrain.pth --json
      sweep weights check hf-hub:timm/vit_small_patch14_dinov2.lvd142m --json
      sweep weights check virchow2        (a named foundation model: from the Hugging Face cache)
    """
    from sweep.plan.weightcheck import check_weights
    from trainables.models.backbones import resolve_weights

    path = resolve_weights(name, {name: path} if path else None)
    if path is None:
        raise UserErrorExit(f"no weight file for {name!r}: give --file PATH or set $MEDSWEEP_WEIGHTS")
    report = check_weights(name, path, trust_remote_code=trust_remote_code)
    if as_json:
        click.echo(json.dumps(report, indent=1))
    else:
        click.echo(f"{name}: {report['file']}")
        click.echo(f"  format {report['format']}, {report['tensors']} tensors, sha256 {report['sha256']}")
        click.echo(f"  left out on purpose: {len(report['dropped'])} keys {report['dropped'][:4]}")
        click.echo(f"  missing {report['missing'][:8]}, unexpected {report['unexpected'][:8]}, other shape {report['wrong_shape'][:8]}")
        click.echo(f"  embedding dim {report['dim']}, input mean {report['mean']} std {report['std']}")
        if report.get("card"):
            click.echo(f"  recipe {report['embedding']} at {report['input_size']}px, card {report['card']}"
                       f"{' (gated)' if report['gated'] else ''}")
        if report["licence"]:
            click.echo(f"  licence {report['licence']}")
        if report["error"]:
            click.echo(f"  error: {report['error']}")
    if not report["ok"]:
        sys.exit(1)


@weights.command("fetch")
@click.argument("names", nargs=-1, required=True)
@click.option("--to", "folder", required=True, type=click.Path(file_okay=False), help="Folder to keep the files in.")
@click.option("--mirror", metavar="URL", help="Fetch URL/<file name> instead of the publisher's address (a mirror of yours; file:// works).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON list: backbone, file, sha256, address.")
def weights_fetch(names, folder, mirror, as_json):
    """Download the paper's published weight files, resume a broken download, check each loads
    whole, record its sha256 (DIR/medsweep-weights.json), print the lines to use them.

    \b
    Example:
      sweep weights fetch supervised swav simclr dino --to ~/weights
    """
    from sweep.plan.weightfetch import fetch_weights

    folder = os.path.abspath(os.path.expanduser(folder))
    done = fetch_weights(list(names), folder, mirror, echo=lambda line: click.echo(line, err=True))
    if as_json:
        click.echo(json.dumps(done, indent=1))
        return
    for entry in done:
        click.echo(f"{entry['backbone']}: {entry['file']} sha256 {entry['sha256']}")
    click.echo("use them with:")
    click.echo("  " + " ".join(f"--weights {e['backbone']}={e['file']}" for e in done))
    click.echo(f"  or: export MEDSWEEP_WEIGHTS={folder}")


def _cache_dir(cache, results) -> str:
    return ResultsStore(results).cache_at(cache)


@main.group()
def cache():
    """List or remove cached embeddings."""


CACHE_OPTIONS = [
    click.option("--cache", "cache_path", help="Cache folder or URI [default: RESULTS/cache]."),
    click.option("--results", default=DEFAULT_RESULTS, show_default=True, help="Results store: a directory or a URI."),
]


def _cache_options(f):
    for option in reversed(CACHE_OPTIONS):
        f = option(f)
    return f


@cache.command("ls")
@_cache_options
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
def cache_ls(cache_path, results, as_json):
    """List the cache: key, part, dataset, backbone, rows, dim, size.

    A sweep extracts only the pool rows its studies draw: a key may have several parts
    (``whole``: a file of the whole pool, as ``sweep embed`` writes).

    \b
    Example:
      sweep cache ls --results ./sweep-results
    """
    from trainables.cache.embeddings import list_cache

    entries = list_cache(_cache_dir(cache_path, results))
    if as_json:
        click.echo(json.dumps(entries, indent=1))
        return
    from sweep.store.formatting import render_table

    click.echo(render_table(entries, ("key", "part", "dataset", "backbone", "view", "dtype", "rows", "pool_rows", "dim",
                                      "mib", "extract_s", "images_per_s", "batch_size")))


@cache.command("rm")
@_cache_options
@click.option("--dataset", help="Only this dataset's embeddings.")
@click.option("--backbone", help="Only this backbone's embeddings.")
@click.option("--all", "everything", is_flag=True, help="Every entry (needed when no filter is given).")
def cache_rm(cache_path, results, dataset, backbone, everything):
    """Remove cached embeddings; a later sweep extracts them again.

    \b
    Example:
      sweep cache rm --backbone dino
    """
    from trainables.cache.embeddings import remove_cached

    if not (dataset or backbone or everything):
        raise click.UsageError("name --dataset and/or --backbone, or --all")
    # A mistyped name would match no file and remove nothing, unsaid: named, with close matches.
    if dataset:
        from trainables.data.datasets import get_dataset_info

        get_dataset_info(dataset)
    if backbone:
        from trainables.models.backbones import get_backbone_info

        get_backbone_info(backbone)
    removed = remove_cached(_cache_dir(cache_path, results), dataset=dataset, backbone=backbone)
    click.echo(f"removed {removed} cache file(s)")


@main.command()
@click.option("--dataset", required=True, help="Dataset to embed.")
@click.option("--backbone", "backbones", required=True, multiple=True, help="Backbone (repeatable).")
@click.option("--data", "data", multiple=True, metavar="NAME=ROOT", help="Folder of a dataset.")
@click.option("--weights", "weights", multiple=True, metavar="NAME=PATH", help="Weight file of a backbone.")
@click.option("--views", type=click.IntRange(min=1), default=1, show_default=True, metavar="K", help="Also cache K augmented views of the training pool (K > 1), as `sweep run --views K` uses them.")
@click.option("--dtype", "dtype", type=click.Choice(EMBEDDING_DTYPES), default="float32", show_default=True, help="Stored dtype.")
@click.option("--workers", type=click.IntRange(min=0), help="DataLoader workers decoding images [default: CPUs - 1, at most 8].")
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--decode", type=click.Choice(DECODE_CHOICES), default="auto", show_default=True, help="Where JPEG files are decoded: device (nvJPEG on the GPU), workers (Pillow), auto (device on a GPU).")
@click.option("--trust-remote-code", "trust_remote_code", multiple=True, metavar="NAME", help="Let backbone NAME's hub repo run the code it ships to build the model (repeatable).")
@_cache_options
def embed(dataset, backbones, data, weights, views, dtype, workers, batch_size, decode, trust_remote_code, cache_path,
          results):
    """Precompute embeddings into the cache (a sweep then extracts nothing).

    \b
    Example:
      sweep embed --dataset digits --backbone test_resnet --backbone test_vit
    """
    from trainables.models.backbones import resolve_weights
    from trainables.data.datasets import get_dataset_info, resolve_root
    from trainables.cache.embeddings import cached_views, extract_views_if_missing, views_problem

    problem = views_problem(get_dataset_info(dataset), views)
    if problem:
        raise click.BadParameter(problem, param_hint="--views")
    root = resolve_root(dataset, _pairs(data, "--data"))
    given = _pairs(weights, "--weights")
    cache_dir = _cache_dir(cache_path, results)
    for backbone in backbones:
        # Every view of a backbone in one pass: each image decoded once for them all.
        done = extract_views_if_missing(dataset, root, backbone, resolve_weights(backbone, given), cache_dir,
                                        views={view: None for view in cached_views(views)}, dtype=dtype,
                                        workers=workers, batch_size=batch_size, decode=decode,
                                        trust_remote_code=backbone in _trusted(trust_remote_code))
        for view, (paths, _) in sorted(done.items()):
            click.echo(f"{dataset} x {backbone} view {view}: {paths[0]}")


@main.command("kaggle-score")
@click.option("--dataset", required=True, help="A Kaggle-scored dataset: patchcam or aptos.")
@click.option("--private", type=float, required=True, help="The private leaderboard score of a submission.")
@click.option("--public", type=float, required=True, help="Its public leaderboard score.")
def kaggle_score(dataset, private, public):
    """The paper's final score of a Kaggle submission: alpha*private + (1-alpha)*public.

    alpha is the private leaderboard's share of the test set: 0.51 for patchcam, 0.85 for aptos.

    \b
    Example:
      sweep kaggle-score --dataset aptos --private 0.80 --public 0.70
    """
    from sweep.report.kaggle import final_score

    click.echo(f"{final_score(dataset, private, public):.4f}")


@main.group()
def grid():
    """Grid files of your own (run them with --grid PATH.py)."""


@grid.command("new")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--dataset", required=True, help="The dataset the grid sweeps (sweep grids lists them; folder: your own ImageFolder tree).")
@click.option("--backbones", required=True, metavar="A,B,...",
              help="Backbones, comma-separated: registered names, timm architectures, hf-hub:ORG/REPO or timm tags ARCH.TAG.")
@click.option("--folds", type=click.IntRange(min=2), default=5, show_default=True)
@click.option("--force", is_flag=True, help="Replace an existing file.")
def grid_new(path, dataset, backbones, folds, force):
    """Write a commented starting grid file: linear, finetune and DVME studies on DATASET.

    \b
    Example:
      sweep grid new my_study.py --dataset folder --backbones supervised,hf-hub:timm/vit_small_patch14_dinov2.lvd142m
      sweep plan --grid my_study.py --data folder=/data/derm --studies
    """
    from sweep.gridfile import write_grid_file

    names = [b.strip() for b in backbones.split(",") if b.strip()]
    write_grid_file(path, dataset, names, folds, force)
    studies = load_grid(path)
    click.echo(f"{path}: grid {grid_name_of(path)!r}, {len(studies)} studies, "
               f"{sum(s.n_trials for s in studies)} trials; edit it, then: sweep plan --grid {path} --studies")


@main.command("grids")
def grids():
    """List the grids, datasets and backbones medsweep knows."""
    from trainables.models.backbones import backbone_names, get_backbone_info
    from trainables.data.datasets import dataset_names, get_dataset_info

    click.echo("grids:     " + ", ".join(grid_names()) + "  (or a grid file: --grid PATH.py; sweep grid new writes one)")
    click.echo("datasets:")
    for d in dataset_names():
        click.echo(f"  {d:12s} {get_dataset_info(d).description}")
    click.echo("backbones:")
    for b in backbone_names():
        info = get_backbone_info(b)
        click.echo(f"  {b:14s} {info.description}")
        if info.foundation:  # what a user must know before fetching it: its terms
            click.echo(f"  {'':14s}   licence {info.licence}{'; gated: accept its terms at ' + info.card if info.gated else ''}")
    click.echo("  and any timm architecture (random init, or --weights NAME=FILE), hf-hub:ORG/REPO (a timm model on\n"
               "  the Hugging Face Hub, from the local cache when offline) or a timm pretrained tag ARCH.TAG")


if __name__ == "__main__":
    sys.exit(main())
