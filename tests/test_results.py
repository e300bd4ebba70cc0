"""sent.results: the interval table and the statements written for the README, on synthetic evaluations."""

import numpy as np
import pandas as pd

from sent import results


def fake_eval(p_correct: dict, seeds=3, problems=20, n=8, suites=("toy-a", "toy-b"), seed=0):
    """Samples with per-run success probability: a big gap must come out resolved, no gap unresolved."""
    rng = np.random.default_rng(seed)
    rows = []
    for run, p in p_correct.items():
        for s in range(seeds):
            for suite in suites:
                for i in range(problems):
                    ok = rng.random(n) < p
                    rows += [dict(run=run, seed=s, suite=suite, prompt_id=f"{suite}-{i}", sample_id=j,
                                  correct=bool(ok[j])) for j in range(n)]
    return pd.DataFrame(rows)


def test_big_gap_resolved_no_gap_not(tmp_path):
    ev = fake_eval({"grpo": 0.2, "sent_release": 0.6, "clip_cov": 0.2})
    res = results.compute(ev, ks=(8,), n_boot=500)
    d = res["pass@k"]["differences"].set_index(["run", "baseline"])
    assert d.loc[("sent_release", "grpo"), "resolved"] and d.loc[("sent_release", "grpo"), "diff"] > 10
    assert d.loc[("sent_release", "grpo"), "poi"] == 1.0
    assert not d.loc[("clip_cov", "grpo"), "resolved"]
    assert ("sent_release", "clip_cov") in d.index  # SENT vs each baseline method
    text = results.markdown(res, "test")
    assert "**+" in text and "resolved: higher" in text and "not resolved" in text
    assert "Single seed" not in text and "Standard deviation over seeds" in text
    # every paper column keeps its row: w/ Mask is unidentified, w/ En was not run here
    assert "| w/ Mask | 0 | not run (unidentified) | — | — | not run (unidentified) |" in text
    assert "| w/ En | 0 | not run | — | — | not run |" in text


def test_single_seed_is_labelled_and_written(tmp_path):
    ev = fake_eval({"grpo": 0.3, "sent": 0.3}, seeds=1)
    path = results.write(ev, tmp_path, "test")  # ks: the eval has 8 samples, so only k = 8
    text = path.read_text()
    assert "Single seed" in text and "mean over k = 8)" in text
    assert (tmp_path / "tables" / "results.json").exists()


def test_runs_on_other_suites_are_not_compared():
    ev = pd.concat([fake_eval({"grpo": 0.3}), fake_eval({"xd_grpo": 0.3}, suites=("toy-relations",))])
    d = results.compute(ev, ks=(8,), n_boot=200)["pass@k"]["differences"]
    assert "xd_grpo" not in set(d.run)


def test_training_end_averages_each_seeds_tail_then_over_seeds():
    rows = []
    for seed, level in ((0, 1.0), (1, 3.0)):
        for step in range(1, 31):
            rows.append({"run": "grpo", "seed": seed, "step": step, "entropy/all": level if step > 10 else 9.0,
                         "reward": (0.5 if step % 2 else None), "completions/mean_length": 40.0})
    end = results.training_end(pd.DataFrame(rows), last=20).iloc[0]
    assert end.entropy == 2.0 and end.entropy_sd == np.std([1.0, 3.0], ddof=1) and end.n_seeds == 2
    assert end.reward == 0.5  # the steps that log no reward are skipped, not counted as 0
    assert "| GRPO (`grpo`) | 2 | 2.000 ± 1.414 |" in results.training_markdown(results.training_end(pd.DataFrame(rows)))
