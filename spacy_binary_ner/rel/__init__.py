"""Relations between entities from binary answers: the `binary_rel` pipe.

The pipe (`pipe`) knows Thinc models only; the architectures are in `model`,
the torch module they wrap in `pytorch`, the candidate pairs and the loss
targets in `targets`, the settings in `settings` and the reader of answers in
`reader`.
"""
