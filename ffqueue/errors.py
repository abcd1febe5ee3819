"""The one error hierarchy of ffqueue.

Library errors (SQLAlchemy, kombu, numpy I/O) are translated into these at the
boundary, so the CLI can print one line and exit non-zero instead of a traceback.
"""


class FFQueueError(Exception):
    """Base of every error ffqueue raises on purpose."""


class ConfigError(FFQueueError):
    """Raised when a setting is malformed or unsafe for the chosen mode."""


class DataError(FFQueueError):
    """Raised when a data file or mix is missing, malformed or differs from its recorded hash."""


class SpecError(FFQueueError):
    """Raised when an architecture spec or preset is invalid."""


class SweepError(FFQueueError):
    """Raised when a sweep definition is invalid or names something that does not exist."""


class NotFoundError(FFQueueError):
    """Raised when a sweep, run or architecture asked for is not in the database."""


class ServiceUnavailable(FFQueueError):
    """Raised when the database or the broker cannot be reached."""


class TrainingError(FFQueueError):
    """Raised when a run fails for a reason that retrying will not fix (e.g. NaN loss)."""


class RunRetry(FFQueueError):
    """Raised when a run failed in a way that may pass and was queued again for a retry."""
