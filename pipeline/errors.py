"""The runner's two user errors; each message is one line, printed without a traceback."""


class ConfigError(ValueError):
    """A config that cannot be run: names the key, the bad value and what is allowed."""


class RunError(RuntimeError):
    """A run that cannot go on for a reason the user can fix (a busy or unwritable folder, a missing stage...)."""
