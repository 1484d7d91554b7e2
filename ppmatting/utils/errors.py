"""User-facing errors: one line that names the file (or config key) and the problem.

Tools catch :class:`PPMattingError` in :func:`run_cli` and print ``error: <message>`` instead of a
traceback from deep inside Paddle or OpenCV; exit code 2. Anything else is a bug and keeps its
traceback.
"""
import functools
import sys


class PPMattingError(Exception):
    """An error whose message alone tells the user what to fix."""


class ConfigError(PPMattingError):
    """A config file, key path or value is wrong."""


class InputError(PPMattingError):
    """An input file (image, alpha, trimap, list, checkpoint) is missing or unusable."""


class OutputError(PPMattingError, OSError):
    """An output folder or file cannot be made or written (a file where a folder is expected,
    no permission, a read-only or full disk). Also an ``OSError``, so code that cleans up after
    failed writes (``except OSError``) still sees it."""


def run_cli(main):
    """Decorator for a tool's ``main``: user errors become one line on stderr and exit code 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except PPMattingError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(130)

    return wrapper
