"""Everything TensorFlow: preprocessing, the frozen backbone, the head, training
and serving. Submodules import TensorFlow lazily so that `model.errors` and
`model.images` stay cheap to import."""
