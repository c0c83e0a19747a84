"""The command line: parse, load the config, call the pipeline, render, exit.

Every error a user can cause ends here as one paragraph on stderr and an exit
code from `ExitCode`; nandoctor's own bugs end as exit 4 with a short note.
"""
from __future__ import annotations

import importlib
import math
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape

from .config import ConfigError, Settings, load_settings
from .errors import NandoctorError
from .exitcodes import ExitCode
from .findings import Severity

SCRIPT_CONTEXT = {"allow_interspersed_args": False, "ignore_unknown_options": True}

app = typer.Typer(
    name="nandoctor",
    help="Find out why a PyTorch training run goes nan, without changing the script.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


# Arguments and options the commands share.
Script = Annotated[Optional[str], typer.Argument(
    help="The training script; everything after it goes to the script.")]
ScriptArgs = Annotated[Optional[list[str]], typer.Argument(
    help="The script's own arguments (after the script name or `--`).")]
ConfigFile = Annotated[Optional[Path], typer.Option(
    "--config", "-c", help="YAML config (default: ./nandoctor.yaml if present).")]
MaxSteps = Annotated[Optional[int], typer.Option(
    help="Stop the run after this many steps.")]
Timeout = Annotated[Optional[float], typer.Option(help="Seconds one pass may run.")]
Seed = Annotated[Optional[int], typer.Option(
    help="Seed torch, numpy and random first.")]
Threads = Annotated[Optional[int], typer.Option(
    help="torch threads in the watch and replay (probes run 1 each).")]
NoProbes = Annotated[bool, typer.Option(
    "--no-probes", help="Skip the counterfactual runs.")]
JsonPath = Annotated[Optional[Path], typer.Option(
    "--json", help="Write the JSON report here.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress on stderr.")]


def _print_version(value: bool) -> None:
    if value:
        from . import __version__

        stdout_console().print(f"nandoctor {__version__}")
        raise typer.Exit()


@app.callback()
def _options(version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True,
        help="Print nandoctor's version and exit.")] = False) -> None:
    """Find out why a PyTorch training run goes nan, without changing the script."""


def stdout_console() -> Console:
    return Console(no_color="NO_COLOR" in os.environ or None, soft_wrap=False)


def stderr_console() -> Console:
    return Console(stderr=True, no_color="NO_COLOR" in os.environ or None)


def resolve(
    config: Optional[Path], script: Optional[str], script_args: Optional[list[str]]
) -> tuple[Settings, str, list[str]]:
    """Settings plus the script and its arguments, from the CLI or the config."""
    settings, _ = load_settings(config)
    args = list(script_args or [])
    if args[:1] == ["--"]:
        args = args[1:]
    if script is None:
        if settings.script is None:
            raise NandoctorError(
                "no script given. Name one, e.g. `nandoctor diagnose train.py -- "
                "--lr 0.1`, or set `script:` in nandoctor.yaml (see "
                "configs/default.yaml)."
            )
        return settings, settings.script, args or list(settings.args)
    return settings, script, args


def apply_overrides(settings: Settings, **values: Any) -> None:
    for key, value in values.items():
        if value is None:
            continue
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if number and not 0 < value < math.inf:  # nan and inf too
            raise NandoctorError(f"--{key.replace('_', '-')} must be a finite "
                                 f"number greater than 0, got {value:g}.")
        setattr(settings, key, value)


def prepare(config: Optional[Path], script: Optional[str],
            script_args: Optional[list[str]], seed: Optional[int],
            **overrides: Any) -> tuple[Settings, Any]:
    """Settings with the command line's overrides, and the checked script."""
    from .diagnose import check_target

    settings, script_path, args = resolve(config, script, script_args)
    apply_overrides(settings, **overrides)
    if seed is not None:
        settings.seed = seed
    return settings, check_target(script_path, args)


@app.command(context_settings=SCRIPT_CONTEXT)
def diagnose(
    script: Script = None,
    script_args: ScriptArgs = None,
    config: ConfigFile = None,
    max_steps: MaxSteps = None,
    timeout: Timeout = None,
    seed: Seed = None,
    threads: Threads = None,
    no_probes: NoProbes = False,
    json_path: JsonPath = None,
    output_format: Annotated[str, typer.Option(
        "--format", help="rich, json or markdown.")] = "rich",
    quiet: Quiet = False,
) -> None:
    """Run SCRIPT, find the first non-finite value, and say why it happened."""
    from .diagnose import diagnose as run_diagnosis
    from .progress import ProgressReporter

    fmt = _check_format(output_format, ("rich", "json", "markdown"))
    settings, target = prepare(config, script, script_args, seed,
                               max_steps=max_steps, timeout=timeout, threads=threads)
    _check_writable(json_path, inputs=(target.script,))
    with ProgressReporter(stderr_console(), enabled=not quiet) as progress:
        result = run_diagnosis(target, settings, progress=progress,
                               probes=not no_probes)
    emit(result, fmt, json_path)
    raise typer.Exit(int(result.exit_code))


def emit(result: Any, fmt: str, json_path: Optional[Path], command: str = "diagnose",
         verdict: Any = None) -> None:
    from .report import json_report

    report = json_report.build(result, command=command)
    if verdict is not None:  # `check`: its own exit code and the checks made
        report.update(exit_code=int(verdict.exit_code), check=verdict.to_dict())
    if json_path is not None:
        _write(json_path, json_report.dumps(report) + "\n")
    try:
        _print_report(result, report, fmt, verdict)
        sys.stdout.flush()
    except BrokenPipeError:
        # `nandoctor ... | head`: the reader left; the exit code still counts.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _print_report(result: Any, report: dict, fmt: str, verdict: Any) -> None:
    from .report import json_report

    if fmt == "json":
        sys.stdout.write(json_report.dumps(report) + "\n")
    elif fmt == "markdown":
        from .report import markdown

        sys.stdout.write(markdown.render(result, verdict))
    else:
        from .report import terminal

        console = stdout_console()
        terminal.render(result, console)
        if verdict is not None:
            console.print(terminal.checks_table(verdict))


@app.command(context_settings=SCRIPT_CONTEXT)
def check(
    script: Script = None,
    script_args: ScriptArgs = None,
    config: ConfigFile = None,
    max_steps: MaxSteps = None,
    timeout: Timeout = None,
    seed: Seed = None,
    threads: Threads = None,
    no_probes: NoProbes = False,
    fail_on: Optional[Severity] = typer.Option(
        None, case_sensitive=False, help="Fail on a finding this severe or worse "
        "(default: ci.fail_on, error)."),
    exit_zero: bool = typer.Option(
        False, "--exit-zero",
        help="Report failures but exit 0 (a crash still exits 3)."),
    baseline: Optional[Path] = typer.Option(
        None, help="JSON report of a good run; fail when this one does worse."),
    update_baseline: Optional[Path] = typer.Option(
        None, help="Write this run's JSON report here as the new baseline, "
        "if it passes."),
    junit_xml: Optional[Path] = typer.Option(
        None, "--junit-xml", help="Write a JUnit XML file, one test case per check."),
    json_path: JsonPath = None,
    output_format: Optional[str] = typer.Option(
        None, "--format", help="rich, json, markdown or github (default: github "
        "when GITHUB_ACTIONS=true, else rich)."),
    quiet: Quiet = False,
) -> None:
    """Run SCRIPT for a bounded time as a CI check: exit 1 when it breaks."""
    from . import ci
    from .diagnose import diagnose as run_diagnosis
    from .progress import ProgressReporter
    from .report import github, json_report, junit, markdown

    on_github = os.environ.get("GITHUB_ACTIONS") == "true"
    fmt = _check_format(output_format or ("github" if on_github else "rich"),
                        ("rich", "json", "markdown", "github"))
    settings, target = prepare(config, script, script_args, seed,
                               max_steps=max_steps, timeout=timeout, threads=threads)
    configured = Path(settings.ci.baseline) if settings.ci.baseline else None
    reference = baseline or configured
    loaded = ci.load_baseline(reference) if reference else None
    # Only --update-baseline may replace the baseline, and only after a pass.
    inputs = (target.script, *([reference] if reference else []))
    for path, option in ((json_path, "--json"), (junit_xml, "--junit-xml")):
        _check_writable(path, option, inputs=inputs)
    _check_writable(update_baseline, "--update-baseline", inputs=(target.script,))

    with ProgressReporter(stderr_console(), enabled=not quiet) as progress:
        result = run_diagnosis(target, settings, progress=progress,
                               probes=not no_probes)
    verdict = ci.judge(result, fail_on or Severity(settings.ci.fail_on), loaded,
                       settings.ci.baseline_margin, exit_zero)

    emit(result, "rich" if fmt == "github" else fmt, json_path, "check", verdict)
    if fmt == "github":
        root = Path(os.environ.get("GITHUB_WORKSPACE") or Path.cwd())
        sys.stdout.write(github.render(result, verdict,
                                       settings.ci.max_annotations, root))
    if junit_xml is not None:
        _write(junit_xml, junit.render(result, verdict))
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:  # the runner collects every step's summary: append, never replace
        with open(summary, "a", encoding="utf-8") as out:
            out.write(markdown.render(result, verdict) + "\n")
    if update_baseline is not None and verdict.passed:
        _write(update_baseline, json_report.dumps(json_report.build(
            result, command="check")) + "\n")
        stderr_console().print(f"{update_baseline}: written as the new baseline "
                               f"({len(result.evidence.watch.steps)} steps); "
                               f"compare later runs with --baseline "
                               f"{update_baseline}.", highlight=False)
    elif update_baseline is not None:
        stderr_console().print(f"{update_baseline}: not updated, this run "
                               "failed its check.", highlight=False)
    raise typer.Exit(int(verdict.exit_code))


@app.command(name="lr-sweep", context_settings=SCRIPT_CONTEXT)
def lr_sweep(
    script: Script = None,
    script_args: ScriptArgs = None,
    config: ConfigFile = None,
    start_lr: Optional[float] = typer.Option(None, help="First rate of the sweep."),
    end_lr: Optional[float] = typer.Option(None, help="Last rate of the sweep."),
    steps: Optional[int] = typer.Option(None, help="Steps from start to end rate."),
    repeats: Optional[int] = typer.Option(
        None, help="Sweeps with shifted seeds, in parallel, for the spread."),
    confirm: bool = typer.Option(
        True, "--confirm/--no-confirm", help="Place the divergence with "
        "constant-rate runs below the sweep's (a few more runs)."),
    timeout: Timeout = None,
    seed: Seed = None,
    threads: Optional[int] = typer.Option(
        None, help="torch threads of the sweep (repeats run 1 each)."),
    plot_path: Optional[Path] = typer.Option(
        None, "--plot", help="Write a PNG of the curve here (needs matplotlib)."),
    json_path: JsonPath = None,
    output_format: str = typer.Option("rich", "--format", help="rich or json."),
    quiet: Quiet = False,
) -> None:
    """Sweep SCRIPT's learning rate up until the loss runs away; suggest a rate."""
    from .progress import ProgressReporter
    from .range_test import run_range_test
    from .report import sweep_json, sweep_plot, sweep_report

    fmt = _check_format(output_format, ("rich", "json"))
    settings, target = prepare(config, script, script_args, seed,
                               timeout=timeout, threads=threads)
    apply_overrides(settings.sweep, start_lr=start_lr, end_lr=end_lr, steps=steps,
                    repeats=repeats)
    _check_writable(json_path, inputs=(target.script,))
    if plot_path is not None:
        sweep_plot.require_matplotlib()
        _check_writable(plot_path, "--plot", inputs=(target.script,))
    with ProgressReporter(stderr_console(), enabled=not quiet) as progress:
        test = run_range_test(target, settings, progress=progress, confirm=confirm)

    report = sweep_json.build(test)
    if json_path is not None:
        _write(json_path, sweep_json.dumps(report) + "\n")
    if plot_path is not None and test.repeats[0].reading.points:
        sweep_plot.write_png(test, plot_path)
    if fmt == "json":
        sys.stdout.write(sweep_json.dumps(report) + "\n")
    else:
        sweep_report.render(test, stdout_console())
    raise typer.Exit(int(test.exit_code))


@app.command()
def examples() -> None:
    """List the bundled example scripts and the command that diagnoses each."""
    from .examples import catalog

    console = stdout_console()
    for example in catalog():
        console.print(f"[bold]{example.name}[/bold]  {example.summary}")
        console.print(f"    nandoctor diagnose {example.path}", soft_wrap=True)


@app.command()
def explain(code: Annotated[str, typer.Argument(
        help="A finding's code, e.g. ND101, or its cause, e.g. "
             "log_of_nonpositive.")]) -> None:
    """Print what a rule detects, why training breaks, an example, and the fix."""
    from .rules.catalog import RULES, lookup

    doc = lookup(code)
    if doc is None:
        known = ", ".join(sorted(RULES))
        raise NandoctorError(f"unknown rule code or cause '{code}'. Known "
                             f"codes: {known}.")
    stdout_console().print(doc.render())


def _check_format(value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise NandoctorError(f"--format must be one of {', '.join(allowed)}, "
                             f"got '{value}'.")
    return value


def _check_writable(path: Optional[Path], option: str = "--json",
                    inputs: tuple[Path, ...] = ()) -> None:
    if path is None:
        return
    if any(path.resolve() == given.resolve() for given in inputs):
        raise NandoctorError(f"{path}: is an input of this run; {option} would "
                             "overwrite it. Give another path, e.g. report.json.")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise NandoctorError(
            f"{path}: the folder {folder} does not exist. Create it first "
            f"(mkdir -p {folder}) or choose another path for {option}.")
    if path.is_dir():
        raise NandoctorError(f"{path}: is a folder; give a file path for {option}.")
    try:  # os.access says yes to root on a read-only mount: try for real
        if path.exists():
            open(path, "ab").close()
        else:
            tempfile.TemporaryFile(dir=folder).close()
    except OSError as exc:
        raise NandoctorError(f"{path}: cannot be written ({exc.strerror}). "
                             f"Choose a writable location for {option}.") from None


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise NandoctorError(f"{path}: cannot be written ({exc.strerror}).") from None


def main() -> None:
    """Console entry point: one place decides how every error looks."""
    from .runner import Interrupted

    errors = stderr_console()
    # CI cancels a job with SIGTERM: stop the children as Ctrl-C does, or the
    # script (in its own process group) would run on without us.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        code = app(standalone_mode=False)
    except NandoctorError as exc:
        errors.print(f"[bold red]error:[/bold red] {escape(exc.message)}",
                     highlight=False)
        sys.exit(int(exc.code))
    except ConfigError as exc:
        errors.print(f"[bold red]config error:[/bold red] {escape(str(exc))}",
                     highlight=False)
        sys.exit(int(ExitCode.USAGE))
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (Interrupted, KeyboardInterrupt):
        errors.print("interrupted: the script's processes were stopped.")
        sys.exit(int(ExitCode.INTERRUPTED))
    except _usage_errors() as exc:
        exc.show(file=sys.stderr)
        sys.exit(int(ExitCode.USAGE))
    except Exception as exc:  # a bug of ours: say so, briefly
        if os.environ.get("NANDOCTOR_DEBUG"):
            raise
        errors.print(
            f"[bold red]internal error:[/bold red] {type(exc).__name__}: "
            f"{escape(str(exc))}. "
            "This is a bug in nandoctor, not in your script; run again with "
            "NANDOCTOR_DEBUG=1 for the traceback and report it.", highlight=False)
        sys.exit(int(ExitCode.INTERNAL))
    sys.exit(code if isinstance(code, int) else 0)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _usage_errors() -> tuple[type, ...]:
    """The parser's usage errors (BadParameter is one): recent typer parses
    with its own copy of click, older ones with click, which may be absent."""
    found: list[type] = []
    for module in ("typer._click.exceptions", "click.exceptions"):
        try:
            found.append(importlib.import_module(module).UsageError)
        except ImportError:
            continue
    return tuple(found)
