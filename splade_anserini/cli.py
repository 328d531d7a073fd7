"""One error path for every ``python -m splade_anserini.*`` command.

Every ``main()`` is wrapped by :func:`command`: a refusal or a failure ends as exactly one line
``error: ...`` on stderr and an exit status that says whose fault it was:

* 2: bad input or arguments (:class:`~conversion.errors.InputError` naming file and line,
  :class:`~conversion.errors.UsageError`, any other ``ValueError``, an exception whose class sets
  ``exit_status = 2`` such as a model that cannot be found, a missing input file); argparse's own
  errors also exit 2;
* 1: a failure while running (disk full, a Java exception, lost documents, any other error);
* 130: interrupted (Ctrl-C); long jobs resume when the same command is run again.

``SPLADE_ANSERINI_TRACEBACK=1`` shows the traceback of an unexpected error instead.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import os
import re
import signal
import sys
import threading
from typing import Callable, Iterator

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
TRACEBACK_ENV = "SPLADE_ANSERINI_TRACEBACK"


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def describe(exc: BaseException) -> tuple[int, str]:
    """``(exit status, one-line message)`` for an exception that ended a command."""
    from splade_anserini.conversion.errors import InputError, UsageError

    if isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename else ""
        return EXIT_FAILURE, f"{where}{exc.strerror}"
    if isinstance(exc, FileNotFoundError):
        where = exc.filename or ""
        return EXIT_USAGE, f"{where}: no such file or directory" if where else (_first_line(str(exc)) or "no such file")
    # An exception class may declare itself bad input (``exit_status = EXIT_USAGE``: a model that cannot be
    # found) without this module importing it: cli is imported by every command, it imports none.
    usage = isinstance(exc, (InputError, UsageError, ValueError)) or getattr(exc, "exit_status", None) == EXIT_USAGE
    message = _first_line(str(exc))
    if type(exc).__name__ == "JavaException":  # pyjnius: name the Java exception, not the wrapper
        java_class = getattr(exc, "classname", None) or "Java exception"
        inner = _first_line(getattr(exc, "innermessage", None) or "")
        message = f"{java_class}: {inner}" if inner else java_class
    elif not usage and not isinstance(exc, RuntimeError):
        message = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return (EXIT_USAGE if usage else EXIT_FAILURE), message or type(exc).__name__


_sigint_seen = threading.Event()


def _note_sigint(signum, frame) -> None:
    _sigint_seen.set()
    signal.default_int_handler(signum, frame)


def _watch_sigint() -> None:
    """Remember a Ctrl-C: native code that checks for signals (torch's argument parsing) can turn the
    ``KeyboardInterrupt`` into an error of its own, which must still read as an interruption."""
    if threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _note_sigint)


def _interrupted(message: str) -> int:
    print(f"interrupted: {message or 'rerun the same command to resume'}", file=sys.stderr, flush=True)
    return EXIT_INTERRUPTED


def command(main: Callable[..., int]) -> Callable[..., int]:
    """Wrap a CLI ``main(argv) -> int`` so that every error ends as one line and the right status."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs) -> int:
        _watch_sigint()
        _sigint_seen.clear()
        try:
            return main(*args, **kwargs)
        except SystemExit as exc:  # argparse: --help, or its one-line refusal already printed
            return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else EXIT_FAILURE)
        except KeyboardInterrupt as exc:  # a command may say what it kept (``KeyboardInterrupt(message)``)
            return _interrupted(_first_line(str(exc)))
        except Exception as exc:  # noqa: BLE001 - the one place where errors become exit statuses
            if _sigint_seen.is_set():  # a Ctrl-C that native code reported as an error of its own
                return _interrupted("")
            if os.environ.get(TRACEBACK_ENV):
                raise
            status, message = describe(exc)
            print(f"error: {message}", file=sys.stderr, flush=True)
            return status

    return wrapper


_program: list[str] = []  # the name a subcommand runs under (``splade-anserini encode``), innermost last


@contextlib.contextmanager
def program(name: str) -> Iterator[None]:
    """Within this block every :class:`ArgumentParser` names itself ``name`` (in usage and errors)."""
    _program.append(name)
    try:
        yield
    finally:
        _program.pop()


def _shown_default(default) -> bool:
    """Whether ``--help`` should print ``(default: X)``: not for an absent or empty value."""
    return default is not None and default is not argparse.SUPPRESS and not (
        isinstance(default, (str, list, tuple, dict, set)) and not default)


_EMPTY_DEFAULT = re.compile(r"\s*\(default: (?:None)?\)|^default: (?:None)?$")


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """``--help`` ends each option's line with its default, except when the default is empty, a flag's
    ``False``, or the help text already names it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        # a help text that spells out an empty default itself (``(default: )``) loses it
        text = _EMPTY_DEFAULT.sub("", action.help or "")
        if "default" in text or not action.option_strings or not _shown_default(action.default):
            return text
        if action.nargs == 0 and isinstance(action.default, bool):  # store_true/false: the flag says it
            return text
        return f"{text} (default: %(default)s)" if text else "default: %(default)s"


class ParsedOnly(BaseException):
    """Raised by :meth:`ArgumentParser.parse_args` inside :func:`parse_only`: the parsed arguments,
    before the command does any work (a BaseException, so that :func:`command` lets it through)."""

    def __init__(self, namespace: argparse.Namespace, parser: argparse.ArgumentParser):
        super().__init__(parser.prog)
        self.namespace, self.parser = namespace, parser


_parse_only: list[bool] = []


@contextlib.contextmanager
def parse_only() -> Iterator[None]:
    """Within this block a command's ``parse_args`` raises :class:`ParsedOnly` once its arguments parse:
    ``main(argv)`` checks the flags and values of a command line without running it (the docs test)."""
    _parse_only.append(True)
    try:
        yield
    finally:
        _parse_only.pop()


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the one-line refusal of every other error (usage on ``--help`` only), and every
    non-empty default shown by ``--help``."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", DefaultsHelpFormatter)
        if _program:
            kwargs["prog"] = _program[-1]
        elif "prog" not in kwargs:
            spec = getattr(sys.modules.get("__main__"), "__spec__", None)
            if spec is not None and spec.name.startswith("splade_anserini"):
                kwargs["prog"] = f"python -m {spec.name.removesuffix('.__main__')}"
        super().__init__(*args, **kwargs)

    def add_argument(self, *args, **kwargs):
        # argparse shows no help line (so no default) for an option without help text
        if kwargs.get("help") is None and args and str(args[0]).startswith("-") and kwargs.get("action") is None \
                and _shown_default(kwargs.get("default")):
            kwargs["help"] = "default: %(default)s"
        return super().add_argument(*args, **kwargs)

    def parse_args(self, args=None, namespace=None):
        parsed = super().parse_args(args, namespace)
        if _parse_only:
            raise ParsedOnly(parsed, self)
        return parsed

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"error: {message} (see {self.prog} --help)\n")


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def check_positive(**values: int | None) -> None:
    """Refuse a count below 1 (``threads=0``) before any work, named as its option (``--threads``)."""
    from splade_anserini.conversion.errors import UsageError

    for name, value in values.items():
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
