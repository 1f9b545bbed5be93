"""The two ways a job can fail, as the consumer needs to tell them apart.

``PermanentError``: retrying cannot help (not a video, too big, unsupported). The job ends with
a failed event carrying ``reason``, written for people, and is not retried.
``RetryableError``: something outside the input failed (S3, broker, network, a killed
process); the job is retried with backoff up to ``worker.max_attempts``.
"""

from __future__ import annotations


class JobError(Exception):
    """Base class; ``str(error)`` is the human-readable reason."""


class PermanentError(JobError):
    pass


class RetryableError(JobError):
    pass
