"""`sent rollouts import`: every format's fixture dump imports and validates; broken dumps are one line; a native
step survives the trip through verl's and TRL's layouts; the readers and the bootstrap refuse bad rollouts.

The dumps under tests/fixtures/rollouts/<format>/ are hand-written from each framework's documented fields
(reference/rollout-formats.md; no framework is installed): 2 steps x 2 prompt groups x 3 responses, texts in the
tiny word-level vocabulary of tests/_tiny.py (token ids 0..27). Re-scoring uses the tiny random Llama (CPU, fp32).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sent.artifacts import read_rollouts
from sent.cli import main as sent_main
from sent.io import read_parquet_metadata
from sent.rollout_formats import parse_reward_spec
from sent.rollout_import import group_advantages
from sent.rollouts import RolloutRecorder
from tests._tiny import build_tiny_model


FIXTURES = Path(__file__).parent / "fixtures" / "rollouts"
#: Tolerance of the round trip (fp32 teacher-forced passes, batched with padding vs one sequence at a time).
ATOL = 1e-5
FORMAT_ARGS = {
    "verl": [],
    "trl": ["--reward", "accuracy_reward=1,format_reward=1", "--group-size", "3"],
    "nemo-rl": ["--group-size", "3"],
    "open-instruct": [],
    "prime-rl": ["--group-size", "3"],
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def ckpts(tiny, tmp_path_factory):
    """Checkpoints 0 and 1 (the same weights): the samplers of dumped steps 1 and 2 (--checkpoint-lag 1)."""
    path = tmp_path_factory.mktemp("ckpts") / "checkpoints.json"
    path.write_text(json.dumps({"0": str(tiny), "1": str(tiny)}))
    return path


def _run(capsys, argv: list[str]) -> tuple[int, list[str]]:
    capsys.readouterr()
    rc = sent_main(argv)
    return rc, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def _import(capsys, fmt: str, src, out, *extra) -> tuple[int, list[str]]:
    return _run(capsys, ["rollouts", "import", "--from", fmt, str(src), "--out", str(out), "--no-progress", *extra])


def _meta(out: Path, step: int) -> dict:
    return read_parquet_metadata(out / f"step_{step:06d}.parquet")["import"]


# ------------------------------------------------------------------------------------------------ each format


@pytest.mark.parametrize("fmt", list(FORMAT_ARGS))
def test_each_format_imports_and_validates(fmt, ckpts, tmp_path, capsys):
    out = tmp_path / "out"
    rc, err = _import(capsys, fmt, FIXTURES / fmt, out, "--checkpoints", str(ckpts), *FORMAT_ARGS[fmt])
    assert rc == 0, err
    df = read_rollouts(out)  # the reader every analysis uses: validated
    assert sorted(df["step"].unique()) == [1, 2] and len(df) == 12
    assert (df.groupby(["step", "prompt_id"]).size() == 3).all()
    logp, ent = np.concatenate(df["logp"].to_list()), np.concatenate(df["entropy"].to_list())
    assert (logp <= 0).all() and (ent >= 0).all() and (ent <= math.log(28) + 1e-4).all()
    meta = _meta(out, 2)
    assert meta["format"] == fmt and meta["source"] == str(FIXTURES / fmt) and meta["temperature"] == 1.0
    assert meta["tokenisation"].startswith("re-tokenised" if fmt in ("verl", "trl") else "exact")
    assert meta["advantage_rule"]["rule"] == {"nemo-rl": "rloo", "prime-rl": "recorded"}.get(fmt, "grpo")
    if fmt == "prime-rl":  # the dump's own trainer logp and entropy, no model
        assert meta["checkpoint"] is None and meta["scoring"].startswith("the dump's trainer")
        first = json.loads((FIXTURES / fmt / "token_exports" / "step_1" / "rank_0.jsonl").read_text().splitlines()[0])
        trained = [v for v, m in zip(first["trainer_logprobs"], first["loss_mask"]) if m]
        assert df["logp"].iloc[0] == pytest.approx(trained)
    else:
        assert meta["checkpoint_step"] == 1 and meta["staleness"] == 0 and meta["scoring"].startswith("teacher")
    if fmt in ("trl", "nemo-rl", "open-instruct"):  # the dump recorded advantages under the same rule
        assert meta["recorded_advantage_max_abs_diff"] < 1e-5
    assert (out / "import.json").exists()


def test_verl_groups_by_prompt_text_and_uses_its_eps(ckpts, tmp_path, capsys):
    out = tmp_path / "out"
    assert _import(capsys, "verl", FIXTURES / "verl", out, "--checkpoints", str(ckpts))[0] == 0
    df = read_rollouts(out, steps=[1])
    groups = df.groupby("prompt_id")["tokens"].apply(lambda t: sorted(" ".join(x) for x in t)).tolist()
    assert sorted(groups) == sorted([["so the answer is 5", "the answer is 5 .", "we add 2 and 3 then 6"],
                                     ["so the answer is 5", "the answer is 4", "we add 1 and 4 , 5"]])
    # rewards 1, 0, 1: mean 2/3, unbiased std sqrt(1/3); verl: (r - mean) / (std + 1e-6)
    g = df[df["tokens"].map(" ".join) == "we add 2 and 3 then 6"].iloc[0]
    assert g["advantage"] == pytest.approx(-(2 / 3) / (math.sqrt(1 / 3) + 1e-6), abs=1e-6)


def test_reward_spec_and_advantage_rules():
    assert parse_reward_spec("score") == {"score": 1.0}
    assert parse_reward_spec("a=0.5, b=0.25") == {"a": 0.5, "b": 0.25}
    with pytest.raises(ValueError, match="not a number"):
        parse_reward_spec("a=x")
    r, g = np.array([1.0, 0.0, 1.0, 2.0]), np.array([0, 0, 0, 1])
    assert group_advantages(r, g, "dr_grpo", 0, 1)[:3] == pytest.approx([1 / 3, -2 / 3, 1 / 3])
    trl = group_advantages(r, g, "grpo", 1e-4, 1)
    assert trl[1] == pytest.approx(-(2 / 3) / (math.sqrt(1 / 3) + 1e-4)) and trl[3] == 0.0  # a group of one: 0
    assert group_advantages(r, g, "grpo", 1e-6, 1, "mean 0, std 1")[3] == pytest.approx(2 / (1 + 1e-6))  # verl
    oi = group_advantages(r, g, "grpo", 1e-8, 0)  # open-instruct: population std
    assert oi[1] == pytest.approx(-(2 / 3) / math.sqrt(2 / 9))
    loo = group_advantages(r, g, "rloo", 0, 0)  # NeMo-RL: others' mean; others' std 0 -> unscaled
    assert loo[:3] == pytest.approx([0.5 / 0.5, -1.0, 0.5 / 0.5])


def test_stale_checkpoint_needs_allow_stale(tiny, tmp_path, capsys):
    only0 = tmp_path / "ckpts.yaml"
    only0.write_text(f"0: {tiny}\n")
    rc, err = _import(capsys, "verl", FIXTURES / "verl", tmp_path / "a", "--checkpoints", str(only0))
    assert rc == 2 and len(err) == 1 and err[0].startswith("sent rollouts: ") and "--allow-stale" in err[0], err
    rc, err = _import(capsys, "verl", FIXTURES / "verl", tmp_path / "b", "--checkpoints", str(only0), "--allow-stale")
    assert rc == 0, err
    assert _meta(tmp_path / "b", 1)["staleness"] == 0
    assert _meta(tmp_path / "b", 2)["staleness"] == 1 and _meta(tmp_path / "b", 2)["checkpoint_step"] == 0


def test_the_sampler_of_a_step_is_the_first_update_of_its_generation_batch():
    from sent.rollout_scoring import sampler_checkpoint

    assert [sampler_checkpoint(s) for s in (1, 2, 3)] == [0, 1, 2]  # one update per batch: s - 1
    assert [sampler_checkpoint(s, 1, 2) for s in (1, 2, 3, 4, 5)] == [0, 0, 2, 2, 4]  # TRL, 2 updates per batch
    assert [sampler_checkpoint(s, 2) for s in (2, 3)] == [0, 1]  # one step of asynchrony


def test_the_chunked_lm_head_matches_the_models_own_logits_and_soft_capped_models_use_them(tiny, monkeypatch):
    import torch
    from transformers import AutoModelForCausalLM, Gemma2Config, Gemma2ForCausalLM

    from sent import rollout_scoring

    model = AutoModelForCausalLM.from_pretrained(tiny, dtype=torch.float32).eval()
    items = [([5, 6, 7], [8, 9, 10, 1]), ([4], [12, 13]), ([5, 6, 7, 8, 9, 10], [11])]
    assert rollout_scoring.split_head(model, items[1]) is not None
    chunked = rollout_scoring.score_sequences(model, items, temperature=0.7, progress=False)
    monkeypatch.setattr(rollout_scoring, "split_head", lambda *_: None)
    whole = rollout_scoring.score_sequences(model, items, temperature=0.7, progress=False, token_budget=8)
    for (logp, ent), (logp2, ent2), (_, response) in zip(chunked, whole, items):
        assert len(logp) == len(ent) == len(response)
        np.testing.assert_allclose(logp, logp2, atol=1e-6)
        np.testing.assert_allclose(ent, ent2, atol=1e-6)
    monkeypatch.undo()
    capped = Gemma2ForCausalLM(Gemma2Config(  # logits = tanh(z / cap) * cap: not head(hidden state)
        vocab_size=28, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, head_dim=8, final_logit_softcapping=1.0)).eval()
    assert rollout_scoring.split_head(capped, items[0]) is None


def test_a_generation_batch_logged_at_two_steps_needs_updates_per_generation(ckpts, tmp_path, capsys):
    trl = tmp_path / "trl" / "completions"
    shutil.copytree(FIXTURES / "trl" / "completions", trl)
    pd.read_parquet(trl / "completions_00001.parquet").assign(step=2).to_parquet(trl / "completions_00002.parquet")
    args = ["--checkpoints", str(ckpts), "--reward", "accuracy_reward", "--group-size", "3"]
    rc, err = _import(capsys, "trl", trl, tmp_path / "a", *args)
    assert rc == 2 and "steps 1, 2 hold identical rollouts" in err[0] and "--updates-per-generation" in err[0], err
    rc, err = _import(capsys, "trl", trl, tmp_path / "b", *args, "--updates-per-generation", "2")
    assert rc == 0, err
    assert [_meta(tmp_path / "b", s)["sampler_checkpoint_step"] for s in (1, 2)] == [0, 0]
    assert "hold the same generation batch" in json.loads((tmp_path / "b" / "import.json").read_text())["warnings"][0]


def test_verl_prompts_map_recovers_the_chat_prompt(tiny, tmp_path, capsys):
    """verl dumps the rendered prompt decoded without special tokens; --prompts maps it back to the exact ids."""
    from transformers import AutoTokenizer

    model = tmp_path / "chat"
    shutil.copytree(tiny, model)
    tok = AutoTokenizer.from_pretrained(model)
    tok.chat_template = ("{{ bos_token }}{% for m in messages %}{{ m['content'] }} {% endfor %}"
                         "{% if add_generation_prompt %}A:{% endif %}")
    tok.save_pretrained(model)
    data = pd.DataFrame({"prompt": [[{"role": "user", "content": p}] for p in
                                    ("Q: 2 + 3 =", "Q: 1 + 4 =", "Q: 3 + 3 =", "Q: 0 + 2 =")]})
    data.to_parquet(tmp_path / "train.parquet")
    base = ["--checkpoints", str(_map(tmp_path, model))]
    assert _import(capsys, "verl", FIXTURES / "verl", tmp_path / "plain", *base)[0] == 0
    rc, err = _import(capsys, "verl", FIXTURES / "verl", tmp_path / "mapped", *base, "--prompts",
                      str(tmp_path / "train.parquet"))
    assert rc == 0, err
    summary = json.loads((tmp_path / "mapped" / "import.json").read_text())
    assert summary["tokens"]["prompts_mapped"] == 12 and summary["tokens"]["prompts_unmapped"] == 0
    plain, mapped = read_rollouts(tmp_path / "plain"), read_rollouts(tmp_path / "mapped")
    assert plain["tokens"].map(list).tolist() == mapped["tokens"].map(list).tolist()
    assert not np.allclose(plain["logp"].iloc[0], mapped["logp"].iloc[0])  # <bos> now precedes the prompt

    # TRL's conversational format: message prompts through the chat template, assistant-message completions
    trl = tmp_path / "trl" / "completions"
    trl.mkdir(parents=True)
    for step in (1, 2):
        df = pd.read_parquet(FIXTURES / "trl" / "completions" / f"completions_{step:05d}.parquet")
        df["prompt"] = [[{"role": "user", "content": p.removesuffix(" A:")}] for p in df["prompt"]]
        df["completion"] = [[{"role": "assistant", "content": c}] for c in df["completion"]]
        df.to_parquet(trl / f"completions_{step:05d}.parquet")
    rc, err = _import(capsys, "trl", tmp_path / "trl", tmp_path / "conv", *base, "--reward", "accuracy_reward",
                      "--group-size", "3")
    assert rc == 0, err
    conv = read_rollouts(tmp_path / "conv")

    def unique(df):  # responses whose text occurs once in their step (one prompt answers "so the answer is 5" twice)
        df = df.assign(_t=df["tokens"].map(" ".join))
        return df[~df.duplicated(["step", "_t"], keep=False)]

    both = unique(mapped).merge(unique(conv), on=["step", "_t"], suffixes=("_verl", "_trl"))
    assert len(both) == 10  # the same prompt ids: the same teacher-forced values
    for a, b in zip(both["logp_verl"], both["logp_trl"]):
        np.testing.assert_allclose(a, b, atol=ATOL)


def test_help():
    for argv in (["rollouts", "--help"], ["rollouts", "import", "--help"], ["rollouts", "check", "--help"]):
        with pytest.raises(SystemExit) as exc:
            sent_main(argv)
        assert exc.value.code == 0


def _map(tmp_path: Path, model: Path) -> Path:
    path = tmp_path / "chat_ckpts.json"
    path.write_text(json.dumps({"0": str(model), "1": str(model)}))
    return path


# ------------------------------------------------------------------------------------------------ broken dumps


def _edit_lines(path: Path, edit) -> None:
    lines = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    path.write_text("".join(json.dumps(x) + "\n" for x in edit(lines)))


def _set(path: Path, i: int, **fields):
    _edit_lines(path, lambda lines: [({**x, **fields} if k == i else x) for k, x in enumerate(lines)])


def _trl(d: Path, fn):
    f = d / "completions" / "completions_00001.parquet"
    fn(pd.read_parquet(f)).to_parquet(f)


BROKEN = [
    ("verl", lambda d: (d / "1.jsonl").write_text((d / "1.jsonl").read_text() + "{not json\n"), [], "not JSON"),
    ("verl", lambda d: _edit_lines(d / "2.jsonl", lambda ls: [{k: v for k, v in x.items() if k != "output"}
                                                             for x in ls]), [], "'output' must be a string"),
    ("verl", lambda d: _edit_lines(d / "1.jsonl", lambda ls: [{**x, "input": f"Q: {k} + 1 = A:"}
                                                             for k, x in enumerate(ls)]), [], "every prompt group has one"),
    ("verl", lambda d: _set(d / "1.jsonl", 2, score=None), [], "'reward' is NaN"),
    ("verl", lambda d: _edit_lines(d / "2.jsonl", lambda ls: [{**x, "score": 1.0} for x in ls]), [],
     "--drop-degenerate-steps"),
    ("trl", lambda d: None, ["--group-size", "3"], "may be rewards; say which with --reward"),
    ("trl", lambda d: _trl(d, lambda df: df.iloc[[0, 3, 1, 4, 2, 5]]), ["--reward", "accuracy_reward", "--group-size", "3"],
     "not consecutive prompt groups"),
    ("trl", lambda d: None, ["--reward", "accuracy_reward", "--group-size", "4"], "not a multiple of --group-size 4"),
    ("trl", lambda d: None, ["--reward", "nope"], "no reward column 'nope'"),
    ("nemo-rl", lambda d: _edit_lines(d / "train_data_step1.jsonl", lambda ls: [{k: v for k, v in x.items()
                                                                                if k != "token_ids"} for x in ls]),
     [], "no 'token_ids'"),
    ("nemo-rl", lambda d: _set(d / "train_data_step2.jsonl", 1, token_loss_mask=[[0] * 13]), [], "marks no trained"),
    ("open-instruct", lambda d: _set(d / "toyrun_rollouts_000000.jsonl", 4, response_tokens=[18, 999]), [],
     "outside the vocabulary"),
    ("open-instruct", lambda d: _edit_lines(d / "toyrun_rollouts_000000.jsonl", lambda ls: [
        {k: v for k, v in x.items() if k != "prompt_tokens"} for x in ls]), [], "no field 'prompt_tokens'"),
    ("prime-rl", lambda d: _edit_lines(d / "token_exports" / "step_1" / "rank_0.jsonl", lambda ls: [
        {**x, "entropy": x["entropy"][:-1] + [None]} if k == 2 else x for k, x in enumerate(ls)]),
     ["--group-size", "3"], "'entropy' is null or non-finite"),
    ("prime-rl", lambda d: _edit_lines(d / "token_exports" / "step_2" / "rank_0.jsonl", lambda ls: [
        {**x, "trainer_logprobs": x["trainer_logprobs"][:-1] + [0.5]} if k == 1 else x for k, x in enumerate(ls)]),
     ["--group-size", "3"], "'logp' has positive values"),
    ("prime-rl", lambda d: None, ["--group-size", "2"], "not consecutive prompt groups"),
]


@pytest.mark.parametrize("fmt,breaker,extra,expected", BROKEN, ids=[f"{b[0]}-{b[3][:24]}" for b in BROKEN])
def test_broken_dumps_are_refused_in_one_line(fmt, breaker, extra, expected, ckpts, tmp_path, capsys):
    src = tmp_path / fmt
    shutil.copytree(FIXTURES / fmt, src)
    breaker(src)
    out = tmp_path / "out"
    rc, err = _import(capsys, fmt, src, out, "--checkpoints", str(ckpts), *extra)
    assert rc == 2 and len(err) == 1 and err[0].startswith("sent rollouts: "), err
    assert expected in err[0], err[0]
    assert not list(out.glob("step_*.parquet")) and not (out / ".lock").exists()


# ------------------------------------------------------------------------------------------------ round trip


def _native(tiny: Path, temperature: float) -> pd.DataFrame:
    """Rollouts in the schema, scored one sequence at a time (an implementation independent of the importer)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny)
    model = AutoModelForCausalLM.from_pretrained(tiny, dtype=torch.float32).eval()
    words = ["so", "the", "answer", "is", "we", "add", "and", "then", ".", ","] + [str(i) for i in range(10)]
    rng = np.random.default_rng(7)
    rows = []
    for step in (1, 2):
        for p in range(2):
            a, b = rng.integers(0, 5, 2)
            prompt = f"Q: {a} + {b} = A:"
            firsts = rng.choice(words, 3, replace=False)  # distinct first words: no exactly tied covariances
            group = []
            for k in range(3):
                text = " ".join([firsts[k], *rng.choice(words, int(rng.integers(2, 7)))])
                reward = [1.0, 0.0, float(str(a + b) in text.split())][k]
                p_ids, c_ids = tok(prompt)["input_ids"], tok(text, add_special_tokens=False)["input_ids"]
                with torch.no_grad():
                    logits = model(torch.tensor([p_ids + c_ids])).logits[0, len(p_ids) - 1:-1].float() / temperature
                lsm = torch.log_softmax(logits, -1)
                group.append({"step": step, "prompt_id": f"s{step}-p{p}", "sample_id": k, "stage": 1,
                              "reward": reward, "token_ids": c_ids, "tokens": [tok.decode([i]) for i in c_ids],
                              "logp": lsm[torch.arange(len(c_ids)), c_ids].tolist(),
                              "entropy": (-(lsm.exp() * lsm).sum(-1)).tolist(), "prompt": prompt, "text": text})
            r = np.array([g["reward"] for g in group])
            for g, adv in zip(group, (r - r.mean()) / (r.std(ddof=1) + 1e-4)):  # TRL's rule, as `sent train` records
                g["advantage"] = float(adv)
            rows += group
    return pd.DataFrame(rows)


def _key(df: pd.DataFrame) -> pd.DataFrame:
    """Rows in a canonical order (step, response ids) so that groups and replicates line up."""
    df = df.assign(_k=df["token_ids"].map(lambda x: tuple(int(i) for i in x)))
    return df.sort_values(["step", "_k"], kind="stable").reset_index(drop=True)


def test_round_trip_native_to_verl_and_trl(tiny, ckpts, tmp_path, capsys):
    from sent_analysis.covariance_bootstrap import bootstrap_rollouts, reference_replicate, step_arrays

    T = 0.7
    native = _native(tiny, T)
    rec = RolloutRecorder(tmp_path / "native")
    for step, g in native.groupby("step"):
        rec.write_step(int(step), g.drop(columns=["prompt", "text"]).to_dict(orient="records"))
    verl, trl = tmp_path / "verl", tmp_path / "trl" / "completions"
    verl.mkdir()
    trl.mkdir(parents=True)
    for step, g in native.groupby("step"):
        order = np.random.default_rng(int(step)).permutation(len(g))  # verl's balance_batch reorders rows
        (verl / f"{step}.jsonl").write_text("".join(
            json.dumps({"input": r.prompt, "output": r.text, "gts": "", "score": r.reward, "step": int(step)}) + "\n"
            for r in g.iloc[order].itertuples()))
        pd.DataFrame({"step": int(step), "prompt": g["prompt"], "completion": g["text"], "accuracy_reward": g["reward"],
                      "advantage": g["advantage"]}).to_parquet(trl / f"completions_{step:05d}.parquet")
    common = ["--checkpoints", str(ckpts), "--temperature", str(T)]
    assert _import(capsys, "verl", verl, tmp_path / "from_verl", *common, "--adv-eps", "1e-4")[0] == 0
    assert _import(capsys, "trl", tmp_path / "trl", tmp_path / "from_trl", *common, "--group-size", "3")[0] == 0
    ref = _key(read_rollouts(tmp_path / "native"))
    for name in ("from_verl", "from_trl"):
        got = _key(read_rollouts(tmp_path / name))
        assert got["_k"].tolist() == ref["_k"].tolist() and got["reward"].tolist() == ref["reward"].tolist()
        for col in ("logp", "entropy"):
            diff = np.abs(np.concatenate(got[col].to_list()) - np.concatenate(ref[col].to_list()))
            assert diff.max() <= ATOL, (name, col, diff.max())
        assert np.abs(got["advantage"] - ref["advantage"]).max() <= ATOL
        # same groups, same order: the bootstrap draws the same replicates and selects the same tokens
        kw = dict(B=30, top_k_ratios=(0.05, 0.2), low_entropy_ratio=1.0, seed=0, progress=False)
        a, b = bootstrap_rollouts(ref.drop(columns="_k"), **kw), bootstrap_rollouts(got.drop(columns="_k"), **kw)
        cols = ["cov_batch", "tau", "jaccard_full_mean", "jaccard_pair_mean", "cov_batch_cv", "tau_cv"]
        np.testing.assert_allclose(a[cols].to_numpy(float), b[cols].to_numpy(float), atol=1e-4, rtol=1e-4)
        for step in (1, 2):
            sa, sb = (step_arrays(d[d["step"] == step]) for d in (ref, got))
            ones = np.ones(len(sa.reward))
            sel = [reference_replicate(s, ones, s.advantage, low_entropy_ratio=1.0, top_k_ratio=0.2)["selected"]
                   for s in (sa, sb)]
            assert sel[0] == sel[1]
    meta = _meta(tmp_path / "from_trl", 1)
    assert meta["temperature"] == T and meta["recorded_advantage_max_abs_diff"] < 1e-5
    rc, err = _run(capsys, ["analyze", "bootstrap", "--rollouts", str(tmp_path / "from_trl"), "--B", "10",
                            "--high-cov-ratio", "0.05"])
    assert rc == 0, err
    assert (tmp_path / "from_trl" / "analysis" / "bootstrap" / "bootstrap.parquet").exists()


# ------------------------------------------------------------------------------------------------ readers, bootstrap


def _good_dir(tmp_path: Path) -> Path:
    from sent_analysis.covariance_bootstrap import synthetic_rollouts

    d = tmp_path / "rollouts"
    d.mkdir()
    for step, g in synthetic_rollouts(n_steps=2, n_prompts=2, group_size=3, n_tokens=6).groupby("step"):
        g.reset_index(drop=True).to_parquet(d / f"step_{step:06d}.parquet")
    return d


def _lists(df, col, row, value):
    vals = [list(x) for x in df[col]]
    vals[row] = value(vals[row])
    return df.assign(**{col: vals})


BAD_ROLLOUTS = [
    ("nan-entropy", lambda df: _lists(df, "entropy", 2, lambda v: [math.nan] + v[1:]), "row 2", "'entropy' has NaN"),
    ("inf-advantage", lambda df: df.assign(advantage=df["advantage"].where(df.index != 4, math.inf)), "row 4",
     "'advantage' is infinite"),
    ("null-reward", lambda df: df.assign(reward=df["reward"].where(df.index != 1)), "row 1", "'reward' is null"),
    ("positive-logp", lambda df: _lists(df, "logp", 3, lambda v: v[:-1] + [0.25]), "row 3", "'logp' has positive"),
    ("null-tokens", lambda df: df.assign(tokens=[None if i == 5 else list(t) for i, t in enumerate(df["tokens"])]),
     "row 5", "'tokens' is null"),
    ("string-logp", lambda df: df.assign(logp=[[str(v) for v in x] for x in df["logp"]]), "row 0",
     "'logp' holds non-numeric"),
    ("string-reward", lambda df: df.assign(reward="high"), "", "'reward' must be numeric"),
    ("ragged", lambda df: _lists(df, "entropy", 1, lambda v: v[:-1]), "row 1", "different length"),
    ("empty-file", lambda df: df.iloc[:0], "", "empty step file"),
]


@pytest.mark.parametrize("case,bad,row,expected", BAD_ROLLOUTS, ids=[c[0] for c in BAD_ROLLOUTS])
def test_readers_refuse_bad_rollouts_in_one_line(case, bad, row, expected, tmp_path, capsys):
    d = _good_dir(tmp_path)
    f = d / "step_000001.parquet"
    bad(pd.read_parquet(f)).to_parquet(f)
    for argv, command in ((["analyze", "bootstrap", "--rollouts", str(d), "--B", "5"], "analyze"),
                          (["rollouts", "check", str(d)], "rollouts")):
        rc, err = _run(capsys, argv)
        assert rc == 2 and len(err) == 1 and err[0].startswith(f"sent {command}: "), err
        assert str(f) in err[0] and row in err[0] and expected in err[0], err[0]


def test_any_step_digits_and_steps_filter_on_the_column(tmp_path):
    d = _good_dir(tmp_path)
    (d / "step_000001.parquet").rename(d / "step_7.parquet")  # holds rows of step 1
    df = read_rollouts(d)
    assert sorted(df["step"].unique()) == [0, 1]
    assert read_rollouts(d, steps=[1])["step"].unique().tolist() == [1]  # the step column, not the file name
    (d / "step_000007.parquet").write_bytes((d / "step_7.parquet").read_bytes())
    with pytest.raises(ValueError, match="both name step 7"):
        read_rollouts(d)


def test_bootstrap_warns_when_the_covariance_is_undefined(tmp_path, caplog):
    from sent_analysis.covariance_bootstrap import bootstrap_rollouts, summarize, synthetic_rollouts

    df = synthetic_rollouts(n_steps=3, n_prompts=2, group_size=3, n_tokens=6)
    df.loc[df["step"] == 1, "reward"] = 1.0  # constant rewards
    ones = df["step"] == 2
    df.loc[ones, "prompt_id"] = [f"solo{i}" for i in range(int(ones.sum()))]  # groups of one
    with caplog.at_level(logging.WARNING):
        res = bootstrap_rollouts(df, B=10, top_k_ratios=(0.1,), progress=False)
    assert res.set_index("step")["cov_defined"].to_dict() == {0: True, 1: False, 2: False}
    assert not res.loc[~res["cov_defined"], "flag_cv_gt30"].any() and res.loc[~res["cov_defined"], "tau"].isna().all()
    assert "constant rewards" in res.loc[1, "undefined_reason"] and "one response" in res.loc[2, "undefined_reason"]
    summary = summarize(res)["top_k_ratio=0.1"]
    assert set(summary["undefined_steps"]) == {"1", "2"} and summary["n_steps_defined"] == 1
    assert sum("covariance is undefined" in r.getMessage() for r in caplog.records) == 2
