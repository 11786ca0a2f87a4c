"""store-corpus and search-corpus: a corpus stored in Lance, BM25 built by streaming, hits read by row."""
import shutil

from core.cli.main import main
from core.data.catalog import open_dataset
from core.data.corpus_store import store_folder
from core.index.lexical import open_lexical_index
from core.workspace import Workspace


def cli(capsys, workspace, *args):
    code = main(["--workspace", str(workspace.root), "--data-dir", str(workspace.data_dir), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def listed_ids(out: str) -> list[str]:
    return [line.split()[2] for line in out.splitlines()[1:] if line.strip()]


def test_store_corpus_then_search_corpus_answers_as_the_loaded_dataset(capsys, workspace):
    code, out, _ = cli(capsys, workspace, "store-corpus", "--dataset", "cosqa-mini")
    assert code == 0 and "corpus store for cosqa-mini: written" in out and "BM25 index (code) for cosqa-mini: built" in out
    dataset = open_dataset(workspace, "cosqa-mini")
    query = dataset.queries[0].text
    code, out, _ = cli(capsys, workspace, "search-corpus", "--dataset", "cosqa-mini", "-k", "5", query)
    assert code == 0 and "5 results" in out.splitlines()[0]
    index, report = open_lexical_index(workspace, dataset, "code")  # the loaded dataset finds the same index
    assert report.reused
    hits = index.search(query, 5)
    assert set(listed_ids(out)) == {dataset.documents[row].id for row in hits.rows}
    best = dataset.document(listed_ids(out)[0])
    assert best.full_text.replace("\n", " ")[:60] in out  # the text shown was read from the store
    code, out, _ = cli(capsys, workspace, "store-corpus", "--dataset", "cosqa-mini")
    assert code == 0 and "reused (300 documents)" in out and "for cosqa-mini: reused" in out


def broken_copy(mini_data_dir, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(mini_data_dir / "cosqa-mini", data / "broken")
    with (data / "broken" / "corpus.jsonl").open("a", encoding="utf-8") as corpus:
        corpus.write('{"_id": "cut", "text": \n')
    return Workspace.open(tmp_path / "ws", data)


def test_malformed_lines_are_skipped_with_a_warning_or_refused_with_strict(capsys, tmp_path, mini_data_dir):
    workspace = broken_copy(mini_data_dir, tmp_path)
    code, out, err = cli(capsys, workspace, "store-corpus", "--dataset", "broken", "--strict")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "bad JSON" in err and "nothing was stored" in err
    code, out, err = cli(capsys, workspace, "store-corpus", "--dataset", "broken")
    assert code == 0 and "warning: skipped corpus.jsonl:301: bad JSON" in err
    assert "300 documents stored" in out


def test_missing_dataset_or_corpus_exits_2_with_what_is_missing(capsys, tmp_path, mini_data_dir):
    workspace = broken_copy(mini_data_dir, tmp_path)
    code, _, err = cli(capsys, workspace, "search-corpus", "--dataset", "no-such-set", "x")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "No dataset named 'no-such-set'" in err
    (workspace.data_dir / "broken" / "corpus.jsonl").unlink()
    code, _, err = cli(capsys, workspace, "store-corpus", "--dataset", "broken")
    assert code == 2 and err.startswith("error: broken is not a BEIR dataset: missing corpus.jsonl.")  # the catalog's message


def test_search_corpus_rebuilds_a_damaged_store_rather_than_serving_it(capsys, workspace):
    assert cli(capsys, workspace, "store-corpus", "--dataset", "cosqa-mini")[0] == 0
    query = open_dataset(workspace, "cosqa-mini").queries[1].text
    before = cli(capsys, workspace, "search-corpus", "--dataset", "cosqa-mini", query)[1]
    data_file = next((store_folder(workspace, "cosqa-mini") / "corpus.lance" / "data").glob("*.lance"))
    data_file.write_bytes(data_file.read_bytes()[: data_file.stat().st_size // 2])  # truncated
    code, after, _ = cli(capsys, workspace, "search-corpus", "--dataset", "cosqa-mini", query)
    assert code == 0 and listed_ids(after) == listed_ids(before)
    code, out, _ = cli(capsys, workspace, "store-corpus", "--dataset", "cosqa-mini")
    assert "corpus store for cosqa-mini: reused" in out  # the rebuilt store now passes its check
