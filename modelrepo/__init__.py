"""The model repository format, shared by training (which writes it) and the service (which
reads it): Triton's layout, its `config.pbtxt`, the model card, TorchScript files and the
atomic publishing of a new version. Imports neither `training` nor `service`."""
