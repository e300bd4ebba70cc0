"""Round trip on a real `sent train` run: the native recording, written in verl's and TRL's dump layouts
(tests/_rollout_export.py) and brought back by `sent rollouts import` with the run's checkpoints, gives the same
per-token logp, entropy and advantages and the same bootstrap selections.

Which weights sampled a recorded step (docs/ANALYSIS.md, "Which checkpoint"): a generation batch is sampled by the
weights before its first update. With one update per generation batch, recorded step s was sampled by checkpoint
s - 1 (``--base`` for s = 1), and the recording's logp (the training forward of step s) is that same policy's: the
comparison is exact up to fp32 batching. With U updates per batch, the recording's logp at the batch's later updates
is the already-updated policy's while the sampler is still checkpoint (s - 1) // U * U: the second test shows both.

The model is a random toy Llama on the toy tokenizer (sent.toy). A text dump is exact only when the sampled ids are
the canonical tokenisation of their text: a trained toy model writes such text, a random one strings pieces together
(``"the" + "cat"`` decodes to ``"thecat"``, one unknown word). The sampler is therefore kept on the pieces with a
leading space (``generation_kwargs.suppress_tokens``: the others, and pad / unk / bos, which a text dump drops), whose
concatenations always re-tokenise to the sampled ids; EOS stays allowed. Suppression changes what is sampled, not
what is scored: the recording and the import both take logp and entropy of the full distribution. A random model
never writes a right answer, so the reward is the completion's length parity (as tests/test_paper_path.py does).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sent.artifacts import read_rollouts
from sent.cli import main as sent_main
from sent.io import read_parquet_metadata
from tests._rollout_export import write_trl, write_verl


#: Largest |imported - native| of logp and entropy (nats) accepted: both are fp32 teacher-forced passes of the same
#: weights, batched and padded differently (TRL: left-padded prompt + right-padded completion, positions counted
#: over the padding; the importer: left-padded sequence, positions from the attention mask). Measured: at most
#: 1e-6 (logp) and 2.4e-6 (entropy, about 5.7 nats here).
ATOL = 1e-5
T = 0.7  # sampling temperature: logp and entropy are of softmax(logits / T) on both sides
MAX_LEN = 12
REWARD = "length_parity"


def _length_parity_reward(*_, **__):
    def length_parity(completions, **kwargs):
        return [float(len(c) % 2 == 0) for c in completions]
    return length_parity


@pytest.fixture(scope="module")
def toy_base(tmp_path_factory):
    from sent import toy

    tok = toy.build_tokenizer(n_samples=600)
    cfg = toy.ToyModelConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, max_positions=128)
    path = tmp_path_factory.mktemp("toy") / "base"
    toy.build_model(tok, cfg, seed=0).save_pretrained(path)
    tok.save_pretrained(path)
    return path, tok


def _not_canonical(tok) -> list[int]:
    """Token ids a random model may not sample here: every piece without a leading space except EOS."""
    return sorted(i for piece, i in tok.get_vocab().items() if not piece.startswith(" ") and i != tok.eos_token_id)


def _train(base: Path, tok, root: Path, updates_per_generation: int, steps: int) -> Path:
    import sent.rewards
    from sent.commands import train

    U = updates_per_generation
    argv = ["--model_name_or_path", str(base), "--root", str(root), "--train_data", "synthetic:math:16",
            "--prompt_template", "toy", "--method", "sent", "--beta", "0.001", "--max_steps", str(steps),
            "--per_device_train_batch_size", "8", "--num_generations", "4", "--steps_per_generation", str(U),
            "--max_completion_length", str(MAX_LEN), "--temperature", str(T), "--learning_rate", "0.05",
            "--lr_scheduler_type", "constant",
            "--generation_kwargs", json.dumps({"suppress_tokens": _not_canonical(tok)}),
            "--save_strategy", "steps", "--save_steps", str(U), "--record_rollouts_every", "1", "--logging_steps", "1",
            "--use_cpu", "true", "--bf16", "false", "--gradient_checkpointing", "false", "--report_to", "none",
            "--disable_tqdm", "true", "--seed", "0"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sent.rewards, "make_reward", _length_parity_reward)
        assert train.main(argv) == 0
    return root / "runs" / "sent" / "seed0"


def _prompts() -> tuple[dict[str, str], dict[str, str]]:
    """The run's prompts (``--train_data synthetic:math:16 --prompt_template toy``) and answers by prompt id."""
    from sent.data import make_math_problems, render_prompts

    df = render_prompts(make_math_problems(16, split="train", seed=0), "toy")
    return dict(zip(df["prompt_id"], df["prompt"])), dict(zip(df["prompt_id"], df["answer"]))


def _import(capsys, fmt: str, src: Path, out: Path, run: Path, base: Path, *extra: str) -> tuple[int, str]:
    capsys.readouterr()
    rc = sent_main(["rollouts", "import", "--from", fmt, str(src), "--out", str(out), "--no-progress",
                    "--checkpoints", str(run / "checkpoint-{step}"), "--base", str(base), "--temperature", str(T),
                    "--add-eos", "--max-completion-length", str(MAX_LEN), *extra])
    return rc, capsys.readouterr().err


def _ids(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(_k=df["token_ids"].map(lambda x: tuple(int(i) for i in x)))


def _aligned(native: pd.DataFrame, imported: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both tables in one row order, the imported groups renamed to the native prompt ids (a group is found by its
    responses): then the bootstrap draws the same replicates from both."""
    native, imported = _ids(native), _ids(imported)
    names = {}
    for (step, pid), g in imported.groupby(["step", "prompt_id"]):
        same = [p for p, h in native[native["step"] == step].groupby("prompt_id")
                if sorted(h["_k"]) == sorted(g["_k"])]
        assert len(same) == 1, (step, pid, same)
        names[(step, pid)] = same[0]
    imported = imported.assign(prompt_id=[names[k] for k in zip(imported["step"], imported["prompt_id"])])
    order = ["step", "prompt_id", "_k"]
    return tuple(d.sort_values(order, kind="stable").reset_index(drop=True) for d in (native, imported))


def _max_abs(a: pd.DataFrame, b: pd.DataFrame, col: str) -> float:
    x, y = (np.concatenate(d[col].to_list()).astype(np.float64) for d in (a, b))
    return float(np.abs(x - y).max())


@pytest.fixture(scope="module")
def one_update_run(toy_base, tmp_path_factory):
    base, tok = toy_base
    return _train(base, tok, tmp_path_factory.mktemp("u1") / "root", updates_per_generation=1, steps=3)


def test_native_recording_round_trips_through_verl_and_trl(toy_base, one_update_run, tmp_path, capsys):
    from sent_analysis.covariance_bootstrap import bootstrap_rollouts, reference_replicate, step_arrays

    base, tok = toy_base
    run = one_update_run
    native = read_rollouts(run / "rollouts")
    assert sorted(native["step"].unique()) == [1, 2, 3] and len(native) == 24
    assert all((run / f"checkpoint-{s}").is_dir() for s in (1, 2, 3))
    assert native["token_ids"].map(len).lt(MAX_LEN).any()  # some response ended on EOS: --add-eos is exercised
    prompts, answers = _prompts()
    write_verl(native, prompts, answers, tok, tmp_path / "verl")
    write_trl(native, prompts, tok, tmp_path / "trl", REWARD)
    # the run's advantages are TRL's (eps 1e-4); verl's own rule has eps 1e-6
    rc, err = _import(capsys, "verl", tmp_path / "verl", tmp_path / "from_verl", run, base, "--adv-eps", "1e-4")
    assert rc == 0, err
    rc, err = _import(capsys, "trl", tmp_path / "trl", tmp_path / "from_trl", run, base, "--group-size", "4")
    assert rc == 0, err
    for name in ("from_verl", "from_trl"):
        imported = read_rollouts(tmp_path / name)
        for step in (1, 2, 3):  # step s was sampled by checkpoint s - 1 (the base model for step 1), exactly
            meta = read_parquet_metadata(tmp_path / name / f"step_{step:06d}.parquet")["import"]
            assert (meta["sampler_checkpoint_step"], meta["checkpoint_step"], meta["staleness"]) == (step - 1,) * 2 + (0,)
            assert meta["checkpoint"] == str(base if step == 1 else run / f"checkpoint-{step - 1}")
        ref, got = _aligned(native, imported)
        assert got["_k"].tolist() == ref["_k"].tolist() and got["reward"].tolist() == ref["reward"].tolist()
        for col in ("logp", "entropy"):
            assert _max_abs(ref, got, col) <= ATOL, (name, col, _max_abs(ref, got, col))
        assert np.abs(got["advantage"] - ref["advantage"]).max() <= ATOL, name
        # the bootstrap on both: same replicates (same order and groups), same selections and statistics
        kw = dict(B=40, top_k_ratios=(0.05, 0.2), low_entropy_ratio=0.8, seed=0, progress=False)
        a, b = (bootstrap_rollouts(d.drop(columns="_k"), **kw) for d in (ref, got))
        assert (a[["step", "k", "n_low", "n_tokens"]].to_numpy() == b[["step", "k", "n_low", "n_tokens"]].to_numpy()).all()
        cols = ["cov_batch", "tau", "cov_batch_cv", "tau_cv", "jaccard_full_mean", "jaccard_pair_mean",
                "jaccard_ema_full_mean"]
        np.testing.assert_allclose(a[cols].to_numpy(float), b[cols].to_numpy(float), rtol=1e-4, atol=1e-5)
        for step in (1, 2, 3):
            sa, sb = (step_arrays(d[d["step"] == step]) for d in (ref, got))
            ones = np.ones(len(sa.reward))
            for ratio in (0.05, 0.2):
                sel = [reference_replicate(s, ones, s.advantage, low_entropy_ratio=0.8, top_k_ratio=ratio)["selected"]
                       for s in (sa, sb)]
                assert sel[0] == sel[1] and len(sel[0]) >= 1, (name, step, ratio)
    # the checkpoint mapping matters: scored with the weights *after* each step's update, logp moves far off
    rc, err = _import(capsys, "trl", tmp_path / "trl", tmp_path / "lag0", run, base, "--group-size", "4",
                      "--checkpoint-lag", "0")
    assert rc == 0, err
    ref, got = _aligned(native, read_rollouts(tmp_path / "lag0"))
    assert _max_abs(ref, got, "logp") > 100 * ATOL


def test_two_updates_per_generation_batch(toy_base, tmp_path, capsys):
    """U = 2 (the paper's budget): TRL writes the whole generation batch at both of its steps; the importer scores
    both with the batch's sampler (--updates-per-generation 2) and refuses identical steps without it. The recording
    of the batch's first update matches; that of its second update is the once-updated policy, not the sampler."""
    base, tok = toy_base
    run = _train(base, tok, tmp_path / "root", updates_per_generation=2, steps=4)
    native = read_rollouts(run / "rollouts")
    assert sorted(native["step"].unique()) == [1, 2, 3, 4] and len(native) == 32  # half a batch per update
    prompts, _ = _prompts()
    write_trl(native, prompts, tok, tmp_path / "trl", REWARD, updates_per_generation=2)
    rc, err = _import(capsys, "trl", tmp_path / "trl", tmp_path / "refused", run, base, "--group-size", "4")
    assert rc == 2 and "steps 1, 2; 3, 4 hold identical rollouts" in err and "--updates-per-generation" in err
    rc, err = _import(capsys, "trl", tmp_path / "trl", tmp_path / "out", run, base, "--group-size", "4",
                      "--updates-per-generation", "2")
    assert rc == 0, err
    for step, sampler in ((1, 0), (2, 0), (3, 2), (4, 2)):
        meta = read_parquet_metadata(tmp_path / "out" / f"step_{step:06d}.parquet")["import"]
        assert (meta["sampler_checkpoint_step"], meta["staleness"], meta["updates_per_generation"]) == (sampler, 0, 2)
    imported = _ids(read_rollouts(tmp_path / "out"))
    for step in (1, 2, 3, 4):
        mine = _ids(native[native["step"] == step])
        theirs = imported[(imported["step"] == step) & imported["_k"].isin(set(mine["_k"]))]
        ref, got = _aligned(mine, theirs.drop(columns="_k"))
        assert np.abs(got["advantage"] - ref["advantage"]).max() <= ATOL  # the batch's advantages at both updates
        gap = _max_abs(ref, got, "logp")
        if step in (1, 3):  # first update of the batch: the recorded policy is the sampler
            assert gap <= ATOL and _max_abs(ref, got, "entropy") <= ATOL, (step, gap)
        else:  # second update: the recording holds the policy after the batch's first update
            assert gap > 100 * ATOL, (step, gap)
