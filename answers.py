"""The report's answers: every number its Markdown cells show, as a named value, and every verdict they branch on.

report.ipynb's answers are Markdown. A number is a MyST inline expression, {eval}`t3.gap`; a cell that starts with
{eval}`when(t3.overfits)` is one branch of an answer, in the report only when its condition holds. JupyterLab shows
the values after Run All (the jupyterlab-myst extension); `make report` and Jupyter's exports write them in
(support/export.py). Values are text as the report prints it (`Md` when it holds math, emphasis or a table);
verdicts are booleans. Every value exists whatever the outcome: tests/test_answers.py renders every branch.
"""

from __future__ import annotations

import math
import statistics

from IPython.display import Image, display

from experiments import OFFICIAL_2022, TASK_CONFIGS
from mnist import CLASS_KINDS, DATASET_NAMES
from support import handoff
from support.phrases import (  # when: report.ipynb imports it from here
    NONE,
    NOT_THIS_RUN,  # noqa: F401 (the tests' and the report's)
    Md,
    Pending,
    count_phrase,
    epochs_text,
    no,  # noqa: F401 (the report's)
    pct,
    pp,
    steps_phrase,
    when,  # noqa: F401
)
from support.results import ResultsError, figure_bytes, figure_ranges, load_results, problem_of

ORDER_TEXT = {
    "course": "the course's order: a `numpy.random.RandomState` seeded with {seed} shuffles a fresh list of the "
              "indices every epoch, as the course's `batch_loader` does with numpy's global generator",
    "generator": "a `numpy.random.Generator` seeded with {seed} draws a permutation every epoch",
}


def load_answers() -> tuple[Data, Task2, Task3, Task4]:
    """The answers to the task notebooks' last runs: their results files (build/results/, or where the build says),
    each checked; ResultsError naming the notebook to run when one is missing, outdated or not what was asked for.
    In JupyterLab, such a task's values show as pending instead, and one line says which notebook to run."""
    folder, keys, parameters = handoff.report_inputs()
    results, unusable = {}, []
    for task in ("task2", "task3", "task4"):
        try:
            results[task] = load_results(task, results_dir=folder, expected_key=keys.get(task),
                                         expected_parameters=parameters.get(task))
        except ResultsError as exc:
            if not handoff.in_editor():  # a build or an export: it stops, the error naming the notebook to run
                raise
            unusable.append(task)
            print(f"{problem_of(str(exc))}: run {task}.ipynb, then this notebook again; its values show as pending")
    figures = folder.parent / "figures"
    tasks = [cls(results[task], figures) if task in results else NotRun(task)
             for cls, task in ((Task2, "task2"), (Task3, "task3"), (Task4, "task4"))]
    data = Data(results) if {"task2", "task3"} <= results.keys() else NotRun(unusable[0])
    return data, *tasks


class NotRun:
    """A task whose results file is missing or unusable, read in JupyterLab: every value a pending mark, every
    verdict false, every figure the mark."""

    def __init__(self, task: str):
        self.pending_mark = f"(pending: {task}.ipynb must run again)"

    def __getattr__(self, name: str) -> Pending:
        if name.startswith("_"):
            raise AttributeError(name)
        return Pending(self.pending_mark)

    def figure(self, name: str) -> None:
        display(Md(f"*{self.pending_mark}*"))


class GradientCheck:
    """One gradient check's numbers (Tasks 2a, 3a, 4a)."""

    def __init__(self, check: dict):
        passes = check["max_abs_difference"] <= check["tolerance"]
        self.verdict, self.relation = ("passes", "below") if passes else ("FAILS", "above")
        self.examples = f"{check['num_examples']:,}"
        self.weights = f"{check['num_weights']:,}"
        self.difference = f"{check['max_abs_difference']:.1e}"
        self.epsilon, self.tolerance = f"{check['epsilon']:g}", f"{check['tolerance']:.1e}"
        self.inputs, self.std = f"{check['num_inputs']:,}", f"{check['weight_std']:.4f}"


class Run:
    """One training run as its results file holds it ({"history", "final", "best", ...}), and its fit summary."""

    def __init__(self, run: dict, fit: dict | None = None):
        self.fit = fit or {}
        final, history = run["final"], run["history"]
        self.stopped = run["stopped_early"]
        self.steps = f"{run['num_steps']:,}"
        self.steps_per_epoch, self.val_every = str(run["steps_per_epoch"]), str(run["val_every"])
        self.stop_epoch, self.stop_step = str(run["stop_epoch"]), f"{run['stop_step']:,}"
        self.epochs_trained = str(run["stop_epoch"] + 1)
        self.best_step, self.best_val_loss = f"{run['best_step']:,}", f"{run['best_val_loss']:.4f}"
        self.best_epoch = str(run["best_step"] // run["steps_per_epoch"])
        self.train_set_loss, self.val_loss = f"{final['train_set_loss']:.4f}", f"{final['val_loss']:.4f}"
        self.train_accuracy, self.val_accuracy = pct(final["train_accuracy"]), pct(final["val_accuracy"])
        self.best_val_accuracy = pct(self.fit["best_val_accuracy"]) if self.fit else NONE
        after = run["num_steps"] - 1 - history["check_steps"][-1]
        self.after_last_check = f"{after} step{'' if after == 1 else 's'}"
        last, sees_final = history["check_steps"][-1], history["check_steps"][-1] == run["stop_step"]
        fit = self.fit or {k: math.nan for k in ("final_train_set_loss", "final_val_loss", "final_train_accuracy",
                                                 "final_val_accuracy")}
        # for a figure that ends at the last check: what that check gave, when it did not see the final weights
        self.last_check_loss = "" if sees_final else (
            f" (the last check in the figure, after step {last:,}, gave {fit['final_train_set_loss']:.4f} and "
            f"{fit['final_val_loss']:.4f})")
        self.last_check_accuracy = "" if sees_final else (
            f" (the last check in the figure, after step {last:,}, gave {pct(fit['final_train_accuracy'])} and "
            f"{pct(fit['final_val_accuracy'])})")


class _Task:
    """What every task's answers share: its results record, parameters, gradient check and figures."""

    def __init__(self, results: dict, figures_dir):
        self.results, self.figures_dir = results, figures_dir
        self.p = results["parameters"]
        self.pending = results.get("pending", {})  # {task: why its part did not run} in a partly done assignment
        if "gradient_check" in results:
            self.check = GradientCheck(results["gradient_check"])
        self.learning_rate, self.batch_size = f"{self.p['learning_rate']:g}", str(self.p["batch_size"])
        self.num_epochs, self.epochs = str(self.p["num_epochs"]), epochs_text(self.p)
        self.patience = str(self.p["early_stopping_patience"])
        self.train_size, self.num_val = f"{self.p['train_size']:,}", f"{results['data']['num_val']:,}"

    def __getattr__(self, name: str):
        """A value of a part that did not run (a task pending): a mark JupyterLab shows where the value would be, and
        every branch reads as false. Otherwise AttributeError."""
        if self.__dict__.get("pending") and not name.startswith("_"):
            return Pending(self.pending_mark)
        raise AttributeError(f"{type(self).__name__} has no {name!r}")

    @property
    def pending_mark(self) -> str:
        return f"(pending: {next(iter(self.pending.values()))})"

    def _answer(self, needs: list[str], part) -> None:
        """part(), the values of a part of the answers, when the results hold all it `needs` (or runs of it)."""
        runs = self.results.get("runs", {})
        if all(key in self.results or key in runs for key in needs):
            part()

    def figure(self, name: str) -> None:
        """Show the figure's PNG, as its results file names it (checked against the digest there); a pending mark for a
        figure of a task that waits."""
        if self.pending and f"{name}.png" not in self.results.get("figures", {}):
            return display(Md(f"*{self.pending_mark}*"))
        display(Image(data=figure_bytes(self.results, name, self.figures_dir)))

    def note(self, name: str) -> str:
        """What the figure's y-range shows ('' when it shows everything)."""
        return " ".join(r["note"] for r in figure_ranges(self.results).get(name, []) if r["note"])


class Data:
    """The data and the settings all tasks share (the report's first paragraph)."""

    def __init__(self, results: dict[str, dict]):
        t2, t3 = results["task2"], results["task3"]
        p = t3["parameters"]
        self.dataset, self.class_kind = DATASET_NAMES[p["dataset"]], CLASS_KINDS[p["dataset"]]
        self.class_noun = self.class_kind.removesuffix("s")  # "digit", "garment"
        self.class1, self.class2 = t2["class_names"]
        self.pair = (f"the digits {self.class1} and {self.class2}" if self.class1.isdigit()
                     else f"the classes {self.class1} and {self.class2}")
        self.train_size, self.batch_size = f"{p['train_size']:,}", str(p["batch_size"])
        self.num_train_pair, self.num_val_pair = f"{t2['data']['num_train']:,}", f"{t2['data']['num_val']:,}"
        self.num_val = f"{t3['data']['num_val']:,}"
        changed = {task: TASK_CONFIGS[task](**r["parameters"]).changed() for task, r in results.items()}
        self.as_course = not any(changed.values())  # the official solution's numbers apply (COURSE_2022)
        listed = "; ".join(f"{task}: " + ", ".join(f"`{k} = {v}`" for k, v in c.items())
                           for task, c in changed.items() if c)
        self.changed = Md(listed) if listed else NONE


class Task2(_Task):
    """Logistic regression: the answers to 2a-2e, and what the model learned."""

    def __init__(self, results: dict, figures_dir):
        super().__init__(results, figures_dir)
        self.max_epochs = str(self.p["num_epochs_early_stopping"])
        self.class1, self.class2 = results["class_names"]
        self._answer(["plain", "fit"], self._plain)
        self._answer(["plain", "early_stopping"], self._early)
        self._answer(["early_stopping", "early_stopping_shuffled", "shuffle_comparison", "shuffle_seeds"],
                     self._shuffled)
        self._answer(["analysis"], self._analysis)

    def _plain(self) -> None:
        """2b, 2c: the run without shuffling or early stopping."""
        plain = self.results["runs"]["plain"]
        self.plain = Run(plain, self.results["fit"])
        spe = plain["steps_per_epoch"]
        means = [statistics.fmean(plain["history"]["train_loss"][i:i + spe]) for i in range(0, plain["num_steps"], spe)]
        self.epochs_falling, self.epoch_pairs = str(sum(b < a for a, b in zip(means, means[1:]))), str(len(means) - 1)

    def _early(self) -> None:
        """2d: what stopping cost, and the weights of the lowest validation loss against the last ones."""
        plain, early = self.results["runs"]["plain"], self.results["runs"]["early_stopping"]
        self.early = Run(early)
        self.stopping_cheap = plain["final"]["val_accuracy"] - early["final"]["val_accuracy"] < 0.005
        best, last = early["best"]["val_accuracy"], early["final"]["val_accuracy"]
        self.best_accuracy = pct(best)
        self.best_vs_last = ("the same as the last weights" if best == last else
                             f"{pp(abs(best - last))} {'more' if best > last else 'fewer'} than the last weights")
        official = OFFICIAL_2022["task2d_stop_epoch"]
        self.official_stop, self.official_stop_shuffled = str(official), str(OFFICIAL_2022["task2e_stop_epoch"])
        self.stops_as_official = early["stop_epoch"] == official
        self.stop_offset = (f"{abs(early['stop_epoch'] - official)} epochs "
                            f"{'later' if early['stop_epoch'] > official else 'earlier'}")

    def _shuffled(self) -> None:
        """2e: how much the curves jump with shuffling and without, and where; the stop over several seeds."""
        p, results = self.p, self.results
        early, shuffled = results["runs"]["early_stopping"], results["runs"]["early_stopping_shuffled"]
        self.shuffled = Run(shuffled)
        self.order = Md(ORDER_TEXT[p["shuffle_order"]].format(seed=p["shuffle_seed"]))
        self.course_order = p["shuffle_order"] == "course"
        self.shuffled_as_official = shuffled["stop_epoch"] == OFFICIAL_2022["task2e_stop_epoch"] and self.course_order
        c = results["shuffle_comparison"]
        self.compared = f"steps {c['first_step']} to {c['last_step']}, {c['num_checks']} checks"
        rl, ra = c["val_loss_roughness"], c["val_accuracy_roughness"]
        self.loss_jumps, self.loss_jumps_shuffled = f"{rl['plain']:.4f}", f"{rl['shuffled']:.4f}"
        self.accuracy_jumps, self.accuracy_jumps_shuffled = pp(ra["plain"]), pp(ra["shuffled"])
        self.roughness = {"loss": rl, "accuracy": ra}  # mean |change| between checks, {"plain", "shuffled"} each
        spikes, spikes_shuffled = c["spikes_plain"], c["spikes_shuffled"]
        self.periodic = len(spikes["steps"]) >= 2 and len(spikes["batch_in_epoch"]) == 1
        self.scattered = bool(spikes["steps"]) and not self.periodic
        self.period = str(math.lcm(early["steps_per_epoch"], early["val_every"]))
        gaps = {b - a for a, b in zip(spikes["steps"], spikes["steps"][1:])}
        self.spikes = steps_phrase(spikes["steps"]) + (f", every {self.period} steps" if gaps == {int(self.period)}
                                                       and self.periodic else "")
        self.spike_batch = str(spikes["batch_in_epoch"][0]) if spikes["batch_in_epoch"] else NONE
        n = len(spikes["steps"])
        self.jumps_come = (f"{'jump' if n == 1 else 'jumps'} (a rise of the validation loss more than ten times the "
                           f"median change) {'comes' if n == 1 else 'come'}")
        n = len(spikes_shuffled["steps"])
        self.shuffled_spikes = bool(n)
        self.shuffled_jumps = (f"{count_phrase(n, 'such jump')} {'appears' if n == 1 else 'appear'}, at "
                               f"{steps_phrase(spikes_shuffled['steps'])}" if n else "none appears")
        self.shuffled_jumps_where = (", at varying positions in the epoch" if len(spikes_shuffled["batch_in_epoch"]) > 1
                                     else "")
        self.shuffled_stop = (f"stops in epoch {shuffled['stop_epoch']}" if shuffled["stopped_early"]
                              else "does not stop early")
        seeds = results["shuffle_seeds"]
        stops = sorted(e for e, stopped in zip(seeds["stop_epochs"], seeds["stopped_early"]) if stopped)
        self.seed_sweep = len(seeds["seeds"]) >= 2
        self.seeds_stopped = bool(stops)
        self.last_seed = str(seeds["seeds"][-1])
        self.seed_stops = (f"between epoch {stops[0]} and epoch {stops[-1]} (median {statistics.median(stops):g})"
                           if stops else NONE)
        never = len(seeds["seeds"]) - len(stops)
        self.seeds_never = (f", and {count_phrase(never, 'run')} of the {len(seeds['seeds'])} did not stop within "
                            f"{self.max_epochs} epochs" if never else "")
        self.seed_spread = str(stops[-1] - stops[0]) if stops else "0"
        self.stop_varies = bool(stops) and stops[-1] > stops[0]

    def _analysis(self) -> None:
        """What the model of 2b learned, and its most confident mistakes."""
        a = self.results["analysis"]
        self.mistakes_shown, self.num_wrong = count_phrase(len(a["mistakes"]), "validation image"), str(a["num_wrong"])
        self.wrong = pct(a["num_wrong"] / a["num_val"])
        top = a["mistakes"][0] if a["mistakes"] else None
        self.top_mistake = (f"; the most confident mistake calls a {top['true']} a {top['predicted']} with "
                            f"probability {top['confidence']:.3f}" if top else "")


    @property
    def smoother(self) -> bool:
        """2e: whether shuffling makes the curves smoother, from self.roughness[curve][run] (curve "loss" or
        "accuracy", run "plain" or "shuffled"): the mean absolute change of the validation curve between checks."""
        # BEGIN SOLUTION Task 2e: decide from self.roughness whether shuffling made the validation curves smoother
        loss, accuracy = self.roughness["loss"], self.roughness["accuracy"]
        return loss["shuffled"] < loss["plain"] and accuracy["shuffled"] < accuracy["plain"]
        # END SOLUTION


class Task3(_Task):
    """Softmax regression: the answers to 3a-3d, and where the model fails."""

    def __init__(self, results: dict, figures_dir):
        super().__init__(results, figures_dir)
        self._answer(["softmax", "fit", "gradient_check"], self._run)
        self._answer(["analysis"], self._analysis)

    def _run(self) -> None:
        """3b, 3c, and the numbers that decide 3d, whether it overfits."""
        f, run = self.results["fit"], self.results["runs"]["softmax"]
        self.run = Run(run, f)
        self.num_weights = f"{self.results['gradient_check']['num_weights']:,}"
        per_epoch = run["steps_per_epoch"] / run["val_every"]
        slope_per_epoch = f["val_loss_tail_slope"] * per_epoch
        above_min = f["final_val_loss"] / f["min_val_loss"] - 1
        self.last_step, self.train_at_last, self.val_at_last = (f"{f['final_step']:,}", pct(f["final_train_accuracy"]),
                                                                pct(f["final_val_accuracy"]))
        self.gap = pp(f["accuracy_gap"])
        self.train_loss_at_last = f"{f['final_train_set_loss']:.4f}"
        self.val_loss_at_last = f"{f['final_val_loss']:.4f}"
        self.min_val_loss, self.min_step = f"{f['min_val_loss']:.4f}", f"{f['min_val_loss_step']:,}"
        self.above_min, self.tail_epochs = pct(above_min, 1), f"{f['tail_checks'] / per_epoch:.0f}"
        self.trend = f"{slope_per_epoch:+.1e}"
        self.slope_per_epoch, self.above_min_fraction = slope_per_epoch, above_min

    def _analysis(self) -> None:
        """Where the final model fails."""
        a = self.results["analysis"]
        names, per_class, counts = a["class_names"], a["per_class_accuracy"], a["confusion"]
        self.mistakes_shown = count_phrase(len(a["mistakes"]), "validation image")
        self.accuracy = pct(a["accuracy"])
        best = max(range(len(names)), key=per_class.__getitem__)
        worst = min(range(len(names)), key=per_class.__getitem__)
        self.best_class, self.best_class_accuracy = names[best], pct(per_class[best])
        self.worst_class, self.worst_class_accuracy = names[worst], pct(per_class[worst])
        n, i, j = max((counts[i][j], i, j) for i in range(len(names)) for j in range(len(names)) if i != j)
        self.confused_true, self.confused_as, self.confused = names[i], names[j], str(n)
        self.confuses = n > 0
        self.confused_share = pct(n / sum(counts[i]))


    @property
    def overfits(self) -> bool:
        """3d: whether the model overfits, from the least-squares trend of the validation loss over the last epochs
        (self.slope_per_epoch) and how far its final value lies above its minimum (self.above_min_fraction: 0.02 is
        2%)."""
        # BEGIN SOLUTION Task 3d: decide from the validation loss's trend and its final value whether the model overfits
        return self.slope_per_epoch > 0 and self.above_min_fraction > 0.01
        # END SOLUTION


class Task4(_Task):
    """L2 regularisation: the answers to 4a-4e."""

    def __init__(self, results: dict, figures_dir):
        super().__init__(results, figures_dir)
        self.check_lambda = f"{max(self.p['lambdas']):g}"
        self._answer(["0.0", "weight_image_roughness"], self._runs)

    def _runs(self) -> None:
        """4b-4e: one run per lambda."""
        p, results = self.p, self.results
        runs, fits = results["runs"], results["fit"]
        lams = sorted({0.0, *map(float, p["lambdas"])})
        # 4b: the weight images of lambda = 0 and lambda = 2
        self.images_compared = {0.0, 2.0} <= set(map(float, p["weight_image_lambdas"]))
        rough, largest = results["weight_image_roughness"], results["max_abs_pixel_weight"]
        r0, r2, m0, m2 = (d.get(k, math.nan) for d, k in ((rough, "0.0"), (rough, "2.0"), (largest, "0.0"),
                                                           (largest, "2.0")))
        self.smaller = "smaller" if m2 < m0 else "not smaller"
        self.smoother = "smoother" if r2 < r0 else "not smoother"
        self.largest_weight, self.largest_weight_unregularised = f"{m2:.3f}", f"{m0:.3f}"
        self.image_roughness, self.image_roughness_unregularised = f"{r2:.2f}", f"{r0:.2f}"
        # 4c: where each run ended
        ended = [(float(x), runs[repr(float(x))]) for x in p["lambdas"]]
        stopped = sorted((run["stop_epoch"], x) for x, run in ended if run["stopped_early"])
        self.ended = Md("; ".join(f"$\\lambda = {x:g}$: " + (f"epoch {run['stop_epoch']}" if run["stopped_early"]
                                                             else f"all {p['num_epochs']} epochs") for x, run in ended))
        self.some_stopped = bool(stopped)
        self.largest_first = bool(stopped) and stopped[0][1] == max(x for x, _ in ended)
        # 4d: does it help?
        rows = ["| $\\lambda$ | ended in epoch | final validation accuracy | best validation accuracy at a check | "
                "final training accuracy |", "|---:|---:|---:|---:|---:|"]
        rows += [f"| {x:g} | {runs[repr(x)]['stop_epoch']}{'' if runs[repr(x)]['stopped_early'] else ' (all)'} | "
                 f"{pct(runs[repr(x)]['final']['val_accuracy'])} | {pct(fits[repr(x)]['best_val_accuracy'])} | "
                 f"{pct(runs[repr(x)]['final']['train_accuracy'])} |" for x in lams]
        self.table = Md("\n".join(rows))
        final = {x: runs[repr(x)]["final"]["val_accuracy"] for x in lams}  # the weights training ends with
        best, base = max(lams, key=lambda x: (final[x], -x)), final[0.0]
        tail = runs["0.0"]["history"]["val_accuracy"][-fits["0.0"]["tail_checks"]:]
        spread = statistics.pstdev(tail)
        self.best_is_none, self.best_lambda, self.best = best == 0.0, f"{best:g}", pct(final[best])
        self.unregularised, self.spread = pct(base), pp(spread)
        self.more_right = str(round((final[best] - base) * results["data"]["num_val"]))
        self.beyond_noise = final[best] - base >= spread
        self.best_lambda_value = best
        worse = sorted(x for x in lams if x > 0 and final[x] < base)
        self.some_worse = bool(worse)
        self.worse = Md(f"$\\lambda \\in \\{{{', '.join(f'{x:g}' for x in worse)}\\}}$" if worse else NONE)
        self.steadily = len(worse) > 1 and all(final[a] > final[b] for a, b in zip(worse, worse[1:]))
        train_final = {x: runs[repr(x)]["final"]["train_accuracy"] for x in lams}
        self.train_falls = bool(worse) and all(train_final[x] < train_final[0.0] for x in worse)
        # 4e: the squared norms
        norms = results["squared_norms"]
        positive = sorted(float(x) for x in p["lambdas"])
        self.norm_unregularised = f"{norms['0.0']:.2f}"
        self.norms = Md(", ".join(f"{norms[repr(x)]:.2f} for $\\lambda = {x:g}$" for x in positive))
        self.squared_norms = [norms[repr(x)] for x in positive]  # ||w||^2 for the lambdas > 0, smallest first
        official = OFFICIAL_2022["task4e_squared_norms"]
        self.official_lambdas = set(official) == set(positive)
        rows = ["| $\\lambda$ | $\\|w\\|^2$, this run | the official solution (read off its plot) |",
                "|---:|---:|---:|"]
        rows += [f"| {x:g} | {norms[repr(x)]:.2f} | about {official[x]:g} |" for x in sorted(official, reverse=True)
                 if repr(x) in norms]
        self.official_table = Md("\n".join(rows))
        worst = max((abs(norms[repr(x)] - official[x]) / official[x] for x in official if repr(x) in norms), default=0)
        self.official_agree = worst <= 0.1
        self.official_difference = f"{100 * worst:.0f}%"

    @property
    def helps(self) -> bool:
        """4d: whether regularisation helps: the lambda with the best final validation accuracy
        (self.best_lambda_value, 0.0 when none beats no regularisation), and whether its gain is beyond the noise of
        the unregularised run (self.beyond_noise)."""
        # BEGIN SOLUTION Task 4d: decide whether some lambda > 0 improves on no regularisation by more than the noise
        return self.best_lambda_value != 0.0 and self.beyond_noise
        # END SOLUTION

    @property
    def monotone(self) -> bool:
        """4e: whether ||w||^2 falls as lambda grows: self.squared_norms, for the lambdas > 0 from the smallest."""
        # BEGIN SOLUTION Task 4e: decide from self.squared_norms whether the squared norm falls as lambda grows
        return all(a > b for a, b in zip(self.squared_norms, self.squared_norms[1:]))
        # END SOLUTION
