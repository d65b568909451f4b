"""The reference for `make bench`: training written the way the course's students typically write it.

float64 throughout, np.exp of the raw scores, one-hot targets as float64 matrices, a fresh array for
every batch, and a validation step that runs a separate forward pass for the validation loss, the
validation accuracy and the training accuracy, with the history in dicts keyed by step. Same data,
same batches (the same Generator calls), same cadence and number of steps as `trainer.train`.
"""

import numpy as np


def one_hot(labels, num_classes):
    out = np.zeros((len(labels), num_classes))
    out[np.arange(len(labels)), labels] = 1
    return out


def sigmoid_forward(X, w):
    return 1 / (1 + np.exp(-X.dot(w)))


def softmax_forward(X, w):
    scores = np.exp(X.dot(w))
    return scores / scores.sum(axis=1, keepdims=True)


def binary_loss(targets, outputs):
    return -np.mean(targets * np.log(outputs) + (1 - targets) * np.log(1 - outputs))


def softmax_loss(targets, outputs):
    return -np.mean(np.sum(targets * np.log(outputs), axis=1))


def binary_accuracy(X, targets, w):
    return np.mean((sigmoid_forward(X, w) >= 0.5) == (targets == 1))


def softmax_accuracy(X, targets, w):
    return np.mean(softmax_forward(X, w).argmax(axis=1) == targets.argmax(axis=1))


def train_reference(X_train, Y_train, X_val, Y_val, *, learning_rate, batch_size, num_epochs, shuffle=False,
                    rng=None, l2_reg_lambda=0.0):
    """Train from zero weights; Y labels (N,) for softmax or (N, 1) in {0, 1} for logistic regression.

    Returns (w, train_history, val_history) with dicts keyed by step, as the course's trainer does.
    """
    binary = Y_train.ndim == 2
    if binary:
        targets_train, targets_val = Y_train.astype(float), Y_val.astype(float)
        forward, loss_fn, accuracy = sigmoid_forward, binary_loss, binary_accuracy
    else:
        targets_train, targets_val = one_hot(Y_train, 10), one_hot(Y_val, 10)
        forward, loss_fn, accuracy = softmax_forward, softmax_loss, softmax_accuracy
    w = np.zeros((X_train.shape[1], 1 if binary else 10))
    num_batches = len(X_train) // batch_size
    val_every = max(1, num_batches // 5)
    train_history = {"loss": {}, "accuracy": {}}
    val_history = {"loss": {}, "accuracy": {}}
    global_step = 0
    for _ in range(num_epochs):
        indices = rng.permutation(len(X_train)) if shuffle else np.arange(len(X_train))
        for i in range(num_batches):
            batch = indices[i * batch_size:(i + 1) * batch_size]
            X_batch, Y_batch = X_train[batch], targets_train[batch]
            outputs = forward(X_batch, w)
            train_history["loss"][global_step] = loss_fn(Y_batch, outputs)
            grad = -X_batch.T.dot(Y_batch - outputs) / batch_size + l2_reg_lambda * w
            w = w - learning_rate * grad
            if global_step % val_every == 0:
                val_history["loss"][global_step] = loss_fn(targets_val, forward(X_val, w))
                train_history["accuracy"][global_step] = accuracy(X_train, targets_train, w)
                val_history["accuracy"][global_step] = accuracy(X_val, targets_val, w)
            global_step += 1
    return w, train_history, val_history
