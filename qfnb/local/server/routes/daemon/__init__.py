"""The daemon's control routes, behind the control token: status and shutdown (control), the model store
(models_control)."""
