"""Errors a user can cause, each with a message that says what to do next.

Pages show them with ``st.error``; the CLI prints the message and exits non-zero.
"""
from __future__ import annotations

from dataclasses import dataclass


class WorkbenchError(Exception):
    """Base class for every error the workbench reports to a user."""


@dataclass(frozen=True)
class DatasetProblem:
    """One defect found while reading a dataset, located by file and line (1-based, 0 = whole file)."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"


class DatasetError(WorkbenchError):
    """A dataset could not be loaded; ``problems`` lists every defect found."""

    def __init__(self, message: str, problems: tuple[DatasetProblem, ...] = ()):
        self.problems = tuple(problems)
        shown = "\n".join(f"  - {p}" for p in self.problems[:20])
        more = f"\n  ... and {len(self.problems) - 20} more" if len(self.problems) > 20 else ""
        super().__init__(f"{message}\n{shown}{more}" if shown else message)


class UnsafeArchiveError(DatasetError):
    """An uploaded archive tried to escape its folder, held links, or unpacked too large."""


class ModelUnavailableError(WorkbenchError):
    """A model cannot be loaded here (offline hub name, missing folder, missing package)."""


class IndexCorruptError(WorkbenchError):
    """A stored index is damaged; the message names the command that rebuilds it."""


class ProfileError(WorkbenchError):
    """A retriever profile is unknown or its parameters are invalid."""


class RunNotFoundError(WorkbenchError):
    """A saved run id does not exist in the workspace."""


class RunCorruptError(WorkbenchError):
    """A saved run file failed its checksum or cannot be read; it is reported, never scored."""


class OptionError(WorkbenchError, ValueError):
    """A number given as an option or URL parameter lies outside what it can mean (``--depth -5``)."""


class OutputError(WorkbenchError):
    """A file could not be written where the user asked (a missing folder, no permission)."""


class QueryError(WorkbenchError):
    """A query cannot be searched as given (for example, it is empty)."""


class MetricError(WorkbenchError, ValueError):
    """A metric name, cutoff or slicing request cannot be evaluated as given."""


class ClusterError(WorkbenchError):
    """A distributed (Ray) job cannot start or finish: Ray missing, cluster unreachable, too few CPUs, workers dying."""


class VectorFileError(WorkbenchError):
    """A file of vectors brought from elsewhere does not match the corpus or the model (count, ids, dimension, values)."""
