"""Fine-tuning: leakage-free training pairs, hard-negative mining with consistency filtering, a tiny real training run.

Sizes are cut to what two shared CPU cores do in seconds: the training run is 8 examples of 16 tokens,
enough to move the weights and exercise saving, loading and the command line, not to learn anything.
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from core.data.datasets import Dataset, Document, Qrels, Query
from core.index.encoders import load_encoder, resolve_model
from core.errors import WorkbenchError
from core.cli import training as training_commands
from core.training.finetune import (
    EXAMPLES_FILE,
    INFO_FILE,
    TrainingExample,
    TrainingInterrupted,
    TrainingStep,
    checkpoint_dir,
    example_batches,
    _filled,
    build_training_set,
    finetune,
    is_near_duplicate,
    load_prepared,
    mine_hard_negatives,
    package_roots,
    read_finetune_info,
    save_prepared,
)
from core.training.leakage import audit
from core.retrieval.profiles import DenseProfile, load_profiles
from core.data.source_benchmark import build_benchmark, extract_functions, functions_in_source
from core.workspace import Workspace

CLICK_FILES = ("termui.py", "utils.py", "formatting.py", "decorators.py")


@pytest.fixture(scope="module")
def click_functions():
    """Sixty documented functions of the installed click package (a seeded sample)."""
    functions = extract_functions(package_roots(["click"])[0], ["python"])
    return random.Random(0).sample(functions, 60)


def with_document(dataset: Dataset, document: Document) -> Dataset:
    return replace(dataset, documents=dataset.documents + (document,))


def first_judged(dataset: Dataset) -> tuple[str, Document]:
    query = dataset.judged_queries[0]
    return query.id, dataset.document(dataset.qrels.positives(query.id)[0])


# ---- consistency filter -------------------------------------------------------------------------------

def test_near_duplicate_means_same_normalised_text_or_high_word_jaccard():
    assert is_near_duplicate("Return the Width!", "return the width")
    assert is_near_duplicate("def f(a, b):\n    return a + b  # sum", "def f(a, b):\n    return a + b")
    assert not is_near_duplicate("Open a file for reading.", "Close the socket and free its buffer.")


def test_mined_negatives_are_never_the_positive_and_skip_an_injected_near_duplicate(click_functions, workspace):
    dataset = build_benchmark(click_functions, "click-doc2code", "doc2code", n_queries=60)
    query_id, positive = first_judged(dataset)
    copy = Document("near-copy", positive.text + "\n# a copy with one comment added")
    dataset = with_document(dataset, copy)

    examples = mine_hard_negatives(dataset, workspace, n_negatives=3, method="bm25")
    assert len(examples) == 60
    for example in examples:
        assert example.positive not in example.negatives
        assert len(set(example.negatives)) == len(example.negatives) <= 3  # BM25 finds fewer for a query of rare words
    assert sum(len(e.negatives) == 3 for e in examples) > 40
    first = next(e for e in examples if e.query == dataset.query(query_id).text)
    assert copy.text not in first.negatives

    unfiltered = mine_hard_negatives(dataset, workspace, n_negatives=3, method="bm25", max_jaccard=1.01)
    assert copy.text in next(e for e in unfiltered if e.query == first.query).negatives  # the filter, not luck, kept it out


def test_skip_top_passes_over_the_highest_ranked_non_answers(click_functions, workspace):
    dataset = build_benchmark(click_functions, "click-doc2code", "doc2code", n_queries=60)
    top = mine_hard_negatives(dataset, workspace, n_negatives=3, method="bm25")
    skipped = mine_hard_negatives(dataset, workspace, n_negatives=3, method="bm25", skip_top=3)
    assert all(not set(a.negatives) & set(b.negatives) for a, b in zip(top, skipped) if len(b.negatives) == 3)


def test_dense_mining_drops_candidates_whose_cosine_to_the_positive_is_too_high(click_functions, workspace):
    full = build_benchmark(click_functions[:20], "click-code2doc", "code2doc", n_queries=20)
    dataset = full.subset([q.id for q in full.judged_queries[:3]])
    query_id, positive = first_judged(dataset)
    paraphrase = Document("paraphrase", positive.text.rstrip(".") + ", as described above.")
    dataset = with_document(dataset, paraphrase)
    query_text = dataset.query(query_id).text

    loose = mine_hard_negatives(dataset, workspace, 2, "dense", max_jaccard=1.01, max_cosine=1.01)
    assert paraphrase.text in next(e for e in loose if e.query == query_text).negatives
    strict = mine_hard_negatives(dataset, workspace, 2, "dense", max_jaccard=1.01, max_cosine=0.9)
    assert paraphrase.text not in next(e for e in strict if e.query == query_text).negatives


def test_unknown_mining_method_is_refused(click_functions, workspace):
    dataset = build_benchmark(click_functions, "click-doc2code", "doc2code", n_queries=10)
    with pytest.raises(WorkbenchError, match="mining method"):
        mine_hard_negatives(dataset, workspace, method="splade")


# ---- training data --------------------------------------------------------------------------------------

def leaky_tree(root: Path, csn_mini: Dataset) -> tuple[Path, str]:
    """Four click modules plus one file holding a function of the eval set; returns the tree and that code."""
    click = package_roots(["click"])[0]
    root.mkdir(parents=True)
    for name in CLICK_FILES:
        shutil.copy(click / name, root / name)
    leaked = next(q.text for q in csn_mini.judged_queries if functions_in_source(q.text, "python"))
    (root / "leaked.py").write_text(leaked + "\n", encoding="utf-8")
    return root, leaked


def test_training_set_drops_the_pairs_an_eval_set_repeats(tmp_path, csn_mini):
    tree, leaked = leaky_tree(tmp_path / "tree", csn_mini)
    before = build_training_set([tree], evals=())
    training = build_training_set([tree], evals=[csn_mini])

    assert len(training.dataset.queries) < len(before.dataset.queries)
    assert training.leakage[0].eval == "csn-mini" and training.leakage[0].dropped_train_queries >= 1
    assert audit(training.dataset, csn_mini).overlaps == ()
    body = leaked.split('"""')[-1].strip()
    assert not any(body in d.text for d in training.dataset.documents)  # not even left as a negative


def test_building_training_data_reports_progress_to_the_command_lines_tqdm_bars(tmp_path, workspace, csn_mini, capsys):
    """``finetune`` without ``--quiet`` passes ``tqdm_progress()``, a one-Step callback; it once got (stage, fraction) and crashed."""
    from core.progress import Step, tqdm_progress
    from core.training.queries import TemplateQueries

    tree, _ = leaky_tree(tmp_path / "tree", csn_mini)
    steps: list[Step] = []
    training = build_training_set([tree], evals=[csn_mini], queries=TemplateQueries(), workspace=workspace, progress=steps.append)
    assert training.dataset.judged_queries
    assert all(isinstance(step, Step) for step in steps)
    final = {step.stage: (step.done, step.total, step.unit) for step in steps}
    assert final["extracting functions"] == (1, 1, "source trees")
    assert final["generating queries (template)"][0] == final["generating queries (template)"][1] > 0
    assert final["auditing for leakage"] == (1, 1, "eval sets")

    build_training_set([tree], evals=[csn_mini], progress=tqdm_progress())  # the command line's own callback
    bars = capsys.readouterr().err
    assert "extracting functions" in bars and "auditing for leakage" in bars

    fractions: list[tuple[str, float]] = []  # the page's older (stage, fraction) form still works
    build_training_set([tree], evals=[csn_mini], progress=lambda stage, fraction: fractions.append((stage, fraction)))
    assert ("extracting functions", 1.0) in fractions and ("auditing for leakage", 1.0) in fractions


# ---- training ---------------------------------------------------------------------------------------------

def test_missing_negatives_are_filled_with_positives_from_outside_the_batch():
    examples = [TrainingExample(f"query {i}", f"answer {i}", ("hard",) if i == 0 else ()) for i in range(8)]
    positives = [e.positive for e in examples]
    batch = examples[:4]
    filled = _filled(batch, 2, positives, random.Random(1))
    assert all(len(e.negatives) == 2 for e in filled)
    assert filled[0].negatives[0] == "hard"
    inside = {e.positive for e in batch}
    assert all(n not in inside for e in filled for n in e.negatives)  # never another row's positive
    assert all(n in {"answer 4", "answer 5", "answer 6", "answer 7"} for e in filled[1:] for n in e.negatives)


def test_a_batch_holding_every_example_keeps_its_shortest_rows_negatives_instead_of_repeating_positives():
    examples = [TrainingExample(f"query {i}", f"answer {i}", ("hard",) if i == 0 else ()) for i in range(4)]
    filled = _filled(examples, 1, [e.positive for e in examples], random.Random(1))
    assert [e.negatives for e in filled] == [(), (), (), ()]


def test_batches_then_fill_work_for_fewer_examples_than_the_batch_size():
    """Formerly a random negative was another example's positive, so one batch of every example always clashed."""
    examples = [TrainingExample(f"query {i}", f"answer {i}", ("hard negative",) if i % 2 else ()) for i in range(20)]
    batches = example_batches(examples, 20)
    assert batches == [examples]
    assert [len(e.negatives) for e in _filled(batches[0], 1, [e.positive for e in examples], random.Random(0))] == [0] * 20


def test_batches_never_repeat_a_text_so_no_positive_is_scored_as_its_own_negative():
    examples = [TrainingExample(f"query {i}", f"answer {i}", (f"answer {(i + 1) % 12}",)) for i in range(12)]
    batches = example_batches(examples, 4)
    assert batches and all(len(batch) == 4 for batch in batches)
    for batch in batches:
        positives = [e.positive for e in batch]
        assert len(set(positives)) == len(positives)
        assert not {n for e in batch for n in e.negatives} & set(positives)
    assert len(example_batches(examples[:3], 4)) == 0  # too few for one full batch
    shared_negative = [TrainingExample(f"q{i}", f"a{i}", ("same negative",)) for i in range(4)]
    assert example_batches(shared_negative, 4) == [shared_negative]  # a negative mined twice harms no one


def test_finetune_refuses_alias_names_and_existing_models(workspace):
    examples = [TrainingExample(f"q{i}", f"a{i}") for i in range(4)]
    with pytest.raises(WorkbenchError, match="cannot name"):
        finetune(examples, workspace, output_name="minilm")
    (workspace.models_dir / "taken").mkdir()
    with pytest.raises(WorkbenchError, match="already exists"):
        finetune(examples, workspace, output_name="taken")
    with pytest.raises(WorkbenchError, match="at least two"):
        finetune(examples[:1], workspace, output_name="fresh")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, mini_data_dir, csn_mini):
    """The whole ``finetune`` command on a leaky tree: audit, mine, train 8 examples, save, add a profile."""
    workspace = Workspace.open(tmp_path_factory.mktemp("ft-workspace"), mini_data_dir)
    tree, leaked = leaky_tree(tmp_path_factory.mktemp("ft-tree") / "tree", csn_mini)
    parser = argparse.ArgumentParser()
    training_commands.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["finetune", "--from-tree", str(tree), "--output", "tiny-ft", "--audit-against", "csn-mini",
                              "--max-examples", "8", "--batch-size", "4", "--max-seq-length", "16", "--negatives", "1",
                              "--learning-rate", "1e-3", "--add-profile", "--quiet"])
    args.func(args, workspace)
    return workspace


def test_finetuned_model_loads_by_name_and_encodes_to_normalised_vectors(trained):
    assert resolve_model("tiny-ft", trained) == trained.models_dir / "tiny-ft"
    vectors = load_encoder("tiny-ft", trained).encode(["read a file line by line", "def read(path):\n    return open(path).read()"])
    assert vectors.shape == (2, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_finetuned_weights_differ_from_the_base_model(trained):
    from safetensors.numpy import load_file

    tuned = load_file(str(trained.models_dir / "tiny-ft" / "model.safetensors"))
    base = load_file(str(Path(resolve_model("minilm")) / "model.safetensors"))
    shared = [name for name in tuned if name in base]
    assert shared
    assert any(not np.array_equal(tuned[name], base[name]) for name in shared)


def test_finetune_info_records_params_data_and_leakage_audit(trained):
    info = read_finetune_info(trained.models_dir / "tiny-ft")
    assert info["examples"] == 8 and info["steps"] >= 1 and info["params"]["max_seq_length"] == 16
    assert info["data"]["direction"] == "doc2code" and info["data"]["mining"]["method"] == "bm25"
    leakage = info["data"]["leakage"][0]
    assert leakage["eval"] == "csn-mini" and leakage["dropped_train_queries"] >= 1
    assert json.loads((trained.models_dir / "tiny-ft" / INFO_FILE).read_text())["seconds"] > 0
    assert not any(p.name.startswith(".") for p in trained.models_dir.iterdir())  # no temporary folder left behind
    rows = [json.loads(line) for line in (trained.models_dir / "tiny-ft" / EXAMPLES_FILE).read_text().splitlines()]
    assert len(rows) == info["examples_trained"] == 4 * info["steps"]
    assert all(len(row["negatives"]) == 1 and row["positive"] not in row["negatives"] for row in rows)


def test_saved_model_keeps_the_base_models_input_window(trained):
    from sentence_transformers import SentenceTransformer

    tuned = SentenceTransformer(str(trained.models_dir / "tiny-ft"), device="cpu", local_files_only=True)
    assert tuned.max_seq_length == 256  # MiniLM's window: trained on 16 tokens, evaluated on what the base model reads


def test_finetune_command_adds_a_dense_profile_for_the_new_model(trained):
    profile = load_profiles(trained.profiles_file)["dense-tiny-ft"]
    assert profile == DenseProfile("dense-tiny-ft", model="tiny-ft")


def test_a_training_docstring_found_among_an_eval_sets_unjudged_documents_is_not_trained_on(tmp_path):
    """The issue's case: training queries that are verbatim docstrings of an eval corpus's *unjudged* documents."""
    tree = tmp_path / "tree"
    tree.mkdir()
    for name in CLICK_FILES:
        shutil.copy(package_roots(["click"])[0] / name, tree / name)
    before = build_training_set([tree], evals=())
    leaked = [q.text for q in before.dataset.judged_queries[:3]]
    evaluation = Dataset("code2doc-eval", (Document("judged", "Compute the checksum of a byte string."),)
                         + tuple(Document(f"unjudged-{i}", text.upper() + "  ") for i, text in enumerate(leaked)),
                         (Query("e1", "def checksum(data):\n    return sum(data) % 256", "python"),), Qrels({"e1": {"judged": 1}}))

    training = build_training_set([tree], evals=[evaluation])
    queries = {q.text for q in training.dataset.queries}
    assert not queries & set(leaked)
    assert len(training.dataset.queries) == len(before.dataset.queries) - 3
    summary = training.leakage[0]
    assert summary.text_counts["train query = eval document (exact)"] == 3 and summary.dropped_train_queries == 3
    assert sum(summary.counts.values()) == 0  # the judged-pair checks alone saw nothing


def _tiny_run(workspace: Workspace, name: str, **kwargs) -> Path:
    examples = [TrainingExample(f"how to {verb} a file", f"def {verb}_file(path):\n    return {verb}(path)", (f"def {verb}_dir(p): pass",))
                for verb in ("open", "close", "read", "write", "copy", "move", "delete", "rename")]
    return finetune(examples, workspace, output_name=name, batch_size=2, max_seq_length=16, learning_rate=1e-3, threads=1,
                    progress=False, checkpoint_every=1, **kwargs)


def test_an_interrupted_run_resumes_from_its_checkpoint_and_ends_with_the_same_weights(workspace):
    from safetensors.numpy import load_file

    steps = []
    straight = _tiny_run(workspace, "straight", on_step=steps.append)
    assert [s.step for s in steps] == [1, 2, 3, 4] and all(s.total_steps == 4 and s.loss > 0 for s in steps)
    assert steps[1].eta_seconds == pytest.approx(steps[1].seconds)  # two steps done, two to go, same pace

    def stop_after_two(step: TrainingStep) -> None:
        if step.step == 2:
            raise TrainingInterrupted("stopped on purpose")

    with pytest.raises(TrainingInterrupted):
        _tiny_run(workspace, "resumed", on_step=stop_after_two)
    assert not (workspace.models_dir / "resumed").exists() and (checkpoint_dir(workspace, "resumed") / "state.json").is_file()
    resumed_steps = []
    resumed = _tiny_run(workspace, "resumed", on_step=resumed_steps.append)
    assert [s.step for s in resumed_steps] == [3, 4] and resumed_steps[0].resumed_from == 2
    assert not checkpoint_dir(workspace, "resumed").exists()  # removed once the model is saved

    a, b = load_file(str(straight / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    assert all(np.allclose(a[name], b[name], atol=1e-6) for name in a)
    info, straight_info = read_finetune_info(resumed), read_finetune_info(straight)
    assert info["resumed_from_step"] == 2 and info["loss_curve"] == straight_info["loss_curve"]
    assert straight_info["peak_rss_mb"] > 100 and straight_info["machine"]["device"] in ("cpu", "cuda")


def test_a_checkpoint_of_other_examples_or_settings_is_not_resumed(workspace):
    def stop_at_once(step: TrainingStep) -> None:
        raise TrainingInterrupted("stopped")

    with pytest.raises(TrainingInterrupted):
        _tiny_run(workspace, "changed", on_step=stop_at_once)
    steps = []
    _tiny_run(workspace, "changed", on_step=steps.append, seed=7)  # another seed: other batches, so a fresh start
    assert [s.step for s in steps] == [1, 2, 3, 4]


def test_prepared_examples_round_trip_and_a_bad_file_gets_a_clear_error(tmp_path):
    examples = [TrainingExample("open a file ✓", "def open_file(p):\n    return open(p)", ("def close(p): pass", "x\ty")),
                TrainingExample("sum a list", "def total(xs): return sum(xs)")]
    path = save_prepared(tmp_path / "sub" / "prepared.jsonl", examples, {"mining": {"method": "bm25"}})
    assert load_prepared(path) == (examples, {"mining": {"method": "bm25"}})
    assert [p.name for p in path.parent.iterdir()] == ["prepared.jsonl"]  # no temporary file left

    lines = path.read_text(encoding="utf-8").splitlines()
    cases = {"missing.jsonl": (None, "No prepared examples at"),
             "foreign.jsonl": ('{"query": "a", "positive": "b", "negatives": []}\n', "is not a file of prepared examples"),
             "cut.jsonl": ("\n".join(lines[:2]) + "\n", "holds 1 examples where its first line says 2"),
             "bad-row.jsonl": ("\n".join([lines[0], lines[1], '{"query": "a"}']) + "\n", "line 3: not a training example"),
             "empty.jsonl": ("", "is not a file of prepared examples"),
             "plain.jsonl.xz": (path.read_text(encoding="utf-8"), "is not a file of prepared examples")}
    for name, (text, message) in cases.items():
        if text is not None:
            (tmp_path / name).write_text(text, encoding="utf-8")
        with pytest.raises(WorkbenchError, match=message):
            load_prepared(tmp_path / name)
    with pytest.raises(WorkbenchError, match="line 3"):
        load_prepared(tmp_path / "bad-row.jsonl")
    with pytest.raises(WorkbenchError, match="holds 1 examples where its first line says 2"):
        load_prepared(tmp_path / "cut.jsonl")

    odd = [TrainingExample("lone \ud800 surrogate", "def f(): return '\udfff'", ("tab\there",))]  # mined code can hold them
    assert load_prepared(save_prepared(tmp_path / "odd.jsonl.xz", odd, {}))[0] == odd  # kept exactly, not replaced by '?'
    packed = save_prepared(tmp_path / "prepared.jsonl.gz", examples, {})
    assert packed.read_bytes()[:2] == b"\x1f\x8b" and load_prepared(packed) == (examples, {})
    xz = save_prepared(tmp_path / "prepared.jsonl.xz", examples, {"a": 1})
    assert xz.read_bytes()[:6] == b"\xfd7zXZ\x00" and load_prepared(xz) == (examples, {"a": 1})
    assert not list(tmp_path.glob(".*"))  # no temporary file left
    unwritable = tmp_path / "blocked"
    unwritable.mkdir()
    with pytest.raises(WorkbenchError, match="is a folder"):
        save_prepared(unwritable, examples, {})
    with pytest.raises(TypeError):  # a write that fails midway (here: a row JSON cannot hold) leaves nothing behind
        save_prepared(unwritable / "bad.jsonl.gz", [*examples, TrainingExample("q", "p", (object(),))], {})
    assert list(unwritable.iterdir()) == []

    (tmp_path / "cut.jsonl.gz").write_bytes(packed.read_bytes()[:-12])  # a transfer broken off
    (tmp_path / "plain.jsonl.gz").write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    damaged = bytearray(packed.read_bytes())
    damaged[30:60] = bytes(30)  # a few bytes overwritten inside the compressed stream
    (tmp_path / "damaged.jsonl.gz").write_bytes(bytes(damaged))
    for name in ("cut.jsonl.gz", "plain.jsonl.gz", "damaged.jsonl.gz"):
        with pytest.raises(WorkbenchError, match="prepare it again|not a file of prepared examples"):
            load_prepared(tmp_path / name)


def test_examples_prepared_by_one_command_train_in_another_workspace_with_the_same_record(tmp_path, mini_data_dir, csn_mini):
    """Prepare where the sources are (``--save-examples``), train elsewhere (``--examples``): the model records the audit."""
    tree, _ = leaky_tree(tmp_path / "tree", csn_mini)
    parser = argparse.ArgumentParser()
    training_commands.register(parser.add_subparsers(dest="command"))
    prepare_here = Workspace.open(tmp_path / "prepare", mini_data_dir)
    prepared = tmp_path / "prepared.jsonl"
    args = parser.parse_args(["finetune", "--from-tree", str(tree), "--output", "moved-ft", "--audit-against", "csn-mini",
                              "--max-examples", "8", "--negatives", "1", "--save-examples", str(prepared), "--quiet"])
    args.func(args, prepare_here)
    examples, data = load_prepared(prepared)
    assert len(examples) == 8 and all(len(e.negatives) == 1 for e in examples)
    assert data["leakage"][0]["eval"] == "csn-mini" and data["leakage"][0]["dropped_train_queries"] >= 1
    assert not (prepare_here.models_dir / "moved-ft").exists()  # stopped before training

    train_there = Workspace.open(tmp_path / "train", mini_data_dir)
    args = parser.parse_args(["finetune", "--examples", str(prepared), "--output", "moved-ft", "--batch-size", "4",
                              "--max-seq-length", "16", "--learning-rate", "1e-3", "--quiet"])
    args.func(args, train_there)
    info = read_finetune_info(train_there.models_dir / "moved-ft")
    assert info["examples"] == 8 and info["data"]["leakage"] == data["leakage"]
    assert info["data"]["prepared_examples"] == {"file": "prepared.jsonl", "examples": 8}
    trained_rows = [json.loads(line) for line in (train_there.models_dir / "moved-ft" / EXAMPLES_FILE).read_text().splitlines()]
    assert {(r["query"], r["positive"]) for r in trained_rows} <= {(e.query, e.positive) for e in examples}

    with pytest.raises(WorkbenchError, match="is a folder"):  # refused before the sources are read, not after
        args = parser.parse_args(["finetune", "--from-tree", str(tree), "--output", "other-ft", "--save-examples", str(tmp_path),
                                  "--quiet"])
        args.func(args, prepare_here)
    with pytest.raises(WorkbenchError, match="give one of the two"):
        args = parser.parse_args(["finetune", "--examples", str(prepared), "--save-examples", str(tmp_path / "again.jsonl"),
                                  "--output", "other-ft", "--quiet"])
        args.func(args, train_there)


def test_tf32_is_switched_on_for_training_only_and_the_processs_setting_comes_back():
    import torch

    from core.training.finetune import _tf32_matmuls

    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        with _tf32_matmuls(True):
            assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        assert torch.backends.cuda.matmul.allow_tf32 is False  # restored
        with _tf32_matmuls(False):
            assert torch.backends.cuda.matmul.allow_tf32 is False  # the CPU path switches nothing on
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


def test_prepared_examples_train_with_their_recipes_settings_and_all_of_them(tmp_path, mini_data_dir):
    """``--examples`` alone trains every example of the file with the recipe it was prepared for (not 256, 1 epoch)."""
    examples = [TrainingExample(f"how to {verb} a file", f"def {verb}_file(path):\n    return {verb}(path)", (f"def {verb}_dir(p): pass",))
                for verb in ("open", "close", "read", "write", "copy", "move", "delete", "rename")]
    prepared = save_prepared(tmp_path / "recipe.jsonl.gz", examples, {"recipe": "code-v1", "mining": {"method": "bm25"}})
    parser = argparse.ArgumentParser()
    training_commands.register(parser.add_subparsers(dest="command"))
    workspace = Workspace.open(tmp_path / "ws", mini_data_dir)
    args = parser.parse_args(["finetune", "--examples", str(prepared), "--output", "recipe-ft", "--batch-size", "2",
                              "--max-seq-length", "16", "--checkpoint-every", "50", "--quiet"])
    args.func(args, workspace)
    info = read_finetune_info(workspace.models_dir / "recipe-ft")
    assert info["data"]["recipe"] == "code-v1" and info["params"]["epochs"] == 3  # the recipe's, as no --epochs was given
    assert info["params"]["batch_size"] == 2 and info["params"]["max_examples"] is None and info["examples"] == 8


def test_filling_negatives_ends_when_positives_repeat():
    batch = [TrainingExample("q0", "a0"), TrainingExample("q1", "a1")]
    filled = _filled(batch, 2, ["a0", "a1", "b", "b", "b"], random.Random(0))  # one distinct text outside: not enough
    assert [e.negatives for e in filled] == [(), ()]


def test_averaging_with_the_base_mixes_float_tensors_keeps_integer_ones_and_checks_its_inputs():
    import torch

    from core.training.finetune import average_with_base

    tuned = {"w": torch.tensor([1.0, 3.0]), "ids": torch.tensor([0, 1])}
    base = {"w": torch.tensor([5.0, -1.0]), "ids": torch.tensor([7, 7])}
    averaged = average_with_base(tuned, base, 0.25)
    assert torch.allclose(averaged["w"], torch.tensor([2.0, 2.0])) and torch.equal(averaged["ids"], tuned["ids"])
    assert np.allclose(average_with_base({"w": np.array([1.0])}, {"w": np.array([3.0])}, 0.5)["w"], [2.0])
    assert torch.equal(average_with_base(tuned, base, 0.0)["w"], tuned["w"])
    with pytest.raises(WorkbenchError, match="between 0 and 1"):
        average_with_base(tuned, base, 1.5)
    with pytest.raises(WorkbenchError, match="different layers"):
        average_with_base(tuned, {"ids": base["ids"]}, 0.5)
    with pytest.raises(WorkbenchError, match="different layers"):
        average_with_base(tuned, {"w": torch.zeros(3)}, 0.5)
    assert average_with_base({"w": tuned["w"]}, base, 0.5).keys() == {"w"}  # a base-only buffer is not added


def test_a_base_weight_saves_the_trained_weights_averaged_with_the_base_models(workspace):
    """WiSE-FT: the same run with base_weight 0.4 ends at 0.6 x its trained weights + 0.4 x MiniLM's."""
    from safetensors.numpy import load_file

    trained = load_file(str(_tiny_run(workspace, "plain-weights") / "model.safetensors"))
    mixed_folder = _tiny_run(workspace, "mixed-weights", base_weight=0.4)
    mixed = load_file(str(mixed_folder / "model.safetensors"))
    base = load_file(str(Path(resolve_model("minilm")) / "model.safetensors"))
    floats = [name for name in mixed if mixed[name].dtype.kind == "f"]
    assert floats and any(not np.allclose(trained[n], base[n]) for n in floats)
    assert all(np.allclose(mixed[n], 0.6 * trained[n] + 0.4 * base[n], atol=1e-6) for n in floats)
    assert read_finetune_info(mixed_folder)["params"]["base_weight"] == 0.4
    with pytest.raises(WorkbenchError, match="base weight"):
        _tiny_run(workspace, "all-base", base_weight=1.0)


def test_code_to_docstring_training_queries_are_the_code_without_its_docstring(tmp_path):
    """Left in, the docstring would make each query hold its answer: the model would learn to copy."""
    tree = tmp_path / "tree"
    tree.mkdir()
    shutil.copy(package_roots(["click"])[0] / "utils.py", tree / "utils.py")
    training = build_training_set([tree], direction="code2doc")
    pairs = [(q.text, training.dataset.document(training.dataset.qrels.positives(q.id)[0]).text)
             for q in training.dataset.judged_queries]
    assert len(pairs) > 5
    assert all(q.lstrip().startswith("def ") for q, _ in pairs)
    assert not any(doc.split(".")[0] in query for query, doc in pairs)
