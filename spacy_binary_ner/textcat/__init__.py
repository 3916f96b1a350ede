"""Text categories from binary answers: the `binary_textcat` pipe.

The pipe (`pipe`) knows Thinc models only; the architectures are in `model`,
the torch module they wrap in `pytorch`, the loss targets in `targets`, the
settings in `settings` and the reader of answers in `reader`.
"""
