"""Bootstrap stability of SENT's covariance estimates and high-covariance selection on saved rollouts.

SENT puts its strongest KL on the low-entropy tokens with the largest covariance contribution
(reference/paper.md §1.4-1.6):

    T_low   = the k = max(1, int(low_entropy_ratio * N)) lowest-entropy tokens of the batch,
    Cov_t   = (A_t - mean_{T_low} A) * (log π(o_t) - mean_{T_low} log π),   t in T_low,
    T_high  = the max(1, int(top_k_ratio * |T_low|)) tokens of T_low with the largest Cov_t.

A handful of tokens out of tens of thousands is chosen from one batch of sampled responses, so the
question this module answers is: how much would Cov_t, the batch covariance and the chosen set change
had the batch been sampled again? We resample the recorded responses B times and recompute
everything on each replicate.

Resampling (vectorised; every replicate is one row of a count matrix ``C``, shape ``(R, N)``):

* ``responses`` (default): within each prompt group, draw G responses with replacement; advantages are
  recomputed from rewards per replicate with the GRPO normalisation
  ``A_i = (r_i - mean_g r) / (std_g r + 1e-4)`` (weighted by the counts, unbiased std).
* ``groups``: draw whole prompt groups with replacement; the recorded advantages are kept.

Row 0 of ``C`` is the full sample (all counts 1), so the full-sample values come out of the same code.
A response drawn twice contributes its tokens twice (weights). Per replicate, the low-entropy set is
computed exactly (whole copies, ties by recorded order) from a coarse grid of cumulative weights
(a matrix product) refined inside the band of grid bins where any replicate's cut-off falls. All
per-response sums are prefix-table gathers; the top-k runs on a candidate set that provably holds
every replicate's top-k (per response the extreme log-probs of the always-low tokens, plus the band).

Reported per step and top-k ratio (``STEP_COLUMNS``): coefficient of variation (CV = std / |mean|,
ddof 1, across replicates) of the batch covariance, of the top-k threshold τ and of the per-token
Cov_t (median over the always-low tokens and over the full-sample selection); Jaccard overlap of each
replicate's selection with the full-sample one and between consecutive replicates; Spearman and
Kendall (tau-a) agreement of the full-sample top tokens' order; the same CV/Jaccard after an EMA of
the batch covariance and of τ across steps (selection = tokens with Cov_t >= EMA τ); a flag where a
CV exceeds 30 %.

Scope caveat: the trainer computes these sets per micro-batch (released code: 4 responses); here the
unit is the whole recorded step, the paper's "N = batch size of rollout tokens".

A step whose advantages are all equal (every group of one response, or constant rewards in every group) has no
covariance to be stable or unstable: it is reported with ``cov_defined=False`` and a warning, never as stable.
The table is validated first (:func:`sent.rollouts.validate_rollouts`).

(About 545 lines: the estimator, its bootstrap, the summary and its figure are one analysis that changes together;
the reading of rollouts lives in :mod:`sent.artifacts`.)
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from sent.artifacts import save_figure


logger = logging.getLogger(__name__)

CV_FLAG = 0.30
RESAMPLE_MODES = ("responses", "groups")


@dataclass
class StepArrays:
    """One step's rollouts as flat arrays (N responses, T tokens)."""

    resp: np.ndarray  # (T,) int64, response index of each token
    entropy: np.ndarray  # (T,) float64
    logp: np.ndarray  # (T,) float64
    reward: np.ndarray  # (N,) float64
    advantage: np.ndarray  # (N,) float64
    group: np.ndarray  # (N,) int64, prompt group index 0..n_groups-1


def step_arrays(df: pd.DataFrame) -> StepArrays:
    """Flatten one step's rollout rows (schema of docs/ARCHITECTURE.md) into :class:`StepArrays`."""
    lens = df["tokens"].map(len).to_numpy()
    n = len(df)

    def flat(col: str) -> np.ndarray:  # (T,)
        return np.concatenate([np.asarray(v, dtype=np.float64) for v in df[col]]) if lens.sum() else np.zeros(0)

    return StepArrays(
        resp=np.repeat(np.arange(n), lens),
        entropy=flat("entropy"),
        logp=flat("logp"),
        reward=df["reward"].to_numpy(np.float64),
        advantage=df["advantage"].to_numpy(np.float64),
        group=pd.factorize(df["prompt_id"])[0].astype(np.int64),
    )


def resample_counts(group: np.ndarray, B: int, mode: str, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap count matrix ``(B, N)``: how often each response is drawn in each replicate.

    ``responses``: stratified by group (each group keeps its size G); ``groups``: whole groups drawn
    with replacement, every response of a drawn group gets the group's count.
    """
    if mode not in RESAMPLE_MODES:
        raise ValueError(f"resample must be one of {RESAMPLE_MODES}, got {mode!r}")
    n = len(group)
    n_groups = int(group.max()) + 1 if n else 0
    if mode == "groups":
        cg = rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=B)  # (B, n_groups)
        return cg[:, group]
    order = np.argsort(group, kind="stable")
    sizes = np.bincount(group, minlength=n_groups)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    u = rng.random((B, n))  # each slot of group g draws one member of g uniformly
    drawn = order[starts[group][None, :] + np.floor(u * sizes[group][None, :]).astype(np.int64)]  # (B, N)
    flat = drawn + n * np.arange(B)[:, None]
    return np.bincount(flat.ravel(), minlength=B * n).reshape(B, n)


def group_advantages(reward: np.ndarray, group: np.ndarray, counts: np.ndarray, eps: float = 1e-4) -> np.ndarray:
    """GRPO advantages per replicate ``(R, N)``: ``(r - mean_g) / (std_g + eps)``, count-weighted, ddof 1."""
    n_groups = int(group.max()) + 1
    onehot = np.zeros((len(group), n_groups))
    onehot[np.arange(len(group)), group] = 1.0  # (N, n_groups)
    c = counts.astype(np.float64)
    size = c @ onehot  # (R, n_groups)
    mean = (c * reward) @ onehot / np.maximum(size, 1)
    dev = reward[None, :] - mean[:, group]  # (R, N)
    var = (c * dev**2) @ onehot / np.maximum(size - 1, 1)
    return dev / (np.sqrt(var)[:, group] + eps)


def _cv(x: np.ndarray, axis: int = 0) -> np.ndarray:
    """Coefficient of variation std/|mean| (ddof 1) along ``axis``, ignoring NaN."""
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN / single-value slices -> NaN
        return np.nanstd(x, axis=axis, ddof=1) / np.abs(np.nanmean(x, axis=axis))


def _nanmedian(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(np.median(x[np.isfinite(x)])) if np.isfinite(x).any() else float("nan")


def _low_sets(a: StepArrays, c: np.ndarray, low_entropy_ratio: float, n_bins: int = 256):
    """Exact low-entropy prefix per replicate, returned as per-response sums and band bookkeeping."""
    T, N = len(a.entropy), len(a.reward)
    order = np.argsort(a.entropy, kind="stable")  # (T,) ties: recorded order first
    pos_resp, pos_x = a.resp[order], a.logp[order]
    K = max(1, min(n_bins, T))
    edges = np.round(np.arange(K + 1) * T / K).astype(np.int64)  # (K+1,)
    bins = np.searchsorted(edges, np.arange(T), side="right") - 1
    per_bin = np.bincount(pos_resp * K + bins, minlength=N * K).reshape(N, K)
    ncum = np.concatenate([np.zeros((N, 1)), np.cumsum(per_bin, axis=1)], axis=1)  # (N, K+1)
    F = c @ ncum  # (R, K+1) weighted count before each edge
    k_low = np.maximum(1, np.floor(low_entropy_ratio * F[:, -1]))  # (R,) like int(0.8 * n)
    b = np.clip((F <= k_low[:, None]).sum(1) - 1, 0, K - 1)  # (R,) bin holding the cut-off
    lo, hi = edges[b.min()], edges[b.max() + 1]
    band = np.arange(lo, hi)
    w_band = c[:, pos_resp[band]]  # (R, nb)
    cum = F[:, b.min()][:, None] + np.cumsum(w_band, axis=1)
    q = (cum <= k_low[:, None]).sum(1)  # (R,) band tokens in the low set (a prefix: cum is monotone)
    # prefix tables over the band: counts / log-prob sums per response of band[:j]
    onehot_band = np.zeros((len(band) + 1, N))
    onehot_band[np.arange(1, len(band) + 1), pos_resp[band]] = 1.0
    xs_band = onehot_band.copy()
    xs_band[1:] *= pos_x[band][:, None]
    n_min = np.bincount(pos_resp[:lo], minlength=N).astype(np.float64)
    s_min = np.bincount(pos_resp[:lo], weights=pos_x[:lo], minlength=N)
    wn = c * (n_min[None, :] + np.cumsum(onehot_band, axis=0)[q])  # (R, N) weighted low-token count
    ws = c * (s_min[None, :] + np.cumsum(xs_band, axis=0)[q])  # (R, N) weighted low log-prob sum
    # the first band token not fully inside may still have some copies inside (exactly k_low tokens)
    w_band_in = np.clip(k_low[:, None] - (cum - w_band), 0, w_band)  # (R, nb) copies inside
    rows = np.flatnonzero(q < len(band))
    part = w_band_in[rows, q[rows]]
    np.add.at(wn, (rows, pos_resp[band[q[rows]]]), part)
    np.add.at(ws, (rows, pos_resp[band[q[rows]]]), part * pos_x[band[q[rows]]])
    return order, lo, band, w_band_in, wn, ws


def _candidates(pos_resp: np.ndarray, pos_x: np.ndarray, lo: int, kc: int) -> np.ndarray:
    """Sorted positions < lo that are among the kc highest or kc lowest log-probs of their response."""
    r, x = pos_resp[:lo], pos_x[:lo]
    o = np.lexsort((x, r))
    rs = r[o]
    start = np.searchsorted(rs, rs, side="left")
    size = np.searchsorted(rs, rs, side="right") - start
    rank = np.arange(lo) - start
    keep = (rank < kc) | (size - 1 - rank < kc)
    return np.sort(o[keep])


def _rank_agreement(v: torch.Tensor, present: torch.Tensor, ref: torch.Tensor):
    """Spearman and Kendall tau-a of each row of ``v`` (B, k) with ``ref`` (k,), over present entries."""
    pair = present[:, :, None] & present[:, None, :]  # (B, k, k), diagonal included
    ds = torch.sign(v[:, :, None] - v[:, None, :])  # ds[b, i, j] = sign(v_i - v_j)
    dr = torch.sign(ref[:, None] - ref[None, :]).expand_as(ds)
    n_pairs = (pair.sum((1, 2)) - present.sum(1)) / 2
    kendall = torch.where(pair, ds * dr, 0).sum((1, 2)) / 2 / n_pairs

    def midrank(d):  # rank among present entries: #{j: v_j < v_i} + (#{j: v_j == v_i} + 1) / 2
        return ((d > 0) & pair).sum(2).float() + (((d == 0) & pair).sum(2).float() + 1) / 2

    rv, rr = midrank(ds), midrank(dr)
    m = present.float()
    n = m.sum(1, keepdim=True)
    cv_ = (rv - (rv * m).sum(1, keepdim=True) / n) * m
    cr_ = (rr - (rr * m).sum(1, keepdim=True) / n) * m
    spear = (cv_ * cr_).sum(1) / torch.sqrt((cv_**2).sum(1) * (cr_**2).sum(1))
    few = n.squeeze(1) < 3
    return spear.masked_fill(few, float("nan")).numpy(), kendall.masked_fill(few, float("nan")).numpy()


def bootstrap_step(
    a: StepArrays,
    counts: np.ndarray,
    *,
    recompute_advantages: bool = True,
    low_entropy_ratio: float = 0.8,
    top_k_ratios: tuple[float, ...] = (0.0002,),
    ema: float = 0.9,
    ema_state: dict | None = None,
    rank_cap: int = 64,
) -> tuple[list[dict], dict]:
    """Bootstrap statistics of one step (pure: arrays in, rows + new EMA state out).

    ``counts`` ``(B, N)``: replicate draw counts (see :func:`resample_counts`); the full sample is
    prepended as row 0. ``ema_state`` carries ``{"cov": (R,), "tau": (R, n_ratios)}`` between steps
    (None on the first step). Returns one dict per top-k ratio (keys ``STEP_COLUMNS``) and the state.
    """
    if not 0 < low_entropy_ratio <= 1:
        raise ValueError(f"low_entropy_ratio must be in (0, 1], got {low_entropy_ratio}")
    if any(not 0 < r <= 1 for r in top_k_ratios):
        raise ValueError(f"top_k_ratios must lie in (0, 1], got {top_k_ratios}")
    counts = np.asarray(counts)
    if counts.ndim != 2 or counts.shape[1] != len(a.reward) or counts.shape[0] < 2:
        raise ValueError(f"counts must have shape (B >= 2, N={len(a.reward)}), got {counts.shape}")
    c = np.concatenate([np.ones((1, counts.shape[1])), counts], axis=0).astype(np.float64)  # (R, N)
    if recompute_advantages:
        A = group_advantages(a.reward, a.group, c)
    else:
        A = np.broadcast_to(a.advantage, c.shape)
    order, lo, band, w_band_in, wn, ws = _low_sets(a, c, low_entropy_ratio)
    pos_resp, pos_x = a.resp[order], a.logp[order]
    nw = wn.sum(1)  # (R,) |T_low| of each replicate
    lbar = ws.sum(1) / nw
    abar = (wn * A).sum(1) / nw
    adev = A - abar[:, None]  # (R, N)
    cov_batch = (adev * (ws - wn * lbar[:, None])).sum(1) / nw  # (R,)
    token_cv = _token_cv_always_low(c[1:], adev[1:], lbar[1:], pos_resp[:lo], pos_x[:lo])

    ks = np.maximum(1, np.floor(np.outer(nw, top_k_ratios))).astype(np.int64)  # (R, n_ratios)
    cand_min = _candidates(pos_resp, pos_x, lo, int(ks.max()))
    resp_c = torch.from_numpy(pos_resp[np.concatenate([cand_min, band])])
    x_c = torch.from_numpy(pos_x[np.concatenate([cand_min, band])]).float()
    wc = torch.cat([torch.from_numpy(c).float()[:, resp_c[: len(cand_min)]], torch.from_numpy(w_band_in).float()], 1)
    present = wc > 0  # (R, Tc) candidate token in the replicate's T_low
    v = torch.from_numpy(adev).float()[:, resp_c] * (x_c[None, :] - torch.from_numpy(lbar).float()[:, None])
    v.masked_fill_(~present, float("-inf"))  # (R, Tc) Cov_t, -inf outside T_low

    prev = ema_state or {}
    ema_cov = cov_batch if "cov" not in prev else ema * prev["cov"] + (1 - ema) * cov_batch
    taus = np.zeros((c.shape[0], len(top_k_ratios)))
    common = {
        "n_responses": len(a.reward),
        "n_tokens": len(a.entropy),
        "n_low": int(nw[0]),
        "cov_batch": cov_batch[0],
        "cov_batch_cv": _cv(cov_batch[1:]),
        "token_cv_median_low": _nanmedian(token_cv),
        "token_cv_share_gt30_low": float(np.mean(token_cv > CV_FLAG)) if token_cv.size else np.nan,
        "cov_batch_ema": ema_cov[0],
        "cov_batch_ema_cv": _cv(ema_cov[1:]),
    }
    rows = []
    for j, ratio in enumerate(top_k_ratios):
        prev_tau = prev["tau"][:, j] if "tau" in prev else None
        stats, taus[:, j] = _selection_stats(v, wc, present, torch.from_numpy(ks[:, j]), prev_tau, ema, rank_cap)
        row = {"top_k_ratio": ratio, "k": int(ks[0, j]), **common, **stats}
        cvs = [row["cov_batch_cv"], row["tau_cv"], row["token_cv_median_selected"]]
        row["flag_cv_gt30"] = bool(np.nanmax(np.abs(cvs)) > CV_FLAG) if np.isfinite(cvs).any() else False
        rows.append(row)
    return rows, {"cov": ema_cov, "tau": taus}


def _selection_stats(v, wc, present, k, prev_tau, ema, rank_cap) -> tuple[dict, np.ndarray]:
    """Top-k selection of every replicate (row 0 = full sample) and its stability; returns (stats, EMA τ)."""
    vals, idx = torch.topk(v, int(min(k.max(), v.shape[1])), dim=1)  # (R, kk), descending
    wt = wc.gather(1, idx)
    take = ((torch.cumsum(wt, 1) - wt) < k[:, None]) & (wt > 0)  # at least one copy inside the top k
    tau = torch.where(take, vals, float("inf")).min(1).values.double().numpy()  # (R,) k-th largest Cov_t
    tau_ema = tau if prev_tau is None else ema * prev_tau + (1 - ema) * tau
    ref_idx = idx[0][take[0]]  # full-sample selection, best first
    spear, kend = _rank_agreement(v[1:, ref_idx[:rank_cap]], present[1:, ref_idx[:rank_cap]], v[0, ref_idx[:rank_cap]])
    vs = v[1:, ref_idx].double().numpy()
    vs[~np.isfinite(vs)] = np.nan
    # selections as compact (R, n_selected_anywhere) masks: only columns some replicate selects
    cols = torch.unique(idx[take])
    colpos = torch.full((v.shape[1],), -1, dtype=torch.long)
    colpos[cols] = torch.arange(len(cols))
    sel = torch.zeros(v.shape[0], len(cols)).scatter_add_(1, colpos[idx].clamp(min=0), take.float()) > 0
    sel_ema_full = v >= torch.from_numpy(tau_ema).float()[:, None]  # (R, Tc)
    cols_e = sel_ema_full.any(0).nonzero().squeeze(1)
    stats = {
        "tau": tau[0],
        "tau_cv": _cv(tau[1:]),
        "token_cv_median_selected": _nanmedian(_cv(vs)),
        **_jaccards(sel, present[:, cols], "jaccard"),
        "spearman_mean": float(np.nanmean(spear)) if np.isfinite(spear).any() else np.nan,
        "kendall_mean": float(np.nanmean(kend)) if np.isfinite(kend).any() else np.nan,
        "tau_ema": tau_ema[0],
        "tau_ema_cv": _cv(tau_ema[1:]),
        **_jaccards(sel_ema_full[:, cols_e], present[:, cols_e], "jaccard_ema"),
    }
    return stats, tau_ema


def _jaccards(sel: torch.Tensor, present: torch.Tensor, prefix: str) -> dict:
    """Jaccard of each replicate's set with the full sample's (row 0) and between consecutive replicates."""
    full, reps = sel[0], sel[1:]
    inter = (reps & full).sum(1).double()
    union = (reps | full).sum(1).double()
    jac = torch.where(union > 0, inter / union.clamp(min=1), 1.0).numpy()
    drawn_full = (present[1:] & full).sum(1).double()
    recall = torch.where(drawn_full > 0, inter / drawn_full.clamp(min=1), float("nan")).numpy()
    if len(reps) > 1:
        pi, pu = (reps[1:] & reps[:-1]).sum(1).double(), (reps[1:] | reps[:-1]).sum(1).double()
        pair = float(torch.where(pu > 0, pi / pu.clamp(min=1), 1.0).mean())
    else:
        pair = np.nan
    return {
        f"{prefix}_full_mean": float(jac.mean()),
        f"{prefix}_full_p05": float(np.quantile(jac, 0.05)),
        f"{prefix}_pair_mean": pair,
        f"{prefix}_recall_drawn_mean": float(np.nanmean(recall)) if np.isfinite(recall).any() else np.nan,
    }


def _token_cv_always_low(c, adev, lbar, resp, x) -> np.ndarray:
    """Per-token CV of Cov_t = a_i (x_t - L̄) over replicates drawing token t's response, via moments.

    Exact for tokens in every replicate's low set (those before the band). For each response the
    replicate moments E[a], E[a L̄], E[a²], E[a² L̄], E[a² L̄²] are (B, N) reductions; a token's mean
    and variance are then ``x E[a] - E[a L̄]`` and ``x² E[a²] - 2x E[a² L̄] + E[a² L̄²] - mean²``.
    """
    if len(x) == 0:
        return np.zeros(0)
    m = (c > 0).astype(np.float64)  # (B, N)
    n = m.sum(0)
    mom = [((m * f).sum(0) / np.maximum(n, 1)) for f in (adev, adev * lbar[:, None], adev**2,
                                                           adev**2 * lbar[:, None], (adev * lbar[:, None]) ** 2)]
    e1, e2, q1, q2, q3 = (mm[resp] for mm in mom)
    mean = x * e1 - e2
    var = np.clip(x**2 * q1 - 2 * x * q2 + q3 - mean**2, 0, None) * (n[resp] / np.maximum(n[resp] - 1, 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        cv = np.sqrt(var) / np.abs(mean)
    return cv[np.isfinite(cv)]


def reference_replicate(
    a: StepArrays, counts_row: np.ndarray, adv_row: np.ndarray, low_entropy_ratio: float = 0.8, top_k_ratio: float = 0.0002
) -> dict:
    """Plain, unvectorised computation of one replicate (the baseline of tests and the benchmark).

    Materialises the resampled batch (response i repeated ``counts_row[i]`` times), takes the
    ``max(1, int(ratio * n))`` lowest-entropy tokens (ties: recorded order), centres Cov_t over them
    and returns the batch covariance, the top-k threshold τ and the selected original token indices.
    """
    tok = np.concatenate([np.repeat(np.flatnonzero(a.resp == i), int(c)) for i, c in enumerate(counts_row)])
    order = np.lexsort((tok, a.entropy[tok]))  # by entropy, then recorded order
    low = tok[order[: max(1, int(low_entropy_ratio * len(tok)))]]
    adv, x = adv_row[a.resp[low]], a.logp[low]
    cov = (adv - adv.mean()) * (x - x.mean())
    k = max(1, int(top_k_ratio * len(low)))
    top = np.argsort(-cov, kind="stable")[:k]
    return {"cov_batch": cov.mean(), "tau": cov[top].min(), "selected": set(low[top].tolist())}


# ---------------------------------------------------------------------------------------------------------------------
# synthetic rollouts (tests, benchmark) and the artifact-level runner


def synthetic_rollouts(
    n_steps: int = 3, n_prompts: int = 4, group_size: int = 4, n_tokens: int = 20, seed: int = 0
) -> pd.DataFrame:
    """Schema-conformant random rollouts (docs/ARCHITECTURE.md), deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    n = n_prompts * group_size
    rows = []
    for step in range(n_steps):
        reward = (rng.random(n) < 0.5).astype(np.float32)
        g = reward.reshape(n_prompts, group_size)
        adv = ((g - g.mean(1, keepdims=True)) / (g.std(1, ddof=1, keepdims=True) + 1e-4)).ravel()
        ent = rng.gamma(0.5, 0.4, size=(n, n_tokens)).astype(np.float32)
        logp = -(ent * rng.random((n, n_tokens)) * 2).astype(np.float32)
        for i in range(n):
            rows.append(
                {
                    "step": step,
                    "prompt_id": f"p{step}-{i // group_size}",
                    "sample_id": i % group_size,
                    "stage": 1,
                    "reward": reward[i],
                    "advantage": np.float32(adv[i]),
                    "token_ids": list(rng.integers(0, 100, n_tokens)),
                    "tokens": [f"t{j}" for j in rng.integers(0, 100, n_tokens)],
                    "logp": list(logp[i]),
                    "entropy": list(ent[i]),
                }
            )
    return pd.DataFrame(rows)


def informative_groups(a: StepArrays) -> int:
    """Prompt groups with at least two responses and different rewards (the ones that carry GRPO advantages)."""
    lo, hi = np.full(a.group.max() + 1, np.inf), np.full(a.group.max() + 1, -np.inf)
    np.minimum.at(lo, a.group, a.reward)
    np.maximum.at(hi, a.group, a.reward)
    return int((hi > lo).sum())  # a group of one has lo == hi


def undefined_reason(a: StepArrays, resample: str = "responses") -> str | None:
    """Why the covariance of a step is undefined (every advantage is the same, so Cov_t is 0 for every token and
    every replicate), or None. ``responses`` recomputes advantages inside groups: it needs a group of at least two
    responses with different rewards. ``groups`` keeps the recorded advantages: they must not all be equal."""
    if resample == "groups":
        return None if np.ptp(a.advantage) > 0 else "the recorded advantages are all equal"
    if np.bincount(a.group).max() < 2:
        return "every prompt group has one response (groups of one: GRPO advantages are 0)"
    if informative_groups(a) == 0:
        return "no prompt group has two responses with different rewards (constant rewards: advantages are 0)"
    return None


def bootstrap_rollouts(
    df: pd.DataFrame,
    *,
    B: int = 1000,
    resample: str = "responses",
    ema: float = 0.9,
    top_k_ratios: tuple[float, ...] = (0.0002,),
    low_entropy_ratio: float = 0.8,
    seed: int = 0,
    progress: bool = True,
) -> pd.DataFrame:
    """Run :func:`bootstrap_step` on every step of a rollout table (validated first); one row per (step, ratio).

    A step whose covariance is undefined (:func:`undefined_reason`: groups of one, constant rewards) is not
    bootstrapped: it gets ``cov_defined=False``, the reason in ``undefined_reason``, NaN statistics and a logged
    warning, never a "stable" (unflagged) verdict; it does not enter the EMA."""
    from tqdm.auto import tqdm

    from sent.rollouts import validate_rollouts

    if B < 2:
        raise ValueError(f"B must be >= 2 bootstrap replicates, got {B}")
    if not 0 <= ema < 1:
        raise ValueError(f"ema must be in [0, 1), got {ema}")
    if resample not in RESAMPLE_MODES:
        raise ValueError(f"resample must be one of {RESAMPLE_MODES}, got {resample!r}")
    df = validate_rollouts(df)
    if df.empty:
        raise ValueError("no rollouts to bootstrap (0 rows)")
    rng = np.random.default_rng(seed)
    state, out = None, []
    steps = sorted(df["step"].unique())
    for step in tqdm(steps, desc="bootstrap steps", disable=not progress):
        a = step_arrays(df[df["step"] == step])
        base = {"step": int(step), "n_groups_informative": informative_groups(a)}
        reason = undefined_reason(a, resample)
        if reason is not None:
            logger.warning("bootstrap: step %d: the covariance is undefined (%s); reported as undefined, not as "
                           "stable", int(step), reason)
            out += [{**base, "top_k_ratio": r, "n_responses": len(a.reward), "n_tokens": len(a.entropy),
                     "cov_defined": False, "undefined_reason": reason, "flag_cv_gt30": False} for r in top_k_ratios]
            continue
        counts = resample_counts(a.group, B, resample, rng)
        rows, state = bootstrap_step(
            a, counts, recompute_advantages=resample == "responses", low_entropy_ratio=low_entropy_ratio,
            top_k_ratios=tuple(top_k_ratios), ema=ema, ema_state=state,
        )
        out += [{**base, **r, "cov_defined": True, "undefined_reason": None} for r in rows]
    res = pd.DataFrame(out)
    res.insert(1, "resample", resample)
    res.insert(2, "B", B)
    return res


def summarize(res: pd.DataFrame) -> dict:
    """Median over the steps whose covariance is defined of the headline numbers, per top-k ratio, plus the flagged
    steps and the undefined ones (with their reasons)."""
    out = {}
    cols = ["cov_batch_cv", "tau_cv", "token_cv_median_low", "token_cv_median_selected", "jaccard_full_mean",
            "jaccard_pair_mean", "jaccard_recall_drawn_mean", "spearman_mean", "kendall_mean",
            "cov_batch_ema_cv", "tau_ema_cv", "jaccard_ema_full_mean"]
    res = res.copy()
    if "cov_defined" not in res.columns:
        res["cov_defined"] = True
    for c in cols:
        if c not in res.columns:
            res[c] = np.nan
    for ratio, g in res.groupby("top_k_ratio"):
        defined = g[g["cov_defined"].astype(bool)]
        undefined = g[~g["cov_defined"].astype(bool)]
        out[f"top_k_ratio={ratio:g}"] = {
            "median_over_steps": {c: (None if pd.isna(v) else float(v)) for c, v in defined[cols].median().items()},
            "flagged_steps_cv_gt30": [int(s) for s in defined.loc[defined["flag_cv_gt30"].astype(bool), "step"]],
            "undefined_steps": {str(int(s)): str(r) for s, r in zip(undefined["step"], undefined["undefined_reason"])},
            "n_steps": int(len(g)),
            "n_steps_defined": int(len(defined)),
        }
    return out


def plot_bootstrap(res: pd.DataFrame, path_stem: str | Path) -> list[Path]:
    """CV, Jaccard and rank agreement per step (raw and EMA); writes PNG and PDF."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # constrained layout with each legend under its panel: legends stay outside the data (docs/FIGURES-STYLE.md)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.8), layout="constrained")
    for ratio, g in res.groupby("top_k_ratio"):
        lab = f"top-k {ratio:g}"

        def said(col: str, text: str, g=g) -> str:  # a series with no value says why in the legend
            return text if g[col].notna().any() else f"{text}: undefined (top-k holds {int(g['k'].max())} token)"

        axes[0].plot(g["step"], g["tau_cv"], marker="o", label=said("tau_cv", f"τ CV, {lab}"))
        axes[0].plot(g["step"], g["tau_ema_cv"], ls="--", label=said("tau_ema_cv", f"τ CV EMA, {lab}"))
        axes[1].plot(g["step"], g["jaccard_full_mean"], marker="o", label=said("jaccard_full_mean", f"vs full, {lab}"))
        axes[1].plot(g["step"], g["jaccard_ema_full_mean"], ls="--",
                     label=said("jaccard_ema_full_mean", f"vs full EMA, {lab}"))
        axes[2].plot(g["step"], g["spearman_mean"], marker="o", label=said("spearman_mean", f"Spearman, {lab}"))
        axes[2].plot(g["step"], g["kendall_mean"], marker="s", label=said("kendall_mean", f"Kendall, {lab}"))
    g0 = res.drop_duplicates("step")
    axes[0].plot(g0["step"], g0["cov_batch_cv"], color="k", marker="x", label="batch Cov CV")
    axes[0].plot(g0["step"], g0["cov_batch_ema_cv"], color="k", ls=":", label="batch Cov CV EMA")
    axes[0].axhline(CV_FLAG, color="r", lw=0.8, label="30 % flag")
    axes[0].set(xlabel="recorded training step", ylabel="coefficient of variation (symlog)")
    axes[0].set_yscale("symlog", linthresh=0.1)
    axes[0].set_ylim(bottom=0)
    axes[1].set(xlabel="recorded training step", ylabel="Jaccard of high-cov set", ylim=(0, 1.02))
    axes[2].set(xlabel="recorded training step", ylabel="rank agreement of top-k", ylim=(-1.02, 1.02))
    for ax in axes:
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)
    b, mode = int(res["B"].iloc[0]), res["resample"].iloc[0]
    fig.suptitle(f"Bootstrap stability of the covariance selection (B={b}, resample={mode})")
    return save_figure(fig, path_stem, tight_layout=False)
