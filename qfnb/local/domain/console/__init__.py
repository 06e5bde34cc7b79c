"""The console's objects beside fine-tunes: model versions, services (deployments), dataset tasks, entities,
prompt templates and evaluations."""
