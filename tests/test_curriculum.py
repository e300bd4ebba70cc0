import json

import pandas as pd
import pytest

from sent.commands.curriculum import main as curriculum_main
from sent.curriculum import (
    build_curriculum_dataset,
    load_stage,
    read_manifest,
    sort_by_se,
    split_stages,
    write_curriculum,
)
from sent.io import MissingArtifactError


def _table():
    # se: p0 0.0, p1 1.2, p2 0.0, p3 2.1, p4 0.5, p5 0.0
    return pd.DataFrame({"prompt_id": [f"p{i}" for i in range(6)], "se": [0.0, 1.2, 0.0, 2.1, 0.5, 0.0]})


def test_sort_ascending_with_deterministic_ties():
    df = _table()
    a = sort_by_se(df, seed=0)
    assert list(a["se"]) == [0.0, 0.0, 0.0, 0.5, 1.2, 2.1]
    assert list(a["prompt_id"][3:]) == ["p4", "p1", "p3"]
    # same seed -> same tie order, whatever the input order
    shuffled = df.sample(frac=1, random_state=3)
    assert list(sort_by_se(shuffled, seed=0)["prompt_id"]) == list(a["prompt_id"])
    # the tie order depends on the seed: over 10 seeds, not all give the same order of p0, p2, p5
    orders = {tuple(sort_by_se(df, seed=s)["prompt_id"][:3]) for s in range(10)}
    assert len(orders) > 1 and all(set(o) == {"p0", "p2", "p5"} for o in orders)


def test_split_equal():
    stages = split_stages(_table(), n_stages=2, method="equal")
    assert [len(s) for s in stages] == [3, 3]
    assert list(stages[1]["se"]) == [0.5, 1.2, 2.1]
    assert [len(s) for s in split_stages(_table(), n_stages=4)] == [2, 2, 1, 1]  # 6 = 4*1 + 2: first 2 stages +1


def test_split_thresholds():
    # se <= 0 | 0 < se <= 1 | se > 1
    stages = split_stages(_table(), n_stages=None, method="thresholds", thresholds=[0.0, 1.0])
    assert [len(s) for s in stages] == [3, 1, 2]
    assert list(stages[1]["prompt_id"]) == ["p4"]
    with pytest.raises(ValueError, match="thresholds"):
        split_stages(_table(), n_stages=3, method="thresholds", thresholds=[1.0])  # needs 2 values
    with pytest.raises(ValueError, match="stages empty"):
        split_stages(_table(), n_stages=2, method="thresholds", thresholds=[5.0])


def test_split_quantiles_positional():
    # floor(0.5*6)=3 and floor(5/6*6)=5 (ties at 0 split by position, not by value)
    stages = split_stages(_table(), n_stages=3, method="quantiles", quantiles=[0.5, 5 / 6])
    assert [len(s) for s in stages] == [3, 2, 1]
    first = split_stages(_table(), n_stages=2, method="quantiles", quantiles=[1 / 6])[0]
    assert len(first) == 1 and first["se"].iloc[0] == 0.0
    with pytest.raises(ValueError, match="quantiles"):
        split_stages(_table(), n_stages=2, method="quantiles", quantiles=[1.5])


def test_split_bad_args():
    with pytest.raises(ValueError, match="method"):
        split_stages(_table(), method="kmeans")
    with pytest.raises(ValueError, match="n_stages"):
        split_stages(_table(), n_stages=0)
    with pytest.raises(ValueError, match="se"):
        sort_by_se(pd.DataFrame({"x": [1]}))


def test_manifest_round_trip(tmp_path):
    src = tmp_path / "se.parquet"
    _table().to_parquet(src)
    manifest = write_curriculum(src, tmp_path / "cur", n_stages=2, method="thresholds", thresholds=[0.0])
    assert read_manifest(tmp_path / "cur") == manifest == json.loads((tmp_path / "cur" / "manifest.json").read_text())
    assert manifest["stages"] == [
        {"index": 1, "path": "stage_1.parquet", "size": 3, "se_min": 0.0, "se_max": 0.0},
        {"index": 2, "path": "stage_2.parquet", "size": 3, "se_min": 0.5, "se_max": 2.1},
    ]
    assert len(manifest["source_sha256"]) == 64 and manifest["source"] == str(src)
    assert list(load_stage(tmp_path / "cur", 2)["prompt_id"]) == ["p4", "p1", "p3"]
    with pytest.raises(ValueError, match="index"):
        load_stage(tmp_path / "cur", 3)


def test_command_skips_when_current_and_names_missing_input(tmp_path, caplog):
    src = tmp_path / "se.parquet"
    _table().to_parquet(src)
    out = tmp_path / "cur"
    argv = ["--se", str(src), "--out", str(out), "--n-stages", "2", "--method", "equal", "--seed", "0"]
    assert curriculum_main(argv) == 0
    mtime = (out / "manifest.json").stat().st_mtime_ns
    with caplog.at_level("INFO"):
        assert curriculum_main(argv) == 0
    assert "skipping" in caplog.text and (out / "manifest.json").stat().st_mtime_ns == mtime
    assert curriculum_main(argv[:-1] + ["1"]) == 0  # new seed -> rewritten
    assert read_manifest(out)["seed"] == 1
    with pytest.raises(MissingArtifactError, match="sent semantic-entropy"):
        curriculum_main(["--se", str(tmp_path / "nope.parquet"), "--out", str(out)])


def test_curriculum_dataset_orders_stages_and_drops_incomplete_batches():
    from datasets import Dataset

    s1 = Dataset.from_list([{"prompt_id": f"a{i}"} for i in range(5)])
    s2 = Dataset.from_list([{"prompt_id": f"b{i}"} for i in range(4)])
    ds = build_curriculum_dataset([s1, s2], epochs_per_stage=2, prompts_per_generation=2, seed=0)
    # stage 1: 5 -> 4 per epoch (drop_last), x2 epochs; stage 2: 4 x 2 epochs
    assert ds["stage"] == [1] * 8 + [2] * 8
    assert all(p.startswith("a") for p in ds["prompt_id"][:8]) and len(set(ds["prompt_id"][:4])) == 4
    with pytest.raises(ValueError, match="stage 2"):
        build_curriculum_dataset([s1, s2.select([0])], epochs_per_stage=1, prompts_per_generation=2, seed=0)


def test_order_controls_reverse_and_random_keep_stage_sizes():
    import numpy as np
    import pandas as pd

    from sent.curriculum import split_stages

    df = pd.DataFrame({"prompt_id": [f"p{i}" for i in range(30)], "se": np.linspace(0, 2, 30)})
    se = split_stages(df, 3, "equal", seed=0)
    rev = split_stages(df, 3, "equal", seed=0, order="reverse")
    rnd = split_stages(df, 3, "equal", seed=0, order="random")
    assert [list(s.prompt_id) for s in rev] == [list(s.prompt_id) for s in se[::-1]]  # same stages, high SE first
    assert [len(s) for s in rnd] == [len(s) for s in se]  # same sizes
    assert sorted(pd.concat(rnd).prompt_id) == sorted(df.prompt_id)  # every prompt once
    assert list(rnd[0].prompt_id) != list(se[0].prompt_id)  # filled at random, not by SE
    assert [list(s.prompt_id) for s in rnd] == [list(s.prompt_id) for s in split_stages(df, 3, seed=0, order="random")]
    with pytest.raises(ValueError, match="order"):
        split_stages(df, 3, order="backwards")
