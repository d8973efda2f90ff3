"""User-facing errors: one clear line naming the file, line, key or condition at fault.

The CLI prints an `EmlabError` as one line (no traceback unless `--debug`); anything else is a bug.
"""


class EmlabError(Exception):
    """An error the user can fix (bad input, missing file, unreachable endpoint)."""


class ConfigError(EmlabError):
    """A config file has an unknown key, a wrong type or a bad value."""


class DataError(EmlabError):
    """A dataset file is missing or malformed."""


class ModelSpecError(EmlabError):
    """A model spec string names no known backend or cannot be resolved."""


class EndpointError(EmlabError):
    """A remote model endpoint failed (after retries) or could not be reached."""


class RunFailedError(EmlabError):
    """A run finished (its outputs are written) but its numbers cannot be trusted: the judge failed on most answers."""
