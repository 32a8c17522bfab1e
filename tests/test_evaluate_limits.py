"""Lab 3's judge trust and hints: trust needs enough answered texts and no failed ones, and hints show numbers
as a learner writes them and point to the idea without giving the answer."""

from __future__ import annotations

import numpy as np
import pandas as pd

from marketlab import data, evaluate
from marketlab.checks import lab03

SHOPS = data.datasets_dir() / "shops"


def _shop(name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    folder = SHOPS / name
    return (pd.read_csv(folder / "texts.csv", keep_default_na=False),
            pd.read_csv(folder / "products.csv", keep_default_na=False))


# -- trust needs evidence enough ------------------------------------------------------------------

def test_a_judge_that_failed_on_5_of_12_texts_is_not_trusted_on_the_7_it_answered() -> None:
    # issue 26: 7 answered of 12 (agreement 86%, kappa 0.72) printed "Trust this judge? True"
    human = [True, True, True, False, False, False, True, True, False, True, False, True]
    judge = pd.Series([True, True, True, False, False, True, True] + [pd.NA] * 5, dtype="boolean")
    result = evaluate.calibrate(judge, human)
    assert result.n == 7 and result.failed == 5
    assert result.agreement > max(b.agreement for b in result.baselines.values()) and result.kappa >= 0.6
    assert not result.trust
    assert "5 of 12 rows got no answer" in result.why and "only 7 rows" in result.why
    line = lab03.trust_line(lab03.reference_trust(result.agreement, result.kappa, 0.57), result)
    assert line.startswith("Trust this judge? Not yet") and "? True" not in line
    assert "5 of 12" in line and "at least 30" in line


def test_failed_rows_alone_block_trust_and_enough_clean_rows_allow_it() -> None:
    human = [i % 3 != 0 for i in range(60)]
    clean = evaluate.calibrate(human, human)
    assert clean.trust and clean.failed == 0
    assert lab03.trust_line(True, clean).startswith("Trust this judge? True (")
    one_failed = pd.Series(human, dtype="boolean")
    one_failed.iloc[4] = pd.NA
    result = evaluate.calibrate(one_failed, human)
    assert result.n == 59 and not result.trust and "1 of 60 rows got no answer" in result.why


def test_too_few_rows_block_trust_even_when_every_one_agrees() -> None:
    human = [True, False] * 14  # 28 rows, all agreeing
    result = evaluate.calibrate(human, human)
    assert result.agreement == 1 and result.kappa == 1 and not result.trust
    assert "Only 28 rows were compared" in result.why
    assert evaluate.calibrate(human, human, min_answered=20).trust


def test_a_missing_human_label_is_left_out_but_is_not_a_judge_failure() -> None:
    human = pd.Series([i % 2 == 0 for i in range(40)], dtype="boolean")
    human.iloc[0] = pd.NA
    result = evaluate.calibrate([i % 2 == 0 for i in range(40)], human)
    assert result.excluded == 1 and result.failed == 0 and result.trust


# -- hints show numbers plainly and do not give the answer away -----------------------------------

def test_a_numpy_number_in_a_hint_reads_as_a_plain_number() -> None:
    def over_all_rows(run, checked):  # the share of every row, not of the ok rows: 3/5 = np.float64(0.6)
        return (~checked["faithfulness"]).mean()

    result = lab03.check_ok_but_unfaithful(over_all_rows, strict=False, quiet=True)
    assert not result.passed
    assert "it gave 0.6," in result.problems[0] and "np." not in result.text()


def test_numpy_answers_to_the_trust_and_agreement_checks_read_plainly() -> None:
    trust = lab03.check_trust(lambda a, k, b: np.bool_(True), strict=False, quiet=True)
    assert not trust.passed and "np." not in trust.text()
    agreement = lab03.check_agreement(lambda p, h: (np.float64(0.5), np.float64(0.25), np.float64(1.0)),
                                      [([True, False], [True, True])], strict=False, quiet=True)
    assert "(0.5, 0.25, 1)" in agreement.problems[0] and "np." not in agreement.text()
    assert lab03.plain(np.int64(3)) == "3" and lab03.plain(np.float64(2 / 3)) == "0.6667"


def test_the_ok_but_unfaithful_hint_points_to_the_idea_not_the_code() -> None:
    result = lab03.check_ok_but_unfaithful(lambda run, checked: 0.0, strict=False, quiet=True)
    assert not result.passed
    # The exercise is one line now (the share's denominator, which the lab's text names): the hint says
    # what to divide by and why, never the whole line.
    for answer in ("checked.loc", "run['status'] == 'ok'", ".mean()", "return ", "(ok & unfaithful)"):
        assert answer not in result.hint
    assert "ok rows" in result.hint and "share" in result.hint
