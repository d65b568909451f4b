"""What the task notebooks import but a student never edits: the training engine, MNIST files, sealed results."""
