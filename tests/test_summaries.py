"""What the task notebooks measure about their runs (summaries.py), on small histories."""

import numpy as np
import pytest

from summaries import fit_summary, image_roughness, roughness, shuffle_comparison, spike_steps


def history(val_loss, every=6):
    n = len(val_loss)
    return {"check_steps": [i * every for i in range(n)], "val_loss": list(val_loss),
            "val_accuracy": [1 - v for v in val_loss], "train_accuracy": [0.9] * n, "train_set_loss": [0.2] * n}


def test_roughness_and_spikes():
    assert roughness([1, 2, 1, 2]) == 1.0 and roughness([3, 3, 3]) == 0.0
    calm = [0.1 + 0.001 * (i % 2) for i in range(40)]
    spiky = list(calm)
    spiky[10] = spiky[30] = 0.2  # two jumps of about a hundred times the usual change
    assert spike_steps(history(calm)) == []
    assert spike_steps(history(spiky)) == [60, 180]
    out = shuffle_comparison(history(spiky), history(calm), skip_checks=5, steps_per_epoch=60)
    assert out["spikes_plain"] == {"steps": [60, 180], "batch_in_epoch": [0]}
    assert out["val_loss_roughness"]["plain"] > out["val_loss_roughness"]["shuffled"]
    assert out["first_step"] == 30 and out["num_checks"] == 35


def test_fit_summary_reads_the_trend_of_the_validation_loss():
    falling = fit_summary(history(np.linspace(1, 0.5, 60)), tail_checks=10)
    rising = fit_summary(history(np.r_[np.linspace(1, 0.5, 50), np.linspace(0.5, 0.6, 10)]), tail_checks=10)
    assert falling["val_loss_tail_slope"] < 0 < rising["val_loss_tail_slope"]
    assert rising["min_val_loss_step"] == 49 * 6 and rising["final_val_loss"] == 0.6


def test_image_roughness_is_scale_free_and_prefers_smooth_images():
    rng = np.random.default_rng(0)
    noisy = rng.normal(size=(785, 10))
    smooth = np.tile(np.linspace(-1, 1, 28), 28)[:, None].repeat(10, axis=1)
    smooth = np.vstack([smooth, np.zeros((1, 10))])
    assert image_roughness(smooth) < image_roughness(noisy)
    assert image_roughness(noisy) == pytest.approx(image_roughness(5 * noisy))
