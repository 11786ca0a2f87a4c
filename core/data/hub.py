"""Fetch Nano benchmarks (NanoCoIR, NanoCodeSearchNet) from the Hugging Face hub into BEIR folders.

The hub repos follow the NanoBEIR convention: parquet files for ``corpus`` (``_id``, ``text``,
maybe ``title``), ``queries`` (``_id``, ``text``) and ``qrels`` (``query-id``, ``corpus-id``, maybe
``score``), one file set per subset, found either in kind folders (``corpus/<Subset>-00000-of-00001.parquet``)
or in subset folders (``<Subset>/corpus/...parquet``). A downloaded subset is written once to the
datasets folder and read from there afterwards, so it keeps working offline.
"""
from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from core.data.datasets import DEFAULT_SPLIT, Dataset, Document, Qrels, Query, is_beir_folder, validate_name, write_dataset
from core.errors import DatasetError, DatasetProblem
from core.workspace import DATA_DIR_ENV, slug

NANOCOIR_REPO = "hakari-bench/NanoCoIR"
NANOCOIR_SUBSETS = ("NanoApps", "NanoCodeFeedbackMT", "NanoCodeFeedbackST", "NanoCodeSearchNet", "NanoCodeSearchNetCCR",
                    "NanoCodeTransOceanContest", "NanoCodeTransOceanDL", "NanoCosQA", "NanoStackOverflowQA",
                    "NanoSyntheticText2SQL")
NANOCODESEARCHNET_REPO = "hotchpotch/NanoCodeSearchNet"
NANOCODESEARCHNET_SUBSETS = tuple(f"NanoCodeSearchNet{lang}" for lang in ("Go", "Java", "JavaScript", "PHP", "Python", "Ruby"))
DEFAULT_TIMEOUT_S = 10.0

_KINDS = {"corpus": ("corpus",), "queries": ("queries",), "qrels": ("qrels", "relevance")}
_KIND_FOLDERS = {alias for aliases in _KINDS.values() for alias in aliases} | {"data"}
_SHARD_SUFFIX = re.compile(r"-\d{5}-of-\d{5}(-[0-9a-f]+)?$")
_CSN_LANGUAGE = re.compile(r"^NanoCodeSearchNet(Go|Java|JavaScript|PHP|Python|Ruby)$", re.IGNORECASE)
_ID_COLUMNS = ("_id", "id", "corpus-id", "corpus_id", "doc_id", "docid", "query-id", "query_id", "qid")
_TEXT_COLUMNS = ("text", "content", "contents")
_QRELS_QUERY_COLUMNS = ("query-id", "query_id", "qid", "query")
_QRELS_DOC_COLUMNS = ("corpus-id", "corpus_id", "doc-id", "doc_id", "docid", "pid")
_QRELS_SCORE_COLUMNS = ("score", "relevance", "label", "grade")
_TRUE = {"1", "true", "yes", "on"}
_OFFLINE_ADVICE = ("download the dataset on a connected machine, then import its zip here or point the data "
                   f"directory ({DATA_DIR_ENV}) at its folder.")


@dataclass(frozen=True)
class ParquetFiles:
    """The parquet files (repo-relative paths, shards in order) that make up one subset."""

    corpus: tuple[str, ...]
    queries: tuple[str, ...]
    qrels: tuple[str, ...]

    @property
    def all(self) -> tuple[str, ...]:
        return self.corpus + self.queries + self.qrels


def default_dataset_name(repo_id: str, subset: str | None) -> str:
    """The folder name a download gets: the subset, else the repo's name."""
    return validate_name(slug(subset or repo_id.split("/")[-1], 100))


def subset_language(subset: str | None) -> str | None:
    """The programming language a per-language subset holds (``NanoCodeSearchNetPython`` -> ``python``)."""
    match = _CSN_LANGUAGE.match(subset or "")
    return match.group(1).lower() if match else None


def available_subsets(paths: Iterable[str]) -> list[str]:
    """Subset names found among a repo's parquet paths (subset folders or split-named shards)."""
    return sorted({_subset_label(path) for path in paths if path.endswith(".parquet") and _kind_of(path) == "corpus"})


def find_parquet_files(paths: Iterable[str], subset: str | None, repo_label: str = "the repo") -> ParquetFiles:
    """Pick the corpus, queries and qrels parquet files of ``subset`` from a repo's file list."""
    parquet = sorted(path.replace("\\", "/") for path in paths if path.endswith(".parquet"))
    picked = {kind: _pick_kind(parquet, kind, subset, repo_label) for kind in _KINDS}
    return ParquetFiles(picked["corpus"], picked["queries"], picked["qrels"])


def beir_from_parquet(corpus_parquet: str | os.PathLike | Sequence[str | os.PathLike],
                      queries_parquet: str | os.PathLike | Sequence[str | os.PathLike],
                      qrels_parquet: str | os.PathLike | Sequence[str | os.PathLike],
                      name: str, language: str | None = None) -> Dataset:
    """Build a Dataset from NanoBEIR-style parquet files (each argument one file or its shards).

    Column names may vary (``_id``/``id``/``corpus-id``, ``query-id``/``query_id``), numeric ids become
    strings and a missing qrels score means 1. Bad rows are skipped and listed in ``problems``; a
    result with no documents or no judged query is refused.
    """
    problems: list[DatasetProblem] = []
    corpus_paths, queries_paths, qrels_paths = (_as_paths(p) for p in (corpus_parquet, queries_parquet, qrels_parquet))
    documents = _read_records(corpus_paths, "document", language or "", problems)
    queries = _read_records(queries_paths, "query", language or "", problems)
    judgments = _read_qrels(qrels_paths, {d.id for d in documents}, {q.id for q in queries}, problems)
    label = validate_name(name)
    if not documents:
        raise DatasetError(f"{label}: the corpus parquet has no usable documents.", tuple(problems))
    if not any(grade > 0 for grades in judgments.values() for grade in grades.values()):
        raise DatasetError(f"{label}: no query has a relevant document in the qrels parquet.", tuple(problems))
    return Dataset(label, tuple(documents), tuple(queries), Qrels(judgments), DEFAULT_SPLIT,
                   str(corpus_paths[0]), tuple(problems))


def download_nano_dataset(repo_id: str, subset: str | None, datasets_dir: str | os.PathLike, name: str | None = None,
                          *, source_dir: str | os.PathLike | None = None, overwrite: bool = False,
                          endpoint: str | None = None, revision: str | None = None,
                          timeout_s: float = DEFAULT_TIMEOUT_S, reserved: Mapping[str, str] | None = None) -> Path:
    """Fetch one subset of a Nano benchmark and write it as ``datasets_dir/<name>`` in BEIR layout.

    A folder already downloaded from the same repo and subset is returned without contacting the hub.
    ``source_dir`` reads a local copy of the repo (``hf download <repo> --repo-type dataset --local-dir``)
    instead of the network; ``endpoint`` is a hub mirror. Offline or failed downloads raise
    DatasetError with one line saying what to do instead. ``reserved`` maps names other sources hold
    (the data directory, the built-in set) to where: such a name is refused, since the catalog would
    keep opening the other dataset.
    """
    datasets_dir = Path(datasets_dir)
    dataset_name = validate_name(name) if name else default_dataset_name(repo_id, subset)
    if reserved and dataset_name in reserved:
        raise DatasetError(f"A dataset named {dataset_name!r} already exists ({reserved[dataset_name]}); "
                           "download under another name with --name (the page's Name field).")
    target = datasets_dir / dataset_name
    if target.exists() and not overwrite:
        if _downloaded_from(target, repo_id, subset):
            return target
        raise DatasetError(f"A dataset named {dataset_name!r} already exists and did not come from {_label(repo_id, subset)}; "
                           "choose another name or allow overwriting it.")
    datasets_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".download-{dataset_name}-", dir=datasets_dir))
    try:
        if source_dir is not None:
            root = Path(source_dir)
            if not root.is_dir():
                raise DatasetError(f"Local copy {str(root)!r} of {repo_id} does not exist.")
            files = find_parquet_files(_local_parquet_paths(root), subset, str(root))
            fetched_revision = None
        else:
            root = staging / "repo"
            files, fetched_revision = _fetch_from_hub(repo_id, subset, root, endpoint, revision, timeout_s)
        dataset = beir_from_parquet([root / p for p in files.corpus], [root / p for p in files.queries],
                                    [root / p for p in files.qrels], dataset_name, subset_language(subset))
        meta = {"source": "huggingface" if source_dir is None else "local copy of huggingface repo",
                "repo": repo_id, "subset": subset, "revision": fetched_revision, "files": list(files.all),
                "skipped_rows": len(dataset.problems), "problems": [str(p) for p in dataset.problems[:50]]}
        return write_dataset(dataset, target, meta)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def hub_is_offline() -> bool:
    """True when HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set now, not only when huggingface_hub was imported."""
    from huggingface_hub import constants

    from_env = any(os.environ.get(var, "").strip().lower() in _TRUE for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return from_env or bool(constants.HF_HUB_OFFLINE)


def _fetch_from_hub(repo_id: str, subset: str | None, local_dir: Path, endpoint: str | None, revision: str | None,
                    timeout_s: float) -> tuple[ParquetFiles, str | None]:
    """List the repo (bounded by ``timeout_s``), pick the subset's parquet files and download only those."""
    if hub_is_offline():
        raise DatasetError(_offline_mode_message(_label(repo_id, subset)))
    from huggingface_hub import HfApi, snapshot_download

    with _hub_errors(repo_id, subset, endpoint):
        info = HfApi(endpoint=endpoint).dataset_info(repo_id, revision=revision, timeout=timeout_s)
        paths = [sibling.rfilename for sibling in info.siblings or []]
        files = find_parquet_files(paths, subset, repo_id)
        snapshot_download(repo_id, repo_type="dataset", revision=info.sha or revision, allow_patterns=list(files.all),
                          local_dir=local_dir, cache_dir=local_dir / ".cache", etag_timeout=timeout_s, endpoint=endpoint)
    return files, info.sha


@contextmanager
def _hub_errors(repo_id: str, subset: str | None, endpoint: str | None) -> Iterator[None]:
    """Turn every way the hub can fail into one DatasetError line, so no traceback reaches the user."""
    try:
        yield
    except DatasetError:
        raise
    except Exception as error:
        message = _failure_message(error, _label(repo_id, subset), endpoint or "the Hugging Face hub")
        if message is None:
            raise
        raise DatasetError(message) from error


def _failure_message(error: Exception, what: str, endpoint: str) -> str | None:
    """The one-line explanation of a hub failure; None for errors that are bugs, not circumstances."""
    from huggingface_hub.errors import (GatedRepoError, HfHubHTTPError, OfflineModeIsEnabled,
                                        RepositoryNotFoundError, RevisionNotFoundError)

    cause = _first_line(error)
    if isinstance(error, OfflineModeIsEnabled):
        return _offline_mode_message(what)
    if isinstance(error, GatedRepoError):
        return (f"Could not download {what}: the repo is gated. Log in with `hf auth login` and accept its terms on "
                "the dataset page, then try again.")
    if isinstance(error, RepositoryNotFoundError) or getattr(getattr(error, "response", None), "status_code", None) == 404:
        return f"Could not download {what}: no such dataset repo on the hub (or it is private). Check the repo id."
    if isinstance(error, RevisionNotFoundError):
        return f"Could not download {what}: the requested revision does not exist. Leave the revision empty for the latest."
    if isinstance(error, HfHubHTTPError):
        return f"Could not download {what}: the hub answered with an error ({cause}). Try again later, or {_OFFLINE_ADVICE}"
    if isinstance(error, _network_errors()):
        return (f"Could not download {what} from {endpoint}: this machine looks offline "
                f"({type(error).__name__}: {cause}). Check the connection, or {_OFFLINE_ADVICE}")
    if isinstance(error, OSError):
        return f"Could not download {what}: {type(error).__name__}: {cause}. Check free disk space and try again."
    if isinstance(error, ValueError):
        return f"Could not download {what}: {cause}. Check the repo id and subset."
    return None


def _offline_mode_message(what: str) -> str:
    return (f"Not downloading {what}: offline mode is on (HF_HUB_OFFLINE is set), so the Hugging Face hub is not "
            f"contacted. Unset HF_HUB_OFFLINE, or {_OFFLINE_ADVICE}")


def _network_errors() -> tuple[type[BaseException], ...]:
    """Connection and timeout errors of whichever HTTP client huggingface_hub uses (httpx2 now, httpx before)."""
    from huggingface_hub.errors import LocalEntryNotFoundError

    found: list[type[BaseException]] = [LocalEntryNotFoundError, ConnectionError, TimeoutError, socket.gaierror]
    for module_name in ("httpx2", "httpx"):
        try:
            found.append(importlib.import_module(module_name).TransportError)
        except (ImportError, AttributeError):
            continue
    try:
        from huggingface_hub.errors import XetDownloadError

        found.append(XetDownloadError)
    except ImportError:
        pass
    return tuple(found)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    line = text[0].rstrip(".") if text else type(error).__name__
    return line if len(line) <= 160 else line[:157] + "..."


def _label(repo_id: str, subset: str | None) -> str:
    return f"{repo_id} ({subset})" if subset else repo_id


def _downloaded_from(folder: Path, repo_id: str, subset: str | None) -> bool:
    """Whether ``folder`` is a complete earlier download of this repo and subset."""
    if not is_beir_folder(folder):
        return False
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):  # RecursionError: JSON nested past Python's limit
        return False
    return isinstance(meta, dict) and meta.get("repo") == repo_id and meta.get("subset") == subset


def _local_parquet_paths(root: Path) -> list[str]:
    return [path.relative_to(root).as_posix() for path in root.rglob("*.parquet")
            if not any(part.startswith(".") for part in path.relative_to(root).parts)]


def _split_name(path: str) -> str:
    """A shard's split name: ``corpus/NanoX-00000-of-00001.parquet`` -> ``NanoX``."""
    return _SHARD_SUFFIX.sub("", PurePosixPath(path).stem)


def _kind_of(path: str) -> str | None:
    """Which table a parquet path holds, from a kind folder or a kind-named file."""
    folders = [part.lower() for part in PurePosixPath(path).parts[:-1]]
    stem = _split_name(path).lower()
    for kind, aliases in _KINDS.items():
        if any(alias in folders or stem == alias for alias in aliases):
            return kind
    return None


def _subset_label(path: str) -> str:
    """The subset a path belongs to: its first non-kind folder, else its split name."""
    for part in PurePosixPath(path).parts[:-1]:
        if part.lower() not in _KIND_FOLDERS:
            return part
    stem = _split_name(path)
    return stem if stem.lower() not in _KIND_FOLDERS else "(default)"


def _in_subset(path: str, subset: str) -> bool:
    wanted = subset.casefold()
    folders = [part.casefold() for part in PurePosixPath(path).parts[:-1]]
    return wanted in folders or _split_name(path).casefold() == wanted


def _pick_kind(parquet: Sequence[str], kind: str, subset: str | None, repo_label: str) -> tuple[str, ...]:
    """The shards of one table; refuses a missing table and a choice between several subsets."""
    candidates = [path for path in parquet if _kind_of(path) == kind]
    if subset is not None:
        candidates = [path for path in candidates if _in_subset(path, subset)]
    if not candidates:
        subsets = available_subsets(parquet)
        where = f" for subset {subset!r}" if subset else ""
        known = f" Subsets found: {', '.join(subsets)}." if subsets else " It holds no corpus/queries/qrels parquet files."
        raise DatasetError(f"{repo_label} has no {kind} parquet file{where}.{known}")
    groups: dict[tuple[str, str], list[str]] = {}
    for path in candidates:
        groups.setdefault((str(PurePosixPath(path).parent), _split_name(path)), []).append(path)
    if len(groups) > 1 and subset is not None:
        # The same subset may be stored twice (kind folders and a subset folder): prefer its own folder.
        own_folder = {key: paths for key, paths in groups.items() if subset.casefold() in key[0].casefold().split("/")}
        groups = own_folder or groups
    if len(groups) > 1:
        labels = sorted({_subset_label(path) for path in candidates})
        if subset is None:
            raise DatasetError(f"{repo_label} holds several subsets ({', '.join(labels)}); pick one.")
        raise DatasetError(f"{repo_label} has several {kind} tables for subset {subset!r} "
                           f"({', '.join('/'.join(key) for key in sorted(groups))}); download the files by hand.")
    return tuple(sorted(next(iter(groups.values()))))


def _as_paths(value: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    if isinstance(value, (str, os.PathLike)):
        return [Path(value)]
    return [Path(item) for item in value]


def _file_label(path: Path) -> str:
    """``corpus/NanoX-00000-of-00001.parquet``: shards of different tables share file names."""
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name


def _read_table(path: Path) -> dict[str, list]:
    """A parquet file's columns as Python lists."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path).to_pydict()
    except (pa.ArrowException, OSError) as exc:
        raise DatasetError(f"{_file_label(path)} is not a readable parquet file ({_first_line(exc)}); download it again.") from None


def _column(table: dict[str, list], names: Sequence[str], path: Path, role: str, required: bool = True) -> list | None:
    for name in names:
        if name in table:
            return table[name]
    if required:
        raise DatasetError(f"{_file_label(path)} has no {role} column (looked for {', '.join(names)}; it has {', '.join(table) or 'none'}).")
    return None


def _as_id(value: object) -> str | None:
    """Ids as strings: numeric ids (5 or 5.0) become '5'; empty or missing ids are None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip() if isinstance(value, (str, int, float)) else None
    return text or None


def _read_records(paths: Sequence[Path], kind: str, language: str, problems: list[DatasetProblem]) -> list:
    records: list = []
    seen: set[str] = set()
    for path in paths:
        table = _read_table(path)
        ids = _column(table, _ID_COLUMNS, path, "id")
        texts = _column(table, _TEXT_COLUMNS, path, "text")
        titles = _column(table, ("title",), path, "title", required=False) if kind == "document" else None
        languages = _column(table, ("language", "lang"), path, "language", required=False)
        for row, (raw_id, text) in enumerate(zip(ids, texts)):
            record_id = _as_id(raw_id)
            title = titles[row] if titles is not None and isinstance(titles[row], str) else ""
            if record_id is None:
                problems.append(DatasetProblem(_file_label(path), row + 1, "missing or empty id"))
                continue
            if record_id in seen:
                problems.append(DatasetProblem(_file_label(path), row + 1, f"duplicate id {record_id!r}"))
                continue
            if not isinstance(text, str) or not (text.strip() or title.strip()):
                problems.append(DatasetProblem(_file_label(path), row + 1, f"empty or missing text for id {record_id!r}"))
                continue
            seen.add(record_id)
            row_language = languages[row] if languages is not None and isinstance(languages[row], str) else language
            text = text.replace("\x00", "")
            records.append(Document(record_id, text, title, row_language) if kind == "document"
                           else Query(record_id, text, row_language))
    return records


def _read_qrels(paths: Sequence[Path], doc_ids: set[str], query_ids: set[str],
                problems: list[DatasetProblem]) -> dict[str, dict[str, int]]:
    judgments: dict[str, dict[str, int]] = {}
    for path in paths:
        table = _read_table(path)
        query_column = _column(table, _QRELS_QUERY_COLUMNS, path, "query id")
        doc_column = _column(table, _QRELS_DOC_COLUMNS, path, "corpus id")
        scores = _column(table, _QRELS_SCORE_COLUMNS, path, "score", required=False)
        for row, (raw_query, raw_doc) in enumerate(zip(query_column, doc_column)):
            query_id, doc_id = _as_id(raw_query), _as_id(raw_doc)
            score = 1 if scores is None or scores[row] is None else scores[row]
            try:
                grade = int(float(score))
            except (TypeError, ValueError):
                problems.append(DatasetProblem(_file_label(path), row + 1, f"score {score!r} is not a number"))
                continue
            if query_id not in query_ids:
                problems.append(DatasetProblem(_file_label(path), row + 1, f"unknown query id {query_id!r}"))
                continue
            if doc_id not in doc_ids:
                problems.append(DatasetProblem(_file_label(path), row + 1, f"unknown corpus id {doc_id!r}"))
                continue
            judgments.setdefault(query_id, {})[doc_id] = grade
    return judgments
