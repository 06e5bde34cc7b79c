"""What can answer: ``%qfmodels``, the model names for Tab completion and "did you mean" (``discovery``)
and what each model is for, a chat model or a base model that only continues text (``roles``). A room the
others read (chat, training and evaluation name models through it); imports no other notebook module."""
