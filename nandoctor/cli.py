"""The command line: parse, load the config, call the pipeline, render, exit.

Every error a user can cause ends here as one paragraph on stderr and an exit
code from `ExitCode`; nandoctor's own bugs end as exit 4 with a short note.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console

from .config import ConfigError, Settings, load_settings
from .errors import NandoctorError
from .exitcodes import ExitCode

SCRIPT_CONTEXT = {"allow_interspersed_args": False, "ignore_unknown_options": True}

app = typer.Typer(
    name="nandoctor",
    help="Find out why a PyTorch training run goes nan, without changing the script.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


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
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value <= 0:
            raise NandoctorError(f"--{key.replace('_', '-')} must be greater "
                                 f"than 0, got {value}.")
        setattr(settings, key, value)


@app.command(context_settings=SCRIPT_CONTEXT)
def diagnose(
    script: Optional[str] = typer.Argument(
        None, help="The training script; everything after it goes to the script."),
    script_args: Optional[list[str]] = typer.Argument(
        None, help="The script's own arguments (after the script name or `--`)."),
    config: Optional[Path] = typer.Option(
        None, "--config", "-c", help="YAML config (default: ./nandoctor.yaml if present)."),
    max_steps: Optional[int] = typer.Option(None, help="Stop the run after this many steps."),
    timeout: Optional[float] = typer.Option(None, help="Seconds one pass may run."),
    seed: Optional[int] = typer.Option(None, help="Seed torch, numpy and random first."),
    threads: Optional[int] = typer.Option(None, help="torch threads in every pass."),
    no_probes: bool = typer.Option(False, "--no-probes", help="Skip the counterfactual runs."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write the JSON report here."),
    output_format: str = typer.Option("rich", "--format", help="rich, json or markdown."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress on stderr."),
) -> None:
    """Run SCRIPT, find the first non-finite value, and say why it happened."""
    from .diagnose import check_target
    from .diagnose import diagnose as run_diagnosis
    from .progress import ProgressReporter

    settings, script_path, args = resolve(config, script, script_args)
    apply_overrides(settings, max_steps=max_steps, timeout=timeout, threads=threads)
    if seed is not None:
        settings.seed = seed
    fmt = _check_format(output_format, ("rich", "json", "markdown"))
    target = check_target(script_path, args)
    _check_writable(json_path)
    with ProgressReporter(stderr_console(), enabled=not quiet) as progress:
        result = run_diagnosis(target, settings, progress=progress,
                               probes=not no_probes)
    emit(result, fmt, json_path)
    raise typer.Exit(int(result.exit_code))


def emit(result: Any, fmt: str, json_path: Optional[Path], command: str = "diagnose") -> None:
    from .report import json_report

    report = json_report.build(result, command=command)
    if json_path is not None:
        _write(json_path, json_report.dumps(report) + "\n")
    if fmt == "json":
        sys.stdout.write(json_report.dumps(report) + "\n")
    elif fmt == "markdown":
        from .report import markdown

        sys.stdout.write(markdown.render(result))
    else:
        from .report import terminal

        terminal.render(result, stdout_console())


@app.command()
def examples() -> None:
    """List the bundled example scripts and the command that diagnoses each."""
    from .examples import catalog

    console = stdout_console()
    for example in catalog():
        console.print(f"[bold]{example.name}[/bold]  {example.summary}")
        console.print(f"    nandoctor diagnose {example.path}", soft_wrap=True)


@app.command()
def explain(code: str = typer.Argument(..., help="A finding's code, e.g. ND101.")) -> None:
    """Print what a rule detects, why training breaks, an example, and the fix."""
    from .rules.catalog import RULES, lookup

    doc = lookup(code)
    if doc is None:
        known = ", ".join(sorted(RULES))
        raise NandoctorError(f"unknown rule code '{code}'. Known codes: {known}.")
    stdout_console().print(doc.render())


def _check_format(value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise NandoctorError(f"--format must be one of {', '.join(allowed)}, "
                             f"got '{value}'.")
    return value


def _check_writable(path: Optional[Path]) -> None:
    if path is None:
        return
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise NandoctorError(
            f"{path}: the folder {folder} does not exist. Create it first "
            f"(mkdir -p {folder}) or choose another path for --json.")
    if path.is_dir():
        raise NandoctorError(f"{path}: is a folder; give a file path for --json.")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise NandoctorError(f"{path}: cannot be written (permission denied). "
                             "Choose a writable location for --json.")


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise NandoctorError(f"{path}: cannot be written ({exc.strerror}).") from None


def main() -> None:
    """Console entry point: one place decides how every error looks."""
    from .runner import Interrupted

    errors = stderr_console()
    try:
        code = app(standalone_mode=False)
    except NandoctorError as exc:
        errors.print(f"[bold red]error:[/bold red] {exc.message}", highlight=False)
        sys.exit(int(exc.code))
    except ConfigError as exc:
        errors.print(f"[bold red]config error:[/bold red] {exc}", highlight=False)
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
            f"[bold red]internal error:[/bold red] {type(exc).__name__}: {exc}. "
            "This is a bug in nandoctor, not in your script; run again with "
            "NANDOCTOR_DEBUG=1 for the traceback and report it.", highlight=False)
        sys.exit(int(ExitCode.INTERNAL))
    sys.exit(code if isinstance(code, int) else 0)


def _usage_errors() -> tuple[type, ...]:
    import click

    return (click.UsageError, click.BadParameter)
