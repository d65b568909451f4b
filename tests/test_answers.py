"""The report's answers: every branch of every phrase that depends on a result."""

import pytest

from answers import (
    checked,
    count_phrase,
    epochs_text,
    last_check_note,
    official_norms_sentence,
    official_stop_sentence,
    pct,
    power_of_ten,
    pp,
    seed_spread_sentence,
    steps_phrase,
    stop_text,
)


def test_numbers():
    assert pct(0.91476) == "91.48%" and pct(0.5, 1) == "50.0%"
    assert pp(0.0093) == "0.93 percentage points"
    assert power_of_ten(1e-3) == "10^{-3}" and power_of_ten(2e-6) == "2e-06"


@pytest.mark.parametrize(("steps", "text"), [([42], "step 42"), ([42, 84], "steps 42 and 84"),
                                             ([42, 84, 1260], "steps 42, 84 and 1,260")])
def test_steps_agree_in_number(steps, text):
    assert steps_phrase(steps) == text


@pytest.mark.parametrize(("n", "text"), [(0, "no jumps"), (1, "1 jump"), (3, "3 jumps")])
def test_counts_agree_in_number(n, text):
    assert count_phrase(n, "jump") == text


def test_the_gradient_check_passes_or_fails():
    check = {"max_abs_difference": 1e-9, "tolerance": 1e-6, "epsilon": 1e-3, "num_examples": 100, "num_weights": 785}
    assert checked(check).startswith("The gradient check passes") and "below the tolerance" in checked(check)
    failing = checked({**check, "max_abs_difference": 1e-3})
    assert failing.startswith("The gradient check FAILS") and "above the tolerance" in failing


def run(stop_step, last_check, stopped=False, stop_epoch=3):
    return {"history": {"check_steps": [0, last_check]}, "stop_step": stop_step, "stopped_early": stopped,
            "stop_epoch": stop_epoch}


FIT = {"final_train_set_loss": 0.2809, "final_val_loss": 0.3002, "final_train_accuracy": 0.9241,
       "final_val_accuracy": 0.9148}


def test_the_last_check_is_named_only_when_it_did_not_see_the_final_weights():
    assert last_check_note(run(1549, 1549), FIT) == ""
    assert last_check_note(run(1549, 1548), FIT) == (
        " (the last check in the figure, after step 1,548, gave 0.2809 and 0.3002)")
    assert last_check_note(run(1549, 1548), FIT, loss=False).endswith("gave 92.41% and 91.48%)")


def test_where_a_run_ended():
    assert epochs_text({"num_epochs": 50, "early_stopping_patience": None}) == "50 epochs"
    assert epochs_text({"num_epochs": 50, "early_stopping_patience": 10}) == (
        "up to 50 epochs with early stopping (patience 10 checks)")
    assert stop_text(run(1038, 1038, stopped=True, stop_epoch=33), 500, 10) == (
        "early stopping ended it in epoch 33 (step 1,038)")
    assert stop_text(run(7799, 7781), 50, None) == "it ran all 50 epochs (early stopping off)"
    assert stop_text(run(7799, 7781), 50, 10) == "it ran all 50 epochs (early stopping did not trigger)"


def test_the_official_stop_is_compared_only_for_the_course_defaults():
    assert official_stop_sentence(33, 33, True).endswith("epoch 33 for this run, the same as here.")
    assert official_stop_sentence(35, 33, True).endswith("this run stops 2 epochs later.")
    assert official_stop_sentence(30, 33, True).endswith("this run stops 3 epochs earlier.")
    assert "which this build does not use" in official_stop_sentence(33, 33, False)


def test_the_spread_of_the_shuffled_stop_over_seeds():
    spread = {"seeds": [0, 1, 2, 3], "stop_epochs": [16, 31, 24, 12], "stopped_early": [True] * 4}
    text = seed_spread_sentence(spread, 500)
    assert "seeds 0 to 3 stops between epoch 12 and epoch 31 (median 20)" in text
    assert "depends on the order by up to 19 epochs" in text
    some = seed_spread_sentence({**spread, "stopped_early": [True, True, False, True]}, 500)
    assert "(median 16), and 1 run of the 4 did not stop within 500 epochs" in some
    same = seed_spread_sentence({**spread, "stop_epochs": [7, 7, 7, 7]}, 500)
    assert "every order stops in the same epoch" in same
    assert "did early stopping trigger within 500 epochs" in seed_spread_sentence(
        {**spread, "stopped_early": [False] * 4}, 500)
    assert seed_spread_sentence({"seeds": [0], "stop_epochs": [16], "stopped_early": [True]}, 500) == ""


def test_the_norms_against_the_official_plot():
    official = {2.0: 0.35, 0.2: 2.7}
    assert "agree with them within 4%" in official_norms_sentence({2.0: 0.365, 0.2: 2.74}, official)
    assert "differ by up to 43%" in official_norms_sentence({2.0: 0.5, 0.2: 2.7}, official)
