"""`build ultrafeedback` on fixtures in the raw openbmb/UltraFeedback schema, with hand-computed
pairs for every pairing policy and rating, plus the real README example row."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from prefcurate.build.ultrafeedback import ASPECTS, build_ultrafeedback
from prefcurate.cli import app
from prefcurate.errors import ConfigError
from prefcurate.ids import completion_id, pair_id, prompt_id
from prefcurate.store import Store

ROOT = Path(__file__).resolve().parent.parent
RAW_EXAMPLE = (
    ROOT.parent / "shared" / "data" / "ultrafeedback_raw_example" / "openbmb_readme_cairo_example.json"
)
NA = "N/A"


def text(letter: str) -> str:
    if letter == "K":
        return "   "  # blank response
    if letter == "L":
        return text("J")  # duplicate of J within the same prompt
    if letter == "Y":
        return " " + text("X") + "\n"  # X up to surrounding whitespace
    return f"Response {letter}: a full answer written by model {letter.lower()}."


def completion(letter: str, overall, fine, aspects: tuple) -> dict:
    """One completion in the raw schema; None leaves a score out, aspects are Rating strings."""
    comp = {
        "model": f"model-{letter.lower()}",
        "principle": "helpfulness",
        "custom_system_prompt": "You are helpful.",
        "response": text(letter),
        "annotations": {
            aspect: {"Rating": str(r), "Rationale": "because"}
            | (
                {"Type": ["1"], "Rationale For Rating": "r"}
                if aspect in ("helpfulness", "truthfulness")
                else {}
            )
            for aspect, r in zip(
                ("helpfulness", "honesty", "instruction_following", "truthfulness"), aspects, strict=False
            )
        },
        "critique": "A critique.",
    }
    if overall is not None:
        comp["overall_score"] = overall
    if fine is not None:
        comp["fine-grained_score"] = fine
    return comp


def row(source: str, instruction: str, completions: list[dict]) -> dict:
    return {
        "source": source,
        "instruction": instruction,
        "models": [c["model"] for c in completions],
        "completions": completions,
        "correct_answers": ["None"],
        "incorrect_answers": ["None"],
    }


# aspects: helpfulness, honesty, instruction_following, truthfulness
ROWS = [
    row(
        "evol_instruct",
        "Prompt zero?",
        [
            completion("A", 8.0, 4.5, (5, 4, 5, 4)),
            completion("B", 6.0, 3.0, (3, 3, 3, 3)),
            completion("C", 8.0, 4.0, (4, NA, 4, 4)),  # ties A on overall
            completion("D", 3.5, 2.0, (2, 2, 2, 2)),
        ],
    ),
    row(
        "truthful_qa",
        "Prompt one?",
        [
            completion("E", 5.0, 3.25, (3, 4, 3, 3)),
            completion("F", None, 4.0, (4, 4, 4, 4)),  # no overall_score
            completion("G", 7.0, 3.25, (NA, NA, NA, NA)),  # all aspects N/A
        ],
    ),
    row(
        "sharegpt",
        "Prompt two?",
        [
            completion("H", 4.0, 4.0, (4, 4, 4, 4)),
            completion("I", 4.0, 4.0, (4, 4, 4, 4)),  # ties everywhere
        ],
    ),
    row(
        "flan_v2",
        "Prompt three?",
        [
            completion("J", 9.0, 5.0, (5, 5, 5, 5)),
            completion("K", 10.0, 5.0, (5, 5, 5, 5)),  # blank response
            completion("L", 2.0, 1.0, (1, 1, 1, 1)),  # duplicate of J
            completion("M", 7.0, 3.5, (4, 3, 4, 3)),
            completion("N", 6.5, 3.5, (3, 4, 3, 4)),
        ],
    ),
    row(
        "ultrachat",
        "Prompt four?",
        [
            completion("X", 7.0, 4.0, (4, 4, 4, 4)),
            completion("Y", 5.0, 3.0, (3, 3, 3, 3)),  # same text as X up to whitespace
            completion("O", 1.0, 2.0, (2, 2, 2, 2)),
        ],
    ),
]

SAME_AS_HELPFULNESS = {
    "top-vs-rest": "AB AC AD FE JM JN XO",
    "best-vs-worst": "AD FE JN XO",
    "all-ordered": "AB AC AD BD CB CD FE JM JN MN XO YO",
}
# Hand-computed: chosen+rejected letters in output order (prompt, chosen index, rejected index).
EXPECTED = {
    "overall": {
        "top-vs-rest": "AB AD GE JM JN XO",
        "best-vs-worst": "AD GE JN XO",
        "all-ordered": "AB AD BD CB CD GE JM JN MN XO YO",
    },
    "fine-grained": {
        "top-vs-rest": "AB AC AD FE FG JM JN XO",
        "best-vs-worst": "AD FG JN XO",
        "all-ordered": "AB AC AD BD CB CD FE FG JM JN XO YO",
    },
    "helpfulness": SAME_AS_HELPFULNESS,
    "instruction_following": SAME_AS_HELPFULNESS,
    "honesty": {
        "top-vs-rest": "AB AD JM JN XO",
        "best-vs-worst": "AD JM XO",
        "all-ordered": "AB AD BD JM JN NM XO YO",
    },
    "truthfulness": {
        "top-vs-rest": "AB AD FE JM JN XO",
        "best-vs-worst": "AD FE JM XO",
        "all-ordered": "AB AD BD CB CD FE JM JN NM XO YO",
    },
    "mean-aspects": {
        "top-vs-rest": "AB AC AD FE JM JN XO",
        "best-vs-worst": "AD FE JN XO",
        "all-ordered": "AB AC AD BD CB CD FE JM JN XO YO",
    },
}
EXPECTED_DROPS = {  # pair-level reasons per rating and pairing (completion-level ones below)
    ("overall", "top-vs-rest"): {"tie": 2, "identical_text": 1},
    ("overall", "best-vs-worst"): {"tie": 1},
    ("overall", "all-ordered"): {"tie": 2, "identical_text": 1},
    ("fine-grained", "all-ordered"): {"tie": 3, "identical_text": 1},
    ("honesty", "top-vs-rest"): {"tie": 2, "identical_text": 1},
}


def rating_of(rating: str, letter: str) -> float | None:
    comp = next(c for r in ROWS for c in r["completions"] if c["model"] == f"model-{letter.lower()}")
    if rating == "overall":
        return comp.get("overall_score")
    if rating == "fine-grained":
        return comp.get("fine-grained_score")
    values = [comp["annotations"][a]["Rating"] for a in ASPECTS]
    if rating != "mean-aspects":
        values = [comp["annotations"][rating]["Rating"]]
    nums = [float(v) for v in values if v != NA]
    return sum(nums) / len(nums) if nums else None


def letter_of(model: str) -> str:
    return model.split("-")[1].upper()


@pytest.fixture
def raw_file(tmp_path: Path) -> Path:
    path = tmp_path / "uf.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return path


def built(store: Store, path: Path, **kw):
    result = build_ultrafeedback(store, str(path), **kw)
    return result, result.ref.read().to_pylist()


@pytest.mark.parametrize("rating", list(EXPECTED))
@pytest.mark.parametrize("pairing", ["top-vs-rest", "best-vs-worst", "all-ordered"])
def test_expected_pairs_every_policy_and_rating(tmp_path, raw_file, rating, pairing):
    result, rows = built(Store(tmp_path / "s"), raw_file, rating=rating, pairing=pairing)
    got = " ".join(letter_of(r["chosen_model"]) + letter_of(r["rejected_model"]) for r in rows)
    assert got == EXPECTED[rating][pairing]
    for r in rows:
        assert r["chosen_score"] == rating_of(rating, letter_of(r["chosen_model"]))
        assert r["rejected_score"] == rating_of(rating, letter_of(r["rejected_model"]))
        assert r["chosen_score"] > r["rejected_score"]
        assert json.loads(r["meta"])["rating"] == rating and json.loads(r["meta"])["pairing"] == pairing
    counts = result.counts
    assert counts["read"] == 5 and counts["kept"] == len(rows) and counts["completions"] == 17
    assert counts["dropped"]["empty_response"] == 1 and counts["dropped"]["duplicate_completion"] == 1
    if (rating, pairing) in EXPECTED_DROPS:
        for reason, n in EXPECTED_DROPS[(rating, pairing)].items():
            assert counts["dropped"][reason] == n
    manifest = result.ref.manifest
    assert manifest["options"]["rating"] == rating and manifest["options"]["pairing"] == pairing


def test_missing_ratings_counted(tmp_path, raw_file):
    # overall: F has no overall_score; mean-aspects: G is all N/A; honesty: C, G are N/A.
    assert built(Store(tmp_path / "a"), raw_file)[0].counts["dropped"]["missing_rating"] == 1
    assert (
        built(Store(tmp_path / "b"), raw_file, rating="mean-aspects")[0].counts["dropped"]["missing_rating"]
        == 1
    )
    res = built(Store(tmp_path / "c"), raw_file, rating="honesty")[0]
    assert res.counts["dropped"]["missing_rating"] == 2


def test_pair_fields_and_shared_completion_ids(tmp_path, raw_file):
    _, rows = built(Store(tmp_path / "s"), raw_file, dataset="uf-test")
    first = rows[0]
    pid = prompt_id([{"role": "user", "content": "Prompt zero?"}])
    assert first["prompt"] == [{"role": "user", "content": "Prompt zero?"}]
    assert first["prompt_id"] == pid and first["dataset"] == "uf-test" and first["source"] == "evol_instruct"
    assert first["chosen"] == text("A") and first["rejected"] == text("B")
    assert first["chosen_id"] == completion_id(pid, text("A"))
    assert first["pair_id"] == pair_id(pid, first["chosen_id"], first["rejected_id"])
    # A is chosen in two pairs of prompt zero: one completion id.
    a_ids = {r["chosen_id"] for r in rows if r["chosen_model"] == "model-a"}
    assert len(a_ids) == 1
    assert json.loads(first["meta"]) == {
        "chosen_index": 0,
        "pairing": "top-vs-rest",
        "rating": "overall",
        "rejected_index": 1,
    }
    assert len({r["pair_id"] for r in rows}) == len(rows)


def test_best_vs_random_is_seeded(tmp_path, raw_file):
    seen = set()
    for seed in range(12):
        _, rows = built(
            Store(tmp_path / f"s{seed}"), raw_file, pairing="best-vs-random", seed=seed, rating="fine-grained"
        )
        _, again = built(
            Store(tmp_path / f"t{seed}"), raw_file, pairing="best-vs-random", seed=seed, rating="fine-grained"
        )
        assert rows == again
        by_prompt = {
            r["prompt"][0]["content"]: letter_of(r["chosen_model"]) + letter_of(r["rejected_model"])
            for r in rows
        }
        # The chosen is always the best; the rejected one of the others (ties and identical text dropped).
        assert by_prompt.get("Prompt zero?") in {"AB", "AC", "AD"}
        assert by_prompt.get("Prompt one?") in {"FE", "FG"}
        assert "Prompt two?" not in by_prompt
        assert by_prompt.get("Prompt three?") in {"JM", "JN"}
        assert by_prompt.get("Prompt four?") in {"XO", None}  # Y is dropped as identical_text
        seen.add(tuple(sorted(by_prompt.items())))
    assert len(seen) > 3  # different seeds draw different rejected completions


def test_min_gap_exclude_source_and_limit(tmp_path, raw_file):
    res, rows = built(Store(tmp_path / "a"), raw_file, min_gap=2.0)
    # overall top-vs-rest gaps: AB 2, AD 4.5, GE 2, JM 2, JN 2.5, XO 6: none below 2.
    assert len(rows) == 6 and "below_min_gap" not in res.counts["dropped"]
    res, rows = built(Store(tmp_path / "b"), raw_file, min_gap=2.1)
    assert " ".join(letter_of(r["chosen_model"]) + letter_of(r["rejected_model"]) for r in rows) == "AD JN XO"
    assert res.counts["dropped"]["below_min_gap"] == 3
    res, rows = built(Store(tmp_path / "c"), raw_file, exclude_sources=["truthful_qa"])
    assert {r["source"] for r in rows} == {"evol_instruct", "flan_v2", "ultrachat"}
    assert res.counts["dropped"]["excluded_source"] == 1
    res, rows = built(Store(tmp_path / "d"), raw_file, limit=2)
    assert res.counts["read"] == 2 and len(rows) == 3


def test_options_validated(tmp_path, raw_file):
    store = Store(tmp_path / "s")
    with pytest.raises(ConfigError, match="'best-vs-best'"):
        build_ultrafeedback(store, str(raw_file), pairing="best-vs-best")
    with pytest.raises(ConfigError, match="'kindness'"):
        build_ultrafeedback(store, str(raw_file), rating="kindness")
    with pytest.raises(ConfigError, match="-1"):
        build_ultrafeedback(store, str(raw_file), min_gap=-1)
    assert not (tmp_path / "s" / "pairs").exists()


def test_deterministic_and_reused(tmp_path, raw_file):
    s1, s2 = Store(tmp_path / "one"), Store(tmp_path / "two")
    r1 = build_ultrafeedback(s1, str(raw_file), pairing="all-ordered")
    r2 = build_ultrafeedback(s2, str(raw_file), pairing="all-ordered")
    files1, files2 = r1.ref.parquet_files(), r2.ref.parquet_files()
    assert [f.read_bytes() for f in files1] == [f.read_bytes() for f in files2]
    again = build_ultrafeedback(s1, str(raw_file), pairing="all-ordered")
    assert again.reused and again.ref.version == "v1"
    forced = build_ultrafeedback(s1, str(raw_file), pairing="all-ordered", force=True)
    assert not forced.reused and forced.ref.version == "v2"
    assert pq.read_table(forced.ref.parquet_files()[0]).equals(pq.read_table(files1[0]))
    m = r1.ref.manifest
    assert m["inputs"][0]["path"] == str(raw_file) and len(m["inputs"][0]["fingerprint"]) == 32
    assert m["counts"]["kept"] == 11 and m["fingerprint"]


def test_json_parquet_and_folder_inputs_agree(tmp_path, raw_file):
    import pyarrow as pa

    (tmp_path / "arr.json").write_text(json.dumps(ROWS))
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS[:2]))
    (folder / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS[2:]))
    pq.write_table(pa.Table.from_pylist(ROWS), tmp_path / "uf.parquet")
    ref_rows = built(Store(tmp_path / "s0"), raw_file)[1]
    for i, path in enumerate((tmp_path / "arr.json", folder, tmp_path / "uf.parquet")):
        rows = built(Store(tmp_path / f"s{i + 1}"), path)[1]
        assert rows == ref_rows


def test_cli_summary(tmp_path, raw_file):
    res = CliRunner().invoke(
        app,
        [
            "build",
            "ultrafeedback",
            "--from",
            str(raw_file),
            "--store",
            str(tmp_path / "s"),
            "--exclude-source",
            "truthful_qa",
            "--rating",
            "mean-aspects",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "Wrote pairs/ultrafeedback/v1: 6 pairs from 5 rows" in res.stdout
    assert "excluded_source=1" in res.stdout and "tie=1" in res.stdout


@pytest.mark.skipif(not RAW_EXAMPLE.is_file(), reason="../shared/data not available")
def test_real_readme_example(tmp_path):
    row_ = json.loads(RAW_EXAMPLE.read_text())
    row_.pop("_provenance", None)
    path = tmp_path / "cairo.json"
    path.write_text(json.dumps(row_))
    # Only completion 1 has annotations and none has overall_score: nothing to pair, all counted.
    res = build_ultrafeedback(Store(tmp_path / "s"), str(path), rating="overall")
    assert res.counts == {
        "read": 1,
        "completions": 4,
        "kept": 0,
        "dropped": {"missing_rating": 4, "too_few_completions": 1},
    }
    # Give the other three completions the aspect ratings a rater might have: now it pairs.
    for comp, ratings in zip(
        row_["completions"][1:],
        [("5", "5", "5", "5"), ("3", "N/A", "3", "3"), ("2", "2", "1", "2")],
        strict=False,
    ):
        comp["annotations"] = {
            a: {"Rating": r, "Rationale": "x"} for a, r in zip(ASPECTS, ratings, strict=False)
        }
    path.write_text(json.dumps(row_))
    res = build_ultrafeedback(Store(tmp_path / "t"), str(path), rating="mean-aspects")
    rows = res.ref.read().to_pylist()
    # mean-aspects: falcon (3+3+2+3)/4 = 2.75, gpt-4 5, starchat 3, wizardlm 1.75 -> gpt-4 vs each.
    assert [(r["chosen_model"], r["rejected_model"], r["rejected_score"]) for r in rows] == [
        ("gpt-4", "falcon-40b-instruct", 2.75),
        ("gpt-4", "starchat", 3.0),
        ("gpt-4", "wizardlm-7b", 1.75),
    ]
    assert rows[0]["source"] == "sharegpt" and rows[0]["prompt"][0]["content"].startswith(
        "I am going to cairo"
    )


def test_changed_input_is_rebuilt_not_reused(tmp_path, raw_file):
    store = Store(tmp_path / "s")
    first = build_ultrafeedback(store, str(raw_file))
    raw_file.write_text(raw_file.read_text() + json.dumps(ROWS[0] | {"instruction": "Prompt five?"}) + "\n")
    second = build_ultrafeedback(store, str(raw_file))
    assert not second.reused and second.ref.version == "v2" and second.counts["read"] == 6
    assert first.ref.manifest["fingerprint"] != second.ref.manifest["fingerprint"]
    assert build_ultrafeedback(store, str(raw_file)).ref.version == "v2"


def test_chunkwise_take_matches_arrow_take():
    import numpy as np
    import pyarrow as pa

    from prefcurate.build.ultrafeedback import _take

    arr = pa.chunked_array(
        [pa.array(["a", "b"]), pa.array([], pa.string()), pa.array(["c", "d", "e"]), pa.array(["f"])]
    )
    for idx in ([0, 0, 1, 2, 4, 5], [5, 4, 0, 3, 3], [], [2]):
        want = arr.take(pa.array(idx, pa.int64())).to_pylist()
        assert _take(arr, np.array(idx, dtype=np.int64)).to_pylist() == want


def test_large_input_in_several_parts(tmp_path, monkeypatch):
    """Many prompts: several Parquet parts and several read blocks, same rows as one part."""
    import prefcurate.build.ultrafeedback as uf
    import prefcurate.readers as readers

    rows = [
        row(
            "s",
            f"Prompt {i}?",
            [completion("A", float(i % 7), 1.0, (1, 1, 1, 1)), completion("B", 3.0, 1.0, (1, 1, 1, 1))],
        )
        for i in range(400)
    ]
    for i, r in enumerate(rows):  # distinct texts per prompt
        for c in r["completions"]:
            c["response"] += f" #{i}"
    path = tmp_path / "many.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    whole = build_ultrafeedback(Store(tmp_path / "a"), str(path)).ref.read()
    monkeypatch.setattr(uf, "CHUNK_PAIRS", 50)
    monkeypatch.setattr(readers, "_STREAM_BLOCK", 1 << 14)
    res = build_ultrafeedback(Store(tmp_path / "b"), str(path))
    assert len(res.ref.parquet_files()) > 5
    assert res.ref.read().equals(whole)
    assert whole.num_rows == sum(1 for i in range(400) if i % 7 != 3)
