"""The numbers the report's answers turn on, and its words for them.

The summaries they turn on (summaries.py) are computed by the task notebooks and stored in their results files; the
phrases and sentences have a branch for each outcome. report.ipynb reads the results files and calls these;
tests/test_answers.py tries every branch.
"""

from __future__ import annotations

import math

ORDER_TEXT = {
    "course": "the course's order: a `numpy.random.RandomState` seeded with {seed} shuffles a fresh list of the "
              "indices every epoch, as the course's `batch_loader` does with numpy's global generator",
    "generator": "a `numpy.random.Generator` seeded with {seed} draws a permutation every epoch",
}


def pct(x: float, digits: int = 2) -> str:
    """0.9148 -> '91.48%'."""
    return f"{100 * x:.{digits}f}%"


def pp(x: float, digits: int = 2) -> str:
    """0.0093 -> '0.93 percentage points'."""
    return f"{100 * x:.{digits}f} percentage points"


def power_of_ten(x: float) -> str:
    """LaTeX for x: 10^{n} when x is a power of ten, else x itself."""
    n = round(math.log10(x))
    return f"10^{{{n}}}" if math.isclose(x, 10.0**n) else f"{x:g}"


def steps_phrase(steps: list[int]) -> str:
    """'step 42', 'steps 42 and 84', 'steps 42, 84 and 126'."""
    steps = [f"{s:,}" for s in steps]
    if len(steps) == 1:
        return f"step {steps[0]}"
    return f"steps {', '.join(steps[:-1])} and {steps[-1]}"


def count_phrase(n: int, noun: str) -> str:
    """'no jumps', '1 jump', '3 jumps'."""
    return f"no {noun}s" if n == 0 else f"{n} {noun}{'' if n == 1 else 's'}"


def checked(check: dict) -> str:
    """The gradient check's sentence: passes or FAILS, with its numbers."""
    passes = check["max_abs_difference"] <= check["tolerance"]
    verdict, relation = ("passes", "below") if passes else ("FAILS", "above")
    return (f"The gradient check {verdict}: at random weights drawn from $N(0, 1)$, on the first "
            f"{check['num_examples']} training images, the largest difference between the analytic gradient and "
            f"centred differences ($\\epsilon = {power_of_ten(check['epsilon'])}$, float64) over all "
            f"{check['num_weights']:,} weights is {check['max_abs_difference']:.1e}, {relation} the tolerance "
            f"$\\epsilon^2 = {power_of_ten(check['tolerance'])}$.")


def last_check_note(run: dict, fit: dict, loss: bool = True) -> str:
    """'' when the last check saw the final weights; else what that check gave, for a figure that ends there."""
    last = run["history"]["check_steps"][-1]
    if last == run["stop_step"]:
        return ""
    if loss:
        return (f" (the last check in the figure, after step {last:,}, gave {fit['final_train_set_loss']:.4f} and "
                f"{fit['final_val_loss']:.4f})")
    return (f" (the last check in the figure, after step {last:,}, gave {pct(fit['final_train_accuracy'])} and "
            f"{pct(fit['final_val_accuracy'])})")


def epochs_text(params: dict) -> str:
    """'50 epochs', or 'up to 50 epochs with early stopping (patience 10 checks)'."""
    if params.get("early_stopping_patience") is None:
        return f"{params['num_epochs']} epochs"
    return (f"up to {params['num_epochs']} epochs with early stopping "
            f"(patience {params['early_stopping_patience']} checks)")


def stop_text(run: dict, max_epochs: int, patience: int | None) -> str:
    """Where a run ended: the epoch early stopping stopped it in, or all of its epochs."""
    if run["stopped_early"]:
        return f"early stopping ended it in epoch {run['stop_epoch']} (step {run['stop_step']:,})"
    if patience is None:
        return f"it ran all {max_epochs} epochs (early stopping off)"
    return f"it ran all {max_epochs} epochs (early stopping did not trigger)"


def official_stop_sentence(stop_epoch: int, official: int, as_course: bool) -> str:
    """How the run's stop compares with the official solution's, which holds for the course's defaults only."""
    if not as_course:
        return (f"The course's official solution reports epoch {official} for this run, with the course's default "
                "parameters on MNIST, which this build does not use.")
    if stop_epoch == official:
        return f"The course's official solution reports epoch {official} for this run, the same as here."
    direction = "later" if stop_epoch > official else "earlier"
    return (f"The course's official solution reports epoch {official} for this run; this run stops "
            f"{abs(stop_epoch - official)} epochs {direction}.")


def seed_spread_sentence(seeds: dict, max_epochs: int) -> str:
    """The shuffled stop over several seeds ({"seeds", "stop_epochs", "stopped_early"}): range, median, none."""
    if len(seeds["seeds"]) < 2:
        return ""
    stops = sorted(e for e, stopped in zip(seeds["stop_epochs"], seeds["stopped_early"]) if stopped)
    last_seed, runs = seeds["seeds"][-1], len(seeds["seeds"])
    if not stops:
        return (f"With none of the seeds 0 to {last_seed} did early stopping trigger within {max_epochs} "
                "epochs.")
    middle = len(stops) // 2
    median = stops[middle] if len(stops) % 2 else (stops[middle - 1] + stops[middle]) / 2
    never = runs - len(stops)
    return (f"One order alone does not say after how many epochs early stopping kicks in. The same shuffled run "
            f"with seeds 0 to {last_seed} stops between epoch {stops[0]} and epoch {stops[-1]} (median {median:g})"
            + (f", and {count_phrase(never, 'run')} of the {runs} did not stop within {max_epochs} epochs"
               if never else "")
            + (f": **the stop depends on the order by up to {stops[-1] - stops[0]} epochs**, so the epoch of one "
               "run is one draw from that spread." if stops[-1] > stops[0] else
               ": **every order stops in the same epoch** here."))


def official_norms_sentence(norms: dict[float, float], official: dict[float, float]) -> str:
    """How the squared norms compare with the official plot's (read off it, so about 10% is what it allows)."""
    worst = max(abs(norms[lam] - official[lam]) / official[lam] for lam in official)
    return ("The course's official solution trains these runs with the same early stopping, and its plot gives "
            "the norms in the table; " + (f"ours agree with them within {100 * worst:.0f}% (what reading a plot "
                                          "allows)." if worst <= 0.1 else f"ours differ by up to {100 * worst:.0f}%."))
