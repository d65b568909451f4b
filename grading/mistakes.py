"""The typical mistakes a student makes in utils.py, each a replacement of the source's text (the instructor's: they
hold solution lines). make check must name each (tests/test_checks.py); make release grades a hand-in with each and
finds it costs the points of its own task only."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Mistake:
    source: str  # the source's text
    mistake: str  # what replaces it
    task: str  # the task whose check fails
    function: str  # the function make check names
    line: str  # what the line it names holds
    kind: str  # the kind of mistake make check says

    def made_in(self, folder: Path) -> None:
        """Make the mistake in folder/utils.py (which must hold the source's text once)."""
        path = Path(folder) / "utils.py"
        text = path.read_text(encoding="utf-8")
        if text.count(self.source) != 1:
            raise ValueError(f"{path} does not hold the text this mistake replaces once")
        path.write_text(text.replace(self.source, self.mistake), encoding="utf-8")


BINARY_GRADIENT = ("        grad = X.T @ (outputs - targets)\n        grad *= self.dtype.type(1.0 / X.shape[0])\n"
                   "        return grad\n        # END SOLUTION\n\n\nclass SoftmaxModel")
BIAS_LAST = ('    np.divide(X, 127.5, out=out[:, :NUM_PIXELS], casting="unsafe")\n'
             '    out[:, :NUM_PIXELS] -= 1\n    out[:, NUM_PIXELS] = 1\n')
TYPICAL = {
    "gradient sign flipped": Mistake(
        BINARY_GRADIENT, BINARY_GRADIENT.replace("(outputs - targets)", "(targets - outputs)"),
        "2a", "BinaryModel.loss_gradient", "grad = X.T @ (targets - outputs)", "sign"),
    "1/N missing in the gradient": Mistake(
        BINARY_GRADIENT, BINARY_GRADIENT.replace("        grad *= self.dtype.type(1.0 / X.shape[0])\n", ""),
        "2a", "BinaryModel.loss_gradient", "grad = X.T @ (outputs - targets)", "batch_size"),
    "L2 term missing": Mistake(
        "            self.grad += self.dtype.type(self.l2_reg_lambda) * self.w\n", "            pass\n",
        "4a", "LinearModel.backward", "pass", "l2_missing"),
    "softmax without the maximum": Mistake(
        "    out = np.subtract(logits, row_max[:, None], out=out)\n", "    out = np.subtract(logits, 0, out=out)\n",
        "3a", "softmax", "out /= out.sum(axis=1, keepdims=True)", "overflow"),
    "one-hot off by one": Mistake(
        "    one_hot[np.arange(y.shape[0]), y] = 1\n", "    one_hot[np.arange(y.shape[0]), y - 1] = 1\n",
        "3a", "one_hot_encode", "one_hot[np.arange(y.shape[0]), y - 1] = 1", "one_hot_shift"),
    "bias column first": Mistake(
        BIAS_LAST, BIAS_LAST.replace(":NUM_PIXELS]", "1:]").replace("out[:, NUM_PIXELS] = 1", "out[:, 0] = 1"),
        "2a", "pre_process_images", "out[:, 0] = 1", "bias_column"),
    "loss summed": Mistake(
        "(1 - targets) * np.log1p(-p)).sum()) / len(outputs)\n", "(1 - targets) * np.log1p(-p)).sum())\n",
        "2a", "cross_entropy_loss", "return -float((targets * np.log(p)", "summed"),
}
