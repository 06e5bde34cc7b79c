"""Prompts kept on the client: the official SDK's template (template: ``qianfan.common.Prompt``) and the hub
that saves and loads it as the official JSON, in files or the platform's prompt templates (hub:
``qianfan.common.hub``); :mod:`qfnb.common` re-exports both under the official paths."""
