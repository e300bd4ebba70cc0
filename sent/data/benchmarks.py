"""Loaders for the paper's training set and benchmarks, mapped into the common problem schema.

Every loader returns a ``pandas.DataFrame`` with ``prompt_id, problem, answer, suite, domain, level``
(docs/ARCHITECTURE.md). Sources, in this order:

1. ``source=`` a local file (``.jsonl``, ``.json``, ``.parquet``) laid out in the hub dataset's own schema
   (the shipped fixtures in ``sent/data/fixtures/`` are such files);
2. the hub, through ``datasets.load_dataset(hub_id, config, split=...)``: only with ``allow_download=True``,
   or from the local cache when ``HF_HUB_OFFLINE=1`` / ``HF_DATASETS_OFFLINE=1`` is set (then nothing downloads).

Nothing downloads by default. Hub ids and field names were checked against the dataset cards and public code
that loads them (see the table in ``BENCHMARKS``). The paper's evaluation prompt (OpenCompass config of the
released code, reference/paper.md §3) is :data:`PAPER_PROMPT_TEMPLATE`; the DAPO-Math-17k training prompt (an
``Answer:`` line, scored by verl's ``math_dapo``: ``sent.rewards.math_dapo_score``) is :data:`DAPO_PROMPT_TEMPLATE`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from sent.artifacts import read_text


logger = logging.getLogger(__name__)

FIXTURES_DIR = Path(__file__).resolve().parent / "fixtures"
SCHEMA = ("prompt_id", "problem", "answer", "suite", "domain", "level")
PAPER_PROMPT_TEMPLATE = "{question}\nPlease reason step by step, and put your final answer within \\boxed{{}}."
CHAMP_INSTALL = "pip install champ-dataset==1.0.0"

# DAPO-Math-17k wraps each problem in a verl prompt asking for an "Answer:" line; we keep the bare problem and
# apply a template when rendering: "paper" (\boxed{}) or "dapo" (this wording, checked against the prompt field of
# BytedTsinghua-SIA/DAPO-Math-17k and BytedTsinghua-SIA/AIME-2024; plan-audit.md finding 9).
_DAPO_PREFIX = ("Solve the following math problem step by step. The last line of your response should be of the "
                "form Answer: $Answer (without quotes) where $Answer is the answer to the problem.\n\n")
_DAPO_SUFFIX = '\n\nRemember to put your answer on its own line after "Answer:".'
DAPO_PROMPT_TEMPLATE = _DAPO_PREFIX + "{question}" + _DAPO_SUFFIX
# user-message templates rendered (inside the chat template) by render_paper_prompts; str.format with {question}
USER_PROMPT_TEMPLATES = {"paper": PAPER_PROMPT_TEMPLATE, "dapo": DAPO_PROMPT_TEMPLATE}


def paper_prompt(problem: str, template: str = "paper") -> str:
    """The user message: ``"paper"`` = the paper's evaluation ``{question}\\nPlease reason step by step, ...
    \\boxed{}.``; ``"dapo"`` = DAPO-Math-17k's ``Solve the following math problem ... Answer:`` wording."""
    if template not in USER_PROMPT_TEMPLATES:
        raise ValueError(f"template={template!r} is not valid; use one of {list(USER_PROMPT_TEMPLATES)}")
    return USER_PROMPT_TEMPLATES[template].format(question=problem)


def render_paper_prompts(df: pd.DataFrame, tokenizer=None, template: str = "paper") -> pd.DataFrame:
    """Return a copy of ``df`` with a ``prompt`` column: the ``template`` user message (see :func:`paper_prompt`),
    inside the chat template when ``tokenizer`` has one (the paper evaluates with ``--hf-type chat``)."""
    if "problem" not in df.columns:
        raise ValueError("render_paper_prompts: df has no 'problem' column; load it with load_benchmark()")
    out = df.copy()
    messages = [paper_prompt(p, template) for p in out["problem"]]
    if tokenizer is not None and getattr(tokenizer, "chat_template", None):
        messages = [tokenizer.apply_chat_template([{"role": "user", "content": m}], tokenize=False,
                                                  add_generation_prompt=True) for m in messages]
    out["prompt"] = messages
    return out


# ------------------------------------------------------------------------------------------------- field mapping


def _require(df: pd.DataFrame, fields: tuple[str, ...], dataset: str) -> None:
    for f in fields:
        if f not in df.columns:
            raise ValueError(f"dataset {dataset!r}: required field {f!r} is missing (columns: {list(df.columns)}); "
                             f"the source must follow the hub schema of {dataset}")


def _field(value, key: str, dataset: str):
    """``value[key]`` for a struct stored as a dict or as a JSON string."""
    if isinstance(value, str):
        value = json.loads(value)
    if not isinstance(value, dict) or key not in value:
        raise ValueError(f"dataset {dataset!r}: required field {key!r} is missing from a struct value {value!r}")
    return value[key]


def _answer_str(value) -> str:
    """Gold answers as strings; floats that are integers lose the ``.0`` (AMC23 stores 27.0)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _common(dataset: str, suite: str, problems, answers, ids=None, levels=None) -> pd.DataFrame:
    problems = [str(p).strip() for p in problems]
    n = len(problems)
    ids = [f"{suite}-{i:03d}" for i in range(n)] if ids is None else [f"{suite}-{x}" for x in ids]
    df = pd.DataFrame({
        "prompt_id": ids, "problem": problems, "answer": [_answer_str(a) for a in answers], "suite": suite,
        "domain": "math", "level": [-1] * n if levels is None else [int(x) for x in levels],
    })
    if df["prompt_id"].duplicated().any():
        raise ValueError(f"dataset {dataset!r}: duplicate ids {df.loc[df.prompt_id.duplicated(), 'prompt_id'].tolist()[:5]}")
    return df


def _map_dapo(df: pd.DataFrame, dataset: str, suite: str) -> pd.DataFrame:
    _require(df, ("prompt", "reward_model"), dataset)
    problems, answers, ids = [], [], []
    for i, row in enumerate(df.itertuples(index=False)):
        messages = row.prompt if not isinstance(row.prompt, str) else json.loads(row.prompt)
        text = _field(list(messages)[0], "content", dataset)
        text = text.removeprefix(_DAPO_PREFIX).removesuffix(_DAPO_SUFFIX)
        problems.append(text)
        answers.append(_field(row.reward_model, "ground_truth", dataset))
        info = getattr(row, "extra_info", None)
        ids.append(_field(info, "index", dataset) if info is not None else f"{i:06d}")
    out = _common(dataset, suite, problems, answers, ids=None)
    out["prompt_id"] = [f"{suite}-{x}" for x in ids]
    # The hub file repeats every problem ~100 times (1.79M rows for 17k problems); the paper trains on a
    # by-index deduplicated copy (reference/paper.md §3).
    return out.drop_duplicates("prompt_id").reset_index(drop=True)


def _map_math500(df, dataset, suite):
    _require(df, ("problem", "answer", "level"), dataset)
    return _common(dataset, suite, df["problem"], df["answer"], levels=df["level"])


def _map_problem_answer(df, dataset, suite):
    _require(df, ("problem", "answer"), dataset)
    return _common(dataset, suite, df["problem"], df["answer"])


def _map_question_answer(df, dataset, suite):
    _require(df, ("question", "answer"), dataset)
    return _common(dataset, suite, df["question"], df["answer"])


def _map_olympiad(df, dataset, suite):
    _require(df, ("question", "final_answer"), dataset)
    problems, answers = [], []
    contexts = df["context"] if "context" in df.columns else [None] * len(df)
    for question, final, ctx in zip(df["question"], df["final_answer"], contexts):
        # Some problems define their objects in a separate `context` field; the question alone is unanswerable.
        problems.append(f"{ctx}\n{question}" if isinstance(ctx, str) and ctx.strip() else question)
        final = json.loads(final) if isinstance(final, str) and final.startswith("[") else final
        parts = [final] if isinstance(final, str) else list(final)
        answers.append(", ".join(str(p).strip().strip("$").strip() for p in parts))
    return _common(dataset, suite, problems, answers)


@dataclass(frozen=True)
class BenchmarkSpec:
    """Where a benchmark lives on the hub and how its fields map into the common schema."""

    name: str
    hub_id: str
    split: str
    mapper: Callable[[pd.DataFrame, str, str], pd.DataFrame]
    config: str | None = None
    fixture: str | None = None
    n_expected: int | None = None  # size of the hub split, for a sanity log line

    def fixture_path(self) -> Path:
        return FIXTURES_DIR / (self.fixture or f"{self.name}.jsonl")


BENCHMARKS: dict[str, BenchmarkSpec] = {
    "dapo": BenchmarkSpec("dapo", "BytedTsinghua-SIA/DAPO-Math-17k", "train", _map_dapo,
                          fixture="dapo_math_17k.jsonl"),
    "math500": BenchmarkSpec("math500", "HuggingFaceH4/MATH-500", "test", _map_math500, n_expected=500),
    "aime24": BenchmarkSpec("aime24", "HuggingFaceH4/aime_2024", "train", _map_problem_answer, n_expected=30),
    "aime25": BenchmarkSpec("aime25", "yentinglin/aime_2025", "train", _map_problem_answer, n_expected=30),
    "amc23": BenchmarkSpec("amc23", "math-ai/amc23", "test", _map_question_answer, n_expected=40),
    # 674 text-only English competition problems; the paper's table implies 675 (reference/paper.md §3).
    "olympiad": BenchmarkSpec("olympiad", "Hothan/OlympiadBench", "train", _map_olympiad,
                              config="OE_TO_maths_en_COMP", n_expected=674),
    "minerva": BenchmarkSpec("minerva", "math-ai/minervamath", "test", _map_question_answer, n_expected=272),
}
PAPER_SUITES = ("aime24", "aime25", "amc23", "math500", "olympiad", "minerva")


# ------------------------------------------------------------------------------------------------------ reading


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a ``.jsonl`` / ``.json`` / ``.parquet`` file into a DataFrame (nested fields stay dicts/lists)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"source file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return pd.read_parquet(path)
    if suffix == ".jsonl":
        rows = []
        for i, line in enumerate(read_text(path).splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}: line {i} is not JSON ({err.msg})") from None
        return pd.DataFrame(rows)
    if suffix == ".json":
        data = json.loads(read_text(path))
        return pd.DataFrame(data if isinstance(data, list) else data.get("data", data))
    raise ValueError(f"source {path}: unsupported extension {suffix!r}; use .jsonl, .json or .parquet")


def _hub_allowed(allow_download: bool) -> bool:
    offline = any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))
    return allow_download or offline


def _load_hub(spec: BenchmarkSpec, split: str, allow_download: bool) -> pd.DataFrame:
    if not _hub_allowed(allow_download):
        raise ValueError(f"benchmark {spec.name!r}: no source given and hub access is off by default; pass "
                         f"source=<file in the {spec.hub_id} schema> (e.g. {spec.fixture_path()}), or "
                         "allow_download=True (CLI: --allow-download) to fetch it")
    from datasets import load_dataset

    logger.info("loading %s (%s, split %s) through datasets.load_dataset", spec.hub_id, spec.config, split)
    return load_dataset(spec.hub_id, spec.config, split=split).to_pandas()


def load_benchmark(name: str, source: str | os.PathLike | None = None, split: str | None = None, *,
                   allow_download: bool = False, limit: int | None = None) -> pd.DataFrame:
    """Load benchmark ``name`` (a key of :data:`BENCHMARKS`, or ``"champ"``) in the common problem schema.

    ``source`` is a local file in the hub schema; ``"fixture"`` selects the shipped hand-made fixture.
    ``limit`` keeps the first rows (after deduplication).
    """
    if name == "champ":
        df = load_champ(None if source is None else source)
        return df.head(limit) if limit is not None else df
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; valid names: {sorted(BENCHMARKS) + ['champ']}")
    spec = BENCHMARKS[name]
    if source == "fixture":
        source = spec.fixture_path()
    raw = read_table(source) if source is not None else _load_hub(spec, split or spec.split, allow_download)
    df = spec.mapper(raw, spec.hub_id, spec.name)
    if source is None and spec.n_expected is not None and len(df) != spec.n_expected:
        logger.warning("%s: %d problems, expected %d", spec.hub_id, len(df), spec.n_expected)
    if limit is not None:
        df = df.head(limit).reset_index(drop=True)
    return df[list(SCHEMA)]


def find_source(name: str, source_dir: str | os.PathLike) -> Path:
    """The file ``<source_dir>/<name>.{jsonl,parquet,json}`` (or the benchmark's fixture file name)."""
    source_dir = Path(source_dir)
    names = [name] + ([BENCHMARKS[name].fixture_path().stem] if name in BENCHMARKS else [])
    names += ["champ_v0"] if name == "champ" else []
    for stem in names:
        for ext in (".jsonl", ".parquet", ".json"):
            if (source_dir / f"{stem}{ext}").exists():
                return source_dir / f"{stem}{ext}"
    raise FileNotFoundError(f"no file for benchmark {name!r} in {source_dir} (looked for {names} with "
                            ".jsonl/.parquet/.json)")


# --------------------------------------------------------------------------------------------------------- CHAMP


def champ_path() -> Path:
    """Path of ``champ_dataset/dataset_files/v0.json`` inside the installed ``champ-dataset`` package."""
    import importlib.util

    spec = importlib.util.find_spec("champ_dataset")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"CHAMP needs the optional package: `{CHAMP_INSTALL}` (or `pip install -e .[champ]`)")
    path = Path(next(iter(spec.submodule_search_locations))) / "dataset_files" / "v0.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing from the installed champ-dataset; reinstall it: `{CHAMP_INSTALL}`")
    return path


def load_champ(source: str | os.PathLike | None = None, *, limit: int | None = None) -> pd.DataFrame:
    """CHAMP (Mao et al. 2024; 270 competition problems, MIT) in the common schema, suite ``champ``.

    ``source`` defaults to the installed package's ``v0.json``; ``"fixture"`` selects the shipped fixture.
    ``level`` is -1 (CHAMP has categories, not difficulty levels).
    """
    dataset = "champ-dataset v0.json"
    path = FIXTURES_DIR / "champ_v0.json" if source == "fixture" else Path(source) if source else champ_path()
    data = json.loads(read_text(path))
    if not isinstance(data, dict) or "problems" not in data:
        raise ValueError(f"dataset {dataset!r}: required field 'problems' is missing in {path}")
    records = list(data["problems"].values())
    for field_ in ("identifier", "_text", "_answer"):
        if any(field_ not in r for r in records):
            raise ValueError(f"dataset {dataset!r}: required field {field_!r} is missing from a problem in {path}")
    df = pd.DataFrame({
        "prompt_id": [f"champ-{r['identifier']}" for r in records],
        "problem": [r["_text"].strip() for r in records],
        "answer": [str(r["_answer"]).strip() for r in records],
        "suite": "champ", "domain": "math", "level": -1,
    })
    return df.head(limit).reset_index(drop=True) if limit is not None else df
