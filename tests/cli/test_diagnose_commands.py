"""python -m core for the diagnosis features: evaluate --ci prints each mean's bootstrap interval."""
from __future__ import annotations

import re

from core.cli.main import main
from core.evaluation.bootstrap import confidence_intervals
from core.evaluation.metrics import evaluate


def cli(capsys, workspace, *args):
    code = main(["--workspace", str(workspace.root), "--data-dir", str(workspace.data_dir), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_evaluate_ci_prints_the_bootstrap_interval_of_every_mean(capsys, session_workspace, csn_engine):
    code, out, _ = cli(capsys, session_workspace, "evaluate", "--dataset", "csn-mini", "--profiles", "bm25-code,dense-minilm",
                       "--metrics", "ndcg@10,hit@10", "--ci", "--resamples", "2000", "--seed", "4", "--no-save", "--quiet")
    assert code == 0
    evaluations = [evaluate(csn_engine.dataset.qrels, csn_engine.run(n), ["ndcg@10", "hit@10"]) for n in ("bm25-code", "dense-minilm")]
    expected = confidence_intervals(evaluations, ["ndcg@10", "hit@10"], resamples=2000, seed=4)
    section = out.split("bootstrap intervals")[1]
    assert "2000 resamples, seed 4" in section
    for run, metric, mean, low, high in expected.itertuples(index=False):
        row = next(line for line in section.splitlines() if line.startswith(run))
        cells = re.findall(r"(\d\.\d{4}) ± (\d\.\d{4}) \[(\d\.\d{4}), (\d\.\d{4})\]", row)
        column = ["ndcg@10", "hit@10"].index(metric)
        assert cells[column] == (f"{mean:.4f}", f"{(high - low) / 2:.4f}", f"{low:.4f}", f"{high:.4f}")


def test_evaluate_ci_refuses_a_resample_count_that_is_not_a_whole_number(capsys, session_workspace):
    try:
        main(["--workspace", str(session_workspace.root), "evaluate", "--dataset", "csn-mini", "--ci", "--resamples", "0"])
    except SystemExit as exc:
        assert exc.code == 2
    assert "--resamples must be a whole number from 1 to 100,000" in capsys.readouterr().err
