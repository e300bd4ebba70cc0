"""Rollout parquet schema: write, read, validate, explode."""

import pandas as pd
import pytest

from sent.artifacts import read_rollouts
from sent.io import read_parquet_metadata
from sent.rollouts import RolloutRecorder, RolloutSchemaError, explode_tokens, validate_rollouts


def _row(step, sample_id, n):
    return {"step": step, "prompt_id": "p0", "sample_id": sample_id, "stage": 1, "reward": 1.0, "advantage": 0.5,
            "token_ids": list(range(n)), "tokens": [f"t{i}" for i in range(n)], "logp": [-0.1] * n,
            "entropy": [0.2] * n, "covariance": [0.0] * n, "low_entropy": [True] * n, "high_cov": [False] * n,
            "beta": [0.05] * n}


def test_write_read_explode_and_drop_after(tmp_path):
    rec = RolloutRecorder(tmp_path, metadata={"method": "sent", "seed": 0}, max_rows=2)
    rec.write_step(1, [_row(1, 0, 3), _row(1, 1, 2), _row(1, 2, 4)])  # third row over max_rows
    rec.write_step(2, [_row(2, 0, 1)])
    df = read_rollouts(tmp_path)
    assert df["step"].tolist() == [1, 1, 2] and str(df["sample_id"].dtype) == "int32"
    assert read_parquet_metadata(tmp_path / "step_000001.parquet")["method"] == "sent"
    long = explode_tokens(df)
    assert len(long) == 3 + 2 + 1 and long["position"].tolist() == [0, 1, 2, 0, 1, 0]  # one row per token
    assert str(long["logp"].dtype) == "float32"
    rec.drop_after(1)
    assert read_rollouts(tmp_path)["step"].unique().tolist() == [1]


def test_validate_names_missing_and_ragged_columns():
    df = pd.DataFrame([_row(1, 0, 2)])
    with pytest.raises(RolloutSchemaError, match="entropy"):
        validate_rollouts(df.drop(columns=["entropy"]))
    df.at[0, "logp"] = [-0.1]  # 1 value for 2 tokens
    with pytest.raises(RolloutSchemaError, match="'logp'"):
        validate_rollouts(df)
    assert issubclass(RolloutSchemaError, ValueError)
